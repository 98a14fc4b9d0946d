//! Tests against a real Apache Kafka broker (4.x, KRaft): scenarios through
//! topics and the processor, dead letters, kill -9 recovery, and a partition
//! moving to a surviving instance.
//!
//! Uses the cluster in ROLLCALL_TEST_BROKERS, or starts one with
//! scripts/kafka.sh and stops it at the end (tests/support/harness.rs): one
//! broker serves every test.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rollcall_kafka::replay::{produce_scenario, read_outputs, read_topic, run_scenario};
use rollcall_kafka::topics::create_topics;
use rollcall_kafka::wire::Topics;
use rollcall_model::avro::AvroRecord;
use rollcall_model::{DeadLetter, DeadLetterKind};
use rollcall_scenario::{check, scenario_files, Expect, Scenario};

use crate::support::harness::{Area, Need};
use crate::support::*;

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
        let (out, _) =
            run_scenario(b, &s, &unique(&format!("s{i}")), dir.path()).map_err(|e| format!("{}: {e:#}", f.display()))?;
        for d in check(&s, &out) {
            failures.push(format!("{}: {}: expected {}, got {}", f.display(), d.key, d.expected, d.actual));
        }
    }
    eprintln!("  {} scenarios through Kafka", files.len());
    ensure(failures.is_empty(), || failures.join("\n"))
}

/// A producer that tells where each record went: the delivery reports, by
/// the index given at send.
struct Deliveries(std::sync::Mutex<std::collections::HashMap<usize, (i32, i64)>>);

impl rdkafka::ClientContext for Deliveries {}

impl rdkafka::producer::ProducerContext for Deliveries {
    type DeliveryOpaque = Box<usize>;
    fn delivery(&self, r: &rdkafka::producer::DeliveryResult<'_>, i: Box<usize>) {
        use rdkafka::message::Message;
        match (r, self.0.lock()) {
            (Ok(m), Ok(mut d)) => {
                d.insert(*i, (m.partition(), m.offset()));
            }
            (Err((e, _)), _) => eprintln!("  record {i} not delivered: {e}"),
            _ => {}
        }
    }
}

/// A record for an input topic, and the dead letter it must give.
struct Bad {
    topic: String,
    key: Option<String>,
    /// `None`: a record with no value (a tombstone).
    value: Option<Vec<u8>>,
    ts: chrono::DateTime<chrono::Utc>,
    kind: DeadLetterKind,
    /// Refused after waiting: its dead letter has no partition or offset.
    waits: bool,
}

impl Bad {
    fn new(
        topic: &str,
        key: Option<&str>,
        value: Option<Vec<u8>>,
        ts: chrono::DateTime<chrono::Utc>,
        kind: DeadLetterKind,
    ) -> Bad {
        Bad { topic: topic.to_string(), key: key.map(str::to_string), value, ts, kind, waits: false }
    }
}

/// Sends the records (good ones too: `kind` is then ignored by the caller)
/// and returns where each one went.
fn send_all(b: &str, records: &[Bad]) -> Result<Vec<(i32, i64)>, String> {
    let p: BaseProducer<Deliveries> = ClientConfig::new()
        .set("bootstrap.servers", b)
        .set("partitioner", "murmur2_random")
        .create_with_context(Deliveries(Default::default()))
        .map_err(|e| e.to_string())?;
    for (i, r) in records.iter().enumerate() {
        let mut rec: BaseRecord<'_, str, [u8], Box<usize>> =
            BaseRecord::with_opaque_to(&r.topic, Box::new(i)).timestamp(r.ts.timestamp_millis());
        if let Some(v) = &r.value {
            rec = rec.payload(v.as_slice());
        }
        if let Some(k) = &r.key {
            rec = rec.key(k.as_str());
        }
        p.send(rec).map_err(|(e, _)| e.to_string())?;
    }
    p.flush(Duration::from_secs(30)).map_err(|e| e.to_string())?;
    let d = p.context().0.lock().map_err(|e| e.to_string())?;
    (0..records.len()).map(|i| d.get(&i).copied().ok_or_else(|| format!("record {i} was not delivered"))).collect()
}

fn encode<T: AvroRecord>(r: &T) -> Result<Vec<u8>, String> {
    r.to_single_object().map_err(|e| e.to_string())
}

fn truncated(mut v: Vec<u8>) -> Vec<u8> {
    v.truncate(v.len() - 3);
    v
}

fn instant(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    Ok(chrono::DateTime::parse_from_rfc3339(s).map_err(|e| e.to_string())?.into())
}

fn dead_letters(b: &str, topics: &Topics) -> Result<Vec<DeadLetter>, String> {
    let mut dead = Vec::new();
    read_topic(b, &topics.dlq, |v, _| {
        let decoded = DeadLetter::from_single_object(v);
        dead.push(decoded.map_err(|e| rollcall_kafka::KafkaError::Record { what: "decoding a dead letter".into(), source: e })?);
        Ok(())
    })
    .map_err(|e| format!("{e:#}"))?;
    Ok(dead)
}

fn brief(dead: &[DeadLetter]) -> String {
    let lines: Vec<String> = dead
        .iter()
        .map(|d| {
            format!(
                "{} {} [{:?}]@{:?} {}: {}",
                d.topic,
                d.error_kind,
                d.partition,
                d.offset,
                d.key.as_deref().unwrap_or("-"),
                d.message
            )
        })
        .collect();
    lines.join("\n  ")
}

/// One `rollcall run` with the replay clock to `until`, until idle.
fn run_replay(b: &str, prefix: &str, state: &Path, until: &str) -> TestResult {
    let status = Command::new(bin())
        .args(["run", "--brokers", b, "--clock", "replay", "--exit-when-idle", "--instance-id", "dlq"])
        .args(["--until", until, "--topic-prefix", prefix, "--group", &format!("{prefix}g")])
        .args(["--metrics-addr", "127.0.0.1:0"])
        .arg("--state-dir")
        .arg(state)
        .env("ROLLCALL_LOG", std::env::var("ROLLCALL_TEST_LOG").unwrap_or_else(|_| "error".into()))
        .status()
        .map_err(|e| e.to_string())?;
    ensure(status.success(), || format!("rollcall run exited with {status}"))
}

