//! The Kafka side: every event of a request is produced to the activity
//! topic (keyed by student, timestamped with when it happened, in Avro's
//! single-object encoding), and the request is answered only once every one
//! of them is acknowledged by all in-sync replicas. The producer is
//! idempotent, so librdkafka's own retries never write an event twice.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
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
        let mut pending = Vec::with_capacity(events.len());
        for (e, v) in events.iter().zip(&payloads) {
            let record =
                FutureRecord::to(&self.topic).key(e.student_id.as_bytes()).payload(v).timestamp(e.occurred_at.timestamp_millis());
            pending.push(self.inner.send(record, self.timeout));
        }
        let mut failed = None;
        for (index, p) in pending.into_iter().enumerate() {
            if let Err((source, _)) = p.await {
                failed.get_or_insert(NotDurable::Kafka { index, source });
            }
        }
        failed.map_or(Ok(()), Err)
    }
}
