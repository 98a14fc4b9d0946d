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

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::OnceLock;

use apache_avro::schema::{Name, Namespace, ResolvedSchema, Schema};
use apache_avro::types::Value;
use chrono::{DateTime, Datelike, NaiveDate, Utc};

use crate::types::*;

/// Why a record could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AvroError {
    /// A field of a decoded value is missing, has the wrong type, or holds a
    /// value the Rust type cannot represent. `field` is a path for nested
    /// values, e.g. `enrollments[1].meetings[0].start`.
    #[error("field `{field}` of {record}: {message}")]
    Field {
        record: &'static str,
        field: String,
        message: String,
    },
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
    Fingerprint {
        record: &'static str,
        expected: u64,
        found: u64,
    },
}

/// The two bytes that open an Avro single-object encoding.
pub const SINGLE_OBJECT_MARKER: [u8; 2] = [0xC3, 0x01];
/// Marker plus the 8-byte schema fingerprint.
pub const SINGLE_OBJECT_HEADER_LEN: usize = 10;

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
            return Err(AvroError::Fingerprint {
                record: c.record,
                expected: c.fingerprint,
                found,
            });
        }
        Self::from_avro_datum(&bytes[SINGLE_OBJECT_HEADER_LEN..])
    }
}

/// The schema fingerprint in a single-object header, so a consumer can tell
/// which record type (and schema version) a message carries before decoding.
pub fn single_object_fingerprint(bytes: &[u8]) -> Result<u64, AvroError> {
    if bytes.len() < SINGLE_OBJECT_HEADER_LEN {
        return Err(AvroError::Header(format!(
            "{} bytes is shorter than the {SINGLE_OBJECT_HEADER_LEN}-byte header",
            bytes.len()
        )));
    }
    if bytes[..2] != SINGLE_OBJECT_MARKER {
        return Err(AvroError::Header(format!(
            "expected marker C3 01, found {:02X} {:02X}",
            bytes[0], bytes[1]
        )));
    }
    let mut fp = [0u8; 8];
    fp.copy_from_slice(&bytes[2..SINGLE_OBJECT_HEADER_LEN]);
    Ok(u64::from_le_bytes(fp))
}

// ---------------------------------------------------------------------------
// CRC-64-AVRO (Rabin) fingerprint, as given in the Avro specification.

const RABIN_EMPTY: u64 = 0xc15d_213a_a4d7_a795;

const RABIN_TABLE: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut fp = i as u64;
        let mut j = 0;
        while j < 8 {
            fp = (fp >> 1) ^ (RABIN_EMPTY & (fp & 1).wrapping_neg());
            j += 1;
        }
        table[i] = fp;
        i += 1;
    }
    table
};

/// The CRC-64-AVRO fingerprint of `bytes` (for schemas: of their Parsing
/// Canonical Form).
pub fn rabin_fingerprint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(RABIN_EMPTY, |fp, &b| {
        (fp >> 8) ^ RABIN_TABLE[((fp ^ b as u64) & 0xff) as usize]
    })
}

// ---------------------------------------------------------------------------
// Parsed schemas.

/// The schema's Parsing Canonical Form, as the Avro specification defines
/// it: full names, only the attributes that define the binary layout (no
/// `doc`, `default`, `logicalType`, ...), in a fixed order, no whitespace.
/// Written here rather than taken from the apache-avro crate, whose form
/// keeps `logicalType` and so gives other fingerprints than the Java library
/// and the specification for our timestamp and date fields.
pub fn parsing_canonical_form(schema: &serde_json::Value, namespace: Option<&str>) -> String {
    use serde_json::Value as J;
    const PRIMITIVES: [&str; 8] = ["null", "boolean", "int", "long", "float", "double", "bytes", "string"];
    let quote = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    let full = |name: &str, ns: Option<&str>| match ns {
        Some(ns) if !name.contains('.') && !ns.is_empty() => format!("{ns}.{name}"),
        _ => name.to_string(),
    };
    match schema {
        J::String(s) if PRIMITIVES.contains(&s.as_str()) => quote(s),
        J::String(s) => quote(&full(s, namespace)),
        J::Array(items) => {
            let parts: Vec<String> = items.iter().map(|i| parsing_canonical_form(i, namespace)).collect();
            format!("[{}]", parts.join(","))
        }
        J::Object(o) => {
            let t = o.get("type").cloned().unwrap_or(J::Null);
            let t_str = t.as_str().unwrap_or("");
            match t_str {
                "record" | "error" | "enum" | "fixed" => {
                    let name = o.get("name").and_then(J::as_str).unwrap_or("");
                    let ns = o.get("namespace").and_then(J::as_str).or(namespace);
                    let name = full(name, ns);
                    let inner_ns = name.rsplit_once('.').map(|(n, _)| n.to_string());
                    let mut out = format!("{{\"name\":{},\"type\":{}", quote(&name), quote(t_str));
                    if let Some(J::Array(fields)) = o.get("fields") {
                        let fs: Vec<String> = fields
                            .iter()
                            .map(|f| {
                                let fname = f.get("name").and_then(J::as_str).unwrap_or("");
                                let ftype = f.get("type").cloned().unwrap_or(J::Null);
                                format!(
                                    "{{\"name\":{},\"type\":{}}}",
                                    quote(fname),
                                    parsing_canonical_form(&ftype, inner_ns.as_deref())
                                )
                            })
                            .collect();
                        out.push_str(&format!(",\"fields\":[{}]", fs.join(",")));
                    }
                    if let Some(J::Array(symbols)) = o.get("symbols") {
                        let ss: Vec<String> = symbols.iter().map(|x| x.to_string()).collect();
                        out.push_str(&format!(",\"symbols\":[{}]", ss.join(",")));
                    }
                    if let Some(size) = o.get("size") {
                        out.push_str(&format!(",\"size\":{size}"));
                    }
                    out.push('}');
                    out
                }
                "array" => format!(
                    "{{\"type\":\"array\",\"items\":{}}}",
                    parsing_canonical_form(o.get("items").unwrap_or(&J::Null), namespace)
                ),
                "map" => format!(
                    "{{\"type\":\"map\",\"values\":{}}}",
                    parsing_canonical_form(o.get("values").unwrap_or(&J::Null), namespace)
                ),
                // A primitive (perhaps with a logical type) or a nested type.
                _ => parsing_canonical_form(&t, namespace),
            }
        }
        other => other.to_string(),
    }
}

