//! Reading a JSON document with the place of every value at hand, so that
//! each error names where it is (`data[3].object.id`).
//!
//! A body is read into [`Json`], a tree that borrows its strings from the
//! body (only a string with an escape is copied) and keeps an object's
//! members in a vector, in the order sent: `serde_json::Value` made a
//! `String` of every key and every string and a B-tree of every object, and
//! that was most of the gateway's CPU (BENCHMARKS.md, the gateway). The
//! normalizers read either tree through [`Tree`], so that a test can hold
//! the two to the same outputs.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::IngestError;

/// A JSON value whose strings borrow from the body where they can.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json<'a> {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    /// Members in the order sent; a repeated name is read as its last
    /// value, as `serde_json::Value` reads it.
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

/// What the normalizers read of a JSON tree: `Json`, or `serde_json::Value`.
pub(crate) trait Tree: Sized {
    /// A member of an object (`None` for a missing one and for a non-object).
    fn member(&self, name: &str) -> Option<&Self>;
    fn as_text(&self) -> Option<&str>;
    fn elements(&self) -> Option<&[Self]>;
    fn is_object(&self) -> bool;
    fn is_null(&self) -> bool;
    /// An integer's decimal form (`None` for anything else, floats included).
    fn integer(&self) -> Option<String>;
    /// The value's kind in words.
    fn kind(&self) -> &'static str;
}

impl Tree for Value {
    fn member(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }

    fn as_text(&self) -> Option<&str> {
        self.as_str()
    }

    fn elements(&self) -> Option<&[Value]> {
        self.as_array().map(Vec::as_slice)
    }

    fn is_object(&self) -> bool {
        Value::is_object(self)
    }

    fn is_null(&self) -> bool {
        Value::is_null(self)
    }

    fn integer(&self) -> Option<String> {
        match self {
            Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
            _ => None,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }
}

impl Tree for Json<'_> {
    fn member(&self, name: &str) -> Option<&Self> {
        match self {
            // From the end: the last of repeated names wins.
            Json::Object(m) => m.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }

    fn as_text(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    fn elements(&self) -> Option<&[Self]> {
        match self {
            Json::Array(a) => Some(a),
            _ => None,
        }
    }

    fn is_object(&self) -> bool {
        matches!(self, Json::Object(_))
    }

    fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }

    fn integer(&self) -> Option<String> {
        match self {
            Json::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
            _ => None,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json<'de>, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Json<'de>, E> {
        Ok(Json::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Json<'de>, E> {
        Ok(Json::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Json<'de>, E> {
        // As `Value` does: a float JSON cannot hold is null.
        Ok(serde_json::Number::from_f64(n).map_or(Json::Null, Json::Number))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(s.to_string())))
    }

    fn visit_string<E>(self, s: String) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(s)))
    }

    fn visit_none<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Json<'de>, D::Error> {
        Json::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(e) = seq.next_element()? {
            v.push(e);
        }
        Ok(Json::Array(v))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut m = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some(k) = map.next_key_seed(KeySeed)? {
            m.push((k, map.next_value()?));
        }
        Ok(Json::Object(m))
    }
}

/// An object's member name, borrowed when it has no escape.
pub(crate) struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(s))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(s.to_string()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(s))
    }
}

fn not_json(e: serde_json::Error) -> IngestError {
    IngestError::NotJson { line: e.line(), column: e.column(), message: e.to_string() }
}

/// A UTF-8 byte-order mark is not JSON but editors write one.
fn without_bom(body: &[u8]) -> &[u8] {
    body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body)
}

/// Parses a body; a parse error names its line and column.
pub(crate) fn parse(body: &[u8]) -> Result<Json<'_>, IngestError> {
    serde_json::from_slice(without_bom(body)).map_err(not_json)
}

/// Parses a body into a `serde_json::Value` (rollcall's own JSON, and the
/// reference the tests hold [`Json`] to).
pub(crate) fn parse_value(body: &[u8]) -> Result<Value, IngestError> {
    serde_json::from_slice(without_bom(body)).map_err(not_json)
}

/// A value with an owned place, for children.
pub(crate) struct Node<'a, T = Json<'a>> {
    pub v: &'a T,
    pub place: String,
}

