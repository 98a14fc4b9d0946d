//! Topic names, and the records on them: Avro single-object encoding, with
//! the checks that decide whether an input record is usable or a dead letter.

use rollcall_model::avro::{AvroError, AvroRecord};
use rollcall_model::{AbsenceReport, ActivityEvent, DeadLetter, DeadLetterKind, SchoolCalendar, StudentRecord};
use rollcall_registry::{Codec, DecodeError};

pub const ACTIVITY: &str = "lms.activity.v1";
pub const ROSTER: &str = "sis.roster.v1";
pub const REPORTS: &str = "sis.absence-reports.v1";
pub const CALENDAR: &str = "sis.calendar.v1";
pub const DETERMINATIONS: &str = "attendance.determinations.v1";
pub const OUTREACH: &str = "attendance.outreach.v1";
pub const DLQ: &str = "rollcall.dlq.v1";
/// What a platform's ids stand for (the gateway reads it whole).
pub const IDENTITIES: &str = "sis.identities.v1";
/// Events the gateway took whose identities were not known yet, held until
/// they are or until the wait ends (then dead-lettered `UNKNOWN_IDENTITY`).
pub const WAITING: &str = "ingest.waiting.v1";
/// A roster tombstone (key: the student id, no value) with this header asks
/// the processor to erase the student (`rollcall forget`); a tombstone
/// without it is a dead letter (`MISSING_VALUE`), so that a roster feed
/// that deletes records by mistake never erases anyone's attendance.
pub const FORGET_HEADER: &str = "rollcall.forget";
/// The changelog belongs to a consumer group (the application, as Kafka
/// Streams names `<application.id>-<store>-changelog`): `<group>-changelog`,
/// so that two groups over the same inputs never share state.
pub const CHANGELOG_SUFFIX: &str = "-changelog";
/// The group of `rollcall run` when none is given.
pub const DEFAULT_GROUP: &str = "rollcall";

/// The topic names in use: the standard names, optionally behind a prefix
/// (one broker can then hold several isolated pipelines, as tests do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    pub activity: String,
    pub roster: String,
    pub reports: String,
    pub calendar: String,
    pub determinations: String,
    pub outreach: String,
    pub dlq: String,
    pub changelog: String,
    pub identities: String,
    pub waiting: String,
}

impl Topics {
    /// The topics of the default group.
    pub fn with_prefix(prefix: &str) -> Topics {
        Topics::of_group(prefix, DEFAULT_GROUP)
    }

    /// The topics a group reads and writes: the inputs and outputs behind
    /// `prefix`, and the group's own changelog.
    pub fn of_group(prefix: &str, group: &str) -> Topics {
        let t = |n: &str| format!("{prefix}{n}");
        Topics {
            activity: t(ACTIVITY),
            roster: t(ROSTER),
            reports: t(REPORTS),
            calendar: t(CALENDAR),
            determinations: t(DETERMINATIONS),
            outreach: t(OUTREACH),
            dlq: t(DLQ),
            changelog: format!("{prefix}{group}{CHANGELOG_SUFFIX}"),
            identities: t(IDENTITIES),
            waiting: t(WAITING),
        }
    }

    /// The same, writing the outputs (determinations, outreach, dead
    /// letters) behind `prefix` instead: a trial group beside production.
    pub fn with_outputs_behind(mut self, prefix: &str) -> Topics {
        self.determinations = format!("{prefix}{DETERMINATIONS}");
        self.outreach = format!("{prefix}{OUTREACH}");
        self.dlq = format!("{prefix}{DLQ}");
        self
    }

    /// The partitioned inputs, in the order records of one timestamp are
    /// applied: who the student is, then what was reported, then what happened.
    pub fn keyed_inputs(&self) -> [&str; 3] {
        [&self.roster, &self.reports, &self.activity]
    }

    pub fn input_rank(&self, topic: &str) -> usize {
        self.keyed_inputs().iter().position(|t| *t == topic).unwrap_or(3)
    }

    /// Which input a topic carries, if it is one of the inputs.
    pub fn kind(&self, topic: &str) -> Option<InputTopic> {
        [
            (&self.activity, InputTopic::Activity),
            (&self.roster, InputTopic::Roster),
            (&self.reports, InputTopic::Reports),
            (&self.calendar, InputTopic::Calendar),
        ]
        .into_iter()
        .find(|(t, _)| t.as_str() == topic)
        .map(|(_, k)| k)
    }
}