/// A record type's parsed schema, with its named types resolved (for the
/// `Weekday` reference in `ModeSpan`, say) and its fingerprint.
pub struct CompiledSchema {
    record: &'static str,
    schema: Schema,
    names: HashMap<Name, Schema>,
    fingerprint: u64,
}

impl CompiledSchema {
    /// The embedded schema texts are part of the build, so a failure here is
    /// a defect caught by the tests, not a runtime condition.
    fn parse(record: &'static str, file: &str, text: &str) -> CompiledSchema {
        let schema =
            Schema::parse_str(text).unwrap_or_else(|e| panic!("schemas/{file} is not a valid Avro schema: {e}"));
        let names = ResolvedSchema::try_from(&schema)
            .unwrap_or_else(|e| panic!("schemas/{file}: cannot resolve named types: {e}"))
            .get_names()
            .iter()
            .map(|(n, s)| (n.clone(), (*s).clone()))
            .collect();
        let json: serde_json::Value =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("schemas/{file} is not JSON: {e}"));
        let fingerprint = rabin_fingerprint(parsing_canonical_form(&json, None).as_bytes());
        CompiledSchema {
            record,
            schema,
            names,
            fingerprint,
        }
    }

    fn encode(&self, value: &Value, out: &mut Vec<u8>) -> Result<(), AvroError> {
        encode_value(self, &self.schema, &None, value, out)
            .map_err(|e| AvroError::Encode(format!("{}: {e}", self.record)))
    }

    /// Decodes exactly one datum: the input must end where the datum does.
    fn decode(&self, bytes: &[u8]) -> Result<Value, AvroError> {
        let mut input = bytes;
        let value = self.decode_prefix(&mut input)?;
        if !input.is_empty() {
            return Err(AvroError::Decode(format!(
                "{}: {} unexpected bytes after the end of the datum",
                self.record,
                input.len()
            )));
        }
        Ok(value)
    }

    /// Decodes the datum at the front of `input`, leaving the rest.
    fn decode_prefix(&self, input: &mut &[u8]) -> Result<Value, AvroError> {
        decode_value(self, &self.schema, &None, input).map_err(|e| AvroError::Decode(format!("{}: {e}", self.record)))
    }

    fn resolve<'a>(&'a self, schema: &'a Schema, ns: &Namespace) -> Result<&'a Schema, CodecError> {
        match schema {
            Schema::Ref { name } => self
                .names
                .get(name)
                .or_else(|| self.names.get(&name.fully_qualified_name(ns)))
                .ok_or_else(|| {
                    CodecError::new(format!("schema refers to unknown type `{}`", name.fullname(ns.clone())))
                }),
            s => Ok(s),
        }
    }
}

// ---------------------------------------------------------------------------
// Binary codec over the parsed schema. Only the schema types the rollcall
// schemas use are supported; anything else is reported, not guessed at.

/// A codec error with the path to where it happened, built while unwinding.
#[derive(Debug)]
struct CodecError {
    path: String,
    message: String,
}

impl CodecError {
    fn new(message: impl Into<String>) -> Self {
        CodecError {
            path: String::new(),
            message: message.into(),
        }
    }

    /// Prefixes a path segment: a field name, or `[i]` for an array item.
    fn within(mut self, segment: &str) -> Self {
        self.path = if self.path.is_empty() || self.path.starts_with('[') {
            format!("{segment}{}", self.path)
        } else {
            format!("{segment}.{}", self.path)
        };
        self
    }
}

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "at `{}`: {}", self.path, self.message)
        }
    }
}

fn record_namespace(name: &Name, ns: &Namespace) -> Namespace {
    name.fully_qualified_name(ns).namespace
}

fn write_long(n: i64, out: &mut Vec<u8>) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn write_bytes(b: &[u8], out: &mut Vec<u8>) {
    write_long(b.len() as i64, out);
    out.extend_from_slice(b);
}

fn mismatch(expected: &str, found: &Value) -> CodecError {
    CodecError::new(format!("expected {expected}, found {}", describe(found)))
}

fn encode_value(
    c: &CompiledSchema,
    schema: &Schema,
    ns: &Namespace,
    value: &Value,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    match (c.resolve(schema, ns)?, value) {
        (Schema::Null, Value::Null) => {}
        (Schema::Boolean, Value::Boolean(b)) => out.push(*b as u8),
        (Schema::Int, Value::Int(n)) | (Schema::Date, Value::Date(n)) => write_long(*n as i64, out),
        (Schema::Long, Value::Long(n)) | (Schema::TimestampMicros, Value::TimestampMicros(n)) => write_long(*n, out),
        (Schema::String, Value::String(s)) => write_bytes(s.as_bytes(), out),
        (Schema::Bytes, Value::Bytes(b)) => write_bytes(b, out),
        (Schema::Enum(e), Value::Enum(i, symbol)) => match e.symbols.get(*i as usize) {
            Some(s) if s == symbol => write_long(*i as i64, out),
            _ => {
                return Err(CodecError::new(format!(
                    "enum {} has no symbol `{symbol}` at position {i}",
                    e.name.name
                )))
            }
        },
        (Schema::Union(u), Value::Union(i, inner)) => {
            let variant = u
                .variants()
                .get(*i as usize)
                .ok_or_else(|| CodecError::new(format!("union has no branch {i}")))?;
            write_long(*i as i64, out);
            encode_value(c, variant, ns, inner, out)?;
        }
        (Schema::Array(a), Value::Array(items)) => {
            if !items.is_empty() {
                write_long(items.len() as i64, out);
                for (i, item) in items.iter().enumerate() {
                    encode_value(c, &a.items, ns, item, out).map_err(|e| e.within(&format!("[{i}]")))?;
                }
            }
            out.push(0);
        }
        (Schema::Map(m), Value::Map(entries)) => {
            if !entries.is_empty() {
                // Sorted so that equal records always encode to equal bytes.
                let mut sorted: Vec<_> = entries.iter().collect();
                sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
                write_long(sorted.len() as i64, out);
                for (k, v) in sorted {
                    write_bytes(k.as_bytes(), out);
                    encode_value(c, &m.types, ns, v, out).map_err(|e| e.within(&format!("[{k:?}]")))?;
                }
            }
            out.push(0);
        }
        (Schema::Record(r), Value::Record(fields)) => {
            let inner_ns = record_namespace(&r.name, ns);
            if fields.len() != r.fields.len() {
                let extra: Vec<&str> = fields
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .filter(|n| !r.fields.iter().any(|f| f.name == *n))
                    .collect();
                if !extra.is_empty() {
                    return Err(CodecError::new(format!(
                        "{} has no field(s) {}",
                        r.name.name,
                        extra.join(", ")
                    )));
                }
            }
            for f in &r.fields {
                let v = fields
                    .iter()
                    .find(|(n, _)| *n == f.name)
                    .map(|(_, v)| v)
                    .ok_or_else(|| CodecError::new("missing").within(&f.name))?;
                encode_value(c, &f.schema, &inner_ns, v, out).map_err(|e| e.within(&f.name))?;
            }
        }
        (s, v) => return Err(mismatch(&schema_kind(s), v)),
    }
    Ok(())
}

