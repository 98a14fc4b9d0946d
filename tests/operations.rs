//! The operations endpoints of `rollcall run`, scraped by a real Prometheus:
//! a small simulated district goes through a real broker and a processor
//! that serves /metrics, /healthz and /readyz; a `prometheus` server scrapes
//! it every second, and its query API must agree with the topics.
//!
//! Uses the cluster in ROLLCALL_TEST_BROKERS, or starts one with
//! scripts/kafka.sh and stops it at the end (tests/support/harness.rs). Needs
//! the `prometheus` binary on PATH (scripts/setup.sh installs it): without
//! it the test fails.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rollcall_kafka::metrics::METRIC_NAMES;
use rollcall_kafka::replay::{produce_scenario, read_outputs};
use rollcall_kafka::topics::create_topics;
use rollcall_kafka::wire::Topics;

use serde_json::Value;

use crate::support::harness::{Area, Need};
use crate::support::*;

/// Child processes killed when the test ends, however it ends.
#[derive(Default)]
struct Children(Vec<(&'static str, Child)>);

/// Their ids, for the watchdog that ends a hung run.
static PIDS: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

impl Drop for Children {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Children {
    fn push(&mut self, name: &'static str, c: Child) {
        if let Ok(mut p) = PIDS.lock() {
            p.push(c.id());
        }
        self.0.push((name, c));
    }

    /// Fails if one of them has exited.
    fn alive(&mut self) -> TestResult {
        for (name, c) in &mut self.0 {
            if let Ok(Some(st)) = c.try_wait() {
                return Err(format!("{name} exited early with {st}"));
            }
        }
        Ok(())
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A plain HTTP/1.0 GET (no chunked answers): status, headers and body.
fn http_get(addr: &str, path: &str) -> Result<(u16, String, String), String> {
    let sock = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let mut c = TcpStream::connect_timeout(&sock, Duration::from_secs(2)).map_err(|e| format!("connect {addr}: {e}"))?;
    c.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    write!(c, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    c.read_to_end(&mut raw).map_err(|e| format!("read {addr}{path}: {e}"))?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| format!("{addr}{path}: no header end"))?;
    let status =
        head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| format!("{addr}{path}: bad status line"))?;
    Ok((status, head.to_string(), body.to_string()))
}

/// Waits up to `limit` for `f` to give a value.
fn wait_for<T>(what: &str, limit: Duration, kids: &mut Children, mut f: impl FnMut() -> Option<T>) -> Result<T, String> {
    let started = Instant::now();
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        kids.alive()?;
        if started.elapsed() > limit {
            return Err(format!("{what}: not within {} s", limit.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A series' labels and value.
type Sample = (serde_json::Map<String, Value>, f64);

/// Prometheus's instant query: each series' labels and value.
fn query(prom: &str, q: &str) -> Result<Vec<Sample>, String> {
    let (status, _, body) = http_get(prom, &format!("/api/v1/query?query={}", percent_encode(q)))?;
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("query {q}: {e}: {body}"))?;
    if status != 200 || v["status"] != "success" {
        return Err(format!("query {q}: HTTP {status}: {body}"));
    }
    let mut out = Vec::new();
    for r in v["data"]["result"].as_array().cloned().unwrap_or_default() {
        let labels = r["metric"].as_object().cloned().unwrap_or_default();
        let value = r["value"][1].as_str().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN);
        out.push((labels, value));
    }
    Ok(out)
}

/// The value of a query that gives one series (`sum(...)`), if it does.
fn scalar(prom: &str, q: &str) -> Result<Option<f64>, String> {
    Ok(query(prom, q)?.first().map(|(_, v)| *v))
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn prometheus_scrapes_the_processor(b: &str, prometheus: &Path) -> TestResult {
    let s = district(120, 3, 17);
    let mut ids: HashSet<String> = s.roster.iter().flat_map(|r| r.identifiers().map(str::to_string)).collect();
    let student_ids: BTreeSet<String> =
        s.roster.iter().map(|r| r.student_id.clone()).chain(s.events.iter().map(|a| a.event.student_id.clone())).collect();
    ids.extend(student_ids.iter().cloned());
    let prefix = unique("ops");
    let topics = Topics::with_prefix(&prefix);
    let partitions = 3;
    create_topics(b, &topics, partitions, 1).map_err(|e| format!("{e:#}"))?;
    let mut produced = produce_scenario(b, &topics, &s).map_err(|e| format!("{e:#}"))?;
    // One unreadable record keyed by a real student: a dead letter whose log line must not show the id.
    let victim = s.roster[0].student_id.clone();
    let at = s.events.first().map(|a| a.arrives_at.timestamp_millis()).unwrap_or(0);
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", b)
        .set("partitioner", "murmur2_random")
        .create()
        .map_err(|e| e.to_string())?;
    p.send(BaseRecord::to(&topics.activity).key(victim.as_str()).payload(b"not avro".as_slice()).timestamp(at))
        .map_err(|(e, _)| e.to_string())?;
    p.flush(Duration::from_secs(30)).map_err(|e| e.to_string())?;
    produced += 1;
    eprintln!("  produced {produced} records ({} students)", s.roster.len());

    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut kids = Children::default();
    let metrics_addr = format!("127.0.0.1:{}", free_port()?);
    let proc_log = dir.path().join("rollcall.log");
    let child = Command::new(bin())
        .args(["--log-format", "json", "run", "--brokers", b, "--clock", "replay", "--instance-id", "ops"])
        .args(["--until", &s.now.to_rfc3339(), "--topic-prefix", &prefix, "--group", &format!("{prefix}g")])
        .args(["--metrics-addr", &metrics_addr])
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&proc_log).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("rollcall run: {e}"))?;
    kids.push("rollcall run", child);

    let prom_addr = format!("127.0.0.1:{}", free_port()?);
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: rollcall\n    static_configs:\n      - targets: ['{metrics_addr}']\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let prom_log = dir.path().join("prometheus.log");
    let child = Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
        .arg(format!("--web.listen-address={prom_addr}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&prom_log).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("prometheus: {e}"))?;
    kids.push("prometheus", child);

    let result = (|| -> TestResult {
        // The processor's own endpoints.
        wait_for("/healthz answers 200", Duration::from_secs(30), &mut kids, || {
            http_get(&metrics_addr, "/healthz").ok().filter(|(st, _, body)| *st == 200 && body.trim() == "ok")
        })?;
        let (st, head, body) = http_get(&metrics_addr, "/metrics")?;
        ensure(st == 200 && head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), || {
            format!("/metrics: {head}")
        })?;
        ensure(body.contains("rollcall_build_info{version="), || "/metrics has no rollcall_build_info".into())?;
        wait_for("/readyz answers 200", Duration::from_secs(120), &mut kids, || {
            http_get(&metrics_addr, "/readyz").ok().filter(|(st, ..)| *st == 200)
        })?;
        wait_for("Prometheus is ready", Duration::from_secs(60), &mut kids, || {
            http_get(&prom_addr, "/-/ready").ok().filter(|(st, ..)| *st == 200)
        })?;
        wait_for("Prometheus scrapes the processor", Duration::from_secs(60), &mut kids, || {
            scalar(&prom_addr, "up{job=\"rollcall\"}").ok().flatten().filter(|v| *v == 1.0)
        })?;
        // Everything consumed, as Prometheus sees it.
        let consumed = wait_for("every input record counted as consumed", Duration::from_secs(300), &mut kids, || {
            scalar(&prom_addr, "sum(rollcall_events_consumed_total)").ok().flatten().filter(|v| *v as u64 >= produced)
        })?;
        ensure(consumed as u64 == produced, || format!("sum(rollcall_events_consumed_total) = {consumed}, produced {produced}"))?;
        // The determinations counter and the topic agree once both are still.
        let mut last = (f64::NAN, 0usize);
        let (emitted, on_topic) =
            wait_for("determinations counted = determinations on the topic", Duration::from_secs(180), &mut kids, || {
                let prom = scalar(&prom_addr, "sum(rollcall_determinations_emitted_total)").ok().flatten()?;
                let topic = read_outputs(b, &topics).ok()?.determinations.len();
                let stable = last == (prom, topic);
                last = (prom, topic);
                (stable && prom as usize == topic && topic > 0).then_some((prom, topic))
            })?;
        eprintln!("  {consumed} records consumed, {emitted} determinations counted, {on_topic} on the topic");
        // Values, not only names: each must equal what the topics and the calendars say.
        let outputs = read_outputs(b, &topics).map_err(|e| format!("{e:#}"))?;
        let mut want_outreach: BTreeMap<String, f64> = BTreeMap::new();
        for t in &outputs.outreach {
            *want_outreach.entry(t.kind.as_str().to_ascii_lowercase()).or_default() += 1.0;
        }
        ensure(!want_outreach.is_empty(), || "the district raised no outreach: the comparison would prove nothing".into())?;
        let mut want_dead: BTreeMap<String, f64> = BTreeMap::new();
        for d in &outputs.dead_letters {
            *want_dead.entry(d.error_kind.as_str().to_string()).or_default() += 1.0;
        }
        let by = |q: &str, label: &str| -> Option<BTreeMap<String, f64>> {
            let samples = query(&prom_addr, q).ok()?;
            Some(
                samples
                    .into_iter()
                    .filter(|(_, v)| *v > 0.0)
                    .map(|(l, v)| (l.get(label).and_then(Value::as_str).unwrap_or_default().to_string(), v))
                    .collect(),
            )
        };
        let mut got_outreach = BTreeMap::new();
        wait_for("outreach counted by kind = triggers on the topic by kind", Duration::from_secs(60), &mut kids, || {
            got_outreach = by("sum by (kind) (rollcall_outreach_triggers_total)", "kind")?;
            (got_outreach == want_outreach).then_some(())
        })
        .map_err(|e| format!("{e}: Prometheus {got_outreach:?}, the outreach topic {want_outreach:?}"))?;
        let mut got_dead = BTreeMap::new();
        wait_for("dead letters counted by kind = the DLQ topic by kind", Duration::from_secs(60), &mut kids, || {
            got_dead = by("sum by (error_kind) (rollcall_dlq_records_total)", "error_kind")?;
            (got_dead == want_dead).then_some(())
        })
        .map_err(|e| format!("{e}: Prometheus {got_dead:?}, the DLQ topic {want_dead:?}"))?;
        // Every input consumed: the lag of every input partition is 0.
        let mut lag = (f64::NAN, f64::NAN);
        wait_for("consumer lag 0 on every input partition", Duration::from_secs(60), &mut kids, || {
            lag = (
                scalar(&prom_addr, "count(rollcall_consumer_lag_records)").ok().flatten()?,
                scalar(&prom_addr, "max(rollcall_consumer_lag_records)").ok().flatten()?,
            );
            (lag.0 >= 3.0 * partitions as f64 && lag.1 == 0.0).then_some(())
        })
        .map_err(|e| format!("{e}: (series, max lag) = {lag:?}"))?;
        // The replay clock ends at the district's end: the schools whose
        // calendar makes that instant's local date an instructional day.
        let in_session = s
            .calendars
            .iter()
            .filter(|c| {
                let tz: chrono_tz::Tz = c.timezone.parse().unwrap_or(chrono_tz::UTC);
                let local = s.now.with_timezone(&tz).date_naive();
                c.days.iter().any(|d| d.date == local && d.instructional)
            })
            .count() as f64;
        let mut gauge = f64::NAN;
        wait_for("rollcall_schools_in_session = the calendars' count", Duration::from_secs(60), &mut kids, || {
            gauge = scalar(&prom_addr, "rollcall_schools_in_session").ok().flatten()?;
            (gauge == in_session).then_some(())
        })
        .map_err(|e| format!("{e}: the gauge says {gauge}, the calendars {in_session} at {}", s.now))?;
        eprintln!(
            "  outreach by kind {want_outreach:?}, dead letters by kind {want_dead:?}, {in_session} schools in session at {}",
            s.now
        );
        for name in METRIC_NAMES {
            let n = scalar(&prom_addr, &format!("count({{__name__=~\"{name}|{name}_count\"}})"))?.unwrap_or(0.0);
            ensure(n > 0.0, || format!("{name}: no series in Prometheus"))?;
        }
        let committed = scalar(&prom_addr, "sum(rollcall_transactions_total{outcome=\"committed\"})")?.unwrap_or(0.0);
        ensure(committed > 0.0, || "no committed transaction counted".into())?;
        let assigned = scalar(&prom_addr, "rollcall_partitions_assigned")?.unwrap_or(-1.0);
        ensure(assigned == partitions as f64, || format!("rollcall_partitions_assigned = {assigned}, expected {partitions}"))?;
        let dead = scalar(&prom_addr, "sum(rollcall_dlq_records_total{error_kind=\"NOT_AVRO\"})")?.unwrap_or(0.0);
        ensure(dead == 1.0, || format!("NOT_AVRO dead letters counted: {dead}, expected 1"))?;
        let latency = scalar(&prom_addr, "sum(rollcall_event_to_output_seconds_count)")?.unwrap_or(0.0);
        ensure(latency > 0.0, || "rollcall_event_to_output_seconds observed nothing".into())?;
        let evaluated = scalar(&prom_addr, "sum(rollcall_windows_evaluated_total{result=\"evaluated\"})")?.unwrap_or(0.0);
        ensure(evaluated > 0.0, || "rollcall_windows_evaluated_total counted no evaluated window".into())?;
        // No id in any label of any series.
        let series = query(&prom_addr, "{__name__=~\"rollcall_.+\"}")?;
        ensure(series.len() > METRIC_NAMES.len(), || format!("only {} rollcall series", series.len()))?;
        for (labels, _) in &series {
            for (k, v) in labels {
                let v = v.as_str().unwrap_or_default();
                ensure(!ids.contains(v), || format!("label {k}=\"{v}\" of {labels:?} is an id of the district"))?;
            }
        }
        // The log: JSON lines, the dead letter's student hashed, no raw student id anywhere.
        let log = std::fs::read_to_string(&proc_log).map_err(|e| e.to_string())?;
        for line in log.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).map_err(|e| format!("log line is not JSON ({e}): {line}"))?;
            ensure(v.get("fields").is_some(), || format!("log line without fields: {line}"))?;
        }
        // Dead letters are summed up per interval (one line for all of them,
        // each named by topic, partition and offset, never by student).
        let dead_line = log.lines().find(|l| l.contains("dead letter(s) in the last")).ok_or("no dead-letter summary line")?;
        ensure(dead_line.contains("NOT_AVRO") && !dead_line.contains(victim.as_str()), || {
            format!("the dead-letter summary should name NOT_AVRO and not the student: {dead_line}")
        })?;
        if let Some(id) = student_ids.iter().find(|id| log.contains(id.as_str())) {
            return Err(format!("the log shows student id {id}"));
        }
        eprintln!(
            "  {} series, {} METRIC_NAMES families, {} log lines checked",
            series.len(),
            METRIC_NAMES.len(),
            log.lines().count()
        );
        Ok(())
    })();
    drop(kids);
    result.map_err(|e| {
        format!(
            "{e}\n--- rollcall run (last lines) ---\n{}\n--- prometheus (last lines) ---\n{}",
            tail(&proc_log, 15),
            tail(&prom_log, 10)
        )
    })
}

/// The test needs the `prometheus` binary (without it, it fails) and a broker.
pub fn area() -> Area {
    let tests = service_tests![[Need::Prometheus, Need::Broker], |e| (e.broker(), e.prometheus());
        prometheus_scrapes_the_processor,
    ];
    // A hang is a failure, not a stalled suite; the processes started here go too.
    Area {
        on_timeout: || {
            for pid in PIDS.lock().map(|p| p.clone()).unwrap_or_default() {
                let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            }
        },
        ..Area::new("operations", Duration::from_secs(900), tests)
    }
}
