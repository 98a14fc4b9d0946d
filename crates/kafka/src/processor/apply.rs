//! Applying a batch: each task's ready records go through its engine (the
//! tasks side by side on threads), and in replay mode the records of the
//! input topics are first merged by timestamp (`take_ready`).

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use rollcall_engine::{ApplyError, Engine, Output};
use rollcall_model::DeadLetter;
use rollcall_store::RocksStore;
use tracing::{debug, info_span, warn};

use super::{Processor, Record, Task};
use crate::config::ClockMode;
use crate::wire::{self, Input, Topics};
use crate::KafkaError;

impl Processor {
    /// Applies buffered records, advances clocks, and commits one transaction.
    /// Returns whether anything was produced or committed. The tasks share
    /// nothing (each has its own engine and RocksDB), so they are applied on
    /// up to [`apply_threads`] threads; the transaction is one, as before.
    pub(super) fn process_batch(&mut self, until: Option<DateTime<Utc>>) -> Result<bool, KafkaError> {
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