/// Every dead-letter kind, on every input topic it can come from, through
/// the processor: each dead letter names the record's topic, partition,
/// offset (none for an event refused after waiting) and key, keeps its
/// bytes, and has its kind and a message; each bad record gives exactly
/// one, also after a second run (calendars are read again by every run);
/// the good records around them are processed.
fn bad_records_are_dead_lettered(b: &str) -> TestResult {
    use rollcall_model::{AbsenceReason, AbsenceReport, ActivityKind, Reporter};
    use DeadLetterKind::*;
    let base =
        Scenario::load(&repo().join("tests/scenarios/mmsd-01-k5-live-join-and-submission.json")).map_err(|e| e.to_string())?;
    let prefix = unique("dlq");
    let topics = Topics::with_prefix(&prefix);
    create_topics(b, &topics, 3, 1).map_err(|e| format!("{e:#}"))?;
    produce_scenario(b, &topics, &base).map_err(|e| format!("{e:#}"))?;
    let good = base.events[0].clone();
    let at = good.arrives_at;
    let student = good.event.student_id.clone();
    let event = |id: &str, student: &str| {
        let mut e = good.event.clone();
        e.event_id = id.into();
        e.student_id = student.into();
        e
    };
    let valid = encode(&event("dlq-valid", &student))?;
    let mut unknown_enum = valid.clone();
    // Re-encode with a kind index past the last symbol by patching the one
    // byte that differs between two otherwise equal events.
    {
        let mut other = event("dlq-valid", &student);
        other.kind = ActivityKind::OfflineWorkReturned;
        let o = encode(&other)?;
        let pos = valid.iter().zip(&o).position(|(a, c)| a != c).ok_or("no differing byte")?;
        unknown_enum[pos] = 40 << 1; // zigzag varint of 40
    }
    let roster = base.roster.iter().find(|r| r.student_id == student).ok_or("no roster record")?.clone();
    let calendar = base.calendars[0].clone();
    let report = |id: &str, student: &str, date: &str, at: chrono::DateTime<chrono::Utc>| -> Result<AbsenceReport, String> {
        Ok(AbsenceReport {
            report_id: id.into(),
            student_id: student.into(),
            date: date.parse().map_err(|e: chrono::ParseError| e.to_string())?,
            reported_at: at,
            reason: AbsenceReason::Illness,
            reporter: Reporter::Guardian,
        })
    };
    // 46 days after the scenario's first school day: past mmsd's correction horizon.
    let late = instant("2020-11-21T18:00:00Z")?;
    let until = "2020-11-22T00:00:00Z";
    let mut cases = Vec::new();
    // The wire checks, on each of the four inputs: (topic, a valid value, its key).
    let own = |t: &str, v: Vec<u8>, k: &str| (t.to_string(), v, k.to_string());
    let valid_report = encode(&report("dlq-valid-report", &student, "2020-10-05", at)?)?;
    let inputs = [
        own(&topics.activity, valid.clone(), &student),
        own(&topics.roster, encode(&roster)?, &student),
        own(&topics.reports, valid_report.clone(), &student),
        own(&topics.calendar, encode(&calendar)?, &calendar.school_id),
    ];
    for (i, (topic, v, key)) in inputs.iter().enumerate() {
        // Another input's record: a schema the topic does not carry.
        let (_, other, _) = &inputs[(i + 1) % inputs.len()];
        let not_avro = format!("{{\"json\": {i}}}").into_bytes();
        cases.push(Bad::new(topic, Some(key), Some(not_avro), at, NotAvro));
        cases.push(Bad::new(topic, Some(key), Some(other.clone()), at, WrongSchema));
        cases.push(Bad::new(topic, Some(key), Some(truncated(v.clone())), at, SchemaInvalid));
        // The compacted topics (roster, calendars) refuse a record with no
        // key at all: there an empty key is the missing one.
        let compacted = *topic == topics.roster || *topic == topics.calendar;
        cases.push(Bad::new(topic, compacted.then_some(""), Some(v.clone()), at, MissingKey));
        cases.push(Bad::new(topic, Some("someone-else"), Some(v.clone()), at, KeyMismatch));
        cases.push(Bad::new(topic, Some(key), None, at, MissingValue));
    }
    cases.push(Bad::new(&topics.activity, Some(&student), Some(unknown_enum), at, UnknownEnum));
    // The engine's refusals. An activity event:
    cases.push(Bad::new(&topics.activity, Some(&student), Some(encode(&event("", &student))?), at, InvalidRecord));
    let mut elsewhere = event("dlq-elsewhere", &student);
    elsewhere.school_id = "another-school".into();
    cases.push(Bad::new(&topics.activity, Some(&student), Some(encode(&elsewhere)?), at, SchoolMismatch));
    let mut far = event("dlq-far", &student);
    far.occurred_at = instant("2031-01-01T00:00:00Z")?;
    cases.push(Bad::new(&topics.activity, Some(&student), Some(encode(&far)?), at, TimestampOutOfRange));
    cases.push(Bad::new(&topics.activity, Some(&student), Some(encode(&event("dlq-late", &student))?), late, TooLate));
    // Waits three days for a roster record that never comes.
    let mut stranger =
        Bad::new(&topics.activity, Some("nobody"), Some(encode(&event("dlq-stranger", "nobody"))?), at, UnknownStudent);
    stranger.waits = true;
    cases.push(stranger);
    // Its student is on the roster (a good record, below), at a school with no calendar: waits a day.
    let mut orphan_event = event("dlq-orphan", "orphan");
    orphan_event.school_id = "no-calendar".into();
    let mut orphan = Bad::new(&topics.activity, Some("orphan"), Some(encode(&orphan_event)?), at, UnknownSchool);
    orphan.waits = true;
    cases.push(orphan);
    // A roster record.
    let blank = rollcall_model::StudentRecord::new("blank-school", "", roster.grade_level);
    cases.push(Bad::new(&topics.roster, Some("blank-school"), Some(encode(&blank)?), at, InvalidRecord));
    // An absence report (reports do not wait).
    let r = |id: &str, who: &str, date: &str, when| report(id, who, date, when).and_then(|r| encode(&r));
    cases.push(Bad::new(
        &topics.reports,
        Some("nobody"),
        Some(r("dlq-r-nobody", "nobody", "2020-10-05", at)?),
        at,
        UnknownStudent,
    ));
    cases.push(Bad::new(
        &topics.reports,
        Some("orphan"),
        Some(r("dlq-r-orphan", "orphan", "2020-10-05", at)?),
        at,
        UnknownSchool,
    ));
    cases.push(Bad::new(&topics.reports, Some(&student), Some(r("", &student, "2020-10-05", at)?), at, InvalidRecord));
    cases.push(Bad::new(&topics.reports, Some(&student), Some(r("dlq-r-late", &student, "2020-10-05", late)?), late, TooLate));
    // A calendar.
    let mut unknown_policy = calendar.clone();
    unknown_policy.school_id = "policy-less".into();
    unknown_policy.policy = "no-such-policy".into();
    cases.push(Bad::new(&topics.calendar, Some("policy-less"), Some(encode(&unknown_policy)?), at, UnknownPolicy));
    let mut mars = calendar.clone();
    mars.school_id = "on-mars".into();
    mars.timezone = "Mars/Olympus_Mons".into();
    cases.push(Bad::new(&topics.calendar, Some("on-mars"), Some(encode(&mars)?), at, InvalidRecord));
    let covered: std::collections::BTreeSet<DeadLetterKind> = cases.iter().map(|c| c.kind).collect();
    // UNKNOWN_IDENTITY is the gateway's refusal, not the processor's: its
    // case is in tests/gateway.rs.
    let missing: Vec<_> =
        DeadLetterKind::ALL.iter().filter(|k| **k != DeadLetterKind::UnknownIdentity && !covered.contains(k)).collect();
    ensure(missing.is_empty(), || format!("kinds with no case: {missing:?}"))?;
    for t in [&topics.activity, &topics.roster, &topics.reports, &topics.calendar] {
        ensure(cases.iter().filter(|c| c.topic == *t).count() >= 6, || format!("too few bad records on {t}"))?;
    }
    // The good record the UNKNOWN_SCHOOL cases need: `orphan` at a school with no calendar.
    let orphan_roster = rollcall_model::StudentRecord::new("orphan", "no-calendar", roster.grade_level);
    let mut records = vec![Bad::new(
        &topics.roster,
        Some("orphan"),
        Some(encode(&orphan_roster)?),
        at - chrono::Duration::seconds(1),
        MissingValue,
    )];
    records.extend(cases);
    let sent = send_all(b, &records)?;
    let cases = &records[1..];
    let sent = &sent[1..];

    let check_run = |run: &str| -> TestResult {
        let dead = dead_letters(b, &topics)?;
        ensure(dead.len() == cases.len(), || {
            format!("{run}: {} dead letters, expected {}:\n  {}", dead.len(), cases.len(), brief(&dead))
        })?;
        for (c, (partition, offset)) in cases.iter().zip(sent) {
            let what = format!("{run}: {} on {}", c.kind, c.topic);
            let found: Vec<&DeadLetter> = dead.iter().filter(|d| d.topic == c.topic && d.error_kind == c.kind.as_str()).collect();
            ensure(found.len() == 1, || format!("{what}: {} dead letters:\n  {}", found.len(), brief(&dead)))?;
            let d = found[0];
            if c.waits {
                ensure(d.partition.is_none() && d.offset.is_none(), || {
                    format!("{what}: a refused waiting event has no origin: {d:?}")
                })?;
                ensure(d.message.contains("waited from"), || format!("{what}: message {}", d.message))?;
            } else {
                ensure(d.partition == Some(*partition) && d.offset == Some(*offset), || {
                    format!("{what}: origin [{:?}]@{:?}, sent to [{partition}]@{offset}", d.partition, d.offset)
                })?;
            }
            ensure(d.value == c.value.clone().unwrap_or_default(), || format!("{what}: original bytes not kept"))?;
            ensure(d.key == c.key, || format!("{what}: key {:?}, sent {:?}", d.key, c.key))?;
            ensure(!d.message.is_empty(), || format!("{what}: no message"))?;
        }
        Ok(())
    };
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    run_replay(b, &prefix, dir.path(), until)?;
    check_run("first run")?;
    // A second run, from a fresh state directory (restored from the
    // changelog), reads every calendar again: nothing is dead-lettered twice.
    let again = tempfile::tempdir().map_err(|e| e.to_string())?;
    run_replay(b, &prefix, again.path(), until)?;
    check_run("second run")?;
    // The good records around the bad ones still decided the scenario.
    let out = read_outputs(b, &topics).map_err(|e| format!("{e:#}"))?;
    let mut s = base.clone();
    s.expect.dead_letters = Some(Vec::new());
    s.expect.no_other_outreach = false;
    let diffs: Vec<_> = check(&s, &rollcall_scenario::RunOutput { dead_letters: Vec::new(), ..out }).into_iter().collect();
    ensure(diffs.is_empty(), || format!("good records not processed as expected: {diffs:?}"))
}

