//! Tests against a real Apache Kafka broker (4.x, KRaft): scenarios through
//! topics and the processor, dead letters, kill -9 recovery, and a partition
//! moving to a surviving instance.
//!
//! Uses the cluster in ROLLCALL_TEST_BROKERS, or starts one with
//! scripts/kafka.sh and stops it at the end. Runs without the libtest harness
//! so that one broker serves every test; prints `N passed, N failed`.

use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rollcall_kafka::replay::{produce_scenario, read_outputs, read_topic, run_scenario};
use rollcall_kafka::topics::create_topics;
use rollcall_kafka::wire::Topics;
use rollcall_model::avro::AvroRecord;
use rollcall_model::DeadLetter;
use rollcall_scenario::{check, scenario_files, Expect, Scenario};

mod support;
use support::*;








/// Every scenario, shared and the project's own, passes through the broker.
fn scenarios_pass_through_kafka(b: &str) -> TestResult {
    let mut files = scenario_files(&repo().join("tests/scenarios")).map_err(|e| e.to_string())?;
    let shared = repo().join("../shared/scenarios");
    if shared.is_dir() {
        files.extend(scenario_files(&shared).map_err(|e| e.to_string())?);
    }
    let mut failures = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let s = Scenario::load(f).map_err(|e| e.to_string())?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (out, _) = run_scenario(b, &s, &unique(&format!("s{i}")), dir.path()).map_err(|e| format!("{}: {e:#}", f.display()))?;
        for d in check(&s, &out) {
            failures.push(format!("{}: {}: expected {}, got {}", f.display(), d.key, d.expected, d.actual));
        }
    }
    eprintln!("  {} scenarios through Kafka", files.len());
    ensure(failures.is_empty(), || failures.join("\n"))
}

fn raw_producer(b: &str) -> Result<BaseProducer, String> {
    ClientConfig::new()
        .set("bootstrap.servers", b)
        .set("partitioner", "murmur2_random")
        .create()
        .map_err(|e| e.to_string())
}

