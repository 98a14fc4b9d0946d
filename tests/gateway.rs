//! `rollcall gateway` over real HTTP against a real Apache Kafka broker:
//! every route puts exactly the events its payload normalizes to on the
//! activity topic; refusals (a wrong token, a bad or stale Zoom signature,
//! an oversized, malformed or unsupported body, an unknown identity) are
//! answered with their status and put nothing on the topic; a burst from 50
//! concurrent clients leaves every acknowledged event on the topic exactly
//! once; a broker that stops answering gives 503s and loses no
//! acknowledged event. Prints `N passed, N failed`.

mod support;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use rollcall_ingest::{Format, IdentityView};
use rollcall_kafka::topics::create_topics;
use rollcall_kafka::wire::Topics;
use rollcall_model::avro::AvroRecord;
use rollcall_model::ActivityEvent;
use support::*;

const TOKEN: &str = "gateway-test-token-0123456789";
const ZOOM_SECRET: &str = "zoom-secret-token-0123456789";

fn fixture(rel: &str) -> PathBuf {
    repo().join("crates/ingest/tests/fixtures").join(rel)
}

/// A gateway process on a free port, killed when dropped.
struct Gateway {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_gateway(broker: &str, prefix: &str, extra: &str) -> Result<Gateway, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (token, secret) = (dir.path().join("token"), dir.path().join("zoom-secret"));
    std::fs::write(&token, TOKEN).map_err(|e| e.to_string())?;
    std::fs::write(&secret, ZOOM_SECRET).map_err(|e| e.to_string())?;
    let t = token.display();
    let config = format!(
        "listen = \"127.0.0.1:0\"\n{extra}\n\
         [[source]]\nformat = \"caliper\"\ntoken_file = \"{t}\"\n\
         [[source]]\nformat = \"xapi\"\nroute = \"/v1/xapi/statements\"\ntoken_file = \"{t}\"\n\
         [[source]]\nformat = \"canvas\"\ntoken_file = \"{t}\"\n\
         [[source]]\nformat = \"zoom\"\nsecret_file = \"{}\"\n\
         [[source]]\nformat = \"native\"\nroute = \"/v1/events\"\ntoken_file = \"{t}\"\n\
         [[source]]\nname = \"contacts\"\nformat = \"native\"\nroute = \"/v1/contacts.csv\"\ntoken_file = \"{t}\"\n",
        secret.display()
    );
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, config).map_err(|e| e.to_string())?;
    let mut child = Command::new(bin())
        .args(["gateway", "--brokers", broker, "--topic-prefix", prefix, "--config"])
        .arg(&file)
        .arg("--identities")
        .arg(fixture("identities.csv"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    let mut out = child.stdout.take().ok_or("no stdout")?;
    let mut byte = [0u8; 1];
    while !line.ends_with('\n') {
        if out.read(&mut byte).map_err(|e| e.to_string())? == 0 {
            return Err(format!("the gateway ended before listening: {:?}", child.wait()));
        }
        line.push(byte[0] as char);
    }
    let addr = line.trim().strip_prefix("listening on ").ok_or_else(|| format!("unexpected first line `{line}`"))?.to_string();
    Ok(Gateway { child, addr, _dir: dir })
}

/// One HTTP/1.1 POST: (status, body).
fn post(addr: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> Result<(u16, String), String> {
    let a = support::http::request(addr, "POST", path, headers, body)?;
    Ok((a.status, a.body))
}

fn bearer() -> Vec<(&'static str, String)> {
    vec![("Authorization", format!("Bearer {TOKEN}"))]
}

fn zoom_headers(body: &[u8], at: i64) -> Vec<(&'static str, String)> {
    let ts = at.to_string();
    vec![
        ("x-zm-request-timestamp", ts.clone()),
        ("x-zm-signature", rollcall_ingest::zoom::signature(ZOOM_SECRET.as_bytes(), &ts, body)),
    ]
}

/// Every event on the activity topic, by event id, with how often it is there.
fn on_topic(b: &str, topics: &Topics) -> Result<BTreeMap<String, (usize, ActivityEvent)>, String> {
    let mut seen: BTreeMap<String, (usize, ActivityEvent)> = BTreeMap::new();
    rollcall_kafka::replay::read_topic(b, &topics.activity, |v, _| {
        let e = ActivityEvent::from_single_object(v)
            .map_err(|source| rollcall_kafka::KafkaError::Record { what: "an activity event".into(), source })?;
        seen.entry(e.event_id.clone()).or_insert((0, e)).0 += 1;
        Ok(())
    })
    .map_err(|e| format!("{e:#}"))?;
    Ok(seen)
}

fn fresh_topics(b: &str, name: &str) -> Result<(String, Topics), String> {
    let prefix = unique(name);
    let topics = Topics::with_prefix(&prefix);
    create_topics(b, &topics, 3, 1).map_err(|e| format!("{e:#}"))?;
    Ok((prefix, topics))
}

fn every_route_puts_its_events_on_the_topic(b: &str) -> TestResult {
    let (prefix, topics) = fresh_topics(b, "gw-routes")?;
    let gw = start_gateway(b, &prefix, "")?;
    let ids = IdentityView::from_csv(&std::fs::read(fixture("identities.csv")).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let now = chrono::Utc::now().timestamp();
    let cases: [(&str, &str, Format, Option<&str>); 6] = [
        ("/v1/caliper", "caliper/session-logged-in.json", Format::Caliper, None),
        ("/v1/xapi/statements", "xapi/batch.json", Format::Xapi, None),
        ("/v1/canvas", "canvas/submission-created.json", Format::Canvas, None),
        ("/v1/zoom", "zoom/participant-joined.json", Format::Zoom, None),
        ("/v1/events", "native/events.json", Format::Native, None),
        ("/v1/contacts.csv", "native/contacts.csv", Format::Native, Some("contacts")),
    ];
    let mut want: BTreeMap<String, ActivityEvent> = BTreeMap::new();
    for (route, file, format, csv_source) in cases {
        let body = std::fs::read(fixture(file)).map_err(|e| format!("{file}: {e}"))?;
        let expected = match csv_source {
            Some(s) => rollcall_ingest::native::csv(&body, s),
            None if format == Format::Native => rollcall_ingest::native::json(&body),
            None => rollcall_ingest::normalize(format, &body, &ids, None),
        }
        .map_err(|r| format!("{file}: {r}"))?;
        ensure(!expected.events.is_empty(), || format!("{file} gives no events; pick another fixture"))?;
        let headers = if format == Format::Zoom { zoom_headers(&body, now) } else { bearer() };
        let (status, answer) = post(&gw.addr, route, &headers, &body)?;
        ensure(status == 200, || format!("{route}: {status} {answer}"))?;
        ensure(answer.contains(&format!("\"accepted\":{}", expected.events.len())), || format!("{route}: {answer}"))?;
        for e in expected.events {
            want.insert(e.event_id.clone(), e);
        }
    }
    let got = on_topic(b, &topics)?;
    let twice: Vec<_> = got.iter().filter(|(_, (n, _))| *n != 1).map(|(k, _)| k).collect();
    ensure(twice.is_empty(), || format!("on the topic more than once: {twice:?}"))?;
    let got: BTreeMap<String, ActivityEvent> = got.into_iter().map(|(k, (_, e))| (k, e)).collect();
    ensure(got == want, || {
        format!(
            "{} events on the topic, {} expected; e.g. {:?}",
            got.len(),
            want.len(),
            want.keys().find(|k| got.get(*k) != want.get(*k))
        )
    })
}

fn refusals_have_their_status_and_produce_nothing(b: &str) -> TestResult {
    let (prefix, topics) = fresh_topics(b, "gw-refusals")?;
    let gw = start_gateway(b, &prefix, "max_body_bytes = 65536")?;
    let now = chrono::Utc::now().timestamp();
    let read = |f: &str| std::fs::read(fixture(f)).map_err(|e| format!("{f}: {e}"));
    let caliper = read("caliper/session-logged-in.json")?;
    let zoom = read("zoom/participant-joined.json")?;
    let wrong = vec![("Authorization", "Bearer not-the-token-at-all-000".to_string())];
    let mut bad_zoom = zoom_headers(&zoom, now);
    bad_zoom[1].1 = rollcall_ingest::zoom::signature(b"another-secret-entirely", &now.to_string(), &zoom);
    let cases: Vec<(&str, &str, Vec<(&str, String)>, Vec<u8>, u16, &str)> = vec![
        ("no token", "/v1/caliper", vec![], caliper.clone(), 401, "Bearer"),
        ("a wrong token", "/v1/caliper", wrong, caliper.clone(), 401, "not this source's"),
        ("a bad signature", "/v1/zoom", bad_zoom, zoom.clone(), 401, "x-zm-signature"),
        ("a stale signature", "/v1/zoom", zoom_headers(&zoom, now - 3600), zoom.clone(), 401, "x-zm-request-timestamp"),
        ("an oversized body", "/v1/caliper", bearer(), vec![b' '; 100_000], 413, "limit"),
        ("malformed JSON", "/v1/caliper", bearer(), b"{\"data\": [".to_vec(), 400, "not JSON"),
        ("a bad place", "/v1/caliper", bearer(), read("caliper/bad-places.json")?, 400, "data["),
        ("Caliper 1.0", "/v1/caliper", bearer(), read("caliper/v1p0-refused.json")?, 422, "not supported"),
        (
            "an unknown identity",
            "/v1/caliper",
            bearer(),
            read("caliper/unknown-person-and-class.json")?,
            422,
            "not in the identity mapping",
        ),
    ];
    for (what, route, headers, body, want, says) in cases {
        let (status, answer) = post(&gw.addr, route, &headers, &body)?;
        ensure(status == want && answer.contains(says), || {
            format!("{what}: {status} {answer}, expected {want} saying `{says}`")
        })?;
    }
    let validation = read("zoom/url-validation.json")?;
    let (status, answer) = post(&gw.addr, "/v1/zoom", &zoom_headers(&validation, now), &validation)?;
    ensure(status == 200 && answer.contains("encryptedToken"), || format!("url validation: {status} {answer}"))?;
    let got = on_topic(b, &topics)?;
    ensure(got.is_empty(), || format!("{} events produced by refused requests", got.len()))
}

fn native_batch(client: usize, request: usize, n: usize) -> Vec<u8> {
    let events: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"event_id":"burst-{client}-{request}-{i}","source":"door","student_id":"S{:04}","school_id":"lincoln-ms","kind":"CHECK_IN","occurred_at":"2025-02-19T13:52:10Z"}}"#,
                client * 7 + i
            )
        })
        .collect();
    format!("[{}]", events.join(",")).into_bytes()
}

