//! A OneRoster 1.1 or 1.2 CSV bulk export, turned into the roster
//! (`sis.roster.v1` [`StudentRecord`]s) and the identity mapping
//! (`sis.identities.v1` [`IdentityRecord`]s).
//!
//! Pure: the caller hands over the files' bytes by file name (`users.csv`,
//! ...) and, optionally, the two companion CSVs that carry what OneRoster
//! does not (section meetings and the students' learning modes). No file is
//! opened and no clock is read: the date the roster is taken on is an
//! option ([`Options::as_of`]).
//!
//! # The export
//!
//! Every file is read as the 1EdTech CSV binding says: RFC 4180, UTF-8 (a
//! byte-order mark is read past), the header names exactly and in order,
//! extension columns (`metadata.*`) only at the right-hand end (allowed,
//! not read). `manifest.csv` must say `oneroster.version` `1.1` or `1.2`;
//! each `file.*` row `bulk` or `absent`. A `delta` file is refused (rollcall
//! imports whole bulk exports: a roster record replaces the student's
//! previous one, so a partial change cannot be applied), and so is a file
//! the manifest lists as `bulk` but that is not there. A file listed
//! `absent` is not read even when present.
//!
//! rollcall needs `orgs`, `classes`, `users`, `enrollments` and, in 1.2,
//! `roles`; it reads `academicSessions`, `courses` and `demographics` when
//! they are `bulk`. In a bulk file `status` must be empty (or `active`,
//! which some exporters write; `tobedeleted` is a delta-mode value and is
//! refused) and `dateLastModified` is not read. A vocabulary value may be an
//! extension (`ext:` and a name), read as none of the values rollcall acts
//! on: an `ext:` class type is a scheduled class, an `ext:` role neither a
//! student's nor staff.
//!
//! | OneRoster | rollcall |
//! |---|---|
//! | a user with role `student` (1.1: `users.role`; 1.2: a `roles.csv` row with `role` `student`) | one [`StudentRecord`] |
//! | `users.identifier`, else `users.sourcedId` ([`SisId::Identifier`], the default; [`SisId::SourcedId`] always takes `sourcedId`) | `student_id`, and the staff id of a teacher |
//! | the student's school: 1.1 the first org of `users.orgSourcedIds` whose `orgs.type` is `school`; 1.2 the `orgSourcedId` of the student's `primary` student role, else of the first one | `school_id` (the org's `sourcedId`) |
//! | `users.grades` (CEDS): `01`…`12` (or `1`…`12`) → `1`…`12`, `KG` → `K`, `PK` and `TK` → `4K`, `IT` and `PR` → `EC`; `13`, `PS`, `UG`, `Other` and anything else are refused | `grade_level` (exactly one grade per student) |
//! | an `enrollments.csv` row with role `student` | an [`Enrollment`]: `section_id` = `classSourcedId` |
//! | the class's teacher: its first `teacher` enrollment with `primary` `true`, else its first `teacher` enrollment | `staff_id` (that user's staff id); a class with no teacher is an error on each student's enrollment |
//! | a class whose `classType` is `homeroom` | `homeroom_section_id` and `homeroom_staff_id`, and also the first enrollment (a second homeroom is an error) |
//! | `classes.sourcedId` | `section_id`, and the section identities |
//! | demographics.csv | read and checked (header, `sex`), not mapped: `groups` stay empty |
//!
//! Course type, specials, dual enrollment and meetings come from the
//! sections companion; without a row there an enrollment is `LIVE`, not
//! specials, not dual enrollment and without meetings. `modes` come from the
//! modes companion; without a row the student has none (so `SYNC_ONLINE`
//! every day).
//!
//! **Dates.** With [`Options::as_of`] a date D, only what is in force on D
//! counts: an enrollment or 1.2 role with `beginDate` ≤ D < `endDate`
//! (each bound only when given; OneRoster end dates are exclusive), and a
//! class any of whose terms (`termSourcedIds` in `academicSessions.csv`)
//! has `startDate` ≤ D < `endDate`. Without it every row counts.
//!
//! A student enrolled twice in one class (two rows, e.g. with different
//! dates) has one enrollment. `enabledUser` is checked (`true` or `false`)
//! but a disabled student is still on the roster: it says whether the user
//! may log in, not whether the student is enrolled.
//!
//! # Identities
//!
//! For each source in [`Options::sources`] (the platform instance names the
//! gateway's routes use), and for each kind of key in
//! [`Options::identity_keys`] (all of them by default):
//!
//! | key | external id |
//! |---|---|
//! | [`IdKey::SourcedId`] | `users.sourcedId` (and `classes.sourcedId` for sections, always) |
//! | [`IdKey::Identifier`] | `users.identifier` |
//! | [`IdKey::Username`] | `users.username` |
//! | [`IdKey::Email`] | `users.email`, as written (Zoom's participant `email`) |
//! | [`IdKey::Mailto`] | `mailto:` and `users.email` (xAPI's `actor.mbox`) |
//! | [`IdKey::UserIds`] | each id of `users.userIds` (`{LTI:554433}` gives `554433`) |
//!
//! a student maps to `(source, student, key) → (student_id, school_id)`, any
//! other user with a staff role (1.1: `teacher`, `aide`, `administrator`,
//! `proctor`; 1.2: every role but `student`, `parent`, `guardian` and
//! `relative`), or who teaches a class, to `(source, staff, key) → staff
//! id`, so that staff activity is recognized as such, and each class to
//! `(source, section, sourcedId) → sourcedId` with the class's school.
//! Empty values give no key; the same key given twice with the same SIS id
//! is kept once, and with two different SIS ids is an error on the second
//! user's row.
//!
//! # The companions
//!
//! **Sections** (`--companion`), one row per meeting, header exactly:
//!
//! ```text
//! section_id,course_type,specials,dual_enrollment,weekdays,start,end
//! alg-1-02,LIVE,false,false,MON TUE THU,09:00,09:50
//! alg-1-02,LIVE,false,false,FRI,10:00,10:30
//! art-3,LIVE,true,false,WED,13:00,13:45
//! study-hall,ASYNC_ONLY,false,false,,,
//! ```
//!
//! `section_id` is a class `sourcedId` of the export; `course_type` is
//! `LIVE` or `ASYNC_ONLY`; `specials` and `dual_enrollment` are `true`,
//! `false` or empty (false), and the three must agree across a section's
//! rows. `weekdays` is a list of `MON` … `SUN` separated by spaces or
//! commas; `start` and `end` are `HH:MM`, start before end. A row with
//! `weekdays`, `start` and `end` all empty sets the section's kind without a
//! meeting.
//!
//! **Modes** (`--modes`), one row per span, in the order they apply (the
//! first span that matches a day gives its mode), header exactly:
//!
//! ```text
//! student_id,from,to,weekdays,mode
//! S2001,2025-01-06,2025-06-06,MON TUE,IN_PERSON
//! S2001,2025-01-06,2025-06-06,WED THU FRI,SYNC_ONLINE
//! ```
//!
//! `student_id` is the roster's `student_id` (see [`SisId`]); `from` and
//! `to` are inclusive `YYYY-MM-DD` dates; `mode` is one of `IN_PERSON`,
//! `SYNC_ONLINE`, `ASYNC_ONLINE`, `ASYNC_OFFLINE`, `LEARNING_PACKETS`.
//!
//! # Errors
//!
//! A problem with a whole file (the manifest, a missing file, a header) is
//! fatal: [`import`] returns every such error. A problem with a row is
//! named by file, line and column in [`Import::errors`]; the row is left
//! out, with whatever depends on it (the enrollments of a student whose
//! grade is wrong), and the rest is imported. The caller decides whether a
//! result with errors may be used (`--skip-bad-rows`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use chrono::NaiveDate;
use rollcall_model::{
    CourseType, Enrollment, GradeLevel, IdentityRecord, IdentityType, LocalTime, Meeting, Mode, ModeSpan, StudentRecord, Weekday,
};

