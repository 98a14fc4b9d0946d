//! Ed-Fi attendance documents from the `determinations` table: a DAY
//! determination becomes a StudentSchoolAttendanceEvent, a SECTION one a
//! StudentSectionAttendanceEvent (Ed-Fi Data Standard 4.0–5.2; the shapes
//! are those of `/work/shared/standards.md` §5 and the Ed-Fi XSD).
//!
//! Ed-Fi needs what rollcall does not know — a school's integer `schoolId`,
//! the session a date belongs to, a section's course code, the district's
//! descriptor for virtual attendance — so a mapping file (TOML, [`Mapping`])
//! supplies it, and says which category each policy's codes take. A
//! determination the mapping cannot place (WEEK counts without a configured
//! descriptor, a school without an id, a date in no session) is skipped and
//! counted by reason, never guessed.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use chrono::{Datelike, NaiveDate};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio_postgres::Client;

/// The Ed-Fi resources written, as named in the API's URLs.
pub const SCHOOL_EVENTS: &str = "studentSchoolAttendanceEvents";
pub const SECTION_EVENTS: &str = "studentSectionAttendanceEvents";

const CATEGORY_NS: &str = "AttendanceEventCategoryDescriptor";
const ENVIRONMENT_NS: &str = "EducationalEnvironmentDescriptor";

