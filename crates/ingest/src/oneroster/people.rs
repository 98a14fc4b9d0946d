//! Users and roles: who is a student, at which school and in which grade;
//! who is staff. Also the demographics check.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use rollcall_model::{GradeLevel, StudentRecord};

use super::classes::Catalog;
use super::files::{in_force, list, vocabulary, Listed, Row, Tables};
use super::{Ctx, IdKey, RosterError, SisId, Version};

pub(super) struct User {
    pub(super) line: u64,
    pub(super) sourced_id: String,
    pub(super) identifier: String,
    pub(super) username: String,
    pub(super) email: String,
    pub(super) user_ids: Vec<String>,
    pub(super) grades: String,
    /// 1.1: `orgSourcedIds`.
    pub(super) orgs: Vec<String>,
    /// 1.1: `role`.
    pub(super) role: String,
}

impl User {
    pub(super) fn sis_id(&self, rule: SisId) -> &str {
        match rule {
            SisId::Identifier if !self.identifier.is_empty() => &self.identifier,
            _ => &self.sourced_id,
        }
    }

    pub(super) fn keys(&self, wanted: &[IdKey]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut add = |k: String| {
            if !k.is_empty() && !out.contains(&k) {
                out.push(k);
            }
        };
        for k in IdKey::ALL.iter().filter(|k| wanted.contains(k)) {
            match k {
                IdKey::SourcedId => add(self.sourced_id.clone()),
                IdKey::Identifier => add(self.identifier.clone()),
                IdKey::Username => add(self.username.clone()),
                IdKey::Email => add(self.email.clone()),
                IdKey::Mailto if !self.email.is_empty() => add(format!("mailto:{}", self.email)),
                IdKey::Mailto => {}
                IdKey::UserIds => self.user_ids.iter().for_each(|u| add(u.clone())),
            }
        }
        out
    }
}

/// `{LTI:554433}` → `554433`.
pub(super) fn user_id(item: &str) -> Option<String> {
    let inner = item.strip_prefix('{')?.strip_suffix('}')?;
    let (kind, id) = inner.split_once(':')?;
    (!kind.is_empty() && !id.is_empty()).then(|| id.to_string())
}
pub fn grade_level(code: &str) -> Option<GradeLevel> {
    Some(match code {
        "IT" | "PR" => GradeLevel::Ec,
        "PK" | "TK" => GradeLevel::Pk4,
        "KG" => GradeLevel::K,
        _ => {
            let n: u8 = code.parse().ok().filter(|_| code.len() <= 2 && code.bytes().all(|b| b.is_ascii_digit()))?;
            *GradeLevel::ALL.get(2 + n as usize).filter(|_| (1..=12).contains(&n))?
        }
    })
}

/// The fields of a 1.2 `roles.csv` row: (primary, role, org, begin, end).
pub(super) fn roles_row<'r>(
    r: &Row<'r>,
    orgs: &HashMap<String, String>,
    all_roles: &[&str],
    errors: &mut Vec<RosterError>,
) -> Option<(bool, &'r str, &'r str, Option<NaiveDate>, Option<NaiveDate>)> {
    let primary = match r.get("roleType") {
        "primary" => Some(true),
        "secondary" => Some(false),
        other => {
            errors.push(r.err("roleType", format!("`{other}` is not primary or secondary")));
            None
        }
    };
    let role = r.get("role");
    if !vocabulary(role, all_roles) {
        errors.push(r.err("role", format!("`{role}` is not a OneRoster 1.2 role")));
    }
    let org = r.get("orgSourcedId");
    if !orgs.contains_key(org) {
        errors.push(r.err("orgSourcedId", format!("`{org}` is not an org of orgs.csv")));
    }
    let (begin, end) = (r.date("beginDate", errors), r.date("endDate", errors));
    match (primary, vocabulary(role, all_roles) && orgs.contains_key(org), begin, end) {
        (Some(p), true, Ok(b), Ok(e)) => Some((p, role, org, b, e)),
        _ => None,
    }
}

