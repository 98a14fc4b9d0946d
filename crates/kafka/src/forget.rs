//! `rollcall forget`: erasing one student from the pipeline, as a family
//! may ask under student-privacy law (FERPA's amendment right, state
//! privacy laws, the GDPR where it applies).
//!
//! The state belongs to the processor that owns the student's partition,
//! so the request travels as a record: a tombstone on the roster topic
//! keyed by the student, with the [`FORGET_HEADER`] header. The processor
//! erases the student's state in the transaction that consumes it (its
//! changelog carries the deletes) and tombstones the determination keys it
//! still held; compaction then removes the roster record too. What the
//! state no longer holds, determinations past the correction horizon and the
//! platforms' identities of the student, is found on the compacted topics
//! themselves once the processor has consumed the request, and
//! tombstoned here. Topics that are not compacted (activity, absence
//! reports, outreach, dead letters) age out by their retention.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use rollcall_model::avro::AvroRecord;
use rollcall_model::IdentityRecord;

use crate::wire::{Topics, FORGET_HEADER};
use crate::KafkaError;

/// What `forget` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForgetReport {
    /// Where the request landed on the roster topic.
    pub partition: i32,
    pub offset: i64,
    /// Determination keys of the student tombstoned from the topic.
    pub determinations: usize,
    /// Identity mappings to the student tombstoned.
    pub identities: usize,
}

fn rd(what: String) -> impl FnOnce(RdError) -> KafkaError {
    move |e| KafkaError::kafka(what, e)
}

/// Erases `student`: the request to the processors of `group`, a wait (at
/// most `wait`) until the group has consumed it, then the tombstones of
/// what the compacted topics still hold of the student.
pub fn forget(
    brokers: &str,
    topics: &Topics,
    group: &str,
    student: &str,
    wait: Duration,
    mut progress: impl FnMut(&str),
) -> Result<ForgetReport, KafkaError> {
    if student.is_empty() {
        return Err(KafkaError::Setup("give the student's SIS id".into()));
    }
    let (partition, offset) = request(brokers, &topics.roster, student)?;
    progress(&format!("request on {} [{partition}] @{offset}; waiting for group `{group}` to consume it", topics.roster));
    wait_consumed(brokers, group, &topics.roster, partition, offset, wait)?;
    progress("the processor has erased the student's state; tombstoning what the compacted topics hold");
    let producer = crate::replay::producer(brokers)?;
    let prefix = format!("{student}|");
    let determinations = latest_keys(brokers, &topics.determinations, |key, _| key.starts_with(&prefix))?;
    let identities = latest_keys(brokers, &topics.identities, |_, value| {
        IdentityRecord::from_single_object(value).is_ok_and(|r| r.id == student)
    })?;
    for (topic, keys) in [(&topics.determinations, &determinations), (&topics.identities, &identities)] {
        for key in keys {
            crate::replay::enqueue(&producer, BaseRecord::<str, [u8], ()>::to(topic).key(key.as_str()))?;
        }
    }
    producer.flush(Duration::from_secs(60)).map_err(rd("delivering the tombstones".into()))?;
    if producer.in_flight_count() > 0 {
        return Err(KafkaError::kafka_step("not every tombstone was acknowledged: run `rollcall forget` again"));
    }
    Ok(ForgetReport { partition, offset, determinations: determinations.len(), identities: identities.len() })
}

/// Produces the request and returns where it landed.
fn request(brokers: &str, roster: &str, student: &str) -> Result<(i32, i64), KafkaError> {
    let producer: rdkafka::producer::FutureProducer =
        crate::replay::producer_config(brokers).create().map_err(rd(format!("a producer for {brokers}")))?;
    let headers = OwnedHeaders::new().insert(Header { key: FORGET_HEADER, value: Some("1") });
    let record = rdkafka::producer::FutureRecord::<str, [u8]>::to(roster).key(student).headers(headers);
    let delivered = crate::block_on(producer.send(record, Duration::from_secs(30)));
    match delivered {
        Ok(at) => Ok(at),
        Err((e, _)) => Err(KafkaError::kafka(format!("producing the request to {roster}"), e)),
    }
}

/// Waits until `group` has committed past `offset` of `topic [partition]`.
fn wait_consumed(brokers: &str, group: &str, topic: &str, partition: i32, offset: i64, wait: Duration) -> Result<(), KafkaError> {
    let consumer: BaseConsumer<crate::QuietContext> = crate::reader(brokers, group)?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    let started = Instant::now();
    loop {
        let committed = consumer
            .committed_offsets(tpl.clone(), Duration::from_secs(10))
            .map_err(rd(format!("group {group}'s position on {topic} [{partition}]")))?;
        let at = committed.find_partition(topic, partition).map(|e| e.offset());
        if let Some(Offset::Offset(o)) = at {
            if o > offset {
                return Ok(());
            }
        }
        if started.elapsed() > wait {
            return Err(KafkaError::Setup(format!(
                "group `{group}` has not consumed the request ({topic} [{partition}] @{offset}) within {} s; \
                 it stays on the topic and is applied when a processor of the group runs: run `rollcall forget` \
                 again then to tombstone the topics (is `--group` the processors' group?)",
                wait.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The keys of `topic` whose latest record has a value that `keep` takes.
fn latest_keys(brokers: &str, topic: &str, keep: impl Fn(&str, &[u8]) -> bool) -> Result<Vec<String>, KafkaError> {
    let mut latest: BTreeMap<String, bool> = BTreeMap::new();
    let partitions = crate::replay::read_records(brokers, topic, |key, value, _| {
        if let Some(key) = key.and_then(|k| std::str::from_utf8(k).ok()) {
            latest.insert(key.to_string(), value.is_some_and(|v| keep(key, v)));
        }
        Ok(())
    })?;
    if partitions == 0 {
        return Err(KafkaError::Setup(format!("topic {topic} does not exist on {brokers}")));
    }
    Ok(latest.into_iter().filter(|(_, kept)| *kept).map(|(k, _)| k).collect())
}
