//! Reading the export's files: the manifest, each table with its header,
//! and the cells of a row.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use rollcall_model::Weekday;

use super::{Input, Refused, RosterError, Version};
use crate::identity::read_csv_with;
use crate::Rejected;

pub(super) const MANIFEST: [&str; 2] = ["propertyName", "value"];
pub(super) const ORGS: [&str; 7] = ["sourcedId", "status", "dateLastModified", "name", "type", "identifier", "parentSourcedId"];
pub(super) const SESSIONS: [&str; 9] =
    ["sourcedId", "status", "dateLastModified", "title", "type", "startDate", "endDate", "parentSourcedId", "schoolYear"];
pub(super) const COURSES: [&str; 10] = [
    "sourcedId",
    "status",
    "dateLastModified",
    "schoolYearSourcedId",
    "title",
    "courseCode",
    "grades",
    "orgSourcedId",
    "subjects",
    "subjectCodes",
];
pub(super) const CLASSES: [&str; 14] = [
    "sourcedId",
    "status",
    "dateLastModified",
    "title",
    "grades",
    "courseSourcedId",
    "classCode",
    "classType",
    "location",
    "schoolSourcedId",
    "termSourcedIds",
    "subjects",
    "subjectCodes",
    "periods",
];
pub(super) const USERS_1P1: [&str; 18] = [
    "sourcedId",
    "status",
    "dateLastModified",
    "enabledUser",
    "orgSourcedIds",
    "role",
    "username",
    "userIds",
    "givenName",
    "familyName",
    "middleName",
    "identifier",
    "email",
    "sms",
    "phone",
    "agentSourcedIds",
    "grades",
    "password",
];
pub(super) const USERS_1P2: [&str; 23] = [
    "sourcedId",
    "status",
    "dateLastModified",
    "enabledUser",
    "username",
    "userIds",
    "givenName",
    "familyName",
    "middleName",
    "identifier",
    "email",
    "sms",
    "phone",
    "agentSourcedIds",
    "grades",
    "password",
    "userMasterIdentifier",
    "resourceSourcedIds",
    "preferredGivenName",
    "preferredMiddleName",
    "preferredFamilyName",
    "primaryOrgSourcedId",
    "pronouns",
];
pub(super) const ROLES: [&str; 10] = [
    "sourcedId",
    "status",
    "dateLastModified",
    "userSourcedId",
    "roleType",
    "role",
    "beginDate",
    "endDate",
    "orgSourcedId",
    "userProfileSourcedId",
];
pub(super) const ENROLLMENTS: [&str; 10] = [
    "sourcedId",
    "status",
    "dateLastModified",
    "classSourcedId",
    "schoolSourcedId",
    "userSourcedId",
    "role",
    "primary",
    "beginDate",
    "endDate",
];
pub(super) const DEMOGRAPHICS: [&str; 16] = [
    "sourcedId",
    "status",
    "dateLastModified",
    "birthDate",
    "sex",
    "americanIndianOrAlaskaNative",
    "asian",
    "blackOrAfricanAmerican",
    "nativeHawaiianOrOtherPacificIslander",
    "white",
    "demographicRaceTwoOrMoreRaces",
    "hispanicOrLatinoEthnicity",
    "countryOfBirthCode",
    "stateOfBirthAbbreviation",
    "cityOfBirth",
    "publicSchoolResidenceStatus",
];

/// The sections companion's header, exactly.
pub const SECTIONS_HEADER: [&str; 7] = ["section_id", "course_type", "specials", "dual_enrollment", "weekdays", "start", "end"];
/// The modes companion's header, exactly.
pub const MODES_HEADER: [&str; 5] = ["student_id", "from", "to", "weekdays", "mode"];

/// One data row of a file, with what names its place.
pub(super) struct Row<'a> {
    pub(super) file: &'a str,
    pub(super) header: &'a [&'a str],
    pub(super) line: u64,
    pub(super) cells: &'a [String],
}

