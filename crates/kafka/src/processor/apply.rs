//! Applying a batch: each task's ready records go through its engine (the
//! tasks side by side on threads), and in replay mode the records of the
//! input topics are first merged by timestamp (`take_ready`).

use std::collections::HashSet;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use rollcall_engine::{ApplyError, Engine, Output};
use rollcall_model::{DeadLetter, DeadLetterKind};
use rollcall_store::RocksStore;
use tracing::{debug, info, info_span};

use super::positions::advance_positions;
use super::{Processor, Record, Task};
use crate::config::ClockMode;
use crate::wire::{self, Input, InputError, Topics};
use crate::KafkaError;
use rollcall_registry::Codec;

impl Processor {
    /// Applies buffered records, advances clocks, and commits one transaction.
    /// Returns whether anything was produced or committed. The tasks share
    /// nothing (each has its own engine and RocksDB), so they are applied on
    /// up to `apply_threads` threads; the transaction is one, as before.
    pub(super) fn process_batch(&mut self, until: Option<DateTime<Utc>>) -> Result<bool, KafkaError> {
        let replay = self.cfg.clock == ClockMode::Replay;
        let now = self.cfg.wall_now();
        self.metrics.begin_batch();
        let topics = &self.topics;
        let codec = &*self.codec;
        let mut tasks: Vec<&mut Task> = self.tasks.values_mut().collect();
        let busy = tasks.iter().filter(|t| !t.buffered.is_empty()).count();
        let threads = self.apply_threads.min(busy);
        let applied: Vec<Result<Applied, KafkaError>> = if threads <= 1 {
            tasks.into_iter().map(|t| apply_task(t, replay, until, now, topics, codec)).collect()
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
                                done.push((i, apply_task(task, replay, until, now, topics, codec)));
                            }
                            done
                        })
                    })
                    .collect();
                workers
                    .into_iter()
                    .flat_map(|w| {
                        w.join().unwrap_or_else(|_| vec![(usize::MAX, Err(KafkaError::bad_state("an apply thread panicked")))])
                    })
                    .collect()
            });
            done.sort_by_key(|(i, _)| *i);
            done.into_iter().map(|(_, r)| r).collect()
        };
        let mut outputs: Vec<(i32, Vec<Output>, Vec<(DeadLetterKind, DeadLetter)>)> = Vec::new();
        let mut consumed = 0u64;
        for a in applied {
            let a = a?;
            for (rank, kind, ts, received, delay) in &a.consumed {
                self.metrics.consumed(self.topics.keyed_inputs()[*rank], kind, *ts, *received);
                if let Some(secs) = delay {
                    self.metrics.delivered_after(*secs);
                }
            }
            consumed += a.consumed.len() as u64;
            self.metrics.windows(a.windows.0, a.windows.1);
            outputs.push((a.partition, a.outputs, a.dead));
        }
        let calendar_dead = self.take_calendar_dead_letters()?;
        if !calendar_dead.is_empty() {
            match outputs.iter_mut().find(|o| o.0 == 0) {
                Some(o) => o.2.extend(calendar_dead),
                None => outputs.push((0, Vec::new(), calendar_dead)),
            }
        }
        outputs.sort_by_key(|o| o.0);
        if !self.tasks.values().any(|t| t.dirty) {
            return Ok(false);
        }
        self.commit_batch(outputs, consumed)?;
        Ok(true)
    }
}

