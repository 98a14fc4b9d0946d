//! Scenarios through real topics: produce a scenario's world and events
//! (each event's `arrives_at` as its record timestamp), run a processor with
//! the replay clock to the scenario's `now`, and read the outputs back
//! read_committed — the same `RunOutput` the in-memory runner gives.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use rollcall_model::avro::AvroRecord;
use rollcall_model::{AbsenceReport, ActivityEvent, DeadLetter, Determination, OutreachTrigger, SchoolCalendar, StudentRecord};
use rollcall_registry::{Codec, DecodeError, EncodeError, Registry, RegistryError, ValueFormat};
use rollcall_scenario::{DeadLetter as ScenarioDeadLetter, RunOutput, Scenario};

use crate::config::{ClockMode, ProcessorConfig};
use crate::wire::Topics;
use crate::{KafkaError, Processor, RunStats};

fn rd(what: &str, e: RdError) -> KafkaError {
    KafkaError::kafka(what, e)
}

/// A producer that partitions keys as the Java client does, so that records
/// from any producer of the district land in the same partitions.
pub fn producer(brokers: &str) -> Result<BaseProducer, KafkaError> {
    producer_config(brokers).set("linger.ms", "20").create().map_err(|e| rd("producer", e))
}

/// The settings of every producer of district records: Java's partitioning
/// of keys, idempotent delivery.
pub(crate) fn producer_config(brokers: &str) -> rdkafka::ClientConfig {
    let mut c = crate::client_config(brokers);
    c.set("partitioner", "murmur2_random").set("enable.idempotence", "true");
    c
}

/// Sends one record, waiting when the local queue is full.
pub fn send(p: &BaseProducer, topic: &str, key: &str, value: &[u8], ts: DateTime<Utc>) -> Result<(), KafkaError> {
    enqueue(p, BaseRecord::to(topic).key(key).payload(value).timestamp(ts.timestamp_millis()))
}

/// Hands a record to librdkafka, polling while its local queue is full:
/// the one loop of every producer here that waits rather than fails.
pub(crate) fn enqueue<C: rdkafka::producer::ProducerContext<DeliveryOpaque = ()>>(
    p: &BaseProducer<C>,
    mut rec: BaseRecord<'_, str, [u8]>,
) -> Result<(), KafkaError> {
    loop {
        match p.send(rec) {
            Ok(()) => return Ok(()),
            Err((RdError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), r)) => {
                p.poll(Duration::from_millis(50));
                rec = r;
            }
            Err((e, r)) => return Err(rd(&format!("produce to {}", r.topic), e)),
        }
    }
}

fn encode<T: AvroRecord>(codec: &Codec, r: &T) -> Result<Vec<u8>, KafkaError> {
    let what = || format!("encoding a scenario record ({})", T::SCHEMA_FILE);
    codec.encode(r).map_err(|e| match e {
        EncodeError::Avro(e) => KafkaError::record(what(), e),
        e => KafkaError::Registry { what: what(), source: Box::new(e), transient: false },
    })
}

/// The value format of a run through Kafka: what the processor writes, and
/// the registry it and the runner use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Format {
    pub value_format: ValueFormat,
    /// The registry's Confluent API; needed by the Confluent format.
    pub registry_url: String,
}

impl Format {
    pub fn confluent(registry_url: &str) -> Format {
        Format { value_format: ValueFormat::Confluent, registry_url: registry_url.to_string() }
    }

    /// The codec that writes the inputs of `topics` as a producer of this
    /// format would (the Confluent format: each input's schema registered
    /// under its topic's subject), and reads outputs in either format.
    pub fn input_codec(&self, topics: &Topics) -> Result<Codec, KafkaError> {
        if self.registry_url.is_empty() {
            return Ok(Codec::new(self.value_format, None));
        }
        let reg =
            |what: String, e: RegistryError| KafkaError::Registry { what, transient: e.is_transient(), source: Box::new(e) };
        let registry = Registry::new(&self.registry_url, None).map_err(|e| reg("registry_url".into(), e))?;
        let mut codec = Codec::new(self.value_format, Some(Arc::new(registry)));
        if self.value_format == ValueFormat::Confluent {
            let what = |t: &str| format!("registering the value schema of {t}");
            codec.register::<SchoolCalendar>(&topics.calendar).map_err(|e| reg(what(&topics.calendar), e))?;
            codec.register::<StudentRecord>(&topics.roster).map_err(|e| reg(what(&topics.roster), e))?;
            codec.register::<AbsenceReport>(&topics.reports).map_err(|e| reg(what(&topics.reports), e))?;
            codec.register::<ActivityEvent>(&topics.activity).map_err(|e| reg(what(&topics.activity), e))?;
        }
        Ok(codec)
    }
}