impl<'a> Row<'a> {
    pub(super) fn get(&self, column: &str) -> &'a str {
        self.header.iter().position(|h| *h == column).and_then(|i| self.cells.get(i)).map_or("", String::as_str)
    }

    pub(super) fn err(&self, column: &str, problem: impl Into<String>) -> RosterError {
        RosterError::Row {
            file: self.file.to_string(),
            line: self.line,
            column: Some(column.to_string()),
            problem: problem.into(),
        }
    }

    pub(super) fn err_row(&self, problem: impl Into<String>) -> RosterError {
        RosterError::Row { file: self.file.to_string(), line: self.line, column: None, problem: problem.into() }
    }

    pub(super) fn required(&self, column: &str, errors: &mut Vec<RosterError>) -> Option<&'a str> {
        let v = self.get(column);
        if v.is_empty() {
            errors.push(self.err(column, "empty; the column is required"));
            None
        } else {
            Some(v)
        }
    }

    /// A bulk file's `status`: empty or `active`.
    pub(super) fn bulk_status(&self, errors: &mut Vec<RosterError>) -> bool {
        match self.get("status") {
            "" | "active" => true,
            "tobedeleted" => {
                errors.push(self.err("status", "`tobedeleted` belongs to delta exports; rollcall imports bulk exports"));
                false
            }
            other => {
                errors.push(self.err("status", format!("`{other}` is not a status (empty, active or tobedeleted)")));
                false
            }
        }
    }

    pub(super) fn date(&self, column: &str, errors: &mut Vec<RosterError>) -> Result<Option<NaiveDate>, ()> {
        let v = self.get(column);
        if v.is_empty() {
            return Ok(None);
        }
        match parse_date(v) {
            Some(d) => Ok(Some(d)),
            None => {
                errors.push(self.err(column, format!("`{v}` is not a date (YYYY-MM-DD)")));
                Err(())
            }
        }
    }
}

pub(super) fn parse_date(v: &str) -> Option<NaiveDate> {
    // chrono alone accepts `2025-1-6` and `+2025-01-06`; the spec's form is fixed.
    let b = v.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d").ok()
}

/// A file's rows, read with its header.
pub(super) struct Table {
    pub(super) file: String,
    pub(super) header: &'static [&'static str],
    pub(super) rows: Vec<(u64, Vec<String>)>,
}

impl Table {
    pub(super) fn rows(&self) -> impl Iterator<Item = Row<'_>> {
        self.rows.iter().map(|(line, cells)| Row { file: &self.file, header: self.header, line: *line, cells })
    }
}

/// Reads one file: a header problem is fatal, row problems are not.
pub(super) fn table(
    file: &str,
    bytes: &[u8],
    header: &'static [&'static str],
    extension: Option<&str>,
    fatal: &mut Vec<RosterError>,
    errors: &mut Vec<RosterError>,
) -> Option<Table> {
    match read_csv_with(bytes, header, extension) {
        Ok((rows, row_errors)) => {
            errors.extend(row_errors.into_iter().map(|e| RosterError::from_csv(file, e)));
            Some(Table { file: file.to_string(), header, rows })
        }
        Err(Rejected { errors: e }) => {
            fatal.extend(e.into_iter().map(|e| RosterError::from_csv(file, e)));
            None
        }
    }
}

