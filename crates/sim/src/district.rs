//! The district's fixed shape: schools, calendars and the roster.
//!
//! Everything here is decided once, before any day is simulated, from the
//! roster stream of the seed. Section and staff ids are shared by students
//! of one school and grade (`g7-math-1` taught by `t-g7-math-1`) so that the
//! generated data has the fan-in of a real school: many students per section,
//! one teacher per section, specials teachers across grades.

use chrono::{Datelike, Duration, NaiveDate, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use rollcall_model::{
    CalendarDay, CourseType, DayType, Enrollment, GradeLevel, LocalTime, Meeting, Mode, ModeSpan, SchoolCalendar, StudentRecord,
    Weekday,
};

use crate::rng::{Rng, Stream};
use crate::SimConfig;

/// One school of the district, one per policy preset.
#[derive(Debug, Clone)]
pub(crate) struct School {
    pub id: &'static str,
    pub timezone: &'static str,
    pub tz: Tz,
    pub policy: &'static str,
    /// The learning platform its students log in to.
    pub lms: &'static str,
    /// The video platform its live classes run on.
    pub video: &'static str,
}

/// The five schools. Platforms differ between schools because real
/// districts chose differently, and an engine must not care which.
pub(crate) fn schools() -> Vec<School> {
    const SPEC: [(&str, &str, Tz, &str, &str, &str); 5] = [
        ("mmsd-lincoln", "America/Chicago", Tz::America__Chicago, "mmsd", "canvas", "zoom"),
        ("ms-pine", "America/Chicago", Tz::America__Chicago, "mississippi", "google_classroom", "meet"),
        ("cms-oak", "America/New_York", Tz::America__New_York, "cms", "canvas", "zoom"),
        ("ip-elm", "America/Chicago", Tz::America__Chicago, "instruction-partners", "google_classroom", "meet"),
        ("aps-hill", "America/Denver", Tz::America__Denver, "nmped", "canvas", "zoom"),
    ];
    SPEC.iter().map(|&(id, timezone, tz, policy, lms, video)| School { id, timezone, tz, policy, lms, video }).collect()
}

pub(crate) const MS_PINE: usize = 1;
pub(crate) const CMS_OAK: usize = 2;
pub(crate) const APS_HILL: usize = 4;

/// The school day every calendar uses.
pub(crate) const DAY_START: u16 = 8 * 60;
pub(crate) const DAY_END: u16 = 15 * 60;

/// The holiday, when the span is long enough to have one: the second Monday
/// (in October 2020, Indigenous Peoples' Day).
pub(crate) fn holiday(cfg: &SimConfig) -> Option<NaiveDate> {
    if cfg.days < 14 {
        return None;
    }
    let to_monday = (7 - cfg.start.weekday().num_days_from_monday()) % 7;
    let first_monday = cfg.start + Duration::days(to_monday as i64);
    let second = if to_monday == 0 { first_monday + Duration::days(7) } else { first_monday };
    Some(second).filter(|d| *d < cfg.start + Duration::days(cfg.days as i64))
}

pub(crate) fn calendar(school: &School, cfg: &SimConfig) -> SchoolCalendar {
    let holiday = holiday(cfg);
    let days = (0..cfg.days as i64)
        .map(|k| cfg.start + Duration::days(k))
        .filter(|d| d.weekday().num_days_from_monday() < 5)
        .map(|date| {
            if Some(date) == holiday {
                return CalendarDay {
                    date,
                    instructional: false,
                    day_type: DayType::Full,
                    start: LocalTime::default(),
                    end: LocalTime::default(),
                };
            }
            // MMSD ran asynchronous Wednesdays in 2020-21: no live classes.
            let day_type =
                if school.policy == "mmsd" && Weekday::of(date) == Weekday::Wed { DayType::Async } else { DayType::Full };
            CalendarDay { date, instructional: true, day_type, start: LocalTime(DAY_START), end: LocalTime(DAY_END) }
        })
        .collect();
    SchoolCalendar {
        school_id: school.id.to_string(),
        timezone: school.timezone.to_string(),
        policy: school.policy.to_string(),
        days,
    }
}

/// UTC instant of local midnight starting `date`, using the offset in force
/// at local noon. Events are generated between 05:00 and 24:00 local, after
/// any US daylight-saving switch (02:00), so one offset serves the whole day
/// and the per-event cost is an addition instead of a zone lookup.
pub(crate) fn local_day_base(tz: Tz, date: NaiveDate) -> chrono::DateTime<Utc> {
    let noon = date.and_hms_opt(12, 0, 0).expect("valid time");
    let offset = match tz.from_local_datetime(&noon) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => t.offset().fix(),
        // Noon is never skipped in the zones used here; fall back to UTC.
        chrono::LocalResult::None => chrono::FixedOffset::east_opt(0).expect("zero offset"),
    };
    let midnight = date.and_hms_opt(0, 0, 0).expect("valid time");
    Utc.from_utc_datetime(&(midnight - Duration::seconds(offset.local_minus_utc() as i64)))
}

