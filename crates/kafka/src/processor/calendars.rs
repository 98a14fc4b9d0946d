//! The calendar feed: every instance reads every calendar partition (the
//! calendars are not keyed by student), before the first event and then
//! between batches, and hands each calendar to every task.

use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tracing::warn;

use super::{rd, Processor};
use crate::wire::{self, Input};
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

    /// Before a batch is applied, the calendar topic is read up to the end
    /// it has now, as a global table is: a district's loader produces its
    /// calendars before the events of their schools, and the separate
    /// calendar consumer must not fall behind them. At most every 200 ms
    /// (a watermark request); bounded to 5 s, since an event whose calendar
    /// is still missing waits for it in the engine anyway.
    pub(super) fn catch_up_calendars(&mut self) -> Result<(), KafkaError> {
        if self.calendar_check.is_some_and(|t| t.elapsed() < Duration::from_millis(200)) {
            return Ok(());
        }
        self.calendar_check = Some(Instant::now());
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
}
