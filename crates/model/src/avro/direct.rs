//! The direct fast paths: the ActivityEvent and Determination datums
//! decoded, and encoded, straight between bytes and struct, skipping the
//! generic `Value` tree, because these two records are most of the
//! traffic. Each must agree exactly with the generic codec: the decoder
//! declines (`None`) on anything unusual and leaves the answer to the
//! generic one, and tests and the fuzz checks compare the two paths.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, Utc};

use super::binary::{read_block_count, read_int, read_long, read_string, write_bytes, write_long};
use super::value::{WireEnum, UNIX_EPOCH_DAYS_FROM_CE};
use crate::types::*;

// The readers of the direct decoders: `None` wherever the generic decoder
// would refuse or think twice, so that it gives the answer and its error.
fn read_str(input: &mut &[u8]) -> Option<String> {
    read_string(input).ok()
}

/// A `["null", T]` union's branch: `true` for the value.
fn branch(input: &mut &[u8]) -> Option<bool> {
    match read_long(input).ok()? {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

fn read_opt<T>(input: &mut &[u8], read: impl FnOnce(&mut &[u8]) -> Option<T>) -> Option<Option<T>> {
    if branch(input)? {
        read(input).map(Some)
    } else {
        Some(None)
    }
}

fn symbol<E>(input: &mut &[u8], from: fn(u8) -> Option<E>) -> Option<E> {
    from(u8::try_from(read_long(input).ok()?).ok()?)
}

fn read_date(input: &mut &[u8]) -> Option<NaiveDate> {
    read_int(input).ok()?.checked_add(UNIX_EPOCH_DAYS_FROM_CE).and_then(NaiveDate::from_num_days_from_ce_opt)
}

fn read_instant(input: &mut &[u8]) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(read_long(input).ok()?)
}

fn read_array<T>(input: &mut &[u8], mut item: impl FnMut(&mut &[u8]) -> Option<T>) -> Option<Vec<T>> {
    let mut items = Vec::new();
    while let Some(count) = read_block_count(input, "array").ok()? {
        items.reserve(count);
        for _ in 0..count {
            items.push(item(input)?);
        }
    }
    Some(items)
}

/// ActivityEvent straight from its datum, in the schema's field order,
/// without the generic value tree (which names every field and allocates
/// for each): events are nearly every record the processor reads. A test
/// checks the order against the schema file, and the fuzz target
/// `single_object` that this agrees with the generic decoder.
pub(super) fn activity_event_direct(datum: &[u8]) -> Option<ActivityEvent> {
    let input = &mut &datum[..];
    let event_id = read_str(input)?;
    let source = read_str(input)?;
    let student_id = read_str(input)?;
    let school_id = read_str(input)?;
    let section_id = read_opt(input, read_str)?;
    let staff_id = read_opt(input, read_str)?;
    let kind = symbol(input, ActivityKind::from_index)?;
    let direction = read_opt(input, |i| symbol(i, Direction::from_index))?;
    let occurred_at = read_instant(input)?;
    let assigned_date = read_opt(input, read_date)?;
    let live_session_id = read_opt(input, read_str)?;
    let duration_seconds = read_opt(input, |i| read_long(i).ok())?;
    let mut attributes = BTreeMap::new();
    while let Some(count) = read_block_count(input, "map").ok()? {
        for _ in 0..count {
            let key = read_str(input)?;
            let value = read_str(input)?;
            if attributes.insert(key, value).is_some() {
                return None;
            }
        }
    }
    let received_at = read_opt(input, read_instant)?;
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
        received_at,
    })
}