use crate::identity::read_csv_with;
use crate::{IngestError, Rejected};

/// One problem with the export or a companion.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RosterError {
    /// A row, or a file's header (line 1); `column` where one is at fault.
    #[error("{file}:{line}: {}{problem}", column.as_ref().map(|c| format!("column `{c}`: ")).unwrap_or_default())]
    Row { file: String, line: u64, column: Option<String>, problem: String },
    /// A whole file: missing, refused by the manifest, not the version read.
    #[error("{file}: {problem}")]
    File { file: String, problem: String },
}

impl RosterError {
    /// The file the error is in.
    pub fn file(&self) -> &str {
        match self {
            RosterError::Row { file, .. } | RosterError::File { file, .. } => file,
        }
    }

    fn from_csv(file: &str, e: IngestError) -> RosterError {
        match e {
            IngestError::Csv { line, column, problem } => RosterError::Row { file: file.to_string(), line, column, problem },
            other => RosterError::File { file: file.to_string(), problem: other.to_string() },
        }
    }
}

/// The OneRoster version of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1p1,
    V1p2,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V1p1 => "1.1",
            Version::V1p2 => "1.2",
        }
    }
}

/// Which of a user's ids is their SIS id on the roster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SisId {
    /// `identifier` (the SIS's own student or staff number, which is what
    /// a district's other systems know) when present, else `sourcedId`.
    #[default]
    Identifier,
    /// Always `sourcedId`.
    SourcedId,
}

