//! Fixtures shared by the engine's unit tests.

use chrono::{DateTime, Utc};
use rollcall_model::{ActivityEvent, ActivityKind, CalendarDay, DayType, GradeLevel, SchoolCalendar, StudentRecord};

use crate::kv::MemStore;

use super::{Engine, EngineConfig};

pub(super) fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// An mmsd school in Chicago in session Monday and Tuesday 2020-10-05/06,
/// 08:00–15:00, with these third graders.
pub(super) fn chicago_school(students: &[&str]) -> Engine<MemStore> {
    chicago_school_with(EngineConfig::default(), students)
}

/// [`chicago_school`] with an engine of this configuration.
pub(super) fn chicago_school_with(config: EngineConfig, students: &[&str]) -> Engine<MemStore> {
    let mut e = Engine::open(MemStore::default(), config).unwrap();
    let day = |d: &str| CalendarDay {
        date: d.parse().unwrap(),
        instructional: true,
        day_type: DayType::Full,
        start: "08:00".parse().unwrap(),
        end: "15:00".parse().unwrap(),
    };
    e.load_calendar(SchoolCalendar {
        school_id: "sch".into(),
        timezone: "America/Chicago".into(),
        policy: "mmsd".into(),
        days: vec![day("2020-10-05"), day("2020-10-06")],
    })
    .unwrap();
    for id in students {
        e.upsert_student(StudentRecord::new(*id, "sch", GradeLevel::G3)).unwrap();
    }
    e
}

/// A submission at `sch` for Monday 2020-10-05, made at `t`.
pub(super) fn submission(id: &str, student: &str, t: &str) -> ActivityEvent {
    ActivityEvent {
        event_id: id.into(),
        source: "lms".into(),
        student_id: student.into(),
        school_id: "sch".into(),
        section_id: None,
        staff_id: None,
        kind: ActivityKind::Submission,
        direction: None,
        occurred_at: at(t),
        assigned_date: Some("2020-10-05".parse().unwrap()),
        live_session_id: None,
        duration_seconds: None,
        attributes: Default::default(),
        received_at: None,
    }
}
