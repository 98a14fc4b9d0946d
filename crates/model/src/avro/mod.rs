//! Avro form of the records, against the schema files in `schemas/`.
//!
//! The schemas are parsed with `apache-avro`, but the binary codec here is our
//! own, driven by the parsed schema. apache-avro 0.17's decoder is not fit for
//! bytes straight off a topic: it turns a string, boolean or union cut short by
//! the end of input into `null` instead of an error, and it reserves array and
//! map capacity from the untrusted item count, so a corrupt count of a few
//! hundred million aborts the process on allocation failure. Its encoder
//! writes maps in `HashMap` order, so one record would have many encodings.
//! Ours refuses truncated and trailing input, never allocates more than the
//! input can justify, and writes map keys in sorted order so encoding is
//! deterministic. Tests check that both libraries agree on every valid datum.
//!
//! The Rust <-> `Value` conversions are written out by hand rather than going
//! through serde, so that instants are exactly `timestamp-micros`, dates
//! exactly `date`, enums carry their schema position, and optional fields are
//! exactly `["null", T]` unions; decoding checks each of these and names the
//! field that is wrong.
//!
//! One file per concern: `framing` is the single-object header and the
//! schema fingerprint it carries, `binary` the primitives of the binary
//! encoding, `generic` the schema-driven codec over `Value` trees, `value`
//! the helpers that build and take apart `Value`s, `records` each record
//! type's mapping onto its schema, and `direct` the hand-written fast paths
//! for the busiest records, which must agree with `generic`.

mod binary;
mod direct;
mod framing;
mod generic;
mod records;
mod value;

use apache_avro::schema::Schema;
use apache_avro::types::Value;

pub use direct::{ActivityEventRef, OwnedAttributes};
pub use framing::{
    parsing_canonical_form, rabin_fingerprint, single_object_fingerprint, SINGLE_OBJECT_HEADER_LEN, SINGLE_OBJECT_MARKER,
};
pub use generic::CompiledSchema;

/// Why a record could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AvroError {
    /// A field of a decoded value is missing, has the wrong type, or holds a
    /// value the Rust type cannot represent. `field` is a path for nested
    /// values, e.g. `enrollments[1].meetings[0].start`.
    #[error("field `{field}` of {record}: {message}")]
    Field { record: &'static str, field: String, message: String },
    /// The value given for a record is not a record at all.
    #[error("{record}: {message}")]
    Record { record: &'static str, message: String },
    /// The bytes are not a datum of the schema (truncated, trailing bytes,
    /// out-of-range enum or union index, invalid UTF-8, ...).
    #[error("cannot decode Avro datum: {0}")]
    Decode(String),
    /// A value does not fit the schema it is written with (a bug in the
    /// conversions, since every value is built from a typed record).
    #[error("cannot encode Avro datum: {0}")]
    Encode(String),
    /// The bytes do not start with the single-object encoding marker.
    #[error("not Avro single-object encoding: {0}")]
    Header(String),
    /// The single-object header names a schema other than the one expected.
    #[error(
        "single-object datum is not a {record}: its schema fingerprint is {found:#018x}, \
         expected {expected:#018x} (another record type or schema version)"
    )]
    Fingerprint { record: &'static str, expected: u64, found: u64 },
}

/// A record type with an Avro schema in `schemas/`.
pub trait AvroRecord: Sized {
    /// The schema's file name under `schemas/`, e.g. `activity_event.avsc`.
    const SCHEMA_FILE: &'static str;

    /// The parsed schema and what encoding needs, built on first use.
    #[doc(hidden)]
    fn compiled() -> &'static CompiledSchema;

    fn to_avro_value(&self) -> Value;
    fn from_avro_value(v: Value) -> Result<Self, AvroError>;

