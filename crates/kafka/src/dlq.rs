//! `rollcall dlq replay`: dead letters of chosen kinds put back on the input
//! topics they came from, so that an operator can recover what was refused
//! once its cause is mended (a calendar produced late, a roster sync that
//! failed for a night).
//!
//! The replay reads the dead-letter topic as a consumer group of its own
//! (one per selection of kinds, unless named) and commits its position
//! only after everything it produced is acknowledged: a second run does not
//! put the same letters back twice, and a crashed run is run again. Each
//! record goes back with its original key and bytes, and with the time it
//! carries (an activity event's `occurred_at`, a report's `reported_at`;
//! otherwise the processing clock when it was refused), so that a processor
//! on the replay clock orders it where it belongs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::Message;
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};
use rollcall_model::avro::AvroRecord;
use rollcall_model::{DeadLetter, DeadLetterKind};

use crate::wire::{decode_input, Input, Topics};
use crate::KafkaError;

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplayRequest {
    pub kinds: Vec<DeadLetterKind>,
    /// The consumer group that remembers how far replays of these kinds got.
    pub group: String,
    /// List what would be replayed; produce and commit nothing.
    pub dry_run: bool,
}

impl ReplayRequest {
    /// The default group of a selection: one per set of kinds, so that a
    /// replay of one kind does not pass over the letters of another.
    pub fn default_group(kinds: &[DeadLetterKind]) -> String {
        let mut names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        format!("rollcall-dlq-replay-{}", names.join("+").to_ascii_lowercase())
    }
}

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    /// Dead letters read past the group's position.
    pub read: u64,
    /// Records put back, per topic.
    pub replayed: BTreeMap<String, u64>,
    /// Letters of other kinds, passed over.
    pub other_kinds: u64,
    /// Letters of the chosen kinds from a topic that is not one of the
    /// inputs of this prefix, or not decodable as a dead letter at all.
    pub not_replayable: u64,
}

/// Where one dead letter goes, if anywhere.
#[derive(Debug, Clone, PartialEq)]
pub enum Choice {
    Replay { topic: String, key: String, value: Vec<u8>, at: DateTime<Utc> },
    OtherKind,
    NotReplayable,
}

/// Decides what to do with one dead letter: pure, so that it is tested
/// without a broker. A letter from the gateway's waiting topic goes back
/// there stamped `now`: the gateway counts its wait from that stamp, so the
/// event gets a whole new wait rather than being refused again at once.
pub fn choose(d: &DeadLetter, kinds: &[DeadLetterKind], topics: &Topics, now: DateTime<Utc>) -> Choice {
    if !kinds.iter().any(|k| k.as_str() == d.error_kind) {
        return Choice::OtherKind;
    }
    let key = d.key.clone().unwrap_or_default();
    if d.topic == topics.waiting {
        return Choice::Replay { topic: d.topic.clone(), key, value: d.value.clone(), at: now };
    }
    let Some(input) = topics.kind(&d.topic) else { return Choice::NotReplayable };
    let at = match decode_input(input, Some(key.as_bytes()).filter(|k| !k.is_empty()), Some(&d.value)) {
        Ok(Input::Activity(e)) => e.occurred_at,
        Ok(Input::Report(r)) => r.reported_at,
        _ => d.failed_at,
    };
    Choice::Replay { topic: d.topic.clone(), key, value: d.value.clone(), at }
}

