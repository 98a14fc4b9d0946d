//! Writing a record in the configured format, and reading one in either.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::schema::Schema;
use rollcall_model::avro::{AvroError, AvroRecord, SINGLE_OBJECT_MARKER};

use crate::client::{Registry, RegistryError};
use crate::{value_subject, ValueFormat};

/// The first byte of a Confluent-framed value.
pub const CONFLUENT_MAGIC: u8 = 0x00;
/// Magic byte plus the 4-byte big-endian schema id.
pub const CONFLUENT_HEADER_LEN: usize = 5;

/// Why a value could not be read as the record it should be.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not a datum of the record (the single-object checks, a
    /// truncated or malformed datum, a field the record cannot hold).
    #[error(transparent)]
    Avro(#[from] AvroError),
    /// A Confluent-framed value whose schema id the registry does not know.
    #[error("Confluent-framed value with schema id {id}, which the schema registry does not know")]
    UnknownId { id: u32 },
    /// A Confluent-framed value whose writer schema is another record, or a
    /// version of this one that cannot be resolved to rollcall's.
    #[error("schema id {id} ({found}) cannot be read as {expected}: {message}")]
    WrongSchema { id: u32, found: String, expected: String, message: String },
    /// A Confluent-framed value, and no registry to look its id up in.
    #[error("Confluent-framed value with schema id {id}, but no schema registry is given (registry_url, --registry-url)")]
    NoRegistry { id: u32 },
    /// The registry could not answer for an id not seen before: the record
    /// is not at fault, and must be read again once it answers.
    #[error("looking up schema id {id}")]
    Registry {
        id: u32,
        #[source]
        source: RegistryError,
    },
}

/// Why a record could not be written.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error(transparent)]
    Avro(#[from] AvroError),
    /// The record's schema was not registered at start-up (a defect: every
    /// output is registered before the first record is written).
    #[error("{record}: its schema has no id in the registry (not registered at start-up)")]
    NotRegistered { record: &'static str },
}

/// Writes records in one format and reads both: see the crate doc.
#[derive(Debug, Clone, Default)]
pub struct Codec {
    format: ValueFormat,
    registry: Option<Arc<Registry>>,
    /// Registered id per record type (its schema file).
    ids: HashMap<&'static str, u32>,
}

/// A record's schema as JSON text, with its docs and defaults, as it is
/// registered (its Parsing Canonical Form is the model's fingerprint).
pub fn schema_text<T: AvroRecord>() -> String {
    serde_json::to_string(T::schema()).unwrap_or_default()
}

fn record_name(schema: &Schema) -> String {
    match schema {
        Schema::Record(r) => r.name.fullname(None),
        other => format!("{other:?}"),
    }
}

impl Codec {
    /// Single-object encoding only: no registry (a Confluent-framed input
    /// is then a [`DecodeError::NoRegistry`]).
    pub fn single_object() -> Codec {
        Codec::default()
    }

    /// Writes `format`, reading Confluent-framed values through `registry`
    /// when there is one.
    pub fn new(format: ValueFormat, registry: Option<Arc<Registry>>) -> Codec {
        Codec { format, registry, ids: HashMap::new() }
    }

    pub fn format(&self) -> ValueFormat {
        self.format
    }

    pub fn registry(&self) -> Option<&Arc<Registry>> {
        self.registry.as_ref()
    }

    /// Registers `T`'s schema under `<topic>-value` and keeps its id for
    /// writing. A no-op without a registry.
    pub fn register<T: AvroRecord>(&mut self, topic: &str) -> Result<Option<u32>, RegistryError> {
        let Some(r) = &self.registry else { return Ok(None) };
        let id = r.register(&value_subject(topic), &schema_text::<T>())?;
        self.ids.insert(T::SCHEMA_FILE, id);
        Ok(Some(id))
    }

    /// The id `T` is written with, once registered.
    pub fn id_of<T: AvroRecord>(&self) -> Option<u32> {
        self.ids.get(T::SCHEMA_FILE).copied()
    }

    /// `record` in the configured format.
    pub fn encode<T: AvroRecord>(&self, record: &T) -> Result<Vec<u8>, EncodeError> {
        match self.format {
            ValueFormat::SingleObject => Ok(record.to_single_object()?),
            ValueFormat::Confluent => {
                let id = self.id_of::<T>().ok_or(EncodeError::NotRegistered { record: T::SCHEMA_FILE })?;
                Ok(confluent_frame(id, record)?)
            }
        }
    }

    /// Reads `bytes` as a `T`, in either format: `C3 01` opens a
    /// single-object value, a zero byte a Confluent-framed one.
    pub fn decode<T: AvroRecord>(&self, bytes: &[u8]) -> Result<T, DecodeError> {
        if bytes.len() >= CONFLUENT_HEADER_LEN && bytes[0] == CONFLUENT_MAGIC {
            let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
            return self.decode_confluent(id, &bytes[CONFLUENT_HEADER_LEN..]);
        }
        Ok(T::from_single_object(bytes)?)
    }

    fn decode_confluent<T: AvroRecord>(&self, id: u32, datum: &[u8]) -> Result<T, DecodeError> {
        let registry = self.registry.as_ref().ok_or(DecodeError::NoRegistry { id })?;
        let writer = registry
            .schema_by_id(id)
            .map_err(|source| DecodeError::Registry { id, source })?
            .ok_or(DecodeError::UnknownId { id })?;
        // rollcall's own schema (ours, or a producer's copy of it): the
        // model's codec, which is strict about untrusted bytes.
        if writer.fingerprint == T::fingerprint() {
            return Ok(T::from_avro_datum(datum)?);
        }
        let expected = record_name(T::schema());
        let found = writer.name.clone().unwrap_or_else(|| "not a record".into());
        let wrong = |message: String| DecodeError::WrongSchema { id, found: found.clone(), expected: expected.clone(), message };
        if writer.name.as_deref() != Some(expected.as_str()) {
            return Err(wrong("another record type".into()));
        }
        // Another version of the record: decoded with the writer's schema,
        // then resolved to ours (fields it lacks take our defaults, fields
        // we lack are dropped), as Avro schema resolution says.
        let mut input = datum;
        let value = apache_avro::from_avro_datum(&writer.schema, &mut input, None)
            .map_err(|e| AvroError::Decode(format!("{expected} (writer schema id {id}): {e}")))?;
        if !input.is_empty() {
            return Err(AvroError::Decode(format!(
                "{expected} (writer schema id {id}): {} unexpected bytes after the end of the datum",
                input.len()
            ))
            .into());
        }
        let value = value.resolve(T::schema()).map_err(|e| wrong(format!("schema resolution failed: {e}")))?;
        Ok(T::from_avro_value(value)?)
    }
}

/// The Confluent wire format of `record` with schema id `id`.
pub fn confluent_frame<T: AvroRecord>(id: u32, record: &T) -> Result<Vec<u8>, AvroError> {
    let mut out = Vec::with_capacity(128);
    out.push(CONFLUENT_MAGIC);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&record.to_avro_datum()?);
    Ok(out)
}