/// A kind of platform key the identity mapping is written for (see the
/// module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdKey {
    SourcedId,
    Identifier,
    Username,
    Email,
    Mailto,
    UserIds,
}

impl IdKey {
    pub const ALL: [IdKey; 6] =
        [IdKey::SourcedId, IdKey::Identifier, IdKey::Username, IdKey::Email, IdKey::Mailto, IdKey::UserIds];
}

/// How to read an export.
#[derive(Debug, Clone)]
pub struct Options {
    /// The sources (platform instances) to write identities for.
    pub sources: Vec<String>,
    pub sis_id: SisId,
    pub identity_keys: Vec<IdKey>,
    /// The date the roster is taken on; `None` counts every row.
    pub as_of: Option<NaiveDate>,
}

impl Default for Options {
    fn default() -> Options {
        Options { sources: vec![], sis_id: SisId::default(), identity_keys: IdKey::ALL.to_vec(), as_of: None }
    }
}

/// A companion CSV: the name errors give it, and its bytes.
#[derive(Debug, Clone)]
pub struct Companion {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// What [`import`] reads.
#[derive(Debug, Clone, Default)]
pub struct Input {
    /// The export's files by name (`manifest.csv`, `users.csv`, ...).
    pub files: BTreeMap<String, Vec<u8>>,
    /// Section kinds and meetings.
    pub sections: Option<Companion>,
    /// Students' learning modes.
    pub modes: Option<Companion>,
}

/// What an export holds, less its bad rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Import {
    pub version: Version,
    /// In `users.csv` order.
    pub students: Vec<StudentRecord>,
    /// By source, then students, staff and sections in file order.
    pub identities: Vec<IdentityRecord>,
    /// Bad rows, in file and line order; each was left out.
    pub errors: Vec<RosterError>,
    pub counts: Counts,
}

/// What was read, for the import's summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub users: usize,
    pub staff: usize,
    pub classes: usize,
    /// Student enrollments in force on the date (before merging repeats).
    pub enrollments: usize,
    /// Enrollments, roles and classes not in force on the date.
    pub not_in_force: usize,
}

/// The fatal errors of an export that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub errors: Vec<RosterError>,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.errors.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

impl std::error::Error for Refused {}

const MANIFEST: [&str; 2] = ["propertyName", "value"];
const ORGS: [&str; 7] = ["sourcedId", "status", "dateLastModified", "name", "type", "identifier", "parentSourcedId"];
const SESSIONS: [&str; 9] =
    ["sourcedId", "status", "dateLastModified", "title", "type", "startDate", "endDate", "parentSourcedId", "schoolYear"];