/// The four inputs. The processor reads only these topics (the keyed ones
/// by subscription to their exact names, the calendars by assignment), so
/// a record always comes from one of them: there is no "unknown topic" to
/// dead-letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputTopic {
    Activity,
    Roster,
    Reports,
    Calendar,
}

impl InputTopic {
    /// The standard (unprefixed) topic name.
    pub fn name(self) -> &'static str {
        match self {
            InputTopic::Activity => ACTIVITY,
            InputTopic::Roster => ROSTER,
            InputTopic::Reports => REPORTS,
            InputTopic::Calendar => CALENDAR,
        }
    }
}

/// A usable input record.
#[derive(Debug, Clone)]
pub enum Input {
    Activity(ActivityEvent),
    Roster(StudentRecord),
    Report(AbsenceReport),
    Calendar(SchoolCalendar),
}

/// Why an input record is a dead letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct Unusable {
    /// One of the wire checks of [`DeadLetterKind`] (`is_wire_check`).
    pub kind: DeadLetterKind,
    pub message: String,
}

fn unusable(kind: DeadLetterKind, message: impl Into<String>) -> Unusable {
    Unusable { kind, message: message.into() }
}

fn classify(e: AvroError) -> Unusable {
    let kind = match &e {
        AvroError::Header(_) => DeadLetterKind::NotAvro,
        AvroError::Fingerprint { .. } => DeadLetterKind::WrongSchema,
        AvroError::Field { message, .. } if message.contains("unknown") => DeadLetterKind::UnknownEnum,
        // Same schema, a symbol position it does not have: a writer with more symbols.
        AvroError::Decode(message) if message.contains("enum index") => DeadLetterKind::UnknownEnum,
        _ => DeadLetterKind::SchemaInvalid,
    };
    unusable(kind, e.to_string())
}

