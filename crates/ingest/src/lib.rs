//! rollcall-ingest: the platforms' own events, turned into [`ActivityEvent`]s.
//!
//! This crate owns the pure part of ingest: for each format a normalizer
//! takes the bytes a platform sent and an [`IdentityView`] (which SIS ids the
//! platform's person and class ids stand for) and returns the events, or
//! errors that name their place (`data[3].object.id: expected a string or an
//! object`). It reads no clock, opens no file or socket and keeps no state:
//! the HTTP gateway, the `rollcall normalize` command and the fuzz targets
//! all call the same functions.
//!
//! | module | format |
//! |---|---|
//! | [`caliper`] | 1EdTech Caliper 1.1 and 1.2 envelopes |
//! | [`xapi`] | xAPI 1.0.3 and 2.0 statements |
//! | [`canvas`] | Canvas Live Events (Canvas form and its Caliper 1.1 form) |
//! | [`zoom`] | Zoom meeting webhooks, URL validation and the signature check |
//! | [`native`] | rollcall's own ActivityEvent JSON, and a CSV of teacher-logged contacts and returned packets |
//! | [`identity`] | the identity view and its CSV form |
//! | [`oneroster`] | a OneRoster 1.1 or 1.2 CSV bulk export, to StudentRecords and identities |
//! | [`calendar_csv`] | school calendars as CSV, to SchoolCalendars |
//! | [`encoded`] | a request's events as the gateway produces them: Avro records in one buffer, Caliper's written straight from the body |
//!
//! A request is taken whole or refused whole ([`Rejected`] holds every
//! error found): a platform re-sends a refused request, and accepting half
//! of it would make the re-sent half look new while the other half is a
//! duplicate. Three outcomes are not errors and are reported in [`Outcome`]:
//! events, events waiting for an identity that the view does not have yet,
//! and platform events with no attendance meaning, counted by action.

pub mod calendar_csv;
pub mod caliper;
pub mod canvas;
pub mod encoded;
#[doc(hidden)]
pub mod fuzzing;
pub mod identity;
mod json;
pub mod native;
pub mod oneroster;
pub mod xapi;
pub mod zoom;

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use rollcall_model::{ActivityEvent, ActivityKind, Direction};
use sha2::{Digest, Sha256};

pub use encoded::{encode, Encoded, EncodedEvent};
pub use identity::{IdType, Identity, IdentityKey, IdentityView};

/// The formats `rollcall normalize` and the gateway read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Caliper,
    Xapi,
    Canvas,
    Zoom,
    Native,
}

impl Format {
    pub const ALL: [Format; 5] = [Format::Caliper, Format::Xapi, Format::Canvas, Format::Zoom, Format::Native];

    /// The format's name, which is also the default source name.
    pub fn name(self) -> &'static str {
        match self {
            Format::Caliper => "caliper",
            Format::Xapi => "xapi",
            Format::Canvas => "canvas",
            Format::Zoom => "zoom",
            Format::Native => "native",
        }
    }

    pub fn from_name(s: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == s)
    }
}

/// Normalizes `body` in `format` with the default options of each format;
/// `source` names the platform instance (the identity view's `source`
/// column) and defaults to the format's name.
pub fn normalize(format: Format, body: &[u8], ids: &IdentityView, source: Option<&str>) -> Result<Outcome, Rejected> {
    let source = source.unwrap_or(format.name());
    match format {
        Format::Caliper => caliper::normalize(body, ids, source),
        Format::Xapi => xapi::normalize(body, ids, &xapi::XapiOptions::new(source)),
        Format::Canvas => canvas::normalize(body, ids, source),
        Format::Zoom => zoom::normalize(body, ids, source),
        Format::Native => native::normalize(body, if source == "native" { None } else { Some(source) }),
    }
}

/// What a request normalized to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Events whose student (and class and staff member, where named) the
    /// identity view knows, in the order of the request.
    pub events: Vec<ActivityEvent>,
    /// Events naming a person or class the view does not know yet.
    pub waiting: Vec<Waiting>,
    /// Platform events with no attendance meaning, counted by what they
    /// were (`NavigationEvent.NavigatedTo by a SoftwareApplication`,
    /// `grade_change`, a verb IRI): accepted, so the platform does not retry.
    pub ignored: BTreeMap<String, u64>,
}

impl Outcome {
    pub(crate) fn ignore(&mut self, what: impl Into<String>) {
        *self.ignored.entry(what.into()).or_default() += 1;
    }
}

/// An event held back until the identity view knows everything it names.
/// Its `student_id`, `section_id` and `staff_id` hold the platform's own
/// keys (all of them, known or not, and `school_id` is empty), so that
/// [`resolve`] can finish it later against a newer view.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    /// Where it is in the request (`data[2]`, `[0]`).
    pub place: String,
    /// What the view lacks.
    pub unknown: Vec<IdentityKey>,
    pub event: ActivityEvent,
}

