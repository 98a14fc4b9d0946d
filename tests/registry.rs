//! The Confluent wire format against a real schema registry (Apicurio
//! Registry, from scripts/registry.sh) and a real Kafka broker: every
//! scenario with `value_format = "confluent"`, single-object and
//! Confluent-framed inputs on one topic, an unknown schema id
//! dead-lettered, a producer's BACKWARD-compatible v2 of ActivityEvent read,
//! an incompatible v2 refused by the registry, and the real Confluent client
//! (PyPI's confluent-kafka) reading and writing rollcall's topics, and the
//! PostgreSQL sink reading Confluent-framed outputs.
//!
//! Uses ROLLCALL_TEST_BROKERS and ROLLCALL_TEST_REGISTRY when set, else
//! starts each with its script and stops it at the end
//! (tests/support/harness.rs).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use apache_avro::schema::Schema;
use apache_avro::types::Value;
use rollcall_kafka::replay::{
    process_scenario, producer, read_outputs_with, read_topic, run_scenario_in, send, world_time, Format,
};
use rollcall_kafka::topics::create_topics;
use rollcall_kafka::wire::Topics;
use rollcall_model::avro::AvroRecord;
use rollcall_model::{ActivityEvent, DeadLetter, DeadLetterKind, Determination};
use rollcall_registry::{confluent_frame, format_of, schema_text, value_subject, Codec, Registry, ValueFormat};
use rollcall_scenario::{check, scenario_files, Scenario};

use crate::support;
use crate::support::harness::{Area, Need};
use crate::support::*;

struct Ctx {
    brokers: String,
    registry: String,
    db: support::pg::Database,
}

fn scenario(name: &str) -> Result<Scenario, String> {
    Scenario::load(&repo().join("tests/scenarios").join(name)).map_err(|e| e.to_string())
}

fn mismatches(s: &Scenario, out: &rollcall_scenario::RunOutput, what: &str) -> Vec<String> {
    check(s, out).into_iter().map(|d| format!("{what}: {}: expected {}, got {}", d.key, d.expected, d.actual)).collect()
}

/// Every output record on `topic` is Confluent-framed; returns how many there are.
fn all_confluent(brokers: &str, topic: &str) -> Result<usize, String> {
    let mut n = 0;
    let mut other = None;
    read_topic(brokers, topic, |v, o| {
        n += 1;
        if format_of(v) != Some(ValueFormat::Confluent) {
            other.get_or_insert(o);
        }
        Ok(())
    })
    .map_err(|e| format!("{e:#}"))?;
    match other {
        Some(o) => Err(format!("{topic} @{o} is not in the Confluent wire format")),
        None => Ok(n),
    }
}

/// Every scenario, shared and the project's own, passes through the broker
/// with inputs and outputs in the Confluent wire format.
fn scenarios_pass_in_the_confluent_format(c: &Ctx) -> TestResult {
    let mut files = scenario_files(&repo().join("tests/scenarios")).map_err(|e| e.to_string())?;
    let shared = repo().join("../shared/scenarios");
    if shared.is_dir() {
        files.extend(scenario_files(&shared).map_err(|e| e.to_string())?);
    }
    let format = Format::confluent(&c.registry);
    let mut failures = Vec::new();
    let mut determinations = 0;
    for (i, f) in files.iter().enumerate() {
        let s = Scenario::load(f).map_err(|e| e.to_string())?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let prefix = unique(&format!("cf{i}"));
        let (out, _) =
            run_scenario_in(&c.brokers, &s, &prefix, dir.path(), &format).map_err(|e| format!("{}: {e:#}", f.display()))?;
        failures.extend(mismatches(&s, &out, &f.display().to_string()));
        let topics = Topics::with_prefix(&prefix);
        determinations += all_confluent(&c.brokers, &topics.determinations)?;
        all_confluent(&c.brokers, &topics.outreach)?;
        all_confluent(&c.brokers, &topics.dlq)?;
    }
    eprintln!("  {} scenarios through Kafka in the Confluent format ({determinations} determinations)", files.len());
    ensure(determinations > 0, || "no determination was written".into())?;
    ensure(failures.is_empty(), || failures.join("\n"))
}

