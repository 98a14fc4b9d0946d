//! Attendance policies as data.
//!
//! A policy file (TOML) names the rule family a district uses and every number,
//! code and list that family reads: grade bands and their scope, thresholds,
//! codes, indicator lists, finalization times, outreach settings. The five
//! presets of docs/policies/ ship as files under `policies/` in this crate
//! and are compiled in; a district can point at its own file with the same
//! schema. Loading validates the whole file and reports the file, the place
//! and the problem.

use std::collections::BTreeMap;
use std::path::Path;

use rollcall_model::{AbsenceReason, ActivityKind, DayType, Direction, GradeLevel, LocalTime, RecipientRole, Status, Weekday};
use serde::{Deserialize, Serialize};

/// The check of the decoder on arbitrary input, for the fuzz target and the
/// corpus test.
#[doc(hidden)]
pub mod fuzzing;

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{file}: cannot read policy file")]
    Io { file: String, source: std::io::Error },
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: {field}: {message}")]
    Invalid { file: String, field: String, message: String },
    #[error("unknown policy `{0}`: not a preset ({presets}) and not a policy file path", presets = PRESET_IDS.join(", "))]
    Unknown(String),
}

/// The preset ids, in the order of docs/policies/README.md.
pub const PRESET_IDS: &[&str] = &["mmsd", "mississippi", "cms", "instruction-partners", "nmped"];

const PRESET_FILES: &[(&str, &str)] = &[
    ("mmsd", include_str!("../policies/mmsd.toml")),
    ("mississippi", include_str!("../policies/mississippi.toml")),
    ("cms", include_str!("../policies/cms.toml")),
    ("instruction-partners", include_str!("../policies/instruction-partners.toml")),
    ("nmped", include_str!("../policies/nmped.toml")),
    ("daily-engagement", include_str!("../policies/daily-engagement.toml")),
];

/// What a band of grades is decided at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BandScope {
    /// One determination per school day.
    Day,
    /// One determination per scheduled section per day.
    Section,
    /// Per section, and a DAY derived from the sections (present in at least half).
    SectionAndDay,
    /// One determination per class per Monday–Sunday week (remote days), daily on in-person days.
    WeekSection,
}

/// A set of grades and how they are decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Band {
    pub grades: Vec<GradeLevel>,
    pub scope: BandScope,
}

/// The SIS codes a policy prescribes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Codes {
    /// Present in person (or present, where a policy does not distinguish).
    pub present: String,
    /// Present while learning remotely.
    pub present_remote: String,
    pub absent_excused: String,
    pub absent_unexcused: String,
    pub exempt: String,
    /// The status of a remote present day: PRESENT_REMOTE where the policy
    /// has a distinct off-site code (cms 1R), else PRESENT (the attendance
    /// type says it was virtual).
    pub remote_status: Status,
}

impl Default for Codes {
    fn default() -> Self {
        Codes {
            present: "P".into(),
            present_remote: "P".into(),
            absent_excused: "AE".into(),
            absent_unexcused: "AU".into(),
            exempt: "EX".into(),
            remote_status: Status::Present,
        }
    }
}

/// When a window becomes FINAL, in the school's local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "at", rename_all = "snake_case", deny_unknown_fields)]
pub enum FinalizeAt {
    /// Midnight at the end of D, plus `plus_days` whole days.
    DayEnd {
        #[serde(default)]
        plus_days: u8,
    },
    /// The end of the school day: the calendar's end time, or the end of the
    /// student's last scheduled block if that is later.
    SchoolDayEnd,
    /// Midnight at the end of the Sunday of D's week.
    WeekEnd,
    /// A weekday and time in the week after D's week (nmped: MON 16:00).
    NextWeek { weekday: Weekday, time: LocalTime },
}

/// Finalization times by kind of window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Finalization {
    pub in_person_day: FinalizeAt,
    pub remote_day: FinalizeAt,
    /// ASYNC_OFFLINE and LEARNING_PACKETS days.
    pub offline_day: FinalizeAt,
    pub week: FinalizeAt,
}