/// What an event with the platform's own keys stands for in a view.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// Every key is known: the event with SIS ids and the student's school.
    Ready(Box<ActivityEvent>),
    /// The person is known as staff, not as a student: no attendance meaning.
    Staff,
    /// What the view lacks.
    Waiting(Vec<IdentityKey>),
}

/// Resolves an event whose `student_id`, `section_id` and `staff_id` are
/// the platform's own keys for its `source` (a [`Waiting`] event, or one
/// read back from the waiting topic). Pure: the gateway calls it when a
/// request comes in and again whenever its view of the identities grows.
pub fn resolve(raw: &ActivityEvent, ids: &IdentityView) -> Resolution {
    match resolve_owned(raw.clone(), ids) {
        Resolved::Ready(e) => Resolution::Ready(Box::new(e)),
        Resolved::Staff => Resolution::Staff,
        Resolved::Waiting(unknown, _) => Resolution::Waiting(unknown),
    }
}

/// [`Resolution`], with the event moved rather than copied: a request's
/// events are resolved as they are read, and each was cloned whole here.
enum Resolved {
    Ready(ActivityEvent),
    Staff,
    Waiting(Vec<IdentityKey>, ActivityEvent),
}

fn resolve_owned(mut raw: ActivityEvent, ids: &IdentityView) -> Resolved {
    let source = raw.source.as_str();
    let key = |kind, external_id: &str| IdentityKey { source: source.to_string(), kind, external_id: external_id.to_string() };
    let student = ids.get(source, IdType::Student, &raw.student_id);
    if student.is_none() && ids.get(source, IdType::Staff, &raw.student_id).is_some() {
        return Resolved::Staff;
    }
    let mut unknown = Vec::new();
    if student.is_none() {
        unknown.push(key(IdType::Student, &raw.student_id));
    }
    let mut lookup = |kind, k: &Option<String>| -> Option<&Identity> {
        let k = k.as_deref()?;
        let found = ids.get(source, kind, k);
        if found.is_none() {
            unknown.push(key(kind, k));
        }
        found
    };
    let section = lookup(IdType::Section, &raw.section_id);
    let staff = lookup(IdType::Staff, &raw.staff_id);
    match student {
        Some(s) if unknown.is_empty() => {
            let (section, staff) = (section.map(|i| i.id.clone()), staff.map(|i| i.id.clone()));
            raw.student_id.clone_from(&s.id);
            raw.school_id.clone_from(&s.school_id);
            raw.section_id = section;
            raw.staff_id = staff;
            Resolved::Ready(raw)
        }
        _ => Resolved::Waiting(unknown, raw),
    }
}

/// One problem with a request, naming its place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// The body does not parse as JSON.
    #[error("not JSON (line {line}, column {column}): {message}")]
    NotJson { line: usize, column: usize, message: String },
    /// A field is missing, has the wrong type or an impossible value.
    #[error("{place}: {problem}")]
    Invalid { place: String, problem: String },
    /// A Caliper version this crate does not read (1.0, or an unknown
    /// `dataVersion`): the gateway answers 422 as Caliper §6.1 asks.
    #[error("{place}: Caliper {found} is not supported; send Caliper 1.1 or 1.2 (dataVersion http://purl.imsglobal.org/ctx/caliper/v1p1 or http://purl.imsglobal.org/ctx/caliper/v1p2)")]
    UnsupportedVersion { place: String, found: String },
    /// One batch repeats an id (xAPI: the LRS answers 400).
    #[error("{place}: id `{id}` is repeated in the same batch (first at {first})")]
    DuplicateId { place: String, id: String, first: String },
    /// The Zoom signature header is missing, malformed or does not match.
    #[error("x-zm-signature: {problem}")]
    BadSignature { problem: String },
    /// The Zoom request timestamp is too far from now (a replay).
    #[error("x-zm-request-timestamp: {timestamp} is {skew_seconds} s away from now ({now}); at most {max} s is accepted")]
    StaleTimestamp { timestamp: i64, now: i64, skew_seconds: i64, max: i64 },
    /// A CSV row or header is wrong. `line` is 1-based, the header is line 1.
    #[error("line {line}{}: {problem}", column.as_ref().map(|c| format!(", column `{c}`")).unwrap_or_default())]
    Csv { line: u64, column: Option<String>, problem: String },
}

impl IngestError {
    /// The HTTP status the gateway answers for a request refused with this
    /// error: 401 for a signature, 422 for an unsupported Caliper version,
    /// 400 otherwise.
    pub fn http_status(&self) -> u16 {
        match self {
            IngestError::BadSignature { .. } | IngestError::StaleTimestamp { .. } => 401,
            IngestError::UnsupportedVersion { .. } => 422,
            _ => 400,
        }
    }