/// `rollcall sink postgres --registry-url` keeps what a processor writing
/// the Confluent format decided, every version, with nothing set aside;
/// without the registry each such value is kept aside as WRONG_SCHEMA,
/// saying what to give.
fn sink_reads_confluent_outputs(c: &Ctx) -> TestResult {
    let s = district(60, 3, 5);
    let prefix = unique("cfsink");
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (out, _) =
        run_scenario_in(&c.brokers, &s, &prefix, dir.path(), &Format::confluent(&c.registry)).map_err(|e| format!("{e:#}"))?;
    ensure(!out.determinations.is_empty() && !out.outreach.is_empty(), || "the district decided nothing to keep".into())?;
    let topics = Topics::with_prefix(&prefix);
    all_confluent(&c.brokers, &topics.determinations)?;
    let sink = |url: &str, registry: Option<&str>| -> Result<(), String> {
        let mut cmd = Command::new(bin());
        cmd.args(["sink", "postgres", "--brokers", &c.brokers, "--database-url", url, "--topic-prefix", &prefix])
            .args(["--group", &format!("{prefix}sink"), "--exit-when-idle", "--metrics-addr", "off"])
            .env_remove("ROLLCALL_REGISTRY_URL");
        if let Some(r) = registry {
            cmd.args(["--registry-url", r]);
        }
        let run = cmd.output().map_err(|e| e.to_string())?;
        ensure(run.status.success(), || format!("the sink failed: {}", String::from_utf8_lossy(&run.stderr)))
    };
    let with = c.db.fresh("cfsink")?;
    sink(&with, Some(&c.registry))?;
    let pg = support::pg::Pg::connect(&with)?;
    let (versions, outreach, aside) =
        (pg.count("determination_versions")?, pg.count("outreach_triggers")?, pg.count("sink_dead_letters")?);
    ensure(versions == out.determinations.len() as i64 && outreach == out.outreach.len() as i64 && aside == 0, || {
        format!(
            "with the registry: {versions} versions of {}, {outreach} triggers of {}, {aside} set aside",
            out.determinations.len(),
            out.outreach.len()
        )
    })?;
    let without = c.db.fresh("cfsinknoreg")?;
    sink(&without, None)?;
    let pg = support::pg::Pg::connect(&without)?;
    let rows = pg.query(
        "SELECT count(*), count(*) FILTER (WHERE error_kind = 'WRONG_SCHEMA' AND message LIKE '%no schema registry is given%')
           FROM sink_dead_letters WHERE topic LIKE '%attendance.determinations.v1'",
    )?;
    let (all, said) = rows.first().map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1))).unwrap_or_default();
    ensure(all == out.determinations.len() as i64 && said == all && pg.count("determination_versions")? == 0, || {
        format!("without the registry: {all} set aside, {said} saying why, of {}", out.determinations.len())
    })
}

/// The v2 of ActivityEvent a producer might register: one optional field
/// more, with a default, so that BACKWARD compatibility holds.
fn activity_v2() -> Result<(String, Schema), String> {
    let mut json: serde_json::Value = serde_json::from_str(&schema_text::<ActivityEvent>()).map_err(|e| e.to_string())?;
    let fields = json.get_mut("fields").and_then(|f| f.as_array_mut()).ok_or("the schema has no fields")?;
    fields.push(serde_json::json!({ "name": "device", "type": ["null", "string"], "default": null }));
    let schema = Schema::parse(&json).map_err(|e| e.to_string())?;
    Ok((json.to_string(), schema))
}

