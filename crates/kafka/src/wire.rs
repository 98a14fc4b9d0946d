//! Topic names, and the records on them: Avro single-object encoding, with
//! the checks that decide whether an input record is usable or a dead letter.

use rollcall_model::avro::{AvroError, AvroRecord};
use rollcall_model::{AbsenceReport, ActivityEvent, DeadLetter, SchoolCalendar, StudentRecord};

pub const ACTIVITY: &str = "lms.activity.v1";
pub const ROSTER: &str = "sis.roster.v1";
pub const REPORTS: &str = "sis.absence-reports.v1";
pub const CALENDAR: &str = "sis.calendar.v1";
pub const DETERMINATIONS: &str = "attendance.determinations.v1";
pub const OUTREACH: &str = "attendance.outreach.v1";
pub const DLQ: &str = "rollcall.dlq.v1";
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
        }
    }

    /// The partitioned inputs, in the order records of one timestamp are
    /// applied: who the student is, then what was reported, then what happened.
    pub fn keyed_inputs(&self) -> [&str; 3] {
        [&self.roster, &self.reports, &self.activity]
    }

    pub fn input_rank(&self, topic: &str) -> usize {
        self.keyed_inputs().iter().position(|t| *t == topic).unwrap_or(3)
    }

    /// Which input a topic carries.
    pub fn kind(&self, topic: &str) -> Option<&'static str> {
        [(&self.activity, ACTIVITY), (&self.roster, ROSTER), (&self.reports, REPORTS), (&self.calendar, CALENDAR)]
            .into_iter()
            .find(|(t, _)| t.as_str() == topic)
            .map(|(_, k)| k)
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
    /// DLQ error kind: MISSING_KEY, KEY_MISMATCH, MISSING_VALUE, NOT_AVRO,
    /// WRONG_SCHEMA, UNKNOWN_ENUM, SCHEMA_INVALID, UNKNOWN_TOPIC.
    pub kind: &'static str,
    pub message: String,
}

fn unusable(kind: &'static str, message: impl Into<String>) -> Unusable {
    Unusable { kind, message: message.into() }
}

fn classify(e: AvroError) -> Unusable {
    let kind = match &e {
        AvroError::Header(_) => "NOT_AVRO",
        AvroError::Fingerprint { .. } => "WRONG_SCHEMA",
        AvroError::Field { message, .. } if message.contains("unknown") => "UNKNOWN_ENUM",
        // Same schema, a symbol position it does not have: a writer with more symbols.
        AvroError::Decode(message) if message.contains("enum index") => "UNKNOWN_ENUM",
        _ => "SCHEMA_INVALID",
    };
    unusable(kind, e.to_string())
}

fn decode<T: AvroRecord>(value: &[u8]) -> Result<T, Unusable> {
    T::from_single_object(value).map_err(classify)
}

/// Decodes an input record and checks its key against its content. `topic`
/// is the standard (unprefixed) name of the input.
pub fn decode_input(topic: &str, key: Option<&[u8]>, value: Option<&[u8]>) -> Result<Input, Unusable> {
    let value = value.ok_or_else(|| unusable("MISSING_VALUE", "the record has no value"))?;
    let key = match key {
        Some(k) => Some(std::str::from_utf8(k).map_err(|_| unusable("KEY_MISMATCH", "the key is not UTF-8"))?),
        None => None,
    };
    let keyed = |want: &str| -> Result<(), Unusable> {
        match key {
            None | Some("") => Err(unusable("MISSING_KEY", format!("records of {topic} are keyed by `{want}`'s id; this one has no key"))),
            Some(k) if k != want => Err(unusable("KEY_MISMATCH", format!("key `{k}` does not match the record's id `{want}`"))),
            Some(_) => Ok(()),
        }
    };
    match topic {
        ACTIVITY => {
            let e: ActivityEvent = decode(value)?;
            keyed(&e.student_id)?;
            Ok(Input::Activity(e))
        }
        ROSTER => {
            let r: StudentRecord = decode(value)?;
            keyed(&r.student_id)?;
            Ok(Input::Roster(r))
        }
        REPORTS => {
            let r: AbsenceReport = decode(value)?;
            keyed(&r.student_id)?;
            Ok(Input::Report(r))
        }
        CALENDAR => {
            let c: SchoolCalendar = decode(value)?;
            keyed(&c.school_id)?;
            Ok(Input::Calendar(c))
        }
        other => Err(unusable("UNKNOWN_TOPIC", format!("rollcall does not read topic `{other}`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn event() -> ActivityEvent {
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
        }
    }

    #[test]
    fn good_record_decodes() {
        let v = event().to_single_object().unwrap();
        assert!(matches!(decode_input(ACTIVITY, Some(b"s1"), Some(&v)), Ok(Input::Activity(_))));
    }

    #[test]
    fn each_bad_record_has_its_kind() {
        let v = event().to_single_object().unwrap();
        let kind = |t, k: Option<&[u8]>, v: Option<&[u8]>| decode_input(t, k, v).unwrap_err().kind;
        assert_eq!(kind(ACTIVITY, None, Some(&v)), "MISSING_KEY");
        assert_eq!(kind(ACTIVITY, Some(b"s2"), Some(&v)), "KEY_MISMATCH");
        assert_eq!(kind(ACTIVITY, Some(b"s1"), None), "MISSING_VALUE");
        assert_eq!(kind(ACTIVITY, Some(b"s1"), Some(b"{\"json\":1}")), "NOT_AVRO");
        assert_eq!(kind(ROSTER, Some(b"s1"), Some(&v)), "WRONG_SCHEMA");
        let mut bad = v.clone();
        bad.truncate(bad.len() - 3);
        assert_eq!(kind(ACTIVITY, Some(b"s1"), Some(&bad)), "SCHEMA_INVALID");
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
        error_kind: r.rejection.kind.as_str().to_string(),
        message: r.rejection.message.clone(),
        failed_at: r.at,
    })
}
