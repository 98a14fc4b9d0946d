//! The processor: one consumer group over the keyed input topics, one engine
//! and one RocksDB per assigned partition, and consume–process–produce
//! inside Kafka transactions.
//!
//! Recovery protocol (ARCHITECTURE.md has the crash points):
//! - every state write of a batch goes to `rollcall.changelog.v1` (partition =
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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use rollcall_engine::{ApplyError, Engine, EngineConfig, KvStore, Output, Table};
use rollcall_model::avro::AvroRecord;
use rollcall_model::{DeadLetter, SchoolCalendar};
use rollcall_policy::Policy;
use rollcall_store::RocksStore;
use tracing::{debug, info, info_span, warn};

use crate::config::{ClockMode, ProcessorConfig};
use crate::wire::{self, Input, Topics};
use crate::KafkaError;

const META_POSITIONS: &[u8] = b"input_positions";
const META_CHANGELOG_POS: &[u8] = b"changelog_position";

/// Counters of one processor run, for logs, tests and metrics.
#[derive(Debug, Default, Clone)]
pub struct RunStats {
    pub records: u64,
    pub dead_letters: u64,
    pub determinations: u64,
    pub outreach: u64,
    pub transactions: u64,
    pub aborted: u64,
    pub restored_records: u64,
    /// Times the Kafka clients were rebuilt after failing.
    pub reconnects: u64,
}

/// Notices rebalances; the loop acts on them between polls.
struct GroupContext {
    rebalanced: AtomicBool,
}

impl ClientContext for GroupContext {
    fn error(&self, error: RdError, reason: &str) {
        if !crate::is_eof(&error) {
            warn!(%error, reason, "kafka consumer");
        }
    }
}
impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = r {
            info!(partitions = tpl.count(), "partitions revoked");
        }
        self.rebalanced.store(true, Ordering::SeqCst);
    }
    fn post_rebalance(&self, _: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = r {
            info!(partitions = tpl.count(), "partitions assigned");
        }
        self.rebalanced.store(true, Ordering::SeqCst);
    }
}

/// Remembers where each changelog record landed, for the local changelog position.
struct DeliveryContext {
    changelog_next: Mutex<HashMap<i32, i64>>,
    failures: Mutex<Vec<String>>,
}

impl ClientContext for DeliveryContext {}
impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        match r {
            Ok(m) if m.topic().ends_with(wire::CHANGELOG) => {
                if let Ok(mut g) = self.changelog_next.lock() {
                    let e = g.entry(m.partition()).or_insert(0);
                    *e = (*e).max(m.offset() + 1);
                }
            }
            Ok(_) => {}
            Err((e, m)) => {
                if let Ok(mut f) = self.failures.lock() {
                    f.push(format!("{} [{}]: {e}", m.topic(), m.partition()));
                }
            }
        }
    }
}

/// One assigned partition: its engine, state and input positions.
struct Task {
    partition: i32,
    engine: Engine<RocksStore>,
    /// Next offset to apply, per keyed input topic.
    positions: BTreeMap<String, i64>,
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
}

