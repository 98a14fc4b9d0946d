//! A request's events as the gateway produces them: each event's Avro
//! single-object message, one after another in one buffer, with where its
//! key (the student id inside it) is, its timestamp and its kind.
//!
//! [`encode`] is [`crate::normalize`] and the encoding in one. For Caliper,
//! the common case, the fast path writes each event straight from the
//! request's body and the identity view into the buffer, without an owned
//! `ActivityEvent` (a `String` per field, a B-tree of attributes, a `Vec`
//! per message, all made and dropped per event). Every other format, and
//! every Caliper request the fast path gives up on, is normalized as before
//! and its events encoded with [`Encoded::from_outcome`]. The two give the
//! same bytes: the tests in `caliper.rs` hold the fast path to
//! `from_outcome` of the reference reading.

use std::collections::BTreeMap;
use std::ops::Range;

use chrono::{DateTime, Utc};
use rollcall_model::avro::ActivityEventRef;
use rollcall_model::ActivityKind;

use crate::{Format, IdentityView, Outcome, Rejected, Waiting};

/// One event's place in [`Encoded::bytes`], and what its record carries
/// besides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedEvent {
    /// The single-object message.
    pub payload: Range<usize>,
    /// The student id, inside the message: the record's key.
    pub key: Range<usize>,
    /// When it happened, in milliseconds: the record's timestamp.
    pub occurred_at_ms: i64,
    pub kind: ActivityKind,
}

/// What a request normalized to, its ready events encoded; the waiting
/// events and the ignored counts as in [`Outcome`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    /// In the order of the request.
    pub events: Vec<EncodedEvent>,
    /// Stamped with when the request was taken, as the events are.
    pub waiting: Vec<Waiting>,
    pub ignored: BTreeMap<String, u64>,
}

impl Encoded {
    pub fn payload(&self, e: &EncodedEvent) -> &[u8] {
        &self.bytes[e.payload.clone()]
    }

    pub fn key(&self, e: &EncodedEvent) -> &[u8] {
        &self.bytes[e.key.clone()]
    }

    /// Appends one event.
    pub(crate) fn push<'a, A: ExactSizeIterator<Item = (&'a str, &'a str)>>(&mut self, e: ActivityEventRef<'a, A>) {
        let (start, kind, occurred_at_ms) = (self.bytes.len(), e.kind, e.occurred_at.timestamp_millis());
        let key = e.write_single_object(&mut self.bytes);
        self.events.push(EncodedEvent { payload: start..self.bytes.len(), key, occurred_at_ms, kind });
    }

    /// An outcome's events and waiting events, each stamped with
    /// `received_at`, the events encoded.
    pub fn from_outcome(o: Outcome, received_at: DateTime<Utc>) -> Encoded {
        let mut out = Encoded { ignored: o.ignored, ..Encoded::default() };
        out.bytes.reserve(o.events.len() * 160);
        for e in &o.events {
            out.push(ActivityEventRef { received_at: Some(received_at), ..ActivityEventRef::of(e) });
        }
        out.waiting = o.waiting;
        out.stamp_waiting(received_at);
        out
    }

    /// The encoded events carry `received_at` as Avro's micros; a waiting
    /// event keeps it as an instant, so it is cut to the micros here.
    pub(crate) fn stamp_waiting(&mut self, received_at: DateTime<Utc>) {
        let received_at = crate::micros(received_at);
        for w in &mut self.waiting {
            w.event.received_at = Some(received_at);
        }
    }
}

/// Normalizes `body` as [`crate::normalize`] does and encodes its events,
/// each stamped with `received_at` (to the microsecond, as the record
/// carries it).
pub fn encode(
    format: Format,
    body: &[u8],
    ids: &IdentityView,
    source: Option<&str>,
    received_at: DateTime<Utc>,
) -> Result<Encoded, Rejected> {
    let source = source.unwrap_or(format.name());
    if format == Format::Caliper {
        return crate::caliper::encode(body, ids, source, received_at);
    }
    crate::normalize(format, body, ids, Some(source)).map(|o| Encoded::from_outcome(o, received_at))
}
