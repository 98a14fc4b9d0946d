//! The records of docs/data-model.md, in their canonical JSON form.
//!
//! Field names and enum spellings are the wire names: the same identifiers
//! appear in the Avro schemas under `schemas/`. Unknown fields are refused so
//! that a misspelt field in a scenario or feed is an error, not a silent
//! default.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Declares a wire enum: UPPER_SNAKE names in JSON and Avro, `as_str`,
/// `FromStr` and the list of symbols (the Avro enum's symbol order).
macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $wire)] $variant),+
        }
        impl $name {
            /// Every symbol, in schema order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The symbols as they are spelt on the wire, in schema order.
            pub const SYMBOLS: &'static [&'static str] = &[$($wire),+];
            /// The wire spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }
            /// Position in the schema's symbol list (stable: used in state encodings).
            pub fn index(self) -> u8 {
                self as u8
            }
            /// Inverse of [`Self::index`].
            pub fn from_index(i: u8) -> Option<Self> {
                Self::ALL.get(i as usize).copied()
            }
        }
        impl FromStr for $name {
            type Err = UnknownSymbol;
            fn from_str(s: &str) -> Result<Self, UnknownSymbol> {
                match s {
                    $($wire => Ok($name::$variant),)+
                    _ => Err(UnknownSymbol { enum_name: stringify!($name), value: s.to_string(), expected: Self::SYMBOLS }),
                }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

/// A value that is not one of an enum's symbols.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {enum_name} value `{value}` (expected one of {})", expected.join(", "))]
pub struct UnknownSymbol {
    pub enum_name: &'static str,
    pub value: String,
    pub expected: &'static [&'static str],
}

wire_enum!(
    /// What a learning platform, meeting system or teacher reported.
    ActivityKind {
        Login = "LOGIN",
        Logout = "LOGOUT",
        Submission = "SUBMISSION",
        Message = "MESSAGE",
        LiveJoin = "LIVE_JOIN",
        LiveLeave = "LIVE_LEAVE",
        ContentAccess = "CONTENT_ACCESS",
        RecordingView = "RECORDING_VIEW",
        TwoWayContact = "TWO_WAY_CONTACT",
        CheckIn = "CHECK_IN",
        CheckOut = "CHECK_OUT",
        OfflineWorkReturned = "OFFLINE_WORK_RETURNED",
    }
);

impl ActivityKind {
    /// docs/policies/README.md: the engagement events. A MESSAGE counts only
    /// when it is from the student, which the caller checks.
    pub fn is_engagement_kind(self) -> bool {
        matches!(
            self,
            ActivityKind::Submission
                | ActivityKind::Message
                | ActivityKind::LiveJoin
                | ActivityKind::ContentAccess
                | ActivityKind::RecordingView
                | ActivityKind::TwoWayContact
                | ActivityKind::OfflineWorkReturned
        )
    }
}

wire_enum!(
    /// Who sent a MESSAGE.
    Direction { FromStudent = "FROM_STUDENT", FromGuardian = "FROM_GUARDIAN", FromStaff = "FROM_STAFF" }
);

wire_enum!(
    /// Grade levels as the SIS spells them.
    GradeLevel {
        Ec = "EC", Pk4 = "4K", K = "K",
        G1 = "1", G2 = "2", G3 = "3", G4 = "4", G5 = "5", G6 = "6",
        G7 = "7", G8 = "8", G9 = "9", G10 = "10", G11 = "11", G12 = "12",
    }
);

wire_enum!(
    /// Whether a course meets live or is designed for asynchronous work only.
    CourseType { Live = "LIVE", AsyncOnly = "ASYNC_ONLY" }
);

wire_enum!(
    /// Days of the week, Monday first (weeks run Monday to Sunday).
    Weekday { Mon = "MON", Tue = "TUE", Wed = "WED", Thu = "THU", Fri = "FRI", Sat = "SAT", Sun = "SUN" }
);

impl Weekday {
    pub fn of(date: NaiveDate) -> Weekday {
        use chrono::Datelike;
        Weekday::ALL[date.weekday().num_days_from_monday() as usize]
    }
}

wire_enum!(
    /// How a student is scheduled to learn on a day.
    Mode {
        InPerson = "IN_PERSON",
        SyncOnline = "SYNC_ONLINE",
        AsyncOnline = "ASYNC_ONLINE",
        AsyncOffline = "ASYNC_OFFLINE",
        LearningPackets = "LEARNING_PACKETS",
    }
);

impl Mode {
    pub fn is_offline(self) -> bool {
        matches!(self, Mode::AsyncOffline | Mode::LearningPackets)
    }
}

wire_enum!(
    /// The kind of a school day.
    DayType { Full = "FULL", EarlyRelease = "EARLY_RELEASE", Async = "ASYNC" }
);

wire_enum!(
    /// Why a family or staff member reported an absence.
    AbsenceReason {
        Illness = "ILLNESS", Medical = "MEDICAL", Bereavement = "BEREAVEMENT", Religious = "RELIGIOUS",
        Quarantine = "QUARANTINE", Covid = "COVID", Disciplinary = "DISCIPLINARY",
        Connectivity = "CONNECTIVITY", Hardship = "HARDSHIP", Other = "OTHER",
    }
);

wire_enum!(
    /// Who reported an absence.
    Reporter { Guardian = "GUARDIAN", Staff = "STAFF" }
);

wire_enum!(
    /// What a determination covers.
    Scope { Day = "DAY", Section = "SECTION", Week = "WEEK" }
);

wire_enum!(
    /// The attendance outcome.
    Status {
        Present = "PRESENT", PresentRemote = "PRESENT_REMOTE", AbsentExcused = "ABSENT_EXCUSED",
        AbsentUnexcused = "ABSENT_UNEXCUSED", Exempt = "EXEMPT", Contacts = "CONTACTS",
    }
);

impl Status {
    pub fn is_present(self) -> bool {
        matches!(self, Status::Present | Status::PresentRemote)
    }
    pub fn is_absent(self) -> bool {
        matches!(self, Status::AbsentExcused | Status::AbsentUnexcused)
    }
}

wire_enum!(
    /// How the student attended.
    AttendanceType { InPerson = "IN_PERSON", Virtual = "VIRTUAL" }
);

wire_enum!(
    /// Whether a determination may still change.
    Finality { Provisional = "PROVISIONAL", Final = "FINAL", Correction = "CORRECTION" }
);

wire_enum!(
    /// What a person is asked to do.
    OutreachKind {
        TeacherFollowUp = "TEACHER_FOLLOW_UP", SocialWorker = "SOCIAL_WORKER", LowContact = "LOW_CONTACT",
        TruancyReferral = "TRUANCY_REFERRAL", ChronicAbsence = "CHRONIC_ABSENCE",
        // Last, so that the indices of the older symbols stay as they were.
        FamilyOutreach = "FAMILY_OUTREACH",
    }
);

wire_enum!(
    /// Who receives an outreach trigger.
    RecipientRole {
        Teacher = "TEACHER", SocialWorker = "SOCIAL_WORKER", AttendanceTeam = "ATTENDANCE_TEAM",
        AttendanceOfficer = "ATTENDANCE_OFFICER",
    }
);

/// A wall-clock time of day, `HH:MM`, kept as minutes after midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct LocalTime(pub u16);

impl LocalTime {
    pub fn minutes(self) -> u32 {
        self.0 as u32
    }
    pub fn naive(self) -> chrono::NaiveTime {
        chrono::NaiveTime::from_hms_opt(self.0 as u32 / 60, self.0 as u32 % 60, 0).unwrap_or(chrono::NaiveTime::MIN)
    }
}

impl FromStr for LocalTime {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a time of day in HH:MM form (00:00 to 24:00)");
        let (h, m) = s.split_once(':').ok_or_else(bad)?;
        if h.len() != 2 || m.len() != 2 {
            return Err(bad());
        }
        let h: u16 = h.parse().map_err(|_| bad())?;
        let m: u16 = m.parse().map_err(|_| bad())?;
        if m >= 60 || h > 24 || (h == 24 && m != 0) {
            return Err(bad());
        }
        Ok(LocalTime(h * 60 + m))
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl Serialize for LocalTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LocalTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One piece of activity (topic `lms.activity.v1`, key `student_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityEvent {
    pub event_id: String,
    pub source: String,
    pub student_id: String,
    pub school_id: String,
    #[serde(default)]
    pub section_id: Option<String>,
    #[serde(default)]
    pub staff_id: Option<String>,
    pub kind: ActivityKind,
    #[serde(default)]
    pub direction: Option<Direction>,
    pub occurred_at: DateTime<Utc>,
    #[serde(default)]
    pub assigned_date: Option<NaiveDate>,
    #[serde(default)]
    pub live_session_id: Option<String>,
    #[serde(default)]
    pub duration_seconds: Option<i64>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// When rollcall's gateway took the event; `None` for a record a
    /// producer wrote itself, and for every record of schema version 1.
    /// Not part of the event's meaning: the engine never reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at: Option<DateTime<Utc>>,
}

/// A scheduled meeting of a section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meeting {
    pub weekdays: Vec<Weekday>,
    pub start: LocalTime,
    pub end: LocalTime,
}

/// A student's enrollment in one section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrollment {
    pub section_id: String,
    pub staff_id: String,
    pub course_type: CourseType,
    #[serde(default)]
    pub specials: bool,
    #[serde(default)]
    pub dual_enrollment: bool,
    #[serde(default)]
    pub meetings: Vec<Meeting>,
}

/// A span of dates on which the student learns in one mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeSpan {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub weekdays: Vec<Weekday>,
    pub mode: Mode,
}

/// The SIS's record of a student (topic `sis.roster.v1`, compacted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudentRecord {
    pub student_id: String,
    pub school_id: String,
    pub grade_level: GradeLevel,
    #[serde(default)]
    pub homeroom_section_id: Option<String>,
    #[serde(default)]
    pub homeroom_staff_id: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub enrollments: Vec<Enrollment>,
    #[serde(default)]
    pub modes: Vec<ModeSpan>,
}

impl StudentRecord {
    /// A student with a grade and nothing more: no homeroom, groups,
    /// enrollments or mode spans (so SYNC_ONLINE every day).
    pub fn new(student_id: impl Into<String>, school_id: impl Into<String>, grade_level: GradeLevel) -> StudentRecord {
        StudentRecord {
            student_id: student_id.into(),
            school_id: school_id.into(),
            grade_level,
            homeroom_section_id: None,
            homeroom_staff_id: None,
            groups: vec![],
            enrollments: vec![],
            modes: vec![],
        }
    }

    /// Every person and class id this record names: the student, the
    /// homeroom section and teacher, each enrolled section and its teacher.
    /// None of them may ever be a metric label value.
    pub fn identifiers(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.student_id.as_str())
            .chain(self.homeroom_section_id.as_deref())
            .chain(self.homeroom_staff_id.as_deref())
            .chain(self.enrollments.iter().flat_map(|e| [e.section_id.as_str(), e.staff_id.as_str()]))
    }

    /// The mode on `date`: the first matching span, else SYNC_ONLINE.
    pub fn mode_on(&self, date: NaiveDate) -> Mode {
        let wd = Weekday::of(date);
        self.modes
            .iter()
            .find(|m| m.from <= date && date <= m.to && m.weekdays.contains(&wd))
            .map(|m| m.mode)
            .unwrap_or(Mode::SyncOnline)
    }

    pub fn enrollment(&self, section_id: &str) -> Option<&Enrollment> {
        self.enrollments.iter().find(|e| e.section_id == section_id)
    }
}

/// One date of a school calendar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarDay {
    pub date: NaiveDate,
    pub instructional: bool,
    pub day_type: DayType,
    /// Required on instructional days (checked when the calendar is loaded).
    #[serde(default)]
    pub start: LocalTime,
    #[serde(default)]
    pub end: LocalTime,
}

impl CalendarDay {
    /// The school day's instructional minutes (end − start).
    pub fn minutes(&self) -> u32 {
        self.end.minutes().saturating_sub(self.start.minutes())
    }
}

/// A school's calendar (topic `sis.calendar.v1`, key `school_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchoolCalendar {
    pub school_id: String,
    /// IANA time zone name, checked when the calendar is loaded.
    pub timezone: String,
    /// Preset id or policy name.
    pub policy: String,
    #[serde(default)]
    pub days: Vec<CalendarDay>,
}

/// A family's or staff member's report of an absence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbsenceReport {
    pub report_id: String,
    pub student_id: String,
    pub date: NaiveDate,
    pub reported_at: DateTime<Utc>,
    pub reason: AbsenceReason,
    pub reporter: Reporter,
}

/// An attendance decision (topic `attendance.determinations.v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Determination {
    pub determination_id: String,
    pub student_id: String,
    pub school_id: String,
    pub scope: Scope,
    pub date: NaiveDate,
    #[serde(default)]
    pub section_id: Option<String>,
    pub policy: String,
    pub status: Status,
    pub code: String,
    #[serde(default)]
    pub attendance_type: Option<AttendanceType>,
    #[serde(default)]
    pub minutes: Option<i64>,
    #[serde(default)]
    pub contacts: Option<i32>,
    #[serde(default)]
    pub category: Option<String>,
    pub rule: String,
    #[serde(default)]
    pub evidence: Vec<String>,
    pub version: i32,
    pub finality: Finality,
    pub decided_at: DateTime<Utc>,
    /// The evidence in detail, for a person asking why (schema version 2;
    /// records of version 1 read as empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence_detail: Vec<EvidenceDetail>,
    /// For an absence: what the rule looked for and did not find.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub looked_for: Vec<String>,
    /// For an absence: the activity in the window that did not count, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seen: Vec<SeenActivity>,
}

/// One piece of a determination's evidence, as explain shows it: an
/// activity event, or an absence report (kind `ABSENCE_REPORT`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceDetail {
    pub id: String,
    pub kind: String,
    #[serde(default)]
    pub occurred_at: Option<DateTime<Utc>>,
    /// `occurred_at` in the school's time zone, `YYYY-MM-DD HH:MM`.
    #[serde(default)]
    pub local_time: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub section_id: Option<String>,
    #[serde(default)]
    pub staff_id: Option<String>,
    /// A contact's direction, a session's minutes, a submission's assigned
    /// date, a report's reason and reporter.
    #[serde(default)]
    pub detail: Option<String>,
}