/// Reads `manifest.csv`: the version and the files to read.
pub(super) fn manifest(files: &BTreeMap<String, Vec<u8>>, fatal: &mut Vec<RosterError>) -> Option<(Version, BTreeSet<String>)> {
    const FILE: &str = "manifest.csv";
    let Some(bytes) = files.get(FILE) else {
        fatal.push(RosterError::File { file: FILE.into(), problem: "missing: an export starts with its manifest".into() });
        return None;
    };
    let mut errors = Vec::new();
    let t = table(FILE, bytes, &MANIFEST, None, fatal, &mut errors)?;
    let mut version = None;
    let mut bulk = BTreeSet::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    for r in t.rows() {
        let (name, value) = (r.get("propertyName"), r.get("value"));
        if let Some(first) = seen.insert(name.to_string(), r.line) {
            errors.push(r.err("propertyName", format!("`{name}` is listed again (first on line {first})")));
            continue;
        }
        if name == "oneroster.version" {
            match value {
                "1.1" => version = Some(Version::V1p1),
                "1.2" => version = Some(Version::V1p2),
                other => errors.push(r.err("value", format!("OneRoster `{other}` is not read; rollcall reads 1.1 and 1.2"))),
            }
        } else if let Some(f) = name.strip_prefix("file.") {
            match value {
                "bulk" => {
                    bulk.insert(format!("{f}.csv"));
                }
                "absent" => {}
                "delta" => errors.push(r.err(
                    "value",
                    format!(
                        "{f}.csv is a delta file; rollcall imports bulk exports only (each student's record is replaced whole)"
                    ),
                )),
                other => errors.push(r.err("value", format!("`{other}` is not one of absent, bulk, delta"))),
            }
        }
    }
    if version.is_none() && errors.is_empty() {
        errors.push(RosterError::File { file: FILE.into(), problem: "no `oneroster.version` row".into() });
    }
    fatal.extend(errors);
    let version = version?;
    let mut needed = vec!["orgs.csv", "classes.csv", "users.csv", "enrollments.csv"];
    if version == Version::V1p2 {
        needed.push("roles.csv");
    }
    for f in needed {
        if !bulk.contains(f) {
            fatal.push(RosterError::File {
                file: FILE.into(),
                problem: format!("`file.{}` must be `bulk`: rollcall needs {f}", f.trim_end_matches(".csv")),
            });
        }
    }
    for f in &bulk {
        if !files.contains_key(f) {
            fatal.push(RosterError::File { file: f.clone(), problem: "missing, though the manifest lists it as bulk".into() });
        }
    }
    Some((version, bulk))
}

/// A value of one of the spec's vocabularies, or an extension of it
/// (`ext:` and a name), which the binding allows and rollcall reads as none
/// of the values it acts on (a class of type `ext:lab` is not a homeroom).
pub(super) fn vocabulary(v: &str, known: &[&str]) -> bool {
    known.contains(&v) || v.strip_prefix("ext:").is_some_and(|name| !name.is_empty())
}

/// A CEDS grade code as a rollcall grade.
/// A OneRoster list (comma-separated), without empty items.
pub(super) fn list(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// A list of weekdays separated by spaces or commas.
pub fn weekdays(v: &str) -> Result<Vec<Weekday>, String> {
    let mut out = Vec::new();
    for w in v.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty()) {
        let d: Weekday = w.parse().map_err(|_| format!("`{w}` is not a weekday (MON, TUE, WED, THU, FRI, SAT, SUN)"))?;
        if out.contains(&d) {
            return Err(format!("{w} is listed twice"));
        }
        out.push(d);
    }
    Ok(out)
}

pub(super) fn in_force(as_of: Option<NaiveDate>, begin: Option<NaiveDate>, end: Option<NaiveDate>) -> bool {
    let Some(d) = as_of else { return true };
    begin.is_none_or(|b| b <= d) && end.is_none_or(|e| d < e)
}

/// The tables of an export and its companions, each read with its header.
pub(super) struct Tables {
    pub(super) version: Version,
    pub(super) orgs: Table,
    pub(super) sessions: Option<Table>,
    pub(super) courses: Option<Table>,
    pub(super) classes: Table,
    pub(super) users: Table,
    pub(super) roles: Option<Table>,
    pub(super) enrollments: Table,
    pub(super) demographics: Option<Table>,
    pub(super) sections: Option<Table>,
    pub(super) modes: Option<Table>,
}