/// An event's datum written with the v2 schema, framed with its id.
fn v2_frame(id: u32, schema: &Schema, e: &ActivityEvent) -> Result<Vec<u8>, String> {
    let Value::Record(mut fields) = e.to_avro_value() else { return Err("not a record".into()) };
    fields.push(("device".into(), Value::Union(1, Box::new(Value::String("chromebook".into())))));
    let datum = apache_avro::to_avro_datum(schema, Value::Record(fields)).map_err(|e| e.to_string())?;
    let mut out = vec![0u8];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&datum);
    Ok(out)
}

/// How the events of a scenario are written, by their index.
type EventFrame<'a> = &'a dyn Fn(usize, &ActivityEvent) -> Result<Vec<u8>, String>;

/// Produces `s` with its world in the Confluent format and each event as
/// `frame` writes it, runs the processor and checks the expectations.
fn run_with_events(c: &Ctx, s: &Scenario, prefix: &str, codec: &Codec, frame: EventFrame<'_>) -> TestResult {
    let topics = Topics::with_prefix(prefix);
    let p = producer(&c.brokers).map_err(|e| format!("{e:#}"))?;
    let world_ts = world_time(s);
    let enc = |e: rollcall_registry::EncodeError| e.to_string();
    for cal in &s.calendars {
        send(&p, &topics.calendar, &cal.school_id, &codec.encode(cal).map_err(enc)?, world_ts).map_err(|e| e.to_string())?;
    }
    for r in &s.roster {
        send(&p, &topics.roster, &r.student_id, &codec.encode(r).map_err(enc)?, world_ts).map_err(|e| e.to_string())?;
    }
    rdkafka::producer::Producer::flush(&p, Duration::from_secs(60)).map_err(|e| e.to_string())?;
    for r in &s.absence_reports {
        send(&p, &topics.reports, &r.student_id, &codec.encode(r).map_err(enc)?, r.reported_at).map_err(|e| e.to_string())?;
    }
    for (i, a) in s.events.iter().enumerate() {
        send(&p, &topics.activity, &a.event.student_id, &frame(i, &a.event)?, a.arrives_at).map_err(|e| e.to_string())?;
    }
    rdkafka::producer::Producer::flush(&p, Duration::from_secs(60)).map_err(|e| e.to_string())?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let stats =
        process_scenario(&c.brokers, s, prefix, dir.path(), &Format::confluent(&c.registry)).map_err(|e| format!("{e:#}"))?;
    let out = read_outputs_with(&c.brokers, &topics, codec).map_err(|e| format!("{e:#}"))?;
    ensure(out.dead_letters.is_empty(), || format!("dead letters: {:?}", out.dead_letters))?;
    ensure(stats.records as usize >= s.events.len(), || format!("{} records applied of {}", stats.records, s.events.len()))?;
    let failures = mismatches(s, &out, &s.name);
    ensure(failures.is_empty(), || failures.join("\n"))
}

fn input_codec(c: &Ctx, prefix: &str) -> Result<(Topics, Codec), String> {
    let topics = Topics::with_prefix(prefix);
    create_topics(&c.brokers, &topics, 3, 1).map_err(|e| format!("{e:#}"))?;
    let codec = Format::confluent(&c.registry).input_codec(&topics).map_err(|e| format!("{e:#}"))?;
    Ok((topics, codec))
}

/// Single-object and Confluent-framed events on one topic are both applied.
fn mixed_inputs_on_one_topic(c: &Ctx) -> TestResult {
    let s = scenario("mmsd-01-k5-live-join-and-submission.json")?;
    ensure(s.events.len() >= 2, || "the scenario needs two events at least".into())?;
    let prefix = unique("mixed");
    let (_, codec) = input_codec(c, &prefix)?;
    let frame = |i: usize, e: &ActivityEvent| -> Result<Vec<u8>, String> {
        if i.is_multiple_of(2) {
            e.to_single_object().map_err(|e| e.to_string())
        } else {
            codec.encode(e).map_err(|e| e.to_string())
        }
    };
    run_with_events(c, &s, &prefix, &codec, &frame)
}

