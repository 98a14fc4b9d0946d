//! The gateway's view of the identities: seeded from the optional CSV file,
//! then kept from `sis.identities.v1`, which every gateway reads whole from
//! its beginning (each needs every mapping) and follows for as long as it
//! runs. Requests read the view; the resolver is told when it grows.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use rollcall_ingest::IdentityView;
use rollcall_kafka::QuietContext;
use rollcall_model::avro::AvroRecord;
use rollcall_model::IdentityRecord;

use crate::metrics::GatewayMetrics;

pub struct Identities {
    view: RwLock<IdentityView>,
    /// Moves whenever the view changes, so that the resolver retries the
    /// events waiting for a mapping only when there is something new.
    generation: AtomicU64,
    caught_up: AtomicBool,
}

impl Identities {
    pub fn new(seed: IdentityView) -> Arc<Identities> {
        Arc::new(Identities { view: RwLock::new(seed), generation: AtomicU64::new(0), caught_up: AtomicBool::new(false) })
    }

    pub fn read(&self) -> RwLockReadGuard<'_, IdentityView> {
        // A writer that panicked left a whole map behind: each insert and
        // remove is one call, so the view is still consistent.
        self.view.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Whether the topic has been read to the end it had when the gateway
    /// started: until then an event may look unknown only because its
    /// mapping has not been read yet.
    pub fn is_caught_up(&self) -> bool {
        self.caught_up.load(Ordering::SeqCst)
    }

    /// Applies one record of the topic (`None`: a tombstone). Returns
    /// whether it was usable.
    pub fn apply(&self, key: Option<&[u8]>, value: Option<&[u8]>) -> bool {
        let mut view = self.view.write().unwrap_or_else(|p| p.into_inner());
        let usable = match value {
            Some(v) => match IdentityRecord::from_single_object(v) {
                Ok(r) => {
                    view.apply(&r);
                    true
                }
                Err(_) => false,
            },
            None => match key.and_then(|k| std::str::from_utf8(k).ok()).and_then(IdentityRecord::parse_key) {
                Some((source, kind, external_id)) => {
                    view.remove(&source, kind.into(), &external_id);
                    true
                }
                None => false,
            },
        };
        drop(view);
        if usable {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        usable
    }
}

/// Follows `topic` into `ids` until `stop` is set. A topic that does not
/// exist yet is looked for again every 10 s (a district that maps nobody
/// through Kafka uses only the file); the view is caught up meanwhile.
pub fn follow(brokers: String, topic: String, ids: Arc<Identities>, metrics: Arc<GatewayMetrics>, stop: Arc<AtomicBool>) {
    let mut warned = false;
    while !stop.load(Ordering::SeqCst) {
        match follow_once(&brokers, &topic, &ids, &metrics, &stop) {
            Ok(()) => return,
            Err(e) => {
                if !warned {
                    tracing::warn!(topic = %topic, error = %e, "identities topic not readable yet; using the identities read so far and trying again every 10 s");
                    warned = true;
                }
                ids.caught_up.store(true, Ordering::SeqCst);
                for _ in 0..100 {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
}

fn follow_once(brokers: &str, topic: &str, ids: &Identities, metrics: &GatewayMetrics, stop: &AtomicBool) -> Result<(), String> {
    let consumer: BaseConsumer<QuietContext> =
        rollcall_kafka::reader(brokers, &format!("rollcall-gateway-identities-{}", std::process::id()))
            .map_err(|e| format!("{e:#}"))?;
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).map_err(|e| e.to_string())?;
    let mut tpl = TopicPartitionList::new();
    for t in md.topics() {
        if let Some(e) = t.error() {
            return Err(format!("{e:?}"));
        }
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning).map_err(|e| e.to_string())?;
        }
    }
    if tpl.count() == 0 {
        return Err("the topic has no partitions".into());
    }
    let partitions = tpl.count();
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    let mut ended = std::collections::HashSet::new();
    while !stop.load(Ordering::SeqCst) {
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(e)) if rollcall_kafka::is_eof(&e) => {
                if let rdkafka::error::KafkaError::PartitionEOF(p) = e {
                    ended.insert(p);
                }
                if ended.len() >= partitions && !ids.is_caught_up() {
                    tracing::info!(topic = %topic, identities = ids.read().len(), "identities read to the end");
                    ids.caught_up.store(true, Ordering::SeqCst);
                }
            }
            // librdkafka reconnects by itself; the context has logged it.
            Some(Err(_)) => std::thread::sleep(Duration::from_millis(200)),
            // The record is not logged: its key is a person's id.
            Some(Ok(m)) if !ids.apply(m.key(), m.payload()) => metrics.identities_unusable.inc(),
            Some(Ok(_)) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rollcall_ingest::IdType;
    use rollcall_model::IdentityType;

    use super::*;

    #[test]
    fn records_and_tombstones_change_the_view_and_its_generation() {
        let ids = Identities::new(IdentityView::new());
        let r = IdentityRecord {
            source: "caliper".into(),
            kind: IdentityType::Student,
            external_id: "https://lms/u/1".into(),
            id: "S1".into(),
            school_id: Some("sch".into()),
        };
        let value = r.to_single_object().unwrap();
        assert!(ids.apply(Some(r.key().as_bytes()), Some(&value)));
        assert_eq!(ids.read().get("caliper", IdType::Student, "https://lms/u/1").map(|i| i.id.as_str()), Some("S1"));
        assert_eq!(ids.generation(), 1);
        assert!(!ids.apply(Some(b"k"), Some(b"not avro")));
        assert!(!ids.apply(Some(b"no-type"), None));
        assert_eq!(ids.generation(), 1);
        assert!(ids.apply(Some(r.key().as_bytes()), None));
        assert!(ids.read().get("caliper", IdType::Student, "https://lms/u/1").is_none());
        assert_eq!(ids.generation(), 2);
    }
}