/// Reads the manifest and the files it lists as bulk, and the companions;
/// any fatal error refuses the export. Row errors go to `errors`.
pub(super) fn read(input: &Input, errors: &mut Vec<RosterError>) -> Result<Tables, Refused> {
    let mut fatal = Vec::new();
    let Some((version, bulk)) = manifest(&input.files, &mut fatal) else { return Err(Refused { errors: fatal }) };
    if !fatal.is_empty() {
        return Err(Refused { errors: fatal });
    }
    let read = |name: &str, header: &'static [&'static str], fatal: &mut Vec<RosterError>, errors: &mut Vec<RosterError>| {
        let bytes = input.files.get(name).filter(|_| bulk.contains(name))?;
        table(name, bytes, header, Some("metadata."), fatal, errors)
    };
    let users_header: &'static [&'static str] = if version == Version::V1p1 { &USERS_1P1 } else { &USERS_1P2 };
    let orgs_t = read("orgs.csv", &ORGS, &mut fatal, errors);
    let sessions_t = read("academicSessions.csv", &SESSIONS, &mut fatal, errors);
    let courses_t = read("courses.csv", &COURSES, &mut fatal, errors);
    let classes_t = read("classes.csv", &CLASSES, &mut fatal, errors);
    let users_t = read("users.csv", users_header, &mut fatal, errors);
    let roles_t = if version == Version::V1p2 { read("roles.csv", &ROLES, &mut fatal, errors) } else { None };
    let enrollments_t = read("enrollments.csv", &ENROLLMENTS, &mut fatal, errors);
    let demographics_t = read("demographics.csv", &DEMOGRAPHICS, &mut fatal, errors);
    let sections_t = input.sections.as_ref().and_then(|c| table(&c.name, &c.bytes, &SECTIONS_HEADER, None, &mut fatal, errors));
    let modes_t = input.modes.as_ref().and_then(|c| table(&c.name, &c.bytes, &MODES_HEADER, None, &mut fatal, errors));
    let (Some(orgs_t), Some(classes_t), Some(users_t), Some(enrollments_t)) = (orgs_t, classes_t, users_t, enrollments_t) else {
        return Err(Refused { errors: fatal });
    };
    if !fatal.is_empty() || (version == Version::V1p2 && roles_t.is_none()) {
        return Err(Refused { errors: fatal });
    }
    Ok(Tables {
        version,
        orgs: orgs_t,
        sessions: sessions_t,
        courses: courses_t,
        classes: classes_t,
        users: users_t,
        roles: roles_t,
        enrollments: enrollments_t,
        demographics: demographics_t,
        sections: sections_t,
        modes: modes_t,
    })
}

/// Each file's `sourcedId`s must be unique: the first row with an id
/// stands, a later one is an error.
#[derive(Default)]
pub(super) struct Unique {
    first_line: HashMap<(String, String), u64>,
}

impl Unique {
    /// The row's `sourcedId`, if it is given and new in its file.
    pub(super) fn check(&mut self, r: &Row, errors: &mut Vec<RosterError>) -> Option<String> {
        let id = r.required("sourcedId", errors)?;
        if let Some(first) = self.first_line.insert((r.file.to_string(), id.to_string()), r.line) {
            errors.push(r.err("sourcedId", format!("`{id}` is listed again (first on line {first})")));
            return None;
        }
        Some(id.to_string())
    }
}

/// The ids each table lists, good rows or bad. A row that refers to a bad
/// row is left out with it, without an error of its own: the bad row's
/// error says what to mend.
pub(super) struct Listed<'t> {
    /// users.csv's sourcedIds.
    pub(super) users: BTreeSet<String>,
    /// classes.csv's sourcedIds.
    pub(super) classes: BTreeSet<String>,
    /// users.csv's sourcedIds and identifiers.
    pub(super) ids: BTreeSet<&'t str>,
}

impl<'t> Listed<'t> {
    pub(super) fn new(t: &'t Tables) -> Listed<'t> {
        let listed = |t: &Table| -> BTreeSet<String> { t.rows().map(|r| r.get("sourcedId").to_string()).collect() };
        let (users, classes) = (listed(&t.users), listed(&t.classes));
        let ids: BTreeSet<&str> = t.users.rows().flat_map(|r| [r.get("sourcedId"), r.get("identifier")]).collect();
        Listed { users, classes, ids }
    }
}