/// 50 clients at once; every event of every 200 is on the topic exactly
/// once, and nothing else is.
fn a_burst_lands_exactly_once(b: &str) -> TestResult {
    let (prefix, topics) = fresh_topics(b, "gw-burst")?;
    let gw = start_gateway(b, &prefix, "")?;
    let addr = gw.addr.clone();
    let started = Instant::now();
    let acked: Vec<Result<Vec<String>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|c| {
                let addr = addr.clone();
                s.spawn(move || -> Result<Vec<String>, String> {
                    let mut ids = Vec::new();
                    for r in 0..10 {
                        let body = native_batch(c, r, 10);
                        let (status, answer) = post(&addr, "/v1/events", &bearer(), &body)?;
                        if status != 200 {
                            return Err(format!("client {c} request {r}: {status} {answer}"));
                        }
                        ids.extend((0..10).map(|i| format!("burst-{c}-{r}-{i}")));
                    }
                    Ok(ids)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("a client panicked".into()))).collect()
    });
    let mut want = std::collections::BTreeSet::new();
    for a in acked {
        want.extend(a?);
    }
    let took = started.elapsed();
    let got = on_topic(b, &topics)?;
    let twice = got.values().filter(|(n, _)| *n != 1).count();
    ensure(twice == 0, || format!("{twice} events on the topic more than once"))?;
    let ids: std::collections::BTreeSet<String> = got.into_keys().collect();
    ensure(ids == want, || format!("{} acknowledged, {} on the topic", want.len(), ids.len()))?;
    eprintln!("  {} events in 500 requests from 50 clients in {:.1} s", want.len(), took.as_secs_f64());
    Ok(())
}