/// Determination straight from its datum, in the schema's field order: the
/// sink reads one per version written, and the value tree was most of its
/// reading thread's work. The same tests and fuzz check as the event's
/// decoder hold it to the generic one.
pub(super) fn determination_decode(datum: &[u8]) -> Option<Determination> {
    let input = &mut &datum[..];
    let d = Determination {
        determination_id: read_str(input)?,
        student_id: read_str(input)?,
        school_id: read_str(input)?,
        scope: symbol(input, Scope::from_index)?,
        date: read_date(input)?,
        section_id: read_opt(input, read_str)?,
        policy: read_str(input)?,
        status: symbol(input, Status::from_index)?,
        code: read_str(input)?,
        attendance_type: read_opt(input, |i| symbol(i, AttendanceType::from_index))?,
        minutes: read_opt(input, |i| read_long(i).ok())?,
        contacts: read_opt(input, |i| read_int(i).ok())?,
        category: read_opt(input, read_str)?,
        rule: read_str(input)?,
        evidence: read_array(input, read_str)?,
        version: read_int(input).ok()?,
        finality: symbol(input, Finality::from_index)?,
        decided_at: read_instant(input)?,
        evidence_detail: read_array(input, |i| {
            Some(EvidenceDetail {
                id: read_str(i)?,
                kind: read_str(i)?,
                occurred_at: read_opt(i, read_instant)?,
                local_time: read_opt(i, read_str)?,
                source: read_opt(i, read_str)?,
                section_id: read_opt(i, read_str)?,
                staff_id: read_opt(i, read_str)?,
                detail: read_opt(i, read_str)?,
            })
        })?,
        looked_for: read_array(input, read_str)?,
        seen: read_array(input, |i| {
            Some(SeenActivity {
                kind: read_str(i)?,
                section_id: read_opt(i, read_str)?,
                count: read_int(i).ok()?,
                first_local_time: read_str(i)?,
                why_not: read_str(i)?,
            })
        })?,
    };
    input.is_empty().then_some(d)
}

fn string(s: &str, out: &mut Vec<u8>) {
    write_bytes(s.as_bytes(), out)
}

/// A `["null", T]` union: the branch index, then the value.
fn opt<T>(v: Option<T>, out: &mut Vec<u8>, write: impl FnOnce(T, &mut Vec<u8>)) {
    match v {
        None => write_long(0, out),
        Some(v) => {
            write_long(1, out);
            write(v, out)
        }
    }
}

/// An array is one block of its items then the empty block; an empty
/// array is the empty block alone.
fn array<T>(items: &[T], out: &mut Vec<u8>, item: impl Fn(&T, &mut Vec<u8>)) {
    if !items.is_empty() {
        write_long(items.len() as i64, out);
        for i in items {
            item(i, out);
        }
    }
    out.push(0);
}

/// The determination's datum written straight from the struct, in the
/// schema's field order, as the generic encoder writes it (a test and the
/// `avro_datum` fuzz check compare the two byte for byte): every decided
/// window emits one, and the value tree cost as much as deciding it.
pub(super) fn determination_direct(d: &Determination, out: &mut Vec<u8>) {
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
    array(&d.evidence, out, |e, out| string(e, out));
    write_long(d.version as i64, out);
    write_long(d.finality.position() as i64, out);
    write_long(d.decided_at.timestamp_micros(), out);
    array(&d.evidence_detail, out, |e, out| {
        string(&e.id, out);
        string(&e.kind, out);
        opt(e.occurred_at, out, |t, out| write_long(t.timestamp_micros(), out));
        for s in [&e.local_time, &e.source, &e.section_id, &e.staff_id, &e.detail] {
            opt(s.as_deref(), out, string);
        }
    });
    array(&d.looked_for, out, |s, out| string(s, out));
    array(&d.seen, out, |s, out| {
        string(&s.kind, out);
        opt(s.section_id.as_deref(), out, string);
        write_long(s.count as i64, out);
        string(&s.first_local_time, out);
        string(&s.why_not, out);
    });
}

/// The activity event's datum written straight from the struct, as the
/// generic encoder writes it (the same tests compare the two): the gateway
/// encodes one per event it takes, and the value tree was a seventh of its
/// CPU.
pub(super) fn activity_event_encode(e: &ActivityEvent, out: &mut Vec<u8>) {
    ActivityEventRef::of(e).write_datum(out);
}

