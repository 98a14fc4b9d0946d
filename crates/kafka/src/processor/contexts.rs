//! What librdkafka calls back into: the group consumer's context, which
//! notices rebalances, and the transactional producer's, which learns where
//! the changelog records landed and which deliveries failed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tracing::{info, warn};

use crate::wire;

/// Notices rebalances; the loop acts on them between polls.
pub(super) struct GroupContext {
    pub(super) rebalanced: AtomicBool,
    /// Why the last rebalance could not be carried out; the loop starts
    /// again with fresh clients.
    pub(super) failed: Mutex<Option<String>>,
}

impl ClientContext for GroupContext {
    fn error(&self, error: RdError, reason: &str) {
        if !crate::is_eof(&error) {
            warn!(%error, reason, "kafka consumer");
        }
    }
}

impl ConsumerContext for GroupContext {
    /// The default rebalance with one change: partitions are assigned at
    /// their beginning rather than at the group's committed offsets. The loop
    /// seeks every partition to where its task's state ends, so the committed
    /// offsets are never read; waiting for them only holds the partitions
    /// back. After a broker restart a partition was seen never to start
    /// fetching that way (every seek refused as "erroneous state", fresh
    /// clients too), as when the committed offsets stay unstable behind a
    /// transaction left open; one assigned at an offset fetches at once.
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let done = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                info!(partitions = tpl.count(), "partitions assigned");
                tpl.set_all_offsets(Offset::Beginning).and_then(|()| consumer.assign(tpl))
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                info!(partitions = tpl.count(), "partitions revoked");
                consumer.unassign()
            }
            other => Err(RdError::Rebalance(other.into())),
        };
        if let Err(e) = done {
            warn!(error = %e, "rebalance failed");
            if let Ok(mut f) = self.failed.lock() {
                *f = Some(e.to_string());
            }
        }
        self.rebalanced.store(true, Ordering::SeqCst);
    }
}

/// Remembers where each changelog record landed, for the local changelog position.
pub(super) struct DeliveryContext {
    pub(super) changelog_next: Mutex<HashMap<i32, i64>>,
    pub(super) failures: Mutex<Vec<String>>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        match r {
            Ok(m) if m.topic().ends_with(wire::CHANGELOG_SUFFIX) => {
                if let Ok(mut g) = self.changelog_next.lock() {
                    let e = g.entry(m.partition()).or_insert(0);
                    *e = (*e).max(m.offset() + 1);
                }
            }
            Ok(_) => {}
            Err((e, m)) => {
                if let Ok(mut f) = self.failures.lock() {
                    f.push(format!("{} [{}]: {e}", m.topic(), m.partition()));
                }
            }
        }
    }
}