/// Activity in a window that its rule did not count, grouped by kind and
/// section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeenActivity {
    pub kind: String,
    #[serde(default)]
    pub section_id: Option<String>,
    pub count: i32,
    /// The first of them in the school's time zone, `YYYY-MM-DD HH:MM`.
    pub first_local_time: String,
    pub why_not: String,
}

impl Determination {
    /// The compaction key: `student_id|scope|date[|section_id]`.
    pub fn key(&self) -> String {
        determination_key(&self.student_id, self.scope, self.date, self.section_id.as_deref())
    }
}

/// `student_id|scope|date[|section_id]`, the key of the determinations topic.
pub fn determination_key(student_id: &str, scope: Scope, date: NaiveDate, section_id: Option<&str>) -> String {
    match section_id {
        Some(s) => format!("{student_id}|{scope}|{date}|{s}"),
        None => format!("{student_id}|{scope}|{date}"),
    }
}

/// The parts of a determinations-topic key (the inverse of
/// [`determination_key`]); `None` for anything else. A section id may
/// itself hold `|`: it is the rest of the key.
pub fn parse_determination_key(key: &str) -> Option<(String, Scope, NaiveDate, Option<String>)> {
    let mut parts = key.splitn(4, '|');
    let student = parts.next().filter(|s| !s.is_empty())?;
    let scope = parts.next()?.parse().ok()?;
    let date = parts.next()?.parse().ok()?;
    Some((student.to_string(), scope, date, parts.next().map(str::to_string)))
}