/// A producer's v2 of ActivityEvent (one optional field more, with a
/// default) is accepted by the registry under BACKWARD compatibility, and
/// rollcall reads its records by schema resolution.
fn backward_compatible_v2_is_read(c: &Ctx) -> TestResult {
    let s = scenario("mmsd-01-k5-live-join-and-submission.json")?;
    let prefix = unique("v2");
    let (topics, codec) = input_codec(c, &prefix)?;
    let registry = Registry::new(&c.registry, None).map_err(|e| e.to_string())?;
    let (text, schema) = activity_v2()?;
    let v1 = codec.id_of::<ActivityEvent>().ok_or("v1 not registered")?;
    let v2 = registry.register(&value_subject(&topics.activity), &text).map_err(|e| format!("registering v2: {e}"))?;
    ensure(v2 != v1, || format!("v2 got v1's id {v1}"))?;
    let frame = |i: usize, e: &ActivityEvent| -> Result<Vec<u8>, String> {
        // v1 and v2 producers side by side, as while a district moves over.
        if i.is_multiple_of(2) {
            v2_frame(v2, &schema, e)
        } else {
            codec.encode(e).map_err(|e| e.to_string())
        }
    };
    run_with_events(c, &s, &prefix, &codec, &frame)
}

/// An incompatible v2 (a required field with no default) is refused by the
/// registry with 409 before anything reaches rollcall.
fn incompatible_v2_is_refused(c: &Ctx) -> TestResult {
    let prefix = unique("v2bad");
    let (topics, _) = input_codec(c, &prefix)?;
    let registry = Registry::new(&c.registry, None).map_err(|e| e.to_string())?;
    let mut json: serde_json::Value = serde_json::from_str(&schema_text::<ActivityEvent>()).map_err(|e| e.to_string())?;
    json["fields"].as_array_mut().ok_or("no fields")?.push(serde_json::json!({ "name": "device", "type": "string" }));
    match registry.register(&value_subject(&topics.activity), &json.to_string()) {
        Ok(id) => Err(format!("the registry accepted an incompatible v2 as id {id}")),
        Err(e) => ensure(e.status() == Some(409), || format!("expected 409, got {e}")),
    }
}

/// A Confluent-framed record whose schema id the registry does not know is
/// dead-lettered WRONG_SCHEMA, naming the id; the records around it are applied.
fn unknown_schema_id_is_dead_lettered(c: &Ctx) -> TestResult {
    let s = scenario("mmsd-01-k5-live-join-and-submission.json")?;
    let prefix = unique("unknown");
    let (topics, codec) = input_codec(c, &prefix)?;
    let unknown = 987_654_321u32;
    let p = producer(&c.brokers).map_err(|e| format!("{e:#}"))?;
    let world_ts = world_time(&s);
    for cal in &s.calendars {
        send(&p, &topics.calendar, &cal.school_id, &codec.encode(cal).map_err(|e| e.to_string())?, world_ts)
            .map_err(|e| e.to_string())?;
    }
    for r in &s.roster {
        send(&p, &topics.roster, &r.student_id, &codec.encode(r).map_err(|e| e.to_string())?, world_ts)
            .map_err(|e| e.to_string())?;
    }
    rdkafka::producer::Producer::flush(&p, Duration::from_secs(60)).map_err(|e| e.to_string())?;
    let a = s.events.first().ok_or("no events")?;
    let good = codec.encode(&a.event).map_err(|e| e.to_string())?;
    let bad = confluent_frame(unknown, &a.event).map_err(|e| e.to_string())?;
    send(&p, &topics.activity, &a.event.student_id, &bad, a.arrives_at).map_err(|e| e.to_string())?;
    send(&p, &topics.activity, &a.event.student_id, &good, a.arrives_at).map_err(|e| e.to_string())?;
    rdkafka::producer::Producer::flush(&p, Duration::from_secs(60)).map_err(|e| e.to_string())?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let stats =
        process_scenario(&c.brokers, &s, &prefix, dir.path(), &Format::confluent(&c.registry)).map_err(|e| format!("{e:#}"))?;
    let mut letters = Vec::new();
    read_topic(&c.brokers, &topics.dlq, |v, _| {
        letters.push(codec.decode::<DeadLetter>(v).map_err(|e| rollcall_kafka::KafkaError::Setup(e.to_string()))?);
        Ok(())
    })
    .map_err(|e| format!("{e:#}"))?;
    ensure(letters.len() == 1, || format!("expected one dead letter, got {letters:?}"))?;
    let d = &letters[0];
    ensure(d.error_kind == DeadLetterKind::WrongSchema.as_str(), || format!("kind {}", d.error_kind))?;
    ensure(d.message.contains(&unknown.to_string()), || format!("the message does not name the id: {}", d.message))?;
    ensure(d.value == bad, || "the dead letter does not keep the record's bytes".into())?;
    ensure(stats.dead_letters == 1, || format!("{} dead letters counted", stats.dead_letters))?;
    let mut determinations = 0;
    read_topic(&c.brokers, &topics.determinations, |v, _| {
        codec.decode::<Determination>(v).map_err(|e| rollcall_kafka::KafkaError::Setup(e.to_string()))?;
        determinations += 1;
        Ok(())
    })
    .map_err(|e| format!("{e:#}"))?;
    eprintln!("  dead letter: {}", d.message);
    ensure(determinations > 0, || "the good record next to it was not applied".into())
}

