//! The processor: one consumer group over the keyed input topics, one engine
//! and one RocksDB per assigned partition, and consume–process–produce
//! inside Kafka transactions.
//!
//! Recovery protocol (ARCHITECTURE.md has the crash points):
//! - every state write of a batch goes to the group's changelog, `<group>-changelog` (partition =
//!   input partition) in the batch's transaction, together with the outputs,
//!   the dead letters and the consumed offsets (including, in the `meta`
//!   table, the task's own input positions);
//! - only after the transaction commits is the batch written to the local
//!   RocksDB, with the changelog position it reflects;
//! - on assignment a task reads its changelog from that position to the end
//!   (read_committed), so local state equals the committed transactions, and
//!   its input positions equal the group's committed offsets;
//! - an aborted transaction (fenced, failed, rebalanced) rolls the buffered
//!   state back and rewinds the consumer to the task's positions.
//!
//! One file per concern: `contexts` (what librdkafka calls back), `clients`
//! (building the clients), `run` (the loop and its reconnects), `calendars`
//! (the calendar feed), `fetch` (polling, and which inputs are at their
//! end), `apply` (applying a batch; the replay merge), `txn` (commit, abort,
//! rollback, rebalance), `restore` (opening a task from its changelog),
//! `positions` (the input positions kept with the state) and `metrics_glue`
//! (the gauges the loop keeps current).

mod apply;
mod calendars;
mod clients;
mod contexts;
mod fetch;
pub(crate) mod metrics_glue;
pub(crate) mod positions;
mod restore;
mod run;
mod txn;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError as RdError;
use rdkafka::producer::ThreadedProducer;
use rollcall_engine::{Engine, EngineConfig, MemStore};
use rollcall_model::{DeadLetter, DeadLetterKind, Determination, OutreachTrigger, SchoolCalendar};
use rollcall_policy::Policy;
use rollcall_registry::{Codec, Credentials, Registry, RegistryError, ValueFormat};
use rollcall_store::RocksStore;
use tracing::{info, warn};

use crate::config::{ClockMode, ProcessorConfig};
use crate::wire::Topics;
use crate::KafkaError;
use clients::connect;
use contexts::{DeliveryContext, GroupContext};

pub(crate) const META_POSITIONS: &[u8] = b"input_positions";
pub(crate) const META_REFUSED: &[u8] = b"refused_above_positions";
pub(crate) const META_CHANGELOG_POS: &[u8] = b"changelog_position";
/// In the state of partition 0's task: per calendar partition, the next
/// offset whose refusal is still to be dead-lettered (see `calendars`).
const META_CALENDAR_DEAD: &[u8] = b"calendar_dead_letter_positions";

/// Counters of one processor run, for logs, tests and metrics.
#[derive(Debug, Default, Clone)]
pub struct RunStats {
    pub records: u64,
    pub dead_letters: u64,
    pub determinations: u64,
    pub outreach: u64,
    /// Students erased (`rollcall forget`).
    pub forgotten: u64,
    pub transactions: u64,
    pub aborted: u64,
    pub restored_records: u64,
    /// Times the Kafka clients were rebuilt after failing.
    pub reconnects: u64,
}

/// One assigned partition: its engine, state and input positions.
struct Task {
    partition: i32,
    engine: Engine<RocksStore>,
    /// Next offset to apply, per keyed input topic.
    positions: BTreeMap<String, i64>,
    /// Records at or above their topic's position that were already
    /// dead-lettered (replay applies in timestamp order, so a refused record
    /// can lie above a record still waiting): a restart reads them again,
    /// and they must not be dead-lettered twice. Kept with the positions.
    refused: BTreeSet<(String, i64)>,
    /// Records fetched but held back until the inputs' timestamps allow them (replay clock).
    buffered: Vec<Record>,
    /// Next offset after the last record fetched, per keyed input topic.
    fetched: BTreeMap<String, i64>,
    /// Input topics of this partition at their end.
    at_end: HashSet<String>,
    /// High watermarks the broker gave for inputs this task had not consumed from.
    broker_high: HashMap<String, i64>,
    /// Every input has been read to its end once: until then the wall clock
    /// does not move this task, so closes see the whole roster.
    caught_up: bool,
    dirty: bool,
}

#[derive(Debug, Clone)]
struct Record {
    topic: String,
    partition: i32,
    offset: i64,
    timestamp: Option<i64>,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    /// Wall-clock milliseconds when the processor received it (for metrics).
    received_ms: i64,
    /// A roster tombstone with the `rollcall.forget` header: erase the student.
    forget: bool,
}