const COURSES: [&str; 10] = [
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
const CLASSES: [&str; 14] = [
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
const USERS_1P1: [&str; 18] = [
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
const USERS_1P2: [&str; 23] = [
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
const ROLES: [&str; 10] = [
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
const ENROLLMENTS: [&str; 10] = [
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
const DEMOGRAPHICS: [&str; 16] = [
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
struct Row<'a> {
    file: &'a str,
    header: &'a [&'a str],
    line: u64,
    cells: &'a [String],
}

impl<'a> Row<'a> {
    fn get(&self, column: &str) -> &'a str {
        self.header.iter().position(|h| *h == column).and_then(|i| self.cells.get(i)).map_or("", String::as_str)
    }

    fn err(&self, column: &str, problem: impl Into<String>) -> RosterError {
        RosterError::Row {
            file: self.file.to_string(),
            line: self.line,
            column: Some(column.to_string()),
            problem: problem.into(),
        }
    }

    fn err_row(&self, problem: impl Into<String>) -> RosterError {
        RosterError::Row { file: self.file.to_string(), line: self.line, column: None, problem: problem.into() }
    }

    fn required(&self, column: &str, errors: &mut Vec<RosterError>) -> Option<&'a str> {
        let v = self.get(column);
        if v.is_empty() {
            errors.push(self.err(column, "empty; the column is required"));
            None
        } else {
            Some(v)
        }
    }

    /// A bulk file's `status`: empty or `active`.
    fn bulk_status(&self, errors: &mut Vec<RosterError>) -> bool {
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

    fn date(&self, column: &str, errors: &mut Vec<RosterError>) -> Result<Option<NaiveDate>, ()> {
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

fn parse_date(v: &str) -> Option<NaiveDate> {
    // chrono alone accepts `2025-1-6` and `+2025-01-06`; the spec's form is fixed.
    let b = v.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d").ok()
}

/// A file's rows, read with its header.
struct Table {
    file: String,
    header: &'static [&'static str],
    rows: Vec<(u64, Vec<String>)>,
}

impl Table {
    fn rows(&self) -> impl Iterator<Item = Row<'_>> {
        self.rows.iter().map(|(line, cells)| Row { file: &self.file, header: self.header, line: *line, cells })
    }
}

/// Reads one file: a header problem is fatal, row problems are not.
fn table(
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
fn manifest(files: &BTreeMap<String, Vec<u8>>, fatal: &mut Vec<RosterError>) -> Option<(Version, BTreeSet<String>)> {
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
fn vocabulary(v: &str, known: &[&str]) -> bool {
    known.contains(&v) || v.strip_prefix("ext:").is_some_and(|name| !name.is_empty())
}

/// A CEDS grade code as a rollcall grade.
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

/// A OneRoster list (comma-separated), without empty items.
fn list(v: &str) -> impl Iterator<Item = &str> {
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

fn in_force(as_of: Option<NaiveDate>, begin: Option<NaiveDate>, end: Option<NaiveDate>) -> bool {
    let Some(d) = as_of else { return true };
    begin.is_none_or(|b| b <= d) && end.is_none_or(|e| d < e)
}

struct User {
    line: u64,
    sourced_id: String,
    identifier: String,
    username: String,
    email: String,
    user_ids: Vec<String>,
    grades: String,
    /// 1.1: `orgSourcedIds`.
    orgs: Vec<String>,
    /// 1.1: `role`.
    role: String,
}

impl User {
    fn sis_id(&self, rule: SisId) -> &str {
        match rule {
            SisId::Identifier if !self.identifier.is_empty() => &self.identifier,
            _ => &self.sourced_id,
        }
    }

    fn keys(&self, wanted: &[IdKey]) -> Vec<String> {
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
fn user_id(item: &str) -> Option<String> {
    let inner = item.strip_prefix('{')?.strip_suffix('}')?;
    let (kind, id) = inner.split_once(':')?;
    (!kind.is_empty() && !id.is_empty()).then(|| id.to_string())
}

struct Class {
    line: u64,
    homeroom: bool,
    school: String,
    in_force: bool,
}

/// What the sections companion says of a section.
#[derive(Clone, PartialEq)]
struct SectionKind {
    course_type: CourseType,
    specials: bool,
    dual_enrollment: bool,
}

/// The fields of a 1.2 `roles.csv` row: (primary, role, org, begin, end).
fn roles_row<'r>(
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

/// Reads an export (see the module documentation).
pub fn import(input: &Input, opts: &Options) -> Result<Import, Refused> {
    let mut fatal = Vec::new();
    let mut errors = Vec::new();
    let Some((version, bulk)) = manifest(&input.files, &mut fatal) else { return Err(Refused { errors: fatal }) };
    if !fatal.is_empty() {
        return Err(Refused { errors: fatal });
    }
    let read = |name: &str, header: &'static [&'static str], fatal: &mut Vec<RosterError>, errors: &mut Vec<RosterError>| {
        let bytes = input.files.get(name).filter(|_| bulk.contains(name))?;
        table(name, bytes, header, Some("metadata."), fatal, errors)
    };
    let users_header: &'static [&'static str] = if version == Version::V1p1 { &USERS_1P1 } else { &USERS_1P2 };
    let orgs_t = read("orgs.csv", &ORGS, &mut fatal, &mut errors);
    let sessions_t = read("academicSessions.csv", &SESSIONS, &mut fatal, &mut errors);
    let courses_t = read("courses.csv", &COURSES, &mut fatal, &mut errors);
    let classes_t = read("classes.csv", &CLASSES, &mut fatal, &mut errors);
    let users_t = read("users.csv", users_header, &mut fatal, &mut errors);
    let roles_t = if version == Version::V1p2 { read("roles.csv", &ROLES, &mut fatal, &mut errors) } else { None };
    let enrollments_t = read("enrollments.csv", &ENROLLMENTS, &mut fatal, &mut errors);
    let demographics_t = read("demographics.csv", &DEMOGRAPHICS, &mut fatal, &mut errors);
    let sections_t =
        input.sections.as_ref().and_then(|c| table(&c.name, &c.bytes, &SECTIONS_HEADER, None, &mut fatal, &mut errors));
    let modes_t = input.modes.as_ref().and_then(|c| table(&c.name, &c.bytes, &MODES_HEADER, None, &mut fatal, &mut errors));
    let (Some(orgs_t), Some(classes_t), Some(users_t), Some(enrollments_t)) = (orgs_t, classes_t, users_t, enrollments_t) else {
        return Err(Refused { errors: fatal });
    };
    if !fatal.is_empty() || (version == Version::V1p2 && roles_t.is_none()) {
        return Err(Refused { errors: fatal });
    }
    let mut counts = Counts::default();

    // orgs: sourcedId → type.
    let mut orgs: HashMap<String, String> = HashMap::new();
    let mut first_line: HashMap<(String, String), u64> = HashMap::new();
    let mut unique = |r: &Row, errors: &mut Vec<RosterError>| -> Option<String> {
        let id = r.required("sourcedId", errors)?;
        if let Some(first) = first_line.insert((r.file.to_string(), id.to_string()), r.line) {
            errors.push(r.err("sourcedId", format!("`{id}` is listed again (first on line {first})")));
            return None;
        }
        Some(id.to_string())
    };
    for r in orgs_t.rows() {
        let Some(id) = unique(&r, &mut errors) else { continue };
        let ty = r.get("type");
        if !vocabulary(ty, &["department", "school", "district", "local", "state", "national"]) {
            errors.push(r.err("type", format!("`{ty}` is not one of department, school, district, local, state, national")));
            continue;
        }
        if r.bulk_status(&mut errors) {
            orgs.insert(id, ty.to_string());
        }
    }
    let is_school = |id: &str| orgs.get(id).is_some_and(|t| t == "school");

    // academicSessions: sourcedId → in force on the date.
    let mut sessions: Option<HashMap<String, bool>> = None;
    if let Some(t) = &sessions_t {
        let s = sessions.insert(HashMap::new());
        for r in t.rows() {
            let Some(id) = unique(&r, &mut errors) else { continue };
            let ty = r.get("type");
            if !vocabulary(ty, &["gradingPeriod", "semester", "schoolYear", "term"]) {
                errors.push(r.err("type", format!("`{ty}` is not one of gradingPeriod, semester, schoolYear, term")));
                continue;
            }
            let (Ok(start), Ok(end)) = (r.date("startDate", &mut errors), r.date("endDate", &mut errors)) else { continue };
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
            if r.bulk_status(&mut errors) {
                s.insert(id, in_force(opts.as_of, Some(start), Some(end)));
            }
        }
    }

    // courses: only their ids, which classes refer to.
    let mut courses: Option<BTreeSet<String>> = None;
    if let Some(t) = &courses_t {
        let c = courses.insert(BTreeSet::new());
        for r in t.rows() {
            let Some(id) = unique(&r, &mut errors) else { continue };
            if r.required("title", &mut errors).is_none() || r.required("orgSourcedId", &mut errors).is_none() {
                continue;
            }
            if r.bulk_status(&mut errors) {
                c.insert(id);
            }
        }
    }

    // classes.
    let mut classes: BTreeMap<String, Class> = BTreeMap::new();
    let mut class_order: Vec<String> = Vec::new();
    for r in classes_t.rows() {
        let Some(id) = unique(&r, &mut errors) else { continue };
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
        if !r.bulk_status(&mut errors) {
            continue;
        }
        if !current {
            counts.not_in_force += 1;
        }
        class_order.push(id.clone());
        classes.insert(id, Class { line: r.line, homeroom, school: school.to_string(), in_force: current });
    }
    counts.classes = classes.values().filter(|c| c.in_force).count();

    // A row that refers to a bad row is left out with it, without an
    // error of its own: the bad row's error says what to mend.
    let listed = |t: &Table| -> BTreeSet<String> { t.rows().map(|r| r.get("sourcedId").to_string()).collect() };
    let (listed_users, listed_classes) = (listed(&users_t), listed(&classes_t));
    let listed_ids: BTreeSet<&str> = users_t.rows().flat_map(|r| [r.get("sourcedId"), r.get("identifier")]).collect();
    let mut tainted: BTreeSet<usize> = BTreeSet::new();

    // users.
    let mut users: Vec<User> = Vec::new();
    let mut user_at: HashMap<String, usize> = HashMap::new();
    for r in users_t.rows() {
        let Some(id) = unique(&r, &mut errors) else { continue };
        let mut bad = !r.bulk_status(&mut errors);
        let enabled = r.get("enabledUser");
        if enabled != "true" && enabled != "false" {
            errors.push(r.err("enabledUser", format!("`{enabled}` is not true or false")));
            bad = true;
        }
        bad |= r.required("username", &mut errors).is_none();
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
        let (orgs_of, role) = if version == Version::V1p1 {
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
    counts.users = users.len();

    // Who is a student and where; who is staff.
    let mut student_school: HashMap<usize, String> = HashMap::new();
    let mut staff: BTreeSet<usize> = BTreeSet::new();
    let staff_roles_1p1 = ["teacher", "aide", "administrator", "proctor"];
    let family_roles = ["student", "parent", "guardian", "relative"];
    if version == Version::V1p1 {
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
    } else if let Some(t) = &roles_t {
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
                if !listed_users.contains(user) {
                    errors.push(r.err("userSourcedId", format!("`{user}` is not a user of users.csv")));
                }
                continue;
            };
            let before = errors.len();
            let bad = unique(&r, &mut errors).is_none() || !r.bulk_status(&mut errors);
            let role_ok = roles_row(&r, &orgs, &all_roles, &mut errors);
            if bad || errors.len() > before {
                tainted.insert(i);
                continue;
            }
            let Some((primary, role, org, begin, end)) = role_ok else { continue };
            if !in_force(opts.as_of, begin, end) {
                counts.not_in_force += 1;
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

    // Enrollments: teachers first (a student's row may come before its
    // class's teacher's), then students.
    let mut teacher: HashMap<&str, (bool, usize)> = HashMap::new();
    let mut student_rows: Vec<(Row, usize, &str)> = Vec::new();
    // Classes whose teacher's row is bad: their students' rows are left
    // out without an error of their own, as for any row's dependents.
    let mut untaught: BTreeSet<&str> = BTreeSet::new();
    for r in enrollments_t.rows() {
        if unique(&r, &mut errors).is_none() || !r.bulk_status(&mut errors) {
            continue;
        }
        let class_id = r.get("classSourcedId");
        let Some(class) = classes.get(class_id) else {
            if !listed_classes.contains(class_id) {
                errors.push(r.err("classSourcedId", format!("`{class_id}` is not a class of classes.csv")));
            }
            continue;
        };
        let teaches = r.get("role") == "teacher";
        let school = r.get("schoolSourcedId");
        if !is_school(school) {
            errors.push(r.err("schoolSourcedId", format!("`{school}` is not a school of orgs.csv")));
            if teaches {
                untaught.insert(class_id);
            }
            continue;
        }
        let user = r.get("userSourcedId");
        let Some(&i) = user_at.get(user) else {
            if !listed_users.contains(user) {
                errors.push(r.err("userSourcedId", format!("`{user}` is not a user of users.csv")));
            }
            if teaches {
                untaught.insert(class_id);
            }
            continue;
        };
        let primary = match r.get("primary") {
            "true" => true,
            "false" | "" => false,
            other => {
                errors.push(r.err("primary", format!("`{other}` is not true or false")));
                if teaches {
                    untaught.insert(class_id);
                }
                continue;
            }
        };
        let (Ok(begin), Ok(end)) = (r.date("beginDate", &mut errors), r.date("endDate", &mut errors)) else {
            if teaches {
                untaught.insert(class_id);
            }
            continue;
        };
        let role = r.get("role");
        if !vocabulary(role, &["administrator", "proctor", "student", "teacher"]) {
            errors.push(r.err("role", format!("`{role}` is not one of administrator, proctor, student, teacher")));
            continue;
        }
        if !in_force(opts.as_of, begin, end) || !class.in_force {
            counts.not_in_force += 1;
            continue;
        }
        match role {
            "teacher" => {
                staff.insert(i);
                let slot = teacher.entry(class_id).or_insert((primary, i));
                if primary && !slot.0 {
                    *slot = (true, i);
                }
            }
            "student" => {
                if !student_school.contains_key(&i) {
                    if tainted.contains(&i) {
                        continue;
                    }
                    errors.push(r.err("userSourcedId", format!("`{user}` is enrolled as a student but has no student role")));
                    continue;
                }
                student_rows.push((r, i, class_id));
            }
            _ => {}
        }
    }

    // The sections companion.
    let mut kinds: HashMap<String, (u64, SectionKind)> = HashMap::new();
    let mut meetings: HashMap<String, Vec<Meeting>> = HashMap::new();
    if let Some(t) = &sections_t {
        for r in t.rows() {
            let id = r.get("section_id");
            if !classes.contains_key(id) {
                if !listed_classes.contains(id) {
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
            let (Some(specials), Some(dual_enrollment)) = (flag("specials", &mut errors), flag("dual_enrollment", &mut errors))
            else {
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

    // Student enrollments, in file order, the homeroom first.
    let mut homeroom_line: HashMap<usize, u64> = HashMap::new();
    for (r, i, class_id) in student_rows {
        let Some(student) = students.get_mut(&i) else { continue };
        counts.enrollments += 1;
        let Some(&(_, t)) = teacher.get(class_id) else {
            if !untaught.contains(class_id) {
                errors.push(r.err("classSourcedId", format!("class `{class_id}` has no teacher enrollment in force")));
            }
            continue;
        };
        if student.enrollment(class_id).is_some() {
            continue;
        }
        let staff_id = users[t].sis_id(opts.sis_id).to_string();
        let kind = kinds.get(class_id).map(|(_, k)| k.clone()).unwrap_or(SectionKind {
            course_type: CourseType::Live,
            specials: false,
            dual_enrollment: false,
        });
        let enrollment = Enrollment {
            section_id: class_id.to_string(),
            staff_id: staff_id.clone(),
            course_type: kind.course_type,
            specials: kind.specials,
            dual_enrollment: kind.dual_enrollment,
            meetings: meetings.get(class_id).cloned().unwrap_or_default(),
        };
        let homeroom = classes.get(class_id).is_some_and(|c| c.homeroom);
        if homeroom {
            if let Some(first) = homeroom_line.get(&i) {
                errors.push(r.err("classSourcedId", format!("a second homeroom for the student (the first on line {first})")));
                continue;
            }
            homeroom_line.insert(i, r.line);
            student.homeroom_section_id = Some(class_id.to_string());
            student.homeroom_staff_id = Some(staff_id);
            student.enrollments.insert(0, enrollment);
        } else {
            student.enrollments.push(enrollment);
        }
    }

    // The modes companion.
    if let Some(t) = &modes_t {
        let by_id: HashMap<String, usize> = students.iter().map(|(i, s)| (s.student_id.clone(), *i)).collect();
        for r in t.rows() {
            let id = r.get("student_id");
            let Some(i) = by_id.get(id) else {
                if !listed_ids.contains(id) {
                    errors.push(r.err("student_id", format!("`{id}` is not a student of the export")));
                }
                continue;
            };
            let (Ok(from), Ok(to)) = (r.date("from", &mut errors), r.date("to", &mut errors)) else { continue };
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

    // demographics: checked, not mapped.
    if let Some(t) = &demographics_t {
        let sexes: &[&str] =
            if version == Version::V1p1 { &["male", "female"] } else { &["male", "female", "other", "unspecified"] };
        for r in t.rows() {
            if unique(&r, &mut errors).is_none() || !r.bulk_status(&mut errors) {
                continue;
            }
            let sex = r.get("sex");
            if !sex.is_empty() && !sexes.contains(&sex) {
                errors.push(r.err("sex", format!("`{sex}` is not one of {}", sexes.join(", "))));
            }
        }
    }

    // Identities.
    counts.staff = staff.iter().filter(|i| !student_school.contains_key(i)).count();
    let mut identities = Vec::new();
    let mut mapped: HashMap<(String, IdentityType, String), (usize, String)> = HashMap::new();
    for source in &opts.sources {
        let mut add = |kind: IdentityType,
                       key: String,
                       id: &str,
                       school: Option<&str>,
                       place: (&str, u64),
                       errors: &mut Vec<RosterError>| {
            let record = IdentityRecord {
                source: source.clone(),
                kind,
                external_id: key.clone(),
                id: id.to_string(),
                school_id: school.map(str::to_string),
            };
            match mapped.get(&(source.clone(), kind, key.clone())) {
                Some((at, _)) if identities.get(*at) == Some(&record) => {}
                Some((at, first)) => errors.push(RosterError::Row {
                    file: place.0.into(),
                    line: place.1,
                    column: None,
                    problem: format!(
                        "{source} {} key `{key}` would stand for `{id}` and for `{}` ({first})",
                        kind.as_str().to_lowercase(),
                        identities.get(*at).map_or("", |r: &IdentityRecord| r.id.as_str())
                    ),
                }),
                None => {
                    mapped.insert((source.clone(), kind, key), (identities.len(), format!("{}:{}", place.0, place.1)));
                    identities.push(record);
                }
            }
        };
        for (i, s) in &students {
            let u = &users[*i];
            for key in u.keys(&opts.identity_keys) {
                add(IdentityType::Student, key, &s.student_id, Some(&s.school_id), ("users.csv", u.line), &mut errors);
            }
        }
        for i in staff.iter().filter(|i| !student_school.contains_key(i)) {
            let u = &users[*i];
            for key in u.keys(&opts.identity_keys) {
                add(IdentityType::Staff, key, u.sis_id(opts.sis_id), None, ("users.csv", u.line), &mut errors);
            }
        }
        for id in &class_order {
            if let Some(c) = classes.get(id).filter(|c| c.in_force) {
                add(IdentityType::Section, id.clone(), id, Some(&c.school), ("classes.csv", c.line), &mut errors);
            }
        }
    }

    errors.sort_by_key(order);
    errors.dedup();
    Ok(Import { version, students: students.into_values().collect(), identities, errors, counts })
}

fn order(e: &RosterError) -> (String, u64) {
    match e {
        RosterError::Row { file, line, .. } => (file.clone(), *line),
        RosterError::File { file, .. } => (file.clone(), 0),
    }
}

#[cfg(test)]
mod tests;
