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

mod classes;
mod companion;
mod enrollments;
mod files;
mod identities;
mod people;

use std::collections::BTreeMap;
use std::fmt;

use chrono::NaiveDate;
use rollcall_model::{IdentityRecord, StudentRecord};

pub use files::{weekdays, MODES_HEADER, SECTIONS_HEADER};
pub use people::grade_level;

use crate::IngestError;
#[cfg(test)]
use people::user_id;

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

/// What every phase of an import shares: the options, the version, the
/// row errors so far, the counts, and the sourcedIds seen.
struct Ctx<'o> {
    opts: &'o Options,
    version: Version,
    errors: Vec<RosterError>,
    counts: Counts,
    unique: files::Unique,
}

/// Reads an export (see the module documentation).
pub fn import(input: &Input, opts: &Options) -> Result<Import, Refused> {
    // The phases run in this order, each adding its row errors in turn; the
    // final sort is stable, so the order also fixes the errors' order
    // within a line.
    let mut errors = Vec::new();
    let tables = files::read(input, &mut errors)?;
    let mut cx = Ctx { opts, version: tables.version, errors, counts: Counts::default(), unique: files::Unique::default() };
    let catalog = classes::read(&tables, &mut cx);
    let listed = files::Listed::new(&tables);
    let mut people = people::read(&tables, &catalog, &listed, &mut cx);
    let taught = enrollments::teachers(&tables, &catalog, &listed, &mut people, &mut cx);
    let sections = companion::sections(&tables, &catalog, &listed, &mut cx);
    enrollments::assign(taught, &sections, &catalog, &mut people, &mut cx);
    companion::modes(&tables, &listed, &mut people, &mut cx);
    people::check_demographics(&tables, &mut cx);
    let identities = identities::identities(&people, &catalog, &mut cx);

    let Ctx { version, mut errors, counts, .. } = cx;
    errors.sort_by_key(order);
    errors.dedup();
    Ok(Import { version, students: people.students.into_values().collect(), identities, errors, counts })
}

fn order(e: &RosterError) -> (String, u64) {
    match e {
        RosterError::Row { file, line, .. } => (file.clone(), *line),
        RosterError::File { file, .. } => (file.clone(), 0),
    }
}

#[cfg(test)]
mod tests;