fn truncated(what: &str) -> CodecError {
    CodecError::new(format!("input ends in the middle of {what} (truncated datum)"))
}

fn read_long(input: &mut &[u8]) -> Result<i64, CodecError> {
    let mut acc: u64 = 0;
    for i in 0..10 {
        let (&b, rest) = input.split_first().ok_or_else(|| truncated("a varint"))?;
        *input = rest;
        // The tenth byte holds bit 63 only; anything more overflows 64 bits.
        if i == 9 && b > 1 {
            return Err(CodecError::new("varint overflows 64 bits"));
        }
        acc |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((acc >> 1) as i64 ^ -((acc & 1) as i64));
        }
    }
    Err(CodecError::new("varint overflows 64 bits"))
}

fn read_int(input: &mut &[u8]) -> Result<i32, CodecError> {
    let n = read_long(input)?;
    i32::try_from(n).map_err(|_| CodecError::new(format!("{n} does not fit an Avro int")))
}

fn read_bytes<'a>(input: &mut &'a [u8], what: &str) -> Result<&'a [u8], CodecError> {
    let n = read_long(input)?;
    let len = usize::try_from(n).map_err(|_| CodecError::new(format!("negative {what} length {n}")))?;
    if len > input.len() {
        return Err(truncated(&format!("a {len}-byte {what} ({} bytes left)", input.len())));
    }
    let (b, rest) = input.split_at(len);
    *input = rest;
    Ok(b)
}

/// Reads one block header of an array or map: the item count, or `None` at
/// the terminating empty block. A negative count is followed by the block's
/// size in bytes, which we do not need.
///
/// Every array item and map entry in our schemas takes at least one byte, so
/// a count larger than the bytes left is corrupt; refusing it here is what
/// keeps a bad count from reserving gigabytes.
fn read_block_count(input: &mut &[u8], what: &str) -> Result<Option<usize>, CodecError> {
    let n = read_long(input)?;
    if n == 0 {
        return Ok(None);
    }
    if n < 0 {
        let size = read_long(input)?;
        if size < 0 {
            return Err(CodecError::new(format!("negative {what} block size {size}")));
        }
    }
    let count = n.unsigned_abs();
    if count > input.len() as u64 {
        return Err(CodecError::new(format!(
            "{what} block claims {count} items but only {} bytes are left (truncated or corrupt datum)",
            input.len()
        )));
    }
    Ok(Some(count as usize))
}

fn decode_value(c: &CompiledSchema, schema: &Schema, ns: &Namespace, input: &mut &[u8]) -> Result<Value, CodecError> {
    Ok(match c.resolve(schema, ns)? {
        Schema::Null => Value::Null,
        Schema::Boolean => {
            let (&b, rest) = input.split_first().ok_or_else(|| truncated("a boolean"))?;
            *input = rest;
            match b {
                0 => Value::Boolean(false),
                1 => Value::Boolean(true),
                _ => return Err(CodecError::new(format!("boolean byte is {b}, not 0 or 1"))),
            }
        }
        Schema::Int => Value::Int(read_int(input)?),
        Schema::Date => Value::Date(read_int(input)?),
        Schema::Long => Value::Long(read_long(input)?),
        Schema::TimestampMicros => Value::TimestampMicros(read_long(input)?),
        Schema::Bytes => Value::Bytes(read_bytes(input, "bytes value")?.to_vec()),
        Schema::String => Value::String(read_string(input)?),
        Schema::Enum(e) => {
            let i = read_long(input)?;
            let symbol = usize::try_from(i).ok().and_then(|i| e.symbols.get(i)).ok_or_else(|| {
                CodecError::new(format!(
                    "enum index {i} is out of range for {} ({} symbols)",
                    e.name.name,
                    e.symbols.len()
                ))
            })?;
            Value::Enum(i as u32, symbol.clone())
        }
        Schema::Union(u) => {
            let i = read_long(input)?;
            let variant = usize::try_from(i)
                .ok()
                .and_then(|i| u.variants().get(i))
                .ok_or_else(|| {
                    CodecError::new(format!(
                        "union branch {i} is out of range ({} branches)",
                        u.variants().len()
                    ))
                })?;
            Value::Union(i as u32, Box::new(decode_value(c, variant, ns, input)?))
        }
        Schema::Array(a) => {
            let mut items = Vec::new();
            while let Some(count) = read_block_count(input, "array")? {
                items.reserve(count);
                for _ in 0..count {
                    let at = items.len();
                    items.push(decode_value(c, &a.items, ns, input).map_err(|e| e.within(&format!("[{at}]")))?);
                }
            }
            Value::Array(items)
        }
        Schema::Map(m) => {
            let mut entries = HashMap::new();
            while let Some(count) = read_block_count(input, "map")? {
                entries.reserve(count);
                for _ in 0..count {
                    let key = read_string(input)?;
                    let v = decode_value(c, &m.types, ns, input).map_err(|e| e.within(&format!("[{key:?}]")))?;
                    // A repeated key would make the record ambiguous.
                    if entries.insert(key.clone(), v).is_some() {
                        return Err(CodecError::new(format!("map key {key:?} appears twice")));
                    }
                }
            }
            Value::Map(entries)
        }
        Schema::Record(r) => {
            let inner_ns = record_namespace(&r.name, ns);
            let mut fields = Vec::with_capacity(r.fields.len());
            for f in &r.fields {
                let v = decode_value(c, &f.schema, &inner_ns, input).map_err(|e| e.within(&f.name))?;
                fields.push((f.name.clone(), v));
            }
            Value::Record(fields)
        }
        other => {
            return Err(CodecError::new(format!(
                "schema type {} is not supported",
                schema_kind(other)
            )))
        }
    })
}

fn read_string(input: &mut &[u8]) -> Result<String, CodecError> {
    let b = read_bytes(input, "string")?;
    String::from_utf8(b.to_vec()).map_err(|e| CodecError::new(format!("string is not valid UTF-8: {e}")))
}

