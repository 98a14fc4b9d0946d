//! Student privacy against a real broker: `rollcall forget` erases a
//! student from the processor's state (RocksDB and its changelog) and from
//! the compacted topics, and leaves every other student as they were.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use rollcall_engine::{KvStore, Table};
use rollcall_kafka::replay::{produce_scenario, read_outputs};
use rollcall_kafka::topics::create_topics;
use rollcall_kafka::wire::Topics;
use rollcall_model::avro::AvroRecord;
use rollcall_model::{IdentityRecord, IdentityType};
use rollcall_scenario::Scenario;

use crate::support::harness::{Area, Need};
use crate::support::*;

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Every record of `topic` (keys and values, tombstones included).
fn records(b: &str, topic: &str) -> Result<Vec<(Option<Vec<u8>>, Option<Vec<u8>>)>, String> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b)
        .set("group.id", unique("privacy-reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .map_err(|e| e.to_string())?;
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(30)).map_err(|e| e.to_string())?;
    let mut tpl = TopicPartitionList::new();
    for t in md.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning).map_err(|e| e.to_string())?;
        }
    }
    let n = tpl.count();
    c.assign(&tpl).map_err(|e| e.to_string())?;
    let (mut out, mut ended) = (Vec::new(), std::collections::HashSet::new());
    let started = Instant::now();
    while ended.len() < n {
        if started.elapsed() > Duration::from_secs(60) {
            return Err(format!("{topic}: not read to its end in 60 s"));
        }
        match c.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                ended.insert(p);
            }
            Some(Err(e)) => return Err(format!("{topic}: {e}")),
            Some(Ok(m)) => {
                ended.remove(&m.partition());
                out.push((m.key().map(<[u8]>::to_vec), m.payload().map(<[u8]>::to_vec)));
            }
        }
    }
    Ok(out)
}

/// Records of the compacted topics that mention `who`, by topic.
fn mentions(b: &str, topics: &[&str], who: &str) -> Result<BTreeMap<String, usize>, String> {
    let mut found = BTreeMap::new();
    for t in topics {
        let n = records(b, t)?
            .iter()
            .filter(|(k, v)| {
                k.as_deref().is_some_and(|k| contains(k, who.as_bytes()))
                    || v.as_deref().is_some_and(|v| contains(v, who.as_bytes()))
            })
            .count();
        if n > 0 {
            found.insert(t.to_string(), n);
        }
    }
    Ok(found)
}

/// Entries of the processor's state (every partition's RocksDB, every
/// table) that mention `who`.
fn in_state(state: &Path, who: &str) -> Result<usize, String> {
    let mut n = 0;
    let dirs = std::fs::read_dir(state).map_err(|e| format!("{}: {e}", state.display()))?;
    for d in dirs {
        let d = d.map_err(|e| e.to_string())?.path();
        if !d.is_dir() {
            continue;
        }
        let store = rollcall_store::RocksStore::open(&d, &Default::default()).map_err(|e| format!("{}: {e}", d.display()))?;
        for t in Table::ALL {
            for (k, v) in store.range(t, &[], &[0xff; 64], usize::MAX).map_err(|e| e.to_string())? {
                if contains(&k, who.as_bytes()) || contains(&v, who.as_bytes()) {
                    n += 1;
                }
            }
        }
    }
    Ok(n)
}

fn run_processor(b: &str, prefix: &str, group: &str, state: &Path, until: &str) -> TestResult {
    let status = Command::new(bin())
        .args(["run", "--brokers", b, "--clock", "replay", "--exit-when-idle", "--instance-id", "privacy"])
        .args(["--until", until, "--topic-prefix", prefix, "--group", group, "--metrics-addr", "off"])
        .arg("--state-dir")
        .arg(state)
        .env("ROLLCALL_LOG", "error")
        .status()
        .map_err(|e| e.to_string())?;
    ensure(status.success(), || format!("rollcall run exited with {status}"))
}

