//! The Confluent wire format and the schema registry it needs.
//!
//! rollcall's own format is Avro's single-object encoding (`C3 01`, the
//! schema's 8-byte fingerprint, the datum), which any Avro library reads
//! with `schemas/`. Most Kafka tooling (Connect's converters, ksqlDB, the
//! Confluent serializers of every language) reads the Confluent wire format
//! instead: a zero byte, the writer schema's 4-byte big-endian id in a
//! schema registry, the datum. This crate owns that second format:
//!
//! - [`ValueFormat`], the setting that picks the format of the outputs;
//! - [`Registry`], a blocking client of the registry's Confluent API
//!   (`/subjects/{s}/versions`, `/schemas/ids/{id}`), with credentials
//!   ([`Credentials`]) from a file or the environment, a cache of the
//!   schemas it has seen by id, and a wait for a registry that is not up yet;
//! - [`Codec`], which writes a record in the configured format and reads
//!   one in either, told apart by the first byte. A Confluent record whose
//!   writer schema is rollcall's own is decoded by the model's codec; one
//!   written with another version of the record's schema (a producer's
//!   BACKWARD-compatible v2) is decoded with its writer schema and resolved
//!   to ours by Avro schema resolution.
//!
//! It is blocking on purpose: the processor applies records on plain
//! threads, and a lookup happens once per schema id, after which the id is
//! answered from the cache (so a registry that goes away later does not
//! stop records whose ids were seen).

mod client;
mod codec;

pub use client::{Credentials, Registry, RegistryError, WriterSchema};
pub use codec::{
    confluent_frame, format_of, schema_text, Codec, DecodeError, EncodeError, CONFLUENT_HEADER_LEN, CONFLUENT_MAGIC,
};

use serde::{Deserialize, Serialize};

/// The wire format of the values rollcall writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ValueFormat {
    /// Avro single-object encoding: self-describing by fingerprint, no registry.
    #[default]
    #[serde(rename = "single-object")]
    SingleObject,
    /// The Confluent wire format: magic byte 0, a 4-byte schema id in the registry, the datum.
    #[serde(rename = "confluent")]
    Confluent,
}

impl ValueFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ValueFormat::SingleObject => "single-object",
            ValueFormat::Confluent => "confluent",
        }
    }
}

impl std::fmt::Display for ValueFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ValueFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "single-object" => Ok(ValueFormat::SingleObject),
            "confluent" => Ok(ValueFormat::Confluent),
            other => Err(format!("`{other}` is not a value format: single-object or confluent")),
        }
    }
}

/// The subject a topic's value schema is registered under (the
/// TopicNameStrategy every Confluent serializer uses by default).
pub fn value_subject(topic: &str) -> String {
    format!("{topic}-value")
}