/// What one task's part of a batch produced.
struct Applied {
    partition: i32,
    outputs: Vec<Output>,
    dead: Vec<(DeadLetterKind, DeadLetter)>,
    /// Per record applied: input topic rank, metrics kind, timestamp, received.
    /// Per record: its input's rank, its metric label, its Kafka timestamp,
    /// when it was received, and for a gateway-stamped event its delivery delay.
    consumed: Vec<(usize, &'static str, Option<i64>, i64, Option<f64>)>,
    /// Touched windows the batch evaluated and skipped.
    windows: (u64, u64),
}

/// Applies a task's ready records, advances its clock and flushes its engine.
fn apply_task(
    task: &mut Task,
    replay: bool,
    until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    topics: &Topics,
    codec: &Codec,
) -> Result<Applied, KafkaError> {
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
    let windows_before = windows_of(task.engine.stats());
    let mut ready = take_ready(&mut task.buffered, &task.at_end, replay, topics);
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
    if !replay && !task.caught_up {
        task.engine.judge_times_at(now);
    }
    for rec in ready.drain(..) {
        // Who is enrolled is not an event in time: only activity and
        // reports move the replay clock, so closes see the whole roster.
        if replay && rec.topic != topics.roster {
            if let Some(ts) = rec.timestamp.and_then(DateTime::from_timestamp_millis) {
                task.engine.advance(ts).map_err(|e| {
                    KafkaError::state(
                        format!("{} [{}] @{}: advancing the clock to {ts}", rec.topic, rec.partition, rec.offset),
                        e,
                    )
                })?;
            }
        }
        // Dead-lettered before a restart, from above a record still waiting then.
        if !task.refused.is_empty() && task.refused.contains(&(rec.topic.clone(), rec.offset)) {
            continue;
        }
        let (dead_letter, kind, delay) = apply_record(&mut task.engine, &rec, topics, codec)?;
        consumed.push((topics.input_rank(&rec.topic), kind, rec.timestamp, rec.received_ms, delay));
        if let Some(d) = dead_letter {
            dead.push(d);
            task.refused.insert((rec.topic.clone(), rec.offset));
        }
        task.dirty = true;
    }
    advance_positions(&mut task.positions, &task.buffered, &task.fetched, topics);
    // Below its position a record is never read again: forget its refusal.
    let positions = &task.positions;
    task.refused.retain(|(t, o)| positions.get(t).is_some_and(|p| o >= p));
    task.caught_up |= task.at_end.len() == 3 && task.buffered.is_empty();
    let target = if replay { until } else { Some(now).filter(|_| task.caught_up) };
    if let Some(t) = target {
        task.engine
            .advance(t)
            .map_err(|e| KafkaError::state(format!("partition {}: advancing the clock to {t}", task.partition), e))?;
    }
    task.engine.flush().map_err(|e| KafkaError::state(format!("partition {}: flushing the engine", task.partition), e))?;
    let out = task.engine.take_outputs();
    span.record("outputs", out.len());
    span.record("dead_letters", dead.len());
    // A clock that moved without closing anything is not worth a
    // transaction: it is written with the next batch that is.
    if !out.is_empty() || !dead.is_empty() || task.engine.store().pending_writes().next().is_some() {
        task.dirty = true;
    }
    debug!(first_offset = ?first, records = consumed.len(), outputs = out.len(), buffered = task.buffered.len(), at_end = ?task.at_end, "applied");
    let windows_after = windows_of(task.engine.stats());
    let windows = (windows_after.0 - windows_before.0, windows_after.1 - windows_before.1);
    Ok(Applied { partition: task.partition, outputs: out, dead, consumed, windows })
}

/// (evaluated, skipped) touched windows, as the engine has counted them.
fn windows_of(s: &rollcall_engine::EngineStats) -> (u64, u64) {
    (s.windows_evaluated, s.windows_skipped)
}

/// The records of a task that can be applied now, in application order.
/// With the wall clock, everything fetched. With the replay clock, records
/// are merged across the input topics by timestamp: one is applied only when
/// every input topic, its own included, has a later record waiting or is at
/// its end.
///
/// It takes the task's buffer and ends rather than the task, which holds an
/// engine, so that the merge can be tested on plain records.
fn take_ready(buffered: &mut Vec<Record>, at_end: &HashSet<String>, replay: bool, topics: &Topics) -> Vec<Record> {
    let key = |r: &Record| (r.timestamp.unwrap_or(0), topics.input_rank(&r.topic), r.offset);
    buffered.sort_by_key(key);
    if !replay {
        return std::mem::take(buffered);
    }
    let mut ready = Vec::new();
    let mut rest = Vec::new();
    // The latest timestamp that each topic is known to have reached.
    let mut horizon = i64::MAX;
    for topic in topics.keyed_inputs() {
        if at_end.contains(topic) {
            continue;
        }
        let newest = buffered.iter().filter(|r| r.topic == topic).map(|r| r.timestamp.unwrap_or(0)).max();
        horizon = horizon.min(newest.unwrap_or(i64::MIN));
    }
    // Strictly before: more records of the horizon's own instant may still
    // come, and one instant is applied in one batch.
    for r in buffered.drain(..) {
        if horizon == i64::MAX || r.timestamp.unwrap_or(0) < horizon {
            ready.push(r);
        } else {
            rest.push(r);
        }
    }
    *buffered = rest;
    ready
}

/// Applies one input record; a refused one comes back as a dead letter.
/// Also returns the record's `kind` label for the metrics.
fn apply_record(
    engine: &mut Engine<RocksStore>,
    rec: &Record,
    topics: &Topics,
    codec: &Codec,
) -> Result<(Option<(DeadLetterKind, DeadLetter)>, &'static str, Option<f64>), KafkaError> {
    let failed_at = engine.clock().unwrap_or_default();
    let dead = |kind: DeadLetterKind, message: String| {
        let key = crate::redact::student_key(rec.key.as_deref());
        debug!(topic = %rec.topic, partition = rec.partition, offset = rec.offset, %key, kind = kind.as_str(), %message, "dead letter");
        let (at, key) = (Some((rec.partition, rec.offset)), rec.key.as_deref());
        let letter = wire::dead_letter(&rec.topic, at, key, rec.value.as_deref(), kind, message, failed_at);
        Some((kind, letter))
    };
    if rec.forget {
        let student = match rec.key.as_deref().map(std::str::from_utf8) {
            Some(Ok(s)) if !s.is_empty() => s,
            _ => {
                let message =
                    "a forget request (roster tombstone with the rollcall.forget header) needs the student id as its key";
                return Ok((dead(DeadLetterKind::MissingKey, message.into()), "forget", None));
            }
        };
        let f = engine
            .forget_student(student)
            .map_err(|e| KafkaError::state(format!("{} [{}] @{}: erasing a student", rec.topic, rec.partition, rec.offset), e))?;
        info!(
            partition = rec.partition,
            offset = rec.offset,
            records = f.records,
            determinations = f.determination_keys.len(),
            "student erased on request"
        );
        return Ok((None, "forget", None));
    }
    // The consumer subscribes to the keyed inputs by name: nothing else comes.
    let kind = topics.kind(&rec.topic).ok_or_else(|| {
        let at = format!("{} [{}] @{}", rec.topic, rec.partition, rec.offset);
        KafkaError::bad_state(format!("{at}: a record of a topic rollcall does not read"))
    })?;
    let input = match wire::decode_input_with(codec, kind, rec.key.as_deref(), rec.value.as_deref()) {
        Ok(i) => i,
        Err(InputError::Unusable(u)) => return Ok((dead(u.kind, u.message), crate::metrics::input_label(kind, None), None)),
        Err(InputError::Registry(e)) => {
            let at = format!("{} [{}] @{}", rec.topic, rec.partition, rec.offset);
            return Err(KafkaError::Registry { what: at, source: Box::new(e), transient: true });
        }
    };
    let label = crate::metrics::input_label(kind, Some(&input));
    let delay = match &input {
        Input::Activity(e) => e.received_at.map(|r| (r - e.occurred_at).num_milliseconds().max(0) as f64 / 1000.0),
        _ => None,
    };
    let result = match &input {
        Input::Activity(e) => engine.apply_event(e).map(|_| ()),
        Input::Report(r) => engine.apply_report(r).map(|_| ()),
        Input::Roster(s) => engine.upsert_student(s.clone()),
        Input::Calendar(c) => engine.load_calendar(c.clone()),
    };
    match result {
        Ok(()) => Ok((None, label, delay)),
        Err(ApplyError::Rejected(r)) => Ok((dead(r.kind, r.message), label, None)),
        Err(ApplyError::Fatal(e)) => {
            Err(KafkaError::state(format!("{} [{}] @{}: applying the record", rec.topic, rec.partition, rec.offset), e))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;
    use crate::wire::{ACTIVITY, REPORTS, ROSTER};

    const ALL: &[&str] = &[ROSTER, REPORTS, ACTIVITY];

    fn ends(topics: &[&str]) -> HashSet<String> {
        topics.iter().map(|t| t.to_string()).collect()
    }

    fn ids(records: &[Record]) -> Vec<(String, i64)> {
        records.iter().map(|r| (r.topic.clone(), r.offset)).collect()
    }

    fn owned(ids: &[(&str, i64)]) -> Vec<(String, i64)> {
        ids.iter().map(|(t, o)| (t.to_string(), *o)).collect()
    }

    struct Case {
        name: &'static str,
        replay: bool,
        /// Fetched and not applied, in arrival order: topic, offset, timestamp (ms).
        buffered: &'static [(&'static str, i64, i64)],
        at_end: &'static [&'static str],
        /// Released, in application order.
        ready: &'static [(&'static str, i64)],
        /// Still buffered afterwards, in any order.
        held: &'static [(&'static str, i64)],
    }

    #[test]
    fn take_ready_table() {
        let cases = [
            Case {
                name: "wall clock: everything fetched, in timestamp order, whatever the ends",
                replay: false,
                buffered: &[(ACTIVITY, 0, 300), (REPORTS, 0, 100), (ROSTER, 0, 200)],
                at_end: &[],
                ready: &[(REPORTS, 0), (ROSTER, 0), (ACTIVITY, 0)],
                held: &[],
            },
            Case { name: "replay: nothing buffered", replay: true, buffered: &[], at_end: &[], ready: &[], held: &[] },
            Case {
                name: "replay: an input with nothing fetched and not at its end holds everything back",
                replay: true,
                buffered: &[(REPORTS, 0, 100), (ACTIVITY, 0, 100)],
                at_end: &[],
                ready: &[],
                held: &[(REPORTS, 0), (ACTIVITY, 0)],
            },
            Case {
                name: "replay: every input at its end releases everything, in timestamp order",
                replay: true,
                buffered: &[(ACTIVITY, 1, 500), (ACTIVITY, 0, 400), (REPORTS, 0, 450)],
                at_end: ALL,
                ready: &[(ACTIVITY, 0), (REPORTS, 0), (ACTIVITY, 1)],
                held: &[],
            },
            Case {
                name: "replay: released strictly before the oldest of the inputs' newest records",
                replay: true,
                buffered: &[
                    (ROSTER, 0, 100),
                    (ROSTER, 1, 300),
                    (REPORTS, 0, 200),
                    (ACTIVITY, 0, 150),
                    (ACTIVITY, 1, 250),
                    (ACTIVITY, 2, 400),
                ],
                at_end: &[],
                ready: &[(ROSTER, 0), (ACTIVITY, 0)],
                held: &[(REPORTS, 0), (ACTIVITY, 1), (ROSTER, 1), (ACTIVITY, 2)],
            },
            Case {
                name: "replay: an instant every input has reached but not passed waits (more of it may come)",
                replay: true,
                buffered: &[(ROSTER, 0, 100), (REPORTS, 0, 100), (ACTIVITY, 0, 100)],
                at_end: &[],
                ready: &[],
                held: &[(ROSTER, 0), (REPORTS, 0), (ACTIVITY, 0)],
            },
            Case {
                name: "replay: an input at its end does not hold the others back",
                replay: true,
                buffered: &[(REPORTS, 0, 100), (REPORTS, 1, 300), (ACTIVITY, 0, 200)],
                at_end: &[ROSTER],
                ready: &[(REPORTS, 0)],
                held: &[(REPORTS, 1), (ACTIVITY, 0)],
            },
            Case {
                name: "replay: the records of an input at its end still wait for the others",
                replay: true,
                buffered: &[(ROSTER, 0, 500), (REPORTS, 0, 100), (REPORTS, 1, 200), (ACTIVITY, 0, 150), (ACTIVITY, 1, 300)],
                at_end: &[ROSTER],
                ready: &[(REPORTS, 0), (ACTIVITY, 0)],
                held: &[(ROSTER, 0), (REPORTS, 1), (ACTIVITY, 1)],
            },
            Case {
                name: "replay: an input's horizon is its newest record, not its last one",
                replay: true,
                buffered: &[(ROSTER, 0, 1000), (REPORTS, 0, 500), (REPORTS, 1, 100), (ACTIVITY, 0, 800)],
                at_end: &[],
                ready: &[(REPORTS, 1)],
                held: &[(ROSTER, 0), (REPORTS, 0), (ACTIVITY, 0)],
            },
            Case {
                name: "replay: one instant in roster, reports, activity order",
                replay: true,
                buffered: &[(ACTIVITY, 0, 100), (REPORTS, 0, 100), (ROSTER, 0, 100), (ACTIVITY, 1, 50)],
                at_end: ALL,
                ready: &[(ACTIVITY, 1), (ROSTER, 0), (REPORTS, 0), (ACTIVITY, 0)],
                held: &[],
            },
            Case {
                name: "replay: reports that arrived out of order are applied by timestamp",
                replay: true,
                buffered: &[(REPORTS, 0, 300), (REPORTS, 1, 100), (REPORTS, 2, 200)],
                at_end: ALL,
                ready: &[(REPORTS, 1), (REPORTS, 2), (REPORTS, 0)],
                held: &[],
            },
            Case {
                name: "replay: one input's records of one instant in offset order",
                replay: true,
                buffered: &[(REPORTS, 3, 100), (REPORTS, 2, 100)],
                at_end: ALL,
                ready: &[(REPORTS, 2), (REPORTS, 3)],
                held: &[],
            },
        ];
        let topics = Topics::with_prefix("");
        for c in cases {
            let mut buffered: Vec<Record> = c.buffered.iter().map(|(t, o, ts)| Record::at(t, *o, Some(*ts))).collect();
            let ready = take_ready(&mut buffered, &ends(c.at_end), c.replay, &topics);
            assert_eq!(ids(&ready), owned(c.ready), "{}: released", c.name);
            let (mut held, mut want) = (ids(&buffered), owned(c.held));
            held.sort();
            want.sort();
            assert_eq!(held, want, "{}: held back", c.name);
        }
    }

    #[test]
    fn a_record_without_a_timestamp_counts_as_time_zero() {
        let topics = Topics::with_prefix("");
        let mut buffered = vec![Record::at(ACTIVITY, 0, Some(5)), Record::at(REPORTS, 0, None)];
        let ready = take_ready(&mut buffered, &ends(ALL), true, &topics);
        assert_eq!(ids(&ready), owned(&[(REPORTS, 0), (ACTIVITY, 0)]));
        // And as an input's newest record it holds the others at zero.
        let mut buffered = vec![Record::at(ROSTER, 0, Some(5)), Record::at(REPORTS, 0, None), Record::at(ACTIVITY, 0, Some(5))];
        assert!(take_ready(&mut buffered, &ends(&[]), true, &topics).is_empty());
        assert_eq!(buffered.len(), 3);
    }

    /// One task's inputs fed through `take_ready` and `advance_positions`
    /// as `fetch_batch` and `apply_task` do it, without a broker: each input
    /// is a list of timestamps by offset, read in offset order from where
    /// the task resumed, interleaved with the others in any way.
    struct Sim {
        topics: Topics,
        stamps: [Vec<i64>; 3],
        /// Next offset to fetch, per input (in `keyed_inputs` order).
        next: [i64; 3],
        buffered: Vec<Record>,
        fetched: BTreeMap<String, i64>,
        at_end: HashSet<String>,
        positions: BTreeMap<String, i64>,
        /// Where each input resumed at the last restart.
        resumed: [i64; 3],
        /// Offsets applied since the last restart, and at any time.
        applied: [BTreeSet<i64>; 3],
        ever: [BTreeSet<i64>; 3],
        /// (timestamp, input, offset) of every record applied, in order.
        order: Vec<(i64, usize, i64)>,
    }

    impl Sim {
        fn new(stamps: [Vec<i64>; 3]) -> Sim {
            Sim {
                topics: Topics::with_prefix(""),
                stamps,
                next: [0; 3],
                buffered: Vec::new(),
                fetched: BTreeMap::new(),
                at_end: HashSet::new(),
                positions: BTreeMap::new(),
                resumed: [0; 3],
                applied: Default::default(),
                ever: Default::default(),
                order: Vec::new(),
            }
        }

        fn topic(&self, input: usize) -> String {
            self.topics.keyed_inputs()[input].to_string()
        }

        fn position(&self, input: usize) -> i64 {
            self.positions.get(&self.topic(input)).copied().unwrap_or(0)
        }

        fn fetch(&mut self, input: usize, n: usize) {
            let topic = self.topic(input);
            for _ in 0..n {
                let offset = self.next[input];
                let Some(ts) = self.stamps[input].get(offset as usize).copied() else { break };
                self.next[input] += 1;
                self.at_end.remove(&topic);
                let next = self.fetched.entry(topic.clone()).or_insert(0);
                *next = (*next).max(offset + 1);
                self.buffered.push(Record::at(&topic, offset, Some(ts)));
            }
        }

        /// An end is known only once everything was fetched, and maybe later.
        fn notice_end(&mut self, input: usize) {
            if self.next[input] as usize == self.stamps[input].len() {
                self.at_end.insert(self.topic(input));
            }
        }

        fn apply(&mut self, replay: bool) {
            // The rule, restated from what was waiting before the merge: a
            // record goes only when every input not at its end has a later
            // one waiting.
            let newest: Vec<Option<i64>> = (0..3)
                .map(|i| self.buffered.iter().filter(|r| r.topic == self.topic(i)).map(|r| r.timestamp.unwrap_or(0)).max())
                .collect();
            let open: Vec<usize> = (0..3).filter(|i| !self.at_end.contains(&self.topic(*i))).collect();
            let may_go = |r: &Record| !replay || open.iter().all(|i| newest[*i].is_some_and(|n| n > r.timestamp.unwrap_or(0)));
            let ready = take_ready(&mut self.buffered, &self.at_end, replay, &self.topics);
            for r in &ready {
                assert!(
                    may_go(r),
                    "{} @{} (ts {:?}) released before every input reached past it",
                    r.topic,
                    r.offset,
                    r.timestamp
                );
                let i = self.topics.input_rank(&r.topic);
                assert!(self.applied[i].insert(r.offset), "{} @{} released twice", r.topic, r.offset);
                self.ever[i].insert(r.offset);
                self.order.push((r.timestamp.unwrap_or(0), i, r.offset));
            }
            for r in &self.buffered {
                assert!(
                    !may_go(r),
                    "{} @{} (ts {:?}) held back though every input reached past it",
                    r.topic,
                    r.offset,
                    r.timestamp
                );
            }
            advance_positions(&mut self.positions, &self.buffered, &self.fetched, &self.topics);
            for i in 0..3 {
                // The lowest offset this run has not applied (everything
                // below where it resumed was applied before).
                let lowest = (self.resumed[i]..).find(|o| !self.applied[i].contains(o)).unwrap_or(i64::MAX);
                assert_eq!(self.position(i), lowest, "position of {}", self.topic(i));
                let never = (0..).find(|o| !self.ever[i].contains(o)).unwrap_or(i64::MAX);
                assert!(self.position(i) <= never, "{} is past offset {never}, which was never applied", self.topic(i));
            }
        }

        /// A crash or an aborted transaction: what was fetched is dropped and
        /// every input is read again from its position.
        fn restart(&mut self) {
            self.buffered.clear();
            self.fetched.clear();
            self.at_end.clear();
            for i in 0..3 {
                self.resumed[i] = self.position(i);
                self.next[i] = self.resumed[i];
                self.applied[i].clear();
            }
        }

        /// Reads every input to its end: then nothing may be left waiting.
        fn finish(&mut self, replay: bool) {
            for i in 0..3 {
                self.fetch(i, usize::MAX);
                self.notice_end(i);
            }
            self.apply(replay);
            assert!(self.buffered.is_empty(), "left waiting at the end: {:?}", ids(&self.buffered));
            for i in 0..3 {
                let n = self.stamps[i].len() as i64;
                assert_eq!(self.ever[i], (0..n).collect::<BTreeSet<_>>(), "applied of {}", self.topic(i));
                assert_eq!(self.position(i), n, "final position of {}", self.topic(i));
            }
        }
    }

    proptest! {
        /// Whatever the arrival order (how the inputs interleave, where
        /// batches end, timestamps against offsets, when ends are noticed,
        /// restarts), a position is the lowest offset not yet applied.
        #[test]
        fn positions_are_the_lowest_unapplied_offset(
            stamps in prop::array::uniform3(prop::collection::vec(0i64..40, 0..12)),
            steps in prop::collection::vec((0usize..3, 0usize..4, any::<bool>(), prop::bool::weighted(0.1)), 0..50),
            replay in any::<bool>(),
        ) {
            let mut sim = Sim::new(stamps);
            for (input, n, end, restart) in steps {
                sim.fetch(input, n);
                if end {
                    sim.notice_end(input);
                }
                sim.apply(replay);
                if !replay {
                    prop_assert!(sim.buffered.is_empty(), "the wall clock holds nothing back");
                }
                if restart {
                    sim.restart();
                }
            }
            sim.finish(replay);
        }

        /// When each input's timestamps grow with its offsets (as when
        /// producers stamp records), replay applies one merged timeline:
        /// by timestamp, one instant's records roster first, then reports,
        /// then activity.
        #[test]
        fn replay_applies_one_timeline(
            gaps in prop::array::uniform3(prop::collection::vec(0i64..3, 0..12)),
            steps in prop::collection::vec((0usize..3, 0usize..4, any::<bool>()), 0..50),
        ) {
            let stamps = gaps.map(|g| g.iter().scan(0i64, |t, d| { *t += d; Some(*t) }).collect::<Vec<i64>>());
            let mut sim = Sim::new(stamps);
            for (input, n, end) in steps {
                sim.fetch(input, n);
                if end {
                    sim.notice_end(input);
                }
                sim.apply(true);
            }
            sim.finish(true);
            let mut merged = sim.order.clone();
            merged.sort();
            prop_assert_eq!(sim.order, merged);
        }
    }
}
