//! The resolver: events that named a person or class the identity view did
//! not know when they came in wait on `ingest.waiting.v1` (with the
//! platform's own ids, durable before the request was answered). The
//! resolver reads them as a consumer group, holds them, and whenever the view
//! grows it tries them again: an event whose ids are all known now is
//! produced to the activity topic; one still unknown after the wait
//! (`identity_wait_seconds`, counted from when it was taken) is
//! dead-lettered `UNKNOWN_IDENTITY`, from where `rollcall dlq replay` puts it
//! back once the mapping is imported.
//!
//! Delivery is at least once, and that is enough: the group's position is
//! committed only up to the oldest event still held and only after what was
//! produced is acknowledged, so a crash or a rebalance reads some events
//! again, and a released event produced twice has the same `event_id`,
//! which the processor counts as a duplicate.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{Message, Timestamp};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use rollcall_ingest::{resolve, IdentityKey, Resolution};
use rollcall_kafka::checked::CheckedProducer;
use rollcall_kafka::wire::{decode_input, Input, InputTopic};
use rollcall_kafka::KafkaError;
use rollcall_model::avro::AvroRecord;
use rollcall_model::{ActivityEvent, DeadLetter, DeadLetterKind};

use crate::identities::Identities;
use crate::metrics::GatewayMetrics;

/// Where the resolver reads and writes, and how long an event may wait.
#[derive(Debug, Clone)]
pub struct ResolverConfig {
    pub brokers: String,
    pub group: String,
    pub waiting: String,
    pub activity: String,
    pub dlq: String,
    pub wait: chrono::Duration,
}

/// Notes that the group's assignment changed: everything held is dropped
/// and read again from the committed positions.
#[derive(Default)]
struct Rebalanced(AtomicBool);

impl ClientContext for Rebalanced {}