impl Default for Finalization {
    fn default() -> Self {
        Finalization {
            in_person_day: FinalizeAt::DayEnd { plus_days: 0 },
            remote_day: FinalizeAt::DayEnd { plus_days: 0 },
            offline_day: FinalizeAt::DayEnd { plus_days: 0 },
            week: FinalizeAt::WeekEnd,
        }
    }
}

/// Attendance Works tiers over absent / enrolled instructional days.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChronicAbsence {
    pub enabled: bool,
    pub min_enrolled_days: u32,
    /// Lower bounds, in percent, of the at-risk, moderate and severe tiers.
    pub tiers_percent: [f64; 3],
}

impl Default for ChronicAbsence {
    fn default() -> Self {
        ChronicAbsence { enabled: true, min_enrolled_days: 10, tiers_percent: [5.0, 10.0, 20.0] }
    }
}

/// mmsd: present on any of live session, same-day submission, two-way contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnyEvidence {
    /// Weekdays on which a live session does not count.
    pub no_live_weekdays: Vec<Weekday>,
    /// Calendar day types on which a live session does not count.
    pub no_live_day_types: Vec<DayType>,
    /// A submission for D counts when made by the end of D plus this many days.
    pub submission_allowance_days: u8,
}

impl Default for AnyEvidence {
    fn default() -> Self {
        AnyEvidence {
            no_live_weekdays: vec![Weekday::Wed],
            no_live_day_types: vec![DayType::Async],
            submission_allowance_days: 0,
        }
    }
}

/// mississippi: presence by the day's learning mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ByMode {
    /// Whether online learning runs on an LMS (authenticated + engaged); if not, a two-way contact.
    pub lms: bool,
    /// A day whose scheduled sections are all dual-enrollment is EXEMPT.
    pub dual_enrollment_exempt: bool,
    /// Unexcused absences in the school year that raise one TRUANCY_REFERRAL (0: never).
    pub truancy_referral_after: u32,
    /// An in-person day is present when on-site minutes reach this fraction
    /// of the day's instructional minutes, scheduled dual-enrollment periods
    /// taken out of both sides (Mississippi: 63% of the instructional day).
    pub min_present_fraction: f64,
}

impl Default for ByMode {
    fn default() -> Self {
        ByMode { lms: true, dual_enrollment_exempt: true, truancy_referral_after: 5, min_present_fraction: 0.63 }
    }
}

/// cms: half the instructional minutes, live or on site, with a hardship path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HalfDay {
    /// Fraction of the day's (or the period's) minutes that must be attended.
    pub fraction: f64,
    /// Reasons that make a missed in-person day present off-site.
    pub remote_present_reasons: Vec<AbsenceReason>,
    /// Reasons that open the hardship path on a remote day.
    pub hardship_reasons: Vec<AbsenceReason>,
    /// A submission for D counts on the hardship path when made by the end of D plus this many days.
    pub submission_allowance_days: u8,
    /// A hardship report opens the path only once staff have verified it:
    /// reported by STAFF, or reported by the guardian and followed by
    /// two-way communication between a teacher and the student or guardian
    /// on D or D+1. An unverified guardian report raises one
    /// TEACHER_FOLLOW_UP to the homeroom teacher while the day is open.
    pub verify_hardship: bool,
}

impl Default for HalfDay {
    fn default() -> Self {
        HalfDay {
            fraction: 0.5,
            remote_present_reasons: vec![AbsenceReason::Quarantine, AbsenceReason::Covid, AbsenceReason::Disciplinary],
            hardship_reasons: vec![AbsenceReason::Hardship, AbsenceReason::Connectivity],
            submission_allowance_days: 1,
            verify_hardship: true,
        }
    }
}

/// instruction-partners: morning session and blocks through the day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Blocks {
    /// Blocks starting at or after this time are the afternoon.
    pub afternoon_starts: LocalTime,
    /// Raise TEACHER_FOLLOW_UP for a later block missed after a morning attended.
    pub teacher_follow_up: bool,
    /// Days in a week in these categories that raise SOCIAL_WORKER at the week's close.
    pub social_worker_categories: Vec<String>,
    /// How many such days (0: never).
    pub social_worker_after_days: u32,
    /// Raise FAMILY_OUTREACH to the attendance team, as soon as the morning
    /// session has ended, for a student who missed it.
    pub family_outreach: bool,
}

