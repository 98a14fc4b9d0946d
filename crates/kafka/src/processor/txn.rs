//! The transaction of a batch and what undoes it: commit (outputs,
//! dead letters, changelog and offsets together), abort and rollback to the
//! committed state, and the rebalance, which is an abort plus a new set of
//! tasks.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError as RdError;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use rollcall_engine::{KvStore, Output, Table};
use rollcall_model::avro::AvroRecord;
use rollcall_model::{DeadLetter, DeadLetterKind};
use tracing::{debug, info, info_span, warn};

use super::positions::{committed_positions, committed_refused, encode_positions, encode_refused};
use super::{rd, Processor, META_CHANGELOG_POS, META_POSITIONS, META_REFUSED};
use crate::wire;
use crate::KafkaError;

impl Processor {
    fn begin(&mut self) -> Result<(), KafkaError> {
        if !self.in_txn {
            self.producer.begin_transaction().map_err(|e| rd("begin transaction", e))?;
            self.in_txn = true;
        }
        Ok(())
    }

    /// An output record in the configured value format.
    fn encode<T: AvroRecord>(&self, r: &T, what: impl FnOnce() -> String) -> Result<Vec<u8>, KafkaError> {
        self.codec.encode(r).map_err(|e| match e {
            rollcall_registry::EncodeError::Avro(e) => KafkaError::record(what(), e),
            e => KafkaError::Registry { what: what(), source: Box::new(e), transient: false },
        })
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

    pub(super) fn commit_batch(
        &mut self,
        outputs: Vec<(i32, Vec<Output>, Vec<(DeadLetterKind, DeadLetter)>)>,
        consumed: u64,
    ) -> Result<(), KafkaError> {
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
        for (p, outs, dead) in &outputs {
            for o in outs {
                match o {
                    Output::Determination(d) => {
                        let v = self.encode(d, || format!("partition {p}: encoding a determination"))?;
                        self.send(&self.topics.determinations, None, d.key().as_bytes(), Some(&v))?;
                        self.stats.determinations += 1;
                        self.metrics.determination(d);
                    }
                    Output::Outreach(t) => {
                        let v = self.encode(t, || format!("partition {p}: encoding an outreach trigger"))?;
                        self.send(&self.topics.outreach, None, t.student_id.as_bytes(), Some(&v))?;
                        self.stats.outreach += 1;
                        self.metrics.outreach(t);
                    }
                    // A student erased: their determinations leave the
                    // compacted topic (the keys the state still held; older
                    // ones are tombstoned by `rollcall forget` from the topic).
                    Output::Forgotten(f) => {
                        for key in &f.determination_keys {
                            self.send(&self.topics.determinations, None, key.as_bytes(), None)?;
                        }
                        self.stats.forgotten += 1;
                    }
                    // An event that waited for its student or school in vain.
                    Output::Refused(r) => {
                        let d = wire::refused_dead_letter(&self.topics, r)
                            .map_err(|e| KafkaError::record(format!("partition {p}: encoding a dead letter"), e))?;
                        let v = self.encode(&d, || format!("partition {p}: encoding a dead letter"))?;
                        self.send(&self.topics.dlq, None, r.event.student_id.as_bytes(), Some(&v))?;
                        self.stats.dead_letters += 1;
                        self.metrics.dead_letter(&d.topic, r.rejection.kind);
                        self.dead_log.note(r.rejection.kind, &d);
                    }
                }
            }
            for (kind, d) in dead {
                let v = self.encode(d, || {
                    let at = format!("{} [{}] @{}", d.topic, d.partition.unwrap_or(-1), d.offset.unwrap_or(-1));
                    format!("partition {p}: encoding the dead letter of {at}")
                })?;
                self.send(&self.topics.dlq, None, d.key.as_deref().unwrap_or("").as_bytes(), Some(&v))?;
                self.stats.dead_letters += 1;
                self.metrics.dead_letter(&d.topic, *kind);
                self.dead_log.note(*kind, d);
            }
        }
        // The task positions and clock are state too: they travel in the changelog.
        let mut offsets = TopicPartitionList::new();
        let partitions: Vec<i32> = self.tasks.keys().copied().collect();
        for p in &partitions {
            let task = self.tasks.get_mut(p).ok_or_else(|| KafkaError::Setup("task vanished".into()))?;
            task.engine.stage().map_err(|e| KafkaError::state(format!("partition {p}: staging the batch"), e))?;
            let pos = encode_positions(&task.positions);
            task.engine
                .store_mut()
                .put(Table::Meta, META_POSITIONS, &pos)
                .map_err(|e| KafkaError::state(format!("partition {p}: writing the input positions"), e))?;
            task.engine
                .store_mut()
                .put(Table::Meta, META_REFUSED, &encode_refused(&task.refused))
                .map_err(|e| KafkaError::state(format!("partition {p}: writing the refused records"), e))?;
            for (topic, off) in &task.positions {
                offsets.add_partition_offset(topic, *p, Offset::Offset(*off)).map_err(|e| rd("offsets", e))?;
            }
            let writes: Vec<(Vec<u8>, Option<Vec<u8>>)> = task
                .engine
                .store()
                .pending_writes()
                .map(|(t, k, v)| (super::positions::changelog_key(t, k), v.map(<[u8]>::to_vec)))
                .collect();
            for (k, v) in &writes {
                self.send(&self.topics.changelog, Some(*p), k, v.as_deref())?;
            }
        }
        span.record("offsets", self.offsets_field().as_str());
        crate::crash::reached("produced");
        if offsets.count() > 0 {
            let gm = self.consumer.group_metadata().ok_or_else(|| KafkaError::kafka_step("no consumer group metadata"))?;
            let sent =
                retry_txn("send offsets", || self.producer.send_offsets_to_transaction(&offsets, &gm, Duration::from_secs(30)));
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
        crate::crash::reached("committed");
        let failures = self.producer.context().failures.lock().map(|mut f| std::mem::take(&mut *f)).unwrap_or_default();
        if !failures.is_empty() {
            // A committed transaction whose records failed cannot happen; treat it as fatal.
            return Err(KafkaError::kafka_step(format!("delivery failed in a committed transaction: {}", failures.join("; "))));
        }
        self.stats.transactions += 1;
        self.metrics.committed(started.elapsed());
        self.stats.records += consumed;
        self.dead_log.records(consumed);
        let next = self.producer.context().changelog_next.lock().map(|g| g.clone()).unwrap_or_default();
        for (p, task) in self.tasks.iter_mut() {
            let store = task.engine.store_mut();
            if let Some(n) = next.get(p) {
                store
                    .put(Table::Meta, META_CHANGELOG_POS, &n.to_be_bytes())
                    .map_err(|e| KafkaError::state(format!("partition {p}: writing the changelog position"), e))?;
            }
            store.commit().map_err(|e| KafkaError::state(format!("partition {p}: committing the batch to RocksDB"), e))?;
            task.dirty = false;
        }
        debug!(elapsed_ms = started.elapsed().as_millis() as u64, "committed");
        Ok(())
    }

    /// Aborts the open transaction and returns every task to its committed state.
    fn abort(&mut self, why: &KafkaError) -> Result<(), KafkaError> {
        warn!(reason = %format!("{why:#}"), "aborting transaction");
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
                TxnStep::Abort(why) => return Err(why),
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
            let p = task.partition;
            task.engine.reload().map_err(|e| KafkaError::state(format!("partition {p}: reloading the committed state"), e))?;
            task.positions = committed_positions(&task.engine, p)?;
            task.refused = committed_refused(&task.engine, p)?;
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

    pub(super) fn on_rebalance(&mut self) -> Result<(), KafkaError> {
        let failed = self.consumer.context().failed.lock().ok().and_then(|mut f| f.take());
        if let Some(why) = failed {
            return Err(KafkaError::kafka_step(format!("rebalance: {why}")));
        }
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
        crate::crash::reached("rebalancing");
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
    /// The transaction must be aborted; the error says why.
    Abort(KafkaError),
    Fatal(KafkaError),
}

/// How long a transactional step is retried with the same clients. A broker
/// that restarts is back well within it; past it the step is taken as stuck
/// in the client (after a broker restart librdkafka was seen to keep a
/// request in the coordinator's queue without ever sending it), and the
/// error goes up, which starts the processor again with fresh clients from
/// its committed state, as after a crash.
const TXN_STEP_PATIENCE: Duration = Duration::from_secs(60);

/// Runs a transactional call, retrying while the error is retriable (a broker
/// that is away and coming back): the processor waits rather than stops.
fn retry_txn(what: &str, mut call: impl FnMut() -> Result<(), RdError>) -> TxnStep {
    let started = Instant::now();
    loop {
        match call() {
            Ok(()) => return TxnStep::Done,
            Err(RdError::Transaction(e)) if e.is_retriable() && started.elapsed() < TXN_STEP_PATIENCE => {
                warn!(step = what, error = %e, "transaction step failed; retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(RdError::Transaction(e)) if e.txn_requires_abort() => return TxnStep::Abort(rd(what, RdError::Transaction(e))),
            Err(e) => return TxnStep::Fatal(rd(what, e)),
        }
    }
}
