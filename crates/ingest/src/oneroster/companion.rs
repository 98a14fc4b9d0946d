//! The two companion CSVs: the sections companion (a section's kind and
//! meetings) and the modes companion (students' learning modes).

use std::collections::HashMap;

use rollcall_model::{CourseType, LocalTime, Meeting, Mode, ModeSpan};

use super::classes::Catalog;
use super::files::{weekdays, Listed, Tables};
use super::people::People;
use super::{Ctx, RosterError};

/// What the sections companion says of a section.
#[derive(Clone, PartialEq)]
pub(super) struct SectionKind {
    pub(super) course_type: CourseType,
    pub(super) specials: bool,
    pub(super) dual_enrollment: bool,
}

/// What the sections companion says: per section, its kind (with the line
/// of its first row) and its meetings.
#[derive(Default)]
pub(super) struct Sections {
    pub(super) kinds: HashMap<String, (u64, SectionKind)>,
    pub(super) meetings: HashMap<String, Vec<Meeting>>,
}

/// Reads the sections companion, if given.
pub(super) fn sections(t: &Tables, catalog: &Catalog, listed: &Listed, cx: &mut Ctx) -> Sections {
    let errors = &mut cx.errors;
    let classes = &catalog.classes;
    let mut kinds: HashMap<String, (u64, SectionKind)> = HashMap::new();
    let mut meetings: HashMap<String, Vec<Meeting>> = HashMap::new();
    if let Some(t) = &t.sections {
        for r in t.rows() {
            let id = r.get("section_id");
            if !classes.contains_key(id) {
                if !listed.classes.contains(id) {
                    errors.push(r.err("section_id", format!("`{id}` is not a class of classes.csv")));
                }
                continue;
            }
            let course_type = match r.get("course_type").parse::<CourseType>() {
                Ok(c) => c,
                Err(e) => {
                    errors.push(r.err("course_type", e.to_string()));
                    continue;
                }
            };
            let flag = |column: &str, errors: &mut Vec<RosterError>| match r.get(column) {
                "true" => Some(true),
                "false" | "" => Some(false),
                other => {
                    errors.push(r.err(column, format!("`{other}` is not true or false")));
                    None
                }
            };
            let (Some(specials), Some(dual_enrollment)) = (flag("specials", errors), flag("dual_enrollment", errors)) else {
                continue;
            };
            let kind = SectionKind { course_type, specials, dual_enrollment };
            let (w, s, e) = (r.get("weekdays"), r.get("start"), r.get("end"));
            let meeting = if w.is_empty() && s.is_empty() && e.is_empty() {
                None
            } else {
                let days = match weekdays(w) {
                    Ok(d) if !d.is_empty() => d,
                    Ok(_) => {
                        errors.push(r.err("weekdays", "empty, though start or end is given"));
                        continue;
                    }
                    Err(p) => {
                        errors.push(r.err("weekdays", p));
                        continue;
                    }
                };
                let (start, end) = match (s.parse::<LocalTime>(), e.parse::<LocalTime>()) {
                    (Ok(a), Ok(b)) if a < b => (a, b),
                    (Ok(a), Ok(b)) => {
                        errors.push(r.err("end", format!("{b} is not after start {a}")));
                        continue;
                    }
                    (Err(p), _) => {
                        errors.push(r.err("start", p));
                        continue;
                    }
                    (_, Err(p)) => {
                        errors.push(r.err("end", p));
                        continue;
                    }
                };
                Some(Meeting { weekdays: days, start, end })
            };
            match kinds.get(id) {
                Some((first, k)) if *k != kind => {
                    errors.push(r.err_row(format!(
                        "course_type, specials and dual_enrollment differ from the section's first row (line {first})"
                    )));
                    continue;
                }
                Some(_) => {}
                None => {
                    kinds.insert(id.to_string(), (r.line, kind));
                }
            }
            meetings.entry(id.to_string()).or_default().extend(meeting);
        }
    }
    Sections { kinds, meetings }
}

/// Reads the modes companion, if given, into the students' modes.
pub(super) fn modes(t: &Tables, listed: &Listed, people: &mut People, cx: &mut Ctx) {
    let errors = &mut cx.errors;
    let students = &mut people.students;
    if let Some(t) = &t.modes {
        let by_id: HashMap<String, usize> = students.iter().map(|(i, s)| (s.student_id.clone(), *i)).collect();
        for r in t.rows() {
            let id = r.get("student_id");
            let Some(i) = by_id.get(id) else {
                if !listed.ids.contains(id) {
                    errors.push(r.err("student_id", format!("`{id}` is not a student of the export")));
                }
                continue;
            };
            let (Ok(from), Ok(to)) = (r.date("from", errors), r.date("to", errors)) else { continue };
            let (Some(from), Some(to)) = (from, to) else {
                errors.push(r.err_row("from and to are required"));
                continue;
            };
            if to < from {
                errors.push(r.err("to", format!("{to} is before from {from}")));
                continue;
            }
            let days = match weekdays(r.get("weekdays")) {
                Ok(d) if !d.is_empty() => d,
                Ok(_) => {
                    errors.push(r.err("weekdays", "empty; the column is required"));
                    continue;
                }
                Err(p) => {
                    errors.push(r.err("weekdays", p));
                    continue;
                }
            };
            let mode = match r.get("mode").parse::<Mode>() {
                Ok(m) => m,
                Err(e) => {
                    errors.push(r.err("mode", e.to_string()));
                    continue;
                }
            };
            if let Some(s) = students.get_mut(i) {
                s.modes.push(ModeSpan { from, to, weekdays: days, mode });
            }
        }
    }
}
