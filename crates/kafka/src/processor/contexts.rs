//! What librdkafka calls back into: the group consumer's context, which
//! notices rebalances, and the transactional producer's, which learns where
//! the changelog records landed and which deliveries failed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::ClientContext;
use tracing::{info, warn};

use crate::wire;

/// Notices rebalances; the loop acts on them between polls.
pub(super) struct GroupContext {
    pub(super) rebalanced: AtomicBool,
}

impl ClientContext for GroupContext {
    fn error(&self, error: RdError, reason: &str) {
        if !crate::is_eof(&error) {
            warn!(%error, reason, "kafka consumer");
        }
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = r {
            info!(partitions = tpl.count(), "partitions revoked");
        }
        self.rebalanced.store(true, Ordering::SeqCst);
    }
    fn post_rebalance(&self, _: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = r {
            info!(partitions = tpl.count(), "partitions assigned");
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