    pub(crate) fn invalid(place: &str, problem: impl Into<String>) -> IngestError {
        IngestError::Invalid { place: place_name(place), problem: problem.into() }
    }
}

/// The root of a document has no path; say so in words.
pub(crate) fn place_name(place: &str) -> String {
    if place.is_empty() {
        "(the document)".to_string()
    } else {
        place.to_string()
    }
}

/// A refused request: every error found, in the order of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub errors: Vec<IngestError>,
}

impl Rejected {
    /// The status the gateway answers: the most specific of the errors'.
    pub fn http_status(&self) -> u16 {
        let statuses = self.errors.iter().map(IngestError::http_status);
        statuses.clone().find(|s| *s == 401).or_else(|| statuses.clone().find(|s| *s == 422)).unwrap_or(400)
    }
}

impl From<IngestError> for Rejected {
    fn from(e: IngestError) -> Rejected {
        Rejected { errors: vec![e] }
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Rejected {}

/// A deterministic event id for formats that carry none (Canvas, Zoom):
/// `prefix:` and the first 128 bits of SHA-256 over the identifying fields,
/// each length-prefixed so that no two different field lists collide by
/// concatenation. A re-delivered event gets the same id and so is a duplicate.
pub(crate) fn derived_id(prefix: &str, fields: &[&str]) -> String {
    let mut h = Sha256::new();
    for f in fields {
        h.update((f.len() as u64).to_be_bytes());
        h.update(f.as_bytes());
    }
    let digest = h.finalize();
    let mut s = String::with_capacity(prefix.len() + 33);
    s.push_str(prefix);
    s.push(':');
    for b in &digest[..16] {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// An event as a format reads it, with the platform's own keys for the
/// people and the class; [`Normalizer::emit`] resolves them.
#[derive(Debug, Clone)]
pub(crate) struct Draft {
    pub event_id: String,
    pub kind: ActivityKind,
    pub occurred_at: DateTime<Utc>,
    pub student_key: String,
    pub section_key: Option<String>,
    pub staff_key: Option<String>,
    pub direction: Option<Direction>,
    pub assigned_date: Option<NaiveDate>,
    pub live_session_id: Option<String>,
    pub duration_seconds: Option<i64>,
    pub attributes: BTreeMap<String, String>,
}

impl Draft {
    pub fn new(event_id: String, kind: ActivityKind, occurred_at: DateTime<Utc>, student_key: String) -> Draft {
        Draft {
            event_id,
            kind,
            occurred_at,
            student_key,
            section_key: None,
            staff_key: None,
            direction: None,
            assigned_date: None,
            live_session_id: None,
            duration_seconds: None,
            attributes: BTreeMap::new(),
        }
    }

    pub fn attr(&mut self, k: &str, v: impl Into<String>) {
        let v = v.into();
        if !v.is_empty() {
            self.attributes.insert(k.to_string(), v);
        }
    }
}

/// Who a person key stands for in the identity view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Student,
    Staff,
}

/// The state of one normalization: the view, the source, what came out.
pub(crate) struct Normalizer<'a> {
    pub ids: &'a IdentityView,
    pub source: &'a str,
    pub out: Outcome,
    pub errors: Vec<IngestError>,
}

impl<'a> Normalizer<'a> {
    pub fn new(ids: &'a IdentityView, source: &'a str) -> Normalizer<'a> {
        Normalizer { ids, source, out: Outcome::default(), errors: Vec::new() }
    }

    /// Whether the view knows this person key as a student or as staff.
    pub fn role_of(&self, key: &str) -> Option<Role> {
        if self.ids.get(self.source, IdType::Student, key).is_some() {
            Some(Role::Student)
        } else if self.ids.get(self.source, IdType::Staff, key).is_some() {
            Some(Role::Staff)
        } else {
            None
        }
    }

    /// Files a draft as an event, a waiting event, or (when the actor is
    /// known only as staff, and so no student is named) an ignored action
    /// under `label`.
    pub fn emit(&mut self, place: &str, label: &str, d: Draft) {
        self.emit_with(|| place_name(place), || label.to_string(), d)
    }

    /// [`Normalizer::emit`], with the place and the label made only when
    /// they are needed (a waiting event, staff).
    pub fn emit_with(&mut self, place: impl FnOnce() -> String, label: impl FnOnce() -> String, d: Draft) {
        let raw = ActivityEvent {
            event_id: d.event_id,
            source: self.source.to_string(),
            student_id: d.student_key,
            school_id: String::new(),
            section_id: d.section_key,
            staff_id: d.staff_key,
            kind: d.kind,
            direction: d.direction,
            occurred_at: d.occurred_at,
            assigned_date: d.assigned_date,
            live_session_id: d.live_session_id,
            duration_seconds: d.duration_seconds,
            attributes: d.attributes,
            received_at: None,
        };
        match resolve_owned(raw, self.ids) {
            Resolved::Ready(event) => self.out.events.push(event),
            // Staff activity (a teacher's login, a teacher in a meeting) is
            // not a student's attendance.
            Resolved::Staff => self.out.ignore(format!("{} by staff", label())),
            Resolved::Waiting(unknown, raw) => self.out.waiting.push(Waiting { place: place(), unknown, event: raw }),
        }
    }

    pub fn finish(self) -> Result<Outcome, Rejected> {
        if self.errors.is_empty() {
            Ok(self.out)
        } else {
            Err(Rejected { errors: self.errors })
        }
    }
}

/// An instant kept to the microsecond: the precision of the topic's Avro
/// `timestamp-micros`. A source may send nanoseconds; without this the
/// event would differ between its JSON and its Avro form.
pub(crate) fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::SubsecRound;
    t.trunc_subsecs(6)
}