/// A request for a person to reach out (topic `attendance.outreach.v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutreachTrigger {
    pub trigger_id: String,
    pub student_id: String,
    pub school_id: String,
    pub kind: OutreachKind,
    pub recipient_role: RecipientRole,
    #[serde(default)]
    pub staff_id: Option<String>,
    #[serde(default)]
    pub section_id: Option<String>,
    pub window_start: NaiveDate,
    pub window_end: NaiveDate,
    pub reason: String,
    #[serde(default)]
    pub evidence: Vec<String>,
    pub policy: String,
    pub created_at: DateTime<Utc>,
}

wire_enum!(
    /// Why a record is a dead letter: the `error_kind` of a [`DeadLetter`],
    /// and the only spellings of it. The first seven are the wire checks of
    /// an input record (`rollcall_kafka::wire`), the rest the engine's
    /// refusals (`rollcall_engine::Rejection`), the last the gateway's. docs/data-model.md and
    /// ARCHITECTURE.md list the same kinds (a test compares them).
    DeadLetterKind {
        MissingValue = "MISSING_VALUE",
        MissingKey = "MISSING_KEY",
        KeyMismatch = "KEY_MISMATCH",
        NotAvro = "NOT_AVRO",
        WrongSchema = "WRONG_SCHEMA",
        UnknownEnum = "UNKNOWN_ENUM",
        SchemaInvalid = "SCHEMA_INVALID",
        UnknownStudent = "UNKNOWN_STUDENT",
        UnknownSchool = "UNKNOWN_SCHOOL",
        SchoolMismatch = "SCHOOL_MISMATCH",
        UnknownPolicy = "UNKNOWN_POLICY",
        InvalidRecord = "INVALID_RECORD",
        TimestampOutOfRange = "TIMESTAMP_OUT_OF_RANGE",
        TooLate = "TOO_LATE",
        UnknownIdentity = "UNKNOWN_IDENTITY",
    }
);

