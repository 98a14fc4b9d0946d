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