/// Seconds of an ISO 8601 duration (`PT52M10S`, `PT05M21S`, `PT1H0M0S`,
/// `P1DT2H`, `PT1.25S`), read leniently: sources differ in zero padding and
/// in which parts they write. Years and months have no fixed length and are
/// refused. Fractions are rounded to the nearest second.
pub(crate) fn iso_duration_seconds(s: &str) -> Option<i64> {
    let rest = s.strip_prefix('P').or_else(|| s.strip_prefix('p'))?;
    let mut total = 0f64;
    let mut in_time = false;
    let mut num = String::new();
    let mut any = false;
    for c in rest.chars() {
        match c {
            'T' | 't' if num.is_empty() && !in_time => in_time = true,
            '0'..='9' | '.' | ',' => num.push(if c == ',' { '.' } else { c }),
            _ => {
                let n: f64 = num.parse().ok()?;
                num.clear();
                let unit = match (c.to_ascii_uppercase(), in_time) {
                    ('W', false) => 604_800.0,
                    ('D', false) => 86_400.0,
                    ('H', true) => 3_600.0,
                    ('M', true) => 60.0,
                    ('S', true) => 1.0,
                    _ => return None,
                };
                total += n * unit;
                any = true;
            }
        }
    }
    if !num.is_empty() || !any || !total.is_finite() || total > 1e12 {
        return None;
    }
    Some(total.round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_leniently() {
        assert_eq!(iso_duration_seconds("PT52M10S"), Some(3130));
        assert_eq!(iso_duration_seconds("PT05M21S"), Some(321));
        assert_eq!(iso_duration_seconds("PT1H0M0S"), Some(3600));
        assert_eq!(iso_duration_seconds("P1DT2H"), Some(93_600));
        assert_eq!(iso_duration_seconds("PT1.25S"), Some(1));
        assert_eq!(iso_duration_seconds("PT3000S"), Some(3000));
        for bad in ["", "P", "PT", "P1M", "PT5", "5M", "PT1H2X", "PTT1S", "P1.2.3D"] {
            assert_eq!(iso_duration_seconds(bad), None, "{bad}");
        }
    }

    #[test]
    fn instants_are_kept_to_the_microsecond() {
        let t = DateTime::parse_from_rfc3339("2025-02-19T15:58:00.0510102Z").unwrap().with_timezone(&Utc);
        assert_eq!(micros(t).to_rfc3339(), "2025-02-19T15:58:00.051010+00:00");
        let before_1970 = DateTime::parse_from_rfc3339("1969-12-31T23:59:59.9999999Z").unwrap().with_timezone(&Utc);
        assert_eq!(micros(before_1970).timestamp_micros(), before_1970.timestamp_micros());
    }

    #[test]
    fn derived_ids_are_stable_and_separate_fields() {
        assert_eq!(derived_id("canvas", &["a", "b"]), derived_id("canvas", &["a", "b"]));
        assert_ne!(derived_id("canvas", &["ab", ""]), derived_id("canvas", &["a", "b"]));
        assert_eq!(derived_id("zoom", &["x"]).len(), "zoom:".len() + 32);
    }

    #[test]
    fn rejected_status_prefers_the_specific_one() {
        let r = Rejected {
            errors: vec![
                IngestError::invalid("a", "b"),
                IngestError::UnsupportedVersion { place: "dataVersion".into(), found: "1.0".into() },
            ],
        };
        assert_eq!(r.http_status(), 422);
        assert_eq!(Rejected::from(IngestError::invalid("", "x")).to_string(), "(the document): x");
    }
}