impl<'a, T: Tree> Node<'a, T> {
    pub fn root(v: &'a T) -> Node<'a, T> {
        Node { v, place: String::new() }
    }

    fn child_place(&self, name: &str) -> String {
        if self.place.is_empty() {
            name.to_string()
        } else {
            // Every field read makes one, so not `format!`: its machinery
            // was a tenth of the gateway's CPU (BENCHMARKS.md, the gateway).
            let mut p = String::with_capacity(self.place.len() + 1 + name.len());
            p.push_str(&self.place);
            p.push('.');
            p.push_str(name);
            p
        }
    }

    fn element_place(&self, i: usize) -> String {
        use std::fmt::Write;
        let mut p = String::with_capacity(self.place.len() + 6);
        p.push_str(&self.place);
        let _ = write!(p, "[{i}]");
        p
    }

    pub fn err(&self, problem: impl Into<String>) -> IngestError {
        IngestError::invalid(&self.place, problem)
    }

    /// A field that is present and not null.
    pub fn get(&self, name: &str) -> Option<Node<'a, T>> {
        match self.v.member(name) {
            None => None,
            Some(v) if v.is_null() => None,
            Some(v) => Some(Node { v, place: self.child_place(name) }),
        }
    }

    /// A field that must be present and not null.
    pub fn req(&self, name: &str) -> Result<Node<'a, T>, IngestError> {
        self.get(name).ok_or_else(|| IngestError::invalid(&self.child_place(name), "missing"))
    }

    /// A field's value, present and not null, without its place (for a
    /// value that is only looked at: no error can name it).
    pub fn peek(&self, name: &str) -> Option<&'a T> {
        self.v.member(name).filter(|v| !v.is_null())
    }

    pub fn str(&self) -> Result<&'a str, IngestError> {
        self.v.as_text().ok_or_else(|| self.err(format!("expected a string, found {}", self.v.kind())))
    }

    /// A non-empty string.
    pub fn text(&self) -> Result<&'a str, IngestError> {
        match self.str()? {
            "" => Err(self.err("empty")),
            s => Ok(s),
        }
    }

    /// A field that must be a non-empty string.
    pub fn req_text(&self, name: &str) -> Result<&'a str, IngestError> {
        // The place is made only for an error.
        match self.peek(name).and_then(T::as_text) {
            Some(s) if !s.is_empty() => Ok(s),
            _ => self.req(name)?.text(),
        }
    }

    /// An optional field that, when present, must be a string (empty is taken as absent).
    pub fn opt_text(&self, name: &str) -> Result<Option<&'a str>, IngestError> {
        match self.get(name) {
            None => Ok(None),
            Some(n) => n.str().map(|s| Some(s).filter(|s| !s.is_empty())),
        }
    }

    /// An id that platforms send as a string or as a number (Canvas and Zoom
    /// ids are both, depending on the event type).
    pub fn id(&self) -> Result<String, IngestError> {
        match self.v.as_text() {
            Some("") => Err(self.err("empty")),
            Some(s) => Ok(s.to_string()),
            None => self.v.integer().ok_or_else(|| self.err(format!("expected a string or an integer, found {}", self.v.kind()))),
        }
    }

    pub fn opt_id(&self, name: &str) -> Result<Option<String>, IngestError> {
        match self.get(name) {
            None => Ok(None),
            Some(n) if n.v.as_text() == Some("") => Ok(None),
            Some(n) => n.id().map(Some),
        }
    }

    /// A Caliper entity: an IRI string, or an object whose `id` is one.
    pub fn entity_id(&self) -> Result<&'a str, IngestError> {
        match self.v.as_text() {
            Some("") => Err(self.err("empty")),
            Some(s) => Ok(s),
            None if self.v.is_object() => self.req_text("id"),
            None => Err(self.err(format!("expected a string or an object, found {}", self.v.kind()))),
        }
    }

    /// A Caliper entity's `type`, when it is an object that has one.
    pub fn entity_type(&self) -> Option<&'a str> {
        self.v.member("type").and_then(T::as_text)
    }

    /// An RFC 3339 instant with any offset, in UTC, to the microsecond.
    pub fn time(&self) -> Result<DateTime<Utc>, IngestError> {
        let s = self.str()?;
        DateTime::parse_from_rfc3339(s)
            .map(|t| crate::micros(t.with_timezone(&Utc)))
            .map_err(|e| self.err(format!("`{s}` is not an RFC 3339 date and time with an offset: {e}")))
    }

    /// The elements of an array.
    pub fn items(&self) -> Result<Vec<Node<'a, T>>, IngestError> {
        match self.v.elements() {
            Some(a) => Ok(a.iter().enumerate().map(|(i, v)| Node { v, place: self.element_place(i) }).collect()),
            None => Err(self.err(format!("expected an array, found {}", self.v.kind()))),
        }
    }

    /// One value or an array of them (xAPI context activities, request bodies).
    pub fn one_or_many(&self) -> Vec<Node<'a, T>> {
        match self.v.elements() {
            Some(a) => a.iter().enumerate().map(|(i, v)| Node { v, place: self.element_place(i) }).collect(),
            None => vec![Node { v: self.v, place: self.place.clone() }],
        }
    }

    pub fn is_object(&self) -> bool {
        self.v.is_object()
    }
}

/// A JSON value's kind in words.
pub(crate) fn kind<T: Tree>(v: &T) -> &'static str {
    v.kind()
}
