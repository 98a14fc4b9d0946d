//! The generic codec: any record's datum to and from an apache-avro `Value`
//! tree, by walking the record's parsed schema. Why this is ours rather than
//! apache-avro's is in the module doc. Only the schema types the rollcall
//! schemas use are supported; anything else is reported, not guessed at.

use std::collections::HashMap;

use apache_avro::schema::{Name, Namespace, ResolvedSchema, Schema};
use apache_avro::types::Value;

use super::binary::{
    read_block_count, read_bytes, read_int, read_long, read_string, truncated, write_bytes, write_long, CodecError,
};
use super::framing::{parsing_canonical_form, rabin_fingerprint};
use super::value::describe;
use super::AvroError;

/// A record type's parsed schema, with its named types resolved (for the
/// `Weekday` reference in `ModeSpan`, say) and its fingerprint.
pub struct CompiledSchema {
    pub(super) record: &'static str,
    pub(super) schema: Schema,
    names: HashMap<Name, Schema>,
    pub(super) fingerprint: u64,
}

impl CompiledSchema {
    /// The embedded schema texts are part of the build, so a failure here is
    /// a defect caught by the tests, not a runtime condition.
    pub(super) fn parse(record: &'static str, file: &str, text: &str) -> CompiledSchema {
        let schema = Schema::parse_str(text).unwrap_or_else(|e| panic!("schemas/{file} is not a valid Avro schema: {e}"));
        let names = ResolvedSchema::try_from(&schema)
            .unwrap_or_else(|e| panic!("schemas/{file}: cannot resolve named types: {e}"))
            .get_names()
            .iter()
            .map(|(n, s)| (n.clone(), (*s).clone()))
            .collect();
        let json: serde_json::Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("schemas/{file} is not JSON: {e}"));
        let fingerprint = rabin_fingerprint(parsing_canonical_form(&json, None).as_bytes());
        CompiledSchema { record, schema, names, fingerprint }
    }

    pub(super) fn encode(&self, value: &Value, out: &mut Vec<u8>) -> Result<(), AvroError> {
        encode_value(self, &self.schema, &None, value, out).map_err(|e| AvroError::Encode(format!("{}: {e}", self.record)))
    }

    /// The CRC-64-AVRO fingerprint of this schema's canonical form.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Decodes a datum written with this (earlier) schema and resolves it to
    /// `reader`'s, as the Avro specification's schema resolution says: fields
    /// the writer did not have take their defaults.
    pub(super) fn decode_into(&self, bytes: &[u8], reader: &CompiledSchema) -> Result<Value, AvroError> {
        self.decode(bytes)?
            .resolve(&reader.schema)
            .map_err(|e| AvroError::Decode(format!("{}: resolving a datum of an earlier schema version: {e}", reader.record)))
    }

    /// Decodes exactly one datum: the input must end where the datum does.
    pub(super) fn decode(&self, bytes: &[u8]) -> Result<Value, AvroError> {
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
    pub(super) fn decode_prefix(&self, input: &mut &[u8]) -> Result<Value, AvroError> {
        decode_value(self, &self.schema, &None, input).map_err(|e| AvroError::Decode(format!("{}: {e}", self.record)))
    }

    fn resolve<'a>(&'a self, schema: &'a Schema, ns: &Namespace) -> Result<&'a Schema, CodecError> {
        match schema {
            Schema::Ref { name } => self
                .names
                .get(name)
                .or_else(|| self.names.get(&name.fully_qualified_name(ns)))
                .ok_or_else(|| CodecError::new(format!("schema refers to unknown type `{}`", name.fullname(ns.clone())))),
            s => Ok(s),
        }
    }
}

fn record_namespace(name: &Name, ns: &Namespace) -> Namespace {
    name.fully_qualified_name(ns).namespace
}

fn mismatch(expected: &str, found: &Value) -> CodecError {
    CodecError::new(format!("expected {expected}, found {}", describe(found)))
}

fn encode_value(c: &CompiledSchema, schema: &Schema, ns: &Namespace, value: &Value, out: &mut Vec<u8>) -> Result<(), CodecError> {
    match (c.resolve(schema, ns)?, value) {
        (Schema::Null, Value::Null) => {}
        (Schema::Boolean, Value::Boolean(b)) => out.push(*b as u8),
        (Schema::Int, Value::Int(n)) | (Schema::Date, Value::Date(n)) => write_long(*n as i64, out),
        (Schema::Long, Value::Long(n)) | (Schema::TimestampMicros, Value::TimestampMicros(n)) => write_long(*n, out),
        (Schema::String, Value::String(s)) => write_bytes(s.as_bytes(), out),
        (Schema::Bytes, Value::Bytes(b)) => write_bytes(b, out),
        (Schema::Enum(e), Value::Enum(i, symbol)) => match e.symbols.get(*i as usize) {
            Some(s) if s == symbol => write_long(*i as i64, out),
            _ => return Err(CodecError::new(format!("enum {} has no symbol `{symbol}` at position {i}", e.name.name))),
        },
        (Schema::Union(u), Value::Union(i, inner)) => {
            let variant = u.variants().get(*i as usize).ok_or_else(|| CodecError::new(format!("union has no branch {i}")))?;
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
                let extra: Vec<&str> =
                    fields.iter().map(|(n, _)| n.as_str()).filter(|n| !r.fields.iter().any(|f| f.name == *n)).collect();
                if !extra.is_empty() {
                    return Err(CodecError::new(format!("{} has no field(s) {}", r.name.name, extra.join(", "))));
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
                CodecError::new(format!("enum index {i} is out of range for {} ({} symbols)", e.name.name, e.symbols.len()))
            })?;
            Value::Enum(i as u32, symbol.clone())
        }
        Schema::Union(u) => {
            let i = read_long(input)?;
            let variant = usize::try_from(i)
                .ok()
                .and_then(|i| u.variants().get(i))
                .ok_or_else(|| CodecError::new(format!("union branch {i} is out of range ({} branches)", u.variants().len())))?;
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
        other => return Err(CodecError::new(format!("schema type {} is not supported", schema_kind(other)))),
    })
}

fn schema_kind(s: &Schema) -> String {
    match s {
        Schema::Record(r) => format!("record {}", r.name.name),
        Schema::Enum(e) => format!("enum {}", e.name.name),
        Schema::Union(u) => format!("union [{}]", u.variants().iter().map(schema_kind).collect::<Vec<_>>().join(", ")),
        Schema::Ref { name } => name.name.clone(),
        other => format!("{:?}", apache_avro::schema::SchemaKind::from(other)).to_lowercase(),
    }
}