/// The timestamp of a scenario's calendars and roster: a second before its
/// first report or event (the world comes before anything that happens in
/// it), so a replay-clock processor knows them first.
pub fn world_time(s: &Scenario) -> chrono::DateTime<chrono::Utc> {
    let first = s
        .events
        .iter()
        .map(|a| a.arrives_at)
        .chain(s.absence_reports.iter().map(|r| r.reported_at))
        .chain(std::iter::once(s.now))
        .min()
        .unwrap_or(s.now);
    first - chrono::Duration::seconds(1)
}

/// Produces a scenario's calendars, roster, absence reports and events.
pub fn produce_scenario(brokers: &str, topics: &Topics, s: &Scenario) -> Result<u64, KafkaError> {
    produce_scenario_with(brokers, topics, s, &Codec::single_object())
}

/// [`produce_scenario`], each value written by `codec`.
pub fn produce_scenario_with(brokers: &str, topics: &Topics, s: &Scenario, codec: &Codec) -> Result<u64, KafkaError> {
    let p = producer(brokers)?;
    let world_ts = world_time(s);
    let mut n = 0u64;
    for c in &s.calendars {
        let mut c = c.clone();
        if let Some(policy) = &s.custom_policy {
            if c.policy == s.policy {
                c.policy = policy.id.clone();
            }
        }
        send(&p, &topics.calendar, &c.school_id, &encode(codec, &c)?, world_ts)?;
        n += 1;
    }
    for r in &s.roster {
        send(&p, &topics.roster, &r.student_id, &encode(codec, r)?, world_ts)?;
        n += 1;
    }
    // On the broker before anything that happens in it: a processor that
    // runs while this produces must not read a partition's reports and
    // events before its roster records, which would still be in flight in
    // another partition's batch.
    p.flush(Duration::from_secs(60)).map_err(|e| rd("flush", e))?;
    for r in &s.absence_reports {
        send(&p, &topics.reports, &r.student_id, &encode(codec, r)?, r.reported_at)?;
        n += 1;
    }
    for a in &s.events {
        send(&p, &topics.activity, &a.event.student_id, &encode(codec, &a.event)?, a.arrives_at)?;
        n += 1;
    }
    p.flush(Duration::from_secs(60)).map_err(|e| rd("flush", e))?;
    Ok(n)
}

/// Reads one topic from the beginning to its end, read_committed; passes
/// each value (not the tombstones) with its offset.
pub fn read_topic(
    brokers: &str,
    topic: &str,
    mut each: impl FnMut(&[u8], i64) -> Result<(), KafkaError>,
) -> Result<(), KafkaError> {
    // A tombstone (an erased student's key on a compacted topic) is no
    // record of anything.
    read_records(brokers, topic, |_, value, offset| value.map_or(Ok(()), |v| each(v, offset))).map(|_| ())
}

/// Reads one topic from the beginning to its end, read_committed; passes
/// each record's key, value (`None`: a tombstone) and offset. Returns how
/// many partitions the topic has (0: there is no such topic).
pub(crate) fn read_records(
    brokers: &str,
    topic: &str,
    mut each: impl FnMut(Option<&[u8]>, Option<&[u8]>, i64) -> Result<(), KafkaError>,
) -> Result<usize, KafkaError> {
    // One consumer per topic: an end-of-partition event names only the partition.
    let consumer = crate::reader(brokers, &format!("rollcall-reader-{}", std::process::id()))?;
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(30)).map_err(|e| rd("metadata", e))?;
    let mut tpl = TopicPartitionList::new();
    for t in md.topics() {
        for part in t.partitions() {
            tpl.add_partition_offset(topic, part.id(), Offset::Beginning).map_err(|e| rd("assign", e))?;
        }
    }
    let total = tpl.count();
    consumer.assign(&tpl).map_err(|e| rd("assign", e))?;
    let mut ended = std::collections::HashSet::new();
    let started = Instant::now();
    while ended.len() < total {
        if started.elapsed() > Duration::from_secs(120) {
            return Err(KafkaError::kafka_step(format!("reading {topic} did not reach the end in 120 s")));
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(RdError::PartitionEOF(p))) => {
                ended.insert(p);
            }
            Some(Err(e)) => return Err(rd(&format!("read {topic}"), e)),
            Some(Ok(m)) => {
                ended.remove(&m.partition());
                each(m.key(), m.payload(), m.offset())?;
            }
        }
    }
    Ok(total)
}

/// Reads every committed output record (determinations, outreach, dead letters).
pub fn read_outputs(brokers: &str, topics: &Topics) -> Result<RunOutput, KafkaError> {
    read_outputs_with(brokers, topics, &Codec::single_object())
}

