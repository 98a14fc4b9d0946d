//! The Kafka side: every event of a request is produced to the activity
//! topic (keyed by student, timestamped with when it happened, in Avro's
//! single-object encoding), and the request is answered only once every one
//! of them is acknowledged by all in-sync replicas. The producer is
//! idempotent, so librdkafka's own retries never write an event twice.

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rollcall_model::avro::AvroRecord;
use rollcall_model::ActivityEvent;

use crate::GatewayError;

pub struct Producer {
    inner: FutureProducer,
    topic: String,
    timeout: Duration,
}

/// Why events were not acknowledged (answered 503: the platform retries).
#[derive(Debug, thiserror::Error)]
pub enum NotDurable {
    #[error("event {index}: encoding it: {message}")]
    Encode { index: usize, message: String },
    #[error("event {index} was not acknowledged by Kafka: {source}")]
    Kafka {
        index: usize,
        #[source]
        source: rdkafka::error::KafkaError,
    },
}

impl Producer {
    pub fn new(brokers: &str, topic: String, timeout: Duration) -> Result<Producer, GatewayError> {
        let inner = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // Keys land where the Java clients of the district put them.
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "2")
            .set("compression.type", "lz4")
            .set("message.timeout.ms", timeout.as_millis().to_string())
            .create()
            .map_err(|source| GatewayError::Kafka { what: format!("a producer for {brokers}"), source })?;
        Ok(Producer { inner, topic, timeout })
    }

    /// Produces every event and waits for every acknowledgement.
    pub async fn produce_all(&self, events: &[ActivityEvent]) -> Result<(), NotDurable> {
        let mut payloads = Vec::with_capacity(events.len());
        for (index, e) in events.iter().enumerate() {
            payloads.push(e.to_single_object().map_err(|err| NotDurable::Encode { index, message: err.to_string() })?);
        }
        // `FutureProducer::send` is an async fn: it enqueues nothing until
        // awaited, so awaiting its futures one by one sent a request's events
        // one at a time, each after the previous one's ack (a linger and a
        // round trip per event: 0.35 s for 100). Everything is enqueued
        // first, so that the request's events share batches, then awaited.
        let deadline = Instant::now() + self.timeout;
        let mut pending = Vec::with_capacity(events.len());
        let mut failed = None;
        for (index, (e, v)) in events.iter().zip(&payloads).enumerate() {
            let mut record =
                FutureRecord::to(&self.topic).key(e.student_id.as_bytes()).payload(v).timestamp(e.occurred_at.timestamp_millis());
            let delivery = loop {
                match self.inner.send_result(record) {
                    Ok(d) => break Ok(d),
                    // librdkafka's queue is full: wait for it to drain, within the timeout.
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) if Instant::now() < deadline => {
                        record = r;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((source, _)) => break Err(source),
                }
            };
            match delivery {
                Ok(d) => pending.push((index, d)),
                Err(source) => {
                    // Those already enqueued are still awaited: the answer is
                    // 503 either way, and the platform sends the request again.
                    failed = Some(NotDurable::Kafka { index, source });
                    break;
                }
            }
        }
        let mut first = None;
        for (index, d) in pending {
            let source = match d.await {
                Ok(Ok(_)) => continue,
                Ok(Err((source, _))) => source,
                Err(_) => KafkaError::Canceled,
            };
            first.get_or_insert(NotDurable::Kafka { index, source });
        }
        // A refused ack names an earlier event than the refused enqueue.
        first.or(failed).map_or(Ok(()), Err)
    }
}