/// The Python the Confluent client runs in: a venv under
/// $HOME/.cache/rollcall with PyPI's confluent-kafka[avro,schemaregistry],
/// made on first use.
fn python() -> Result<PathBuf, String> {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
    let venv = home.join(".cache/rollcall/venv-confluent");
    let py = venv.join("bin/python");
    let ready = |py: &Path| {
        Command::new(py)
            .args(["-c", "import confluent_kafka.schema_registry.avro, fastavro"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if ready(&py) {
        return Ok(py);
    }
    eprintln!("  making {} with confluent-kafka[avro,schemaregistry] from PyPI", venv.display());
    let status =
        Command::new("python3").arg("-m").arg("venv").arg(&venv).status().map_err(|e| format!("python3 -m venv: {e}"))?;
    ensure(status.success(), || format!("python3 -m venv {} failed (apt-get install python3-venv)", venv.display()))?;
    let status = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "confluent-kafka[avro,schemaregistry]==2.16.1"])
        .status()
        .map_err(|e| format!("pip: {e}"))?;
    ensure(status.success() && ready(&py), || "pip install confluent-kafka[avro,schemaregistry] failed".into())?;
    Ok(py)
}

fn client(args: &[&str]) -> Result<String, String> {
    let py = python()?;
    let out = Command::new(&py)
        .arg(repo().join("tests/python/confluent_client.py"))
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("{}: {e}", py.display()))?;
    ensure(out.status.success(), || format!("confluent_client.py {} failed: {}", args[0], String::from_utf8_lossy(&out.stdout)))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The real Confluent client (AvroDeserializer, read_committed) reads
/// rollcall's determinations and outreach, and what it reads meets the
/// scenario's expectations.
fn confluent_client_reads_the_outputs(c: &Ctx) -> TestResult {
    let s = scenario("cms-04-remote-hardship-path.json")?;
    ensure(!s.expect.outreach.is_empty(), || "the scenario needs expected outreach".into())?;
    let prefix = unique("pyread");
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (ours, _) =
        run_scenario_in(&c.brokers, &s, &prefix, dir.path(), &Format::confluent(&c.registry)).map_err(|e| format!("{e:#}"))?;
    let topics = Topics::with_prefix(&prefix);
    let text = client(&["read", &c.brokers, &c.registry, &topics.determinations, &topics.outreach])?;
    let mut out = rollcall_scenario::RunOutput::default();
    for line in text.lines() {
        let j: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("{e}: {line}"))?;
        let value = j["value"].clone();
        if j["topic"] == topics.determinations.as_str() {
            let d: Determination = serde_json::from_value(value).map_err(|e| format!("a determination: {e}: {line}"))?;
            ensure(j["key"].as_str() == Some(d.key().as_str()), || format!("key {} of {}", j["key"], d.key()))?;
            out.determinations.push(d);
        } else {
            out.outreach.push(serde_json::from_value(value).map_err(|e| format!("an outreach trigger: {e}: {line}"))?);
        }
    }
    out.determinations.sort_by_key(|d| (d.key(), d.version));
    eprintln!("  the Confluent client read {} determinations, {} outreach", out.determinations.len(), out.outreach.len());
    ensure(out.determinations.len() == ours.determinations.len() && out.outreach.len() == ours.outreach.len(), || {
        format!(
            "the client read {} determinations and {} outreach; rollcall wrote {} and {}",
            out.determinations.len(),
            out.outreach.len(),
            ours.determinations.len(),
            ours.outreach.len()
        )
    })?;
    let failures = mismatches(&s, &out, "read by confluent-kafka");
    ensure(failures.is_empty(), || failures.join("\n"))
}