/// Producers upgrade their schemas on their own schedule. ActivityEvents of
/// schema versions 1 and 2 interleaved on the topic decide the scenario as
/// it expects; one whose fingerprint is of neither version is dead-lettered
/// WRONG_SCHEMA, its fingerprint in the message; and a consumer still
/// reading with version 1 of the Determination schema (apache-avro's
/// resolution, not rollcall's codec) reads every determination written.
fn schema_versions_side_by_side(b: &str) -> TestResult {
    use rollcall_model::avro::{parsing_canonical_form, rabin_fingerprint};
    use rollcall_model::{ActivityEvent, Determination};
    let base =
        Scenario::load(&repo().join("tests/scenarios/mmsd-01-k5-live-join-and-submission.json")).map_err(|e| e.to_string())?;
    let prefix = unique("versions");
    let topics = Topics::with_prefix(&prefix);
    create_topics(b, &topics, 3, 1).map_err(|e| format!("{e:#}"))?;
    let mut rest = base.clone();
    rest.events.clear();
    produce_scenario(b, &topics, &rest).map_err(|e| format!("{e:#}"))?;

    let v1_text = std::fs::read_to_string(repo().join("schemas/history/activity_event.1.avsc")).map_err(|e| e.to_string())?;
    let v1_json: serde_json::Value = serde_json::from_str(&v1_text).map_err(|e| e.to_string())?;
    let v1 = apache_avro::Schema::parse(&v1_json).map_err(|e| e.to_string())?;
    let v1_fingerprint = rabin_fingerprint(parsing_canonical_form(&v1_json, None).as_bytes());
    // As a producer that has not upgraded writes it: apache-avro, schema version 1.
    let as_v1 = |e: &ActivityEvent| -> Result<Vec<u8>, String> {
        let mut value = e.to_avro_value();
        if let apache_avro::types::Value::Record(fields) = &mut value {
            fields.retain(|(name, _)| name != "received_at");
        }
        let mut out = vec![0xC3, 0x01];
        out.extend_from_slice(&v1_fingerprint.to_le_bytes());
        out.extend(apache_avro::to_avro_datum(&v1, value).map_err(|e| e.to_string())?);
        Ok(out)
    };
    let p = rollcall_kafka::replay::producer(b).map_err(|e| format!("{e:#}"))?;
    let send = |key: &str, value: &[u8], at| {
        rollcall_kafka::replay::send(&p, &topics.activity, key, value, at).map_err(|e| format!("{e:#}"))
    };
    let mut versions = [0usize; 2];
    for (i, a) in base.events.iter().enumerate() {
        let value = if i % 2 == 0 {
            as_v1(&a.event)?
        } else {
            let e = ActivityEvent { received_at: Some(a.arrives_at), ..a.event.clone() };
            encode(&e)?
        };
        versions[i % 2] += 1;
        send(&a.event.student_id, &value, a.arrives_at)?;
    }
    ensure(versions[0] > 0 && versions[1] > 0, || format!("events by version: {versions:?}"))?;
    // A version this processor does not know (here: today's bytes under
    // another fingerprint).
    let first = &base.events[0];
    let mut unknown = encode(&ActivityEvent { event_id: "from-a-later-schema".into(), ..first.event.clone() })?;
    unknown[9] ^= 0x5a;
    let unknown_fingerprint = u64::from_le_bytes(unknown[2..10].try_into().map_err(|_| "header")?);
    send(&first.event.student_id, &unknown, first.arrives_at)?;
    p.flush(Duration::from_secs(30)).map_err(|e| e.to_string())?;

    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    run_replay(b, &prefix, dir.path(), &base.now.to_rfc3339())?;
    let dead = dead_letters(b, &topics)?;
    ensure(dead.len() == 1 && dead[0].error_kind == "WRONG_SCHEMA", || format!("dead letters:\n  {}", brief(&dead)))?;
    ensure(dead[0].message.contains(&format!("{unknown_fingerprint:#018x}")), || {
        format!("the message does not give the fingerprint {unknown_fingerprint:#018x}: {}", dead[0].message)
    })?;
    let out = read_outputs(b, &topics).map_err(|e| format!("{e:#}"))?;
    let mut s = base.clone();
    s.expect.dead_letters = Some(Vec::new());
    let diffs: Vec<_> = check(&s, &rollcall_scenario::RunOutput { dead_letters: Vec::new(), ..out }).into_iter().collect();
    ensure(diffs.is_empty(), || format!("v1 and v2 events side by side: {diffs:?}"))?;

    // A reader of Determination version 1.
    let reader_text = std::fs::read_to_string(repo().join("schemas/history/determination.1.avsc")).map_err(|e| e.to_string())?;
    let reader = apache_avro::Schema::parse_str(&reader_text).map_err(|e| e.to_string())?;
    let writer = Determination::schema();
    let mut read = 0usize;
    read_topic(b, &topics.determinations, |v, offset| {
        let ours = Determination::from_single_object(v)
            .map_err(|e| rollcall_kafka::KafkaError::Record { what: format!("determination @{offset}"), source: e })?;
        let old = apache_avro::from_avro_datum(writer, &mut &v[10..], Some(&reader))
            .map_err(|e| rollcall_kafka::KafkaError::Setup(format!("a version-1 reader, determination @{offset}: {e}")))?;
        let id = match &old {
            apache_avro::types::Value::Record(f) => f.iter().find(|(n, _)| n == "determination_id").map(|(_, v)| v.clone()),
            _ => None,
        };
        if id != Some(apache_avro::types::Value::String(ours.determination_id.clone())) {
            return Err(rollcall_kafka::KafkaError::Setup(format!("determination @{offset}: the version-1 reader read {old:?}")));
        }
        read += 1;
        Ok(())
    })
    .map_err(|e| format!("{e:#}"))?;
    ensure(read > 0, || "no determinations to read".to_string())?;
    eprintln!("  {} events of version 1, {} of version 2; {read} determinations read with version 1", versions[0], versions[1]);
    Ok(())
}

