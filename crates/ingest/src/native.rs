//! rollcall's own forms, for what already speaks our data model and for
//! what has no platform at all.
//!
//! **JSON**: one ActivityEvent or an array of them, in the canonical JSON
//! form of docs/data-model.md (the form scenario files use). Ids are SIS
//! ids already, so the identity view is not consulted; unknown fields are
//! refused, and an error names its place (`[3].occurred_at: …`). Instants
//! are kept to the microsecond, as the topic's Avro form keeps them.
//!
//! **CSV**: teacher-logged two-way contacts and returned learning packets.
//! The header is exactly
//!
//! ```text
//! event_id,kind,student_id,school_id,section_id,staff_id,occurred_at,assigned_date,method
//! ```
//!
//! | column | required | meaning |
//! |---|---|---|
//! | `event_id` | no | The row's id; when empty, `log:` and a hash of the kind, student, staff and time, so that a re-imported row is a duplicate. |
//! | `kind` | yes | `TWO_WAY_CONTACT` (a call, visit or conference) or `OFFLINE_WORK_RETURNED` (a packet handed back). |
//! | `student_id`, `school_id` | yes | SIS ids. |
//! | `section_id` | no | The class the contact or packet belongs to. |
//! | `staff_id` | for contacts | The staff member who made the contact (a contact is two-way with someone). |
//! | `occurred_at` | yes | RFC 3339 with an offset (`2025-02-19T10:30:00-06:00`). |
//! | `assigned_date` | no | `YYYY-MM-DD`: the school day a packet was assigned for. |
//! | `method` | no | How (`phone`, `home_visit`, `video`, ...): kept in `attributes.method`. |
//!
//! Rows become events with `source` `teacher_log` (or the configured
//! source). Which form a body is in is told by its first character (`{` or
//! `[` is JSON).

use chrono::{DateTime, NaiveDate, Utc};
use rollcall_model::{ActivityEvent, ActivityKind};

use crate::identity::read_csv;
use crate::{derived_id, IngestError, Outcome, Rejected};

pub const CSV_HEADER: [&str; 9] =
    ["event_id", "kind", "student_id", "school_id", "section_id", "staff_id", "occurred_at", "assigned_date", "method"];

/// The source of CSV rows when none is configured.
pub const DEFAULT_CSV_SOURCE: &str = "teacher_log";

/// Normalizes native JSON or CSV. `csv_source` names the source of CSV rows
/// (default `teacher_log`); JSON events keep their own `source`.
pub fn normalize(body: &[u8], csv_source: Option<&str>) -> Result<Outcome, Rejected> {
    let trimmed = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    match trimmed.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{' | b'[') => json(trimmed),
        _ => csv(trimmed, csv_source.unwrap_or(DEFAULT_CSV_SOURCE)),
    }
}

/// One ActivityEvent or an array of them.
pub fn json(body: &[u8]) -> Result<Outcome, Rejected> {
    let mut one_or_many: Vec<ActivityEvent> = match crate::json::parse_value(body)? {
        v @ serde_json::Value::Array(_) => {
            serde_path_to_error::deserialize(v).map_err(|e| path_error(e.path().to_string(), e.inner().to_string()))?
        }
        v => vec![serde_path_to_error::deserialize(v).map_err(|e| path_error(e.path().to_string(), e.inner().to_string()))?],
    };
    let mut errors = Vec::new();
    for (i, e) in one_or_many.iter_mut().enumerate() {
        e.occurred_at = crate::micros(e.occurred_at);
        for (field, value) in [("event_id", &e.event_id), ("student_id", &e.student_id), ("source", &e.source)] {
            if value.is_empty() {
                errors.push(IngestError::invalid(&format!("[{i}].{field}"), "empty"));
            }
        }
    }
    if !errors.is_empty() {
        return Err(Rejected { errors });
    }
    Ok(Outcome { events: one_or_many, ..Outcome::default() })
}

fn path_error(path: String, problem: String) -> Rejected {
    // serde_path_to_error writes the root as `.`.
    let place = if path == "." { String::new() } else { path };
    IngestError::invalid(&place, problem).into()
}

/// The CSV form (see the module documentation).
pub fn csv(body: &[u8], source: &str) -> Result<Outcome, Rejected> {
    let (rows, mut errors) = read_csv(body, &CSV_HEADER)?;
    let mut out = Outcome::default();
    for (line, row) in rows {
        match csv_row(line, &row, source) {
            Ok(e) => out.events.push(e),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(Rejected { errors: crate::identity::by_line(errors) })
    }
}

fn csv_row(line: u64, row: &[String], source: &str) -> Result<ActivityEvent, Vec<IngestError>> {
    let mut errors = Vec::new();
    let field = |name: &str| -> &str {
        let i = CSV_HEADER.iter().position(|h| *h == name).unwrap_or(0);
        row.get(i).map(String::as_str).unwrap_or("")
    };
    let mut err = |column: &str, problem: String| errors.push(IngestError::Csv { line, column: Some(column.into()), problem });
    let kind = match field("kind") {
        "TWO_WAY_CONTACT" => Some(ActivityKind::TwoWayContact),
        "OFFLINE_WORK_RETURNED" => Some(ActivityKind::OfflineWorkReturned),
        k => {
            err("kind", format!("`{k}` is not TWO_WAY_CONTACT or OFFLINE_WORK_RETURNED"));
            None
        }
    };
    for name in ["student_id", "school_id"] {
        if field(name).is_empty() {
            err(name, "empty".into());
        }
    }
    if kind == Some(ActivityKind::TwoWayContact) && field("staff_id").is_empty() {
        err("staff_id", "empty: a two-way contact is made by a staff member".into());
    }
    let at = match DateTime::parse_from_rfc3339(field("occurred_at")) {
        Ok(t) => Some(crate::micros(t.with_timezone(&Utc))),
        Err(e) => {
            err("occurred_at", format!("`{}` is not an RFC 3339 date and time with an offset: {e}", field("occurred_at")));
            None
        }
    };
    let assigned = match field("assigned_date") {
        "" => None,
        d => match NaiveDate::parse_from_str(d, "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(_) => {
                err("assigned_date", format!("`{d}` is not a date (YYYY-MM-DD)"));
                None
            }
        },
    };
    let (Some(kind), Some(at), true) = (kind, at, errors.is_empty()) else {
        return Err(errors);
    };
    let opt = |name: &str| Some(field(name).to_string()).filter(|s| !s.is_empty());
    let event_id = match field("event_id") {
        "" => derived_id("log", &[kind.as_str(), field("student_id"), field("staff_id"), &at.to_rfc3339()]),
        id => id.to_string(),
    };
    let mut attributes = std::collections::BTreeMap::new();
    if let Some(m) = opt("method") {
        attributes.insert("method".to_string(), m);
    }
    Ok(ActivityEvent {
        event_id,
        source: source.to_string(),
        student_id: field("student_id").to_string(),
        school_id: field("school_id").to_string(),
        section_id: opt("section_id"),
        staff_id: opt("staff_id"),
        kind,
        direction: None,
        occurred_at: at,
        assigned_date: assigned,
        live_session_id: None,
        duration_seconds: None,
        attributes,
        received_at: None,
    })
}
