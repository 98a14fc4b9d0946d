//! The Kafka runtime: topics, the wire format of records on them, and the
//! exactly-once processor that feeds the one engine from Kafka and writes
//! its determinations, outreach and dead letters back, in transactions.

pub mod checked;
pub mod config;
pub mod crash;
pub mod dead_log;
pub mod dlq;
pub mod forget;
pub mod fuzzing;
pub mod identities;
pub mod metrics;
pub mod processor;
pub mod reach;
pub mod redact;
pub mod replay;
pub mod security;
pub mod topics;
pub mod wire;

pub use config::{ClockMode, ProcessorConfig};
pub use processor::{Processor, RunStats};
pub use security::{client_config, KafkaSecurity};

/// Why the Kafka runtime stopped or could not start.
///
/// `{}` says what failed, context first (the step, and the partition or
/// offset where known); the error underneath, if any, is the
/// [`source`](std::error::Error::source), so that a chain printer (anyhow's
/// `{:#}`) shows it once. `{:#}` on this type prints the whole chain itself,
/// for logs and messages that are not printed through anyhow.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// A setting, a policy file or a topic the runtime cannot work with.
    Setup(String),
    /// Something on this machine failed: the state directory, a task's
    /// RocksDB, a file written for a run.
    Local {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A Kafka client call failed, or a Kafka step did not finish; `source`
    /// is `None` where librdkafka gave no error value (a fatal client error
    /// reported by code, a read that did not reach the end in time).
    Kafka {
        what: String,
        #[source]
        source: Option<rdkafka::error::KafkaError>,
    },
    /// The engine or its store failed; `source` is `None` where the state is
    /// wrong without an error underneath (a changelog record naming no
    /// table, a thread that panicked).
    State {
        what: String,
        #[source]
        source: Option<rollcall_engine::EngineError>,
    },
    /// A record could not be encoded or decoded.
    Record {
        what: String,
        #[source]
        source: rollcall_model::avro::AvroError,
    },
    /// The schema registry could not be used: at start-up (it did not answer
    /// in time, or refused to register an output schema), or later, for a
    /// schema id not seen before.
    Registry {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
        /// Trying again later may succeed (it did not answer).
        transient: bool,
    },
    /// The brokers did not answer at start-up; `detail` is the last
    /// transport error librdkafka met, which names the address.
    Unreachable { brokers: String, detail: String, waited_s: u64 },
    /// The brokers answered but refused this client: `what` says what failed
    /// in the words of the settings to check (authentication for a user, a
    /// certificate a CA file does not trust); `detail` is librdkafka's text.
    Refused { brokers: String, what: String, detail: String },
    /// Asked to stop before start-up finished.
    Stopped,
}

impl KafkaError {
    /// Whether the processor should start again from its committed state,
    /// with new clients, rather than stop. Every Kafka failure is: a broker
    /// that went away and came back with the group or the transaction
    /// forgotten, a fenced or fatal client, a restore that could not reach
    /// the end. The others would only happen again: a configuration, a
    /// local file or directory, the state or a record that cannot be used.
    pub fn is_reconnectable(&self) -> bool {
        // A registry that stopped answering for a new schema id: the batch is
        // read again from the committed state once it answers.
        matches!(self, KafkaError::Kafka { .. } | KafkaError::Registry { transient: true, .. })
    }

    pub(crate) fn kafka(what: impl Into<String>, source: rdkafka::error::KafkaError) -> KafkaError {
        KafkaError::Kafka { what: what.into(), source: Some(source) }
    }

    /// A Kafka step that failed without an rdkafka error to carry.
    pub(crate) fn kafka_step(what: impl Into<String>) -> KafkaError {
        KafkaError::Kafka { what: what.into(), source: None }
    }

    pub(crate) fn state(what: impl Into<String>, source: impl Into<rollcall_engine::EngineError>) -> KafkaError {
        KafkaError::State { what: what.into(), source: Some(source.into()) }
    }

    /// State that is wrong without an error underneath.
    pub(crate) fn bad_state(what: impl Into<String>) -> KafkaError {
        KafkaError::State { what: what.into(), source: None }
    }

