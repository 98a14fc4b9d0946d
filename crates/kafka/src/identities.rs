//! The identities topic (`sis.identities.v1`): written by `rollcall
//! identities import` and `rollcall roster import`, read whole by every
//! gateway. Each record is keyed `source|TYPE|external_id`, so compaction
//! keeps the latest mapping of a key and a tombstone forgets it.

use std::time::Duration;

use chrono::Utc;
use rollcall_model::avro::AvroRecord;
use rollcall_model::IdentityRecord;

use crate::checked::CheckedProducer;
use crate::KafkaError;

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
    let p = CheckedProducer::new(brokers)?;
    let now = Utc::now();
    let mut n = 0u64;
    for r in records {
        let (key, value) = r?;
        p.send(topic, &key, value.as_deref(), now)?;
        n += 1;
        if n.is_multiple_of(1000) {
            progress(n);
        }
    }
    p.flush(&format!("{n} record(s) to {topic}"), Duration::from_secs(60))?;
    progress(n);
    Ok(n)
}

/// Publishes identity records (see [`produce_all`]).
pub fn publish(brokers: &str, topic: &str, records: &[IdentityRecord], progress: impl FnMut(u64)) -> Result<u64, KafkaError> {
    let encoded = records.iter().map(|r| {
        let value = r.to_single_object().map_err(|e| KafkaError::record(format!("encoding the identity {}", r.key()), e))?;
        Ok((r.key(), Some(value)))
    });
    produce_all(brokers, topic, encoded, progress)
}
