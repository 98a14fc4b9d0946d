//! The Kafka side: every event of a request is produced to the activity
//! topic (keyed by student, timestamped with when it happened, in Avro's
//! single-object encoding), or, when it names someone the identity view does
//! not know yet, to the waiting topic (keyed by the platform's id for the
//! student, timestamped with when it was taken), and the request is
//! answered only once every one of them is acknowledged by all in-sync
//! replicas. The producer is
//! idempotent, so librdkafka's own retries never write an event twice.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use rollcall_ingest::Encoded;
use rollcall_model::avro::AvroRecord;

use crate::GatewayError;

pub struct Producer {
    inner: ThreadedProducer<Acknowledger>,
    topic: String,
    waiting_topic: String,
    timeout: Duration,
}

/// What one request waits for: a count of its records not yet reported,
/// the first of them refused, and a wake-up when the count reaches zero.
/// It replaces a `FutureProducer`'s oneshot channel and future per record
/// (two allocations, and a wake-up of the request's task per report).
pub struct Acks {
    /// Records enqueued and not yet reported, plus one while the request
    /// is still enqueueing (so that an early report cannot end the wait).
    pending: AtomicUsize,
    /// The refused record of the lowest index, and why.
    refused: Mutex<Option<(usize, KafkaError)>>,
    done: tokio::sync::Notify,
}

impl Acks {
    fn settle_one(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.notify_one();
        }
    }
}

/// The producer's context: each record carries its request's `Acks` and
/// its index in the request.
pub(crate) struct Acknowledger;

impl ClientContext for Acknowledger {}

impl ProducerContext for Acknowledger {
    type DeliveryOpaque = Box<(Arc<Acks>, usize)>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Self::DeliveryOpaque) {
        let (acks, index) = *opaque;
        if let Err((e, _)) = result {
            let mut refused = acks.refused.lock().unwrap_or_else(|p| p.into_inner());
            if refused.as_ref().is_none_or(|(i, _)| index < *i) {
                *refused = Some((index, e.clone()));
            }
        }
        acks.settle_one();
    }
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
        let mut c = rollcall_kafka::client_config(brokers);
        c.set("enable.idempotence", "true")
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
            .create_with_context(Acknowledger)
            .map_err(|source| GatewayError::Kafka { what: format!("a producer for {brokers}"), source })?;
        Ok(Producer { inner, topic, waiting_topic, timeout })
    }

    /// Produces every event (to the activity topic, already encoded) and
    /// every waiting event (to the waiting topic, stamped with `now`, from
    /// which its wait is counted), and waits for every acknowledgement.
    pub async fn produce_all(&self, request: &Encoded, now: chrono::DateTime<chrono::Utc>) -> Result<(), NotDurable> {
        let mut held = Vec::with_capacity(request.waiting.len());
        for (i, w) in request.waiting.iter().enumerate() {
            let index = request.events.len() + i;
            held.push(w.event.to_single_object().map_err(|err| NotDurable::Encode { index, message: err.to_string() })?);
        }
        let all: Vec<(&str, &[u8], &[u8], i64)> = request
            .events
            .iter()
            .map(|e| (self.topic.as_str(), request.key(e), request.payload(e), e.occurred_at_ms))
            .chain(request.waiting.iter().zip(&held).map(|(w, payload)| {
                (self.waiting_topic.as_str(), w.event.student_id.as_bytes(), payload.as_slice(), now.timestamp_millis())
            }))
            .collect();
        // Everything is enqueued first, so that the request's events share
        // batches, then the acknowledgements are awaited together (one
        // wake-up when the last is reported).
        let acks = Arc::new(Acks { pending: AtomicUsize::new(1), refused: Mutex::new(None), done: tokio::sync::Notify::new() });
        let deadline = Instant::now() + self.timeout;
        let mut failed = None;
        let mut n = 0;
        for (index, &(topic, key, payload, ts)) in all.iter().enumerate() {
            acks.pending.fetch_add(1, Ordering::AcqRel);
            let mut record =
                BaseRecord::with_opaque_to(topic, Box::new((acks.clone(), index))).key(key).payload(payload).timestamp(ts);
            let enqueued = loop {
                match self.inner.send(record) {
                    Ok(()) => break Ok(()),
                    // librdkafka's queue is full: wait for it to drain, within the timeout.
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) if Instant::now() < deadline => {
                        record = r;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((source, _)) => break Err(source),
                }
            };
            match enqueued {
                Ok(()) => n += 1,
                Err(source) => {
                    // Not enqueued: no report will come for it.
                    acks.settle_one();
                    // Those already enqueued are still awaited: the answer is
                    // 503 either way, and the platform sends the request again.
                    failed = Some(NotDurable::Kafka { index, source });
                    break;
                }
            }
        }
        // The request's own count: from here the last report wakes it.
        acks.settle_one();
        // librdkafka times each record out after `message.timeout.ms`; this
        // bound is for the case where no delivery report comes at all, so
        // that a request is answered 503 rather than never.
        let bound = self.timeout + Duration::from_secs(5);
        let reported =
            acks.pending.load(Ordering::Acquire) == 0 || tokio::time::timeout(bound, acks.done.notified()).await.is_ok();
        let first = if reported {
            let refused = acks.refused.lock().unwrap_or_else(|p| p.into_inner()).take();
            refused.map(|(index, source)| NotDurable::Kafka { index, source })
        } else {
            Some(NotDurable::NoReport { count: n, waited: bound })
        };
        // A refused ack names an earlier event than the refused enqueue.
        first.or(failed).map_or(Ok(()), Err)
    }
}