impl DeadLetterKind {
    /// What a record of this kind is, in one line (completing "the record …").
    pub fn meaning(self) -> &'static str {
        use DeadLetterKind::*;
        match self {
            MissingValue => "has no value",
            MissingKey => "has no key",
            KeyMismatch => "has a key that is not UTF-8 or not the record's own id",
            NotAvro => "is not in the Avro single-object encoding",
            WrongSchema => "carries the fingerprint of another schema than the topic's",
            UnknownEnum => "holds an enum symbol the schema does not have",
            SchemaInvalid => "does not decode against the schema",
            UnknownStudent => "names a student who is not on the roster (an event: after waiting for one)",
            UnknownSchool => "belongs to a student whose school has no calendar (an event: after waiting for one)",
            SchoolMismatch => "names a school other than the student's school on the roster",
            UnknownPolicy => "is a calendar naming a policy that is neither a preset nor a loaded policy file",
            InvalidRecord => "is otherwise unusable (an empty id, a bad time zone, a date twice, a start not before its end)",
            TimestampOutOfRange => "has a time further than `max_clock_skew_days` from the processing clock",
            TooLate => "is for a date whose windows are final and past the correction horizon",
            UnknownIdentity => {
                "is a platform's event naming a person or class the identity mapping did not have within the gateway's wait"
            }
        }
    }

    /// Whether the record was refused before it was decoded (a wire check)
    /// rather than by the engine.
    pub fn is_wire_check(self) -> bool {
        self.index() <= DeadLetterKind::SchemaInvalid.index()
    }
}