#[cfg(test)]
impl Record {
    /// A record with what the merge and the positions look at: where it is
    /// and when it happened.
    fn at(topic: &str, offset: i64, timestamp: Option<i64>) -> Record {
        Record {
            topic: topic.to_string(),
            partition: 0,
            offset,
            timestamp,
            key: None,
            value: None,
            received_ms: 0,
            forget: false,
        }
    }
}

/// The processor.
pub struct Processor {
    cfg: ProcessorConfig,
    topics: Topics,
    consumer: BaseConsumer<GroupContext>,
    /// Threaded: delivery reports are served in the background, which an
    /// abort needs to purge what was in flight.
    producer: ThreadedProducer<DeliveryContext>,
    calendars: BaseConsumer<crate::QuietContext>,
    known_calendars: BTreeMap<String, SchoolCalendar>,
    /// An engine with no state of its own, with the policies: a calendar
    /// it refuses is refused by every task, and is a dead letter.
    calendar_check: Engine<MemStore>,
    /// Refused calendar records read by the feed, until the owner of
    /// partition 0 has dead-lettered them.
    calendar_dead: Vec<(DeadLetterKind, DeadLetter)>,
    calendars_at_end: bool,
    policies: Vec<Policy>,
    tasks: BTreeMap<i32, Task>,
    /// When the calendar topic's end was last asked for.
    calendar_end_asked: Option<std::time::Instant>,
    in_txn: bool,
    stats: RunStats,
    stop: Arc<AtomicBool>,
    metrics: crate::metrics::Recorder,
    /// Dead letters are logged as a summary per interval.
    dead_log: crate::dead_log::DeadLetterLog,
    /// Writes the outputs in the configured format, reads inputs in either.
    codec: Arc<Codec>,
    /// How many threads apply a batch's tasks, fixed at start.
    apply_threads: usize,
}

/// The district policy files, each checked against the presets: a file
/// that takes a preset's id replaces it for every school that names it, so
/// that needs saying (`replace_presets`). Logs every policy in force.
fn load_policies(cfg: &ProcessorConfig) -> Result<Vec<Policy>, KafkaError> {
    let mut policies: Vec<Policy> = Vec::new();
    for f in &cfg.policy_files {
        let p = Policy::load(f).map_err(|e| KafkaError::Setup(rollcall_model::error_chain(&e)))?;
        if rollcall_policy::PRESET_IDS.contains(&p.id.as_str()) && !cfg.replace_presets.contains(&p.id) {
            return Err(KafkaError::Setup(format!(
                "{}: its id `{}` is a preset's, so it would replace the preset for every school whose calendar names \
                 `{}`. Give the district's policy an id of its own (and name it in those calendars), or say that it \
                 replaces the preset: --replace-preset {} (config replace_presets)",
                f.display(),
                p.id,
                p.id,
                p.id
            )));
        }
        if let Some(other) = policies.iter().find(|o| o.id == p.id) {
            return Err(KafkaError::Setup(format!("{}: policy id `{}` is given by two files", f.display(), other.id)));
        }
        policies.push(p);
    }
    for id in rollcall_policy::PRESET_IDS {
        match cfg.policy_files.iter().zip(&policies).find(|(_, p)| p.id == *id) {
            Some((f, _)) => warn!(policy = %id, source = %f.display(), "preset replaced by a policy file"),
            None => info!(policy = %id, source = "preset", "policy in force"),
        }
    }
    for (f, p) in cfg.policy_files.iter().zip(&policies) {
        if !rollcall_policy::PRESET_IDS.contains(&p.id.as_str()) {
            info!(policy = %p.id, source = %f.display(), "policy in force");
        }
    }
    Ok(policies)
}