/// Every kind of bad record goes to the DLQ with its origin and bytes; the
/// good records around them are processed.
fn bad_records_are_dead_lettered(b: &str) -> TestResult {
    let base = Scenario::load(&repo().join("tests/scenarios/mmsd-01-k5-live-join-and-submission.json")).map_err(|e| e.to_string())?;
    let prefix = unique("dlq");
    let topics = Topics::with_prefix(&prefix);
    create_topics(b, &topics, 3, 1).map_err(|e| format!("{e:#}"))?;
    produce_scenario(b, &topics, &base).map_err(|e| format!("{e:#}"))?;
    let good = base.events[0].clone();
    let at = good.arrives_at.timestamp_millis();
    let valid = good.event.to_single_object().map_err(|e| e.to_string())?;
    let student = good.event.student_id.clone();
    let mut unknown_enum = valid.clone();
    // The kind is the eighth field; rather than walk the datum, re-encode with
    // a kind index past the last symbol by patching the one byte that differs
    // between two otherwise equal events.
    {
        let mut other = good.event.clone();
        other.kind = rollcall_model::ActivityKind::OfflineWorkReturned;
        let o = other.to_single_object().map_err(|e| e.to_string())?;
        let pos = valid.iter().zip(&o).position(|(a, c)| a != c).ok_or("no differing byte")?;
        unknown_enum[pos] = 40 << 1; // zigzag varint of 40
    }
    let mut stranger = good.event.clone();
    stranger.event_id = "dlq-stranger".into();
    stranger.student_id = "nobody".into();
    let mut far = good.event.clone();
    far.event_id = "dlq-far".into();
    far.occurred_at = chrono::DateTime::parse_from_rfc3339("2031-01-01T00:00:00Z").map_err(|e| e.to_string())?.into();
    let roster_value = base.roster[0].to_single_object().map_err(|e| e.to_string())?;
    let cases: Vec<(&str, Option<String>, Vec<u8>)> = vec![
        ("NOT_AVRO", Some(student.clone()), b"{\"event_id\": \"json\"}".to_vec()),
        ("WRONG_SCHEMA", Some(student.clone()), roster_value),
        ("UNKNOWN_ENUM", Some(student.clone()), unknown_enum),
        ("MISSING_KEY", None, valid.clone()),
        ("KEY_MISMATCH", Some("someone-else".into()), valid.clone()),
        ("UNKNOWN_STUDENT", Some("nobody".into()), stranger.to_single_object().map_err(|e| e.to_string())?),
        ("TIMESTAMP_OUT_OF_RANGE", Some(student.clone()), far.to_single_object().map_err(|e| e.to_string())?),
    ];
    let p = raw_producer(b)?;
    for (_, key, value) in &cases {
        let mut r: BaseRecord<'_, str, [u8]> = BaseRecord::to(&topics.activity).payload(value.as_slice()).timestamp(at);
        if let Some(k) = key {
            r = r.key(k.as_str());
        }
        p.send(r).map_err(|(e, _)| e.to_string())?;
    }
    p.flush(Duration::from_secs(30)).map_err(|e| e.to_string())?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let status = Command::new(bin())
        .args(["run", "--brokers", b, "--clock", "replay", "--exit-when-idle", "--instance-id", "dlq"])
        .args(["--until", &base.now.to_rfc3339(), "--topic-prefix", &prefix, "--group", &format!("{prefix}g")])
        .args(["--metrics-addr", "127.0.0.1:0"])
        .arg("--state-dir")
        .arg(dir.path())
        .env("ROLLCALL_LOG", std::env::var("ROLLCALL_TEST_LOG").unwrap_or_else(|_| "error".into()))
        .status()
        .map_err(|e| e.to_string())?;
    ensure(status.success(), || format!("rollcall run exited with {status}"))?;
    let mut dead = Vec::new();
    read_topic(b, &topics.dlq, |v, _| {
        let decoded = DeadLetter::from_single_object(v);
        dead.push(decoded.map_err(|e| rollcall_kafka::KafkaError::Record { what: "decoding a dead letter".into(), source: e })?);
        Ok(())
    })
    .map_err(|e| format!("{e:#}"))?;
    ensure(dead.len() == cases.len(), || {
        let brief: Vec<String> =
            dead.iter().map(|d| format!("{} [{:?}]@{:?} {}: {}", d.error_kind, d.partition, d.offset, d.key.as_deref().unwrap_or("-"), d.message)).collect();
        format!("{} dead letters, expected {}:\n  {}", dead.len(), cases.len(), brief.join("\n  "))
    })?;
    for (kind, key, value) in &cases {
        let d = dead.iter().find(|d| d.error_kind == *kind).ok_or_else(|| format!("no {kind} dead letter in {dead:?}"))?;
        ensure(d.topic == topics.activity && d.partition.is_some() && d.offset.is_some(), || format!("{kind}: origin missing: {d:?}"))?;
        ensure(d.value == *value, || format!("{kind}: original bytes not kept"))?;
        ensure(d.key == *key, || format!("{kind}: key {:?}, sent {key:?}", d.key))?;
        ensure(!d.message.is_empty(), || format!("{kind}: no message"))?;
    }
    // The good records around the bad ones still decided the scenario.
    let out = read_outputs(b, &topics).map_err(|e| format!("{e:#}"))?;
    let mut s = base.clone();
    s.expect.dead_letters = Some(Vec::new());
    let diffs: Vec<_> = check(&s, &rollcall_scenario::RunOutput { dead_letters: Vec::new(), ..out }).into_iter().collect();
    ensure(diffs.is_empty(), || format!("good records not processed as expected: {diffs:?}"))
}


static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn spawn_processor(b: &str, prefix: &str, state: &Path, instance: &str, until: &str, exit_when_idle: bool) -> Result<Child, String> {
    let mut c = Command::new(bin());
    c.stderr(Stdio::piped());
    c.args(["run", "--brokers", b, "--clock", "replay", "--instance-id", instance, "--until", until])
        .args(["--topic-prefix", prefix, "--group", &format!("{prefix}g")])
        // Instances run side by side: each serves its metrics on a free port.
        .args(["--metrics-addr", "127.0.0.1:0"])
        .arg("--state-dir")
        .arg(state)
        .env("ROLLCALL_LOG", std::env::var("ROLLCALL_TEST_LOG").unwrap_or_else(|_| "error".into()))
        .stdout(Stdio::null());
    // Each run's log kept for a post-mortem, when asked for.
    if let Ok(dir) = std::env::var("ROLLCALL_TEST_LOG_DIR") {
        let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let file = std::fs::File::create(Path::new(&dir).join(format!("{prefix}{instance}-{n:03}.log"))).map_err(|e| e.to_string())?;
        c.stderr(file);
    }
    if exit_when_idle {
        c.arg("--exit-when-idle");
    }
    c.spawn().map_err(|e| e.to_string())
}