/// A student erased by `rollcall forget` leaves nothing of theirs in the
/// processor's state or, once compacted, on the roster, determinations,
/// identities and changelog topics; the other students' determinations are
/// the same as before.
fn forget_leaves_nothing_of_the_student(b: &str) -> TestResult {
    let mut base =
        Scenario::load(&repo().join("tests/scenarios/mmsd-01-k5-live-join-and-submission.json")).map_err(|e| e.to_string())?;
    // An id that no other byte of the topics or the state can contain by chance.
    let gone = "student-to-forget-7f3a".to_string();
    let first = base.roster.first().ok_or("the scenario has no students")?.student_id.clone();
    ensure(base.roster.len() >= 2, || "the scenario needs two students".into())?;
    for r in base.roster.iter_mut().filter(|r| r.student_id == first) {
        r.student_id = gone.clone();
    }
    for a in base.events.iter_mut().filter(|a| a.event.student_id == first) {
        a.event.student_id = gone.clone();
    }
    for r in base.absence_reports.iter_mut().filter(|r| r.student_id == first) {
        r.student_id = gone.clone();
    }
    let prefix = unique("forget");
    let group = format!("{prefix}g");
    let topics = Topics::of_group(&prefix, &group);
    // The compacted topics clean often, so that the test sees compaction.
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", b).create().map_err(|e| e.to_string())?;
    let compacted = [&topics.roster, &topics.determinations, &topics.identities, &topics.changelog];
    let partitions = |t: &String| if *t == topics.identities { 1 } else { 3 };
    let new: Vec<NewTopic> = compacted
        .iter()
        .map(|t| {
            NewTopic::new(t, partitions(t), TopicReplication::Fixed(1))
                .set("cleanup.policy", "compact")
                .set("segment.ms", "1000")
                .set("min.cleanable.dirty.ratio", "0.01")
                .set("delete.retention.ms", "0")
                .set("min.compaction.lag.ms", "0")
        })
        .collect();
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    for r in rt.block_on(admin.create_topics(&new, &AdminOptions::new())).map_err(|e| e.to_string())? {
        r.map_err(|(t, e)| format!("creating {t}: {e}"))?;
    }
    create_topics(b, &topics, 3, 1).map_err(|e| format!("{e:#}"))?;
    produce_scenario(b, &topics, &base).map_err(|e| format!("{e:#}"))?;
    let identity = IdentityRecord {
        source: "canvas".into(),
        kind: IdentityType::Student,
        external_id: "canvas-user-4711".into(),
        id: gone.clone(),
        school_id: Some(base.roster[0].school_id.clone()),
    };
    let p: BaseProducer = ClientConfig::new().set("bootstrap.servers", b).create().map_err(|e| e.to_string())?;
    let value = identity.to_single_object().map_err(|e| e.to_string())?;
    p.send(BaseRecord::to(&topics.identities).key(&identity.key()).payload(&value)).map_err(|(e, _)| e.to_string())?;
    p.flush(Duration::from_secs(30)).map_err(|e| e.to_string())?;

    let state = tempfile::tempdir().map_err(|e| e.to_string())?;
    let until = base.now.to_rfc3339();
    run_processor(b, &prefix, &group, state.path(), &until)?;
    let before = read_outputs(b, &topics).map_err(|e| format!("{e:#}"))?;
    let had = before.determinations.iter().filter(|d| d.student_id == gone).count();
    ensure(had > 0, || format!("{gone} has no determinations to erase"))?;
    ensure(in_state(state.path(), &gone)? > 0, || "the student has no state to erase".into())?;
    let all = [topics.roster.as_str(), &topics.determinations, &topics.identities, &topics.changelog];
    ensure(mentions(b, &all, &gone)?.len() == 4, || "the student is not on every compacted topic".into())?;

    // The request waits for the group; the processor runs and consumes it.
    let forget = Command::new(bin())
        .args(["forget", &gone, "--brokers", b, "--topic-prefix", &prefix, "--group", &group, "--wait-seconds", "120"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_secs(2));
    run_processor(b, &prefix, &group, state.path(), &until)?;
    let out = forget.wait_with_output().map_err(|e| e.to_string())?;
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    ensure(out.status.success(), || format!("rollcall forget: {}\n{said}", String::from_utf8_lossy(&out.stderr)))?;
    ensure(said.contains("erased") && said.contains("1 identity mapping(s)"), || format!("rollcall forget said: {said}"))?;

    // Nothing of the student in any partition's state, at once.
    let left = in_state(state.path(), &gone)?;
    ensure(left == 0, || format!("{left} state entries still mention the student"))?;
    // The others' latest determinations are untouched.
    let after = read_outputs(b, &topics).map_err(|e| format!("{e:#}"))?;
    let latest = |o: &rollcall_scenario::RunOutput| -> BTreeMap<String, (i64, String)> {
        let mut m = BTreeMap::new();
        for d in o.determinations.iter().filter(|d| d.student_id != gone) {
            let e = m.entry(d.key()).or_insert((d.version as i64, d.code.clone()));
            if d.version as i64 >= e.0 {
                *e = (d.version as i64, d.code.clone());
            }
        }
        m
    };
    ensure(latest(&after) == latest(&before), || "another student's determinations changed".into())?;

    // Compaction: filler records roll the segments until the cleaner has
    // removed the student's records and then the tombstones.
    let started = Instant::now();
    let mut round = 0;
    loop {
        let found = mentions(b, &all, &gone)?;
        if found.is_empty() {
            eprintln!("  compacted away after {:.0} s", started.elapsed().as_secs_f64());
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(240) {
            return Err(format!("after 240 s the compacted topics still mention the student: {found:?}"));
        }
        round += 1;
        for t in &all {
            for part in 0..partitions(&t.to_string()) {
                let key = format!("filler-{round}");
                p.send(BaseRecord::to(t).partition(part).key(&key).payload(b"x".as_slice())).map_err(|(e, _)| e.to_string())?;
            }
        }
        p.flush(Duration::from_secs(30)).map_err(|e| e.to_string())?;
        std::thread::sleep(Duration::from_secs(3));
    }
}

pub fn area() -> Area {
    let tests = service_tests![[Need::Broker], |e| (e.broker());
        forget_leaves_nothing_of_the_student,
        dead_letter_logs_carry_no_payload,
    ];
    Area::new("privacy", Duration::from_secs(600), tests)
}

/// The log about dead letters never carries what the records carried: the
/// dead-letter topic keeps the bytes, the log (at its default level and at
/// debug) only counts, places and explains them.
fn dead_letter_logs_carry_no_payload(b: &str) -> TestResult {
    let base =
        Scenario::load(&repo().join("tests/scenarios/mmsd-01-k5-live-join-and-submission.json")).map_err(|e| e.to_string())?;
    let prefix = unique("dlqlog");
    let group = format!("{prefix}g");
    let topics = Topics::of_group(&prefix, &group);
    create_topics(b, &topics, 3, 1).map_err(|e| format!("{e:#}"))?;
    produce_scenario(b, &topics, &base).map_err(|e| format!("{e:#}"))?;
    let good = &base.events[0];
    let marked = |n: usize| {
        let mut e = good.event.clone();
        e.event_id = format!("dlq-log-{n}");
        e.attributes.insert("note".into(), format!("PAYLOAD-MARKER-{n}"));
        e
    };
    let p = rollcall_kafka::replay::producer(b).map_err(|e| format!("{e:#}"))?;
    let send = |key: Option<&str>, value: &[u8]| -> TestResult {
        let mut r = BaseRecord::<str, [u8]>::to(&topics.activity).payload(value).timestamp(good.arrives_at.timestamp_millis());
        if let Some(k) = key {
            r = r.key(k);
        }
        p.send(r).map_err(|(e, _)| e.to_string())
    };
    let student = good.event.student_id.as_str();
    // Not Avro at all; no key; a key that is not the event's student; the
    // wrong school; a fingerprint of no known schema.
    send(Some(student), b"{\"note\": \"PAYLOAD-MARKER-0\"}")?;
    send(None, &marked(1).to_single_object().map_err(|e| e.to_string())?)?;
    send(Some("someone-else"), &marked(2).to_single_object().map_err(|e| e.to_string())?)?;
    let mut wrong_school = marked(3);
    wrong_school.school_id = "another-school".into();
    send(Some(student), &wrong_school.to_single_object().map_err(|e| e.to_string())?)?;
    let mut unknown = marked(4).to_single_object().map_err(|e| e.to_string())?;
    unknown[5] ^= 0x11;
    send(Some(student), &unknown)?;
    p.flush(Duration::from_secs(30)).map_err(|e| e.to_string())?;
    let mut printed = String::new();
    for level in ["info", "debug"] {
        let state = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new(bin())
            .args(["run", "--brokers", b, "--clock", "replay", "--exit-when-idle", "--instance-id", level])
            .args(["--until", &base.now.to_rfc3339(), "--topic-prefix", &prefix, "--group", &format!("{group}-{level}")])
            .args(["--metrics-addr", "off"])
            .arg("--state-dir")
            .arg(state.path())
            .env("ROLLCALL_LOG", level)
            .output()
            .map_err(|e| e.to_string())?;
        ensure(out.status.success(), || format!("rollcall run ({level}): {}", String::from_utf8_lossy(&out.stderr)))?;
        printed += &String::from_utf8_lossy(&out.stdout);
        printed += &String::from_utf8_lossy(&out.stderr);
    }
    ensure(printed.contains("NOT_AVRO") && printed.contains("WRONG_SCHEMA"), || {
        format!("the dead letters were not logged at all:\n{printed}")
    })?;
    let leaked: Vec<&str> = printed.lines().filter(|l| l.contains("PAYLOAD-MARKER")).collect();
    ensure(leaked.is_empty(), || format!("log lines with payload:\n{}", leaked.join("\n")))
}