wire_enum!(
    /// What a platform's external id names (an [`IdentityRecord`]'s `type`).
    IdentityType { Student = "STUDENT", Staff = "STAFF", Section = "SECTION" }
);

/// What a platform's own id for a person or class stands for in the SIS
/// (topic `sis.identities.v1`, compacted, keyed by [`IdentityRecord::key`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityRecord {
    /// The platform instance as the gateway's route names it; never
    /// contains `|`, so that the key splits back into its parts.
    pub source: String,
    #[serde(rename = "type")]
    pub kind: IdentityType,
    /// The id exactly as the platform sends it.
    pub external_id: String,
    /// The SIS id it stands for.
    pub id: String,
    /// The SIS school; required for a student.
    #[serde(default)]
    pub school_id: Option<String>,
}

impl IdentityRecord {
    /// The topic key, `source|TYPE|external_id`: one per mapping, so that
    /// compaction keeps the latest and a tombstone forgets it.
    pub fn key(&self) -> String {
        IdentityRecord::key_of(&self.source, self.kind, &self.external_id)
    }

    pub fn key_of(source: &str, kind: IdentityType, external_id: &str) -> String {
        format!("{source}|{kind}|{external_id}")
    }

    /// The parts of a key, for a tombstone (which has no value to read
    /// them from). The external id is everything after the second `|`.
    pub fn parse_key(key: &str) -> Option<(String, IdentityType, String)> {
        let mut parts = key.splitn(3, '|');
        let source = parts.next().filter(|s| !s.is_empty())?;
        let kind = parts.next()?.parse().ok()?;
        let external_id = parts.next().filter(|s| !s.is_empty())?;
        Some((source.to_string(), kind, external_id.to_string()))
    }
}