impl ConsumerContext for Rebalanced {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, _: &Rebalance<'_>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// An event read from the waiting topic and not yet released or refused.
struct Held {
    partition: i32,
    offset: i64,
    event: ActivityEvent,
    key: Option<String>,
    value: Vec<u8>,
    deadline: DateTime<Utc>,
}

/// Runs until `stop` is set, starting again from the committed positions
/// (after 2 s) whenever Kafka fails it.
pub fn run(cfg: ResolverConfig, ids: Arc<Identities>, metrics: Arc<GatewayMetrics>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        // Judging an event before the mapping is read to its end would
        // dead-letter events whose mapping is merely not read yet.
        if !ids.is_caught_up() {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        match run_once(&cfg, &ids, &metrics, &stop) {
            Ok(()) => return,
            Err(e) => {
                metrics.held.set(0);
                tracing::warn!(error = %format!("{e:#}"), "identity resolver failed; starting again from its committed position in 2 s");
                std::thread::sleep(Duration::from_secs(2));
            }
        }
    }
}

fn run_once(cfg: &ResolverConfig, ids: &Identities, metrics: &GatewayMetrics, stop: &AtomicBool) -> Result<(), KafkaError> {
    let consumer: BaseConsumer<Rebalanced> = rollcall_kafka::client_config(&cfg.brokers)
        .set("group.id", &cfg.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "100")
        .create_with_context(Rebalanced::default())
        .map_err(|e| rd(&format!("a consumer for {}", cfg.waiting), e))?;
    consumer.subscribe(&[&cfg.waiting]).map_err(|e| rd(&format!("subscribing to {}", cfg.waiting), e))?;
    let producer = CheckedProducer::new(&cfg.brokers)?;
    let mut held: Vec<Held> = Vec::new();
    // The offset after the last record read, per partition.
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let mut seen_generation = ids.generation();
    let mut last_pass = Instant::now();
    let mut dirty = false;
    while !stop.load(Ordering::SeqCst) {
        let polled = consumer.poll(Duration::from_millis(100));
        if consumer.context().0.swap(false, Ordering::SeqCst) {
            held.clear();
            next.clear();
            dirty = false;
        }
        match polled {
            None => {}
            Some(Err(e)) if !rollcall_kafka::is_eof(&e) => tracing::debug!(error = %e, "waiting-topic consumer"),
            Some(Err(_)) => {}
            Some(Ok(m)) => {
                next.insert(m.partition(), m.offset() + 1);
                dirty = true;
                let key = m.key().and_then(|k| std::str::from_utf8(k).ok()).map(str::to_string);
                let value = m.payload().map(<[u8]>::to_vec);
                match decode_input(InputTopic::Activity, m.key(), m.payload()) {
                    Ok(Input::Activity(event)) => {
                        let taken = match m.timestamp() {
                            Timestamp::CreateTime(t) | Timestamp::LogAppendTime(t) => DateTime::from_timestamp_millis(t),
                            Timestamp::NotAvailable => None,
                        }
                        .unwrap_or_else(Utc::now);
                        let h = Held {
                            partition: m.partition(),
                            offset: m.offset(),
                            event,
                            key,
                            value: value.unwrap_or_default(),
                            deadline: taken + cfg.wait,
                        };
                        if let Some(h) = settle(cfg, &producer, ids, metrics, h, Utc::now())? {
                            held.push(h);
                        }
                    }
                    Ok(_) => {}
                    Err(unusable) => {
                        let letter = DeadLetter {
                            topic: cfg.waiting.clone(),
                            partition: Some(m.partition()),
                            offset: Some(m.offset()),
                            key,
                            value: value.unwrap_or_default(),
                            error_kind: unusable.kind.as_str().to_string(),
                            message: unusable.message,
                            failed_at: Utc::now(),
                        };
                        dead_letter(cfg, &producer, &letter)?;
                        metrics.dead_lettered.with_label_values(&[unusable.kind.as_str()]).inc();
                    }
                }
            }
        }
        // Try the held events again when the view grew, and at least every
        // second, which is how the end of a wait is noticed.
        let generation = ids.generation();
        if generation != seen_generation || last_pass.elapsed() >= Duration::from_secs(1) {
            seen_generation = generation;
            let now = Utc::now();
            let mut still = Vec::with_capacity(held.len());
            for h in held.drain(..) {
                if let Some(h) = settle(cfg, &producer, ids, metrics, h, now)? {
                    still.push(h);
                }
            }
            held = still;
            metrics.held.set(held.len() as i64);
            if dirty {
                commit(&consumer, &producer, cfg, &held, &next)?;
                dirty = false;
            }
            last_pass = Instant::now();
        }
    }
    commit(&consumer, &producer, cfg, &held, &next)
}

/// Releases, refuses or keeps one event. Returns it when it still waits.
fn settle(
    cfg: &ResolverConfig,
    producer: &CheckedProducer,
    ids: &Identities,
    metrics: &GatewayMetrics,
    h: Held,
    now: DateTime<Utc>,
) -> Result<Option<Held>, KafkaError> {
    let resolution = resolve(&h.event, &ids.read());
    match resolution {
        Resolution::Ready(e) => {
            let value = e.to_single_object().map_err(|err| KafkaError::Record {
                what: format!("encoding a released event ({}:{})", h.partition, h.offset),
                source: err,
            })?;
            producer.send(&cfg.activity, &e.student_id, Some(&value), e.occurred_at)?;
            metrics.released.inc();
            Ok(None)
        }
        Resolution::Staff => {
            metrics.ignored.with_label_values(&["waiting"]).inc();
            Ok(None)
        }
        Resolution::Waiting(unknown) if now >= h.deadline => {
            let letter = DeadLetter {
                topic: cfg.waiting.clone(),
                partition: Some(h.partition),
                offset: Some(h.offset),
                key: h.key,
                value: h.value,
                error_kind: DeadLetterKind::UnknownIdentity.as_str().to_string(),
                message: unknown_message(&unknown, cfg.wait),
                failed_at: now,
            };
            dead_letter(cfg, producer, &letter)?;
            metrics.dead_lettered.with_label_values(&[DeadLetterKind::UnknownIdentity.as_str()]).inc();
            Ok(None)
        }
        Resolution::Waiting(_) => Ok(Some(h)),
    }
}

/// What the mapping lacked, for the dead letter (read by the district's
/// staff, who add the rows it names).
pub fn unknown_message(unknown: &[IdentityKey], wait: chrono::Duration) -> String {
    let keys: Vec<String> = unknown.iter().map(ToString::to_string).collect();
    format!(
        "not in sis.identities.v1 after waiting {} s: {} (add these rows with `rollcall identities import`, then `rollcall dlq replay --kind UNKNOWN_IDENTITY`)",
        wait.num_seconds(),
        keys.join(", ")
    )
}

fn dead_letter(cfg: &ResolverConfig, producer: &CheckedProducer, d: &DeadLetter) -> Result<(), KafkaError> {
    let value = d.to_single_object().map_err(|e| KafkaError::Record { what: "encoding a dead letter".into(), source: e })?;
    producer.send(&cfg.dlq, d.key.as_deref().unwrap_or_default(), Some(&value), d.failed_at)
}

/// Commits, per partition, the oldest offset still held (or the next one to
/// read), once what was produced for the records before it is acknowledged.
fn commit(
    consumer: &BaseConsumer<Rebalanced>,
    producer: &CheckedProducer,
    cfg: &ResolverConfig,
    held: &[Held],
    next: &BTreeMap<i32, i64>,
) -> Result<(), KafkaError> {
    if next.is_empty() {
        return Ok(());
    }
    producer.flush("released events and dead letters", Duration::from_secs(30))?;
    let mut tpl = TopicPartitionList::new();
    for (&p, &n) in next {
        let oldest = held.iter().filter(|h| h.partition == p).map(|h| h.offset).min().unwrap_or(n);
        tpl.add_partition_offset(&cfg.waiting, p, Offset::Offset(oldest)).map_err(|e| rd("positions to commit", e))?;
    }
    consumer.commit(&tpl, CommitMode::Sync).map_err(|e| rd(&format!("committing the position on {}", cfg.waiting), e))
}

fn rd(what: &str, e: rdkafka::error::KafkaError) -> KafkaError {
    KafkaError::Kafka { what: what.to_string(), source: Some(e) }
}