    /// A direct decoder of a whole datum, for the records that are most of
    /// the traffic. `None` whenever anything is unusual: the generic decoder
    /// then gives the answer, and its error, so both paths agree by
    /// construction wherever this one declines.
    #[doc(hidden)]
    fn decode_direct(_datum: &[u8]) -> Option<Self> {
        None
    }

    /// A direct encoder of the datum, for the records written most (one
    /// determination per decided window): appends the bytes the generic
    /// encoder would, and returns whether it did.
    #[doc(hidden)]
    fn encode_direct(&self, _out: &mut Vec<u8>) -> bool {
        false
    }

    /// Earlier versions of this record's schema (`schemas/history/`), which
    /// a reader of today's still reads: their datums are resolved to today's
    /// schema, the fields added since taking their defaults.
    #[doc(hidden)]
    fn earlier() -> &'static [CompiledSchema] {
        &[]
    }

    fn schema() -> &'static Schema {
        &Self::compiled().schema
    }

    /// CRC-64-AVRO fingerprint of the schema's Parsing Canonical Form: the
    /// identity used by single-object encoding.
    fn fingerprint() -> u64 {
        Self::compiled().fingerprint
    }

    /// The raw binary datum, without any header.
    fn to_avro_datum(&self) -> Result<Vec<u8>, AvroError> {
        let mut out = Vec::with_capacity(128);
        self.write_datum(&mut out)?;
        Ok(out)
    }

    /// Appends the datum: by the direct encoder where the type has one.
    #[doc(hidden)]
    fn write_datum(&self, out: &mut Vec<u8>) -> Result<(), AvroError> {
        if !self.encode_direct(out) {
            Self::compiled().encode(&self.to_avro_value(), out)?;
        }
        Ok(())
    }

    /// `to_avro_datum` through the generic value tree only.
    #[doc(hidden)]
    fn to_avro_datum_generic(&self) -> Result<Vec<u8>, AvroError> {
        let mut out = Vec::with_capacity(128);
        Self::compiled().encode(&self.to_avro_value(), &mut out)?;
        Ok(out)
    }

    fn from_avro_datum(bytes: &[u8]) -> Result<Self, AvroError> {
        if let Some(r) = Self::decode_direct(bytes) {
            return Ok(r);
        }
        Self::from_avro_datum_generic(bytes)
    }

    /// `from_avro_datum` through the generic value tree only.
    #[doc(hidden)]
    fn from_avro_datum_generic(bytes: &[u8]) -> Result<Self, AvroError> {
        Self::from_avro_value(Self::compiled().decode(bytes)?)
    }

    /// Decodes the datum at the front of `input` and moves `input` past it,
    /// for datums that follow one another (in an object container file's
    /// block, say).
    fn read_avro_datum(input: &mut &[u8]) -> Result<Self, AvroError> {
        Self::from_avro_value(Self::compiled().decode_prefix(input)?)
    }

    /// Avro single-object encoding: `C3 01`, the schema fingerprint as 8
    /// little-endian bytes, then the datum.
    fn to_single_object(&self) -> Result<Vec<u8>, AvroError> {
        let c = Self::compiled();
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(&SINGLE_OBJECT_MARKER);
        out.extend_from_slice(&c.fingerprint.to_le_bytes());
        self.write_datum(&mut out)?;
        Ok(out)
    }

    /// Checks the marker and that the fingerprint is this type's schema
    /// before decoding the datum.
    fn from_single_object(bytes: &[u8]) -> Result<Self, AvroError> {
        let c = Self::compiled();
        let found = single_object_fingerprint(bytes)?;
        if found != c.fingerprint {
            return match Self::earlier().iter().find(|e| e.fingerprint == found) {
                Some(writer) => Self::from_avro_value(writer.decode_into(&bytes[SINGLE_OBJECT_HEADER_LEN..], c)?),
                None => Err(AvroError::Fingerprint { record: c.record, expected: c.fingerprint, found }),
            };
        }
        Self::from_avro_datum(&bytes[SINGLE_OBJECT_HEADER_LEN..])
    }
}
