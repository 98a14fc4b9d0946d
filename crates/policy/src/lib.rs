//! Attendance policies as data.
//!
//! A policy file (TOML) names the rule family a district uses and every number,
//! code and list that family reads: grade bands and their scope, thresholds,
//! codes, indicator lists, finalization times, outreach settings. The five
//! presets of DESIGN.md section 4 ship as files under `policies/` in this crate
//! and are compiled in; a district can point at its own file with the same
//! schema. Loading validates the whole file and reports the file, the place
//! and the problem.

use std::collections::BTreeMap;
use std::path::Path;

use rollcall_model::{AbsenceReason, ActivityKind, DayType, GradeLevel, LocalTime, Status, Weekday};
use serde::{Deserialize, Serialize};

/// The check of the decoder on arbitrary input, for the fuzz target and the
/// corpus test.
#[doc(hidden)]
pub mod fuzzing;

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{file}: cannot read policy file: {source}")]
    Io { file: String, source: std::io::Error },
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: {field}: {message}")]
    Invalid { file: String, field: String, message: String },
    #[error("unknown policy `{0}`: not a preset ({presets}) and not a policy file path", presets = PRESET_IDS.join(", "))]
    Unknown(String),
}

/// The preset ids, in DESIGN.md order.
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
}

impl Default for ByMode {
    fn default() -> Self {
        ByMode { lms: true, dual_enrollment_exempt: true, truancy_referral_after: 5 }
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
}

impl Default for HalfDay {
    fn default() -> Self {
        HalfDay {
            fraction: 0.5,
            remote_present_reasons: vec![AbsenceReason::Quarantine, AbsenceReason::Covid, AbsenceReason::Disciplinary],
            hardship_reasons: vec![AbsenceReason::Hardship, AbsenceReason::Connectivity],
            submission_allowance_days: 1,
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
}

impl Default for Blocks {
    fn default() -> Self {
        Blocks {
            afternoon_starts: LocalTime(12 * 60),
            teacher_follow_up: true,
            social_worker_categories: vec!["ABSENT".into(), "PARTIAL".into(), "MORNING_ONLY".into()],
            social_worker_after_days: 2,
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

/// nmped: weekly contact counts per class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WeeklyContacts {
    pub indicators: Vec<ActivityKind>,
    /// Ascending by `min`; the last step whose `min` is reached gives the code.
    pub codes: Vec<ContactCode>,
    /// LOW_CONTACT when a class's contacts over this many consecutive instructional weeks…
    pub low_contact_weeks: u32,
    /// …add up to at most this many (0 weeks disables the trigger).
    pub low_contact_max: u32,
    /// Daily codes on in-person days.
    pub in_person_present: String,
    pub in_person_absent: String,
}

impl Default for WeeklyContacts {
    fn default() -> Self {
        use ActivityKind::*;
        WeeklyContacts {
            indicators: vec![
                Login, LiveJoin, ContentAccess, Submission, Message, TwoWayContact, RecordingView, OfflineWorkReturned,
            ],
            codes: vec![
                ContactCode { min: 0, code: "CNC".into() },
                ContactCode { min: 1, code: "C1".into() },
                ContactCode { min: 2, code: "C23".into() },
                ContactCode { min: 4, code: "C45".into() },
            ],
            low_contact_weeks: 2,
            low_contact_max: 5,
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
        let p: Policy =
            toml::from_str(text).map_err(|e| PolicyError::Parse { file: file.to_string(), message: one_line(&e) })?;
        p.validate(file)?;
        Ok(p)
    }

    fn validate(&self, file: &str) -> Result<(), PolicyError> {
        let invalid = |field: &str, message: String| PolicyError::Invalid {
            file: file.to_string(),
            field: field.to_string(),
            message,
        };
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
        let ca = &self.chronic_absence;
        let t = ca.tiers_percent;
        if !(t[0] > 0.0 && t[0] < t[1] && t[1] < t[2] && t[2] <= 100.0) {
            return Err(invalid("chronic_absence.tiers_percent", format!("must rise strictly within (0, 100], got {t:?}")));
        }
        match &self.rule {
            Rule::HalfDay(h) if !(h.fraction > 0.0 && h.fraction <= 1.0) => {
                return Err(invalid("rule.fraction", format!("must be in (0, 1], got {}", h.fraction)));
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
            }
            _ => {}
        }
        if self.correction_horizon_days > 366 {
            return Err(invalid("correction_horizon_days", "at most 366".into()));
        }
        Ok(())
    }
}

fn one_line(e: &toml::de::Error) -> String {
    // toml's message spans several lines with a source excerpt; keep it but fold it.
    e.to_string().lines().map(str::trim_end).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" | ")
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
    fn resolve_reports_unknown_names() {
        let e = Policy::resolve("nope", None).unwrap_err().to_string();
        assert!(e.contains("unknown policy `nope`") && e.contains("mmsd"), "{e}");
    }
}