/// How a student behaves over the simulated span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behaviour {
    /// Logs in, attends every class, hands in work, talks to teachers.
    Engaged,
    /// Attends the first block(s) and is gone before noon.
    MorningOnly,
    /// Attends less and less as the weeks go on.
    Disengaging,
    /// Connectivity or family hardship: misses live classes, catches up on
    /// recordings and submissions; at cms-oak the family reports it.
    Hardship,
    /// Attends, but hands in each day's work the next evening.
    LateSubmitter,
    /// Engaged, with occasional spells of reported illness.
    SickSometimes,
    /// Never shows up.
    Absent,
}

/// Percentages; they add up to 100.
const BEHAVIOURS: [(Behaviour, u32); 7] = [
    (Behaviour::Engaged, 52),
    (Behaviour::MorningOnly, 8),
    (Behaviour::Disengaging, 8),
    (Behaviour::Hardship, 7),
    (Behaviour::LateSubmitter, 12),
    (Behaviour::SickSometimes, 8),
    (Behaviour::Absent, 5),
];

/// The behaviour of the school's `rank`-th student. A Weyl sequence (rank
/// times the golden ratio, modulo 1) instead of an independent draw spreads
/// the behaviours evenly, so even a 60-student demo school gets close to the
/// intended mix, while consecutive students still differ.
fn behaviour(seed: u64, rank: usize) -> Behaviour {
    let offset = Rng::derive(seed, Stream::Roster, u64::MAX, 0).next_u64();
    let x = (rank as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(offset);
    let mut slot = (((x >> 32) * 100) >> 32) as u32;
    for (b, w) in BEHAVIOURS {
        if slot < w {
            return b;
        }
        slot -= w;
    }
    Behaviour::Engaged
}

/// Grades with a few early-childhood students, the rest even across K–12.
const GRADES: [(GradeLevel, u32); 15] = [
    (GradeLevel::Ec, 2),
    (GradeLevel::Pk4, 3),
    (GradeLevel::K, 7),
    (GradeLevel::G1, 7),
    (GradeLevel::G2, 7),
    (GradeLevel::G3, 7),
    (GradeLevel::G4, 7),
    (GradeLevel::G5, 7),
    (GradeLevel::G6, 7),
    (GradeLevel::G7, 7),
    (GradeLevel::G8, 7),
    (GradeLevel::G9, 7),
    (GradeLevel::G10, 7),
    (GradeLevel::G11, 7),
    (GradeLevel::G12, 7),
];

/// What the generator knows about a student beyond the SIS record.
#[derive(Debug, Clone)]
pub(crate) struct Profile {
    pub school: usize,
    pub behaviour: Behaviour,
}

/// Numeric grade: EC and 4K below K (0).
fn grade_number(g: GradeLevel) -> i32 {
    g.index() as i32 - 2
}

pub(crate) fn is_elementary(g: GradeLevel) -> bool {
    grade_number(g) <= 5
}

fn grade_token(g: GradeLevel) -> String {
    match g {
        GradeLevel::Ec => "ec".into(),
        GradeLevel::Pk4 => "4k".into(),
        GradeLevel::K => "k".into(),
        other => format!("g{}", other.as_str()),
    }
}

/// A class of about this many students per section; larger cohorts are split
/// into numbered sections.
const CLASS_SIZE: usize = 28;

/// Secondary period slots (start, end), in minutes: 50-minute periods with
/// passing time and a lunch break from 11:35 to 12:15.
const PERIODS: [(u16, u16); 6] = [(480, 530), (535, 585), (590, 640), (645, 695), (735, 785), (790, 840)];

/// Which slots a day with `n` periods uses: a four-period day keeps one
/// afternoon class so that "gone before noon" is visible in every schedule.
fn period_slots(n: usize) -> &'static [usize] {
    match n {
        4 => &[0, 1, 2, 4],
        5 => &[0, 1, 2, 3, 4],
        _ => &[0, 1, 2, 3, 4, 5],
    }
}

const ALL_WEEK: [Weekday; 5] = [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri];

pub(crate) fn section(section_id: String, staff_id: String, days: &[Weekday], start: u16, end: u16) -> Enrollment {
    Enrollment {
        section_id,
        staff_id,
        course_type: CourseType::Live,
        specials: false,
        dual_enrollment: false,
        meetings: vec![Meeting { weekdays: days.to_vec(), start: LocalTime(start), end: LocalTime(end) }],
    }
}