impl Default for Blocks {
    fn default() -> Self {
        Blocks {
            afternoon_starts: LocalTime(12 * 60),
            teacher_follow_up: true,
            social_worker_categories: vec!["ABSENT".into(), "PARTIAL".into(), "MORNING_ONLY".into()],
            social_worker_after_days: 2,
            family_outreach: true,
        }
    }
}

/// One step of a contact-count code table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactCode {
    pub min: u32,
    pub code: String,
}

/// A kind of event that counts as a contact, and for a MESSAGE, from whom.
///
/// In a policy file either a kind (`"LOGIN"`: any event of the kind) or a
/// table (`{ kind = "MESSAGE", directions = ["FROM_STUDENT", "FROM_GUARDIAN"] }`:
/// only a message sent in one of those directions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indicator {
    pub kind: ActivityKind,
    /// `None`: any direction (or none).
    pub directions: Option<Vec<Direction>>,
}

impl Indicator {
    pub fn kind(kind: ActivityKind) -> Indicator {
        Indicator { kind, directions: None }
    }

    /// Whether an event of `kind` sent in `direction` is this indicator.
    pub fn matches(&self, kind: ActivityKind, direction: Option<Direction>) -> bool {
        self.kind == kind
            && match &self.directions {
                None => true,
                Some(ds) => direction.is_some_and(|d| ds.contains(&d)),
            }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum IndicatorForm {
    Kind(ActivityKind),
    Directed(DirectedIndicator),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectedIndicator {
    kind: ActivityKind,
    directions: Vec<Direction>,
}

impl Serialize for Indicator {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.directions {
            None => IndicatorForm::Kind(self.kind),
            Some(d) => IndicatorForm::Directed(DirectedIndicator { kind: self.kind, directions: d.clone() }),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Indicator {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // An untagged enum's own error says only "did not match any variant":
        // name the two accepted forms instead.
        let v = toml::Value::deserialize(d)?;
        let form = IndicatorForm::deserialize(v.clone()).map_err(|_| {
            serde::de::Error::custom(format!(
                "indicator {v}: expected an event kind such as \"LOGIN\" (one of {}), or a table \
                 {{ kind = \"MESSAGE\", directions = [\"FROM_STUDENT\", \"FROM_GUARDIAN\"] }} with directions among {}",
                ActivityKind::SYMBOLS.join(", "),
                Direction::SYMBOLS.join(", ")
            ))
        })?;
        Ok(match form {
            IndicatorForm::Kind(kind) => Indicator { kind, directions: None },
            IndicatorForm::Directed(d) => Indicator { kind: d.kind, directions: Some(d.directions) },
        })
    }
}

/// One outreach threshold of the weekly-contacts rule: LOW_CONTACT when a
/// class's contacts over `weeks` consecutive weeks with instruction add up to
/// at most `max_contacts`, addressed to `recipient_role`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactThreshold {
    pub weeks: u32,
    pub max_contacts: u32,
    pub recipient_role: RecipientRole,
}

/// nmped: weekly contact counts per class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WeeklyContacts {
    pub indicators: Vec<Indicator>,
    /// Ascending by `min`; the last step whose `min` is reached gives the code.
    pub codes: Vec<ContactCode>,
    /// The low-contact thresholds, each raising its own LOW_CONTACT (empty: none).
    pub low_contact: Vec<ContactThreshold>,
    /// Daily codes on in-person days.
    pub in_person_present: String,
    pub in_person_absent: String,
}

impl WeeklyContacts {
    /// Whether an event counts as a contact.
    pub fn is_indicator(&self, kind: ActivityKind, direction: Option<Direction>) -> bool {
        self.indicators.iter().any(|i| i.matches(kind, direction))
    }
}

impl Default for WeeklyContacts {
    fn default() -> Self {
        use ActivityKind::*;
        let mut indicators: Vec<Indicator> =
            [Login, LiveJoin, ContentAccess, Submission].into_iter().map(Indicator::kind).collect();
        // A message the teacher sent alone shows nothing the student did.
        indicators.push(Indicator { kind: Message, directions: Some(vec![Direction::FromStudent, Direction::FromGuardian]) });
        indicators.extend([TwoWayContact, RecordingView, OfflineWorkReturned].into_iter().map(Indicator::kind));
        WeeklyContacts {
            indicators,
            codes: vec![
                ContactCode { min: 0, code: "CNC".into() },
                ContactCode { min: 1, code: "C1".into() },
                ContactCode { min: 2, code: "C23".into() },
                ContactCode { min: 4, code: "C45".into() },
            ],
            low_contact: vec![ContactThreshold { weeks: 2, max_contacts: 5, recipient_role: RecipientRole::AttendanceTeam }],
            in_person_present: "P".into(),
            in_person_absent: "A".into(),
        }
    }
}

/// The rule family and its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Rule {
    AnyEvidence(AnyEvidence),
    ByMode(ByMode),
    HalfDay(HalfDay),
    Blocks(Blocks),
    WeeklyContacts(WeeklyContacts),
    /// Present with at least one engagement event on D (the benchmark peers' job).
    DailyEngagement,
}

/// A whole policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The name determinations carry in their `policy` field.
    pub id: String,
    #[serde(default)]
    pub title: String,
    pub rule: Rule,
    pub bands: Vec<Band>,
    #[serde(default)]
    pub codes: Codes,
    #[serde(default)]
    pub finalize: Finalization,
    /// Reasons that make an absence excused.
    #[serde(default = "default_excused")]
    pub excused_reasons: Vec<AbsenceReason>,
    /// How long after a window's finalization a late event may still correct it.
    #[serde(default = "default_horizon")]
    pub correction_horizon_days: u32,
    #[serde(default)]
    pub chronic_absence: ChronicAbsence,
    /// Free-form notes kept with the policy (shown by `rollcall policy show`).
    #[serde(default)]
    pub notes: BTreeMap<String, String>,
}