/// Which format a value is in, by its first bytes (`None`: neither).
pub fn format_of(bytes: &[u8]) -> Option<ValueFormat> {
    if bytes.len() >= CONFLUENT_HEADER_LEN && bytes[0] == CONFLUENT_MAGIC {
        Some(ValueFormat::Confluent)
    } else if bytes.starts_with(&SINGLE_OBJECT_MARKER) {
        Some(ValueFormat::SingleObject)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollcall_model::ActivityEvent;

    fn event() -> ActivityEvent {
        ActivityEvent {
            event_id: "e1".into(),
            source: "canvas".into(),
            student_id: "s1".into(),
            school_id: "x".into(),
            section_id: None,
            staff_id: None,
            kind: rollcall_model::ActivityKind::Login,
            direction: None,
            occurred_at: chrono_instant(),
            assigned_date: None,
            live_session_id: None,
            duration_seconds: None,
            attributes: Default::default(),
            received_at: None,
        }
    }

    fn chrono_instant() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp(1_600_000_000, 0).unwrap()
    }

    #[test]
    fn single_object_round_trips_without_a_registry() {
        let c = Codec::single_object();
        let bytes = c.encode(&event()).unwrap();
        assert_eq!(format_of(&bytes), Some(ValueFormat::SingleObject));
        assert_eq!(c.decode::<ActivityEvent>(&bytes).unwrap(), event());
    }

    #[test]
    fn confluent_needs_a_registry_and_a_registered_schema() {
        let bytes = confluent_frame(7, &event()).unwrap();
        assert_eq!(&bytes[..5], &[0, 0, 0, 0, 7]);
        assert_eq!(format_of(&bytes), Some(ValueFormat::Confluent));
        assert!(matches!(Codec::single_object().decode::<ActivityEvent>(&bytes), Err(DecodeError::NoRegistry { id: 7 })));
        let c = Codec::new(ValueFormat::Confluent, None);
        assert!(matches!(c.encode(&event()), Err(EncodeError::NotRegistered { .. })));
    }

    #[test]
    fn the_registered_text_has_the_models_fingerprint() {
        let text = schema_text::<ActivityEvent>();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let fp = rollcall_model::avro::rabin_fingerprint(rollcall_model::avro::parsing_canonical_form(&json, None).as_bytes());
        assert_eq!(fp, ActivityEvent::fingerprint());
        assert!(text.contains("timestamp-micros"), "{text}");
    }
}