/// Every committed output record, as JSON text, sorted.
fn outputs(b: &str, topics: &Topics) -> Result<Vec<String>, String> {
    let out = read_outputs(b, topics).map_err(|e| format!("{e:#}"))?;
    let mut v: Vec<String> = out
        .determinations
        .iter()
        .map(|d| serde_json::to_string(d).unwrap_or_default())
        .chain(out.outreach.iter().map(|t| serde_json::to_string(t).unwrap_or_default()))
        .collect();
    v.sort();
    Ok(v)
}

fn compare(reference: &[String], other: &[String], what: &str) -> TestResult {
    if reference == other {
        return Ok(());
    }
    let ref_set: std::collections::BTreeSet<_> = reference.iter().collect();
    let other_set: std::collections::BTreeSet<_> = other.iter().collect();
    let lost: Vec<_> = ref_set.difference(&other_set).take(3).collect();
    let extra: Vec<_> = other_set.difference(&ref_set).take(3).collect();
    let dup = other.len() - other_set.len();
    Err(format!(
        "{what}: {} records vs {} uninterrupted; {dup} duplicated; lost e.g. {lost:?}; extra e.g. {extra:?}",
        other.len(),
        reference.len()
    ))
}

/// Runs the district to completion in one uninterrupted processor.
fn reference_run(b: &str, s: &Scenario, name: &str) -> Result<Vec<String>, String> {
    let prefix = unique(name);
    let topics = Topics::with_prefix(&prefix);
    create_topics(b, &topics, 6, 1).map_err(|e| format!("{e:#}"))?;
    produce_scenario(b, &topics, s).map_err(|e| format!("{e:#}"))?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let status = spawn_processor(b, &prefix, dir.path(), "ref", &s.now.to_rfc3339(), true)?.wait().map_err(|e| e.to_string())?;
    ensure(status.success(), || format!("reference run exited with {status}"))?;
    let out = outputs(b, &topics)?;
    eprintln!("  reference: {} events -> {} output records in {:.1} s", s.events.len(), out.len(), started.elapsed().as_secs_f64());
    Ok(out)
}

/// SIGKILL at 20 seeded random points; the committed outputs equal an uninterrupted run's.
fn kill_nine_loses_and_duplicates_nothing(b: &str) -> TestResult {
    let s = district(2000, 5, 11);
    ensure(s.events.len() >= 200_000, || format!("district has only {} events", s.events.len()))?;
    let reference = reference_run(b, &s, "kill-ref")?;
    let prefix = unique("kill");
    let topics = Topics::with_prefix(&prefix);
    create_topics(b, &topics, 6, 1).map_err(|e| format!("{e:#}"))?;
    produce_scenario(b, &topics, &s).map_err(|e| format!("{e:#}"))?;
    let state = tempfile::tempdir().map_err(|e| e.to_string())?;
    let until = s.now.to_rfc3339();
    // Seeded, so a failure can be replayed: kill points in milliseconds.
    let mut x: u64 = 0x5eed_1234_abcd_0001;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..20 {
        // Startup (group join, transactions, restore) takes a second or two.
        let delay = 1_500 + next() % 4_500;
        let mut child = spawn_processor(b, &prefix, state.path(), "killed", &until, true)?;
        std::thread::sleep(Duration::from_millis(delay));
        let finished = child.try_wait().map_err(|e| e.to_string())?.is_some();
        let _ = child.kill();
        let _ = child.wait();
        eprintln!("  kill {:>2} after {delay} ms{}", i + 1, if finished { " (had already finished)" } else { "" });
    }
    let last = spawn_processor(b, &prefix, state.path(), "killed", &until, true)?;
    let out = last.wait_with_output().map_err(|e| e.to_string())?;
    ensure(out.status.success(), || format!("final run exited with {}", out.status))?;
    // The killed runs must have committed work of their own, or nothing was tested.
    let mut said = String::from_utf8_lossy(&out.stderr).into_owned();
    if let Ok(dir) = std::env::var("ROLLCALL_TEST_LOG_DIR") {
        let n = RUNS.load(std::sync::atomic::Ordering::SeqCst) - 1;
        said = std::fs::read_to_string(Path::new(&dir).join(format!("{prefix}killed-{n:03}.log"))).unwrap_or_default();
    }
    let processed: usize = said
        .lines()
        .find_map(|l| l.strip_prefix("processed ").and_then(|r| r.split_whitespace().next()).and_then(|n| n.parse().ok()))
        .ok_or_else(|| format!("final run did not report its work: {said}"))?;
    eprintln!("  the final run processed {processed} of {} input records", s.events.len() + s.roster.len() + s.absence_reports.len());
    let got = outputs(b, &topics)?;
    compare(&reference, &got, "after 20 kills")?;
    ensure(processed < s.events.len() * 3 / 4, || format!("the killed runs committed too little: the final run processed {processed} records"))
}