/// Builds the roster and the generator's private profile of each student.
pub(crate) fn roster(cfg: &SimConfig, schools: &[School]) -> (Vec<StudentRecord>, Vec<Profile>) {
    let n = cfg.students;
    // First pass: the draws that decide cohort sizes, so sections can be
    // numbered before any record is built.
    let mut rngs = Vec::with_capacity(n);
    let mut grades = Vec::with_capacity(n);
    let mut cohort = vec![[0usize; GRADES.len()]; schools.len()];
    let mut rank = Vec::with_capacity(n);
    for i in 0..n {
        let mut rng = Rng::derive(cfg.seed, Stream::Roster, i as u64, 0);
        let g = GRADES[rng.weighted(&GRADES.map(|(_, w)| w))].0;
        let school = i % schools.len();
        rank.push(cohort[school][g.index() as usize]);
        cohort[school][g.index() as usize] += 1;
        grades.push(g);
        rngs.push(rng);
    }

    let last = cfg.start + Duration::days(cfg.days.max(1) as i64 - 1);
    let mut records = Vec::with_capacity(n);
    let mut profiles = Vec::with_capacity(n);
    for (i, mut rng) in rngs.into_iter().enumerate() {
        let school = i % schools.len();
        let grade = grades[i];
        let size = cohort[school][grade.index() as usize];
        let sections = size.div_ceil(CLASS_SIZE).max(1);
        // Round-robin across the cohort's sections keeps them balanced.
        let num = rank[i] % sections + 1;
        let behaviour = behaviour(cfg.seed, i / schools.len());
        let groups = priority_groups(&mut rng);
        let enrollments =
            if is_elementary(grade) { elementary_schedule(grade, num) } else { secondary_schedule(school, grade, num, &mut rng) };
        let modes = modes(school, grade, cfg.start, last, &mut rng);
        let (homeroom_section_id, homeroom_staff_id) =
            (Some(enrollments[0].section_id.clone()), Some(enrollments[0].staff_id.clone()));
        records.push(StudentRecord {
            student_id: format!("s{:06}", i + 1),
            school_id: schools[school].id.to_string(),
            grade_level: grade,
            homeroom_section_id,
            homeroom_staff_id,
            groups,
            enrollments,
            modes,
        });
        profiles.push(Profile { school, behaviour });
    }
    (records, profiles)
}

/// About one student in five is in at least one priority group.
fn priority_groups(rng: &mut Rng) -> Vec<String> {
    if !rng.chance(0.2) {
        return Vec::new();
    }
    let mut groups: Vec<String> =
        [("ELL", 0.35), ("SWD", 0.4), ("FRL", 0.55)].iter().filter(|(_, p)| rng.chance(*p)).map(|(g, _)| g.to_string()).collect();
    if groups.is_empty() {
        groups.push("FRL".into());
    }
    groups
}

/// K–5 (and EC/4K): homeroom every morning, 08:00–11:30, and again after
/// lunch, 13:15–14:30; specials in between on one or two days, taught by
/// school-wide specials teachers.
///
/// The afternoon homeroom session is what makes "gone before noon" visible
/// on days without specials (instruction-partners' MORNING_ONLY needs a
/// missed block after 12:00), and it keeps an engaged student's live
/// minutes above half of the 7-hour day that cms requires.
fn elementary_schedule(grade: GradeLevel, num: usize) -> Vec<Enrollment> {
    let g = grade_token(grade);
    let gi = grade.index() as usize;
    let mut homeroom = section(format!("{g}-hr-{num}"), format!("t-{g}-hr-{num}"), &ALL_WEEK, 480, 690);
    homeroom.meetings.push(Meeting { weekdays: ALL_WEEK.to_vec(), start: LocalTime(795), end: LocalTime(870) });
    let mut out = vec![homeroom];
    let mut specials = vec![("art", ALL_WEEK[gi % 5])];
    if grade_number(grade) >= 1 {
        specials.push(("music", ALL_WEEK[(gi + 2) % 5]));
    }
    for (course, day) in specials {
        let mut e = section(format!("{g}-{course}-{num}"), format!("t-{course}"), &[day], 750, 795);
        e.specials = true;
        out.push(e);
    }
    out
}

