//! The Kafka side: every event of a request is produced to the activity
//! topic (keyed by student, timestamped with when it happened, in Avro's
//! single-object encoding), or, when it names someone the identity view does
//! not know yet, to the waiting topic (keyed by the platform's id for the
//! student, timestamped with when it was taken), and the request is
//! answered only once every one of them is acknowledged by all in-sync
//! replicas. The producer is
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
    waiting_topic: String,
    timeout: Duration,
}

/// Why events were not acknowledged (answered 503: the platform retries).
#[derive(Debug, thiserror::Error)]
pub enum NotDurable {
    #[error("event {index}: encoding it: {message}")]
    Encode { index: usize, message: String },
    #[error("no delivery report for {count} event(s) within {waited:?}")]
    NoReport { count: usize, waited: Duration },
    #[error("event {index} was not acknowledged by Kafka: {source}")]
    Kafka {
        index: usize,
        #[source]
        source: rdkafka::error::KafkaError,
    },
}

impl Producer {
    /// The producer's settings, which `rollcall bench gateway`'s bare
    /// producer shares so that the two differ by the gateway alone.
    pub fn settings(brokers: &str, timeout: Duration) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // Keys land where the Java clients of the district put them.
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "2")
            .set("compression.type", "lz4")
            .set("message.timeout.ms", timeout.as_millis().to_string());
        c
    }

    pub fn new(brokers: &str, topic: String, waiting_topic: String, timeout: Duration) -> Result<Producer, GatewayError> {
        let inner = Producer::settings(brokers, timeout)
            .create()
            .map_err(|source| GatewayError::Kafka { what: format!("a producer for {brokers}"), source })?;
        Ok(Producer { inner, topic, waiting_topic, timeout })
    }

    /// Produces every event (to the activity topic) and every waiting event
    /// (to the waiting topic, stamped with `now`, from which its wait is
    /// counted), and waits for every acknowledgement.
    pub async fn produce_all(
        &self,
        events: &[ActivityEvent],
        waiting: &[&ActivityEvent],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), NotDurable> {
        let all: Vec<(&str, &ActivityEvent, i64)> = events
            .iter()
            .map(|e| (self.topic.as_str(), e, e.occurred_at.timestamp_millis()))
            .chain(waiting.iter().map(|e| (self.waiting_topic.as_str(), *e, now.timestamp_millis())))
            .collect();
        let mut payloads = Vec::with_capacity(all.len());
        for (index, (_, e, _)) in all.iter().enumerate() {
            payloads.push(e.to_single_object().map_err(|err| NotDurable::Encode { index, message: err.to_string() })?);
        }
        // `FutureProducer::send` is an async fn: it enqueues nothing until
        // awaited, so awaiting its futures one by one sent a request's events
        // one at a time, each after the previous one's ack (a linger and a
        // round trip per event: 0.35 s for 100). Everything is enqueued
        // first, so that the request's events share batches, then awaited.
        let deadline = Instant::now() + self.timeout;
        let mut pending = Vec::with_capacity(all.len());
        let mut failed = None;
        for (index, ((topic, e, ts), v)) in all.iter().zip(&payloads).enumerate() {
            let mut record = FutureRecord::to(topic).key(e.student_id.as_bytes()).payload(v).timestamp(*ts);
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
        let n = pending.len();
        let settle = async move {
            let mut first = None;
            for (index, d) in pending {
                let source = match d.await {
                    Ok(Ok(_)) => continue,
                    Ok(Err((source, _))) => source,
                    Err(_) => KafkaError::Canceled,
                };
                first.get_or_insert(NotDurable::Kafka { index, source });
            }
            first
        };
        // librdkafka times each record out after `message.timeout.ms`; this
        // bound is for the case where no delivery report comes at all, so
        // that a request is answered 503 rather than never.
        let bound = self.timeout + Duration::from_secs(5);
        let first = tokio::time::timeout(bound, settle).await.unwrap_or(Some(NotDurable::NoReport { count: n, waited: bound }));
        // A refused ack names an earlier event than the refused enqueue.
        first.or(failed).map_or(Ok(()), Err)
    }
}