/// Two instances over 6 partitions; one is killed; the survivor finishes its partitions.
fn survivor_takes_over_partitions(b: &str) -> TestResult {
    let s = district(600, 5, 5);
    let reference = reference_run(b, &s, "rebal-ref")?;
    let prefix = unique("rebal");
    let topics = Topics::with_prefix(&prefix);
    create_topics(b, &topics, 6, 1).map_err(|e| format!("{e:#}"))?;
    produce_scenario(b, &topics, &s).map_err(|e| format!("{e:#}"))?;
    let (da, db) = (tempfile::tempdir().map_err(|e| e.to_string())?, tempfile::tempdir().map_err(|e| e.to_string())?);
    let until = s.now.to_rfc3339();
    let mut a = spawn_processor(b, &prefix, da.path(), "a", &until, false)?;
    let mut survivor = spawn_processor(b, &prefix, db.path(), "b", &until, false)?;
    std::thread::sleep(Duration::from_millis(2_500));
    let _ = a.kill();
    let _ = a.wait();
    eprintln!("  instance a killed; waiting for b to finish every partition");
    let started = Instant::now();
    let result = loop {
        let out = outputs(b, &topics)?;
        if out.len() >= reference.len() || started.elapsed() > Duration::from_secs(180) {
            break compare(&reference, &out, "survivor");
        }
        std::thread::sleep(Duration::from_secs(3));
    };
    let _ = survivor.kill();
    let _ = survivor.wait();
    result
}

