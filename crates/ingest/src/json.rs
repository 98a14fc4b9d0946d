//! Reading a JSON document with the place of every value at hand, so that
//! each error names where it is (`data[3].object.id`).

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::IngestError;

/// Parses a body; a parse error names its line and column.
pub(crate) fn parse(body: &[u8]) -> Result<Value, IngestError> {
    // A UTF-8 byte-order mark is not JSON but editors write one.
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    serde_json::from_slice(body).map_err(|e| IngestError::NotJson { line: e.line(), column: e.column(), message: e.to_string() })
}

/// A value with an owned place, for children.
pub(crate) struct Node<'a> {
    pub v: &'a Value,
    pub place: String,
}

impl<'a> Node<'a> {
    pub fn root(v: &'a Value) -> Node<'a> {
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

    pub fn err(&self, problem: impl Into<String>) -> IngestError {
        IngestError::invalid(&self.place, problem)
    }

    /// A field that is present and not null.
    pub fn get(&self, name: &str) -> Option<Node<'a>> {
        match self.v.get(name) {
            None | Some(Value::Null) => None,
            Some(v) => Some(Node { v, place: self.child_place(name) }),
        }
    }

    /// A field that must be present and not null.
    pub fn req(&self, name: &str) -> Result<Node<'a>, IngestError> {
        self.get(name).ok_or_else(|| IngestError::invalid(&self.child_place(name), "missing"))
    }

    pub fn str(&self) -> Result<&'a str, IngestError> {
        self.v.as_str().ok_or_else(|| self.err(format!("expected a string, found {}", kind(self.v))))
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
        self.req(name)?.text()
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
        match self.v {
            Value::String(s) if !s.is_empty() => Ok(s.clone()),
            Value::String(_) => Err(self.err("empty")),
            Value::Number(n) if n.is_u64() || n.is_i64() => Ok(n.to_string()),
            v => Err(self.err(format!("expected a string or an integer, found {}", kind(v)))),
        }
    }

    pub fn opt_id(&self, name: &str) -> Result<Option<String>, IngestError> {
        match self.get(name) {
            None => Ok(None),
            Some(n) if n.v.as_str() == Some("") => Ok(None),
            Some(n) => n.id().map(Some),
        }
    }

    /// A Caliper entity: an IRI string, or an object whose `id` is one.
    pub fn entity_id(&self) -> Result<&'a str, IngestError> {
        match self.v {
            Value::String(s) if !s.is_empty() => Ok(s),
            Value::String(_) => Err(self.err("empty")),
            Value::Object(_) => self.req("id")?.text(),
            v => Err(self.err(format!("expected a string or an object, found {}", kind(v)))),
        }
    }

    /// A Caliper entity's `type`, when it is an object that has one.
    pub fn entity_type(&self) -> Option<&'a str> {
        self.v.get("type").and_then(Value::as_str)
    }

    /// An RFC 3339 instant with any offset, in UTC, to the microsecond.
    pub fn time(&self) -> Result<DateTime<Utc>, IngestError> {
        let s = self.str()?;
        DateTime::parse_from_rfc3339(s)
            .map(|t| crate::micros(t.with_timezone(&Utc)))
            .map_err(|e| self.err(format!("`{s}` is not an RFC 3339 date and time with an offset: {e}")))
    }

    /// The elements of an array.
    pub fn items(&self) -> Result<Vec<Node<'a>>, IngestError> {
        match self.v {
            Value::Array(a) => Ok(a.iter().enumerate().map(|(i, v)| Node { v, place: format!("{}[{i}]", self.place) }).collect()),
            v => Err(self.err(format!("expected an array, found {}", kind(v)))),
        }
    }

    /// One value or an array of them (xAPI context activities, request bodies).
    pub fn one_or_many(&self) -> Vec<Node<'a>> {
        match self.v {
            Value::Array(a) => a.iter().enumerate().map(|(i, v)| Node { v, place: format!("{}[{i}]", self.place) }).collect(),
            v => vec![Node { v, place: self.place.clone() }],
        }
    }

    pub fn is_object(&self) -> bool {
        self.v.is_object()
    }
}

/// A JSON value's kind in words.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
