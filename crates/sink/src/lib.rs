//! The SIS side of rollcall: what the processor decided, kept where a
//! student information system can read it.
//!
//! This crate owns
//! - the PostgreSQL sink ([`postgres`]): `attendance.determinations.v1` and
//!   `attendance.outreach.v1`, read read_committed, into the tables
//!   `determinations` (latest version per key), `determination_versions`
//!   (every version) and `outreach_triggers`, exactly once: each batch's rows
//!   and the Kafka positions they reflect (`sink_offsets`) are written in one
//!   database transaction, and on start the sink seeks to those positions;
//! - the database schema and its migrations ([`migrate`], `migrations/*.sql`),
//!   applied on start;
//! - the sink's metrics and HTTP endpoint ([`metrics`]);
//! - Ed-Fi attendance documents made from the tables ([`edfi`]), and
//!   `rollcall sink edfi`, which sends them to an Ed-Fi ODS/API as they
//!   change ([`edfi_api`]).
//!
//! The processor's own guarantees (transactions, the DLQ) are in
//! `rollcall-kafka`; this crate only reads its outputs.

pub mod db;
pub mod edfi;
pub mod edfi_api;
pub mod metrics;
pub mod migrate;
pub mod postgres;

pub use postgres::{SinkConfig, SinkStats};

/// Why the sink stopped, or could not start.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("setting {field}: {message}")]
    Config { field: &'static str, message: String },
    #[error("kafka: {what}: {source}")]
    Kafka {
        what: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("database: {what}: {source}")]
    Db {
        what: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("migration {version} ({name}): {source}")]
    Migration {
        version: u32,
        name: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("the database's schema is at version {found}, newer than this program's {known}: run a newer rollcall")]
    SchemaTooNew { found: i32, known: u32 },
    #[error("topic {0} does not exist (yet): create the topics with `rollcall topics create`")]
    NoTopic(String),
    #[error("{topic}: {source}")]
    Registry {
        topic: String,
        #[source]
        source: rollcall_registry::DecodeError,
    },
    #[error("{topic} went from {before} to {now} partitions")]
    PartitionsAdded { topic: String, before: usize, now: usize },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl SinkError {
    pub(crate) fn db(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> SinkError {
        let what = what.into();
        move |source| SinkError::Db { what, source }
    }

    pub(crate) fn kafka(what: impl Into<String>) -> impl FnOnce(rdkafka::error::KafkaError) -> SinkError {
        let what = what.into();
        move |source| SinkError::Kafka { what, source }
    }

    /// A unique violation: a row the table already holds.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, SinkError::Db { source, .. }
            if source.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION))
    }

    /// Whether starting again (new connections, positions re-read from the
    /// database) can help: the database or the broker went away, or the
    /// server asked to retry. A constraint or a schema problem cannot be
    /// retried away, and is reported instead of looping.
    pub fn is_transient(&self) -> bool {
        match self {
            // The broker went away, or the topics are not created yet.
            SinkError::Kafka { .. } | SinkError::NoTopic(_) | SinkError::PartitionsAdded { .. } => true,
            // The registry could not answer for a schema id not seen before.
            SinkError::Registry { .. } => true,
            SinkError::Db { source, .. } => match source.as_db_error() {
                // No server error: the connection or the socket failed.
                None => true,
                Some(e) => {
                    let code = e.code().code();
                    // 08: connection exception; 40: rollback (serialization,
                    // deadlock); 53: insufficient resources; 57P: operator
                    // intervention (shutdown, restart).
                    code.starts_with("08") || code.starts_with("40") || code.starts_with("53") || code.starts_with("57P")
                }
            },
            _ => false,
        }
    }
}

/// A database URL with its password, if any, replaced: for logs.
pub fn redact_url(url: &str) -> String {
    // postgres://user:secret@host/db → postgres://user:***@host/db
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        if let Some(at) = rest.find('@') {
            let userinfo = &rest[..at];
            if let Some(colon) = userinfo.find(':') {
                return format!("{}{}:***{}", &url[..scheme_end + 3], &userinfo[..colon], &rest[at..]);
            }
        }
        return url.to_string();
    }
    // key=value form: drop the password's value.
    url.split_whitespace().map(|kv| if kv.starts_with("password=") { "password=***" } else { kv }).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_logged() {
        assert_eq!(redact_url("postgres://u:pw@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("host=h user=u password=pw dbname=d"), "host=h user=u password=*** dbname=d");
    }
}