fn schema_kind(s: &Schema) -> String {
    match s {
        Schema::Record(r) => format!("record {}", r.name.name),
        Schema::Enum(e) => format!("enum {}", e.name.name),
        Schema::Union(u) => format!(
            "union [{}]",
            u.variants().iter().map(schema_kind).collect::<Vec<_>>().join(", ")
        ),
        Schema::Ref { name } => name.name.clone(),
        other => format!("{:?}", apache_avro::schema::SchemaKind::from(other)).to_lowercase(),
    }
}

/// A short description of a value for error messages.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Boolean(b) => format!("boolean {b}"),
        Value::Int(n) => format!("int {n}"),
        Value::Long(n) => format!("long {n}"),
        Value::String(s) if s.len() <= 40 => format!("string {s:?}"),
        Value::String(_) => "a string".into(),
        Value::Bytes(b) => format!("{} bytes", b.len()),
        Value::Enum(i, s) => format!("enum symbol `{s}` (position {i})"),
        Value::Union(i, inner) => format!("union branch {i} holding {}", describe(inner)),
        Value::Array(a) => format!("array of {} items", a.len()),
        Value::Map(m) => format!("map of {} entries", m.len()),
        Value::Record(f) => format!("record with {} fields", f.len()),
        Value::Date(d) => format!("date {d}"),
        Value::TimestampMicros(t) => format!("timestamp-micros {t}"),
        other => format!("{other:?}").chars().take(60).collect(),
    }
}

// ---------------------------------------------------------------------------
// Rust -> Value.

/// Implemented for the wire enums so one generic function handles them all.
trait WireEnum: Copy + FromStr<Err = UnknownSymbol> {
    fn position(self) -> u8;
    fn symbol(self) -> &'static str;
}

macro_rules! wire_enums {
    ($($t:ty),+) => {$(
        impl WireEnum for $t {
            fn position(self) -> u8 { self.index() }
            fn symbol(self) -> &'static str { self.as_str() }
        }
    )+};
}

wire_enums!(
    ActivityKind,
    Direction,
    CourseType,
    Weekday,
    Mode,
    DayType,
    AbsenceReason,
    Reporter,
    Scope,
    Status,
    AttendanceType,
    Finality,
    OutreachKind,
    RecipientRole
);

fn v_str(s: &str) -> Value {
    Value::String(s.to_owned())
}

fn v_enum<E: WireEnum>(e: E) -> Value {
    Value::Enum(e.position() as u32, e.symbol().to_owned())
}

/// Avro carries microseconds; sub-microsecond digits are dropped.
fn v_timestamp(t: &DateTime<Utc>) -> Value {
    Value::TimestampMicros(t.timestamp_micros())
}

/// Days from 0001-01-01 (day 1 of the common era) to 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

fn v_date(d: NaiveDate) -> Value {
    Value::Date(d.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE)
}

fn v_opt<T>(o: Option<T>, f: impl FnOnce(T) -> Value) -> Value {
    match o {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(x) => Value::Union(1, Box::new(f(x))),
    }
}

fn v_array<T>(items: &[T], f: impl Fn(&T) -> Value) -> Value {
    Value::Array(items.iter().map(f).collect())
}

fn v_strings(items: &[String]) -> Value {
    v_array(items, |s| v_str(s))
}

fn v_record<const N: usize>(fields: [(&str, Value); N]) -> Value {
    Value::Record(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

// ---------------------------------------------------------------------------
// Value -> Rust. Converters return an `Issue` (a message, with a path suffix
// for nested values); `Fields` turns it into an `AvroError::Field` naming the
// record and field.

struct Issue {
    path: String,
    message: String,
}

impl From<String> for Issue {
    fn from(message: String) -> Self {
        Issue {
            path: String::new(),
            message,
        }
    }
}

impl Issue {
    fn within(mut self, segment: String) -> Self {
        self.path = format!("{segment}{}", self.path);
        self
    }
}

fn wrong(expected: &str, found: &Value) -> Issue {
    format!("expected {expected}, found {}", describe(found)).into()
}

/// The fields of a record value, taken out one by one by name.
struct Fields {
    record: &'static str,
    fields: Vec<(String, Value)>,
}

impl Fields {
    fn of(record: &'static str, v: Value) -> Result<Fields, AvroError> {
        match v {
            Value::Record(fields) => Ok(Fields { record, fields }),
            other => Err(AvroError::Record {
                record,
                message: format!("expected a record, found {}", describe(&other)),
            }),
        }
    }

    fn get<T>(&mut self, name: &str, conv: impl FnOnce(Value) -> Result<T, Issue>) -> Result<T, AvroError> {
        let record = self.record;
        let at = self
            .fields
            .iter()
            .position(|(n, _)| n == name)
            .ok_or_else(|| AvroError::Field {
                record,
                field: name.to_owned(),
                message: "missing".into(),
            })?;
        let (_, v) = self.fields.swap_remove(at);
        conv(v).map_err(|i| AvroError::Field {
            record,
            field: format!("{name}{}", i.path),
            message: i.message,
        })
    }

    /// Refuses fields the record does not have, so a value built for another
    /// schema version is not half-read.
    fn finish(self) -> Result<(), AvroError> {
        match self.fields.first() {
            None => Ok(()),
            Some((n, _)) => Err(AvroError::Field {
                record: self.record,
                field: n.clone(),
                message: format!("{} has no such field", self.record),
            }),
        }
    }
}

fn as_string(v: Value) -> Result<String, Issue> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(wrong("string", &other)),
    }
}

fn as_bool(v: Value) -> Result<bool, Issue> {
    match v {
        Value::Boolean(b) => Ok(b),
        other => Err(wrong("boolean", &other)),
    }
}

fn as_int(v: Value) -> Result<i32, Issue> {
    match v {
        Value::Int(n) => Ok(n),
        other => Err(wrong("int", &other)),
    }
}

fn as_long(v: Value) -> Result<i64, Issue> {
    match v {
        Value::Long(n) => Ok(n),
        other => Err(wrong("long", &other)),
    }
}

fn as_bytes(v: Value) -> Result<Vec<u8>, Issue> {
    match v {
        Value::Bytes(b) => Ok(b),
        other => Err(wrong("bytes", &other)),
    }
}

fn as_timestamp(v: Value) -> Result<DateTime<Utc>, Issue> {
    match v {
        Value::TimestampMicros(us) => DateTime::from_timestamp_micros(us)
            .ok_or_else(|| format!("timestamp {us} µs since the epoch is out of range").into()),
        other => Err(wrong("timestamp-micros", &other)),
    }
}