/// A datum's value tree as the JSON fastavro takes for it: unions by their
/// value, enums by symbol, dates and instants as their numbers.
fn fastavro_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Null => J::Null,
        Value::Boolean(b) => J::Bool(*b),
        Value::Int(i) | Value::Date(i) | Value::TimeMillis(i) => J::from(*i),
        Value::Long(i) | Value::TimestampMicros(i) | Value::TimestampMillis(i) | Value::TimeMicros(i) => J::from(*i),
        Value::Float(f) => J::from(f64::from(*f)),
        Value::Double(f) => J::from(*f),
        Value::String(s) | Value::Enum(_, s) => J::String(s.clone()),
        Value::Union(_, v) => fastavro_json(v),
        Value::Array(items) => J::Array(items.iter().map(fastavro_json).collect()),
        Value::Map(m) => J::Object(m.iter().map(|(k, v)| (k.clone(), fastavro_json(v))).collect()),
        Value::Record(fields) => J::Object(fields.iter().map(|(k, v)| (k.clone(), fastavro_json(v))).collect()),
        other => J::String(format!("{other:?}")),
    }
}

fn entry<T: AvroRecord>(topic: &str, key: &str, at: chrono::DateTime<chrono::Utc>, r: &T) -> serde_json::Value {
    serde_json::json!({
        "topic": topic,
        "key": key,
        "timestamp_ms": at.timestamp_millis(),
        "schema": T::SCHEMA_FILE,
        "value": fastavro_json(&r.to_avro_value()),
    })
}