/// What went wrong with a mapping file or an export.
#[derive(Debug, thiserror::Error)]
pub enum EdfiError {
    #[error("{file}: {message}")]
    Mapping { file: String, message: String },
    #[error("{file}: {field}: {message}")]
    Invalid { file: String, field: String, message: String },
    #[error("database: {what}: {source}")]
    Db {
        what: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("determination {determination_id}: column {column}: {message}")]
    Row { determination_id: String, column: &'static str, message: String },
    #[error("writing the documents: {0}")]
    Write(#[source] std::io::Error),
}

/// The mapping file. Every section is optional; the defaults are Ed-Fi's
/// own descriptors and the school year that ends in the date's July–June.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Mapping {
    /// rollcall `school_id` → Ed-Fi `schoolId`. A school id that is itself a
    /// whole number needs no entry.
    pub schools: BTreeMap<String, i64>,
    /// Sessions by date (and school): the first that holds the date wins.
    /// Without any, the session is `{Y-1}-{Y} School Year` of school year Y.
    pub sessions: Vec<SessionRule>,
    /// Category descriptor per status, for codes no policy entry names.
    pub categories: Categories,
    /// Per policy id, per code: a category descriptor URI, or `"skip"`.
    pub policies: BTreeMap<String, PolicyCodes>,
    pub educational_environment: Environment,
    /// WEEK determinations (weekly contact counts, nmped) have no Ed-Fi
    /// category of their own: per code, a descriptor of the district's, or skipped.
    pub week: PolicyCodes,
    /// rollcall `section_id` → Ed-Fi section identity. Without an entry both
    /// parts are the section id.
    pub sections: BTreeMap<String, SectionIdentity>,
    /// Write the rule's words as `attendanceEventReason` (cut to 255 characters).
    pub reason: bool,
}

impl Default for Mapping {
    fn default() -> Self {
        Mapping {
            schools: BTreeMap::new(),
            sessions: Vec::new(),
            categories: Categories::default(),
            policies: BTreeMap::new(),
            educational_environment: Environment::default(),
            week: PolicyCodes::default(),
            sections: BTreeMap::new(),
            reason: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SessionRule {
    pub school_year: i32,
    pub session_name: String,
    /// First and last date of the session (inclusive); open when absent.
    #[serde(default, deserialize_with = "toml_date")]
    pub begin: Option<NaiveDate>,
    #[serde(default, deserialize_with = "toml_date")]
    pub end: Option<NaiveDate>,
    /// rollcall school ids; empty: every school.
    #[serde(default)]
    pub schools: Vec<String>,
}

/// A date written as TOML's own (`2020-08-01`) or as a string (`"2020-08-01"`).
fn toml_date<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
    use serde::de::Error;
    let text = match Option::<toml::Value>::deserialize(d)? {
        None => return Ok(None),
        Some(toml::Value::Datetime(dt)) => match (dt.date, dt.time) {
            (Some(date), None) => date.to_string(),
            _ => return Err(D::Error::custom(format!("`{dt}` is not a plain date (YYYY-MM-DD)"))),
        },
        Some(toml::Value::String(s)) => s,
        Some(other) => return Err(D::Error::custom(format!("`{other}` is not a date (YYYY-MM-DD)"))),
    };
    text.parse::<NaiveDate>().map(Some).map_err(|e| D::Error::custom(format!("`{text}` is not a date: {e}")))
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Categories {
    pub present: String,
    pub present_remote: String,
    pub absent_excused: String,
    pub absent_unexcused: String,
    /// EXEMPT (mississippi dual enrollment): no Ed-Fi category by default; skipped.
    pub exempt: Option<String>,
}

fn category(code: &str) -> String {
    format!("uri://ed-fi.org/{CATEGORY_NS}#{code}")
}

impl Default for Categories {
    fn default() -> Self {
        Categories {
            present: category("In Attendance"),
            present_remote: category("In Attendance"),
            absent_excused: category("Excused Absence"),
            absent_unexcused: category("Unexcused Absence"),
            exempt: None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyCodes {
    #[serde(default)]
    pub codes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Environment {
    /// For `attendance_type = IN_PERSON`.
    pub in_person: Option<String>,
    /// For `attendance_type = VIRTUAL`. Ed-Fi has no virtual code: a
    /// district descriptor (`uri://district.example.org/EducationalEnvironmentDescriptor#Virtual`), or none.
    #[serde(rename = "virtual")]
    pub virtual_: Option<String>,
}

impl Default for Environment {
    fn default() -> Self {
        Environment { in_person: Some(format!("uri://ed-fi.org/{ENVIRONMENT_NS}#Classroom")), virtual_: None }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SectionIdentity {
    pub local_course_code: String,
    pub section_identifier: String,
}

/// Whether `uri` is a descriptor URI `uri://authority/…/<Namespace>#<code>`
/// of the namespace `ns`.
pub fn is_descriptor(uri: &str, ns: &str) -> bool {
    let Some(rest) = uri.strip_prefix("uri://") else { return false };
    let Some((path, code)) = rest.split_once('#') else { return false };
    let Some((authority, name)) = path.rsplit_once('/') else { return false };
    !authority.is_empty()
        && !authority.contains(char::is_whitespace)
        && name == ns
        && !code.trim().is_empty()
        && code.trim() == code
        && !code.contains('#')
        && code.len() <= 50
}

impl Mapping {
    pub fn load(path: &Path) -> Result<Mapping, EdfiError> {
        let file = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|e| EdfiError::Mapping { file: file.clone(), message: e.to_string() })?;
        Mapping::parse(&text, &file)
    }

    pub fn parse(text: &str, file: &str) -> Result<Mapping, EdfiError> {
        let m: Mapping = toml::from_str(text).map_err(|e| EdfiError::Mapping { file: file.into(), message: e.to_string() })?;
        m.validate(file)?;
        Ok(m)
    }

    /// Checks every descriptor, id and session before anything is written.
    pub fn validate(&self, file: &str) -> Result<(), EdfiError> {
        let invalid = |field: String, message: String| Err(EdfiError::Invalid { file: file.into(), field, message });
        let cat = |field: String, uri: &str| -> Result<(), EdfiError> {
            if uri == "skip" || is_descriptor(uri, CATEGORY_NS) {
                Ok(())
            } else {
                invalid(field, format!("`{uri}` is not a descriptor URI uri://…/{CATEGORY_NS}#Code (or \"skip\")"))
            }
        };
        let c = &self.categories;
        for (f, v) in [
            ("present", &c.present),
            ("present_remote", &c.present_remote),
            ("absent_excused", &c.absent_excused),
            ("absent_unexcused", &c.absent_unexcused),
        ] {
            cat(format!("categories.{f}"), v)?;
        }
        if let Some(v) = &c.exempt {
            cat("categories.exempt".into(), v)?;
        }
        for (p, codes) in &self.policies {
            for (code, v) in &codes.codes {
                cat(format!("policies.{p}.codes.{code}"), v)?;
            }
        }
        for (code, v) in &self.week.codes {
            cat(format!("week.codes.{code}"), v)?;
        }
        for (f, v) in
            [("in_person", &self.educational_environment.in_person), ("virtual", &self.educational_environment.virtual_)]
        {
            if let Some(v) = v {
                if !is_descriptor(v, ENVIRONMENT_NS) {
                    return invalid(
                        format!("educational_environment.{f}"),
                        format!("`{v}` is not a descriptor URI uri://…/{ENVIRONMENT_NS}#Code"),
                    );
                }
            }
        }
        for (s, id) in &self.schools {
            if *id <= 0 || *id > i32::MAX as i64 {
                return invalid(format!("schools.{s}"), format!("{id} is not an Ed-Fi schoolId (a positive integer)"));
            }
        }
        for (i, s) in self.sessions.iter().enumerate() {
            if !(1900..=2100).contains(&s.school_year) {
                return invalid(format!("sessions[{i}].school_year"), format!("{} is not a school year", s.school_year));
            }
            if s.session_name.trim().is_empty() || s.session_name.chars().count() > 60 {
                return invalid(format!("sessions[{i}].session_name"), "must have 1 to 60 characters".into());
            }
            if let (Some(b), Some(e)) = (s.begin, s.end) {
                if b > e {
                    return invalid(format!("sessions[{i}]"), format!("begin {b} is after end {e}"));
                }
            }
        }
        for (s, id) in &self.sections {
            if id.local_course_code.trim().is_empty() || id.local_course_code.chars().count() > 60 {
                return invalid(format!("sections.{s}.local_course_code"), "must have 1 to 60 characters".into());
            }
            if id.section_identifier.trim().is_empty() || id.section_identifier.chars().count() > 255 {
                return invalid(format!("sections.{s}.section_identifier"), "must have 1 to 255 characters".into());
            }
        }
        Ok(())
    }

    fn school_id(&self, school: &str) -> Option<i64> {
        self.schools.get(school).copied().or_else(|| school.parse::<i64>().ok().filter(|n| *n > 0 && *n <= i32::MAX as i64))
    }

    fn session(&self, school: &str, date: NaiveDate) -> Option<(i32, String)> {
        if self.sessions.is_empty() {
            // Ed-Fi's school year is the calendar year in which it ends.
            let y = if date.month() >= 7 { date.year() + 1 } else { date.year() };
            return Some((y, format!("{}-{y} School Year", y - 1)));
        }
        self.sessions
            .iter()
            .find(|s| {
                (s.schools.is_empty() || s.schools.iter().any(|x| x == school))
                    && s.begin.is_none_or(|b| b <= date)
                    && s.end.is_none_or(|e| date <= e)
            })
            .map(|s| (s.school_year, s.session_name.clone()))
    }
}

/// The columns of a determination an Ed-Fi document is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub determination_id: String,
    pub student_id: String,
    pub school_id: String,
    pub scope: String,
    pub date: NaiveDate,
    pub section_id: Option<String>,
    pub policy: String,
    pub status: String,
    pub code: String,
    pub attendance_type: Option<String>,
    pub minutes: Option<i64>,
    pub rule: String,
}

/// One line of the export: which resource, which determination, the document.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub resource: &'static str,
    pub determination_id: String,
    pub body: Value,
}

impl Document {
    pub fn to_line(&self) -> Value {
        json!({"resource": self.resource, "determination_id": self.determination_id, "document": self.body})
    }
}

/// Makes the document of one determination, or says why there is none
/// (the reason is the `skipped` counter's key).
pub fn to_document(m: &Mapping, r: &Row) -> Result<Document, &'static str> {
    let week = r.scope == "WEEK";
    let category = if week {
        m.week.codes.get(&r.code).cloned().ok_or("week_not_mapped")?
    } else if let Some(c) = m.policies.get(&r.policy).and_then(|p| p.codes.get(&r.code)) {
        c.clone()
    } else {
        match r.status.as_str() {
            "PRESENT" => m.categories.present.clone(),
            "PRESENT_REMOTE" => m.categories.present_remote.clone(),
            "ABSENT_EXCUSED" => m.categories.absent_excused.clone(),
            "ABSENT_UNEXCUSED" => m.categories.absent_unexcused.clone(),
            "EXEMPT" => m.categories.exempt.clone().ok_or("exempt_not_mapped")?,
            _ => return Err("status_not_mapped"),
        }
    };
    if category == "skip" {
        return Err("skipped_by_mapping");
    }
    let school_id = m.school_id(&r.school_id).ok_or("school_not_mapped")?;
    let (school_year, session_name) = m.session(&r.school_id, r.date).ok_or("no_session")?;
    // Ed-Fi's studentUniqueId holds at most 32 characters.
    if r.student_id.is_empty() || r.student_id.chars().count() > 32 {
        return Err("student_id_not_an_edfi_id");
    }
    let mut doc = Map::new();
    doc.insert("studentReference".into(), json!({"studentUniqueId": r.student_id}));
    let section = r.scope == "SECTION" || (week && r.section_id.is_some());
    let resource = if section {
        let sid = r.section_id.as_deref().ok_or("section_without_id")?;
        let (course, ident) = match m.sections.get(sid) {
            Some(s) => (s.local_course_code.clone(), s.section_identifier.clone()),
            None => (sid.to_string(), sid.to_string()),
        };
        if course.chars().count() > 60 || ident.chars().count() > 255 {
            return Err("section_id_not_an_edfi_id");
        }
        doc.insert(
            "sectionReference".into(),
            json!({"localCourseCode": course, "schoolId": school_id, "schoolYear": school_year,
                   "sectionIdentifier": ident, "sessionName": session_name}),
        );
        SECTION_EVENTS
    } else if r.scope == "DAY" || week {
        doc.insert("schoolReference".into(), json!({"schoolId": school_id}));
        doc.insert(
            "sessionReference".into(),
            json!({"schoolId": school_id, "schoolYear": school_year, "sessionName": session_name}),
        );
        SCHOOL_EVENTS
    } else {
        return Err("scope_not_mapped");
    };
    doc.insert("eventDate".into(), json!(r.date.to_string()));
    doc.insert("attendanceEventCategoryDescriptor".into(), json!(category));
    if m.reason && !r.rule.is_empty() {
        doc.insert("attendanceEventReason".into(), json!(r.rule.chars().take(255).collect::<String>()));
    }
    let env = match r.attendance_type.as_deref() {
        Some("IN_PERSON") => m.educational_environment.in_person.as_ref(),
        Some("VIRTUAL") => m.educational_environment.virtual_.as_ref(),
        _ => None,
    };
    if let Some(e) = env {
        doc.insert("educationalEnvironmentDescriptor".into(), json!(e));
    }
    // Minutes of a day: Ed-Fi's durations run from 0 to 1440.
    if let Some(min) = r.minutes.filter(|m| (0..=1440).contains(m)) {
        let field = if section { "sectionAttendanceDuration" } else { "schoolAttendanceDuration" };
        doc.insert(field.into(), json!(min));
    }
    Ok(Document { resource, determination_id: r.determination_id.clone(), body: Value::Object(doc) })
}

/// Which determinations to export.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub school: Option<String>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    /// Also PROVISIONAL rows (by default only FINAL and CORRECTION: what
    /// will not change without a correction).
    pub include_provisional: bool,
}

/// What an export wrote and skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportStats {
    pub rows: u64,
    pub by_resource: BTreeMap<&'static str, u64>,
    pub skipped: BTreeMap<&'static str, u64>,
}

/// Writes one JSON line per document (`{"resource", "determination_id",
/// "document"}`), reading the table through a cursor so that a district's
/// year needs no more memory than a page of rows.
pub async fn export(client: &mut Client, m: &Mapping, f: &Filter, out: &mut dyn Write) -> Result<ExportStats, EdfiError> {
    let db = |what: &str| {
        let what = what.to_string();
        move |source| EdfiError::Db { what, source }
    };
    let tx = client.transaction().await.map_err(db("beginning the export"))?;
    // Values go in as parameters; the cursor is declared by a prepared statement.
    tx.execute(
        "DECLARE edfi_export NO SCROLL CURSOR FOR
         SELECT determination_id, student_id, school_id, scope, date, section_id, policy, status, code,
                attendance_type, minutes, rule
           FROM determinations
          WHERE ($1::text IS NULL OR school_id = $1)
            AND ($2::date IS NULL OR date >= $2)
            AND ($3::date IS NULL OR date <= $3)
            AND ($4 OR finality <> 'PROVISIONAL')
          ORDER BY school_id, date, student_id, scope, section_key",
        &[&f.school, &f.from, &f.to, &f.include_provisional],
    )
    .await
    .map_err(db("declaring the export cursor"))?;
    let mut stats = ExportStats::default();
    loop {
        let rows = tx.query("FETCH 5000 FROM edfi_export", &[]).await.map_err(db("reading determinations"))?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let r = Row {
                determination_id: row.get(0),
                student_id: row.get(1),
                school_id: row.get(2),
                scope: row.get(3),
                date: row.get(4),
                section_id: row.get(5),
                policy: row.get(6),
                status: row.get(7),
                code: row.get(8),
                attendance_type: row.get(9),
                minutes: row.get(10),
                rule: row.get(11),
            };
            stats.rows += 1;
            match to_document(m, &r) {
                Ok(d) => {
                    *stats.by_resource.entry(d.resource).or_default() += 1;
                    serde_json::to_writer(&mut *out, &d.to_line()).map_err(|e| EdfiError::Write(e.into()))?;
                    out.write_all(b"\n").map_err(EdfiError::Write)?;
                }
                Err(why) => *stats.skipped.entry(why).or_default() += 1,
            }
        }
    }
    tx.commit().await.map_err(db("closing the export"))?;
    out.flush().map_err(EdfiError::Write)?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(scope: &str, status: &str, code: &str) -> Row {
        Row {
            determination_id: "s1|DAY|2020-10-06#1".into(),
            student_id: "s1".into(),
            school_id: "255901001".into(),
            scope: scope.into(),
            date: NaiveDate::from_ymd_opt(2020, 10, 6).unwrap(),
            section_id: (scope != "DAY").then(|| "math-7".into()),
            policy: "cms".into(),
            status: status.into(),
            code: code.into(),
            attendance_type: Some("VIRTUAL".into()),
            minutes: Some(390),
            rule: "r".repeat(300),
        }
    }

    #[test]
    fn a_day_is_a_school_event_with_defaults() {
        let d = to_document(&Mapping::default(), &row("DAY", "PRESENT_REMOTE", "1R")).unwrap();
        assert_eq!(d.resource, SCHOOL_EVENTS);
        let b = &d.body;
        assert_eq!(b["schoolReference"]["schoolId"], 255901001);
        assert_eq!(b["sessionReference"]["schoolYear"], 2021);
        assert_eq!(b["sessionReference"]["sessionName"], "2020-2021 School Year");
        assert_eq!(b["attendanceEventCategoryDescriptor"], "uri://ed-fi.org/AttendanceEventCategoryDescriptor#In Attendance");
        assert_eq!(b["schoolAttendanceDuration"], 390);
        assert_eq!(b["attendanceEventReason"].as_str().unwrap().chars().count(), 255);
        // No virtual descriptor configured: none written.
        assert!(b.get("educationalEnvironmentDescriptor").is_none());
    }

    #[test]
    fn sections_policies_weeks_and_sessions_follow_the_mapping() {
        let m = Mapping::parse(
            r#"
            schools = { "255901001" = 7 }
            [[sessions]]
            school_year = 2021
            session_name = "2020-2021 Fall Semester"
            begin = 2020-08-01
            end = 2020-12-31
            [policies.cms.codes]
            AU = "uri://district.example.org/AttendanceEventCategoryDescriptor#Unverified"
            [educational_environment]
            virtual = "uri://district.example.org/EducationalEnvironmentDescriptor#Virtual"
            [week.codes]
            C45 = "uri://district.example.org/AttendanceEventCategoryDescriptor#Weekly Contact"
            [sections.math-7]
            local_course_code = "MATH-7"
            section_identifier = "MATH-7-01"
            "#,
            "m.toml",
        )
        .unwrap();
        let d = to_document(&m, &row("SECTION", "ABSENT_UNEXCUSED", "AU")).unwrap();
        assert_eq!(d.resource, SECTION_EVENTS);
        assert_eq!(d.body["sectionReference"]["localCourseCode"], "MATH-7");
        assert_eq!(d.body["sectionReference"]["schoolId"], 7);
        assert_eq!(d.body["sectionReference"]["sessionName"], "2020-2021 Fall Semester");
        assert_eq!(
            d.body["attendanceEventCategoryDescriptor"],
            "uri://district.example.org/AttendanceEventCategoryDescriptor#Unverified"
        );
        assert_eq!(
            d.body["educationalEnvironmentDescriptor"],
            "uri://district.example.org/EducationalEnvironmentDescriptor#Virtual"
        );
        assert_eq!(d.body["sectionAttendanceDuration"], 390);
        assert_eq!(to_document(&m, &row("WEEK", "CONTACTS", "C1")).unwrap_err(), "week_not_mapped");
        assert_eq!(to_document(&m, &row("WEEK", "CONTACTS", "C45")).unwrap().resource, SECTION_EVENTS);
        let mut spring = row("DAY", "PRESENT", "P");
        spring.date = NaiveDate::from_ymd_opt(2021, 2, 1).unwrap();
        assert_eq!(to_document(&m, &spring).unwrap_err(), "no_session");
        let mut unmapped = row("DAY", "PRESENT", "P");
        unmapped.school_id = "lincoln".into();
        assert_eq!(to_document(&m, &unmapped).unwrap_err(), "school_not_mapped");
        assert_eq!(to_document(&m, &row("DAY", "EXEMPT", "DE")).unwrap_err(), "exempt_not_mapped");
        let mut long = row("DAY", "PRESENT", "P");
        long.minutes = Some(2000);
        assert!(to_document(&m, &long).unwrap().body.get("schoolAttendanceDuration").is_none());
    }

    #[test]
    fn bad_mappings_name_their_field() {
        let e = Mapping::parse("[categories]\npresent = \"In Attendance\"\n", "m.toml").unwrap_err().to_string();
        assert!(e.contains("m.toml") && e.contains("categories.present"), "{e}");
        let e = Mapping::parse(
            "[educational_environment]\nvirtual = \"uri://x.org/AttendanceEventCategoryDescriptor#V\"\n",
            "m.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("educational_environment.virtual"), "{e}");
        let e = Mapping::parse("schools = { a = -1 }\n", "m.toml").unwrap_err().to_string();
        assert!(e.contains("schools.a"), "{e}");
        let e = Mapping::parse("colour = 1\n", "m.toml").unwrap_err().to_string();
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn descriptor_uris() {
        assert!(is_descriptor("uri://ed-fi.org/AttendanceEventCategoryDescriptor#In Attendance", CATEGORY_NS));
        assert!(!is_descriptor("uri://ed-fi.org/AttendanceEventCategoryDescriptor#", CATEGORY_NS));
        assert!(!is_descriptor("http://ed-fi.org/AttendanceEventCategoryDescriptor#P", CATEGORY_NS));
        assert!(!is_descriptor("uri://ed-fi.org/EducationalEnvironmentDescriptor#P", CATEGORY_NS));
    }

    #[test]
    fn the_shipped_example_mapping_is_valid() {
        let m = Mapping::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("edfi-mapping.example.toml")).unwrap();
        assert!(!m.schools.is_empty() && !m.sessions.is_empty());
    }
}