/// [`read_outputs`], each value read by `codec` (in either format).
pub fn read_outputs_with(brokers: &str, topics: &Topics, codec: &Codec) -> Result<RunOutput, KafkaError> {
    let mut out = RunOutput::default();
    let bad = |t: &str, o: i64, e: DecodeError| KafkaError::Registry {
        what: format!("decoding {t} @{o}"),
        transient: false,
        source: Box::new(e),
    };
    read_topic(brokers, &topics.determinations, |v, o| {
        out.determinations.push(codec.decode::<Determination>(v).map_err(|e| bad(&topics.determinations, o, e))?);
        Ok(())
    })?;
    read_topic(brokers, &topics.outreach, |v, o| {
        out.outreach.push(codec.decode::<OutreachTrigger>(v).map_err(|e| bad(&topics.outreach, o, e))?);
        Ok(())
    })?;
    read_topic(brokers, &topics.dlq, |v, o| {
        let d = codec.decode::<DeadLetter>(v).map_err(|e| bad(&topics.dlq, o, e))?;
        let event_id = codec.decode::<ActivityEvent>(&d.value).ok().map(|e| e.event_id);
        out.dead_letters.push(ScenarioDeadLetter {
            source: format!("{}@{}", d.topic, d.offset.unwrap_or(-1)),
            event_id,
            error_kind: d.error_kind.parse().map_err(|e| KafkaError::bad_state(format!("{} @{o}: {e}", topics.dlq)))?,
            message: d.message,
        });
        Ok(())
    })?;
    // Output partitions interleave; within a key, versions are in order.
    out.determinations.sort_by_key(|d| (d.key(), d.version));
    Ok(out)
}

/// Runs one scenario end to end through the broker: fresh topics under a
/// unique prefix, a processor with the replay clock, the outputs read back.
pub fn run_scenario(brokers: &str, s: &Scenario, prefix: &str, state_dir: &Path) -> Result<(RunOutput, RunStats), KafkaError> {
    run_scenario_in(brokers, s, prefix, state_dir, &Format::default())
}

/// [`run_scenario`] in a value format: the inputs are produced in it, the
/// processor writes it, and the outputs are read back through the registry.
pub fn run_scenario_in(
    brokers: &str,
    s: &Scenario,
    prefix: &str,
    state_dir: &Path,
    format: &Format,
) -> Result<(RunOutput, RunStats), KafkaError> {
    let topics = Topics::with_prefix(prefix);
    crate::topics::create_topics(brokers, &topics, 3, 1)?;
    let codec = format.input_codec(&topics)?;
    produce_scenario_with(brokers, &topics, s, &codec)?;
    let stats = process_scenario(brokers, s, prefix, state_dir, format)?;
    let out = read_outputs_with(brokers, &topics, &codec)?;
    Ok((out, stats))
}

/// Runs a processor with the replay clock over what is on the topics behind
/// `prefix` to the scenario's `now` (its policy file, if it has one),
/// writing `format`, and stops once it is idle.
pub fn process_scenario(
    brokers: &str,
    s: &Scenario,
    prefix: &str,
    state_dir: &Path,
    format: &Format,
) -> Result<RunStats, KafkaError> {
    let cfg = ProcessorConfig {
        brokers: brokers.to_string(),
        group: format!("{prefix}group"),
        state_dir: state_dir.to_path_buf(),
        instance_id: "scenario".into(),
        clock: ClockMode::Replay,
        until: Some(s.now),
        exit_when_idle: true,
        topic_prefix: prefix.to_string(),
        batch_max_ms: 100,
        value_format: format.value_format,
        registry_url: format.registry_url.clone(),
        ..ProcessorConfig::default()
    };
    let mut cfg = cfg;
    if let Some(p) = &s.custom_policy {
        // The processor reads policy files; hand it this one through a file.
        let f = state_dir.join("scenario-policy.toml");
        let text = toml_of(p)?;
        std::fs::create_dir_all(state_dir)
            .map_err(|e| KafkaError::local(format!("state directory {}", state_dir.display()), e))?;
        std::fs::write(&f, text).map_err(|e| KafkaError::local(format!("policy file {}", f.display()), e))?;
        cfg.policy_files.push(f);
    }
    let mut proc = Processor::new(cfg, Arc::new(AtomicBool::new(false)))?;
    let stats = proc.run()?;
    drop(proc);
    Ok(stats)
}

fn toml_of(p: &rollcall_policy::Policy) -> Result<String, KafkaError> {
    toml::to_string(p).map_err(|e| KafkaError::Setup(format!("policy {}: {e}", p.id)))
}