fn as_date(v: Value) -> Result<NaiveDate, Issue> {
    match v {
        Value::Date(days) => days
            .checked_add(UNIX_EPOCH_DAYS_FROM_CE)
            .and_then(NaiveDate::from_num_days_from_ce_opt)
            .ok_or_else(|| format!("date {days} days from 1970-01-01 is out of range").into()),
        other => Err(wrong("date", &other)),
    }
}

fn as_local_time(v: Value) -> Result<LocalTime, Issue> {
    Ok(as_string(v)?.parse::<LocalTime>()?)
}

fn as_grade(v: Value) -> Result<GradeLevel, Issue> {
    as_string(v)?.parse::<GradeLevel>().map_err(|e| e.to_string().into())
}

/// The symbol decides; the position must agree with it, since a mismatch
/// means the value was built against a different symbol list.
fn as_enum<E: WireEnum>(v: Value) -> Result<E, Issue> {
    match v {
        Value::Enum(i, s) => {
            let e = s.parse::<E>().map_err(|e| e.to_string())?;
            if e.position() as u32 != i {
                return Err(format!(
                    "symbol `{s}` is at position {i} in the value but {} in the schema",
                    e.position()
                )
                .into());
            }
            Ok(e)
        }
        other => Err(wrong("enum", &other)),
    }
}

/// An `["null", T]` union.
fn optional<T>(conv: impl FnOnce(Value) -> Result<T, Issue>) -> impl FnOnce(Value) -> Result<Option<T>, Issue> {
    move |v| match v {
        Value::Union(0, inner) => match *inner {
            Value::Null => Ok(None),
            other => Err(wrong("null in union branch 0", &other)),
        },
        Value::Union(1, inner) => conv(*inner).map(Some),
        other => Err(wrong("a union [null, ...]", &other)),
    }
}

fn array_of<T>(conv: impl Fn(Value) -> Result<T, Issue>) -> impl FnOnce(Value) -> Result<Vec<T>, Issue> {
    move |v| match v {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| conv(item).map_err(|e| e.within(format!("[{i}]"))))
            .collect(),
        other => Err(wrong("array", &other)),
    }
}

fn as_string_map(v: Value) -> Result<BTreeMap<String, String>, Issue> {
    match v {
        Value::Map(m) => m
            .into_iter()
            .map(|(k, v)| match as_string(v) {
                Ok(s) => Ok((k, s)),
                Err(e) => Err(e.within(format!("[{k:?}]"))),
            })
            .collect(),
        other => Err(wrong("map", &other)),
    }
}

/// A nested record, whose own field errors become a path below ours.
fn nested<T>(from: fn(Value) -> Result<T, AvroError>) -> impl Fn(Value) -> Result<T, Issue> {
    move |v| {
        from(v).map_err(|e| match e {
            AvroError::Field { field, message, .. } => Issue {
                path: format!(".{field}"),
                message,
            },
            AvroError::Record { message, .. } => message.into(),
            other => other.to_string().into(),
        })
    }
}

// ---------------------------------------------------------------------------
// The records.

macro_rules! avro_record {
    ($t:ident, $file:literal, $to:ident, $from:ident, direct: $direct:expr) => {
        avro_record!(@impl $t, $file, $to, $from, fn decode_direct(datum: &[u8]) -> Option<Self> { $direct(datum) });
    };
    ($t:ident, $file:literal, $to:ident, $from:ident, direct_encoder: $direct:expr) => {
        avro_record!(@impl $t, $file, $to, $from, fn encode_direct(&self, out: &mut Vec<u8>) -> bool { $direct(self, out); true });
    };
    ($t:ident, $file:literal, $to:ident, $from:ident) => {
        avro_record!(@impl $t, $file, $to, $from,);
    };
    (@impl $t:ident, $file:literal, $to:ident, $from:ident, $($direct:item)?) => {
        impl AvroRecord for $t {
            const SCHEMA_FILE: &'static str = $file;

            fn compiled() -> &'static CompiledSchema {
                static COMPILED: OnceLock<CompiledSchema> = OnceLock::new();
                COMPILED.get_or_init(|| {
                    CompiledSchema::parse(
                        stringify!($t),
                        $file,
                        include_str!(concat!("../../../schemas/", $file)),
                    )
                })
            }

            fn to_avro_value(&self) -> Value {
                $to(self)
            }

            fn from_avro_value(v: Value) -> Result<Self, AvroError> {
                $from(v)
            }

            $($direct)?
        }
    };
}

avro_record!(
    ActivityEvent,
    "activity_event.avsc",
    activity_event_to,
    activity_event_from,
    direct: activity_event_direct
);

