//! Building the processor's Kafka clients. Their settings are the
//! processor's contract with the broker (read_committed, range assignment,
//! static membership, transactions), so they are kept together.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::ThreadedProducer;

use super::contexts::{DeliveryContext, GroupContext};
use super::rd;
use crate::config::ProcessorConfig;
use crate::KafkaError;

pub(super) type Clients = (BaseConsumer<GroupContext>, ThreadedProducer<DeliveryContext>, BaseConsumer<crate::QuietContext>);

/// The processor's Kafka clients: the group consumer, the transactional
/// producer and the calendar reader.
pub(super) fn connect(cfg: &ProcessorConfig) -> Result<Clients, KafkaError> {
    let consumer: BaseConsumer<GroupContext> = crate::client_config(&cfg.brokers)
        .set("group.id", &cfg.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        // Range assignment gives one member partition p of every input topic.
        .set("partition.assignment.strategy", "range")
        // Answer an empty fetch quickly: end-of-input is seen from fetch responses.
        .set("fetch.wait.max.ms", "100")
        // One consumer queue serves every partition in arrival order: a
        // deep prefetch of one big activity partition would hold back the
        // short roster and report partitions that the replay horizon
        // waits for. Shallow per-partition fetches keep them interleaved.
        .set("max.partition.fetch.bytes", "262144")
        .set("queued.min.messages", "2000")
        .set("queued.max.messages.kbytes", "4096")
        // With a queue this shallow the thresholds are reached all the
        // time, and librdkafka then postpones the partition's next fetch by
        // this much (1 s by default): the loop sat idle for most of a replay.
        .set("fetch.queue.backoff.ms", "10")
        .set("session.timeout.ms", "10000")
        // Static membership: a restarted instance takes its partitions
        // back at once instead of waiting out a rebalance.
        .set("group.instance.id", cfg.transactional_id())
        .set("heartbeat.interval.ms", "1000")
        .create_with_context(GroupContext { rebalanced: AtomicBool::new(false), failed: Mutex::new(None) })
        .map_err(|e| rd("consumer", e))?;
    let producer: ThreadedProducer<DeliveryContext> = crate::client_config(&cfg.brokers)
        .set("transactional.id", cfg.transactional_id())
        .set("transaction.timeout.ms", cfg.transaction_timeout_ms.to_string())
        .set("enable.idempotence", "true")
        // Keys land where the Java clients of the district put them.
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .create_with_context(DeliveryContext { changelog_next: Mutex::new(HashMap::new()), failures: Mutex::new(Vec::new()) })
        .map_err(|e| rd("producer", e))?;
    let calendars = crate::reader(&cfg.brokers, &format!("{}-calendars", cfg.group))?;
    Ok((consumer, producer, calendars))
}