/// A record that could not be used (topic `rollcall.dlq.v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetter {
    pub topic: String,
    #[serde(default)]
    pub partition: Option<i32>,
    #[serde(default)]
    pub offset: Option<i64>,
    #[serde(default)]
    pub key: Option<String>,
    /// The original bytes, base64 in JSON.
    #[serde(default, with = "bytes_b64")]
    pub value: Vec<u8>,
    /// A [`DeadLetterKind`]'s wire name (a string in the schema, so that
    /// a reader need not know every kind).
    pub error_kind: String,
    pub message: String,
    pub failed_at: DateTime<Utc>,
}

mod bytes_b64 {
    use serde::{Deserialize, Deserializer, Serializer};
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let mut out = String::with_capacity(v.len().div_ceil(3) * 4);
        for chunk in v.chunks(3) {
            let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
            let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        s.serialize_str(&out)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        let mut out = Vec::with_capacity(s.len() / 4 * 3);
        let mut acc = 0u32;
        let mut bits = 0;
        for c in s.bytes().filter(|c| *c != b'=') {
            let v = ALPHABET
                .iter()
                .position(|a| *a == c)
                .ok_or_else(|| serde::de::Error::custom(format!("invalid base64 character `{}`", c as char)))?;
            acc = acc << 6 | v as u32;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn determination_keys_parse_back() {
        let date: NaiveDate = "2020-10-05".parse().unwrap();
        for (scope, section) in [(Scope::Day, None), (Scope::Section, Some("alg|9")), (Scope::Week, Some("hr"))] {
            let key = determination_key("s1", scope, date, section);
            assert_eq!(parse_determination_key(&key), Some(("s1".into(), scope, date, section.map(String::from))), "{key}");
        }
        for bad in ["", "s1", "s1|DAY", "s1|YEAR|2020-10-05", "s1|DAY|monday", "|DAY|2020-10-05"] {
            assert_eq!(parse_determination_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn local_time_parses_and_rejects() {
        assert_eq!("08:30".parse::<LocalTime>().unwrap().0, 510);
        assert_eq!("24:00".parse::<LocalTime>().unwrap().0, 1440);
        assert!("8:30".parse::<LocalTime>().is_err());
        assert!("12:60".parse::<LocalTime>().is_err());
        assert!("24:01".parse::<LocalTime>().is_err());
    }

    #[test]
    fn enums_round_trip_by_index_and_name() {
        for k in ActivityKind::ALL {
            assert_eq!(ActivityKind::from_index(k.index()), Some(*k));
            assert_eq!(k.as_str().parse::<ActivityKind>().unwrap(), *k);
        }
        let err = "LOGGED_IN".parse::<ActivityKind>().unwrap_err().to_string();
        assert!(err.contains("LOGGED_IN") && err.contains("LOGIN"), "{err}");
    }

    #[test]
    fn unknown_field_is_refused() {
        let e = serde_json::from_str::<AbsenceReport>(
            r#"{"report_id":"r","student_id":"s","date":"2020-10-05","reported_at":"2020-10-05T00:00:00Z","reason":"ILLNESS","reporter":"GUARDIAN","why":"x"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown field `why`"), "{e}");
    }

    #[test]
    fn dead_letter_bytes_round_trip_as_base64() {
        for len in 0..7 {
            let dl = DeadLetter {
                topic: "t".into(),
                partition: Some(1),
                offset: Some(2),
                key: None,
                value: (0..len).map(|i| (i * 71 + 3) as u8).collect(),
                error_kind: DeadLetterKind::SchemaInvalid.to_string(),
                message: "m".into(),
                failed_at: DateTime::from_timestamp(0, 0).unwrap(),
            };
            let j = serde_json::to_string(&dl).unwrap();
            assert_eq!(serde_json::from_str::<DeadLetter>(&j).unwrap(), dl);
        }
    }

    #[test]
    fn mode_defaults_to_sync_online() {
        let s: StudentRecord = serde_json::from_str(
            r#"{"student_id":"s","school_id":"x","grade_level":"K","modes":[{"from":"2020-01-01","to":"2020-12-31","weekdays":["MON"],"mode":"IN_PERSON"}]}"#,
        )
        .unwrap();
        let mon = NaiveDate::from_ymd_opt(2020, 10, 5).unwrap();
        assert_eq!(s.mode_on(mon), Mode::InPerson);
        assert_eq!(s.mode_on(mon.succ_opt().unwrap()), Mode::SyncOnline);
    }
}