/// ActivityEvent straight from its datum, in the schema's field order,
/// without the generic value tree (which names every field and allocates
/// for each): events are nearly every record the processor reads. A test
/// checks the order against the schema file, and the fuzz target
/// `single_object` that this agrees with the generic decoder.
fn activity_event_direct(datum: &[u8]) -> Option<ActivityEvent> {
    fn string(input: &mut &[u8]) -> Option<String> {
        read_string(input).ok()
    }
    fn branch(input: &mut &[u8]) -> Option<bool> {
        match read_long(input).ok()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
    fn opt<T>(input: &mut &[u8], read: impl FnOnce(&mut &[u8]) -> Option<T>) -> Option<Option<T>> {
        if branch(input)? {
            read(input).map(Some)
        } else {
            Some(None)
        }
    }
    fn symbol<E: WireEnum>(input: &mut &[u8], from: fn(u8) -> Option<E>) -> Option<E> {
        from(u8::try_from(read_long(input).ok()?).ok()?)
    }
    let input = &mut &datum[..];
    let event_id = string(input)?;
    let source = string(input)?;
    let student_id = string(input)?;
    let school_id = string(input)?;
    let section_id = opt(input, string)?;
    let staff_id = opt(input, string)?;
    let kind = symbol(input, ActivityKind::from_index)?;
    let direction = opt(input, |i| symbol(i, Direction::from_index))?;
    let occurred_at = DateTime::from_timestamp_micros(read_long(input).ok()?)?;
    let assigned_date = opt(input, |i| {
        read_int(i).ok()?.checked_add(UNIX_EPOCH_DAYS_FROM_CE).and_then(NaiveDate::from_num_days_from_ce_opt)
    })?;
    let live_session_id = opt(input, string)?;
    let duration_seconds = opt(input, |i| read_long(i).ok())?;
    let mut attributes = BTreeMap::new();
    while let Some(count) = read_block_count(input, "map").ok()? {
        for _ in 0..count {
            let key = string(input)?;
            let value = string(input)?;
            if attributes.insert(key, value).is_some() {
                return None;
            }
        }
    }
    if !input.is_empty() {
        return None;
    }
    Some(ActivityEvent {
        event_id,
        source,
        student_id,
        school_id,
        section_id,
        staff_id,
        kind,
        direction,
        occurred_at,
        assigned_date,
        live_session_id,
        duration_seconds,
        attributes,
    })
}
avro_record!(
    StudentRecord,
    "student_record.avsc",
    student_record_to,
    student_record_from
);
avro_record!(
    SchoolCalendar,
    "school_calendar.avsc",
    school_calendar_to,
    school_calendar_from
);
avro_record!(
    AbsenceReport,
    "absence_report.avsc",
    absence_report_to,
    absence_report_from
);
avro_record!(
    Determination,
    "determination.avsc",
    determination_to,
    determination_from,
    direct_encoder: determination_direct
);

/// A determination's datum written straight from the struct, in the
/// schema's field order, as the generic encoder writes it (a test and the
/// `avro_datum` fuzz check compare the two byte for byte): every decided
/// window emits one, and the value tree cost as much as deciding it.
fn determination_direct(d: &Determination, out: &mut Vec<u8>) {
    fn string(s: &str, out: &mut Vec<u8>) {
        write_bytes(s.as_bytes(), out)
    }
    fn opt<T>(v: Option<T>, out: &mut Vec<u8>, write: impl FnOnce(T, &mut Vec<u8>)) {
        match v {
            None => write_long(0, out),
            Some(v) => {
                write_long(1, out);
                write(v, out)
            }
        }
    }
    string(&d.determination_id, out);
    string(&d.student_id, out);
    string(&d.school_id, out);
    write_long(d.scope.position() as i64, out);
    write_long((d.date.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE) as i64, out);
    opt(d.section_id.as_deref(), out, string);
    string(&d.policy, out);
    write_long(d.status.position() as i64, out);
    string(&d.code, out);
    opt(d.attendance_type, out, |t, out| write_long(t.position() as i64, out));
    opt(d.minutes, out, write_long);
    opt(d.contacts, out, |n, out| write_long(n as i64, out));
    opt(d.category.as_deref(), out, string);
    string(&d.rule, out);
    if !d.evidence.is_empty() {
        write_long(d.evidence.len() as i64, out);
        for e in &d.evidence {
            string(e, out);
        }
    }
    out.push(0);
    write_long(d.version as i64, out);
    write_long(d.finality.position() as i64, out);
    write_long(d.decided_at.timestamp_micros(), out);
}
avro_record!(
    OutreachTrigger,
    "outreach_trigger.avsc",
    outreach_trigger_to,
    outreach_trigger_from
);
avro_record!(DeadLetter, "dead_letter.avsc", dead_letter_to, dead_letter_from);

fn activity_event_to(e: &ActivityEvent) -> Value {
    v_record([
        ("event_id", v_str(&e.event_id)),
        ("source", v_str(&e.source)),
        ("student_id", v_str(&e.student_id)),
        ("school_id", v_str(&e.school_id)),
        ("section_id", v_opt(e.section_id.as_deref(), v_str)),
        ("staff_id", v_opt(e.staff_id.as_deref(), v_str)),
        ("kind", v_enum(e.kind)),
        ("direction", v_opt(e.direction, v_enum)),
        ("occurred_at", v_timestamp(&e.occurred_at)),
        ("assigned_date", v_opt(e.assigned_date, v_date)),
        ("live_session_id", v_opt(e.live_session_id.as_deref(), v_str)),
        ("duration_seconds", v_opt(e.duration_seconds, Value::Long)),
        (
            "attributes",
            Value::Map(e.attributes.iter().map(|(k, v)| (k.clone(), v_str(v))).collect()),
        ),
    ])
}

fn activity_event_from(v: Value) -> Result<ActivityEvent, AvroError> {
    let mut f = Fields::of("ActivityEvent", v)?;
    let e = ActivityEvent {
        event_id: f.get("event_id", as_string)?,
        source: f.get("source", as_string)?,
        student_id: f.get("student_id", as_string)?,
        school_id: f.get("school_id", as_string)?,
        section_id: f.get("section_id", optional(as_string))?,
        staff_id: f.get("staff_id", optional(as_string))?,
        kind: f.get("kind", as_enum)?,
        direction: f.get("direction", optional(as_enum))?,
        occurred_at: f.get("occurred_at", as_timestamp)?,
        assigned_date: f.get("assigned_date", optional(as_date))?,
        live_session_id: f.get("live_session_id", optional(as_string))?,
        duration_seconds: f.get("duration_seconds", optional(as_long))?,
        attributes: f.get("attributes", as_string_map)?,
    };
    f.finish()?;
    Ok(e)
}

fn meeting_to(m: &Meeting) -> Value {
    v_record([
        ("weekdays", v_array(&m.weekdays, |d| v_enum(*d))),
        ("start", v_str(&m.start.to_string())),
        ("end", v_str(&m.end.to_string())),
    ])
}

fn meeting_from(v: Value) -> Result<Meeting, AvroError> {
    let mut f = Fields::of("Meeting", v)?;
    let m = Meeting {
        weekdays: f.get("weekdays", array_of(as_enum))?,
        start: f.get("start", as_local_time)?,
        end: f.get("end", as_local_time)?,
    };
    f.finish()?;
    Ok(m)
}

fn enrollment_to(e: &Enrollment) -> Value {
    v_record([
        ("section_id", v_str(&e.section_id)),
        ("staff_id", v_str(&e.staff_id)),
        ("course_type", v_enum(e.course_type)),
        ("specials", Value::Boolean(e.specials)),
        ("dual_enrollment", Value::Boolean(e.dual_enrollment)),
        ("meetings", v_array(&e.meetings, meeting_to)),
    ])
}

fn enrollment_from(v: Value) -> Result<Enrollment, AvroError> {
    let mut f = Fields::of("Enrollment", v)?;
    let e = Enrollment {
        section_id: f.get("section_id", as_string)?,
        staff_id: f.get("staff_id", as_string)?,
        course_type: f.get("course_type", as_enum)?,
        specials: f.get("specials", as_bool)?,
        dual_enrollment: f.get("dual_enrollment", as_bool)?,
        meetings: f.get("meetings", array_of(nested(meeting_from)))?,
    };
    f.finish()?;
    Ok(e)
}

fn mode_span_to(m: &ModeSpan) -> Value {
    v_record([
        ("from", v_date(m.from)),
        ("to", v_date(m.to)),
        ("weekdays", v_array(&m.weekdays, |d| v_enum(*d))),
        ("mode", v_enum(m.mode)),
    ])
}

fn mode_span_from(v: Value) -> Result<ModeSpan, AvroError> {
    let mut f = Fields::of("ModeSpan", v)?;
    let m = ModeSpan {
        from: f.get("from", as_date)?,
        to: f.get("to", as_date)?,
        weekdays: f.get("weekdays", array_of(as_enum))?,
        mode: f.get("mode", as_enum)?,
    };
    f.finish()?;
    Ok(m)
}

fn student_record_to(s: &StudentRecord) -> Value {
    v_record([
        ("student_id", v_str(&s.student_id)),
        ("school_id", v_str(&s.school_id)),
        // A string on the wire: see the schema's doc for why it is not an enum.
        ("grade_level", v_str(s.grade_level.as_str())),
        ("homeroom_section_id", v_opt(s.homeroom_section_id.as_deref(), v_str)),
        ("homeroom_staff_id", v_opt(s.homeroom_staff_id.as_deref(), v_str)),
        ("groups", v_strings(&s.groups)),
        ("enrollments", v_array(&s.enrollments, enrollment_to)),
        ("modes", v_array(&s.modes, mode_span_to)),
    ])
}

fn student_record_from(v: Value) -> Result<StudentRecord, AvroError> {
    let mut f = Fields::of("StudentRecord", v)?;
    let s = StudentRecord {
        student_id: f.get("student_id", as_string)?,
        school_id: f.get("school_id", as_string)?,
        grade_level: f.get("grade_level", as_grade)?,
        homeroom_section_id: f.get("homeroom_section_id", optional(as_string))?,
        homeroom_staff_id: f.get("homeroom_staff_id", optional(as_string))?,
        groups: f.get("groups", array_of(as_string))?,
        enrollments: f.get("enrollments", array_of(nested(enrollment_from)))?,
        modes: f.get("modes", array_of(nested(mode_span_from)))?,
    };
    f.finish()?;
    Ok(s)
}

fn calendar_day_to(d: &CalendarDay) -> Value {
    v_record([
        ("date", v_date(d.date)),
        ("instructional", Value::Boolean(d.instructional)),
        ("day_type", v_enum(d.day_type)),
        ("start", v_str(&d.start.to_string())),
        ("end", v_str(&d.end.to_string())),
    ])
}

fn calendar_day_from(v: Value) -> Result<CalendarDay, AvroError> {
    let mut f = Fields::of("CalendarDay", v)?;
    let d = CalendarDay {
        date: f.get("date", as_date)?,
        instructional: f.get("instructional", as_bool)?,
        day_type: f.get("day_type", as_enum)?,
        start: f.get("start", as_local_time)?,
        end: f.get("end", as_local_time)?,
    };
    f.finish()?;
    Ok(d)
}

fn school_calendar_to(c: &SchoolCalendar) -> Value {
    v_record([
        ("school_id", v_str(&c.school_id)),
        ("timezone", v_str(&c.timezone)),
        ("policy", v_str(&c.policy)),
        ("days", v_array(&c.days, calendar_day_to)),
    ])
}

fn school_calendar_from(v: Value) -> Result<SchoolCalendar, AvroError> {
    let mut f = Fields::of("SchoolCalendar", v)?;
    let c = SchoolCalendar {
        school_id: f.get("school_id", as_string)?,
        timezone: f.get("timezone", as_string)?,
        policy: f.get("policy", as_string)?,
        days: f.get("days", array_of(nested(calendar_day_from)))?,
    };
    f.finish()?;
    Ok(c)
}

fn absence_report_to(r: &AbsenceReport) -> Value {
    v_record([
        ("report_id", v_str(&r.report_id)),
        ("student_id", v_str(&r.student_id)),
        ("date", v_date(r.date)),
        ("reported_at", v_timestamp(&r.reported_at)),
        ("reason", v_enum(r.reason)),
        ("reporter", v_enum(r.reporter)),
    ])
}

fn absence_report_from(v: Value) -> Result<AbsenceReport, AvroError> {
    let mut f = Fields::of("AbsenceReport", v)?;
    let r = AbsenceReport {
        report_id: f.get("report_id", as_string)?,
        student_id: f.get("student_id", as_string)?,
        date: f.get("date", as_date)?,
        reported_at: f.get("reported_at", as_timestamp)?,
        reason: f.get("reason", as_enum)?,
        reporter: f.get("reporter", as_enum)?,
    };
    f.finish()?;
    Ok(r)
}

fn determination_to(d: &Determination) -> Value {
    v_record([
        ("determination_id", v_str(&d.determination_id)),
        ("student_id", v_str(&d.student_id)),
        ("school_id", v_str(&d.school_id)),
        ("scope", v_enum(d.scope)),
        ("date", v_date(d.date)),
        ("section_id", v_opt(d.section_id.as_deref(), v_str)),
        ("policy", v_str(&d.policy)),
        ("status", v_enum(d.status)),
        ("code", v_str(&d.code)),
        ("attendance_type", v_opt(d.attendance_type, v_enum)),
        ("minutes", v_opt(d.minutes, Value::Long)),
        ("contacts", v_opt(d.contacts, Value::Int)),
        ("category", v_opt(d.category.as_deref(), v_str)),
        ("rule", v_str(&d.rule)),
        ("evidence", v_strings(&d.evidence)),
        ("version", Value::Int(d.version)),
        ("finality", v_enum(d.finality)),
        ("decided_at", v_timestamp(&d.decided_at)),
    ])
}

fn determination_from(v: Value) -> Result<Determination, AvroError> {
    let mut f = Fields::of("Determination", v)?;
    let d = Determination {
        determination_id: f.get("determination_id", as_string)?,
        student_id: f.get("student_id", as_string)?,
        school_id: f.get("school_id", as_string)?,
        scope: f.get("scope", as_enum)?,
        date: f.get("date", as_date)?,
        section_id: f.get("section_id", optional(as_string))?,
        policy: f.get("policy", as_string)?,
        status: f.get("status", as_enum)?,
        code: f.get("code", as_string)?,
        attendance_type: f.get("attendance_type", optional(as_enum))?,
        minutes: f.get("minutes", optional(as_long))?,
        contacts: f.get("contacts", optional(as_int))?,
        category: f.get("category", optional(as_string))?,
        rule: f.get("rule", as_string)?,
        evidence: f.get("evidence", array_of(as_string))?,
        version: f.get("version", as_int)?,
        finality: f.get("finality", as_enum)?,
        decided_at: f.get("decided_at", as_timestamp)?,
    };
    f.finish()?;
    Ok(d)
}

fn outreach_trigger_to(t: &OutreachTrigger) -> Value {
    v_record([
        ("trigger_id", v_str(&t.trigger_id)),
        ("student_id", v_str(&t.student_id)),
        ("school_id", v_str(&t.school_id)),
        ("kind", v_enum(t.kind)),
        ("recipient_role", v_enum(t.recipient_role)),
        ("staff_id", v_opt(t.staff_id.as_deref(), v_str)),
        ("section_id", v_opt(t.section_id.as_deref(), v_str)),
        ("window_start", v_date(t.window_start)),
        ("window_end", v_date(t.window_end)),
        ("reason", v_str(&t.reason)),
        ("evidence", v_strings(&t.evidence)),
        ("policy", v_str(&t.policy)),
        ("created_at", v_timestamp(&t.created_at)),
    ])
}

fn outreach_trigger_from(v: Value) -> Result<OutreachTrigger, AvroError> {
    let mut f = Fields::of("OutreachTrigger", v)?;
    let t = OutreachTrigger {
        trigger_id: f.get("trigger_id", as_string)?,
        student_id: f.get("student_id", as_string)?,
        school_id: f.get("school_id", as_string)?,
        kind: f.get("kind", as_enum)?,
        recipient_role: f.get("recipient_role", as_enum)?,
        staff_id: f.get("staff_id", optional(as_string))?,
        section_id: f.get("section_id", optional(as_string))?,
        window_start: f.get("window_start", as_date)?,
        window_end: f.get("window_end", as_date)?,
        reason: f.get("reason", as_string)?,
        evidence: f.get("evidence", array_of(as_string))?,
        policy: f.get("policy", as_string)?,
        created_at: f.get("created_at", as_timestamp)?,
    };
    f.finish()?;
    Ok(t)
}

fn dead_letter_to(d: &DeadLetter) -> Value {
    v_record([
        ("topic", v_str(&d.topic)),
        ("partition", v_opt(d.partition, Value::Int)),
        ("offset", v_opt(d.offset, Value::Long)),
        ("key", v_opt(d.key.as_deref(), v_str)),
        ("value", Value::Bytes(d.value.clone())),
        ("error_kind", v_str(&d.error_kind)),
        ("message", v_str(&d.message)),
        ("failed_at", v_timestamp(&d.failed_at)),
    ])
}

fn dead_letter_from(v: Value) -> Result<DeadLetter, AvroError> {
    let mut f = Fields::of("DeadLetter", v)?;
    let d = DeadLetter {
        topic: f.get("topic", as_string)?,
        partition: f.get("partition", optional(as_int))?,
        offset: f.get("offset", optional(as_long))?,
        key: f.get("key", optional(as_string))?,
        value: f.get("value", as_bytes)?,
        error_kind: f.get("error_kind", as_string)?,
        message: f.get("message", as_string)?,
        failed_at: f.get("failed_at", as_timestamp)?,
    };
    f.finish()?;
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::rabin::Rabin;

    /// Values from the Avro project's share/test/data/schema-tests.txt
    /// (signed, as the Java reference prints them).
    #[test]
    fn rabin_matches_the_specification_vectors() {
        let vectors: &[(&str, i64)] = &[
            (r#""null""#, 7195948357588979594),
            (r#""boolean""#, -6970731678124411036),
            (r#"{"name":"foo","type":"fixed","size":15}"#, 1756455273707447556),
            (
                r#"{"name":"PigValue","type":"record","fields":[{"name":"value","type":["null","int","long","PigValue"]}]}"#,
                -1759257747318642341,
            ),
        ];
        for (text, fp) in vectors {
            assert_eq!(rabin_fingerprint(text.as_bytes()), *fp as u64, "{text}");
        }
        assert_eq!(rabin_fingerprint(b""), RABIN_EMPTY);
    }

    #[test]
    fn fingerprints_follow_the_specification() {
        // The value the Java library (SchemaNormalization.parsingFingerprint64)
        // gives for schemas/activity_event.avsc, whose timestamp and date
        // fields carry logical types that the canonical form must drop.
        assert_eq!(format!("{:016x}", ActivityEvent::fingerprint()), "a9f3656cd2e4be58");
        // Where no logical type is involved the crate agrees with the spec.
        let plain = r#"{"type":"record","name":"R","namespace":"a.b","doc":"x","fields":[{"name":"f","type":{"type":"enum","name":"E","symbols":["A"]},"default":"A"}]}"#;
        let json: serde_json::Value = serde_json::from_str(plain).unwrap();
        let ours = parsing_canonical_form(&json, None);
        assert_eq!(ours, Schema::parse_str(plain).unwrap().canonical_form());
        assert_eq!(
            ours,
            r#"{"name":"a.b.R","type":"record","fields":[{"name":"f","type":{"name":"a.b.E","type":"enum","symbols":["A"]}}]}"#
        );
        let with_logical = r#"{"type":"record","name":"R","fields":[{"name":"t","type":{"type":"long","logicalType":"timestamp-micros"}}]}"#;
        let json: serde_json::Value = serde_json::from_str(with_logical).unwrap();
        assert_eq!(parsing_canonical_form(&json, None), r#"{"name":"R","type":"record","fields":[{"name":"t","type":"long"}]}"#);
        let int = Schema::parse_str(r#""int""#).unwrap();
        assert_eq!(int.canonical_form(), r#""int""#);
        assert_eq!(
            rabin_fingerprint(b"\"int\"").to_le_bytes().to_vec(),
            int.fingerprint::<Rabin>().bytes
        );
    }

    #[test]
    fn varints_round_trip_at_the_edges() {
        for n in [
            0,
            1,
            -1,
            63,
            -64,
            64,
            i32::MAX as i64,
            i32::MIN as i64,
            i64::MAX,
            i64::MIN,
        ] {
            let mut out = Vec::new();
            write_long(n, &mut out);
            let mut input = out.as_slice();
            assert_eq!(read_long(&mut input).unwrap(), n);
            assert!(input.is_empty());
        }
        // Eleven continuation bytes, and a tenth byte carrying more than bit 63.
        assert!(read_long(&mut [0xFFu8; 11].as_slice()).is_err());
        let mut too_big = vec![0xFF; 9];
        too_big.push(0x02);
        assert!(read_long(&mut too_big.as_slice()).is_err());
    }
}