/// An event whose student has no roster record yet waits for it: released
/// when the record comes (the event then counts), refused with
/// UNKNOWN_STUDENT when its three days are over first.
fn waiting_events_are_released_or_refused(b: &str) -> TestResult {
    let base =
        Scenario::load(&repo().join("tests/scenarios/mmsd-01-k5-live-join-and-submission.json")).map_err(|e| e.to_string())?;
    let prefix = unique("wait");
    let topics = Topics::with_prefix(&prefix);
    create_topics(b, &topics, 3, 1).map_err(|e| format!("{e:#}"))?;
    produce_scenario(b, &topics, &base).map_err(|e| format!("{e:#}"))?;
    let good = base.events[0].clone();
    let at = good.arrives_at;
    let roster = base.roster.iter().find(|r| r.student_id == good.event.student_id).ok_or("no roster record")?;
    let mut newbie = good.event.clone();
    newbie.event_id = "wait-newbie".into();
    newbie.student_id = "newbie".into();
    let mut newbie_roster = roster.clone();
    newbie_roster.student_id = "newbie".into();
    let mut ghost = good.event.clone();
    ghost.event_id = "wait-ghost".into();
    ghost.student_id = "ghost".into();
    use DeadLetterKind::*;
    let records = vec![
        Bad::new(&topics.activity, Some("newbie"), Some(encode(&newbie)?), at, MissingValue),
        Bad::new(&topics.activity, Some("ghost"), Some(encode(&ghost)?), at, UnknownStudent),
        // The nightly sync brings `newbie` the next day, within the wait.
        Bad::new(&topics.roster, Some("newbie"), Some(encode(&newbie_roster)?), at + chrono::Duration::days(1), MissingValue),
    ];
    send_all(b, &records)?;
    // Four days on: past the ghost's wait.
    let until = (base.now + chrono::Duration::days(4)).to_rfc3339();
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    run_replay(b, &prefix, dir.path(), &until)?;
    let dead = dead_letters(b, &topics)?;
    ensure(dead.len() == 1, || format!("{} dead letters, expected the ghost's:\n  {}", dead.len(), brief(&dead)))?;
    let d = &dead[0];
    ensure(d.error_kind == UnknownStudent.as_str() && d.key.as_deref() == Some("ghost") && d.topic == topics.activity, || {
        format!("{d:?}")
    })?;
    ensure(d.partition.is_none() && d.offset.is_none() && d.message.contains("waited from"), || format!("{d:?}"))?;
    ensure(d.value == records[1].value.clone().unwrap_or_default(), || "the ghost's event bytes not kept".into())?;
    let out = read_outputs(b, &topics).map_err(|e| format!("{e:#}"))?;
    let date = newbie.occurred_at.date_naive();
    let counted = out.determinations.iter().find(|d| d.student_id == "newbie" && d.evidence.iter().any(|e| e == "wait-newbie"));
    ensure(counted.is_some(), || {
        let theirs: Vec<_> = out.determinations.iter().filter(|d| d.student_id == "newbie").collect();
        format!("no determination of newbie ({date}) counts the released event: {theirs:?}")
    })?;
    ensure(!out.determinations.iter().any(|d| d.student_id == "ghost"), || "the ghost was decided".into())
}

static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

pub(crate) fn spawn_processor(
    b: &str,
    prefix: &str,
    state: &Path,
    instance: &str,
    until: &str,
    exit_when_idle: bool,
) -> Result<Child, String> {
    processor_command(b, prefix, state, instance, until, exit_when_idle)?.spawn().map_err(|e| e.to_string())
}

/// The command of one processor run with the replay clock, stderr piped
/// (or to a file under ROLLCALL_TEST_LOG_DIR). Instances run side by side:
/// each serves its metrics on a free port, unless a test that reads them
/// names the address (`.env("ROLLCALL_METRICS_ADDR", addr)` on the command).
pub(crate) fn processor_command(
    b: &str,
    prefix: &str,
    state: &Path,
    instance: &str,
    until: &str,
    exit_when_idle: bool,
) -> Result<Command, String> {
    let mut c = Command::new(bin());
    c.stderr(Stdio::piped());
    c.args(["run", "--brokers", b, "--clock", "replay", "--instance-id", instance]);
    // Without an end instant the replay clock only follows the input: a
    // processor fed over time, which must not close days as it catches up.
    if !until.is_empty() {
        c.args(["--until", until]);
    }
    c.args(["--topic-prefix", prefix, "--group", &format!("{prefix}g")])
        .env("ROLLCALL_METRICS_ADDR", "127.0.0.1:0")
        .arg("--state-dir")
        .arg(state)
        .env("ROLLCALL_LOG", std::env::var("ROLLCALL_TEST_LOG").unwrap_or_else(|_| "error".into()))
        .stdout(Stdio::null());
    // Each run's log kept for a post-mortem, when asked for.
    if let Ok(dir) = std::env::var("ROLLCALL_TEST_LOG_DIR") {
        let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let file =
            std::fs::File::create(Path::new(&dir).join(format!("{prefix}{instance}-{n:03}.log"))).map_err(|e| e.to_string())?;
        c.stderr(file);
    }
    if exit_when_idle {
        c.arg("--exit-when-idle");
    }
    Ok(c)
}

/// Every committed output record, as JSON text, and every dead letter, as
/// its topic (without the run's prefix), key, bytes and kind (not where it
/// was read, which differs for unkeyed records, nor when it failed); sorted.
pub(crate) fn outputs(b: &str, topics: &Topics) -> Result<Vec<String>, String> {
    let mut v = output_records(b, topics)?;
    let prefix = topics.dlq.strip_suffix(rollcall_kafka::wire::DLQ).unwrap_or_default();
    for d in dead_letters(b, topics)? {
        let topic = d.topic.strip_prefix(prefix).unwrap_or(&d.topic);
        v.push(format!("dead letter {topic} {:?} {:02x?} {}", d.key, d.value, d.error_kind));
    }
    v.sort();
    Ok(v)
}