impl Policy {
    /// Codes are what an SIS stores: each must be there, and an absence must
    /// never read as a presence.
    fn validate_codes(&self, file: &str) -> Result<(), PolicyError> {
        let invalid =
            |field: &str, message: String| PolicyError::Invalid { file: file.to_string(), field: field.to_string(), message };
        let c = &self.codes;
        let mut present: Vec<(&str, &str)> = vec![("codes.present", &c.present), ("codes.present_remote", &c.present_remote)];
        let mut absent: Vec<(&str, &str)> =
            vec![("codes.absent_excused", &c.absent_excused), ("codes.absent_unexcused", &c.absent_unexcused)];
        if let Rule::WeeklyContacts(w) = &self.rule {
            present.push(("rule.in_person_present", &w.in_person_present));
            absent.push(("rule.in_person_absent", &w.in_person_absent));
            for (i, step) in w.codes.iter().enumerate() {
                if step.code.trim().is_empty() {
                    return Err(invalid(&format!("rule.codes[{i}].code"), "must not be empty".into()));
                }
            }
        }
        for (field, code) in present.iter().chain(&absent).chain([&("codes.exempt", c.exempt.as_str())]) {
            if code.trim().is_empty() {
                return Err(invalid(field, "must not be empty: it is the code the SIS records".into()));
            }
        }
        for (pf, p) in &present {
            if let Some((af, _)) = absent.iter().find(|(_, a)| a == p) {
                return Err(invalid(af, format!("is `{p}`, the same code as {pf}: an absence would read as a presence")));
            }
        }
        if c.remote_status == Status::PresentRemote && c.present_remote == c.present {
            return Err(invalid(
                "codes.present_remote",
                format!(
                    "is `{}`, the same code as codes.present, while remote_status = \"PRESENT_REMOTE\" says an off-site day \
                     has a code of its own; give it one (cms: \"1R\") or set remote_status = \"PRESENT\"",
                    c.present
                ),
            ));
        }
        Ok(())
    }
}

fn default_excused() -> Vec<AbsenceReason> {
    vec![AbsenceReason::Illness, AbsenceReason::Medical, AbsenceReason::Bereavement, AbsenceReason::Religious]
}

