//! Orgs, terms (academic sessions), courses and classes: which classes
//! there are, at which school, whether homerooms and in force.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::files::{in_force, list, vocabulary, Tables};
use super::Ctx;

pub(super) struct Class {
    pub(super) line: u64,
    pub(super) homeroom: bool,
    pub(super) school: String,
    pub(super) in_force: bool,
}

/// The orgs and classes of an export.
pub(super) struct Catalog {
    /// orgs: sourcedId → type.
    pub(super) orgs: HashMap<String, String>,
    pub(super) classes: BTreeMap<String, Class>,
    /// The classes' ids in file order.
    pub(super) class_order: Vec<String>,
}

impl Catalog {
    pub(super) fn is_school(&self, id: &str) -> bool {
        self.orgs.get(id).is_some_and(|t| t == "school")
    }
}

/// Reads orgs, academicSessions, courses and classes, in that order.
pub(super) fn read(t: &Tables, cx: &mut Ctx) -> Catalog {
    let errors = &mut cx.errors;
    let unique = &mut cx.unique;
    let opts = cx.opts;

    // orgs: sourcedId → type.
    let mut orgs: HashMap<String, String> = HashMap::new();
    for r in t.orgs.rows() {
        let Some(id) = unique.check(&r, errors) else { continue };
        let ty = r.get("type");
        if !vocabulary(ty, &["department", "school", "district", "local", "state", "national"]) {
            errors.push(r.err("type", format!("`{ty}` is not one of department, school, district, local, state, national")));
            continue;
        }
        if r.bulk_status(errors) {
            orgs.insert(id, ty.to_string());
        }
    }
    let is_school = |id: &str| orgs.get(id).is_some_and(|t| t == "school");

    // academicSessions: sourcedId → in force on the date.
    let mut sessions: Option<HashMap<String, bool>> = None;
    if let Some(t) = &t.sessions {
        let s = sessions.insert(HashMap::new());
        for r in t.rows() {
            let Some(id) = unique.check(&r, errors) else { continue };
            let ty = r.get("type");
            if !vocabulary(ty, &["gradingPeriod", "semester", "schoolYear", "term"]) {
                errors.push(r.err("type", format!("`{ty}` is not one of gradingPeriod, semester, schoolYear, term")));
                continue;
            }
            let (Ok(start), Ok(end)) = (r.date("startDate", errors), r.date("endDate", errors)) else { continue };
            let (Some(start), Some(end)) = (start, end) else {
                errors.push(r.err_row("startDate and endDate are required"));
                continue;
            };
            if end <= start {
                errors.push(r.err("endDate", format!("{end} is not after startDate {start} (end dates are exclusive)")));
                continue;
            }
            let year = r.get("schoolYear");
            if year.len() != 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
                errors.push(r.err("schoolYear", format!("`{year}` is not a year (YYYY, the year the school year ends)")));
                continue;
            }
            if r.bulk_status(errors) {
                s.insert(id, in_force(opts.as_of, Some(start), Some(end)));
            }
        }
    }

    // courses: only their ids, which classes refer to.
    let mut courses: Option<BTreeSet<String>> = None;
    if let Some(t) = &t.courses {
        let c = courses.insert(BTreeSet::new());
        for r in t.rows() {
            let Some(id) = unique.check(&r, errors) else { continue };
            if r.required("title", errors).is_none() || r.required("orgSourcedId", errors).is_none() {
                continue;
            }
            if r.bulk_status(errors) {
                c.insert(id);
            }
        }
    }

    // classes.
    let mut classes: BTreeMap<String, Class> = BTreeMap::new();
    let mut class_order: Vec<String> = Vec::new();
    for r in t.classes.rows() {
        let Some(id) = unique.check(&r, errors) else { continue };
        let homeroom = match r.get("classType") {
            "homeroom" => true,
            "scheduled" => false,
            other if vocabulary(other, &[]) => false,
            other => {
                errors.push(r.err("classType", format!("`{other}` is not one of homeroom, scheduled")));
                continue;
            }
        };
        let school = r.get("schoolSourcedId");
        if !is_school(school) {
            errors.push(r.err("schoolSourcedId", format!("`{school}` is not a school of orgs.csv")));
            continue;
        }
        let course = r.get("courseSourcedId");
        if course.is_empty() || courses.as_ref().is_some_and(|c| !c.contains(course)) {
            errors.push(r.err("courseSourcedId", format!("`{course}` is not a course of courses.csv")));
            continue;
        }
        let terms: Vec<&str> = list(r.get("termSourcedIds")).collect();
        if terms.is_empty() {
            errors.push(r.err("termSourcedIds", "empty; the column is required"));
            continue;
        }
        let mut current = true;
        if let Some(s) = &sessions {
            if let Some(t) = terms.iter().find(|t| !s.contains_key(**t)) {
                errors.push(r.err("termSourcedIds", format!("`{t}` is not a session of academicSessions.csv")));
                continue;
            }
            current = terms.iter().any(|t| s.get(*t) == Some(&true));
        }
        if !r.bulk_status(errors) {
            continue;
        }
        if !current {
            cx.counts.not_in_force += 1;
        }
        class_order.push(id.clone());
        classes.insert(id, Class { line: r.line, homeroom, school: school.to_string(), in_force: current });
    }
    cx.counts.classes = classes.values().filter(|c| c.in_force).count();
    Catalog { orgs, classes, class_order }
}
