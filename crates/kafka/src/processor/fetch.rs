//! Fetching: polling input records into the tasks' buffers, and knowing
//! which inputs are at their end from positions and watermarks, since the
//! replay horizon and the idle exit depend on it.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::Utc;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use tracing::warn;

use super::{rd, Processor, Record};
use crate::KafkaError;

impl Processor {
    /// Polls up to a batch of input records into the tasks' buffers.
    pub(super) fn fetch_batch(&mut self) -> Result<usize, KafkaError> {
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
                    let forget = m.payload().is_none()
                        && m.topic() == self.topics.roster
                        && m.headers().is_some_and(|h| h.iter().any(|h| h.key == crate::wire::FORGET_HEADER));
                    let rec = Record {
                        topic: m.topic().to_string(),
                        partition: m.partition(),
                        offset: m.offset(),
                        timestamp: m.timestamp().to_millis(),
                        key: m.key().map(<[u8]>::to_vec),
                        value: m.payload().map(<[u8]>::to_vec),
                        received_ms: Utc::now().timestamp_millis(),
                        forget,
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
    pub(super) fn refresh_ends(&mut self) -> Result<(), KafkaError> {
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
}

/// The high watermark librdkafka last saw for a partition, without asking
/// the broker (an end-of-partition event names the partition, not the topic,
/// and three input topics share partition numbers).
pub(super) fn cached_high_watermark<C: ConsumerContext>(consumer: &BaseConsumer<C>, topic: &str, partition: i32) -> Option<i64> {
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