/// An activity event whose strings are borrowed, written to Avro without
/// an owned [`ActivityEvent`] in between: the gateway's Caliper path reads
/// its strings from the request's body and the identity view, and a
/// `String` per field, made and dropped per event, was most of what it
/// allocated. [`ActivityEventRef::of`] views an owned event, so the owned
/// encoder is this one.
#[derive(Debug, Clone)]
pub struct ActivityEventRef<'a, A> {
    pub event_id: &'a str,
    pub source: &'a str,
    pub student_id: &'a str,
    pub school_id: &'a str,
    pub section_id: Option<&'a str>,
    pub staff_id: Option<&'a str>,
    pub kind: ActivityKind,
    pub direction: Option<Direction>,
    pub occurred_at: DateTime<Utc>,
    pub assigned_date: Option<NaiveDate>,
    pub live_session_id: Option<&'a str>,
    pub duration_seconds: Option<i64>,
    /// Name and value, in name order with no name twice (as a `BTreeMap`
    /// iterates): Avro's map has no order, but the generic encoder writes
    /// the map's, and both paths must give the same bytes.
    pub attributes: A,
    pub received_at: Option<DateTime<Utc>>,
}

/// An owned event's attributes, as [`ActivityEventRef`] takes them.
pub type OwnedAttributes<'a> =
    std::iter::Map<std::collections::btree_map::Iter<'a, String, String>, fn((&'a String, &'a String)) -> (&'a str, &'a str)>;

impl<'a> ActivityEventRef<'a, OwnedAttributes<'a>> {
    pub fn of(e: &'a ActivityEvent) -> Self {
        let pair: fn((&'a String, &'a String)) -> (&'a str, &'a str) = |(k, v)| (k.as_str(), v.as_str());
        ActivityEventRef {
            event_id: &e.event_id,
            source: &e.source,
            student_id: &e.student_id,
            school_id: &e.school_id,
            section_id: e.section_id.as_deref(),
            staff_id: e.staff_id.as_deref(),
            kind: e.kind,
            direction: e.direction,
            occurred_at: e.occurred_at,
            assigned_date: e.assigned_date,
            live_session_id: e.live_session_id.as_deref(),
            duration_seconds: e.duration_seconds,
            attributes: e.attributes.iter().map(pair),
            received_at: e.received_at,
        }
    }
}

impl<'a, A: ExactSizeIterator<Item = (&'a str, &'a str)>> ActivityEventRef<'a, A> {
    /// The datum alone.
    pub fn write_datum(self, out: &mut Vec<u8>) {
        self.write(out);
    }

    /// The single-object message (header, then datum) appended to `out`;
    /// where in `out` the student id's bytes are, which is the record's key.
    pub fn write_single_object(self, out: &mut Vec<u8>) -> std::ops::Range<usize> {
        use super::AvroRecord;
        out.extend_from_slice(&super::SINGLE_OBJECT_MARKER);
        out.extend_from_slice(&ActivityEvent::fingerprint().to_le_bytes());
        self.write(out)
    }

    fn write(self, out: &mut Vec<u8>) -> std::ops::Range<usize> {
        string(self.event_id, out);
        string(self.source, out);
        string(self.student_id, out);
        let student = out.len() - self.student_id.len()..out.len();
        string(self.school_id, out);
        opt(self.section_id, out, string);
        opt(self.staff_id, out, string);
        write_long(self.kind.position() as i64, out);
        opt(self.direction, out, |d, out| write_long(d.position() as i64, out));
        write_long(self.occurred_at.timestamp_micros(), out);
        opt(self.assigned_date, out, |d, out| write_long((d.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE) as i64, out));
        opt(self.live_session_id, out, string);
        opt(self.duration_seconds, out, write_long);
        if self.attributes.len() > 0 {
            write_long(self.attributes.len() as i64, out);
            for (k, v) in self.attributes {
                string(k, out);
                string(v, out);
            }
        }
        out.push(0);
        opt(self.received_at, out, |t, out| write_long(t.timestamp_micros(), out));
        student
    }
}