/// The users of an export and what they are.
pub(super) struct People {
    pub(super) users: Vec<User>,
    /// A user's sourcedId → its index in `users`.
    pub(super) user_at: HashMap<String, usize>,
    /// A student (index in `users`) → its school.
    pub(super) student_school: HashMap<usize, String>,
    pub(super) staff: BTreeSet<usize>,
    /// Users whose roles are bad: their rows are left out without an error
    /// of their own.
    pub(super) tainted: BTreeSet<usize>,
    /// The students, by index in `users`.
    pub(super) students: BTreeMap<usize, StudentRecord>,
}

/// Reads users.csv, then roles (roles.csv in 1.2, users' `role` in 1.1),
/// then the students' grades and ids.
pub(super) fn read(t: &Tables, catalog: &Catalog, listed: &Listed, cx: &mut Ctx) -> People {
    let errors = &mut cx.errors;
    let unique = &mut cx.unique;
    let opts = cx.opts;
    let orgs = &catalog.orgs;
    let is_school = |id: &str| catalog.is_school(id);
    let mut tainted: BTreeSet<usize> = BTreeSet::new();

    // users.
    let mut users: Vec<User> = Vec::new();
    let mut user_at: HashMap<String, usize> = HashMap::new();
    for r in t.users.rows() {
        let Some(id) = unique.check(&r, errors) else { continue };
        let mut bad = !r.bulk_status(errors);
        let enabled = r.get("enabledUser");
        if enabled != "true" && enabled != "false" {
            errors.push(r.err("enabledUser", format!("`{enabled}` is not true or false")));
            bad = true;
        }
        bad |= r.required("username", errors).is_none();
        let mut user_ids = Vec::new();
        for item in list(r.get("userIds")).flat_map(|s| s.split("},{")) {
            // `"{LDAP:a},{LTI:b}"` splits on its commas; put the braces back.
            let item =
                format!("{}{item}{}", if item.starts_with('{') { "" } else { "{" }, if item.ends_with('}') { "" } else { "}" });
            match user_id(&item) {
                Some(u) => user_ids.push(u),
                None => {
                    errors.push(r.err("userIds", format!("`{item}` is not of the form {{type:id}}")));
                    bad = true;
                }
            }
        }
        let (orgs_of, role) = if cx.version == Version::V1p1 {
            let role = r.get("role");
            if !vocabulary(role, &["administrator", "aide", "guardian", "parent", "proctor", "relative", "student", "teacher"]) {
                errors.push(r.err("role", format!("`{role}` is not a OneRoster 1.1 role")));
                bad = true;
            }
            let orgs_of: Vec<String> = list(r.get("orgSourcedIds")).map(str::to_string).collect();
            if let Some(o) = orgs_of.iter().find(|o| !orgs.contains_key(*o)) {
                errors.push(r.err("orgSourcedIds", format!("`{o}` is not an org of orgs.csv")));
                bad = true;
            }
            (orgs_of, role.to_string())
        } else {
            (vec![], String::new())
        };
        if bad {
            continue;
        }
        user_at.insert(id.clone(), users.len());
        users.push(User {
            line: r.line,
            sourced_id: id,
            identifier: r.get("identifier").to_string(),
            username: r.get("username").to_string(),
            email: r.get("email").to_string(),
            user_ids,
            grades: r.get("grades").to_string(),
            orgs: orgs_of,
            role,
        });
    }
    cx.counts.users = users.len();

    // Who is a student and where; who is staff.
    let mut student_school: HashMap<usize, String> = HashMap::new();
    let mut staff: BTreeSet<usize> = BTreeSet::new();
    let staff_roles_1p1 = ["teacher", "aide", "administrator", "proctor"];
    let family_roles = ["student", "parent", "guardian", "relative"];
    if cx.version == Version::V1p1 {
        for (i, u) in users.iter().enumerate() {
            if u.role == "student" {
                match u.orgs.iter().find(|o| is_school(o)) {
                    Some(s) => {
                        student_school.insert(i, s.clone());
                    }
                    None => {
                        tainted.insert(i);
                        errors.push(RosterError::Row {
                            file: "users.csv".into(),
                            line: u.line,
                            column: Some("orgSourcedIds".into()),
                            problem: "a student needs a school among orgSourcedIds".into(),
                        })
                    }
                }
            } else if staff_roles_1p1.contains(&u.role.as_str()) {
                staff.insert(i);
            }
        }
    } else if let Some(t) = &t.roles {
        // Per student: (primary, school) of each student role in force.
        let mut student_roles: HashMap<usize, Vec<(bool, String)>> = HashMap::new();
        let all_roles = [
            "aide",
            "counselor",
            "districtAdministrator",
            "guardian",
            "parent",
            "principal",
            "proctor",
            "relative",
            "siteAdministrator",
            "student",
            "systemAdministrator",
            "teacher",
        ];
        for r in t.rows() {
            let user = r.get("userSourcedId");
            let Some(&i) = user_at.get(user) else {
                if !listed.users.contains(user) {
                    errors.push(r.err("userSourcedId", format!("`{user}` is not a user of users.csv")));
                }
                continue;
            };
            let before = errors.len();
            let bad = unique.check(&r, errors).is_none() || !r.bulk_status(errors);
            let role_ok = roles_row(&r, orgs, &all_roles, errors);
            if bad || errors.len() > before {
                tainted.insert(i);
                continue;
            }
            let Some((primary, role, org, begin, end)) = role_ok else { continue };
            if !in_force(opts.as_of, begin, end) {
                cx.counts.not_in_force += 1;
                continue;
            }
            if role == "student" {
                if !is_school(org) {
                    errors.push(r.err("orgSourcedId", format!("`{org}` is not a school; a student role is held at a school")));
                    tainted.insert(i);
                    continue;
                }
                student_roles.entry(i).or_default().push((primary, org.to_string()));
            } else if all_roles.contains(&role) && !family_roles.contains(&role) {
                staff.insert(i);
            }
        }
        for (i, roles) in student_roles {
            let school = roles.iter().find(|(p, _)| *p).or(roles.first()).map(|(_, s)| s.clone());
            if let Some(s) = school {
                student_school.insert(i, s);
            }
        }
    }

    // Students' grades and ids.
    let mut students: BTreeMap<usize, StudentRecord> = BTreeMap::new();
    let mut student_ids: HashMap<String, u64> = HashMap::new();
    let mut sorted: Vec<(&usize, &String)> = student_school.iter().collect();
    sorted.sort();
    for (&i, school) in sorted {
        let u = &users[i];
        let err = |column: &str, problem: String| RosterError::Row {
            file: "users.csv".into(),
            line: u.line,
            column: Some(column.into()),
            problem,
        };
        let grades: Vec<&str> = list(&u.grades).collect();
        let grade = match grades.as_slice() {
            [g] => match grade_level(g) {
                Some(g) => g,
                None => {
                    errors
                        .push(err("grades", format!("`{g}` is not a grade rollcall reads (CEDS 01 to 12, KG, PK, TK, IT, PR)")));
                    continue;
                }
            },
            [] => {
                errors.push(err("grades", "empty: a student's grade picks the policy's band".into()));
                continue;
            }
            _ => {
                errors.push(err("grades", format!("`{}`: a student has one grade", u.grades)));
                continue;
            }
        };
        let id = u.sis_id(opts.sis_id).to_string();
        if let Some(first) = student_ids.insert(id.clone(), u.line) {
            errors.push(err("identifier", format!("student id `{id}` is already the student's on line {first}")));
            continue;
        }
        students.insert(i, StudentRecord::new(id, school.clone(), grade));
    }
    People { users, user_at, student_school, staff, tainted, students }
}

/// demographics.csv: checked, not mapped.
pub(super) fn check_demographics(t: &Tables, cx: &mut Ctx) {
    let errors = &mut cx.errors;
    let unique = &mut cx.unique;
    if let Some(t) = &t.demographics {
        let sexes: &[&str] =
            if cx.version == Version::V1p1 { &["male", "female"] } else { &["male", "female", "other", "unspecified"] };
        for r in t.rows() {
            if unique.check(&r, errors).is_none() || !r.bulk_status(errors) {
                continue;
            }
            let sex = r.get("sex");
            if !sex.is_empty() && !sexes.contains(&sex) {
                errors.push(r.err("sex", format!("`{sex}` is not one of {}", sexes.join(", "))));
            }
        }
    }
}
