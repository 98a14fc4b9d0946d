//! The identities topic (`sis.identities.v1`): written by `rollcall
//! identities import` and `rollcall roster import`, read whole by every
//! gateway. Each record is keyed `source|TYPE|external_id`, so compaction
//! keeps the latest mapping of a key and a tombstone forgets it.

use std::sync::Mutex;
use std::time::Duration;

use chrono::Utc;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use rollcall_model::avro::AvroRecord;
use rollcall_model::IdentityRecord;

use crate::replay::send;
use crate::KafkaError;

/// Remembers the first delivery that failed: an import reports it rather
/// than saying it wrote what the broker never took.
#[derive(Default)]
struct Deliveries {
    failed: Mutex<(u64, Option<rdkafka::error::KafkaError>)>,
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

/// Produces `(key, value)` records (a `None` value is a tombstone) with an
/// idempotent producer and waits until every one is acknowledged; calls
/// `progress` with the count sent so far every 1,000 records and at the end.
/// Fails if any was not.
pub fn produce_all(
    brokers: &str,
    topic: &str,
    records: impl IntoIterator<Item = Result<(String, Option<Vec<u8>>), KafkaError>>,
    mut progress: impl FnMut(u64),
) -> Result<u64, KafkaError> {
    let p: BaseProducer<Deliveries> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("partitioner", "murmur2_random")
        .set("enable.idempotence", "true")
        .set("linger.ms", "20")
        .create_with_context(Deliveries::default())
        .map_err(|e| KafkaError::kafka("producer", e))?;
    let now = Utc::now();
    let mut n = 0u64;
    for r in records {
        let (key, value) = r?;
        match value {
            Some(v) => send(&p, topic, &key, &v, now)?,
            None => tombstone(&p, topic, &key)?,
        }
        n += 1;
        if n.is_multiple_of(1000) {
            progress(n);
        }
    }
    p.flush(Duration::from_secs(60)).map_err(|e| KafkaError::kafka(format!("flushing to {topic}"), e))?;
    let failed = p.context().failed.lock().map(|mut f| std::mem::take(&mut *f)).unwrap_or_default();
    if let (count, Some(first)) = failed {
        return Err(KafkaError::kafka(format!("{count} of {n} record(s) were not acknowledged by {topic}"), first));
    }
    progress(n);
    Ok(n)
}

fn tombstone(p: &BaseProducer<Deliveries>, topic: &str, key: &str) -> Result<(), KafkaError> {
    let mut rec = rdkafka::producer::BaseRecord::<str, [u8]>::to(topic).key(key);
    loop {
        match p.send(rec) {
            Ok(()) => return Ok(()),
            Err((rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), r)) => {
                p.poll(Duration::from_millis(50));
                rec = r;
            }
            Err((e, _)) => return Err(KafkaError::kafka(format!("produce to {topic}"), e)),
        }
    }
}

/// Publishes identity records (see [`produce_all`]).
pub fn publish(brokers: &str, topic: &str, records: &[IdentityRecord], progress: impl FnMut(u64)) -> Result<u64, KafkaError> {
    let encoded = records.iter().map(|r| {
        let value = r.to_single_object().map_err(|e| KafkaError::record(format!("encoding the identity {}", r.key()), e))?;
        Ok((r.key(), Some(value)))
    });
    produce_all(brokers, topic, encoded, progress)
}