/// Replays the dead letters of `req.kinds` past the group's position.
pub fn replay(
    brokers: &str,
    topics: &Topics,
    req: &ReplayRequest,
    mut progress: impl FnMut(&ReplayReport),
) -> Result<ReplayReport, KafkaError> {
    let rd = |what: &str, e: RdError| KafkaError::kafka(format!("{what} ({})", topics.dlq), e);
    let consumer: BaseConsumer<crate::QuietContext> = crate::reader(brokers, &req.group)?;
    let md = consumer.fetch_metadata(Some(&topics.dlq), Duration::from_secs(30)).map_err(|e| rd("metadata", e))?;
    let mut tpl = TopicPartitionList::new();
    for t in md.topics() {
        if t.partitions().is_empty() {
            return Err(KafkaError::Setup(format!("topic {} does not exist on {brokers}", topics.dlq)));
        }
        for p in t.partitions() {
            tpl.add_partition(&topics.dlq, p.id());
        }
    }
    // Where the group got to, or the beginning.
    let committed = consumer.committed_offsets(tpl, Duration::from_secs(30)).map_err(|e| rd("committed offsets", e))?;
    let mut start = TopicPartitionList::new();
    for e in committed.elements() {
        let at = match e.offset() {
            Offset::Offset(o) => Offset::Offset(o),
            _ => Offset::Beginning,
        };
        start.add_partition_offset(&topics.dlq, e.partition(), at).map_err(|e| rd("assign", e))?;
    }
    let partitions = start.count();
    consumer.assign(&start).map_err(|e| rd("assign", e))?;
    let producer = crate::replay::producer(brokers)?;
    let mut report = ReplayReport::default();
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let mut ended = std::collections::HashSet::new();
    let mut last_progress = Instant::now();
    while ended.len() < partitions {
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(RdError::PartitionEOF(p))) => {
                ended.insert(p);
            }
            Some(Err(e)) => return Err(rd("reading", e)),
            Some(Ok(m)) => {
                ended.remove(&m.partition());
                next.insert(m.partition(), m.offset() + 1);
                report.read += 1;
                let letter = m.payload().map(DeadLetter::from_single_object);
                let choice = match letter {
                    Some(Ok(d)) => choose(&d, &req.kinds, topics, Utc::now()),
                    _ => Choice::NotReplayable,
                };
                match choice {
                    Choice::OtherKind => report.other_kinds += 1,
                    Choice::NotReplayable => report.not_replayable += 1,
                    Choice::Replay { topic, key, value, at } => {
                        if !req.dry_run {
                            crate::replay::send(&producer, &topic, &key, &value, at)?;
                        }
                        *report.replayed.entry(topic).or_default() += 1;
                    }
                }
                if last_progress.elapsed() > Duration::from_millis(500) {
                    progress(&report);
                    last_progress = Instant::now();
                }
            }
        }
    }
    if req.dry_run {
        return Ok(report);
    }
    producer.flush(Duration::from_secs(60)).map_err(|e| KafkaError::kafka("delivering the replayed records", e))?;
    if producer.in_flight_count() > 0 {
        return Err(KafkaError::kafka_step("the replayed records were not all acknowledged; nothing was committed, run again"));
    }
    // Only now is the position moved on: what was produced is acknowledged.
    let mut done = TopicPartitionList::new();
    for (p, o) in &next {
        done.add_partition_offset(&topics.dlq, *p, Offset::Offset(*o)).map_err(|e| rd("offsets", e))?;
    }
    if done.count() > 0 {
        consumer.commit(&done, CommitMode::Sync).map_err(|e| rd("committing the replay's position", e))?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn letter(topic: &str, kind: DeadLetterKind, value: Vec<u8>) -> DeadLetter {
        DeadLetter {
            topic: topic.into(),
            partition: Some(0),
            offset: Some(3),
            key: Some("s1".into()),
            value,
            error_kind: kind.as_str().into(),
            message: "m".into(),
            failed_at: Utc.with_ymd_and_hms(2020, 10, 9, 0, 0, 0).unwrap(),
        }
    }

    #[test]
    fn only_the_chosen_kinds_of_this_prefix_go_back_with_their_own_time() {
        use DeadLetterKind::*;
        let topics = Topics::with_prefix("p.");
        let now = Utc.with_ymd_and_hms(2020, 11, 2, 8, 0, 0).unwrap();
        let event = crate::wire::tests::event();
        let bytes = event.to_single_object().unwrap();
        let table: Vec<(DeadLetter, Choice)> = vec![
            (
                letter("p.lms.activity.v1", UnknownSchool, bytes.clone()),
                Choice::Replay {
                    topic: "p.lms.activity.v1".into(),
                    key: "s1".into(),
                    value: bytes.clone(),
                    at: event.occurred_at,
                },
            ),
            (letter("p.lms.activity.v1", NotAvro, bytes.clone()), Choice::OtherKind),
            (letter("q.lms.activity.v1", UnknownSchool, bytes.clone()), Choice::NotReplayable),
            (letter("p.attendance.determinations.v1", UnknownSchool, bytes.clone()), Choice::NotReplayable),
            // Bytes that do not decode go back as they are, at the time they were refused.
            (
                letter("p.sis.roster.v1", UnknownSchool, b"junk".to_vec()),
                Choice::Replay {
                    topic: "p.sis.roster.v1".into(),
                    key: "s1".into(),
                    value: b"junk".to_vec(),
                    at: Utc.with_ymd_and_hms(2020, 10, 9, 0, 0, 0).unwrap(),
                },
            ),
            // The gateway's waiting events go back to wait again from now.
            (
                letter("p.ingest.waiting.v1", UnknownIdentity, bytes.clone()),
                Choice::Replay { topic: "p.ingest.waiting.v1".into(), key: "s1".into(), value: bytes.clone(), at: now },
            ),
            (letter("q.ingest.waiting.v1", UnknownIdentity, bytes.clone()), Choice::NotReplayable),
        ];
        for (d, want) in table {
            let kinds = [UnknownSchool, UnknownStudent, UnknownIdentity];
            assert_eq!(choose(&d, &kinds, &topics, now), want, "{} {}", d.topic, d.error_kind);
        }
    }

    #[test]
    fn the_default_group_names_the_selection_whatever_its_order() {
        use DeadLetterKind::*;
        assert_eq!(
            ReplayRequest::default_group(&[UnknownStudent, UnknownSchool]),
            "rollcall-dlq-replay-unknown_school+unknown_student"
        );
        assert_eq!(
            ReplayRequest::default_group(&[UnknownSchool, UnknownStudent, UnknownSchool]),
            ReplayRequest::default_group(&[UnknownStudent, UnknownSchool])
        );
    }
}