    pub(crate) fn local(what: impl Into<String>, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> KafkaError {
        KafkaError::Local { what: what.into(), source: source.into() }
    }

    pub(crate) fn record(what: impl Into<String>, source: rollcall_model::avro::AvroError) -> KafkaError {
        KafkaError::Record { what: what.into(), source }
    }
}

impl std::fmt::Display for KafkaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KafkaError::Setup(what) | KafkaError::Local { what, .. } => write!(f, "setup: {what}")?,
            KafkaError::Kafka { what, .. } => write!(f, "kafka: {what}")?,
            KafkaError::State { what, .. } => write!(f, "state: {what}")?,
            KafkaError::Record { what, .. } => write!(f, "record: {what}")?,
            KafkaError::Registry { what, .. } => write!(f, "schema registry: {what}")?,
            KafkaError::Unreachable { brokers, detail, waited_s } => write!(
                f,
                "kafka: cannot reach the brokers at `{brokers}` (tried for {waited_s} s): {detail}. Check the address \
                 (--brokers, ROLLCALL_BROKERS) and that the broker is up; broker_wait_seconds keeps trying at start"
            )?,
            KafkaError::Refused { brokers, what, detail } => {
                write!(f, "kafka: the brokers at `{brokers}` refused this client: {what} ({detail})")?
            }
            KafkaError::Stopped => write!(f, "stopped before start-up finished")?,
        }
        if f.alternate() {
            // librdkafka's errors (and some of ours) repeat their source at
            // the end of their own text: a cause already said is not said again.
            let mut said = String::new();
            let mut cause = std::error::Error::source(self);
            while let Some(e) = cause {
                let text = e.to_string();
                if !said.ends_with(&text) {
                    write!(f, ": {text}")?;
                }
                said = text;
                cause = e.source();
            }
        }
        Ok(())
    }
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
    crate::client_config(brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "100")
        .create_with_context(QuietContext)
        .map_err(|e| KafkaError::kafka(format!("consumer for {brokers}"), e))
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

#[cfg(test)]
mod tests {
    use std::error::Error;

    use rdkafka::error::KafkaError as RdError;
    use rdkafka::types::RDKafkaErrorCode;
    use rollcall_engine::StoreError;
    use rollcall_model::avro::AvroError;

    use super::*;

    #[test]
    fn only_kafka_failures_reconnect() {
        let cases = [
            (KafkaError::kafka("init transactions", RdError::Global(RDKafkaErrorCode::BrokerTransportFailure)), true),
            (KafkaError::kafka_step("producer failed fatally"), true),
            (KafkaError::Setup("partitions must be at least 1".into()), false),
            (KafkaError::local("state directory /nowhere", std::io::Error::other("permission denied")), false),
            (KafkaError::state("partition 0: flushing the engine", StoreError::Layout("disk full".into())), false),
            (KafkaError::bad_state("an apply thread panicked"), false),
            (KafkaError::record("decoding t @1", AvroError::Decode("truncated".into())), false),
        ];
        for (e, reconnect) in cases {
            assert_eq!(e.is_reconnectable(), reconnect, "{e:#}");
        }
    }

    #[test]
    fn the_text_names_the_step_and_the_source_is_kept() {
        let rd = RdError::MessageProduction(RDKafkaErrorCode::QueueFull);
        let e = KafkaError::kafka("produce to t", rd.clone());
        assert_eq!(e.to_string(), "kafka: produce to t");
        assert_eq!(e.source().and_then(|s| s.downcast_ref::<RdError>()), Some(&rd));
        // librdkafka's text already ends with its code's: said once.
        assert_eq!(format!("{e:#}"), format!("kafka: produce to t: {rd}"));

        let e = KafkaError::state("partition 3: flushing the engine", StoreError::Layout("disk full".into()));
        assert_eq!(e.to_string(), "state: partition 3: flushing the engine");
        assert_eq!(format!("{e:#}"), "state: partition 3: flushing the engine: state store: disk full");

        let e = KafkaError::kafka_step("no consumer group metadata");
        assert!(e.source().is_none());
        assert_eq!(format!("{e:#}"), "kafka: no consumer group metadata");

        let e = KafkaError::local("state directory /nowhere", std::io::Error::other("permission denied"));
        assert_eq!(format!("{e:#}"), "setup: state directory /nowhere: permission denied");
    }
}