fn default_horizon() -> u32 {
    30
}

impl Policy {
    /// The band a grade falls in, if any.
    pub fn band(&self, grade: GradeLevel) -> Option<&Band> {
        self.bands.iter().find(|b| b.grades.contains(&grade))
    }

    /// A preset by id, or `None`.
    pub fn preset(id: &str) -> Option<Policy> {
        PRESET_FILES
            .iter()
            .find(|(name, _)| *name == id)
            // The shipped files are checked by a unit test, so a failure here is a build defect.
            .map(|(name, text)| Policy::from_toml(text, &format!("<preset {name}>")).expect("shipped preset is valid"))
    }

    /// The text of a shipped preset file.
    pub fn preset_text(id: &str) -> Option<&'static str> {
        PRESET_FILES.iter().find(|(name, _)| *name == id).map(|(_, t)| *t)
    }

    /// A preset id, or a path to a policy file (`.toml`).
    pub fn resolve(name_or_path: &str, base_dir: Option<&Path>) -> Result<Policy, PolicyError> {
        if let Some(p) = Policy::preset(name_or_path) {
            return Ok(p);
        }
        if name_or_path.ends_with(".toml") {
            let path = match base_dir {
                Some(b) if Path::new(name_or_path).is_relative() => b.join(name_or_path),
                _ => Path::new(name_or_path).to_path_buf(),
            };
            return Policy::load(&path);
        }
        Err(PolicyError::Unknown(name_or_path.to_string()))
    }

    /// Reads and validates a policy file.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io { file: file.clone(), source })?;
        Policy::from_toml(&text, &file)
    }

    /// Parses and validates policy text; `file` names it in errors.
    pub fn from_toml(text: &str, file: &str) -> Result<Policy, PolicyError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let p: Policy = toml::from_str(text).map_err(|e| PolicyError::Parse {
            file: file.to_string(),
            message: rule_error(text).unwrap_or_else(|| e.to_string().trim_end().to_string()),
        })?;
        p.validate(file)?;
        Ok(p)
    }

    fn validate(&self, file: &str) -> Result<(), PolicyError> {
        let invalid =
            |field: &str, message: String| PolicyError::Invalid { file: file.to_string(), field: field.to_string(), message };
        if self.id.trim().is_empty() {
            return Err(invalid("id", "must not be empty".into()));
        }
        if self.bands.is_empty() {
            return Err(invalid("bands", "at least one band of grades is needed".into()));
        }
        let mut seen = BTreeMap::new();
        for (i, b) in self.bands.iter().enumerate() {
            if b.grades.is_empty() {
                return Err(invalid(&format!("bands[{i}].grades"), "must list at least one grade".into()));
            }
            for g in &b.grades {
                if let Some(j) = seen.insert(*g, i) {
                    return Err(invalid(&format!("bands[{i}].grades"), format!("grade {g} is already in bands[{j}]")));
                }
            }
            let week = b.scope == BandScope::WeekSection;
            let weekly_rule = matches!(self.rule, Rule::WeeklyContacts(_));
            if week != weekly_rule {
                return Err(invalid(
                    &format!("bands[{i}].scope"),
                    "WEEK_SECTION goes with rule type weekly_contacts, and weekly_contacts with WEEK_SECTION only".into(),
                ));
            }
        }
        self.validate_codes(file)?;
        let ca = &self.chronic_absence;
        let t = ca.tiers_percent;
        if !(t[0] > 0.0 && t[0] < t[1] && t[1] < t[2] && t[2] <= 100.0) {
            return Err(invalid("chronic_absence.tiers_percent", format!("must rise strictly within (0, 100], got {t:?}")));
        }
        match &self.rule {
            Rule::HalfDay(h) if !(h.fraction > 0.0 && h.fraction <= 1.0) => {
                return Err(invalid("rule.fraction", format!("must be in (0, 1], got {}", h.fraction)));
            }
            Rule::ByMode(b) if !(b.min_present_fraction > 0.0 && b.min_present_fraction <= 1.0) => {
                return Err(invalid("rule.min_present_fraction", format!("must be in (0, 1], got {}", b.min_present_fraction)));
            }
            Rule::WeeklyContacts(w) => {
                if w.codes.is_empty() || w.codes[0].min != 0 {
                    return Err(invalid("rule.codes", "the first step must have min = 0 so that every count has a code".into()));
                }
                if w.codes.windows(2).any(|p| p[0].min >= p[1].min) {
                    return Err(invalid("rule.codes", "steps must be in strictly ascending order of min".into()));
                }
                if w.indicators.is_empty() {
                    return Err(invalid("rule.indicators", "at least one contact indicator is needed".into()));
                }
                for (i, ind) in w.indicators.iter().enumerate() {
                    if ind.directions.as_ref().is_some_and(|d| d.is_empty()) {
                        return Err(invalid(
                            &format!("rule.indicators[{i}].directions"),
                            "must name at least one direction (leave the table out to count every direction)".into(),
                        ));
                    }
                    if ind.directions.is_some() && ind.kind != ActivityKind::Message {
                        return Err(invalid(
                            &format!("rule.indicators[{i}]"),
                            format!("only MESSAGE events have a direction, not {}", ind.kind),
                        ));
                    }
                }
                for (i, t) in w.low_contact.iter().enumerate() {
                    if t.weeks == 0 {
                        return Err(invalid(&format!("rule.low_contact[{i}].weeks"), "must be at least 1".into()));
                    }
                }
            }
            _ => {}
        }
        if self.correction_horizon_days > 366 {
            return Err(invalid("correction_horizon_days", "at most 366".into()));
        }
        Ok(())
    }
}