fn encode_positions(p: &BTreeMap<String, i64>) -> Vec<u8> {
    let mut out = Vec::new();
    for (t, o) in p {
        out.extend_from_slice(t.as_bytes());
        out.push(b'=');
        out.extend_from_slice(o.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

/// The input positions of a task's last committed batch.
fn committed_positions(engine: &Engine<RocksStore>) -> Result<BTreeMap<String, i64>, KafkaError> {
    let b = engine.store().get(Table::Meta, META_POSITIONS).map_err(|e| KafkaError::State(e.to_string()))?;
    Ok(b.map(|b| decode_positions(&b)).unwrap_or_default())
}

fn decode_positions(b: &[u8]) -> BTreeMap<String, i64> {
    String::from_utf8_lossy(b)
        .lines()
        .filter_map(|l| l.split_once('=').and_then(|(t, o)| Some((t.to_string(), o.parse().ok()?))))
        .collect()
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
    calendars_at_end: bool,
    policies: Vec<Policy>,
    tasks: BTreeMap<i32, Task>,
    in_txn: bool,
    stats: RunStats,
    stop: Arc<AtomicBool>,
    metrics: crate::metrics::Recorder,
}

fn rd(what: &str, e: RdError) -> KafkaError {
    KafkaError::Kafka(format!("{what}: {e}"))
}

impl Processor {
    pub fn new(cfg: ProcessorConfig, stop: Arc<AtomicBool>) -> Result<Processor, KafkaError> {
        Processor::with_metrics(cfg, stop, Arc::new(crate::metrics::Metrics::new()))
    }

    /// As [`Processor::new`], recording into `metrics` (which the caller may serve).
    pub fn with_metrics(cfg: ProcessorConfig, stop: Arc<AtomicBool>, metrics: Arc<crate::metrics::Metrics>) -> Result<Processor, KafkaError> {
        cfg.validate().map_err(|e| KafkaError::Setup(e.to_string()))?;
        let mut policies = Vec::new();
        for f in &cfg.policy_files {
            policies.push(Policy::load(f).map_err(|e| KafkaError::Setup(e.to_string()))?);
        }
        std::fs::create_dir_all(&cfg.state_dir)
            .map_err(|e| KafkaError::Setup(format!("state directory {}: {e}", cfg.state_dir.display())))?;
        let (consumer, producer, calendars) = connect(&cfg)?;
        metrics.init_topics(&cfg.topics());
        let metrics = crate::metrics::Recorder::new(metrics, cfg.clock == ClockMode::Replay);
        Ok(Processor {
            topics: cfg.topics(),
            cfg,
            consumer,
            producer,
            calendars,
            known_calendars: BTreeMap::new(),
            calendars_at_end: false,
            policies,
            tasks: BTreeMap::new(),
            in_txn: false,
            stats: RunStats::default(),
            stop,
            metrics,
        })
    }

    pub fn stats(&self) -> &RunStats {
        &self.stats
    }

    pub fn metrics(&self) -> Arc<crate::metrics::Metrics> {
        self.metrics.shared.clone()
    }

    /// Runs until stopped, or, with `exit_when_idle`, until every input is
    /// consumed. When the Kafka clients fail (a broker that went away and
    /// came back with the group or the transaction forgotten, a fenced or
    /// fatal client), it starts again as after a crash: fresh clients, tasks
    /// reopened from their committed state. It waits rather than stops.
    pub fn run(&mut self) -> Result<RunStats, KafkaError> {
        let mut backoff = Duration::from_secs(1);
        loop {
            match self.run_once() {
                Ok(()) => return Ok(self.stats.clone()),
                Err(KafkaError::Kafka(why)) if !self.stop.load(Ordering::SeqCst) => {
                    warn!(error = %why, retry_in_s = backoff.as_secs(), "Kafka clients failed; reconnecting from the committed state");
                    self.stats.reconnects += 1;
                    self.metrics.shared.set_not_ready("reconnecting to Kafka");
                    self.tasks.clear();
                    self.in_txn = false;
                    self.calendars_at_end = false;
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    let (consumer, producer, calendars) = connect(&self.cfg)?;
                    self.consumer = consumer;
                    self.producer = producer;
                    self.calendars = calendars;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn run_once(&mut self) -> Result<(), KafkaError> {
        let t = Duration::from_secs(30);
        self.producer.init_transactions(t).map_err(|e| rd("init transactions", e))?;
        self.start_calendar_feed()?;
        self.consumer.subscribe(&self.topics.keyed_inputs()).map_err(|e| rd("subscribe", e))?;
        self.metrics.shared.set_not_ready("waiting for the partition assignment");
        info!(group = %self.cfg.group, transactional_id = %self.cfg.transactional_id(), "processor started");
        let mut idle_rounds = 0u32;
        while !self.stop.load(Ordering::SeqCst) {
            for (what, client) in [("consumer", self.consumer.client().fatal_error()), ("producer", self.producer.client().fatal_error())] {
                if let Some((code, reason)) = client {
                    return Err(KafkaError::Kafka(format!("{what} failed fatally: {code:?}: {reason}")));
                }
            }
            self.poll_calendars()?;
            let fetched = self.fetch_batch()?;
            if self.consumer.context().rebalanced.swap(false, Ordering::SeqCst) {
                self.on_rebalance()?;
                continue;
            }
            // End-of-partition events queue behind everything prefetched
            // (the whole of a short topic's neighbours), so the ends are
            // read from positions and the cached watermarks after every
            // fetch: the replay horizon must not wait for those events.
            self.refresh_ends()?;
            let idle = fetched == 0 && self.all_at_end();
            // Replay: once the inputs are consumed, every task (also one taken
            // over later) advances to the final instant; a task already there
            // does not move again.
            let until = if idle && self.cfg.clock == ClockMode::Replay { self.cfg.until } else { None };
            let worked = self.process_batch(until)?;
            self.refresh_metrics();
            if idle && !worked {
                idle_rounds += 1;
                let finished = self.cfg.until.map(|u| self.tasks.values().all(|t| t.engine.clock() >= Some(u))).unwrap_or(true);
                if self.cfg.exit_when_idle && idle_rounds >= 3 && finished {
                    info!("all inputs consumed; exiting");
                    break;
                }
            } else {
                idle_rounds = 0;
            }
        }
        if self.in_txn {
            let _ = self.producer.abort_transaction(t);
        }
        self.metrics.shared.set_not_ready("stopped");
        Ok(())
    }

    fn all_at_end(&self) -> bool {
        let assigned = self.consumer.assignment().map(|a| a.count()).unwrap_or(0);
        assigned > 0
            && self.calendars_at_end
            && self.tasks.len() * 3 >= assigned
            && self.tasks.values().all(|t| t.buffered.is_empty() && t.at_end.len() == 3)
    }

    fn start_calendar_feed(&mut self) -> Result<(), KafkaError> {
        let md = self
            .calendars
            .fetch_metadata(Some(&self.topics.calendar), Duration::from_secs(30))
            .map_err(|e| rd("calendar topic metadata", e))?;
        let mut tpl = TopicPartitionList::new();
        for t in md.topics() {
            for p in t.partitions() {
                tpl.add_partition_offset(&self.topics.calendar, p.id(), Offset::Beginning)
                    .map_err(|e| rd("calendar assignment", e))?;
            }
        }
        if tpl.count() == 0 {
            return Err(KafkaError::Setup(format!("topic {} does not exist: run `rollcall topics create` first", self.topics.calendar)));
        }
        self.calendars.assign(&tpl).map_err(|e| rd("calendar assignment", e))?;
        // Read the calendars that exist before any event is applied.
        let started = Instant::now();
        while !self.calendars_at_end && started.elapsed() < Duration::from_secs(60) {
            self.poll_calendars()?;
        }
        Ok(())
    }

    fn poll_calendars(&mut self) -> Result<(), KafkaError> {
        loop {
            match self.calendars.poll(Duration::from_millis(if self.calendars_at_end { 0 } else { 100 })) {
                None => return Ok(()),
                Some(Err(RdError::PartitionEOF(_))) => {
                    self.calendars_at_end = true;
                    return Ok(());
                }
                Some(Err(e)) => {
                    warn!(error = %e, "calendar feed");
                    return Ok(());
                }
                Some(Ok(m)) => match wire::decode_input(wire::CALENDAR, m.key(), m.payload()) {
                    Ok(Input::Calendar(c)) => {
                        self.metrics.calendar_consumed(&self.topics.calendar);
                        for task in self.tasks.values_mut() {
                            if let Err(e) = task.engine.load_calendar(c.clone()) {
                                warn!(school = %c.school_id, error = %e, "calendar refused");
                            }
                            task.dirty = true;
                        }
                        self.known_calendars.insert(c.school_id.clone(), c);
                    }
                    Ok(_) => {}
                    // Every instance reads the calendars; only the log says which was refused.
                    Err(e) => {
                        self.metrics.calendar_consumed(&self.topics.calendar);
                        warn!(offset = m.offset(), error = %e, "calendar record refused")
                    }
                },
            }
        }
    }

    /// Polls up to a batch of input records into the tasks' buffers.
    fn fetch_batch(&mut self) -> Result<usize, KafkaError> {
        let deadline = Instant::now() + Duration::from_millis(self.cfg.batch_max_ms);
        let mut n = 0;
        while n < self.cfg.batch_max_records {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let Some(msg) = self.consumer.poll(left.min(Duration::from_millis(100))) else {
                if self.all_tasks_quiet() {
                    break;
                }
                continue;
            };
            if self.consumer.context().rebalanced.load(Ordering::SeqCst) {
                return Ok(n);
            }
            match msg {
                Err(RdError::PartitionEOF(p)) => {
                    // The EOF error does not say which topic; ask for positions.
                    let positions = self.consumer.position().map_err(|e| rd("position", e))?;
                    self.mark_ends(p, &positions)?;
                }
                Err(e) => {
                    warn!(error = %e, "consumer");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Ok(m) => {
                    let rec = Record {
                        topic: m.topic().to_string(),
                        partition: m.partition(),
                        offset: m.offset(),
                        timestamp: m.timestamp().to_millis(),
                        key: m.key().map(<[u8]>::to_vec),
                        value: m.payload().map(<[u8]>::to_vec),
                        received_ms: Utc::now().timestamp_millis(),
                    };
                    let task = self.task(rec.partition)?;
                    task.at_end.remove(&rec.topic);
                    task.broker_high.remove(&rec.topic);
                    if rec.offset >= task.positions.get(&rec.topic).copied().unwrap_or(0) {
                        let next = task.fetched.entry(rec.topic.clone()).or_insert(0);
                        *next = (*next).max(rec.offset + 1);
                        task.buffered.push(rec);
                        n += 1;
                    }
                }
            }
        }
        Ok(n)
    }

    fn all_tasks_quiet(&self) -> bool {
        !self.tasks.is_empty() && self.tasks.values().all(|t| t.at_end.len() == 3)
    }

    /// Re-derives which inputs are at their end, for every assigned partition:
    /// end-of-partition events are not repeated after a seek to the end.
    fn refresh_ends(&mut self) -> Result<(), KafkaError> {
        // One position() call (over the whole assignment) serves every partition.
        let positions = self.consumer.position().map_err(|e| rd("position", e))?;
        let partitions: BTreeSet<i32> = positions.elements().iter().map(|e| e.partition()).collect();
        for p in partitions {
            self.mark_ends(p, &positions)?;
        }
        Ok(())
    }

    fn mark_ends(&mut self, partition: i32, positions: &TopicPartitionList) -> Result<(), KafkaError> {
        let committed = self.task(partition)?.positions.clone();
        let mut ends = Vec::new();
        for e in positions.elements().iter().filter(|e| e.partition() == partition) {
            let cached = cached_high_watermark(&self.consumer, e.topic(), partition).filter(|h| *h > 0);
            let at_end = match (e.offset(), cached) {
                (Offset::Offset(pos), Some(high)) => pos >= high,
                // Nothing consumed or nothing cached yet (the cache starts at
                // zero): compare where this task resumes with what the broker
                // had, asked once per task; a record arriving later clears it.
                _ => {
                    let asked = self.tasks.get(&partition).and_then(|t| t.broker_high.get(e.topic()).copied());
                    let high = match asked {
                        Some(h) => h,
                        None => {
                            let (_, h) = self
                                .consumer
                                .fetch_watermarks(e.topic(), partition, Duration::from_secs(10))
                                .map_err(|err| rd("watermarks", err))?;
                            if let Some(t) = self.tasks.get_mut(&partition) {
                                t.broker_high.insert(e.topic().to_string(), h);
                            }
                            h
                        }
                    };
                    committed.get(e.topic()).copied().unwrap_or(0) >= high
                }
            };
            tracing::trace!(topic = e.topic(), partition, position = ?e.offset(), cached = ?cached, at_end, "end check");
            if at_end {
                ends.push(e.topic().to_string());
            }
        }
        let task = self.task(partition)?;
        for t in ends {
            task.at_end.insert(t);
        }
        Ok(())
    }

    /// The task of a partition, opened (and restored) on first use.
    fn task(&mut self, partition: i32) -> Result<&mut Task, KafkaError> {
        if !self.tasks.contains_key(&partition) {
            let task = self.open_task(partition)?;
            self.tasks.insert(partition, task);
        }
        self.tasks.get_mut(&partition).ok_or_else(|| KafkaError::Setup("task vanished".into()))
    }

    fn open_task(&mut self, partition: i32) -> Result<Task, KafkaError> {
        let (task, restored) = open_task(&self.cfg, &self.metrics.shared, &self.policies, &self.known_calendars, partition)?;
        self.stats.restored_records += restored;
        Ok(task)
    }

    /// Opens (and restores) the tasks of these partitions side by side: a
    /// task's opening is mostly waiting (RocksDB files, a changelog reader,
    /// broker round trips), and a takeover should not wait for each in turn.
    fn open_tasks(&mut self, partitions: &[i32]) -> Result<(), KafkaError> {
        const AT_ONCE: usize = 8;
        for chunk in partitions.chunks(AT_ONCE) {
            let (cfg, metrics, policies, calendars) = (&self.cfg, &self.metrics.shared, &self.policies, &self.known_calendars);
            let opened: Vec<Result<(Task, u64), KafkaError>> = std::thread::scope(|s| {
                let handles: Vec<_> = chunk
                    .iter()
                    .map(|p| s.spawn(move || open_task(cfg, metrics, policies, calendars, *p)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|_| Err(KafkaError::State("a task-opening thread panicked".into()))))
                    .collect()
            });
            for o in opened {
                let (task, restored) = o?;
                self.stats.restored_records += restored;
                self.tasks.insert(task.partition, task);
            }
        }
        Ok(())
    }

    /// Applies buffered records, advances clocks, and commits one transaction.
    /// Returns whether anything was produced or committed. The tasks share
    /// nothing (each has its own engine and RocksDB), so they are applied on
    /// up to [`apply_threads`] threads; the transaction is one, as before.
    fn process_batch(&mut self, until: Option<DateTime<Utc>>) -> Result<bool, KafkaError> {
        let replay = self.cfg.clock == ClockMode::Replay;
        let now = Utc::now();
        self.metrics.begin_batch();
        let topics = &self.topics;
        let mut tasks: Vec<&mut Task> = self.tasks.values_mut().collect();
        let busy = tasks.iter().filter(|t| !t.buffered.is_empty()).count();
        let threads = apply_threads().min(busy);
        let applied: Vec<Result<Applied, KafkaError>> = if threads <= 1 {
            tasks.into_iter().map(|t| apply_task(t, replay, until, now, topics)).collect()
        } else {
            // Workers take tasks from a shared list, the busiest first.
            tasks.sort_by_key(|t| std::cmp::Reverse(t.buffered.len()));
            let queue = Mutex::new(tasks.into_iter().enumerate().rev().collect::<Vec<_>>());
            let mut done: Vec<(usize, Result<Applied, KafkaError>)> = std::thread::scope(|s| {
                let workers: Vec<_> = (0..threads)
                    .map(|_| {
                        s.spawn(|| {
                            let mut done = Vec::new();
                            loop {
                                let next = queue.lock().map(|mut q| q.pop()).unwrap_or(None);
                                let Some((i, task)) = next else { break };
                                done.push((i, apply_task(task, replay, until, now, topics)));
                            }
                            done
                        })
                    })
                    .collect();
                workers
                    .into_iter()
                    .flat_map(|w| w.join().unwrap_or_else(|_| vec![(usize::MAX, Err(KafkaError::State("an apply thread panicked".into())))]))
                    .collect()
            });
            done.sort_by_key(|(i, _)| *i);
            done.into_iter().map(|(_, r)| r).collect()
        };
        let mut outputs: Vec<(i32, Vec<Output>, Vec<DeadLetter>)> = Vec::new();
        let mut consumed = 0u64;
        for a in applied {
            let a = a?;
            for (rank, kind, ts, received) in &a.consumed {
                self.metrics.consumed(self.topics.keyed_inputs()[*rank], kind, *ts, *received);
            }
            consumed += a.consumed.len() as u64;
            outputs.push((a.partition, a.outputs, a.dead));
        }
        outputs.sort_by_key(|o| o.0);
        if !self.tasks.values().any(|t| t.dirty) {
            return Ok(false);
        }
        self.commit_batch(outputs, consumed)?;
        Ok(true)
    }

    fn begin(&mut self) -> Result<(), KafkaError> {
        if !self.in_txn {
            self.producer.begin_transaction().map_err(|e| rd("begin transaction", e))?;
            self.in_txn = true;
        }
        Ok(())
    }

    fn send(&self, topic: &str, partition: Option<i32>, key: &[u8], value: Option<&[u8]>) -> Result<(), KafkaError> {
        let mut rec: BaseRecord<'_, [u8], [u8], ()> = BaseRecord::to(topic).key(key);
        if let Some(v) = value {
            rec = rec.payload(v);
        }
        if let Some(p) = partition {
            rec = rec.partition(p);
        }
        let mut rec = rec;
        loop {
            match self.producer.send(rec) {
                Ok(()) => return Ok(()),
                Err((RdError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), r)) => {
                    std::thread::sleep(Duration::from_millis(20));
                    rec = r;
                }
                Err((e, _)) => return Err(rd(&format!("produce to {topic}"), e)),
            }
        }
    }

    fn commit_batch(&mut self, outputs: Vec<(i32, Vec<Output>, Vec<DeadLetter>)>, consumed: u64) -> Result<(), KafkaError> {
        let span = info_span!(
            "transaction",
            records = consumed,
            partitions = outputs.len(),
            outputs = outputs.iter().map(|o| o.1.len()).sum::<usize>(),
            dead_letters = outputs.iter().map(|o| o.2.len()).sum::<usize>(),
            offsets = tracing::field::Empty
        );
        let _g = span.enter();
        self.begin()?;
        if let Ok(mut g) = self.producer.context().changelog_next.lock() {
            g.clear();
        }
        for (_, outs, dead) in &outputs {
            for o in outs {
                match o {
                    Output::Determination(d) => {
                        let v = d.to_single_object().map_err(|e| KafkaError::State(e.to_string()))?;
                        self.send(&self.topics.determinations, None, d.key().as_bytes(), Some(&v))?;
                        self.stats.determinations += 1;
                        self.metrics.determination(d);
                    }
                    Output::Outreach(t) => {
                        let v = t.to_single_object().map_err(|e| KafkaError::State(e.to_string()))?;
                        self.send(&self.topics.outreach, None, t.student_id.as_bytes(), Some(&v))?;
                        self.stats.outreach += 1;
                        self.metrics.outreach(t);
                    }
                    // An event that waited for its student or school in vain.
                    Output::Refused(r) => {
                        let d = wire::refused_dead_letter(&self.topics, r).map_err(|e| KafkaError::State(e.to_string()))?;
                        let v = d.to_single_object().map_err(|e| KafkaError::State(e.to_string()))?;
                        self.send(&self.topics.dlq, None, r.event.student_id.as_bytes(), Some(&v))?;
                        self.stats.dead_letters += 1;
                        self.metrics.dead_letter(&d.topic, &d.error_kind);
                    }
                }
            }
            for d in dead {
                let v = d.to_single_object().map_err(|e| KafkaError::State(e.to_string()))?;
                self.send(&self.topics.dlq, None, d.key.as_deref().unwrap_or("").as_bytes(), Some(&v))?;
                self.stats.dead_letters += 1;
                self.metrics.dead_letter(&d.topic, &d.error_kind);
            }
        }
        // The task positions and clock are state too: they travel in the changelog.
        let mut offsets = TopicPartitionList::new();
        let partitions: Vec<i32> = self.tasks.keys().copied().collect();
        for p in &partitions {
            let task = self.tasks.get_mut(p).ok_or_else(|| KafkaError::Setup("task vanished".into()))?;
            task.engine.stage().map_err(|e| KafkaError::State(e.to_string()))?;
            let pos = encode_positions(&task.positions);
            task.engine.store_mut().put(Table::Meta, META_POSITIONS, &pos).map_err(|e| KafkaError::State(e.to_string()))?;
            for (topic, off) in &task.positions {
                offsets.add_partition_offset(topic, *p, Offset::Offset(*off)).map_err(|e| rd("offsets", e))?;
            }
            let writes: Vec<(Vec<u8>, Option<Vec<u8>>)> = task
                .engine
                .store()
                .pending_writes()
                .map(|(t, k, v)| {
                    let mut key = Vec::with_capacity(k.len() + 1);
                    key.push(t as u8);
                    key.extend_from_slice(k);
                    (key, v.map(<[u8]>::to_vec))
                })
                .collect();
            for (k, v) in &writes {
                self.send(&self.topics.changelog, Some(*p), k, v.as_deref())?;
            }
        }
        span.record("offsets", self.offsets_field().as_str());
        if offsets.count() > 0 {
            let gm = self.consumer.group_metadata().ok_or_else(|| KafkaError::Kafka("no consumer group metadata".into()))?;
            let sent = retry_txn("send offsets", || self.producer.send_offsets_to_transaction(&offsets, &gm, Duration::from_secs(30)));
            match sent {
                TxnStep::Done => {}
                TxnStep::Abort(why) => return self.abort(&why),
                TxnStep::Fatal(e) => return Err(e),
            }
        }
        let started = Instant::now();
        match retry_txn("commit", || self.producer.commit_transaction(Duration::from_secs(60))) {
            TxnStep::Done => {}
            TxnStep::Abort(why) => return self.abort(&why),
            TxnStep::Fatal(e) => return Err(e),
        }
        self.in_txn = false;
        let failures = self.producer.context().failures.lock().map(|mut f| std::mem::take(&mut *f)).unwrap_or_default();
        if !failures.is_empty() {
            // A committed transaction whose records failed cannot happen; treat it as fatal.
            return Err(KafkaError::Kafka(format!("delivery failed in a committed transaction: {}", failures.join("; "))));
        }
        self.stats.transactions += 1;
        self.metrics.committed(started.elapsed());
        self.stats.records += consumed;
        let next = self.producer.context().changelog_next.lock().map(|g| g.clone()).unwrap_or_default();
        for (p, task) in self.tasks.iter_mut() {
            let store = task.engine.store_mut();
            if let Some(n) = next.get(p) {
                store.put(Table::Meta, META_CHANGELOG_POS, &n.to_be_bytes()).map_err(|e| KafkaError::State(e.to_string()))?;
            }
            store.commit().map_err(|e| KafkaError::State(e.to_string()))?;
            task.dirty = false;
        }
        debug!(elapsed_ms = started.elapsed().as_millis() as u64, "committed");
        Ok(())
    }

    /// Aborts the open transaction and returns every task to its committed state.
    fn abort(&mut self, why: &str) -> Result<(), KafkaError> {
        warn!(reason = why, "aborting transaction");
        self.stats.aborted += 1;
        self.abort_open_txn("abort")?;
        self.rollback_tasks()
    }

    /// Aborts the open transaction, if any, retrying while the broker is away.
    fn abort_open_txn(&mut self, what: &str) -> Result<(), KafkaError> {
        if self.in_txn {
            match retry_txn(what, || self.producer.abort_transaction(Duration::from_secs(30))) {
                TxnStep::Done => {}
                // Fenced or fatal: another instance owns these partitions now.
                TxnStep::Abort(why) => return Err(KafkaError::Kafka(why)),
                TxnStep::Fatal(e) => return Err(e),
            }
            self.in_txn = false;
            self.metrics.aborted();
        }
        Ok(())
    }

    fn rollback_tasks(&mut self) -> Result<(), KafkaError> {
        for task in self.tasks.values_mut() {
            task.engine.store_mut().rollback();
            task.engine.reload().map_err(|e| KafkaError::State(e.to_string()))?;
            task.positions = committed_positions(&task.engine)?;
            task.buffered.clear();
            task.fetched.clear();
            task.at_end.clear();
            task.broker_high.clear();
            for topic in self.topics.keyed_inputs() {
                let off = task.positions.get(topic).copied().map(Offset::Offset).unwrap_or(Offset::Beginning);
                seek(&self.consumer, topic, task.partition, off)?;
            }
        }
        Ok(())
    }

    fn on_rebalance(&mut self) -> Result<(), KafkaError> {
        self.abort_open_txn("abort on rebalance")?;
        self.metrics.shared.set_not_ready("rebalancing: restoring the assigned partitions");
        let assignment = self.consumer.assignment().map_err(|e| rd("assignment", e))?;
        let assigned: HashSet<i32> = assignment.elements().iter().map(|e| e.partition()).collect();
        let before: Vec<i32> = self.tasks.keys().copied().collect();
        for p in before {
            if !assigned.contains(&p) {
                info!(partition = p, "task closed (partition moved away)");
                self.tasks.remove(&p);
                self.metrics.forget_partition(&self.topics, p);
            }
        }
        // Uncommitted work is gone: every kept task is back at its last commit.
        self.rollback_tasks()?;
        // Open (and restore) the new ones now, and fetch every partition from
        // where its task's state ends; records polled around the rebalance
        // were dropped and come again.
        let mut new: Vec<i32> = assigned.iter().copied().filter(|p| !self.tasks.contains_key(p)).collect();
        new.sort_unstable();
        self.open_tasks(&new)?;
        for e in assignment.elements() {
            let pos = self.tasks.get(&e.partition()).and_then(|t| t.positions.get(e.topic()).copied());
            let off = pos.map(Offset::Offset).unwrap_or(Offset::Beginning);
            seek(&self.consumer, e.topic(), e.partition(), off)?;
        }
        self.after_assignment();
        Ok(())
    }
}

type Clients = (BaseConsumer<GroupContext>, ThreadedProducer<DeliveryContext>, BaseConsumer<crate::QuietContext>);

/// The processor's Kafka clients: the group consumer, the transactional
/// producer and the calendar reader.
fn connect(cfg: &ProcessorConfig) -> Result<Clients, KafkaError> {
    let consumer: BaseConsumer<GroupContext> = ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        .set("group.id", &cfg.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        // Range assignment gives one member partition p of every input topic.
        .set("partition.assignment.strategy", "range")
        // Answer an empty fetch quickly: end-of-input is seen from fetch responses.
        .set("fetch.wait.max.ms", "100")
        // One consumer queue serves every partition in arrival order: a
        // deep prefetch of one big activity partition would hold back the
        // short roster and report partitions that the replay horizon
        // waits for. Shallow per-partition fetches keep them interleaved.
        .set("max.partition.fetch.bytes", "262144")
        .set("queued.min.messages", "2000")
        .set("queued.max.messages.kbytes", "4096")
        // With a queue this shallow the thresholds are reached all the
        // time, and librdkafka then postpones the partition's next fetch by
        // this much (1 s by default): the loop sat idle for most of a replay.
        .set("fetch.queue.backoff.ms", "10")
        .set("session.timeout.ms", "10000")
        // Static membership: a restarted instance takes its partitions
        // back at once instead of waiting out a rebalance.
        .set("group.instance.id", cfg.transactional_id())
        .set("heartbeat.interval.ms", "1000")
        .create_with_context(GroupContext { rebalanced: AtomicBool::new(false) })
        .map_err(|e| rd("consumer", e))?;
    let producer: ThreadedProducer<DeliveryContext> = ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        .set("transactional.id", cfg.transactional_id())
        .set("transaction.timeout.ms", cfg.transaction_timeout_ms.to_string())
        .set("enable.idempotence", "true")
        // Keys land where the Java clients of the district put them.
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .create_with_context(DeliveryContext {
            changelog_next: Mutex::new(HashMap::new()),
            failures: Mutex::new(Vec::new()),
        })
        .map_err(|e| rd("producer", e))?;
    let calendars = crate::reader(&cfg.brokers, &format!("{}-calendars", cfg.group))?;
    Ok((consumer, producer, calendars))
}

/// Moves the consumer to where a task's state ends. Right after an
/// assignment a partition may not be fetching yet and refuses a seek
/// ("erroneous state"); it is retried for a while, and then the failure
/// goes up as a Kafka error, which makes the processor start again from its
/// committed state rather than read from the wrong place.
fn seek<C: ConsumerContext>(consumer: &BaseConsumer<C>, topic: &str, partition: i32, offset: Offset) -> Result<(), KafkaError> {
    let started = Instant::now();
    loop {
        match consumer.seek(topic, partition, offset, Duration::from_secs(10)) {
            Ok(()) => return Ok(()),
            Err(e) if started.elapsed() < Duration::from_secs(30) => {
                debug!(topic, partition, error = %e, "seek refused; retrying");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(rd(&format!("seek {topic} [{partition}]"), e)),
        }
    }
}

/// What to do after a transactional call.
enum TxnStep {
    Done,
    Abort(String),
    Fatal(KafkaError),
}

/// Runs a transactional call, retrying while the error is retriable (a broker
/// that is away and coming back): the processor waits rather than stops.
fn retry_txn(what: &str, mut call: impl FnMut() -> Result<(), RdError>) -> TxnStep {
    let started = Instant::now();
    loop {
        match call() {
            Ok(()) => return TxnStep::Done,
            Err(RdError::Transaction(e)) if e.is_retriable() && started.elapsed() < Duration::from_secs(600) => {
                warn!(step = what, error = %e, "transaction step failed; retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(RdError::Transaction(e)) if e.txn_requires_abort() => return TxnStep::Abort(format!("{what}: {e}")),
            Err(e) => return TxnStep::Fatal(rd(what, e)),
        }
    }
}

/// The high watermark librdkafka last saw for a partition, without asking
/// the broker (an end-of-partition event names the partition, not the topic,
/// and three input topics share partition numbers).
fn cached_high_watermark<C: ConsumerContext>(consumer: &BaseConsumer<C>, topic: &str, partition: i32) -> Option<i64> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (0i64, 0i64);
    // SAFETY: the client pointer is valid for the consumer's lifetime, the
    // topic string outlives the call, and the out-pointers are local.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some(high)
}

/// How many threads apply the tasks of a batch: the machine's cores.
fn apply_threads() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// What one task's part of a batch produced.
struct Applied {
    partition: i32,
    outputs: Vec<Output>,
    dead: Vec<DeadLetter>,
    /// Per record applied: input topic rank, metrics kind, timestamp, received.
    consumed: Vec<(usize, &'static str, Option<i64>, i64)>,
}

/// Applies a task's ready records, advances its clock and flushes its engine.
fn apply_task(task: &mut Task, replay: bool, until: Option<DateTime<Utc>>, now: DateTime<Utc>, topics: &Topics) -> Result<Applied, KafkaError> {
    let span = info_span!(
        "batch",
        partition = task.partition,
        records = tracing::field::Empty,
        first_offset = tracing::field::Empty,
        last_offset = tracing::field::Empty,
        outputs = tracing::field::Empty,
        dead_letters = tracing::field::Empty
    );
    let _g = span.enter();
    let mut ready = take_ready(task, replay, topics);
    for r in &ready {
        debug!(topic = %r.topic, offset = r.offset, ts = ?r.timestamp, "ready");
    }
    let mut dead = Vec::new();
    let mut consumed = Vec::with_capacity(ready.len());
    let first = ready.first().map(|r| r.offset);
    span.record("records", ready.len());
    if let (Some(f), Some(l)) = (first, ready.last().map(|r| r.offset)) {
        span.record("first_offset", f);
        span.record("last_offset", l);
    }
    for rec in ready.drain(..) {
        // Who is enrolled is not an event in time: only activity and
        // reports move the replay clock, so closes see the whole roster.
        if replay && rec.topic != topics.roster {
            if let Some(ts) = rec.timestamp.and_then(DateTime::from_timestamp_millis) {
                task.engine.advance(ts).map_err(|e| KafkaError::State(e.to_string()))?;
            }
        }
        let (dead_letter, kind) = apply_record(&mut task.engine, &rec, topics)?;
        consumed.push((topics.input_rank(&rec.topic), kind, rec.timestamp, rec.received_ms));
        if let Some(d) = dead_letter {
            dead.push(d);
        }
        task.dirty = true;
    }
    // Records are applied in timestamp order, and a topic's offsets
    // need not follow it (absence reports arrive out of order): a
    // position is the lowest offset not yet applied, so a restart
    // fetches everything still waiting. What was applied beyond it
    // comes again and is a duplicate the engine drops.
    for topic in topics.keyed_inputs() {
        let waiting = task.buffered.iter().filter(|r| r.topic == topic).map(|r| r.offset).min();
        if let Some(next) = waiting.or_else(|| task.fetched.get(topic).copied()) {
            task.positions.insert(topic.to_string(), next);
        }
    }
    task.caught_up |= task.at_end.len() == 3 && task.buffered.is_empty();
    let target = if replay { until } else { Some(now).filter(|_| task.caught_up) };
    if let Some(t) = target {
        task.engine.advance(t).map_err(|e| KafkaError::State(e.to_string()))?;
    }
    task.engine.flush().map_err(|e| KafkaError::State(e.to_string()))?;
    let out = task.engine.take_outputs();
    span.record("outputs", out.len());
    span.record("dead_letters", dead.len());
    // A clock that moved without closing anything is not worth a
    // transaction: it is written with the next batch that is.
    if !out.is_empty() || !dead.is_empty() || task.engine.store().pending_writes().next().is_some() {
        task.dirty = true;
    }
    debug!(first_offset = ?first, records = consumed.len(), outputs = out.len(), buffered = task.buffered.len(), at_end = ?task.at_end, "applied");
    Ok(Applied { partition: task.partition, outputs: out, dead, consumed })
}

/// The records of a task that can be applied now, in application order.
/// With the wall clock, everything fetched. With the replay clock, records
/// are merged across the input topics by timestamp: one is applied only when
/// every other input topic has a later record waiting or is at its end.
fn take_ready(task: &mut Task, replay: bool, topics: &Topics) -> Vec<Record> {
    let key = |r: &Record| (r.timestamp.unwrap_or(0), topics.input_rank(&r.topic), r.offset);
    task.buffered.sort_by_key(key);
    if !replay {
        return std::mem::take(&mut task.buffered);
    }
    let mut ready = Vec::new();
    let mut rest = Vec::new();
    // The latest timestamp that each topic is known to have reached.
    let mut horizon = i64::MAX;
    for topic in topics.keyed_inputs() {
        if task.at_end.contains(topic) {
            continue;
        }
        let newest = task.buffered.iter().filter(|r| r.topic == topic).map(|r| r.timestamp.unwrap_or(0)).max();
        horizon = horizon.min(newest.unwrap_or(i64::MIN));
    }
    // Strictly before: more records of the horizon's own instant may still
    // come, and one instant is applied in one batch.
    for r in task.buffered.drain(..) {
        if horizon == i64::MAX || r.timestamp.unwrap_or(0) < horizon {
            ready.push(r);
        } else {
            rest.push(r);
        }
    }
    task.buffered = rest;
    ready
}

/// Applies one input record; a refused one comes back as a dead letter.
/// Also returns the record's `kind` label for the metrics.
fn apply_record(engine: &mut Engine<RocksStore>, rec: &Record, topics: &Topics) -> Result<(Option<DeadLetter>, &'static str), KafkaError> {
    let failed_at = engine.clock().unwrap_or_default();
    let dead = |kind: &str, message: String| DeadLetter {
        topic: rec.topic.clone(),
        partition: Some(rec.partition),
        offset: Some(rec.offset),
        key: rec.key.as_ref().map(|k| String::from_utf8_lossy(k).into_owned()),
        value: rec.value.clone().unwrap_or_default(),
        error_kind: kind.to_string(),
        message,
        failed_at,
    };
    let kind = topics.kind(&rec.topic).unwrap_or("");
    let input = match wire::decode_input(kind, rec.key.as_deref(), rec.value.as_deref()) {
        Ok(i) => i,
        Err(u) => {
            let key = crate::redact::student_key(rec.key.as_deref());
            warn!(topic = %rec.topic, partition = rec.partition, offset = rec.offset, %key, kind = u.kind, "dead letter");
            return Ok((Some(dead(u.kind, u.message)), crate::metrics::input_label(kind, None)));
        }
    };
    let label = crate::metrics::input_label(kind, Some(&input));
    let result = match &input {
        Input::Activity(e) => engine.apply_event(e).map(|_| ()),
        Input::Report(r) => engine.apply_report(r).map(|_| ()),
        Input::Roster(s) => engine.upsert_student(s.clone()),
        Input::Calendar(c) => engine.load_calendar(c.clone()),
    };
    match result {
        Ok(()) => Ok((None, label)),
        Err(ApplyError::Rejected(r)) => {
            let key = crate::redact::student_key(rec.key.as_deref());
            warn!(topic = %rec.topic, partition = rec.partition, offset = rec.offset, %key, kind = r.kind.as_str(), "dead letter");
            Ok((Some(dead(r.kind.as_str(), r.message)), label))
        }
        Err(ApplyError::Fatal(e)) => Err(KafkaError::State(format!("{} [{}] @{}: {e}", rec.topic, rec.partition, rec.offset))),
    }
}

/// Brings a task's local store up to the committed changelog; returns the
/// number of records read.
/// Opens a partition's task: its RocksDB state, brought up to date from the
/// changelog, under an engine with the policies and calendars known so far.
/// Returns the task and how many changelog records were restored.
fn open_task(
    cfg: &ProcessorConfig,
    metrics: &Arc<crate::metrics::Metrics>,
    policies: &[Policy],
    calendars: &BTreeMap<String, SchoolCalendar>,
    partition: i32,
) -> Result<(Task, u64), KafkaError> {
    let span = info_span!("restore", partition);
    let _g = span.enter();
    let dir = cfg.state_dir.join(format!("p{partition}"));
    let mut store = RocksStore::open(&dir, &cfg.store).map_err(|e| KafkaError::Setup(e.to_string()))?;
    let restoring = metrics.restore_started();
    let restored = restore_from_changelog(cfg, partition, &mut store)?;
    drop(restoring);
    metrics.restore_records.inc_by(restored);
    let mut engine = Engine::open(store, EngineConfig { max_clock_skew_days: cfg.max_clock_skew_days, ..EngineConfig::default() })
        .map_err(|e| KafkaError::State(e.to_string()))?;
    for p in policies {
        engine.register_policy(p.clone());
    }
    for c in calendars.values() {
        if let Err(e) = engine.load_calendar(c.clone()) {
            warn!(school = %c.school_id, error = %e, "calendar refused");
        }
    }
    let positions = committed_positions(&engine)?;
    info!(restored, ?positions, "task opened");
    let task = Task {
        partition,
        engine,
        positions,
        buffered: Vec::new(),
        fetched: BTreeMap::new(),
        at_end: HashSet::new(),
        broker_high: HashMap::new(),
        caught_up: false,
        dirty: true,
    };
    Ok((task, restored))
}

fn restore_from_changelog(cfg: &ProcessorConfig, partition: i32, store: &mut RocksStore) -> Result<u64, KafkaError> {
    let from = store
        .get(Table::Meta, META_CHANGELOG_POS)
        .map_err(|e| KafkaError::State(e.to_string()))?
        .and_then(|b| b.try_into().ok().map(i64::from_be_bytes))
        .unwrap_or(0);
    let consumer = crate::reader(&cfg.brokers, &format!("{}-restore", cfg.group))?;
    let (_, high) = consumer
        .fetch_watermarks(&cfg.topics().changelog, partition, Duration::from_secs(30))
        .map_err(|e| rd("changelog watermarks", e))?;
    if from >= high {
        return Ok(0);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&cfg.topics().changelog, partition, Offset::Offset(from)).map_err(|e| rd("restore", e))?;
    consumer.assign(&tpl).map_err(|e| rd("restore assignment", e))?;
    let mut n = 0u64;
    let mut next = from;
    let started = Instant::now();
    loop {
        match consumer.poll(Duration::from_millis(500)) {
            None => {
                // read_committed stops at the last stable offset; a killed
                // predecessor's open transaction holds it until it times out.
                if started.elapsed() > Duration::from_millis(cfg.transaction_timeout_ms * 3 + 30_000) {
                    return Err(KafkaError::Kafka(format!("changelog partition {partition}: restore did not reach the end")));
                }
            }
            Some(Err(RdError::PartitionEOF(_))) => break,
            Some(Err(e)) => return Err(rd("restore", e)),
            Some(Ok(m)) => {
                let Some(key) = m.key() else { continue };
                let Some((&t, k)) = key.split_first() else { continue };
                let Some(table) = Table::ALL.iter().copied().find(|x| *x as u8 == t) else {
                    return Err(KafkaError::State(format!("changelog record at offset {} names table {t}", m.offset())));
                };
                store.apply(table, k, m.payload());
                n += 1;
                next = m.offset() + 1;
                if n % 50_000 == 0 {
                    store.commit().map_err(|e| KafkaError::State(e.to_string()))?;
                }
            }
        }
    }
    // The end may be a transaction marker past the last record.
    let pos = consumer
        .position()
        .ok()
        .and_then(|p| p.elements().first().and_then(|e| if let Offset::Offset(o) = e.offset() { Some(o) } else { None }))
        .unwrap_or(next)
        .max(next);
    store.put(Table::Meta, META_CHANGELOG_POS, &pos.to_be_bytes()).map_err(|e| KafkaError::State(e.to_string()))?;
    store.commit().map_err(|e| KafkaError::State(e.to_string()))?;
    let secs = started.elapsed().as_secs_f64();
    info!(partition, records = n, seconds = secs, per_second = (n as f64 / secs.max(1e-9)) as u64, "restored from changelog");
    Ok(n)
}

/// The gauges the loop keeps current (counters are counted where things happen).
impl Processor {
    /// Every assigned partition has its task, restored: ready.
    fn after_assignment(&mut self) {
        self.metrics.shared.partitions_assigned.set(self.tasks.len() as i64);
        self.metrics.shared.set_ready();
        self.metrics.last_refresh = None;
    }

    /// The tasks' input positions for a transaction's span: `p<partition>=`
    /// roster/reports/activity next offsets.
    fn offsets_field(&self) -> String {
        let mut out = String::new();
        for (p, task) in &self.tasks {
            let pos: Vec<String> =
                self.topics.keyed_inputs().iter().map(|t| task.positions.get(*t).map_or("-".to_string(), |o| o.to_string())).collect();
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&format!("p{p}={}", pos.join("/")));
        }
        out
    }

    /// Lag after every batch (from librdkafka's cached watermarks, no
    /// request); RocksDB, windows and schools at most every 5 seconds.
    fn refresh_metrics(&mut self) {
        let m = self.metrics.shared.clone();
        m.partitions_assigned.set(self.tasks.len() as i64);
        for (p, task) in &self.tasks {
            let part = p.to_string();
            for topic in self.topics.keyed_inputs() {
                if let Some(high) = cached_high_watermark(&self.consumer, topic, *p) {
                    let pos = task.positions.get(topic).copied().unwrap_or(0);
                    m.consumer_lag.with_label_values(&[topic, &part]).set((high - pos).max(0));
                }
            }
        }
        if self.metrics.last_refresh.is_some_and(|t| t.elapsed() < Duration::from_secs(5)) {
            return;
        }
        self.metrics.last_refresh = Some(Instant::now());
        let gone: Vec<i32> = self.metrics.partitions.iter().filter(|p| !self.tasks.contains_key(p)).copied().collect();
        for p in gone {
            self.metrics.forget_partition(&self.topics, p);
        }
        let mut open = rollcall_engine::OpenWindows::default();
        for (p, task) in &self.tasks {
            let part = p.to_string();
            let st = task.engine.store().rocks_stats();
            m.rocksdb_live_data.with_label_values(&[&part]).set(st.live_data_bytes as i64);
            m.rocksdb_block_cache.with_label_values(&[&part]).set(st.block_cache_usage_bytes as i64);
            m.rocksdb_pending_compaction.with_label_values(&[&part]).set(st.pending_compaction_bytes as i64);
            match task.engine.open_windows() {
                Ok(w) => {
                    open.day += w.day;
                    open.week += w.week;
                }
                Err(e) => debug!(partition = p, error = %e, "open windows not counted"),
            }
            self.metrics.partitions.insert(*p);
        }
        m.open_windows.with_label_values(&["day"]).set(open.day as i64);
        m.open_windows.with_label_values(&["week"]).set(open.week as i64);
        let at = match self.cfg.clock {
            ClockMode::Wall => Some(Utc::now()),
            ClockMode::Replay => self.tasks.values().filter_map(|t| t.engine.clock()).max(),
        };
        if let (Some(at), Some(task)) = (at, self.tasks.values().next()) {
            m.schools_in_session.set(task.engine.schools_in_session(at) as i64);
        }
        for c in self.known_calendars.values() {
            if self.metrics.policies.insert(c.policy.clone()) {
                m.init_policy(&c.policy);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip() {
        let mut p = BTreeMap::new();
        p.insert(wire::ACTIVITY.to_string(), 42);
        p.insert(wire::ROSTER.to_string(), 0);
        assert_eq!(decode_positions(&encode_positions(&p)), p);
    }
}