/// The real Confluent client's AvroSerializer produces a scenario's
/// calendars, roster and events; rollcall processes them into the expected
/// determinations and outreach.
fn confluent_client_writes_the_inputs(c: &Ctx) -> TestResult {
    let s = scenario("cms-04-remote-hardship-path.json")?;
    let prefix = unique("pywrite");
    let topics = Topics::with_prefix(&prefix);
    create_topics(&c.brokers, &topics, 3, 1).map_err(|e| format!("{e:#}"))?;
    let world_ts = world_time(&s);
    let mut records = Vec::new();
    for cal in &s.calendars {
        records.push(entry(&topics.calendar, &cal.school_id, world_ts, cal));
    }
    for r in &s.roster {
        records.push(entry(&topics.roster, &r.student_id, world_ts, r));
    }
    for r in &s.absence_reports {
        records.push(entry(&topics.reports, &r.student_id, r.reported_at, r));
    }
    for a in &s.events {
        records.push(entry(&topics.activity, &a.event.student_id, a.arrives_at, &a.event));
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = dir.path().join("records.json");
    std::fs::write(&file, serde_json::to_string(&records).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let schemas = repo().join("schemas");
    let delivered = client(&["produce", &c.brokers, &c.registry, &schemas.display().to_string(), &file.display().to_string()])?;
    ensure(delivered.trim() == records.len().to_string(), || format!("delivered {delivered} of {}", records.len()))?;
    // Every value on the inputs is the Confluent client's.
    ensure(all_confluent(&c.brokers, &topics.activity)? == s.events.len(), || "not every event arrived".into())?;
    let state = dir.path().join("state");
    process_scenario(&c.brokers, &s, &prefix, &state, &Format::confluent(&c.registry)).map_err(|e| format!("{e:#}"))?;
    let codec = Codec::new(
        ValueFormat::Confluent,
        Some(std::sync::Arc::new(Registry::new(&c.registry, None).map_err(|e| e.to_string())?)),
    );
    let out = read_outputs_with(&c.brokers, &topics, &codec).map_err(|e| format!("{e:#}"))?;
    ensure(out.dead_letters.is_empty(), || format!("dead letters: {:?}", out.dead_letters))?;
    eprintln!("  {} records from confluent-kafka; {} determinations", records.len(), out.determinations.len());
    let failures = mismatches(&s, &out, "written by confluent-kafka");
    ensure(failures.is_empty(), || failures.join("\n"))
}

/// `rollcall tail` prints Confluent-framed outputs with --registry-url,
/// and single-object ones with or without it.
fn tail_reads_both_formats(c: &Ctx) -> TestResult {
    let s = scenario("mmsd-01-k5-live-join-and-submission.json")?;
    let mut counts = Vec::new();
    for (name, format) in [("tailso", Format::default()), ("tailcf", Format::confluent(&c.registry))] {
        let prefix = unique(name);
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (out, _) = run_scenario_in(&c.brokers, &s, &prefix, dir.path(), &format).map_err(|e| format!("{e:#}"))?;
        let topic = Topics::with_prefix(&prefix).determinations;
        let run = Command::new(bin())
            .args(["tail", &topic, "--brokers", &c.brokers, "--from-beginning", "--exit-at-end", "--registry-url", &c.registry])
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("rollcall tail: {e}"))?;
        let text = String::from_utf8_lossy(&run.stdout);
        let mut n = 0;
        for line in text.lines() {
            let d: Determination = serde_json::from_str(line).map_err(|e| format!("{name}: {e}: {line}"))?;
            ensure(d.student_id.starts_with('s'), || format!("{name}: {line}"))?;
            n += 1;
        }
        ensure(run.status.success() && n == out.determinations.len(), || {
            format!(
                "{name}: tail printed {n} determinations of {}: {}",
                out.determinations.len(),
                String::from_utf8_lossy(&run.stderr)
            )
        })?;
        counts.push(n);
    }
    eprintln!("  tail printed {counts:?} determinations (single-object, confluent)");
    Ok(())
}

/// A registry that does not answer at start-up is waited for, then named
/// with what to check; the processor does not start without it.
fn a_registry_that_is_down_at_start_is_named(c: &Ctx) -> TestResult {
    // A loopback port nothing listens on: bound, then closed.
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}/apis/ccompat/v7");
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let cfg = rollcall_kafka::ProcessorConfig {
        brokers: c.brokers.clone(),
        group: unique("down"),
        state_dir: dir.path().to_path_buf(),
        value_format: ValueFormat::Confluent,
        registry_url: url.clone(),
        registry_wait_seconds: 2,
        metrics_addr: "off".into(),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let e = match rollcall_kafka::Processor::new(cfg, std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false))) {
        Ok(_) => return Err("the processor started without its registry".into()),
        Err(e) => format!("{e:#}"),
    };
    ensure(started.elapsed() >= Duration::from_secs(2), || format!("gave up after {:?}", started.elapsed()))?;
    ensure(e.contains(&url) && e.contains("registry_wait_seconds"), || format!("the message: {e}"))?;
    eprintln!("  {e}");
    Ok(())
}

