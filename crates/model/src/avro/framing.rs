//! Single-object framing and the schema identity it carries.
//!
//! A single-object message is `C3 01`, the writer schema's fingerprint as 8
//! little-endian bytes, then the datum. The fingerprint is how a consumer
//! tells record types and schema versions apart before decoding, so it has to
//! be the one every Avro implementation computes: CRC-64-AVRO (Rabin) of the
//! schema's Parsing Canonical Form, both written here to the letter of the
//! specification.

use super::AvroError;

/// The two bytes that open an Avro single-object encoding.
pub const SINGLE_OBJECT_MARKER: [u8; 2] = [0xC3, 0x01];
/// Marker plus the 8-byte schema fingerprint.
pub const SINGLE_OBJECT_HEADER_LEN: usize = 10;

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
        return Err(AvroError::Header(format!("expected marker C3 01, found {:02X} {:02X}", bytes[0], bytes[1])));
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
    bytes.iter().fold(RABIN_EMPTY, |fp, &b| (fp >> 8) ^ RABIN_TABLE[((fp ^ b as u64) & 0xff) as usize])
}

// ---------------------------------------------------------------------------
// Parsing Canonical Form: the text the fingerprint is taken of.

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avro::AvroRecord;
    use crate::{ActivityEvent, Determination};
    use apache_avro::rabin::Rabin;
    use apache_avro::schema::Schema;

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
        // The values the Java library (SchemaNormalization.parsingFingerprint64)
        // gives for schemas/activity_event.avsc and its version 1, whose
        // timestamp and date fields carry logical types that the canonical
        // form must drop.
        assert_eq!(format!("{:016x}", ActivityEvent::fingerprint()), "cb322bb5bed90637");
        let v1 = ActivityEvent::earlier().iter().map(|c| format!("{:016x}", c.fingerprint)).collect::<Vec<_>>();
        assert_eq!(v1, ["a9f3656cd2e4be58"]);
        assert_eq!(format!("{:016x}", Determination::fingerprint()), "f6ca9a749a815eca");
        let v1 = Determination::earlier().iter().map(|c| format!("{:016x}", c.fingerprint)).collect::<Vec<_>>();
        assert_eq!(v1, ["fc838cbadf44e5bc"]);
        // Where no logical type is involved the crate agrees with the spec.
        let plain = r#"{"type":"record","name":"R","namespace":"a.b","doc":"x","fields":[{"name":"f","type":{"type":"enum","name":"E","symbols":["A"]},"default":"A"}]}"#;
        let json: serde_json::Value = serde_json::from_str(plain).unwrap();
        let ours = parsing_canonical_form(&json, None);
        assert_eq!(ours, Schema::parse_str(plain).unwrap().canonical_form());
        assert_eq!(
            ours,
            r#"{"name":"a.b.R","type":"record","fields":[{"name":"f","type":{"name":"a.b.E","type":"enum","symbols":["A"]}}]}"#
        );
        let with_logical =
            r#"{"type":"record","name":"R","fields":[{"name":"t","type":{"type":"long","logicalType":"timestamp-micros"}}]}"#;
        let json: serde_json::Value = serde_json::from_str(with_logical).unwrap();
        assert_eq!(parsing_canonical_form(&json, None), r#"{"name":"R","type":"record","fields":[{"name":"t","type":"long"}]}"#);
        let int = Schema::parse_str(r#""int""#).unwrap();
        assert_eq!(int.canonical_form(), r#""int""#);
        assert_eq!(rabin_fingerprint(b"\"int\"").to_le_bytes().to_vec(), int.fingerprint::<Rabin>().bytes);
    }
}
