//! The calendar feed: every instance reads every calendar partition (the
//! calendars are not keyed by student), before the first event and then
//! between batches, and hands each calendar to every task.
//!
//! A calendar record that cannot be used (it does not decode, or the engine
//! refuses it) is refused by every instance alike, and dead-lettered by one:
//! the owner of partition 0 of the keyed inputs, in its next transaction,
//! together with the position up to which it has dead-lettered calendar
//! records (kept in partition 0's state, so in its changelog). A restart,
//! which reads the calendars again, or partition 0 moving to another
//! instance, dead-letters nothing twice.

use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tracing::{debug, warn};

use rollcall_engine::{ApplyError, KvStore, Table};
use rollcall_model::{DeadLetter, DeadLetterKind};

use super::positions::{decode_positions, encode_positions};
use super::{rd, Processor, META_CALENDAR_DEAD};
use crate::wire::{self, Input, InputTopic};
use crate::KafkaError;

impl Processor {
    pub(super) fn start_calendar_feed(&mut self) -> Result<(), KafkaError> {
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
            return Err(KafkaError::Setup(format!(
                "topic {} does not exist: run `rollcall topics create` first",
                self.topics.calendar
            )));
        }
        self.calendars.assign(&tpl).map_err(|e| rd("calendar assignment", e))?;
        // Read the calendars that exist before any event is applied.
        let started = Instant::now();
        while !self.calendars_at_end && started.elapsed() < Duration::from_secs(60) {
            self.poll_calendars()?;
        }
        Ok(())
    }

    /// Before a batch is applied, the calendar topic is read up to the end
    /// it has now, as a global table is: a district's loader produces its
    /// calendars before the events of their schools, and the separate
    /// calendar consumer must not fall behind them. At most every 200 ms
    /// (a watermark request); bounded to 5 s, since an event whose calendar
    /// is still missing waits for it in the engine anyway.
    pub(super) fn catch_up_calendars(&mut self) -> Result<(), KafkaError> {
        if self.calendar_end_asked.is_some_and(|t| t.elapsed() < Duration::from_millis(200)) {
            return Ok(());
        }
        self.calendar_end_asked = Some(Instant::now());
        let deadline = Instant::now() + Duration::from_secs(5);
        let assigned = self.calendars.assignment().map_err(|e| rd("calendar assignment", e))?;
        for el in assigned.elements() {
            let (topic, partition) = (el.topic().to_string(), el.partition());
            let high = match self.calendars.fetch_watermarks(&topic, partition, Duration::from_secs(5)) {
                Ok((_, high)) => high,
                Err(e) => {
                    warn!(error = %e, "calendar watermark; going on");
                    return Ok(());
                }
            };
            loop {
                let position = match self.calendars.position() {
                    Ok(p) => p.find_partition(&topic, partition).and_then(|e| e.offset().to_raw()).unwrap_or(-1),
                    Err(_) => -1,
                };
                if position >= high || Instant::now() > deadline {
                    break;
                }
                self.calendars_at_end = false;
                self.poll_calendars()?;
            }
        }
        Ok(())
    }

    pub(super) fn poll_calendars(&mut self) -> Result<(), KafkaError> {
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
                Some(Ok(m)) => {
                    self.metrics.calendar_consumed(&self.topics.calendar);
                    let decoded = match wire::decode_input_with(&self.codec, InputTopic::Calendar, m.key(), m.payload()) {
                        Ok(i) => Ok(i),
                        Err(wire::InputError::Unusable(u)) => Err(u),
                        Err(wire::InputError::Registry(e)) => {
                            let what = format!("{} [{}] @{}", self.topics.calendar, m.partition(), m.offset());
                            return Err(KafkaError::Registry { what, source: Box::new(e), transient: true });
                        }
                    };
                    let refused = match decoded {
                        Ok(Input::Calendar(c)) => match self.calendar_check.load_calendar(c.clone()) {
                            Ok(()) => {
                                for task in self.tasks.values_mut() {
                                    if let Err(e) = task.engine.load_calendar(c.clone()) {
                                        warn!(school = %c.school_id, error = %e, "calendar refused");
                                    }
                                    task.dirty = true;
                                }
                                self.known_calendars.insert(c.school_id.clone(), c);
                                None
                            }
                            Err(ApplyError::Rejected(r)) => Some((r.kind, r.message)),
                            Err(ApplyError::Fatal(e)) => return Err(KafkaError::state("checking a calendar", e)),
                        },
                        Ok(_) => None,
                        Err(u) => Some((u.kind, u.message)),
                    };
                    let Some((kind, message)) = refused else { continue };
                    let (partition, offset) = (m.partition(), m.offset());
                    debug!(partition, offset, kind = kind.as_str(), %message, "calendar record refused");
                    if !self.calendar_dead.iter().any(|(_, d)| d.partition == Some(partition) && d.offset == Some(offset)) {
                        let at = Some((partition, offset));
                        let (topic, key, value) = (&self.topics.calendar, m.key(), m.payload());
                        let d = wire::dead_letter(topic, at, key, value, kind, message, Default::default());
                        self.calendar_dead.push((kind, d));
                    }
                }
            }
        }
    }
}

impl Processor {
    /// The refused calendar records to dead-letter in this batch's
    /// transaction: none unless this instance owns partition 0; then those
    /// past the positions in partition 0's state, which move past them in
    /// the same transaction (an abort rolls both back).
    pub(super) fn take_calendar_dead_letters(&mut self) -> Result<Vec<(DeadLetterKind, DeadLetter)>, KafkaError> {
        let Some(task) = self.tasks.get_mut(&0) else { return Ok(Vec::new()) };
        let stored = task
            .engine
            .store()
            .get(Table::Meta, META_CALENDAR_DEAD)
            .map_err(|e| KafkaError::state("partition 0: reading the calendar dead-letter positions", e))?;
        let mut done = stored.map(|b| decode_positions(&b)).unwrap_or_default();
        let sent = |done: &std::collections::BTreeMap<String, i64>, d: &DeadLetter| {
            let p = d.partition.unwrap_or_default().to_string();
            d.offset.unwrap_or_default() < done.get(&p).copied().unwrap_or(0)
        };
        self.calendar_dead.retain(|(_, d)| !sent(&done, d));
        if self.calendar_dead.is_empty() {
            return Ok(Vec::new());
        }
        let failed_at = task.engine.clock().unwrap_or_default();
        let mut out = Vec::with_capacity(self.calendar_dead.len());
        for (kind, d) in &self.calendar_dead {
            let next = done.entry(d.partition.unwrap_or_default().to_string()).or_insert(0);
            *next = (*next).max(d.offset.unwrap_or_default() + 1);
            out.push((*kind, DeadLetter { failed_at, ..d.clone() }));
        }
        task.engine
            .store_mut()
            .put(Table::Meta, META_CALENDAR_DEAD, &encode_positions(&done))
            .map_err(|e| KafkaError::state("partition 0: writing the calendar dead-letter positions", e))?;
        task.dirty = true;
        Ok(out)
    }
}