/// Ids already seen are read on after the registry goes away; a new id is
/// then a failure to try again (not a dead letter), and the registry's own
/// 404 for an unknown id is what makes a dead letter. Uses a registry of
/// its own, stopped halfway.
fn a_registry_that_goes_away_keeps_the_cached_ids(_c: &Ctx) -> TestResult {
    let run_dir = std::env::temp_dir().join(format!("rollcall-registry-away-{}", std::process::id()));
    let script = repo().join("scripts/registry.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("start")
        .env("ROLLCALL_REGISTRY_RUN", &run_dir)
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("scripts/registry.sh: {e}"))?;
    let stop =
        || Command::new("bash").arg(&script).arg("stop").env("ROLLCALL_REGISTRY_RUN", &run_dir).stderr(Stdio::null()).status();
    let url = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_string();
    let result = (|| -> TestResult {
        ensure(out.status.success(), || "scripts/registry.sh start failed".into())?;
        let registry = std::sync::Arc::new(Registry::new(&url, None).map_err(|e| e.to_string())?);
        let mut writer = Codec::new(ValueFormat::Confluent, Some(registry));
        writer.register::<ActivityEvent>("away.lms.activity.v1").map_err(|e| e.to_string())?;
        let mut other =
            Codec::new(ValueFormat::Confluent, Some(std::sync::Arc::new(Registry::new(&url, None).map_err(|e| e.to_string())?)));
        other.register::<Determination>("away.attendance.determinations.v1").map_err(|e| e.to_string())?;
        let s = scenario("mmsd-01-k5-live-join-and-submission.json")?;
        let e = &s.events.first().ok_or("no events")?.event;
        let bytes = writer.encode(e).map_err(|e| e.to_string())?;
        let unknown = confluent_frame(424_242, e).map_err(|e| e.to_string())?;
        // A reader of its own, which has seen no id yet.
        let reader = Codec::new(
            ValueFormat::SingleObject,
            Some(std::sync::Arc::new(Registry::new(&url, None).map_err(|e| e.to_string())?)),
        );
        ensure(reader.decode::<ActivityEvent>(&bytes).map_err(|e| e.to_string())? == *e, || "decoded another event".into())?;
        match reader.decode::<ActivityEvent>(&unknown) {
            Err(rollcall_registry::DecodeError::UnknownId { id: 424_242 }) => {}
            other => return Err(format!("an unknown id while the registry is up: {other:?}")),
        }
        ensure(stop().is_ok_and(|s| s.success()), || "scripts/registry.sh stop failed".into())?;
        ensure(reader.decode::<ActivityEvent>(&bytes).map_err(|e| format!("a cached id: {e}"))? == *e, || {
            "decoded another event".into()
        })?;
        let determination_id = other.id_of::<Determination>().ok_or("no id")?;
        let new_id = confluent_frame(determination_id, e).map_err(|e| e.to_string())?;
        match reader.decode::<ActivityEvent>(&new_id) {
            Err(rollcall_registry::DecodeError::Registry { source, .. }) if source.is_transient() => Ok(()),
            other => Err(format!("an id not seen, with the registry gone: {other:?}")),
        }
    })();
    let _ = stop();
    result
}

pub fn area() -> Area {
    let tests = service_tests![
        [Need::Broker, Need::Registry, Need::Database],
        |e| (&Ctx { brokers: e.broker().to_string(), registry: e.registry().to_string(), db: e.database_handle() });
        incompatible_v2_is_refused,
        unknown_schema_id_is_dead_lettered,
        mixed_inputs_on_one_topic,
        backward_compatible_v2_is_read,
        a_registry_that_is_down_at_start_is_named,
        tail_reads_both_formats,
        sink_reads_confluent_outputs,
        a_registry_that_goes_away_keeps_the_cached_ids,
        confluent_client_reads_the_outputs,
        confluent_client_writes_the_inputs,
        scenarios_pass_in_the_confluent_format,
    ];
    Area::new("registry", Duration::from_secs(1_800), tests)
}