/// With the wall clock, a day with no events at all still closes: the
/// processor's own clock finalizes yesterday as absent.
fn quiet_night_closes_on_the_wall_clock(b: &str) -> TestResult {
    use rollcall_model::{CalendarDay, DayType, GradeLevel, SchoolCalendar, StudentRecord};
    let yesterday = chrono::Utc::now().date_naive() - chrono::Duration::days(1);
    let s = Scenario {
        file: "<wall>".into(),
        name: "wall".into(),
        policy: "mmsd".into(),
        custom_policy: None,
        calendars: vec![SchoolCalendar {
            school_id: "w-school".into(),
            timezone: "Etc/UTC".into(),
            policy: "mmsd".into(),
            days: vec![CalendarDay {
                date: yesterday,
                instructional: true,
                day_type: DayType::Full,
                start: "08:00".parse().map_err(|e: String| e)?,
                end: "15:00".parse().map_err(|e: String| e)?,
            }],
        }],
        roster: vec![StudentRecord::new("quiet-1", "w-school", GradeLevel::G3)],
        absence_reports: vec![],
        events: vec![],
        now: chrono::Utc::now(),
        expect: Expect::default(),
    };
    let prefix = unique("wall");
    let topics = Topics::with_prefix(&prefix);
    create_topics(b, &topics, 2, 1).map_err(|e| format!("{e:#}"))?;
    produce_scenario(b, &topics, &s).map_err(|e| format!("{e:#}"))?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut child = Command::new(bin())
        .args(["run", "--brokers", b, "--clock", "wall", "--instance-id", "wall", "--topic-prefix", &prefix])
        .args(["--group", &format!("{prefix}g"), "--metrics-addr", "127.0.0.1:0"])
        .arg("--state-dir")
        .arg(dir.path())
        .env("ROLLCALL_LOG", std::env::var("ROLLCALL_TEST_LOG").unwrap_or_else(|_| "error".into()))
        .spawn()
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let result = loop {
        let out = read_outputs(b, &topics).map_err(|e| format!("{e:#}"))?;
        if let Some(d) = out.determinations.iter().find(|d| d.student_id == "quiet-1") {
            break ensure(d.code == "AU" && d.date == yesterday && d.finality == rollcall_model::Finality::Final, || {
                format!("expected a FINAL AU for {yesterday}, got {d:?}")
            });
        }
        if started.elapsed() > Duration::from_secs(60) {
            break Err("no determination within 60 s of wall-clock time".into());
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// The broker stops and starts again mid-run; the processor waits,
/// reconnects and its outputs equal an uninterrupted run's.
fn broker_restart_loses_nothing(b: &str) -> TestResult {
    let s = district(600, 5, 3);
    let reference = reference_run(b, &s, "restart-ref")?;
    // A broker of this test's own, to stop and start.
    let run_dir = std::env::temp_dir().join(format!("rollcall-kafka-restart-{}", std::process::id()));
    let kafka = |cmd: &str| -> Result<String, String> {
        let out = Command::new("bash")
            .arg(repo().join("scripts/kafka.sh"))
            .arg(cmd)
            .env("ROLLCALL_KAFKA_RUN", &run_dir)
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| e.to_string())?;
        ensure(out.status.success(), || format!("kafka.sh {cmd} failed"))?;
        Ok(String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_string())
    };
    let own = kafka("start")?;
    let result = (|| -> TestResult {
        let prefix = unique("restart");
        let topics = Topics::with_prefix(&prefix);
        create_topics(&own, &topics, 6, 1).map_err(|e| format!("{e:#}"))?;
        produce_scenario(&own, &topics, &s).map_err(|e| format!("{e:#}"))?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut child = spawn_processor(&own, &prefix, dir.path(), "r", &s.now.to_rfc3339(), true)?;
        std::thread::sleep(Duration::from_millis(2_500));
        kafka("pause")?;
        eprintln!("  broker stopped");
        std::thread::sleep(Duration::from_secs(5));
        let again = kafka("resume")?;
        eprintln!("  broker started again at {again}");
        ensure(again == own, || format!("the broker came back at {again}, not {own}"))?;
        let started = Instant::now();
        let status = loop {
            if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
                break st;
            }
            if started.elapsed() > Duration::from_secs(240) {
                let _ = child.kill();
                return Err("the processor did not finish within 240 s of the restart".into());
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        let mut said = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut said);
        }
        ensure(status.success(), || format!("the processor exited with {status} across the restart: {said}"))?;
        let out = outputs(&own, &topics)?;
        compare(&reference, &out, "across a broker restart")
    })();
    let _ = kafka("stop");
    result
}

fn main() -> ExitCode {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let Some(broker) = Broker::get_or_report() else { return ExitCode::FAILURE };
    let tests: Vec<(&str, fn(&str) -> TestResult)> = vec![
        ("scenarios_pass_through_kafka", scenarios_pass_through_kafka),
        ("bad_records_are_dead_lettered", bad_records_are_dead_lettered),
        ("survivor_takes_over_partitions", survivor_takes_over_partitions),
        ("quiet_night_closes_on_the_wall_clock", quiet_night_closes_on_the_wall_clock),
        ("kill_nine_loses_and_duplicates_nothing", kill_nine_loses_and_duplicates_nothing),
        ("broker_restart_loses_nothing", broker_restart_loses_nothing),
    ];
    // A hang is a failure, not a stalled suite.
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(1_800));
        println!("the Kafka tests did not finish within 30 minutes");
        println!("0 passed, 1 failed");
        std::process::exit(1);
    });
    let (mut passed, mut failed) = (0, 0);
    for (name, f) in tests {
        if filter.as_deref().map(|p| !name.contains(p)).unwrap_or(false) {
            continue;
        }
        if run_one(name, || f(&broker.address)) {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    drop(broker);
    summary(passed, failed)
}
