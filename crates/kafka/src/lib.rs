//! The Kafka runtime: topics, the wire format of records on them, and the
//! exactly-once processor that feeds the one engine from Kafka and writes
//! its determinations, outreach and dead letters back, in transactions.

pub mod config;
pub mod processor;
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

/// Runs an rdkafka future (admin calls) to completion on a small runtime.
pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt.block_on(f),
        // Without a runtime there is nothing to drive the future; this only
        // happens when the OS refuses a thread.
        Err(e) => panic!("cannot start an async runtime: {e}"),
    }
}
