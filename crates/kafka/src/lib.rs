//! The Kafka runtime: topics, the wire format of records on them, and the
//! exactly-once processor that feeds the one engine from Kafka and writes
//! its determinations, outreach and dead letters back, in transactions.

pub mod config;
pub mod metrics;
pub mod processor;
pub mod redact;
pub mod replay;
pub mod topics;
pub mod wire;

pub use config::{ClockMode, ProcessorConfig};
pub use processor::{Processor, RunStats};

/// Why the Kafka runtime stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("setup: {0}")]
    Setup(String),
    #[error("kafka: {0}")]
    Kafka(String),
    #[error("state: {0}")]
    State(String),
}

/// Reaching the end of a partition, however librdkafka reports it.
pub fn is_eof(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::error::KafkaError as E;
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(e, E::PartitionEOF(_) | E::Global(C::PartitionEOF))
}

/// A client context for our plain consumers: reaching the end of a
/// partition is how they know they are done, not an error worth a log line.
pub struct QuietContext;

impl rdkafka::ClientContext for QuietContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if !is_eof(&error) {
            tracing::warn!(%error, reason, "kafka client");
        }
    }
}
impl rdkafka::consumer::ConsumerContext for QuietContext {}

/// A consumer outside any group's assignment that reads read_committed and
/// reports the end of each partition: calendars, changelog restore, outputs.
pub fn reader(brokers: &str, group: &str) -> Result<rdkafka::consumer::BaseConsumer<QuietContext>, KafkaError> {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "100")
        .create_with_context(QuietContext)
        .map_err(|e| KafkaError::Kafka(format!("consumer for {brokers}: {e}")))
}

/// Runs an rdkafka future (admin calls) to completion on a small runtime.
pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt.block_on(f),
        // Without a runtime there is nothing to drive the future; this only
        // happens when the OS refuses a thread.
        Err(e) => panic!("cannot start an async runtime: {e}"),
    }
}