/// A few bad records among a district's inputs, so that the dead letters
/// of interrupted runs are compared too: one of each topic that fails its
/// wire checks, an event and a report refused at once, an event refused
/// after waiting for its student.
pub(crate) fn produce_bad_records(b: &str, topics: &Topics, s: &Scenario) -> TestResult {
    use DeadLetterKind::*;
    let first = s.events.first().ok_or("a district with no events")?;
    let at = first.arrives_at;
    let student = first.event.student_id.clone();
    let mut elsewhere = first.event.clone();
    elsewhere.event_id = "bad-elsewhere".into();
    elsewhere.school_id = "another-school".into();
    let mut stranger = first.event.clone();
    stranger.event_id = "bad-stranger".into();
    stranger.student_id = "bad-nobody".into();
    let report = rollcall_model::AbsenceReport {
        report_id: "bad-report".into(),
        student_id: "bad-nobody".into(),
        date: first.event.occurred_at.date_naive(),
        reported_at: at,
        reason: rollcall_model::AbsenceReason::Illness,
        reporter: rollcall_model::Reporter::Guardian,
    };
    let records = vec![
        Bad::new(&topics.activity, Some(&student), Some(b"not avro".to_vec()), at, NotAvro),
        Bad::new(&topics.activity, Some(&student), Some(encode(&elsewhere)?), at, SchoolMismatch),
        Bad::new(&topics.activity, Some("bad-nobody"), Some(encode(&stranger)?), at, UnknownStudent),
        Bad::new(&topics.roster, Some(""), Some(encode(&s.roster[0])?), at, MissingKey),
        Bad::new(&topics.reports, Some("bad-nobody"), Some(encode(&report)?), at, UnknownStudent),
        Bad::new(&topics.calendar, Some("bad-calendar"), Some(b"{}".to_vec()), at, NotAvro),
    ];
    send_all(b, &records).map(|_| ())
}

/// A district and a few bad records on its topics.
pub(crate) fn produce_district(b: &str, topics: &Topics, s: &Scenario) -> TestResult {
    produce_scenario(b, topics, s).map_err(|e| format!("{e:#}"))?;
    produce_bad_records(b, topics, s)
}

pub(crate) fn compare(reference: &[String], other: &[String], what: &str) -> TestResult {
    if reference == other {
        return Ok(());
    }
    let ref_set: std::collections::BTreeSet<_> = reference.iter().collect();
    let other_set: std::collections::BTreeSet<_> = other.iter().collect();
    let lost: Vec<_> = ref_set.difference(&other_set).take(3).collect();
    let extra: Vec<_> = other_set.difference(&ref_set).take(3).collect();
    let dup = other.len() - other_set.len();
    let dups: Vec<_> = other.windows(2).filter(|w| w[0] == w[1]).map(|w| &w[0]).take(3).collect();
    Err(format!(
        "{what}: {} records vs {} uninterrupted; {dup} duplicated (e.g. {dups:?}); lost e.g. {lost:?}; extra e.g. {extra:?}",
        other.len(),
        reference.len()
    ))
}

/// The district's outputs from an uninterrupted run, and the district
/// again on fresh topics (6 partitions) under a prefix of its own.
pub(crate) fn reference_and_topics(b: &str, s: &Scenario, name: &str) -> Result<(Vec<String>, String, Topics), String> {
    let reference = reference_run(b, s, &format!("{name}-ref"))?;
    let prefix = unique(name);
    let topics = Topics::with_prefix(&prefix);
    create_topics(b, &topics, 6, 1).map_err(|e| format!("{e:#}"))?;
    produce_district(b, &topics, s)?;
    Ok((reference, prefix, topics))
}

