//! A producer that knows whether what it sent was taken: librdkafka reports
//! each delivery to a callback, and a plain `flush` says only that the queue
//! is empty, not that the broker acknowledged it. Used where an import or a
//! release must not claim to have written what the broker never took.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::error::KafkaError as RdError;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use crate::KafkaError;

#[derive(Default)]
struct Deliveries {
    /// How many deliveries failed since the last flush, and the first error.
    failed: Mutex<(u64, Option<RdError>)>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            if let Ok(mut f) = self.failed.lock() {
                f.0 += 1;
                f.1.get_or_insert_with(|| e.clone());
            }
        }
    }
}

/// An idempotent producer (acks=all) partitioning keys as the Java client
/// does, whose [`flush`](CheckedProducer::flush) fails if any record sent
/// since the previous flush was not acknowledged.
pub struct CheckedProducer {
    inner: BaseProducer<Deliveries>,
}

impl CheckedProducer {
    pub fn new(brokers: &str) -> Result<CheckedProducer, KafkaError> {
        let inner = crate::client_config(brokers)
            .set("partitioner", "murmur2_random")
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "20")
            .create_with_context(Deliveries::default())
            .map_err(|e| KafkaError::kafka(format!("producer for {brokers}"), e))?;
        Ok(CheckedProducer { inner })
    }

    /// Queues one record (`None`: a tombstone), waiting while the local
    /// queue is full.
    pub fn send(&self, topic: &str, key: &str, value: Option<&[u8]>, at: DateTime<Utc>) -> Result<(), KafkaError> {
        let mut rec = BaseRecord::<str, [u8]>::to(topic).key(key).timestamp(at.timestamp_millis());
        if let Some(v) = value {
            rec = rec.payload(v);
        }
        crate::replay::enqueue(&self.inner, rec)
    }

    /// Waits for every queued record; fails if any was not acknowledged.
    /// `what` names them in the error.
    pub fn flush(&self, what: &str, timeout: Duration) -> Result<(), KafkaError> {
        self.inner.flush(timeout).map_err(|e| KafkaError::kafka(format!("flushing {what}"), e))?;
        let failed = self.inner.context().failed.lock().map(|mut f| std::mem::take(&mut *f)).unwrap_or_default();
        match failed {
            (count, Some(first)) => Err(KafkaError::kafka(format!("{count} of {what} were not acknowledged"), first)),
            _ => Ok(()),
        }
    }
}