/// Why an input record could not be decoded: it is unusable (a dead
/// letter), or the schema registry could not be asked about its schema id
/// (the record is not at fault: it must be read again later).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error(transparent)]
    Unusable(#[from] Unusable),
    #[error("{0}")]
    Registry(#[source] DecodeError),
}

fn classify_decode(e: DecodeError) -> InputError {
    match e {
        DecodeError::Avro(e) => classify(e).into(),
        e @ DecodeError::Registry { .. } => InputError::Registry(e),
        // Each names the schema id in its text.
        e @ (DecodeError::UnknownId { .. } | DecodeError::WrongSchema { .. } | DecodeError::NoRegistry { .. }) => {
            unusable(DeadLetterKind::WrongSchema, e.to_string()).into()
        }
    }
}

/// Decodes an input record in the single-object encoding and checks its key
/// against its content (a Confluent-framed value is WRONG_SCHEMA: no
/// registry to read it with).
pub fn decode_input(topic: InputTopic, key: Option<&[u8]>, value: Option<&[u8]>) -> Result<Input, Unusable> {
    match decode_input_with(&Codec::single_object(), topic, key, value) {
        Ok(i) => Ok(i),
        Err(InputError::Unusable(u)) => Err(u),
        Err(InputError::Registry(e)) => Err(unusable(DeadLetterKind::WrongSchema, e.to_string())),
    }
}

/// Decodes an input record in either format (told apart by its first
/// byte; see `rollcall_registry::Codec`) and checks its key against its content.
pub fn decode_input_with(
    codec: &Codec,
    topic: InputTopic,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Result<Input, InputError> {
    let decode = |value: &[u8]| -> Result<Input, InputError> {
        Ok(match topic {
            InputTopic::Activity => Input::Activity(codec.decode(value).map_err(classify_decode)?),
            InputTopic::Roster => Input::Roster(codec.decode(value).map_err(classify_decode)?),
            InputTopic::Reports => Input::Report(codec.decode(value).map_err(classify_decode)?),
            InputTopic::Calendar => Input::Calendar(codec.decode(value).map_err(classify_decode)?),
        })
    };
    let value = value.ok_or_else(|| unusable(DeadLetterKind::MissingValue, "the record has no value"))?;
    let key = match key {
        Some(k) => Some(std::str::from_utf8(k).map_err(|_| unusable(DeadLetterKind::KeyMismatch, "the key is not UTF-8"))?),
        None => None,
    };
    let keyed = |want: &str| -> Result<(), Unusable> {
        match key {
            None | Some("") => Err(unusable(
                DeadLetterKind::MissingKey,
                format!("records of {} are keyed by `{want}`'s id; this one has no key", topic.name()),
            )),
            Some(k) if k != want => {
                Err(unusable(DeadLetterKind::KeyMismatch, format!("key `{k}` does not match the record's id `{want}`")))
            }
            Some(_) => Ok(()),
        }
    };
    let input = decode(value)?;
    match &input {
        Input::Activity(e) => keyed(&e.student_id)?,
        Input::Roster(r) => keyed(&r.student_id)?,
        Input::Report(r) => keyed(&r.student_id)?,
        Input::Calendar(c) => keyed(&c.school_id)?,
    }
    Ok(input)
}

/// The dead letter of an input record: where it was read (`at`: partition
/// and offset, when known), its key as text and its bytes as they were.
pub fn dead_letter(
    topic: &str,
    at: Option<(i32, i64)>,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    kind: DeadLetterKind,
    message: String,
    failed_at: chrono::DateTime<chrono::Utc>,
) -> DeadLetter {
    DeadLetter {
        topic: topic.to_string(),
        partition: at.map(|a| a.0),
        offset: at.map(|a| a.1),
        key: key.map(|k| String::from_utf8_lossy(k).into_owned()),
        value: value.map(<[u8]>::to_vec).unwrap_or_default(),
        error_kind: kind.to_string(),
        message,
        failed_at,
    }
}

/// The dead letter of an event the engine held and then refused (it
/// waited for its roster record or calendar in vain): its topic and key as
/// they were, its bytes re-encoded (the engine keeps the event, not the
/// record), and no partition or offset, since the record was consumed long
/// before. `rollcall dlq replay` puts it back on its topic as it is.
pub fn refused_dead_letter(topics: &Topics, r: &rollcall_engine::Refusal) -> Result<DeadLetter, AvroError> {
    Ok(DeadLetter {
        topic: topics.activity.clone(),
        partition: None,
        offset: None,
        key: Some(r.event.student_id.clone()),
        value: r.event.to_single_object()?,
        error_kind: r.rejection.kind.to_string(),
        message: r.rejection.message.clone(),
        failed_at: r.at,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    /// A valid event of student `s1`, for this crate's tests.
    pub(crate) fn event() -> ActivityEvent {
        ActivityEvent {
            event_id: "e1".into(),
            source: "canvas".into(),
            student_id: "s1".into(),
            school_id: "x".into(),
            section_id: None,
            staff_id: None,
            kind: rollcall_model::ActivityKind::Login,
            direction: None,
            occurred_at: DateTime::<Utc>::from_timestamp(1_600_000_000, 0).unwrap(),
            assigned_date: None,
            live_session_id: None,
            duration_seconds: None,
            attributes: Default::default(),
            received_at: None,
        }
    }

    #[test]
    fn good_record_decodes() {
        let v = event().to_single_object().unwrap();
        assert!(matches!(decode_input(InputTopic::Activity, Some(b"s1"), Some(&v)), Ok(Input::Activity(_))));
    }

    #[test]
    fn each_bad_record_has_its_kind() {
        let v = event().to_single_object().unwrap();
        let kind = |t, k: Option<&[u8]>, v: Option<&[u8]>| decode_input(t, k, v).unwrap_err().kind;
        use DeadLetterKind::*;
        use InputTopic::{Activity, Roster};
        assert_eq!(kind(Activity, None, Some(&v)), MissingKey);
        assert_eq!(kind(Activity, Some(b"s2"), Some(&v)), KeyMismatch);
        assert_eq!(kind(Activity, Some(b"\xff"), Some(&v)), KeyMismatch);
        assert_eq!(kind(Activity, Some(b"s1"), None), MissingValue);
        assert_eq!(kind(Activity, Some(b"s1"), Some(b"{\"json\":1}")), NotAvro);
        assert_eq!(kind(Roster, Some(b"s1"), Some(&v)), WrongSchema);
        let mut bad = v.clone();
        bad.truncate(bad.len() - 3);
        assert_eq!(kind(Activity, Some(b"s1"), Some(&bad)), SchemaInvalid);
    }

    #[test]
    fn a_confluent_record_without_a_registry_is_wrong_schema_naming_its_id() {
        let v = rollcall_registry::confluent_frame(4242, &event()).unwrap();
        let u = decode_input(InputTopic::Activity, Some(b"s1"), Some(&v)).unwrap_err();
        assert_eq!(u.kind, DeadLetterKind::WrongSchema);
        assert!(u.message.contains("4242"), "{}", u.message);
        // The single-object form still decodes through a codec with no registry.
        let v = event().to_single_object().unwrap();
        let codec = Codec::single_object();
        assert!(matches!(decode_input_with(&codec, InputTopic::Activity, Some(b"s1"), Some(&v)), Ok(Input::Activity(_))));
    }
}