/// The codec of the configured value format: without a registry URL,
/// single-object only; with one, the registry is waited for (at most
/// `registry_wait_seconds`) and, for the Confluent format, the output
/// schemas are registered under `<topic>-value` (their ids are then cached).
pub fn codec_of(cfg: &ProcessorConfig, stop: &AtomicBool) -> Result<Codec, KafkaError> {
    let url = cfg.registry_url.trim();
    if url.is_empty() {
        return Ok(Codec::new(cfg.value_format, None));
    }
    let reg = |what: &str, e: RegistryError| KafkaError::Registry {
        what: what.to_string(),
        transient: e.is_transient(),
        source: Box::new(e),
    };
    let file = Some(std::path::Path::new(&cfg.registry_credentials_file)).filter(|f| !f.as_os_str().is_empty());
    let credentials =
        Credentials::load(file, |k| std::env::var(k).ok()).map_err(|e| reg("reading the registry's credentials", e))?;
    let registry = Registry::new(url, credentials).map_err(|e| reg("registry_url", e))?;
    match registry.wait_until_up(std::time::Duration::from_secs(cfg.registry_wait_seconds), stop) {
        Ok(()) => {}
        Err(RegistryError::Stopped) => return Err(KafkaError::Stopped),
        Err(e) => {
            let what = format!(
                "no answer from {url} (waited {} s; registry_wait_seconds waits longer). Check registry_url and that \
                 the registry is up",
                cfg.registry_wait_seconds
            );
            return Err(reg(&what, e));
        }
    }
    let mut codec = Codec::new(cfg.value_format, Some(Arc::new(registry)));
    if cfg.value_format == ValueFormat::Confluent {
        let topics = cfg.topics();
        let registered = [
            (topics.determinations.as_str(), codec.register::<Determination>(&topics.determinations)),
            (topics.outreach.as_str(), codec.register::<OutreachTrigger>(&topics.outreach)),
            (topics.dlq.as_str(), codec.register::<DeadLetter>(&topics.dlq)),
        ];
        for (topic, r) in registered {
            let id = r.map_err(|e| reg(&format!("registering the value schema of {topic} (subject {topic}-value)"), e))?;
            info!(topic, subject = %format!("{topic}-value"), id = ?id, "output schema registered");
        }
    }
    Ok(codec)
}

fn rd(what: &str, e: RdError) -> KafkaError {
    KafkaError::kafka(what, e)
}

impl Processor {
    pub fn new(cfg: ProcessorConfig, stop: Arc<AtomicBool>) -> Result<Processor, KafkaError> {
        Processor::with_metrics(cfg, stop, Arc::new(crate::metrics::Metrics::new()))
    }

    /// As [`Processor::new`], recording into `metrics` (which the caller may serve).
    pub fn with_metrics(
        cfg: ProcessorConfig,
        stop: Arc<AtomicBool>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<Processor, KafkaError> {
        cfg.validate().map_err(|e| KafkaError::Setup(e.to_string()))?;
        let policies = load_policies(&cfg)?;
        std::fs::create_dir_all(&cfg.state_dir)
            .map_err(|e| KafkaError::local(format!("state directory {}", cfg.state_dir.display()), e))?;
        let mut calendar_check = Engine::open(MemStore::default(), EngineConfig::default())
            .map_err(|e| KafkaError::state("opening the engine that checks calendars", e))?;
        for p in &policies {
            calendar_check.register_policy(p.clone());
        }
        let codec = Arc::new(codec_of(&cfg, &stop)?);
        crate::reach::check_brokers(&cfg.brokers, std::time::Duration::from_secs(cfg.broker_wait_seconds), &stop)?;
        let (consumer, producer, calendars) = connect(&cfg)?;
        if crate::topics::ensure_changelog(&cfg.brokers, &cfg.topics())? {
            info!(topic = %cfg.topics().changelog, "created the group's changelog topic");
        }
        metrics.init_topics(&cfg.topics());
        let metrics = crate::metrics::Recorder::new(metrics, cfg.clock == ClockMode::Replay);
        // Read from the thread that runs the instance, whose CPU affinity
        // (taskset, `rollcall bench scale`'s pinning) its threads inherit.
        let apply_threads = match cfg.apply_threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        Ok(Processor {
            topics: cfg.topics(),
            cfg,
            consumer,
            producer,
            calendars,
            known_calendars: BTreeMap::new(),
            calendar_check,
            calendar_dead: Vec::new(),
            calendars_at_end: false,
            policies,
            tasks: BTreeMap::new(),
            calendar_end_asked: None,
            in_txn: false,
            stats: RunStats::default(),
            stop,
            metrics,
            dead_log: crate::dead_log::DeadLetterLog::new(std::time::Duration::from_secs(10)),
            codec,
            apply_threads,
        })
    }

    pub fn stats(&self) -> &RunStats {
        &self.stats
    }

    pub fn metrics(&self) -> Arc<crate::metrics::Metrics> {
        self.metrics.shared.clone()
    }
}