/// Runs the district to completion in one uninterrupted processor.
pub(crate) fn reference_run(b: &str, s: &Scenario, name: &str) -> Result<Vec<String>, String> {
    let prefix = unique(name);
    let topics = Topics::with_prefix(&prefix);
    create_topics(b, &topics, 6, 1).map_err(|e| format!("{e:#}"))?;
    produce_district(b, &topics, s)?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let status = spawn_processor(b, &prefix, dir.path(), "ref", &s.now.to_rfc3339(), true)?.wait().map_err(|e| e.to_string())?;
    ensure(status.success(), || format!("reference run exited with {status}"))?;
    let out = outputs(b, &topics)?;
    eprintln!(
        "  reference: {} events -> {} output records in {:.1} s",
        s.events.len(),
        out.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(out)
}

/// The crash points are compiled in (scripts/test.sh builds with
/// `--features rollcall-cli/crash-points`); without them a crash test
/// records itself as skipped.
fn crash_points_or_skip(test: &str) -> bool {
    if !rollcall_kafka::crash::COMPILED_IN {
        skip::skip(
            test,
            "built without the crash points (cargo test --features rollcall-cli/crash-points; scripts/test.sh has it)",
        );
    }
    rollcall_kafka::crash::COMPILED_IN
}

/// A processor run to its end, armed with `crash` (`POINT:N`) and smaller
/// batches; whether it was killed (SIGKILL) rather than finishing.
fn run_armed(b: &str, prefix: &str, state: &Path, instance: &str, until: &str, crash: &str) -> Result<bool, String> {
    use std::os::unix::process::ExitStatusExt;
    let mut c = processor_command(b, prefix, state, instance, until, true)?;
    c.stderr(Stdio::piped()).env("ROLLCALL_CRASH_POINT", crash).env("ROLLCALL_BATCH_MAX_RECORDS", "2000");
    let out = c.output().map_err(|e| e.to_string())?;
    match (out.status.signal(), out.status.success()) {
        (Some(9), _) => Ok(true),
        (None, true) => Ok(false),
        _ => Err(format!("run armed with {crash} ended with {}: {}", out.status, tail(&String::from_utf8_lossy(&out.stderr)))),
    }
}

/// 20 kills, each at a step of the commit protocol drawn from progress
/// (SIGKILL after the k-th batch is produced and not committed, or
/// committed to Kafka and not yet to RocksDB); the committed outputs equal
/// an uninterrupted run's.
fn kill_nine_loses_and_duplicates_nothing(b: &str) -> TestResult {
    if !crash_points_or_skip("kill_nine_loses_and_duplicates_nothing") {
        return Ok(());
    }
    let s = district(2000, 5, 11);
    ensure(s.events.len() >= 200_000, || format!("district has only {} events", s.events.len()))?;
    let (reference, prefix, topics) = reference_and_topics(b, &s, "kill")?;
    let state = tempfile::tempdir().map_err(|e| e.to_string())?;
    let until = s.now.to_rfc3339();
    // Seeded, so a failure can be replayed.
    let mut x: u64 = 0x5eed_1234_abcd_0001;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut mid_work = 0;
    for i in 0..20 {
        let point = if i % 2 == 0 { "produced" } else { "committed" };
        let crash = format!("{point}:{}", 1 + next() % 6);
        let killed = run_armed(b, &prefix, state.path(), "killed", &until, &crash)?;
        mid_work += usize::from(killed);
        eprintln!("  kill {:>2} at {crash}{}", i + 1, if killed { " (mid-work)" } else { " (had already finished)" });
    }
    eprintln!("  {mid_work} of 20 kills landed mid-work");
    ensure(mid_work == 20, || format!("only {mid_work} of 20 kills landed mid-work"))?;
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
    eprintln!(
        "  the final run processed {processed} of {} input records",
        s.events.len() + s.roster.len() + s.absence_reports.len()
    );
    let got = outputs(b, &topics)?;
    compare(&reference, &got, "after 20 kills")?;
    ensure(processed < s.events.len() * 3 / 4, || {
        format!("the killed runs committed too little: the final run processed {processed} records")
    })
}

/// A restore killed halfway (an instance with an empty state directory
/// rebuilding its partitions from the changelog) and started again; the
/// outputs equal an uninterrupted run's.
fn killed_restore_restores_again(b: &str) -> TestResult {
    if !crash_points_or_skip("killed_restore_restores_again") {
        return Ok(());
    }
    let s = district(600, 5, 7);
    let (reference, prefix, topics) = reference_and_topics(b, &s, "restore")?;
    let until = s.now.to_rfc3339();
    // Some batches committed (the last one to Kafka only), on a state
    // directory that is then lost.
    let lost = tempfile::tempdir().map_err(|e| e.to_string())?;
    ensure(run_armed(b, &prefix, lost.path(), "r", &until, "committed:12")?, || {
        "the first run finished before its 12th batch".into()
    })?;
    drop(lost);
    let fresh = tempfile::tempdir().map_err(|e| e.to_string())?;
    ensure(run_armed(b, &prefix, fresh.path(), "r", &until, "restoring:1000")?, || {
        "the restore finished before its 1000th changelog record".into()
    })?;
    eprintln!("  killed after 1000 changelog records of the restore");
    let out = spawn_processor(b, &prefix, fresh.path(), "r", &until, true)?.wait_with_output().map_err(|e| e.to_string())?;
    ensure(out.status.success(), || format!("the run after the killed restore exited with {}", out.status))?;
    compare(&reference, &outputs(b, &topics)?, "after a killed restore")
}

/// An instance killed in the middle of a rebalance (a second instance
/// joining); the other finishes every partition, and the outputs equal an
/// uninterrupted run's.
fn killed_in_a_rebalance(b: &str) -> TestResult {
    use std::os::unix::process::ExitStatusExt;
    if !crash_points_or_skip("killed_in_a_rebalance") {
        return Ok(());
    }
    let s = district(600, 5, 9);
    let (reference, prefix, topics) = reference_and_topics(b, &s, "mid-rebal")?;
    let (da, db) = (tempfile::tempdir().map_err(|e| e.to_string())?, tempfile::tempdir().map_err(|e| e.to_string())?);
    let until = s.now.to_rfc3339();
    // The first rebalance is a's own assignment; the second, b joining.
    let mut ca = processor_command(b, &prefix, da.path(), "a", &until, false)?;
    ca.env("ROLLCALL_CRASH_POINT", "rebalancing:2").env("ROLLCALL_BATCH_MAX_RECORDS", "500");
    let mut a = ca.spawn().map_err(|e| e.to_string())?;
    let log_a = drain(a.stderr.take());
    std::thread::sleep(Duration::from_millis(2_500));
    let mut survivor = spawn_processor(b, &prefix, db.path(), "b", &until, false)?;
    let _log_b = drain(survivor.stderr.take());
    let started = Instant::now();
    let status = loop {
        if let Some(st) = a.try_wait().map_err(|e| e.to_string())? {
            break Some(st);
        }
        if started.elapsed() > Duration::from_secs(60) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let killed = status.is_some_and(|st| st.signal() == Some(9));
    if !killed {
        let _ = a.kill();
        let _ = a.wait();
        let _ = survivor.kill();
        let _ = survivor.wait();
        return Err(format!("instance a was not killed in the rebalance ({status:?}): {}", tail(&log_a.join())));
    }
    eprintln!("  instance a killed mid-rebalance; waiting for b to finish every partition");
    survivor_finishes(b, &topics, &reference, survivor, "after a killed rebalance")
}

/// Waits (up to 3 minutes) for the outputs to reach the reference's count,
/// stops the survivor, and compares.
fn survivor_finishes(b: &str, topics: &Topics, reference: &[String], mut survivor: Child, what: &str) -> TestResult {
    let started = Instant::now();
    let result = loop {
        let out = outputs(b, topics)?;
        if out.len() >= reference.len() || started.elapsed() > Duration::from_secs(180) {
            break compare(reference, &out, what);
        }
        std::thread::sleep(Duration::from_secs(3));
    };
    let _ = survivor.kill();
    let _ = survivor.wait();
    result
}

/// Two instances over 6 partitions; one is killed; the survivor finishes its partitions.
fn survivor_takes_over_partitions(b: &str) -> TestResult {
    let s = district(600, 5, 5);
    let (reference, prefix, topics) = reference_and_topics(b, &s, "rebal")?;
    let (da, db) = (tempfile::tempdir().map_err(|e| e.to_string())?, tempfile::tempdir().map_err(|e| e.to_string())?);
    let until = s.now.to_rfc3339();
    let mut a = spawn_processor(b, &prefix, da.path(), "a", &until, false)?;
    let mut survivor = spawn_processor(b, &prefix, db.path(), "b", &until, false)?;
    let (_log_a, _log_b) = (drain(a.stderr.take()), drain(survivor.stderr.take()));
    std::thread::sleep(Duration::from_millis(2_500));
    let _ = a.kill();
    let _ = a.wait();
    eprintln!("  instance a killed; waiting for b to finish every partition");
    survivor_finishes(b, &topics, &reference, survivor, "survivor")
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

/// The processor, idle on the wall clock, closes a day when the day ends:
/// nothing arrives after the roster and the calendar are consumed, and the
/// day's FINAL absence appears once its end passes. The wall clock is
/// shifted (`ROLLCALL_CLOCK_OFFSET_SECONDS`) so that a school day three days
/// from now ends 25 s after the processor starts.
fn a_day_closes_while_the_processor_is_idle(b: &str) -> TestResult {
    use rollcall_model::{CalendarDay, DayType, GradeLevel, SchoolCalendar, StudentRecord};
    const LEAD_SECS: i64 = 25;
    let day = chrono::Utc::now().date_naive() + chrono::Duration::days(3);
    let s = Scenario {
        file: "<idle>".into(),
        name: "idle".into(),
        policy: "mmsd".into(),
        custom_policy: None,
        calendars: vec![SchoolCalendar {
            school_id: "i-school".into(),
            timezone: "Etc/UTC".into(),
            policy: "mmsd".into(),
            days: vec![CalendarDay {
                date: day,
                instructional: true,
                day_type: DayType::Full,
                start: "08:00".parse().map_err(|e: String| e)?,
                end: "15:00".parse().map_err(|e: String| e)?,
            }],
        }],
        roster: vec![StudentRecord::new("idle-1", "i-school", GradeLevel::G3)],
        absence_reports: vec![],
        events: vec![],
        now: chrono::Utc::now(),
        expect: Expect::default(),
    };
    let prefix = unique("idle");
    let topics = Topics::with_prefix(&prefix);
    create_topics(b, &topics, 1, 1).map_err(|e| format!("{e:#}"))?;
    produce_scenario(b, &topics, &s).map_err(|e| format!("{e:#}"))?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    // mmsd closes a day at the end of the school's local day (midnight, UTC here).
    let closes = day.succ_opt().ok_or("no next day")?.and_hms_opt(0, 0, 0).ok_or("no midnight")?.and_utc();
    let started = Instant::now();
    let offset = (closes - chrono::Utc::now()).num_seconds() - LEAD_SECS;
    let metrics_addr = free_addr()?;
    let mut child = Command::new(bin())
        .args(["run", "--brokers", b, "--clock", "wall", "--instance-id", "idle", "--topic-prefix", &prefix])
        .args(["--group", &format!("{prefix}g"), "--metrics-addr", &metrics_addr])
        .arg("--state-dir")
        .arg(dir.path())
        .env("ROLLCALL_CLOCK_OFFSET_SECONDS", offset.to_string())
        .env("ROLLCALL_LOG", std::env::var("ROLLCALL_TEST_LOG").unwrap_or_else(|_| "error".into()))
        .spawn()
        .map_err(|e| e.to_string())?;
    let close_at = Duration::from_secs(LEAD_SECS as u64);
    let (mut idle_before_close, mut in_session_before_close) = (false, false);
    let result = loop {
        let out = read_outputs(b, &topics).map_err(|e| format!("{e:#}"))?;
        let got = out.determinations.iter().find(|d| d.student_id == "idle-1");
        // A margin of 2 s either side of the close for the clocks' rounding.
        if let Some(d) = got {
            if started.elapsed() + Duration::from_secs(2) < close_at {
                break Err(format!("a determination {:.0?} before the day ends: {d:?}", close_at - started.elapsed()));
            }
            break ensure(d.code == "AU" && d.date == day && d.finality == rollcall_model::Finality::Final, || {
                format!("expected a FINAL AU for {day}, got {d:?}")
            })
            .and_then(|()| {
                ensure(idle_before_close, || {
                    "the processor had not consumed its input (consumer lag 0) before the day ended".into()
                })
            })
            .and_then(|()| {
                ensure(in_session_before_close, || "rollcall_schools_in_session was never 1 during the school day".into())
            });
        }
        if started.elapsed() + Duration::from_secs(2) < close_at {
            if let Some(text) = scrape(&metrics_addr) {
                idle_before_close |= consumed_everything(&text);
                // The shifted clock is on the calendar's one instructional day.
                in_session_before_close |= text.lines().any(|l| l == "rollcall_schools_in_session 1");
            }
        }
        if started.elapsed() > close_at + Duration::from_secs(60) {
            break Err(format!("no determination within 60 s of the day's end (idle before it: {idle_before_close})"));
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// The processor's /metrics text, if it answers.
pub(crate) fn scrape(addr: &str) -> Option<String> {
    use std::io::{Read, Write};
    let sock = addr.parse().ok()?;
    let mut c = std::net::TcpStream::connect_timeout(&sock, Duration::from_secs(2)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(c, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    c.read_to_string(&mut text).ok()?;
    Some(text)
}

/// Whether /metrics says every input partition the processor owns is read
/// to its end (consumer lag series for the roster present, all 0).
fn consumed_everything(text: &str) -> bool {
    let lag: Vec<&str> = text.lines().filter(|l| l.starts_with("rollcall_consumer_lag_records{")).collect();
    lag.iter().any(|l| l.contains("sis.roster.v1")) && lag.iter().all(|l| l.ends_with(" 0"))
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
        produce_district(&own, &topics, &s)?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut child = spawn_processor(&own, &prefix, dir.path(), "r", &s.now.to_rfc3339(), true)?;
        // Read as it is written: the reconnecting processor and librdkafka
        // log while the broker is away, and a full pipe would stall it.
        let log = drain(child.stderr.take());
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
                let _ = child.wait();
                return Err(format!("the processor did not finish within 240 s of the restart; it said:\n{}", tail(&log.join())));
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        let said = log.join();
        ensure(status.success(), || format!("the processor exited with {status} across the restart: {}", tail(&said)))?;
        let out = outputs(&own, &topics)?;
        compare(&reference, &out, "across a broker restart")
    })();
    let _ = kafka("stop");
    result
}

/// A child's output read to its end on a thread of its own.
pub(crate) struct Drained(Option<std::thread::JoinHandle<String>>);

impl Drained {
    /// Everything read, once the child has closed its end.
    pub(crate) fn join(self) -> String {
        self.0.and_then(|t| t.join().ok()).unwrap_or_default()
    }
}

pub(crate) fn drain(out: Option<std::process::ChildStderr>) -> Drained {
    Drained(out.map(|mut e| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = std::io::Read::read_to_end(&mut e, &mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    }))
}

/// The last lines of a log, for a failure message.
pub(crate) fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// One in-process processor run with the replay clock to `until`, until idle.
fn run_group(b: &str, cfg: rollcall_kafka::ProcessorConfig) -> TestResult {
    let mut p = rollcall_kafka::Processor::new(cfg, std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)))
        .map_err(|e| format!("{e:#}"))?;
    p.run().map(|_| ()).map_err(|e| format!("{b}: {e:#}"))
}

/// A group's settings; the group is also the instance id, so it must be
/// unique to the run (static membership would otherwise hand the new
/// member an earlier run's assignment until its session expired).
fn group_config(
    b: &str,
    prefix: &str,
    group: &str,
    state: &Path,
    until: chrono::DateTime<chrono::Utc>,
) -> rollcall_kafka::ProcessorConfig {
    rollcall_kafka::ProcessorConfig {
        brokers: b.to_string(),
        group: group.to_string(),
        state_dir: state.to_path_buf(),
        instance_id: group.to_string(),
        clock: rollcall_kafka::ClockMode::Replay,
        until: Some(until),
        exit_when_idle: true,
        topic_prefix: prefix.to_string(),
        batch_max_ms: 100,
        metrics_addr: "off".into(),
        ..rollcall_kafka::ProcessorConfig::default()
    }
}

/// What a determination decided, without when and in which version.
fn decisions(b: &str, topics: &Topics) -> Result<std::collections::BTreeMap<String, String>, String> {
    Ok(decisions_of(&read_outputs(b, topics).map_err(|e| format!("{e:#}"))?))
}

/// [`decisions`] of outputs already read.
pub(crate) fn decisions_of(out: &rollcall_scenario::RunOutput) -> std::collections::BTreeMap<String, String> {
    out.latest()
        .into_iter()
        .map(|(k, d)| (k, format!("{:?} {} {:?} {:?} {} {:?}", d.status, d.code, d.minutes, d.contacts, d.rule, d.evidence)))
        .collect()
}

/// Two groups over the same inputs at once, with different policies: each
/// gives what it gives alone. One runs the presets; the other a district
/// file that replaces the cms preset (a stricter in-person share, its own code) and
/// writes its outputs behind a prefix of its own, as the README says a
/// trial group should.
fn two_groups_side_by_side(b: &str) -> TestResult {
    let s = district(40, 5, 11);
    let cms = rollcall_policy::Policy::preset_text("cms").ok_or("no cms preset")?;
    let strict =
        cms.replace("fraction = 0.5", "fraction = 0.95").replace("absent_unexcused = \"AU\"", "absent_unexcused = \"UA\"");
    ensure(strict.matches("0.95").count() == 1 && strict.contains("\"UA\""), || {
        "the cms preset changed; mend the test's edit".into()
    })?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let policy_file = dir.path().join("cms-strict.toml");
    std::fs::write(&policy_file, &strict).map_err(|e| e.to_string())?;
    let trial = |cfg: &mut rollcall_kafka::ProcessorConfig, outputs: &str| {
        cfg.policy_files = vec![policy_file.clone()];
        cfg.replace_presets = vec!["cms".into()];
        cfg.output_topic_prefix = outputs.to_string();
    };
    // Alone, each on inputs of its own.
    let mut alone = Vec::new();
    for (i, name) in ["preset", "strict"].iter().enumerate() {
        let prefix = unique(&format!("alone-{name}"));
        let topics = Topics::with_prefix(&prefix);
        create_topics(b, &topics, 3, 1).map_err(|e| format!("{e:#}"))?;
        produce_scenario(b, &topics, &s).map_err(|e| format!("{e:#}"))?;
        let mut cfg = group_config(b, &prefix, &format!("{prefix}alone"), &dir.path().join(name), s.now);
        if i == 1 {
            trial(&mut cfg, &prefix);
        }
        run_group(b, cfg)?;
        alone.push(decisions(b, &topics)?);
    }
    ensure(alone[0] != alone[1], || "the two policies decide the district alike; the test proves nothing".into())?;
    ensure(alone[0].keys().eq(alone[1].keys()), || "the two policies decide different keys".into())?;
    // Side by side on one set of inputs.
    let prefix = unique("side");
    let trial_outputs = format!("{prefix}trial.");
    let production = Topics::with_prefix(&prefix);
    create_topics(b, &production, 3, 1).map_err(|e| format!("{e:#}"))?;
    create_topics(b, &Topics::with_prefix(&prefix).with_outputs_behind(&trial_outputs), 3, 1).map_err(|e| format!("{e:#}"))?;
    produce_scenario(b, &production, &s).map_err(|e| format!("{e:#}"))?;
    let first = group_config(b, &prefix, &format!("{prefix}production"), &dir.path().join("production"), s.now);
    let mut second = group_config(b, &prefix, &format!("{prefix}trial"), &dir.path().join("trial"), s.now);
    trial(&mut second, &trial_outputs);
    let (one, two) = std::thread::scope(|sc| {
        let one = sc.spawn(|| run_group(b, first));
        let two = sc.spawn(|| run_group(b, second));
        (one.join(), two.join())
    });
    one.map_err(|_| "the production group panicked")??;
    two.map_err(|_| "the trial group panicked")??;
    let side = [decisions(b, &production)?, decisions(b, &production.clone().with_outputs_behind(&trial_outputs))?];
    for (i, name) in ["production (presets)", "trial (cms replaced)"].iter().enumerate() {
        let differ: Vec<_> = alone[i].iter().filter(|(k, v)| side[i].get(*k) != Some(*v)).take(3).collect();
        ensure(alone[i] == side[i], || {
            format!("{name}: {} keys side by side vs {} alone; differ e.g. {differ:?}", side[i].len(), alone[i].len())
        })?;
    }
    eprintln!(
        "  {} keys per group; the policies differ on {}",
        alone[0].len(),
        alone[0].iter().filter(|(k, v)| alone[1].get(*k) != Some(*v)).count()
    );
    Ok(())
}

/// A school's calendar comes after its events have been refused
/// (UNKNOWN_SCHOOL, no wait): `rollcall dlq replay` puts them back, the
/// processor decides them as late data, and the school's students end as
/// in a run where the calendar was there from the start. A second replay
/// puts nothing back.
fn dlq_replay_recovers_refused_records(b: &str) -> TestResult {
    let s = district(30, 4, 5);
    let late = s.calendars.first().ok_or("a district with no schools")?.clone();
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    // The reference: everything in order.
    let ref_prefix = unique("dlq-ref");
    let ref_topics = Topics::with_prefix(&ref_prefix);
    create_topics(b, &ref_topics, 3, 1).map_err(|e| format!("{e:#}"))?;
    produce_scenario(b, &ref_topics, &s).map_err(|e| format!("{e:#}"))?;
    run_group(b, group_config(b, &ref_prefix, &format!("{ref_prefix}g"), &dir.path().join("ref"), s.now))?;
    let reference = decisions(b, &ref_topics)?;
    // The calendar held back.
    let prefix = unique("dlq-replay");
    let topics = Topics::with_prefix(&prefix);
    create_topics(b, &topics, 3, 1).map_err(|e| format!("{e:#}"))?;
    let mut without = s.clone();
    without.calendars.retain(|c| c.school_id != late.school_id);
    produce_scenario(b, &topics, &without).map_err(|e| format!("{e:#}"))?;
    let mut cfg = group_config(b, &prefix, &format!("{prefix}g"), &dir.path().join("run"), s.now);
    cfg.unknown_school_wait_hours = 0;
    run_group(b, cfg.clone())?;
    let refused = dead_letters(b, &topics)?;
    let unknown_school = refused.iter().filter(|d| d.error_kind == "UNKNOWN_SCHOOL").count();
    ensure(unknown_school > 0 && unknown_school == refused.len(), || format!("dead letters:\n  {}", brief(&refused)))?;
    let of_school = |m: &std::collections::BTreeMap<String, String>| -> std::collections::BTreeMap<String, String> {
        let students: std::collections::HashSet<&str> =
            s.roster.iter().filter(|r| r.school_id == late.school_id).map(|r| r.student_id.as_str()).collect();
        m.iter()
            .filter(|(k, _)| students.contains(k.split('|').next().unwrap_or_default()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    ensure(of_school(&decisions(b, &topics)?).is_empty(), || "the school was decided without its calendar".into())?;
    // The calendar arrives; the operator replays.
    let p = rollcall_kafka::replay::producer(b).map_err(|e| format!("{e:#}"))?;
    rollcall_kafka::replay::send(&p, &topics.calendar, &late.school_id, &encode(&late)?, s.events[0].arrives_at)
        .map_err(|e| format!("{e:#}"))?;
    p.flush(Duration::from_secs(30)).map_err(|e| e.to_string())?;
    let replay = |want: usize| -> TestResult {
        let out = Command::new(bin())
            .args(["dlq", "replay", "--brokers", b, "--topic-prefix", &prefix, "--kind", "UNKNOWN_SCHOOL"])
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        ensure(out.status.success(), || format!("dlq replay failed: {}{}", text, String::from_utf8_lossy(&out.stderr)))?;
        ensure(text.contains(&format!(": {want} replayed")), || format!("expected {want} replayed:\n{text}"))
    };
    replay(unknown_school)?;
    replay(0)?;
    run_group(b, cfg)?;
    let (want, got) = (of_school(&reference), of_school(&decisions(b, &topics)?));
    ensure(!want.is_empty(), || "the reference decided nothing for the school".into())?;
    let differ: Vec<_> = want.iter().filter(|(k, v)| got.get(*k) != Some(*v)).take(3).collect();
    ensure(want == got, || {
        format!("{} keys after the replay vs {} in the reference; differ e.g. {differ:?}", got.len(), want.len())
    })?;
    eprintln!("  {unknown_school} dead letters replayed; {} determinations of the school as in the reference", got.len());
    Ok(())
}

/// The tests against a real broker; one broker serves them all.
pub fn area() -> Area {
    let tests = service_tests![[Need::Broker], |e| (e.broker());
        scenarios_pass_through_kafka,
        bad_records_are_dead_lettered,
        schema_versions_side_by_side,
        waiting_events_are_released_or_refused,
        survivor_takes_over_partitions,
        quiet_night_closes_on_the_wall_clock,
        a_day_closes_while_the_processor_is_idle,
        kill_nine_loses_and_duplicates_nothing,
        killed_restore_restores_again,
        killed_in_a_rebalance,
        broker_restart_loses_nothing,
        two_groups_side_by_side,
        dlq_replay_recovers_refused_records,
    ];
    Area::new("kafka", Duration::from_secs(1_800), tests)
}
