//! Helpers over apache-avro's `Value` for the per-record conversions:
//! builders from Rust fields, and getters that take a value apart again and
//! insist on the exact Avro type, logical type, enum position and
//! `["null", T]` union the schemas give, so a wrong value is an error naming
//! its field rather than a silent coercion.

use std::collections::BTreeMap;
use std::str::FromStr;

use apache_avro::types::Value;
use chrono::{DateTime, Datelike, NaiveDate, Utc};

use super::AvroError;
use crate::types::*;

/// A short description of a value for error messages.
pub(super) fn describe(v: &Value) -> String {
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
pub(super) trait WireEnum: Copy + FromStr<Err = UnknownSymbol> {
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
    RecipientRole,
    IdentityType
);

pub(super) fn v_str(s: &str) -> Value {
    Value::String(s.to_owned())
}

pub(super) fn v_enum<E: WireEnum>(e: E) -> Value {
    Value::Enum(e.position() as u32, e.symbol().to_owned())
}

/// Avro carries microseconds; sub-microsecond digits are dropped.
pub(super) fn v_timestamp(t: &DateTime<Utc>) -> Value {
    Value::TimestampMicros(t.timestamp_micros())
}

/// Days from 0001-01-01 (day 1 of the common era) to 1970-01-01.
pub(super) const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

pub(super) fn v_date(d: NaiveDate) -> Value {
    Value::Date(d.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE)
}

pub(super) fn v_opt<T>(o: Option<T>, f: impl FnOnce(T) -> Value) -> Value {
    match o {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(x) => Value::Union(1, Box::new(f(x))),
    }
}

pub(super) fn v_array<T>(items: &[T], f: impl Fn(&T) -> Value) -> Value {
    Value::Array(items.iter().map(f).collect())
}

pub(super) fn v_strings(items: &[String]) -> Value {
    v_array(items, |s| v_str(s))
}

pub(super) fn v_record<const N: usize>(fields: [(&str, Value); N]) -> Value {
    Value::Record(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

// ---------------------------------------------------------------------------
// Value -> Rust. Converters return an `Issue` (a message, with a path suffix
// for nested values); `Fields` turns it into an `AvroError::Field` naming the
// record and field.

pub(super) struct Issue {
    path: String,
    message: String,
}

impl From<String> for Issue {
    fn from(message: String) -> Self {
        Issue { path: String::new(), message }
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
pub(super) struct Fields {
    record: &'static str,
    fields: Vec<(String, Value)>,
}

impl Fields {
    pub(super) fn of(record: &'static str, v: Value) -> Result<Fields, AvroError> {
        match v {
            Value::Record(fields) => Ok(Fields { record, fields }),
            other => Err(AvroError::Record { record, message: format!("expected a record, found {}", describe(&other)) }),
        }
    }

    pub(super) fn get<T>(&mut self, name: &str, conv: impl FnOnce(Value) -> Result<T, Issue>) -> Result<T, AvroError> {
        let record = self.record;
        let at = self.fields.iter().position(|(n, _)| n == name).ok_or_else(|| AvroError::Field {
            record,
            field: name.to_owned(),
            message: "missing".into(),
        })?;
        let (_, v) = self.fields.swap_remove(at);
        conv(v).map_err(|i| AvroError::Field { record, field: format!("{name}{}", i.path), message: i.message })
    }

    /// Refuses fields the record does not have, so a value built for another
    /// schema version is not half-read.
    pub(super) fn finish(self) -> Result<(), AvroError> {
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

pub(super) fn as_string(v: Value) -> Result<String, Issue> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(wrong("string", &other)),
    }
}

pub(super) fn as_bool(v: Value) -> Result<bool, Issue> {
    match v {
        Value::Boolean(b) => Ok(b),
        other => Err(wrong("boolean", &other)),
    }
}

pub(super) fn as_int(v: Value) -> Result<i32, Issue> {
    match v {
        Value::Int(n) => Ok(n),
        other => Err(wrong("int", &other)),
    }
}

pub(super) fn as_long(v: Value) -> Result<i64, Issue> {
    match v {
        Value::Long(n) => Ok(n),
        other => Err(wrong("long", &other)),
    }
}

pub(super) fn as_bytes(v: Value) -> Result<Vec<u8>, Issue> {
    match v {
        Value::Bytes(b) => Ok(b),
        other => Err(wrong("bytes", &other)),
    }
}

pub(super) fn as_timestamp(v: Value) -> Result<DateTime<Utc>, Issue> {
    match v {
        Value::TimestampMicros(us) => {
            DateTime::from_timestamp_micros(us).ok_or_else(|| format!("timestamp {us} µs since the epoch is out of range").into())
        }
        other => Err(wrong("timestamp-micros", &other)),
    }
}

pub(super) fn as_date(v: Value) -> Result<NaiveDate, Issue> {
    match v {
        Value::Date(days) => days
            .checked_add(UNIX_EPOCH_DAYS_FROM_CE)
            .and_then(NaiveDate::from_num_days_from_ce_opt)
            .ok_or_else(|| format!("date {days} days from 1970-01-01 is out of range").into()),
        other => Err(wrong("date", &other)),
    }
}

pub(super) fn as_local_time(v: Value) -> Result<LocalTime, Issue> {
    Ok(as_string(v)?.parse::<LocalTime>()?)
}

pub(super) fn as_grade(v: Value) -> Result<GradeLevel, Issue> {
    as_string(v)?.parse::<GradeLevel>().map_err(|e| e.to_string().into())
}

/// The symbol decides; the position must agree with it, since a mismatch
/// means the value was built against a different symbol list.
pub(super) fn as_enum<E: WireEnum>(v: Value) -> Result<E, Issue> {
    match v {
        Value::Enum(i, s) => {
            let e = s.parse::<E>().map_err(|e| e.to_string())?;
            if e.position() as u32 != i {
                return Err(format!("symbol `{s}` is at position {i} in the value but {} in the schema", e.position()).into());
            }
            Ok(e)
        }
        other => Err(wrong("enum", &other)),
    }
}

/// An `["null", T]` union.
pub(super) fn optional<T>(conv: impl FnOnce(Value) -> Result<T, Issue>) -> impl FnOnce(Value) -> Result<Option<T>, Issue> {
    move |v| match v {
        Value::Union(0, inner) => match *inner {
            Value::Null => Ok(None),
            other => Err(wrong("null in union branch 0", &other)),
        },
        Value::Union(1, inner) => conv(*inner).map(Some),
        other => Err(wrong("a union [null, ...]", &other)),
    }
}

pub(super) fn array_of<T>(conv: impl Fn(Value) -> Result<T, Issue>) -> impl FnOnce(Value) -> Result<Vec<T>, Issue> {
    move |v| match v {
        Value::Array(items) => {
            items.into_iter().enumerate().map(|(i, item)| conv(item).map_err(|e| e.within(format!("[{i}]")))).collect()
        }
        other => Err(wrong("array", &other)),
    }
}

pub(super) fn as_string_map(v: Value) -> Result<BTreeMap<String, String>, Issue> {
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
pub(super) fn nested<T>(from: fn(Value) -> Result<T, AvroError>) -> impl Fn(Value) -> Result<T, Issue> {
    move |v| {
        from(v).map_err(|e| match e {
            AvroError::Field { field, message, .. } => Issue { path: format!(".{field}"), message },
            AvroError::Record { message, .. } => message.into(),
            other => other.to_string().into(),
        })
    }
}