/// The `[rule]` table is read by its `type` (an internally tagged enum),
/// which makes serde buffer it and lose the place of a mistake inside it:
/// toml then points at the `[rule]` header. This reads the table again as
/// the family its `type` names, so that the error points at the bad line.
/// `None` when the table reads cleanly that way or has no usable `type`.
fn rule_error(text: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let header = lines.iter().position(|l| l.trim() == "[rule]")?;
    let end = lines[header + 1..].iter().position(|l| l.trim_start().starts_with('[')).map_or(lines.len(), |i| header + 1 + i);
    // The table's own lines at their own line numbers; `type` blanked, since
    // each family's struct refuses unknown keys.
    let mut sub = String::new();
    let mut family = None;
    for (i, l) in lines.iter().enumerate() {
        if i > header && i < end {
            if let Some(v) = l.trim().strip_prefix("type").map(str::trim_start).and_then(|r| r.strip_prefix('=')) {
                family = Some(v.trim().trim_matches('"').to_string());
                sub.push('\n');
                continue;
            }
            sub.push_str(l);
        }
        sub.push('\n');
    }
    let err = match family?.as_str() {
        "any_evidence" => toml::from_str::<AnyEvidence>(&sub).err(),
        "by_mode" => toml::from_str::<ByMode>(&sub).err(),
        "half_day" => toml::from_str::<HalfDay>(&sub).err(),
        "blocks" => toml::from_str::<Blocks>(&sub).err(),
        "weekly_contacts" => toml::from_str::<WeeklyContacts>(&sub).err(),
        _ => None,
    }?;
    // The same lines at the same numbers: toml's own excerpt is right.
    Some(format!("in [rule]: {}", err.to_string().trim_end()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_loads() {
        for (id, text) in PRESET_FILES {
            let p = Policy::from_toml(text, id).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(&p.id, id);
        }
        for id in PRESET_IDS {
            assert!(Policy::preset(id).is_some());
        }
    }

    #[test]
    fn wrong_field_names_file_and_place() {
        let text = Policy::preset_text("cms").unwrap().replace("fraction", "fraktion");
        let e = Policy::from_toml(&text, "district.toml").unwrap_err().to_string();
        assert!(e.starts_with("district.toml:"), "{e}");
        assert!(e.contains("fraktion") && e.contains("line"), "{e}");
    }

    #[test]
    fn a_mistake_inside_rule_points_at_its_own_line() {
        for (preset, from, to) in [
            ("cms", "fraction = 0.5", "fraktion = 0.5"),
            ("cms", "submission_allowance_days = 1", "submission_allowance_days = \"one\""),
            ("nmped", "{ min = 2, code = \"C23\" }", "{ min = 2, kode = \"C23\" }"),
            ("mississippi", "lms = true", "lms = \"yes\""),
        ] {
            let text = Policy::preset_text(preset).unwrap().replace(from, to);
            let line = text.lines().position(|l| l.contains(to)).unwrap() + 1;
            let e = Policy::from_toml(&text, "district.toml").unwrap_err().to_string();
            assert!(e.contains(&format!("line {line}")), "{to}: expected line {line}:\n{e}");
            // The excerpt with its caret is kept on lines of its own.
            assert!(e.lines().count() > 2 && e.contains('^') && e.contains(to), "{to}:\n{e}");
        }
    }

    #[test]
    fn codes_must_be_there_and_distinct() {
        let cms = Policy::preset_text("cms").unwrap();
        let cases = [
            (cms.replace("absent_unexcused = \"AU\"", "absent_unexcused = \"\""), "codes.absent_unexcused: must not be empty"),
            (cms.replace("present_remote = \"1R\"", "present_remote = \"P\""), "codes.present_remote: is `P`, the same code"),
            (
                cms.replace("absent_excused = \"AE\"", "absent_excused = \"1R\""),
                "codes.absent_excused: is `1R`, the same code as codes.present_remote",
            ),
        ];
        for (text, want) in cases {
            let e = Policy::from_toml(&text, "d.toml").unwrap_err().to_string();
            assert!(e.contains(want), "expected `{want}`: {e}");
        }
        // mmsd has one present code for both, and says so with remote_status PRESENT.
        let mmsd = Policy::preset("mmsd").unwrap();
        assert_eq!(mmsd.codes.present, mmsd.codes.present_remote);
    }

    #[test]
    fn a_byte_order_mark_is_read_past() {
        let text = format!("\u{feff}{}", Policy::preset_text("mmsd").unwrap());
        assert_eq!(Policy::from_toml(&text, "p.toml").unwrap(), Policy::preset("mmsd").unwrap());
    }

    #[test]
    fn a_missing_file_says_so_once() {
        let e = Policy::load(Path::new("/nonexistent/district.toml")).unwrap_err();
        let chain = rollcall_model::error_chain(&e);
        assert_eq!(chain.matches("No such file").count(), 1, "{chain}");
        assert!(chain.starts_with("/nonexistent/district.toml: cannot read policy file: "), "{chain}");
    }

    #[test]
    fn unknown_enum_is_named() {
        let text = Policy::preset_text("mmsd").unwrap().replace("\"WED\"", "\"WEDNESDAY\"");
        let e = Policy::from_toml(&text, "p.toml").unwrap_err().to_string();
        assert!(e.contains("WEDNESDAY"), "{e}");
    }

    #[test]
    fn overlapping_bands_are_refused() {
        let text = Policy::preset_text("mmsd").unwrap().replace("\"6\",", "\"5\", \"6\",");
        let e = Policy::from_toml(&text, "p.toml").unwrap_err().to_string();
        assert!(e.contains("grade 5 is already in bands[0]"), "{e}");
    }

    #[test]
    fn nmped_counts_messages_from_the_student_or_guardian_only() {
        let Rule::WeeklyContacts(w) = Policy::preset("nmped").unwrap().rule else { panic!("nmped is weekly_contacts") };
        assert!(w.is_indicator(ActivityKind::Message, Some(Direction::FromStudent)));
        assert!(w.is_indicator(ActivityKind::Message, Some(Direction::FromGuardian)));
        assert!(!w.is_indicator(ActivityKind::Message, Some(Direction::FromStaff)));
        assert!(!w.is_indicator(ActivityKind::Message, None));
        assert!(w.is_indicator(ActivityKind::Login, None));
        assert!(!w.is_indicator(ActivityKind::CheckIn, None));
        assert_eq!(w, WeeklyContacts::default(), "the preset states the default reading");
    }

    #[test]
    fn a_plain_message_indicator_counts_every_direction() {
        let text = Policy::preset_text("nmped")
            .unwrap()
            .replace(r#"{ kind = "MESSAGE", directions = ["FROM_STUDENT", "FROM_GUARDIAN"] }"#, r#""MESSAGE""#);
        let Rule::WeeklyContacts(w) = Policy::from_toml(&text, "p.toml").unwrap().rule else { panic!() };
        assert!(w.is_indicator(ActivityKind::Message, Some(Direction::FromStaff)));
    }

    #[test]
    fn indicator_mistakes_are_named() {
        let nmped = Policy::preset_text("nmped").unwrap();
        let cases = [
            (
                r#"kind = "MESSAGE", directions = ["FROM_STUDENT", "FROM_GUARDIAN"]"#,
                r#"kind = "MESSAGE", directions = []"#,
                "rule.indicators[4].directions",
            ),
            (r#"kind = "MESSAGE", directions"#, r#"kind = "LOGIN", directions"#, "only MESSAGE events have a direction"),
            (r#""FROM_GUARDIAN""#, r#""FROM_TEACHER""#, "expected an event kind"),
            (r#""TWO_WAY_CONTACT""#, r#""TWO_WAY""#, "indicator"),
        ];
        for (from, to, want) in cases {
            let e = Policy::from_toml(&nmped.replace(from, to), "d.toml").unwrap_err().to_string();
            assert!(e.starts_with("d.toml:") && e.contains(want), "{to}: {e}");
        }
    }

    #[test]
    fn contact_thresholds_are_a_list() {
        let text = Policy::preset_text("nmped").unwrap().replace(
            r#"{ weeks = 2, max_contacts = 5, recipient_role = "ATTENDANCE_TEAM" },"#,
            r#"{ weeks = 1, max_contacts = 0, recipient_role = "TEACHER" }, { weeks = 3, max_contacts = 8, recipient_role = "SOCIAL_WORKER" },"#,
        );
        let Rule::WeeklyContacts(w) = Policy::from_toml(&text, "p.toml").unwrap().rule else { panic!() };
        assert_eq!(
            w.low_contact,
            vec![
                ContactThreshold { weeks: 1, max_contacts: 0, recipient_role: RecipientRole::Teacher },
                ContactThreshold { weeks: 3, max_contacts: 8, recipient_role: RecipientRole::SocialWorker },
            ]
        );
        let zero = text.replace("weeks = 1,", "weeks = 0,");
        let e = Policy::from_toml(&zero, "p.toml").unwrap_err().to_string();
        assert!(e.contains("rule.low_contact[0].weeks"), "{e}");
    }

    #[test]
    fn presets_state_their_readings() {
        let excusable = |id: &str| Policy::preset(id).unwrap().excused_reasons;
        for id in ["mississippi", "cms"] {
            assert!(excusable(id).contains(&AbsenceReason::Quarantine) && excusable(id).contains(&AbsenceReason::Covid), "{id}");
        }
        for id in ["mmsd", "instruction-partners", "nmped"] {
            assert_eq!(excusable(id), default_excused(), "{id}");
        }
        let Rule::ByMode(ms) = Policy::preset("mississippi").unwrap().rule else { panic!() };
        assert_eq!(ms.min_present_fraction, 0.63);
        let Rule::HalfDay(cms) = Policy::preset("cms").unwrap().rule else { panic!() };
        assert!(cms.verify_hardship);
        let Rule::Blocks(ip) = Policy::preset("instruction-partners").unwrap().rule else { panic!() };
        assert!(ip.family_outreach);
        let text =
            Policy::preset_text("mississippi").unwrap().replace("min_present_fraction = 0.63", "min_present_fraction = 63");
        let e = Policy::from_toml(&text, "p.toml").unwrap_err().to_string();
        assert!(e.contains("rule.min_present_fraction") && e.contains("(0, 1]"), "{e}");
    }

    #[test]
    fn resolve_reports_unknown_names() {
        let e = Policy::resolve("nope", None).unwrap_err().to_string();
        assert!(e.contains("unknown policy `nope`") && e.contains("mmsd"), "{e}");
    }
}
