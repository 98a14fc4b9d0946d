//! Opening a task: its RocksDB state, brought up to the committed
//! changelog, under an engine with the policies and calendars known so far.
//! A takeover opens its tasks side by side.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use rollcall_engine::{Engine, EngineConfig, KvStore, Table};
use rollcall_model::SchoolCalendar;
use rollcall_policy::Policy;
use rollcall_store::RocksStore;
use tracing::{info, info_span, warn};

use super::positions::{committed_positions, committed_refused, decode_changelog_key, decode_changelog_position, ChangelogKey};
use super::{rd, Processor, Task, META_CHANGELOG_POS};
use crate::config::ProcessorConfig;
use crate::KafkaError;

impl Processor {
    /// The task of a partition, opened (and restored) on first use.
    pub(super) fn task(&mut self, partition: i32) -> Result<&mut Task, KafkaError> {
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
    pub(super) fn open_tasks(&mut self, partitions: &[i32]) -> Result<(), KafkaError> {
        const AT_ONCE: usize = 8;
        for chunk in partitions.chunks(AT_ONCE) {
            let (cfg, metrics, policies, calendars) = (&self.cfg, &self.metrics.shared, &self.policies, &self.known_calendars);
            let opened: Vec<Result<(Task, u64), KafkaError>> = std::thread::scope(|s| {
                let handles: Vec<_> =
                    chunk.iter().map(|p| s.spawn(move || open_task(cfg, metrics, policies, calendars, *p))).collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|_| Err(KafkaError::bad_state("a task-opening thread panicked"))))
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
}

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
    let mut store = RocksStore::open(&dir, &cfg.store)
        .map_err(|e| KafkaError::local(format!("partition {partition}: opening RocksDB"), e))?;
    let restoring = metrics.restore_started();
    let restored = restore_from_changelog(cfg, partition, &mut store)?;
    drop(restoring);
    metrics.restore_records.inc_by(restored);
    let engine_cfg = EngineConfig {
        max_clock_skew_days: cfg.max_clock_skew_days,
        unknown_student_wait: chrono::Duration::days(cfg.unknown_student_wait_days.into()),
        unknown_school_wait: chrono::Duration::hours(cfg.unknown_school_wait_hours.into()),
        retire_closed_years: cfg.retire_closed_years,
        evaluation: cfg.evaluation.into(),
        ..EngineConfig::default()
    };
    let mut engine = Engine::open(store, engine_cfg)
        .map_err(|e| KafkaError::state(format!("partition {partition}: opening the engine"), e))?;
    for p in policies {
        engine.register_policy(p.clone());
    }
    for c in calendars.values() {
        if let Err(e) = engine.load_calendar(c.clone()) {
            warn!(school = %c.school_id, error = %e, "calendar refused");
        }
    }
    let positions = committed_positions(&engine, partition)?;
    let refused = committed_refused(&engine, partition)?;
    info!(restored, ?positions, "task opened");
    let task = Task {
        partition,
        engine,
        positions,
        refused,
        buffered: Vec::new(),
        fetched: BTreeMap::new(),
        at_end: HashSet::new(),
        broker_high: HashMap::new(),
        caught_up: false,
        dirty: true,
    };
    Ok((task, restored))
}

/// Brings a task's local store up to the committed changelog; returns the
/// number of records read.
fn restore_from_changelog(cfg: &ProcessorConfig, partition: i32, store: &mut RocksStore) -> Result<u64, KafkaError> {
    let from = store
        .get(Table::Meta, META_CHANGELOG_POS)
        .map_err(|e| KafkaError::state(format!("partition {partition}: reading the changelog position"), e))?
        .and_then(|b| decode_changelog_position(&b))
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
                    return Err(KafkaError::kafka_step(format!(
                        "changelog partition {partition}: restore did not reach the end"
                    )));
                }
            }
            Some(Err(RdError::PartitionEOF(_))) => break,
            Some(Err(e)) => return Err(rd("restore", e)),
            Some(Ok(m)) => {
                let Some(key) = m.key() else { continue };
                let (table, k) = match decode_changelog_key(key) {
                    ChangelogKey::Entry(table, k) => (table, k),
                    ChangelogKey::Empty => continue,
                    ChangelogKey::UnknownTable(t) => {
                        let at = m.offset();
                        return Err(KafkaError::bad_state(format!(
                            "changelog partition {partition}: the record at offset {at} names table {t}"
                        )));
                    }
                };
                store.apply(table, k, m.payload());
                n += 1;
                crate::crash::reached("restoring");
                next = m.offset() + 1;
                if n.is_multiple_of(50_000) {
                    store.commit().map_err(|e| {
                        KafkaError::state(format!("partition {partition}: committing the restore at changelog offset {next}"), e)
                    })?;
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
    store
        .put(Table::Meta, META_CHANGELOG_POS, &pos.to_be_bytes())
        .map_err(|e| KafkaError::state(format!("partition {partition}: writing the changelog position"), e))?;
    store.commit().map_err(|e| KafkaError::state(format!("partition {partition}: committing the restore"), e))?;
    let secs = started.elapsed().as_secs_f64();
    info!(partition, records = n, seconds = secs, per_second = (n as f64 / secs.max(1e-9)) as u64, "restored from changelog");
    Ok(n)
}