/// 6–12: four to six 50-minute periods with distinct teachers. High school
/// adds electives, cms-oak some NC Virtual Public School (asynchronous)
/// courses, ms-pine some dual-enrollment college courses.
fn secondary_schedule(school: usize, grade: GradeLevel, num: usize, rng: &mut Rng) -> Vec<Enrollment> {
    let g = grade_token(grade);
    let gn = grade_number(grade);
    let periods = 4 + ((gn as usize + school) % 3);
    let mut courses: Vec<&str> = if gn <= 8 {
        vec!["math", "ela", "science", "social-studies", "pe", "music"]
    } else {
        vec!["math", "english", "science", "history"]
    };
    if gn >= 9 {
        courses.push(*rng.pick(&["spanish", "french", "cs"]));
        courses.push(*rng.pick(&["pe", "band", "art", "economics"]));
    }
    // Early-college students at ms-pine spend Fridays at the community college.
    let early_college = school == MS_PINE && gn == 12 && rng.chance(0.25);
    let regular_days: &[Weekday] = if early_college { &ALL_WEEK[..4] } else { &ALL_WEEK };
    let mut out: Vec<Enrollment> = period_slots(periods)
        .iter()
        .zip(courses)
        .map(|(&slot, course)| {
            let (start, end) = PERIODS[slot];
            section(format!("{g}-{course}-{num}"), format!("t-{g}-{course}-{num}"), regular_days, start, end)
        })
        .collect();
    if school == CMS_OAK && gn >= 9 && rng.chance(0.3) {
        // The last period becomes an online course with no live meetings.
        let last = out.last_mut().expect("at least four periods");
        let course = last.section_id.split('-').nth(1).unwrap_or("course").to_string();
        last.section_id = format!("{g}-ncvps-{course}");
        last.staff_id = format!("t-ncvps-{course}");
        last.course_type = CourseType::AsyncOnly;
    }
    if school == MS_PINE && gn >= 11 && (early_college || rng.chance(0.3)) {
        let mut e = section("de-engl-1113".into(), "t-de-engl".into(), &[Weekday::Tue, Weekday::Thu], 850, 900);
        e.dual_enrollment = true;
        out.push(e);
    }
    if early_college {
        let mut e = section("de-biol-1134".into(), "t-de-biol".into(), &[Weekday::Fri], 480, 695);
        e.dual_enrollment = true;
        out.push(e);
    }
    out
}

/// Hybrid schedules: cohort A on campus Monday and Tuesday, cohort B
/// Thursday and Friday, everyone remote on Wednesday.
fn modes(school: usize, grade: GradeLevel, from: NaiveDate, to: NaiveDate, rng: &mut Rng) -> Vec<ModeSpan> {
    use Weekday::*;
    let span = |weekdays: &[Weekday], mode| ModeSpan { from, to, weekdays: weekdays.to_vec(), mode };
    let hybrid = |a: bool| {
        if a {
            vec![span(&[Mon, Tue], Mode::InPerson), span(&[Wed, Thu, Fri], Mode::SyncOnline)]
        } else {
            vec![span(&[Thu, Fri], Mode::InPerson), span(&[Mon, Tue, Wed], Mode::SyncOnline)]
        }
    };
    let r = rng.unit();
    match school {
        MS_PINE if r < 0.30 => hybrid(true),
        MS_PINE if r < 0.50 => hybrid(false),
        MS_PINE if r < 0.60 => vec![span(&ALL_WEEK, Mode::LearningPackets)],
        MS_PINE if r < 0.65 => vec![span(&ALL_WEEK, Mode::AsyncOnline)],
        // Elementary students went back first.
        CMS_OAK if r < if is_elementary(grade) { 0.45 } else { 0.20 } => hybrid(rng.chance(0.5)),
        APS_HILL if r < 0.25 => hybrid(rng.chance(0.5)),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaviours_follow_their_weights_even_in_small_schools() {
        for seed in [1, 42] {
            let mut counts = [0usize; BEHAVIOURS.len()];
            for rank in 0..60 {
                let b = behaviour(seed, rank);
                counts[BEHAVIOURS.iter().position(|(x, _)| *x == b).unwrap()] += 1;
            }
            for ((b, w), n) in BEHAVIOURS.iter().zip(counts) {
                let expected = *w as f64 * 0.6;
                assert!((n as f64 - expected).abs() <= 2.0, "seed {seed}: {n} {b:?}, expected about {expected}");
            }
        }
    }

    #[test]
    fn grade_numbers_and_tokens() {
        assert_eq!(grade_number(GradeLevel::K), 0);
        assert_eq!(grade_number(GradeLevel::G12), 12);
        assert!(is_elementary(GradeLevel::Pk4) && is_elementary(GradeLevel::G5) && !is_elementary(GradeLevel::G6));
        assert_eq!(grade_token(GradeLevel::Pk4), "4k");
        assert_eq!(grade_token(GradeLevel::G7), "g7");
    }

    #[test]
    fn day_base_follows_daylight_saving() {
        let chicago = Tz::America__Chicago;
        let oct = NaiveDate::from_ymd_opt(2020, 10, 5).unwrap();
        let nov = NaiveDate::from_ymd_opt(2020, 11, 2).unwrap();
        assert_eq!(local_day_base(chicago, oct).to_rfc3339(), "2020-10-05T05:00:00+00:00");
        assert_eq!(local_day_base(chicago, nov).to_rfc3339(), "2020-11-02T06:00:00+00:00");
    }
}