/// A broker of its own, stopped (SIGSTOP) in the middle of a stream of
/// requests: those Kafka does not acknowledge in time are answered 503,
/// and every event of a 200 is on the topic once the broker is back.
fn a_stopped_broker_gives_503_and_loses_nothing(_: &str) -> TestResult {
    let run = std::env::temp_dir().join(format!("rollcall-gateway-pause-{}", std::process::id()));
    let kafka =
        |what: &str| Command::new("bash").arg(repo().join("scripts/kafka.sh")).arg(what).env("ROLLCALL_KAFKA_RUN", &run).output();
    let out = kafka("start").map_err(|e| e.to_string())?;
    ensure(out.status.success(), || "scripts/kafka.sh start failed".into())?;
    let own = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_string();
    let result = (|| -> TestResult {
        let (prefix, topics) = fresh_topics(&own, "gw-pause")?;
        let gw = start_gateway(&own, &prefix, "produce_timeout_ms = 3000")?;
        let (mut acked, mut unavailable) = (Vec::new(), 0);
        for r in 0..30 {
            if r == 10 {
                ensure(kafka("pause").map_err(|e| e.to_string())?.status.success(), || "kafka.sh pause failed".into())?;
            }
            if r == 14 {
                ensure(kafka("resume").map_err(|e| e.to_string())?.status.success(), || "kafka.sh resume failed".into())?;
            }
            let (status, answer) = post(&gw.addr, "/v1/events", &bearer(), &native_batch(0, r, 5))?;
            match status {
                200 => acked.extend((0..5).map(|i| format!("burst-0-{r}-{i}"))),
                503 => unavailable += 1,
                other => return Err(format!("request {r}: {other} {answer}")),
            }
        }
        ensure(unavailable > 0, || "no request was answered 503 while the broker was stopped".into())?;
        let got = on_topic(&own, &topics)?;
        let lost: Vec<_> = acked.iter().filter(|id| got.get(*id).map(|(n, _)| *n) != Some(1)).take(3).collect();
        ensure(lost.is_empty(), || format!("acknowledged but not on the topic exactly once: {lost:?}"))?;
        eprintln!("  {} events acknowledged, {unavailable} requests answered 503", acked.len());
        Ok(())
    })();
    let _ = kafka("resume");
    let _ = kafka("stop");
    result
}

fn main() -> ExitCode {
    let Some(broker) = Broker::get_or_report() else { return ExitCode::FAILURE };
    let tests: &[(&str, fn(&str) -> TestResult)] = &[
        ("every_route_puts_its_events_on_the_topic", every_route_puts_its_events_on_the_topic),
        ("refusals_have_their_status_and_produce_nothing", refusals_have_their_status_and_produce_nothing),
        ("a_burst_lands_exactly_once", a_burst_lands_exactly_once),
        ("a_stopped_broker_gives_503_and_loses_nothing", a_stopped_broker_gives_503_and_loses_nothing),
    ];
    let (passed, failed) = run_all("gateway", Duration::from_secs(900), tests, broker.address.as_str());
    drop(broker);
    summary(passed, failed)
}
