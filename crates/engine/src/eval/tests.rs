//! Table tests per rule family. Each row is one student's day (or week):
//! the facts in, the expected determinations out, with the sentence of
//! docs/policies/<preset>.md that makes the expectation so.

use std::sync::Arc;

use chrono::NaiveDate;
use rollcall_model::{
    AbsenceReason as R, ActivityKind::*, AttendanceType, CalendarDay, CourseType, DayType, Direction, Enrollment, GradeLevel,
    LocalTime, Meeting, Mode, ModeSpan, Reporter, SchoolCalendar, Scope, Status, StudentRecord, Weekday,
};
use rollcall_policy::{Policy, Rule};

use super::{evaluate_day, evaluate_week, reads_next_day, DayInput, Outcome};
use crate::school::{FinalizeKey, School};
use crate::state::{DayRecord, Fact, ReportFact};

// The week of the tables: Monday 2020-10-05 to Sunday 2020-10-11. Most rows
// are about Tuesday.
const MON: &str = "2020-10-05";
const TUE: &str = "2020-10-06";
const WED: &str = "2020-10-07";
const THU: &str = "2020-10-08";
const SAT: &str = "2020-10-10";
const SUN: &str = "2020-10-11";
const NEXT_MON: &str = "2020-10-12";

const WEEKDAYS: &[Weekday] = &[Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri];
const ALL_DAYS: &[Weekday] = &[Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun];

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn hm(s: &str) -> LocalTime {
    s.parse().unwrap()
}

// ---------------------------------------------------------------- facts

/// An event at `t` (school-local, the school is on UTC) on `day`.
fn ev_on(id: &str, kind: rollcall_model::ActivityKind, day: &str, t: &str) -> Fact {
    let d = date(day);
    Fact {
        event_id: id.into(),
        kind,
        direction: None,
        section: None,
        staff: None,
        at: d.and_time(hm(t).naive()).and_utc().timestamp_micros(),
        local_date: d,
        assigned: None,
        session: None,
        duration_s: None,
        source: None,
    }
}

/// An event on Tuesday.
fn ev(id: &str, kind: rollcall_model::ActivityKind, t: &str) -> Fact {
    ev_on(id, kind, TUE, t)
}

trait FactExt {
    fn sec(self, s: &str) -> Self;
    fn staff(self, s: &str) -> Self;
    fn dir(self, d: Direction) -> Self;
    fn assigned(self, d: &str) -> Self;
    fn session(self, s: &str) -> Self;
    fn dur(self, seconds: i64) -> Self;
}

impl FactExt for Fact {
    fn sec(mut self, s: &str) -> Self {
        self.section = Some(s.into());
        self
    }
    fn staff(mut self, s: &str) -> Self {
        self.staff = Some(s.into());
        self
    }
    fn dir(mut self, d: Direction) -> Self {
        self.direction = Some(d);
        self
    }
    fn assigned(mut self, d: &str) -> Self {
        self.assigned = Some(date(d));
        self
    }
    fn session(mut self, s: &str) -> Self {
        self.session = Some(s.into());
        self
    }
    fn dur(mut self, seconds: i64) -> Self {
        self.duration_s = Some(seconds);
        self
    }
}

/// A live interval in a section: a join at `from` and a leave at `to`.
fn live(join: &str, leave: &str, section: &str, from: &str, to: &str) -> Vec<Fact> {
    vec![ev(join, LiveJoin, from).sec(section), ev(leave, LiveLeave, to).sec(section)]
}

/// Time on campus: a check-in at `from` and a check-out at `to`.
fn on_site(check_in: &str, check_out: &str, from: &str, to: &str) -> Vec<Fact> {
    vec![ev(check_in, CheckIn, from), ev(check_out, CheckOut, to)]
}

fn guardian(id: &str, reason: R) -> ReportFact {
    ReportFact { report_id: id.into(), reason, reporter: Reporter::Guardian }
}

fn by_staff(id: &str, reason: R) -> ReportFact {
    ReportFact { report_id: id.into(), reason, reporter: Reporter::Staff }
}

// ---------------------------------------------------------------- roster

fn meets(section: &str, staff: &str, days: &[Weekday], start: &str, end: &str) -> Enrollment {
    Enrollment {
        section_id: section.into(),
        staff_id: staff.into(),
        course_type: CourseType::Live,
        specials: false,
        dual_enrollment: false,
        meetings: vec![Meeting { weekdays: days.to_vec(), start: hm(start), end: hm(end) }],
    }
}

fn specials(mut e: Enrollment) -> Enrollment {
    e.specials = true;
    e
}

fn dual(mut e: Enrollment) -> Enrollment {
    e.dual_enrollment = true;
    e
}

fn async_only(mut e: Enrollment) -> Enrollment {
    e.course_type = CourseType::AsyncOnly;
    e
}

/// A student with homeroom `hr` (teacher `t_hr`) and these enrollments,
/// SYNC_ONLINE every day.
fn student(grade: GradeLevel, enrollments: Vec<Enrollment>) -> StudentRecord {
    let mut s = StudentRecord::new("stu", "sch", grade);
    s.homeroom_section_id = Some("hr".into());
    s.homeroom_staff_id = Some("t_hr".into());
    s.enrollments = enrollments;
    s
}

/// The student in `mode` on `days` of the fall.
fn in_mode(mut s: StudentRecord, mode: Mode, days: &[Weekday]) -> StudentRecord {
    s.modes.push(ModeSpan { from: date("2020-08-01"), to: date("2021-06-30"), weekdays: days.to_vec(), mode });
    s
}

fn in_person(s: StudentRecord) -> StudentRecord {
    in_mode(s, Mode::InPerson, ALL_DAYS)
}

// ---------------------------------------------------------------- calendar and policy

fn cal(day: &str, start: &str, end: &str, day_type: DayType) -> CalendarDay {
    CalendarDay { date: date(day), instructional: true, day_type, start: hm(start), end: hm(end) }
}

fn preset(id: &str) -> Policy {
    Policy::preset(id).unwrap()
}

fn school(policy: &Policy, days: Vec<CalendarDay>) -> School {
    let calendar = SchoolCalendar { school_id: "sch".into(), timezone: "UTC".into(), policy: policy.id.clone(), days };
    School::new(calendar, chrono_tz::Tz::UTC, Arc::new(policy.clone()))
}

// ---------------------------------------------------------------- rows

/// What a row expects of one determination. `rule` is a fragment of the
/// rule's words; `minutes` and `attendance_type` are checked when given.
#[derive(Debug, Clone)]
struct Want {
    section: Option<&'static str>,
    status: Status,
    code: &'static str,
    rule: &'static str,
    evidence: Vec<&'static str>,
    minutes: Option<i64>,
    attendance_type: Option<AttendanceType>,
}

fn day(status: Status, code: &'static str, rule: &'static str, evidence: &[&'static str]) -> Want {
    Want { section: None, status, code, rule, evidence: evidence.to_vec(), minutes: None, attendance_type: None }
}

fn sec(section: &'static str, status: Status, code: &'static str, rule: &'static str, evidence: &[&'static str]) -> Want {
    Want { section: Some(section), ..day(status, code, rule, evidence) }
}

impl Want {
    fn minutes(mut self, m: i64) -> Self {
        self.minutes = Some(m);
        self
    }
    fn att(mut self, a: AttendanceType) -> Self {
        self.attendance_type = Some(a);
        self
    }
}

/// One row: a student's day and what the rules make of it.
struct Case {
    name: &'static str,
    policy: Policy,
    day: CalendarDay,
    student: StudentRecord,
    facts: Vec<Fact>,
    reports: Vec<ReportFact>,
    /// The facts of D+1 (cms reads them to verify a hardship).
    next: Vec<Fact>,
    want: Vec<Want>,
}

fn case(name: &'static str, policy: &Policy, student: &StudentRecord) -> Case {
    Case {
        name,
        policy: policy.clone(),
        day: cal(TUE, "08:00", "14:00", DayType::Full),
        student: student.clone(),
        facts: vec![],
        reports: vec![],
        next: vec![],
        want: vec![],
    }
}

impl Case {
    fn on(mut self, d: CalendarDay) -> Self {
        self.day = d;
        self
    }
    fn facts(mut self, f: impl IntoIterator<Item = Fact>) -> Self {
        self.facts.extend(f);
        self
    }
    fn fact(self, f: Fact) -> Self {
        self.facts([f])
    }
    fn report(mut self, r: ReportFact) -> Self {
        self.reports.push(r);
        self
    }
    fn next(mut self, f: Fact) -> Self {
        self.next.push(f);
        self
    }
    fn want(mut self, w: impl IntoIterator<Item = Want>) -> Self {
        self.want.extend(w);
        self
    }
}

/// An outcome with its strings owned, for comparing after the inputs are gone.
#[derive(Debug)]
struct Got {
    scope: Scope,
    section: Option<String>,
    status: Status,
    code: String,
    rule: String,
    evidence: Vec<String>,
    minutes: Option<i64>,
    attendance_type: Option<AttendanceType>,
}

impl From<&Outcome<'_>> for Got {
    fn from(o: &Outcome<'_>) -> Self {
        Got {
            scope: o.scope,
            section: o.section.map(str::to_string),
            status: o.status,
            code: o.code.to_string(),
            rule: o.rule.to_string(),
            evidence: o.evidence.iter().map(|e| e.to_string()).collect(),
            minutes: o.minutes,
            attendance_type: o.attendance_type,
        }
    }
}

fn run(c: &Case) -> Vec<Got> {
    let school = school(&c.policy, vec![c.day.clone()]);
    let record = DayRecord { facts: c.facts.clone(), reports: c.reports.clone() };
    let next = DayRecord { facts: c.next.clone(), reports: vec![] };
    let input = DayInput { school: &school, day: &c.day, student: &c.student, record: &record, next: Some(&next) };
    evaluate_day(&input).iter().map(Got::from).collect()
}

fn mismatch(w: &Want, g: &Got) -> Option<String> {
    let scope = if w.section.is_some() { Scope::Section } else { Scope::Day };
    let ok = g.scope == scope
        && g.section.as_deref() == w.section
        && g.status == w.status
        && g.code == w.code
        && g.rule.contains(w.rule)
        && g.evidence == w.evidence
        && w.minutes.is_none_or(|m| g.minutes == Some(m))
        && w.attendance_type.is_none_or(|a| g.attendance_type == Some(a));
    (!ok).then(|| format!("    want {w:?}\n     got {g:?}"))
}

/// Runs every row and reports all the rows that differ at once.
fn check(rows: Vec<Case>) {
    let mut failures = Vec::new();
    for c in &rows {
        let got = run(c);
        if got.len() != c.want.len() {
            failures.push(format!("{}: {} outcome(s), want {}: {got:#?}", c.name, got.len(), c.want.len()));
            continue;
        }
        for (w, g) in c.want.iter().zip(&got) {
            if let Some(m) = mismatch(w, g) {
                failures.push(format!("{}:\n{m}", c.name));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} rows differ:\n{}", failures.len(), rows.len(), failures.join("\n"));
}

use Direction::{FromGuardian, FromStaff, FromStudent};
use Status::{AbsentExcused, AbsentUnexcused, Exempt, Present, PresentRemote};

// ================================================================ any_evidence (mmsd)

/// A third grader: homeroom every weekday 08:00–08:30, art (a special) on Tuesdays.
fn mmsd_k5() -> StudentRecord {
    student(
        GradeLevel::G3,
        vec![meets("hr", "t_hr", WEEKDAYS, "08:00", "08:30"), specials(meets("art", "t_art", &[Weekday::Tue], "10:00", "10:45"))],
    )
}

/// A ninth grader: math 08:00–09:00 and science 09:00–10:00 every weekday.
fn mmsd_9() -> StudentRecord {
    student(
        GradeLevel::G9,
        vec![meets("math", "t_math", WEEKDAYS, "08:00", "09:00"), meets("sci", "t_sci", WEEKDAYS, "09:00", "10:00")],
    )
}

#[test]
fn any_evidence_day_scope() {
    let p = preset("mmsd");
    let k5 = mmsd_k5();
    let wed = cal(WED, "08:00", "14:00", DayType::Full);
    const LIVE: &str = "(a) live session on the day";
    const TASK: &str = "(b) task for the day submitted on time";
    const TWO_WAY: &str = "(c) two-way communication with the homeroom teacher and every specials teacher";
    const NOTHING: &str = "absent: no qualifying activity and no excusing report";
    check(vec![
        // mmsd.md rule 6: "AU (ABSENT_UNEXCUSED) otherwise: ... or no report".
        case("empty day", &p, &k5).want([day(AbsentUnexcused, "AU", NOTHING, &[])]),
        // mmsd.md rule 2: "Present when there is a LIVE_JOIN on D ... the join may be to the homeroom".
        case("live join to the homeroom", &p, &k5).fact(ev("j", LiveJoin, "08:01").sec("hr")).want([day(
            Present,
            "P",
            LIVE,
            &["j"],
        )]),
        // mmsd.md rule 2: "... to any section scheduled on D, or name no section".
        case("live join to a special", &p, &k5).fact(ev("j", LiveJoin, "10:00").sec("art")).want([day(
            Present,
            "P",
            LIVE,
            &["j"],
        )]),
        case("live join naming no section", &p, &k5).fact(ev("j", LiveJoin, "10:00")).want([day(Present, "P", LIVE, &["j"])]),
        // mmsd.md rule 2: only the homeroom, a section scheduled on D, or none.
        case("live join to a section not scheduled on D", &p, &k5).fact(ev("j", LiveJoin, "10:00").sec("band")).want([day(
            AbsentUnexcused,
            "AU",
            NOTHING,
            &[],
        )]),
        // mmsd.md rule 2: "The join itself counts: there is no minimum of live minutes."
        case("a one-minute live session", &p, &k5).facts(live("j", "l", "hr", "08:00", "08:01")).want([day(
            Present,
            "P",
            LIVE,
            &["j"],
        )]),
        // mmsd.md rule 5: "On Wednesdays ... rule (a) does not count".
        case("live join on a Wednesday", &p, &k5).on(wed.clone()).fact(ev_on("j", LiveJoin, WED, "08:01").sec("hr")).want([day(
            AbsentUnexcused,
            "AU",
            NOTHING,
            &[],
        )]),
        // mmsd.md rule 5: "... and on any calendar day whose day_type is ASYNC".
        case("live join on an ASYNC day", &p, &k5)
            .on(cal(TUE, "08:00", "14:00", DayType::Async))
            .fact(ev("j", LiveJoin, "08:01").sec("hr"))
            .want([day(AbsentUnexcused, "AU", NOTHING, &[])]),
        // mmsd.md rule 5: "(b) and (c) do" count on Wednesdays.
        case("submission on a Wednesday", &p, &k5)
            .on(wed.clone())
            .fact(ev_on("s", Submission, WED, "11:00").assigned(WED))
            .want([day(Present, "P", TASK, &["s"])]),
        // mmsd.md rule 3: "Present when a SUBMISSION for D (assigned_date = D) was made on D."
        case("submission for D at 23:59 on D", &p, &k5).fact(ev("s", Submission, "23:59").assigned(TUE)).want([day(
            Present,
            "P",
            TASK,
            &["s"],
        )]),
        // mmsd.md rule 3: "a submission for D made later ... do[es] not count"
        // (submission_allowance_days = 0).
        case("submission for D at 00:00 on D+1", &p, &k5).fact(ev_on("s", Submission, WED, "00:00").assigned(TUE)).want([day(
            AbsentUnexcused,
            "AU",
            NOTHING,
            &[],
        )]),
        // mmsd.md rule 3: "A submission for another day ... do[es] not count".
        case("submission on D for D-1", &p, &k5).fact(ev("s", Submission, "09:00").assigned(MON)).want([day(
            AbsentUnexcused,
            "AU",
            NOTHING,
            &[],
        )]),
        // mmsd.md rule 3: "CONTENT_ACCESS alone do[es] not count".
        case("content access alone", &p, &k5).fact(ev("c", ContentAccess, "09:00").sec("hr")).want([day(
            AbsentUnexcused,
            "AU",
            NOTHING,
            &[],
        )]),
        // mmsd.md rule 4: "with the homeroom teacher and with every specials
        // teacher ... scheduled on D": the homeroom teacher alone is not enough on Tuesday.
        case("two-way with the homeroom teacher, not the special's", &p, &k5)
            .fact(ev("c", TwoWayContact, "09:00").staff("t_hr"))
            .want([day(AbsentUnexcused, "AU", NOTHING, &[])]),
        case("two-way with the special's teacher, not the homeroom's", &p, &k5)
            .fact(ev("c", TwoWayContact, "09:00").staff("t_art"))
            .want([day(AbsentUnexcused, "AU", NOTHING, &[])]),
        case("two-way with the homeroom and the specials teacher", &p, &k5)
            .fact(ev("c1", TwoWayContact, "09:00").staff("t_hr"))
            .fact(ev("c2", TwoWayContact, "11:00").sec("art"))
            .want([day(Present, "P", TWO_WAY, &["c1", "c2"])]),
        // mmsd.md rule 4: "on a day with no specials, the homeroom teacher alone".
        case("two-way with the homeroom teacher on a day without specials", &p, &k5)
            .on(wed.clone())
            .fact(ev_on("c", TwoWayContact, WED, "09:00").staff("t_hr"))
            .want([day(Present, "P", TWO_WAY, &["c"])]),
        // mmsd.md rule 4: "a message exchange, in either order, with the student or with the guardian".
        case("guardian message, then the teacher's reply", &p, &k5)
            .on(wed.clone())
            .fact(ev_on("m_in", Message, WED, "09:00").dir(FromGuardian).staff("t_hr"))
            .fact(ev_on("m_out", Message, WED, "10:00").dir(FromStaff).staff("t_hr"))
            .want([day(Present, "P", TWO_WAY, &["m_in", "m_out"])]),
        case("teacher's message, then the student's reply (homeroom section, no staff id)", &p, &k5)
            .on(wed.clone())
            .fact(ev_on("m_out", Message, WED, "09:00").dir(FromStaff).sec("hr"))
            .fact(ev_on("m_in", Message, WED, "10:00").dir(FromStudent).sec("hr"))
            .want([day(Present, "P", TWO_WAY, &["m_in", "m_out"])]),
        // mmsd.md rule 4: "A one-way message does not count".
        case("one-way message from the student", &p, &k5)
            .on(wed.clone())
            .fact(ev_on("m_in", Message, WED, "09:00").dir(FromStudent).staff("t_hr"))
            .want([day(AbsentUnexcused, "AU", NOTHING, &[])]),
        case("two messages, both from the teacher (wrong direction)", &p, &k5)
            .on(wed.clone())
            .fact(ev_on("m1", Message, WED, "09:00").dir(FromStaff).staff("t_hr"))
            .fact(ev_on("m2", Message, WED, "10:00").dir(FromStaff).staff("t_hr"))
            .want([day(AbsentUnexcused, "AU", NOTHING, &[])]),
        case("the student's message answered by another teacher", &p, &k5)
            .on(wed.clone())
            .fact(ev_on("m_in", Message, WED, "09:00").dir(FromStudent).staff("t_hr"))
            .fact(ev_on("m_out", Message, WED, "10:00").dir(FromStaff).staff("t_art"))
            .want([day(AbsentUnexcused, "AU", NOTHING, &[])]),
        // mmsd.md rule 4: "neither does an exchange split across two dates".
        case("exchange split across Tuesday and Wednesday", &p, &k5)
            .on(wed.clone())
            .fact(ev_on("m_in", Message, TUE, "20:00").dir(FromStudent).staff("t_hr"))
            .fact(ev_on("m_out", Message, WED, "08:00").dir(FromStaff).staff("t_hr"))
            .want([day(AbsentUnexcused, "AU", NOTHING, &[])]),
        // mmsd.md rule 6: "AE ... when a report for D gives an excusable reason".
        case("ILLNESS report, nothing else", &p, &k5).report(guardian("r", R::Illness)).want([day(
            AbsentExcused,
            "AE",
            "absent, excused: ILLNESS reported",
            &["r"],
        )]),
        case("RELIGIOUS report", &p, &k5).report(guardian("r", R::Religious)).want([day(
            AbsentExcused,
            "AE",
            "absent, excused: RELIGIOUS reported",
            &["r"],
        )]),
        // mmsd.md rule 6: "AU ... otherwise: OTHER, HARDSHIP, CONNECTIVITY, QUARANTINE, COVID".
        case("QUARANTINE report stays unexcused under mmsd", &p, &k5).report(guardian("r", R::Quarantine)).want([day(
            AbsentUnexcused,
            "AU",
            NOTHING,
            &[],
        )]),
        case("HARDSHIP report", &p, &k5).report(guardian("r", R::Hardship)).want([day(AbsentUnexcused, "AU", NOTHING, &[])]),
        // mmsd.md rule 6: "A present student with a report stays P."
        case("present with an ILLNESS report", &p, &k5)
            .report(guardian("r", R::Illness))
            .fact(ev("j", LiveJoin, "08:01").sec("hr"))
            .want([day(Present, "P", LIVE, &["j"])]),
        // mmsd.md: "so a CHECK_IN alone is not evidence under mmsd".
        case("check-in alone", &p, &in_person(k5.clone())).facts(on_site("ci", "co", "08:00", "14:00")).want([day(
            AbsentUnexcused,
            "AU",
            NOTHING,
            &[],
        )]),
    ]);
}

#[test]
fn any_evidence_section_scope() {
    let p = preset("mmsd");
    let g9 = mmsd_9();
    const LIVE: &str = "live session of the class on the day";
    const TASK: &str = "task for the class submitted on time";
    const TWO_WAY: &str = "two-way communication with the class teacher";
    const NOTHING: &str = "absent: no qualifying activity";
    check(vec![
        // mmsd.md rule 1: "Grades 6–12 get one SECTION determination for each section scheduled on D ... and no DAY."
        case("empty day", &p, &g9)
            .want([sec("math", AbsentUnexcused, "AU", NOTHING, &[]), sec("sci", AbsentUnexcused, "AU", NOTHING, &[])]),
        // mmsd.md rule 2: "at SECTION scope it must be to that section".
        case("live join to math only", &p, &g9)
            .fact(ev("j", LiveJoin, "08:00").sec("math"))
            .want([sec("math", Present, "P", LIVE, &["j"]), sec("sci", AbsentUnexcused, "AU", NOTHING, &[])]),
        case("live join naming no section", &p, &g9)
            .fact(ev("j", LiveJoin, "08:00"))
            .want([sec("math", AbsentUnexcused, "AU", NOTHING, &[]), sec("sci", AbsentUnexcused, "AU", NOTHING, &[])]),
        // mmsd.md rule 3: "At SECTION scope the submission must be in that section."
        case("submission in science on D", &p, &g9)
            .fact(ev("s", Submission, "20:00").sec("sci").assigned(TUE))
            .want([sec("math", AbsentUnexcused, "AU", NOTHING, &[]), sec("sci", Present, "P", TASK, &["s"])]),
        // mmsd.md rule 4: "At SECTION scope: two-way communication on D with that section's teacher."
        case("two-way with the math teacher", &p, &g9)
            .fact(ev("c", TwoWayContact, "12:00").staff("t_math"))
            .want([sec("math", Present, "P", TWO_WAY, &["c"]), sec("sci", AbsentUnexcused, "AU", NOTHING, &[])]),
        // mmsd.md rule 5: "'For all classes': this holds at DAY and at SECTION scope."
        case("live join to math on a Wednesday", &p, &g9)
            .on(cal(WED, "08:00", "14:00", DayType::Full))
            .fact(ev_on("j", LiveJoin, WED, "08:00").sec("math"))
            .want([sec("math", AbsentUnexcused, "AU", NOTHING, &[]), sec("sci", AbsentUnexcused, "AU", NOTHING, &[])]),
        // mmsd.md rule 6: "At SECTION scope the report applies to every section of the day."
        case("ILLNESS report, present in math", &p, &g9)
            .report(guardian("r", R::Illness))
            .fact(ev("j", LiveJoin, "08:00").sec("math"))
            .want([
                sec("math", Present, "P", LIVE, &["j"]),
                sec("sci", AbsentExcused, "AE", "absent, excused: ILLNESS reported", &["r"]),
            ]),
    ]);
}

// ================================================================ by_mode (mississippi)

/// A tenth grader with English every weekday 08:00–10:00.
fn ms_student() -> StudentRecord {
    student(GradeLevel::G10, vec![meets("eng", "t_eng", WEEKDAYS, "08:00", "10:00")])
}

/// The same student at the college on Tuesdays 13:00–15:00.
fn ms_with_college() -> StudentRecord {
    let mut s = ms_student();
    s.enrollments.push(dual(meets("col", "t_col", &[Weekday::Tue], "13:00", "15:00")));
    s
}

fn ms_policy(lms: bool) -> Policy {
    let mut p = preset("mississippi");
    let Rule::ByMode(b) = &mut p.rule else { panic!("mississippi is by_mode") };
    b.lms = lms;
    p
}

#[test]
fn by_mode_in_person_and_dual_enrollment() {
    let p = preset("mississippi");
    let present = in_person(ms_student());
    let college = in_person(ms_with_college());
    // An instructional day of 420 minutes: 63% is 264.6 minutes.
    let d420 = cal(TUE, "08:00", "15:00", DayType::Full);
    const NOTHING: &str = "absent: no qualifying activity";
    check(vec![
        // mississippi.md rule 2: "P when on-site minutes (CHECK_IN..CHECK_OUT)
        // reach 63% of the day's instructional minutes".
        case("on site 265 of 420 minutes", &p, &present).on(d420.clone()).facts(on_site("ci", "co", "08:00", "12:25")).want([
            day(Present, "P", "on site 265 of 420 minutes of the day", &["ci", "co"]).minutes(265).att(AttendanceType::InPerson),
        ]),
        case("on site 264 of 420 minutes, under 63%", &p, &present)
            .on(d420.clone())
            .facts(on_site("ci", "co", "08:00", "12:24"))
            .want([day(AbsentUnexcused, "AU", NOTHING, &[]).minutes(264).att(AttendanceType::InPerson)]),
        // mississippi.md rule 2 (checked by mississippi-08): "270 of 420 minutes is P, 240 is AU".
        case("on site 270 of 420", &p, &present).on(d420.clone()).facts(on_site("ci", "co", "08:00", "12:30")).want([day(
            Present,
            "P",
            "on site 270 of 420",
            &["ci", "co"],
        )
        .minutes(270)]),
        case("on site 240 of 420", &p, &present).on(d420.clone()).facts(on_site("ci", "co", "08:00", "12:00")).want([day(
            AbsentUnexcused,
            "AU",
            NOTHING,
            &[],
        )
        .minutes(240)]),
        // mississippi.md rule 2: "A check-in with no check-out counts to the end of the school day."
        case("check-in, no check-out", &p, &present).on(d420.clone()).fact(ev("ci", CheckIn, "08:00")).want([day(
            Present,
            "P",
            "on site 420 of 420",
            &["ci"],
        )
        .minutes(420)]),
        // mississippi.md rule 7: "10 on-site minutes: AU, minutes 10".
        case("ten minutes on site", &p, &present).on(d420.clone()).facts(on_site("ci", "co", "08:00", "08:10")).want([day(
            AbsentUnexcused,
            "AU",
            NOTHING,
            &[],
        )
        .minutes(10)]),
        // mississippi.md rule 1: "online activity does not make an in-person day present".
        case("in person, online activity only", &p, &present)
            .on(d420.clone())
            .fact(ev("l", Login, "08:00"))
            .fact(ev("c", ContentAccess, "08:05"))
            .want([day(AbsentUnexcused, "AU", NOTHING, &[]).att(AttendanceType::InPerson)]),
        case("in person, empty day", &p, &present).on(d420.clone()).want([day(AbsentUnexcused, "AU", NOTHING, &[]).minutes(0)]),
        // mississippi.md rule 2: "with two college periods, 210 of 300 is P":
        // "Scheduled dual-enrollment periods are taken out of both the day's
        // minutes and the student's on-site minutes". 63% of 300 is 189.
        case("college on Tuesday afternoon: on site 189 of 300", &p, &college)
            .on(d420.clone())
            .facts(on_site("ci", "co", "08:00", "11:09"))
            .want([day(Present, "P", "on site 189 of 300 minutes of the day outside dual-enrollment periods", &["ci", "co"])
                .minutes(189)]),
        case("college on Tuesday afternoon: on site 188 of 300", &p, &college)
            .on(d420.clone())
            .facts(on_site("ci", "co", "08:00", "11:08"))
            .want([day(AbsentUnexcused, "AU", NOTHING, &[]).minutes(188)]),
        case("college on Tuesday afternoon: on site 210 of 300", &p, &college)
            .on(d420.clone())
            .facts(on_site("ci", "co", "08:00", "11:30"))
            .want([day(Present, "P", "on site 210 of 300", &["ci", "co"])]),
        // ... "and the student's on-site minutes": minutes on campus during the
        // college period do not count toward the 63%: 08:00–09:00 and
        // 13:00–15:00 on site is 60 of 300.
        case("on site during the college period does not count", &p, &college)
            .on(d420.clone())
            .facts(on_site("ci1", "co1", "08:00", "09:00"))
            .facts(on_site("ci2", "co2", "13:00", "15:00"))
            .want([day(AbsentUnexcused, "AU", NOTHING, &[]).minutes(180)]),
        // mississippi.md rule 8: "A day on which the student has at least one
        // scheduled section and all of them are dual-enrollment is EXEMPT, code DE."
        case("only the college scheduled", &p, &{
            let mut s = ms_with_college();
            s.enrollments.retain(|e| e.dual_enrollment);
            s
        })
        .on(d420.clone())
        .want([day(Exempt, "DE", "exempt: every scheduled section is dual enrollment", &[])]),
        // ... "at least one scheduled section": a day with none is judged normally.
        case("no section scheduled is not exempt", &p, &{
            let mut s = ms_with_college();
            s.enrollments.retain(|e| e.dual_enrollment);
            s
        })
        .on(cal(WED, "08:00", "15:00", DayType::Full))
        .want([day(AbsentUnexcused, "AU", NOTHING, &[])]),
        // mississippi.md rule 9: "Excusable here: ILLNESS, MEDICAL, BEREAVEMENT,
        // RELIGIOUS, and QUARANTINE and COVID".
        case("in person, QUARANTINE", &p, &present).on(d420.clone()).report(guardian("r", R::Quarantine)).want([day(
            AbsentExcused,
            "AE",
            "absent, excused: QUARANTINE reported",
            &["r"],
        )]),
    ]);
}

#[test]
fn by_mode_online_and_offline() {
    let p = preset("mississippi");
    let online = ms_student();
    let packets = in_mode(ms_student(), Mode::LearningPackets, ALL_DAYS);
    let offline = in_mode(ms_student(), Mode::AsyncOffline, ALL_DAYS);
    const LMS: &str = "virtual: authenticated (login) and engaged on the day";
    const WEEKLY: &str = "work for the day returned by the end of its week";
    const NOTHING: &str = "absent: no qualifying activity";
    check(vec![
        // mississippi.md rule 3: "PV when authenticated — a LOGIN on D — and
        // engaged — at least one engagement event on D".
        case("login and content access", &p, &online)
            .fact(ev("l", Login, "08:00"))
            .fact(ev("c", ContentAccess, "08:05"))
            .want([day(Present, "PV", LMS, &["l", "c"]).att(AttendanceType::Virtual)]),
        // mississippi.md rule 3: "A login alone, engagement without a login, a
        // login and engagement on different dates, a LOGOUT, or messages from
        // staff only leave the student absent."
        case("login alone", &p, &online).fact(ev("l", Login, "08:00")).want([day(AbsentUnexcused, "AU", NOTHING, &[])]),
        case("engagement without a login", &p, &online).fact(ev("c", ContentAccess, "08:05")).want([day(
            AbsentUnexcused,
            "AU",
            NOTHING,
            &[],
        )]),
        case("login on Monday, engagement on Tuesday", &p, &online)
            .fact(ev_on("l", Login, MON, "08:00"))
            .fact(ev("c", ContentAccess, "08:05"))
            .want([day(AbsentUnexcused, "AU", NOTHING, &[])]),
        case("logout and content access", &p, &online)
            .fact(ev("o", Logout, "08:00"))
            .fact(ev("c", ContentAccess, "08:05"))
            .want([day(AbsentUnexcused, "AU", NOTHING, &[])]),
        case("login and a message from staff", &p, &online)
            .fact(ev("l", Login, "08:00"))
            .fact(ev("m", Message, "08:05").dir(FromStaff).staff("t_eng"))
            .want([day(AbsentUnexcused, "AU", NOTHING, &[])]),
        // README.md, engagement event: "MESSAGE from the student (direction = FROM_STUDENT)".
        case("login and a message from the student", &p, &online)
            .fact(ev("l", Login, "08:00"))
            .fact(ev("m", Message, "08:05").dir(FromStudent).staff("t_eng"))
            .want([day(Present, "PV", LMS, &["l", "m"])]),
        // mississippi.md rule 1: "a CHECK_IN does not make a virtual day present".
        case("check-in on a virtual day", &p, &online).facts(on_site("ci", "co", "08:00", "14:00")).want([day(
            AbsentUnexcused,
            "AU",
            NOTHING,
            &[],
        )
        .att(AttendanceType::Virtual)]),
        // mississippi.md rule 7: "Online they are a report, not a gate: 75 live
        // minutes with a login and engagement is still PV."
        case("75 live minutes with a login", &p, &online)
            .fact(ev("l", Login, "08:00"))
            .facts(live("j", "lv", "eng", "08:00", "09:15"))
            .want([day(Present, "PV", LMS, &["l", "j"]).minutes(75)]),
        // mississippi.md rule 4: "With lms = false, an online day is PV when
        // there is a TWO_WAY_CONTACT on D."
        case("no LMS: two-way contact", &ms_policy(false), &online)
            .fact(ev("c", TwoWayContact, "10:00").staff("t_eng"))
            .want([day(Present, "PV", "virtual without an LMS: two-way contact on the day", &["c"])]),
        case("no LMS: login and engagement are not enough", &ms_policy(false), &online)
            .fact(ev("l", Login, "08:00"))
            .fact(ev("c", ContentAccess, "08:05"))
            .want([day(AbsentUnexcused, "AU", NOTHING, &[])]),
        // mississippi.md rule 5: "PV (VIRTUAL) when an OFFLINE_WORK_RETURNED or
        // a SUBMISSION for D ... arrives with a school date no later than the
        // Sunday of D's week".
        case("packets for Tuesday returned on Sunday", &p, &packets)
            .fact(ev_on("w", OfflineWorkReturned, SUN, "21:00").assigned(TUE))
            .want([day(Present, "PV", WEEKLY, &["w"]).att(AttendanceType::Virtual)]),
        case("offline submission for Tuesday on Saturday", &p, &offline)
            .fact(ev_on("s", Submission, SAT, "10:00").assigned(TUE))
            .want([day(Present, "PV", WEEKLY, &["s"])]),
        // ... "Work returned the following week does not count."
        case("packets for Tuesday returned the next Monday", &p, &packets)
            .fact(ev_on("w", OfflineWorkReturned, NEXT_MON, "00:00").assigned(TUE))
            .want([day(AbsentUnexcused, "AU", NOTHING, &[])]),
        case("packets for Monday returned on Tuesday", &p, &packets)
            .fact(ev("w", OfflineWorkReturned, "09:00").assigned(MON))
            .want([day(AbsentUnexcused, "AU", NOTHING, &[])]),
        // mississippi.md rule 9: "AE when a report for D gives an excusable
        // reason, AU otherwise".
        case("online, ILLNESS", &p, &online).report(guardian("r", R::Illness)).want([day(
            AbsentExcused,
            "AE",
            "absent, excused: ILLNESS reported",
            &["r"],
        )]),
        case("online, COVID", &p, &online).report(guardian("r", R::Covid)).want([day(
            AbsentExcused,
            "AE",
            "absent, excused: COVID reported",
            &["r"],
        )]),
        case("online, OTHER", &p, &online).report(guardian("r", R::Other)).want([day(AbsentUnexcused, "AU", NOTHING, &[])]),
        case("online, DISCIPLINARY", &p, &online).report(by_staff("r", R::Disciplinary)).want([day(
            AbsentUnexcused,
            "AU",
            NOTHING,
            &[],
        )]),
    ]);
}

// ================================================================ half_day (cms)

/// A third grader (DAY scope), homeroom all day.
fn cms_k5() -> StudentRecord {
    student(GradeLevel::G3, vec![meets("hr", "t_hr", WEEKDAYS, "08:00", "14:00")])
}

/// A ninth grader (SECTION_AND_DAY): four one-hour periods from 08:00.
fn cms_9() -> StudentRecord {
    student(
        GradeLevel::G9,
        vec![
            meets("p1", "t1", WEEKDAYS, "08:00", "09:00"),
            meets("p2", "t2", WEEKDAYS, "09:00", "10:00"),
            meets("p3", "t3", WEEKDAYS, "10:00", "11:00"),
            meets("p4", "t4", WEEKDAYS, "11:00", "12:00"),
        ],
    )
}

fn cms_policy(verify_hardship: bool) -> Policy {
    let mut p = preset("cms");
    let Rule::HalfDay(h) = &mut p.rule else { panic!("cms is half_day") };
    h.verify_hardship = verify_hardship;
    p
}

const NOTHING: &str = "absent: no qualifying activity and no excusing report";

#[test]
fn half_day_in_person() {
    let p = preset("cms");
    let k5 = in_person(cms_k5());
    // The school day is 08:00–14:00: 360 minutes, half of it 180.
    check(vec![
        // cms.md rule 1: "P when on-site minutes ... reach 50% of the day's
        // instructional minutes" (cms-01: "180 of 360 minutes is P, 179 is not").
        case("on site 180 of 360", &p, &k5).facts(on_site("ci", "co", "08:00", "11:00")).want([day(
            Present,
            "P",
            "on site 180 of 360 minutes of the day",
            &["ci", "co"],
        )
        .minutes(180)
        .att(AttendanceType::InPerson)]),
        case("on site 179 of 360", &p, &k5).facts(on_site("ci", "co", "08:00", "10:59")).want([day(
            AbsentUnexcused,
            "AU",
            NOTHING,
            &[],
        )
        .minutes(179)]),
        // cms.md rule 1: "visits added up, overlaps once" ("two visits add up").
        case("two visits add up to 180", &p, &k5)
            .facts(on_site("ci1", "co1", "08:00", "09:30"))
            .facts(on_site("ci2", "co2", "12:30", "14:00"))
            .want([day(Present, "P", "on site 180 of 360", &["ci1", "ci2", "co1", "co2"]).minutes(180)]),
        // cms.md rule 2: "1R (PRESENT_REMOTE) when an absence report for D gives
        // QUARANTINE, COVID or DISCIPLINARY".
        case("QUARANTINE on an in-person day", &p, &k5).report(guardian("r", R::Quarantine)).want([day(
            PresentRemote,
            "1R",
            "present off-site: QUARANTINE reported",
            &["r"],
        )]),
        case("COVID on an in-person day", &p, &k5).report(guardian("r", R::Covid)).want([day(
            PresentRemote,
            "1R",
            "present off-site: COVID reported",
            &["r"],
        )]),
        case("DISCIPLINARY, 10 minutes on site", &p, &k5)
            .facts(on_site("ci", "co", "08:00", "08:10"))
            .report(by_staff("r", R::Disciplinary))
            .want([day(PresentRemote, "1R", "present off-site: DISCIPLINARY reported", &["r"]).minutes(10)]),
        // cms.md rule 2: "Otherwise it is absent: AE with an excusable report (rule 9), AU otherwise."
        case("ILLNESS on an in-person day", &p, &k5).report(guardian("r", R::Illness)).want([day(
            AbsentExcused,
            "AE",
            "absent, excused: ILLNESS reported",
            &["r"],
        )]),
        // cms.md rule 2: "A HARDSHIP or CONNECTIVITY report gives no 1R on an in-person day".
        case("HARDSHIP by staff and engagement on an in-person day", &p, &k5)
            .report(by_staff("r", R::Hardship))
            .fact(ev("c", ContentAccess, "09:00"))
            .want([day(AbsentUnexcused, "AU", NOTHING, &[])]),
        case("in person, empty day", &p, &k5).want([day(AbsentUnexcused, "AU", NOTHING, &[]).minutes(0)]),
        // cms.md rule 1: presence on site is what counts, not live minutes.
        case("in person, live all day but not on site", &p, &k5).facts(live("j", "l", "hr", "08:00", "14:00")).want([day(
            AbsentUnexcused,
            "AU",
            NOTHING,
            &[],
        )]),
    ]);
}

#[test]
fn half_day_remote_live_minutes() {
    let p = preset("cms");
    let k5 = cms_k5();
    check(vec![
        // cms.md rule 3: "1R (PRESENT_REMOTE) when live minutes reach 50% of the day's instructional minutes".
        case("live 180 of 360", &p, &k5).facts(live("j", "l", "hr", "08:00", "11:00")).want([day(
            PresentRemote,
            "1R",
            "live 180 of 360 minutes of the day",
            &["j", "l"],
        )
        .minutes(180)
        .att(AttendanceType::Virtual)]),
        // cms.md rule 3, checked by cms-03: "179 of 360 is absent".
        case("live 179 of 360", &p, &k5).facts(live("j", "l", "hr", "08:00", "10:59")).want([day(
            AbsentUnexcused,
            "AU",
            NOTHING,
            &[],
        )
        .minutes(179)]),
        // cms.md rule 3: "a join with no leave closes at the window's end".
        case("join at 11:00, no leave", &p, &k5).fact(ev("j", LiveJoin, "11:00").sec("hr")).want([day(
            PresentRemote,
            "1R",
            "live 180 of 360",
            &["j"],
        )
        .minutes(180)]),
        // cms.md rule 3: "Live minutes are the union of the sessions (overlaps once)".
        case("two overlapping sessions, 180 in their union", &p, &k5)
            .fact(ev("j1", LiveJoin, "08:00").session("s1"))
            .fact(ev("l1", LiveLeave, "10:00").session("s1"))
            .fact(ev("j2", LiveJoin, "09:00").session("s2"))
            .fact(ev("l2", LiveLeave, "11:00").session("s2"))
            .want([day(PresentRemote, "1R", "live 180 of 360", &["j1", "j2", "l1", "l2"]).minutes(180)]),
        case("two overlapping sessions, 179 in their union (239 added up)", &p, &k5)
            .fact(ev("j1", LiveJoin, "08:00").session("s1"))
            .fact(ev("l1", LiveLeave, "10:00").session("s1"))
            .fact(ev("j2", LiveJoin, "09:00").session("s2"))
            .fact(ev("l2", LiveLeave, "10:59").session("s2"))
            .want([day(AbsentUnexcused, "AU", NOTHING, &[]).minutes(179)]),
        // README.md, live minutes: "a LIVE_LEAVE with duration_seconds and no
        // join counts for that many seconds before it".
        case("a leave that knows its 3 hours", &p, &k5).fact(ev("l", LiveLeave, "11:00").sec("hr").dur(3 * 3600)).want([day(
            PresentRemote,
            "1R",
            "live 180 of 360",
            &["l"],
        )
        .minutes(180)]),
        // cms.md rule 6: "A remote day not present by rules 3–5 is absent".
        case("remote, empty day", &p, &k5).want([day(AbsentUnexcused, "AU", NOTHING, &[]).minutes(0)]),
        // cms.md rule 9: "these reasons give AE on remote days".
        case("remote, QUARANTINE", &p, &k5).report(guardian("r", R::Quarantine)).want([day(
            AbsentExcused,
            "AE",
            "absent, excused: QUARANTINE reported",
            &["r"],
        )]),
        case("remote, BEREAVEMENT", &p, &k5).report(guardian("r", R::Bereavement)).want([day(
            AbsentExcused,
            "AE",
            "absent, excused: BEREAVEMENT reported",
            &["r"],
        )]),
        case("remote, DISCIPLINARY", &p, &k5).report(by_staff("r", R::Disciplinary)).want([day(
            AbsentUnexcused,
            "AU",
            NOTHING,
            &[],
        )]),
    ]);
}

#[test]
fn half_day_hardship_path() {
    let p = preset("cms");
    let k5 = cms_k5();
    const ENGAGED: &str = "engaged with course content on the day";
    const TWO_WAY: &str = "two-way communication with a teacher on the day";
    check(vec![
        // cms.md rule 4: "a SUBMISSION for D made by the end of D + 1"; rule 5:
        // "a report made by STAFF is verified as made".
        case("staff HARDSHIP, submission at 23:59 on D+1", &p, &k5)
            .report(by_staff("r", R::Hardship))
            .fact(ev_on("s", Submission, WED, "23:59").assigned(TUE))
            .want([day(
                PresentRemote,
                "1R",
                "present off-site by hardship (HARDSHIP reported, reported by staff): work for the day submitted",
                &["r", "s"],
            )]),
        // cms.md rule 4 (cms-04): "a submission on D + 2 ... leaves AU".
        case("staff HARDSHIP, submission at 00:00 on D+2", &p, &k5)
            .report(by_staff("r", R::Hardship))
            .fact(ev_on("s", Submission, THU, "00:00").assigned(TUE))
            .want([day(AbsentUnexcused, "AU", NOTHING, &[])]),
        // cms.md rule 4: "an engagement event on D other than a LOGIN" (cms-04: "a bare LOGIN leaves AU").
        case("staff HARDSHIP, a bare login", &p, &k5)
            .report(by_staff("r", R::Hardship))
            .fact(ev("l", Login, "09:00"))
            .want([day(AbsentUnexcused, "AU", NOTHING, &[])]),
        case("staff HARDSHIP, content access", &p, &k5)
            .report(by_staff("r", R::Hardship))
            .fact(ev("c", ContentAccess, "09:00"))
            .want([day(PresentRemote, "1R", ENGAGED, &["r", "c"])]),
        // cms.md rule 4: "a RECORDING_VIEW on D" (also an engagement event).
        case("staff CONNECTIVITY, watched the recording", &p, &k5)
            .report(by_staff("r", R::Connectivity))
            .fact(ev("v", RecordingView, "16:00"))
            .want([day(PresentRemote, "1R", "present off-site by hardship (CONNECTIVITY reported", &["r", "v"])]),
        // cms.md rule 4: "two-way communication with a teacher on D".
        case("staff HARDSHIP, a message exchange with the teacher", &p, &k5)
            .report(by_staff("r", R::Hardship))
            .fact(ev("m_in", Message, "09:00").dir(FromGuardian).staff("t_hr"))
            .fact(ev("m_out", Message, "09:30").dir(FromStaff).staff("t_hr"))
            .want([day(PresentRemote, "1R", TWO_WAY, &["r", "m_in", "m_out"])]),
        case("staff HARDSHIP, a one-way message from the teacher", &p, &k5)
            .report(by_staff("r", R::Hardship))
            .fact(ev("m_out", Message, "09:30").dir(FromStaff).staff("t_hr"))
            .want([day(AbsentUnexcused, "AU", NOTHING, &[])]),
        // cms.md rule 6: "does not attend at a live session and does not report a hardship ... absent".
        case("no report, content access", &p, &k5).fact(ev("c", ContentAccess, "09:00")).want([day(
            AbsentUnexcused,
            "AU",
            NOTHING,
            &[],
        )]),
        // cms.md rule 4: the path is for HARDSHIP and CONNECTIVITY only.
        case("OTHER report, content access", &p, &k5)
            .report(by_staff("r", R::Other))
            .fact(ev("c", ContentAccess, "09:00"))
            .want([day(AbsentUnexcused, "AU", NOTHING, &[])]),
        // cms.md rule 5: "A hardship report opens the path of rule 4 only once
        // staff have verified it ... a report made by the GUARDIAN is verified
        // by two-way communication between a teacher and the student or guardian on D or D + 1."
        case("guardian HARDSHIP, not verified", &p, &k5)
            .report(guardian("r", R::Hardship))
            .fact(ev("c", ContentAccess, "09:00"))
            .want([day(AbsentUnexcused, "AU", NOTHING, &[])]),
        case("guardian HARDSHIP, verified by a call on D+1", &p, &k5)
            .report(guardian("r", R::Hardship))
            .fact(ev("c", ContentAccess, "09:00"))
            .next(ev_on("call", TwoWayContact, WED, "10:00").staff("t_hr"))
            .want([day(
                PresentRemote,
                "1R",
                "present off-site by hardship (HARDSHIP reported, verified by a teacher): engaged with course content",
                &["r", "call", "c"],
            )]),
        // cms.md rule 5 (cms-08): "one on D + 2 does not".
        case("guardian HARDSHIP, a call on D+2", &p, &k5)
            .report(guardian("r", R::Hardship))
            .fact(ev("c", ContentAccess, "09:00"))
            .next(ev_on("call", TwoWayContact, THU, "10:00").staff("t_hr"))
            .want([day(AbsentUnexcused, "AU", NOTHING, &[])]),
        case("guardian HARDSHIP, a message exchange on D verifies and qualifies", &p, &k5)
            .report(guardian("r", R::Hardship))
            .fact(ev("m_in", Message, "09:00").dir(FromGuardian).staff("t_hr"))
            .fact(ev("m_out", Message, "09:30").dir(FromStaff).staff("t_hr"))
            .want([day(PresentRemote, "1R", "verified by a teacher): two-way communication", &["r", "m_in", "m_out"])]),
        case("guardian HARDSHIP, only the guardian wrote", &p, &k5)
            .report(guardian("r", R::Hardship))
            .fact(ev("m_in", Message, "09:00").dir(FromGuardian).staff("t_hr"))
            .fact(ev("c", ContentAccess, "09:00"))
            .want([day(AbsentUnexcused, "AU", NOTHING, &[])]),
        // cms.md rule 5: "verify_hardship = true (false: a report counts as made ...)".
        case("verify_hardship = false: guardian HARDSHIP counts as made", &cms_policy(false), &k5)
            .report(guardian("r", R::Hardship))
            .fact(ev("c", ContentAccess, "09:00"))
            .want([day(PresentRemote, "1R", "present off-site by hardship (HARDSHIP reported): engaged", &["r", "c"])]),
    ]);
}

#[test]
fn half_day_periods_and_derived_day() {
    let p = preset("cms");
    let g9 = cms_9();
    let g9_in = in_person(cms_9());
    let mut g9_async = cms_9();
    g9_async.enrollments[3] = async_only(g9_async.enrollments[3].clone());
    let live_p = "live 60 of 60 minutes of the period";
    let site_p = "on site 60 of 60 minutes of the period";
    let au = |s: &'static str| sec(s, AbsentUnexcused, "AU", NOTHING, &[]);
    check(vec![
        // cms.md rule 8: "a SECTION determination per scheduled period, and a
        // DAY code derived from them — present when the student is present in
        // at least half of the periods scheduled that day".
        case("remote, live in 2 of 4 periods", &p, &g9)
            .facts(live("j1", "l1", "p1", "08:00", "09:00"))
            .facts(live("j2", "l2", "p2", "09:00", "10:00"))
            .want([
                sec("p1", PresentRemote, "1R", live_p, &["j1", "l1"]).minutes(60),
                sec("p2", PresentRemote, "1R", live_p, &["j2", "l2"]),
                au("p3"),
                au("p4"),
                day(PresentRemote, "1R", "present in 2 of 4 scheduled periods (at least half)", &["j1", "l1", "j2", "l2"]),
            ]),
        case("remote, live in 3 of 4 periods", &p, &g9)
            .facts(live("j1", "l1", "p1", "08:00", "09:00"))
            .facts(live("j2", "l2", "p2", "09:00", "10:00"))
            .facts(live("j3", "l3", "p3", "10:00", "11:00"))
            .want([
                sec("p1", PresentRemote, "1R", live_p, &["j1", "l1"]),
                sec("p2", PresentRemote, "1R", live_p, &["j2", "l2"]),
                sec("p3", PresentRemote, "1R", live_p, &["j3", "l3"]),
                au("p4"),
                day(PresentRemote, "1R", "present in 3 of 4", &["j1", "l1", "j2", "l2", "j3", "l3"]),
            ]),
        // cms.md rule 3: "at SECTION scope, 50% of the period's minutes in
        // that section": 30 of 60 is enough, 29 is not. The DAY: "Present in
        // fewer than half gives AE or AU".
        case("remote, 30 minutes of period 1", &p, &g9).facts(live("j1", "l1", "p1", "08:00", "08:30")).want([
            sec("p1", PresentRemote, "1R", "live 30 of 60 minutes of the period", &["j1", "l1"]).minutes(30),
            au("p2"),
            au("p3"),
            au("p4"),
            day(AbsentUnexcused, "AU", "absent: present in 1 of 4 scheduled periods (fewer than half)", &[]),
        ]),
        case("remote, 29 minutes of period 1", &p, &g9).facts(live("j1", "l1", "p1", "08:00", "08:29")).want([
            au("p1").minutes(29),
            au("p2"),
            au("p3"),
            au("p4"),
            day(AbsentUnexcused, "AU", "present in 0 of 4", &[]),
        ]),
        // cms.md: "At SECTION scope each rule reads with the period's meeting
        // as the window: ... live in that section": staying in period 1's
        // session through period 2 is not period 2.
        case("remote, in period 1's session through period 2", &p, &g9).facts(live("j1", "l1", "p1", "08:00", "10:00")).want([
            sec("p1", PresentRemote, "1R", live_p, &["j1", "l1"]),
            au("p2").minutes(0),
            au("p3"),
            au("p4"),
            day(AbsentUnexcused, "AU", "present in 1 of 4", &[]),
        ]),
        // cms.md rule 9 (cms-05): "a derived absent DAY with an ILLNESS report is AE".
        case("remote, 1 of 4 with an ILLNESS report", &p, &g9)
            .facts(live("j1", "l1", "p1", "08:00", "09:00"))
            .report(guardian("r", R::Illness))
            .want([
                sec("p1", PresentRemote, "1R", live_p, &["j1", "l1"]),
                sec("p2", AbsentExcused, "AE", "absent, excused: ILLNESS reported", &["r"]),
                sec("p3", AbsentExcused, "AE", "absent, excused: ILLNESS reported", &["r"]),
                sec("p4", AbsentExcused, "AE", "absent, excused: ILLNESS reported", &["r"]),
                day(AbsentExcused, "AE", "absent, excused: ILLNESS reported", &["r"]),
            ]),
        // cms.md rule 7: "on a remote day the student is present in it (1R)
        // with any engagement event in that section on D. A LOGIN is not one."
        case("asynchronous-only period 4: content access in it", &p, &g9_async)
            .facts(live("j1", "l1", "p1", "08:00", "09:00"))
            .fact(ev("c", ContentAccess, "20:00").sec("p4"))
            .want([
                sec("p1", PresentRemote, "1R", live_p, &["j1", "l1"]),
                au("p2"),
                au("p3"),
                sec("p4", PresentRemote, "1R", "asynchronous-only course: engaged with the course on the day", &["c"]),
                day(PresentRemote, "1R", "present in 2 of 4", &["j1", "l1", "c"]),
            ]),
        case("asynchronous-only period 4: a login in it", &p, &g9_async).fact(ev("l", Login, "20:00").sec("p4")).want([
            au("p1"),
            au("p2"),
            au("p3"),
            au("p4"),
            day(AbsentUnexcused, "AU", "present in 0 of 4", &[]),
        ]),
        case("asynchronous-only period 4: content access in another section", &p, &g9_async)
            .fact(ev("c", ContentAccess, "20:00").sec("p1"))
            .want([au("p1"), au("p2"), au("p3"), au("p4"), day(AbsentUnexcused, "AU", "present in 0 of 4", &[])]),
        // cms.md rule 1: "at SECTION scope, 50% of the period, whichever
        // section the door system named"; rule 10: "P only when the student
        // was present on site in at least half of the scheduled periods".
        case("in person, on site in 2 of 4 periods", &p, &g9_in)
            .fact(ev("ci", CheckIn, "08:00").sec("p3"))
            .fact(ev("co", CheckOut, "10:00").sec("p3"))
            .want([
                sec("p1", Present, "P", site_p, &["ci", "co"]),
                sec("p2", Present, "P", site_p, &["ci", "co"]),
                au("p3"),
                au("p4"),
                day(Present, "P", "present in 2 of 4", &["ci", "co"]),
            ]),
        // cms.md rule 10 (cms-07): "on site in 1 of 4 with no report: AU".
        case("in person, on site in 1 of 4 periods", &p, &g9_in).facts(on_site("ci", "co", "08:00", "09:00")).want([
            sec("p1", Present, "P", site_p, &["ci", "co"]),
            au("p2"),
            au("p3"),
            au("p4"),
            day(AbsentUnexcused, "AU", "present in 1 of 4", &[]),
        ]),
        // cms.md rule 10: "Present in at least half, but on site in fewer —
        // present off site in the rest, by ... a QUARANTINE / COVID /
        // DISCIPLINARY report — gives 1R".
        case("in person, on site in 1 of 4, QUARANTINE for the rest", &p, &g9_in)
            .facts(on_site("ci", "co", "08:00", "09:00"))
            .report(guardian("r", R::Quarantine))
            .want([
                sec("p1", Present, "P", site_p, &["ci", "co"]),
                sec("p2", PresentRemote, "1R", "present off-site: QUARANTINE reported", &["r"]),
                sec("p3", PresentRemote, "1R", "present off-site: QUARANTINE reported", &["r"]),
                sec("p4", PresentRemote, "1R", "present off-site: QUARANTINE reported", &["r"]),
                day(
                    PresentRemote,
                    "1R",
                    "present off site: on site in 1 of 4 scheduled periods (fewer than half), present in 4 of 4",
                    &["ci", "co", "r"],
                ),
            ]),
        // ... "by the live rule": on site in 2, live in 2 more: 2 of 4 on site is enough for P.
        case("in person, on site in 2 of 4, live in the other 2", &p, &g9_in)
            .facts(on_site("ci", "co", "08:00", "10:00"))
            .facts(live("j3", "l3", "p3", "10:00", "11:00"))
            .facts(live("j4", "l4", "p4", "11:00", "12:00"))
            .want([
                sec("p1", Present, "P", site_p, &["ci", "co"]),
                sec("p2", Present, "P", site_p, &["ci", "co"]),
                au("p3"),
                au("p4"),
                day(Present, "P", "present in 2 of 4", &["ci", "co"]),
            ]),
    ]);
}

// ================================================================ blocks (instruction-partners)

/// A fifth grader on Tuesdays: homeroom 08:30–09:30 (the morning session),
/// math 10:00–11:00, science 13:00–14:00.
fn ip_student() -> StudentRecord {
    student(
        GradeLevel::G5,
        vec![
            // Listed out of start order: the blocks are taken in start order.
            meets("sci", "t_s", &[Weekday::Tue], "13:00", "14:00"),
            meets("hr", "t_hr", &[Weekday::Tue], "08:30", "09:30"),
            meets("math", "t_m", &[Weekday::Tue], "10:00", "11:00"),
        ],
    )
}

fn hr() -> Vec<Fact> {
    live("jh", "lh", "hr", "08:30", "09:30")
}
fn math() -> Vec<Fact> {
    live("jm", "lm", "math", "10:00", "11:00")
}
fn sci() -> Vec<Fact> {
    live("js", "ls", "sci", "13:00", "14:00")
}

#[test]
fn blocks_day_categories() {
    let p = preset("instruction-partners");
    let s = ip_student();
    let d = cal(TUE, "08:00", "15:00", DayType::Full);
    let c = |name, student: &StudentRecord| case(name, &p, student).on(d.clone());
    check(vec![
        // instruction-partners.md rule 2: "ALL_DAY: every block attended", status PRESENT.
        c("all three blocks", &s).facts(hr()).facts(math()).facts(sci()).want([day(
            Present,
            "ALL_DAY",
            "ALL_DAY: attended 3 of 3 blocks (morning session attended)",
            &["jh", "lh", "jm", "lm", "js", "ls"],
        )
        .minutes(180)
        .att(AttendanceType::Virtual)]),
        // ... "MORNING_ONLY: the morning session attended, no block starting at or after 12:00 attended".
        c("morning and math, not the afternoon", &s).facts(hr()).facts(math()).want([day(
            Present,
            "MORNING_ONLY",
            "MORNING_ONLY: attended 2 of 3 blocks (morning session attended)",
            &["jh", "lh", "jm", "lm"],
        )
        .minutes(120)]),
        // ... "PARTIAL: some blocks attended, neither of the above".
        c("morning and the afternoon, not math", &s).facts(hr()).facts(sci()).want([day(
            Present,
            "PARTIAL",
            "PARTIAL: attended 2 of 3 blocks (morning session attended)",
            &["jh", "lh", "js", "ls"],
        )]),
        c("math and the afternoon, morning missed", &s).facts(math()).facts(sci()).want([day(
            Present,
            "PARTIAL",
            "PARTIAL: attended 2 of 3 blocks (morning session missed)",
            &["jm", "lm", "js", "ls"],
        )]),
        c("math only", &s).facts(math()).want([day(
            Present,
            "PARTIAL",
            "attended 1 of 3 blocks (morning session missed)",
            &["jm", "lm"],
        )]),
        // rule 3: "A student who joined the session late still attended it."
        c("joined the morning session 15 minutes before its end", &s)
            .facts(live("jh", "lh", "hr", "09:15", "09:45"))
            .want([day(Present, "MORNING_ONLY", "attended 1 of 3 blocks (morning session attended)", &["jh", "lh"]).minutes(15)]),
        // rule 1: "A block is attended when the student has live minutes inside it."
        c("joined at the end of the morning session", &s).facts(live("jh", "lh", "hr", "09:30", "09:45")).want([day(
            AbsentUnexcused,
            "ABSENT",
            "ABSENT: attended 0 of 3 blocks (morning session missed)",
            &[],
        )
        .minutes(0)]),
        c("content access during the morning session only", &s).fact(ev("c", ContentAccess, "08:45").sec("hr")).want([day(
            AbsentUnexcused,
            "ABSENT",
            "ABSENT: attended 0 of 3",
            &[],
        )]),
        // rule 2: "ABSENT: no block attended ... ABSENT_EXCUSED with an
        // excusable report for D, else ABSENT_UNEXCUSED".
        c("empty day", &s).want([day(AbsentUnexcused, "ABSENT", "ABSENT: attended 0 of 3", &[])]),
        c("empty day, ILLNESS", &s).report(guardian("r", R::Illness)).want([day(
            AbsentExcused,
            "ABSENT",
            "ABSENT: attended 0 of 3",
            &["r"],
        )]),
        c("empty day, OTHER", &s).report(guardian("r", R::Other)).want([day(AbsentUnexcused, "ABSENT", "ABSENT", &[])]),
        c("all day with an ILLNESS report stays present", &s)
            .report(guardian("r", R::Illness))
            .facts(hr())
            .facts(math())
            .facts(sci())
            .want([day(Present, "ALL_DAY", "ALL_DAY", &["jh", "lh", "jm", "lm", "js", "ls"])]),
        // rule 1: "on an in-person day, on-site minutes"; rule 2: "The status
        // is PRESENT unless the day is ABSENT, whatever the mode. minutes is
        // the sum of the ... on-site minutes of the blocks."
        c("in person, on site all day", &in_person(s.clone())).facts(on_site("ci", "co", "08:00", "15:00")).want([day(
            Present,
            "ALL_DAY",
            "attended 3 of 3",
            &["ci", "co"],
        )
        .minutes(180)
        .att(AttendanceType::InPerson)]),
        c("in person, live but not on site", &in_person(s.clone())).facts(hr()).want([day(
            AbsentUnexcused,
            "ABSENT",
            "attended 0 of 3",
            &[],
        )]),
        // The rule's words name an asynchronous day.
        c("all three blocks on an ASYNC day", &s)
            .on(cal(TUE, "08:00", "15:00", DayType::Async))
            .facts(hr())
            .facts(math())
            .facts(sci())
            .want([day(
                Present,
                "ALL_DAY",
                "attended 3 of 3 blocks (morning session attended) on an asynchronous day",
                &["jh", "lh", "jm", "lm", "js", "ls"],
            )]),
        // rule 1: "A day with no blocks gets no determination."
        c("a Wednesday without blocks", &s).on(cal(WED, "08:00", "15:00", DayType::Full)).want([]),
    ]);
}

#[test]
fn blocks_morning_afternoon_and_async_sections() {
    let p = preset("instruction-partners");
    let d = cal(TUE, "08:00", "15:00", DayType::Full);
    let c = |name, student: &StudentRecord| case(name, &p, student).on(d.clone());
    // Homeroom 08:30, a block at 11:00 and one at exactly 12:00.
    let noon = student(
        GradeLevel::G5,
        vec![
            meets("hr", "t_hr", &[Weekday::Tue], "08:30", "09:30"),
            meets("late", "t_l", &[Weekday::Tue], "11:00", "11:45"),
            meets("pm", "t_p", &[Weekday::Tue], "12:00", "12:45"),
        ],
    );
    // Homeroom, an asynchronous-only art section at 10:00, science at 13:00.
    let art = student(
        GradeLevel::G5,
        vec![
            meets("hr", "t_hr", &[Weekday::Tue], "08:30", "09:30"),
            async_only(meets("art", "t_a", &[Weekday::Tue], "10:00", "11:00")),
            meets("sci", "t_s", &[Weekday::Tue], "13:00", "14:00"),
        ],
    );
    // Homeroom on Monday, Wednesday and Friday only: Tuesday's morning session is math.
    let mwf = student(
        GradeLevel::G5,
        vec![
            meets("hr", "t_hr", &[Weekday::Mon, Weekday::Wed, Weekday::Fri], "08:30", "09:30"),
            meets("math", "t_m", &[Weekday::Tue], "10:00", "11:00"),
            meets("sci", "t_s", &[Weekday::Tue], "13:00", "14:00"),
        ],
    );
    check(vec![
        // instruction-partners.md rule 2 (checked by -02): "an 11:00 block is still morning".
        c("morning and the 11:00 block", &noon)
            .facts(live("jh", "lh", "hr", "08:30", "09:30"))
            .facts(live("jl", "ll", "late", "11:00", "11:45"))
            .want([day(Present, "MORNING_ONLY", "attended 2 of 3", &["jh", "lh", "jl", "ll"])]),
        // ... "no block starting at or after 12:00 attended": a 12:00 block is the afternoon.
        c("morning and the 12:00 block", &noon)
            .facts(live("jh", "lh", "hr", "08:30", "09:30"))
            .facts(live("jp", "lp", "pm", "12:00", "12:45"))
            .want([day(Present, "PARTIAL", "attended 2 of 3", &["jh", "lh", "jp", "lp"])]),
        // rule 1: "a section with course_type = ASYNC_ONLY is not synchronous
        // and is not a block" (-06: "live in the morning and the afternoon block is ALL_DAY, 2 of 2").
        c("async-only art is not a block", &art).facts(live("jh", "lh", "hr", "08:30", "09:30")).facts(sci()).want([day(
            Present,
            "ALL_DAY",
            "ALL_DAY: attended 2 of 2 blocks",
            &["jh", "lh", "js", "ls"],
        )]),
        // rule 1: "a homeroom that meets only on Monday, Wednesday and Friday is not Tuesday's morning session".
        c("Tuesday's morning session is math", &mwf).facts(live("jm", "lm", "math", "10:00", "11:00")).want([day(
            Present,
            "MORNING_ONLY",
            "attended 1 of 2 blocks (morning session attended)",
            &["jm", "lm"],
        )]),
        c("Tuesday: science only", &mwf).facts(sci()).want([day(
            Present,
            "PARTIAL",
            "attended 1 of 2 blocks (morning session missed)",
            &["js", "ls"],
        )]),
    ]);
}

// ================================================================ weekly_contacts (nmped)

/// A seventh grader: homeroom every weekday, math Monday/Wednesday/Friday,
/// PE on Tuesdays.
fn nm_student() -> StudentRecord {
    student(
        GradeLevel::G7,
        vec![
            meets("hr", "t_hr", WEEKDAYS, "08:00", "08:30"),
            meets("math", "t_m", &[Weekday::Mon, Weekday::Wed, Weekday::Fri], "09:00", "10:00"),
            meets("pe", "t_pe", &[Weekday::Tue], "10:00", "11:00"),
        ],
    )
}

/// Monday to Friday of the week, 08:00–14:00.
fn week_calendar() -> Vec<CalendarDay> {
    ["2020-10-05", TUE, WED, THU, "2020-10-09"].iter().map(|d| cal(d, "08:00", "14:00", DayType::Full)).collect()
}

/// One class's WEEK outcome: section, code, contacts, evidence.
type WeekRow = (&'static str, &'static str, i32, Vec<&'static str>);

fn run_week(student: &StudentRecord, facts: &[Fact]) -> Vec<(String, String, i32, Vec<String>)> {
    let p = preset("nmped");
    let school = school(&p, week_calendar());
    // Each fact in the record of its own date, as the store keeps them.
    let mut records: Vec<(NaiveDate, DayRecord)> = Vec::new();
    for f in facts {
        match records.iter_mut().find(|(d, _)| *d == f.local_date) {
            Some((_, r)) => r.facts.push(f.clone()),
            None => records.push((f.local_date, DayRecord { facts: vec![f.clone()], reports: vec![] })),
        }
    }
    let days: Vec<(NaiveDate, &DayRecord)> = records.iter().map(|(d, r)| (*d, r)).collect();
    evaluate_week(&school, student, date(MON), &days)
        .iter()
        .map(|o| {
            assert_eq!((o.scope, o.status, o.date), (Scope::Week, Status::Contacts, date(MON)));
            assert_eq!(o.attendance_type, Some(AttendanceType::Virtual));
            assert_eq!(
                o.rule.to_string(),
                format!("{} day(s) with contact for the class, Monday to Sunday: {}", o.contacts.unwrap(), o.code)
            );
            let evidence = o.evidence.iter().map(|e| e.to_string()).collect();
            (o.section.unwrap_or_default().to_string(), o.code.to_string(), o.contacts.unwrap(), evidence)
        })
        .collect()
}

#[test]
fn weekly_contacts_per_class() {
    let s = nm_student();
    let none = |sec: &'static str| -> WeekRow { (sec, "CNC", 0, vec![]) };
    let m = |id, kind, d, t| ev_on(id, kind, d, t).sec("math");
    let rows: Vec<(&str, StudentRecord, Vec<Fact>, Vec<WeekRow>)> = vec![
        // nmped.md rule 4: "0 contacts → CNC"; rule 1: one WEEK per class
        // meeting on a remote day, and the homeroom.
        ("no contacts", s.clone(), vec![], vec![none("hr"), none("math"), none("pe")]),
        // nmped.md rule 2: "an event without one (a plain platform login) counts for the homeroom section only".
        (
            "a plain login on Monday",
            s.clone(),
            vec![ev_on("l", Login, MON, "08:00")],
            vec![("hr", "C1", 1, vec!["l"]), none("math"), none("pe")],
        ),
        // nmped.md rule 2: "Several indicators on one date are one contact".
        (
            "two math indicators on Monday",
            s.clone(),
            vec![m("s", Submission, MON, "09:00"), m("c", ContentAccess, MON, "12:00")],
            vec![none("hr"), ("math", "C1", 1, vec!["s"]), none("pe")],
        ),
        // nmped.md rule 4: "2–3 → C23".
        (
            "math on two dates",
            s.clone(),
            vec![m("s", Submission, MON, "09:00"), m("c", ContentAccess, TUE, "12:00")],
            vec![none("hr"), ("math", "C23", 2, vec!["s", "c"]), none("pe")],
        ),
        (
            "math on three dates",
            s.clone(),
            vec![m("s", Submission, MON, "09:00"), m("c", ContentAccess, TUE, "12:00"), m("j", LiveJoin, WED, "09:00")],
            vec![none("hr"), ("math", "C23", 3, vec!["s", "c", "j"]), none("pe")],
        ),
        // nmped.md rule 4: "4 or more → C45"; rule 2: "Monday through Sunday (weekends count)".
        (
            "math on four dates, the last on Sunday",
            s.clone(),
            vec![
                m("s", Submission, MON, "09:00"),
                m("c", ContentAccess, TUE, "12:00"),
                m("j", LiveJoin, WED, "09:00"),
                m("msg", Message, SUN, "23:30").dir(FromStudent),
            ],
            vec![none("hr"), ("math", "C45", 4, vec!["s", "c", "j", "msg"]), none("pe")],
        ),
        // nmped.md rule 3: "A message the teacher sent alone shows nothing the student did and is not a contact".
        (
            "only the teacher wrote",
            s.clone(),
            vec![m("msg", Message, MON, "09:00").dir(FromStaff)],
            vec![none("hr"), none("math"), none("pe")],
        ),
        // nmped.md rule 3: "MESSAGE from the student or the guardian".
        (
            "the guardian wrote",
            s.clone(),
            vec![m("msg", Message, MON, "09:00").dir(FromGuardian)],
            vec![none("hr"), ("math", "C1", 1, vec!["msg"]), none("pe")],
        ),
        // nmped.md rule 3: "LOGOUT, LIVE_LEAVE, CHECK_IN and CHECK_OUT are not indicators".
        (
            "logout, leave, check-in and check-out",
            s.clone(),
            vec![
                m("o", Logout, MON, "09:00"),
                m("lv", LiveLeave, TUE, "09:00"),
                m("ci", CheckIn, WED, "09:00"),
                m("co", CheckOut, THU, "09:00"),
            ],
            vec![none("hr"), none("math"), none("pe")],
        ),
        // nmped.md rule 2: the week is "Monday through Sunday": the next Monday is another week.
        (
            "math on the next Monday",
            s.clone(),
            vec![m("s", Submission, NEXT_MON, "00:00")],
            vec![none("hr"), none("math"), none("pe")],
        ),
        // nmped.md rule 1: "The classes are the student's enrollments that meet
        // on at least one of those remote days": PE meets on Tuesday only, in person.
        (
            "in person on Tuesdays: no WEEK for PE",
            in_mode(s.clone(), Mode::InPerson, &[Weekday::Tue]),
            vec![ev_on("c", ContentAccess, TUE, "10:30").sec("pe")],
            vec![none("hr"), none("math")],
        ),
        // nmped.md rule 1: "in which the student has at least one remote instructional day".
        ("in person all week: no WEEK", in_person(s.clone()), vec![m("s", Submission, MON, "09:00")], vec![]),
    ];
    let mut failures = Vec::new();
    for (name, student, facts, want) in &rows {
        let got = run_week(student, facts);
        let want: Vec<(String, String, i32, Vec<String>)> = want
            .iter()
            .map(|(s, c, n, e)| (s.to_string(), c.to_string(), *n, e.iter().map(|e| e.to_string()).collect()))
            .collect();
        if got != want {
            failures.push(format!("{name}:\n    want {want:?}\n     got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} rows differ:\n{}", failures.len(), rows.len(), failures.join("\n"));
}

#[test]
fn weekly_contacts_in_person_days() {
    let p = preset("nmped");
    let s = in_person(nm_student());
    const NOTHING: &str = "absent: no qualifying activity";
    check(vec![
        // nmped.md rule 6: "On an IN_PERSON day the student gets a DAY determination: P with a CHECK_IN on D".
        case("in person, checked in", &p, &s).fact(ev("ci", CheckIn, "08:05")).want([day(
            Present,
            "P",
            "in person: checked in on campus",
            &["ci"],
        )
        .att(AttendanceType::InPerson)]),
        // ... "else A (status ABSENT_EXCUSED with an excusable report, else
        // ABSENT_UNEXCUSED; the code is A either way)".
        case("in person, no check-in", &p, &s).fact(ev("c", ContentAccess, "08:05")).want([day(
            AbsentUnexcused,
            "A",
            NOTHING,
            &[],
        )]),
        case("in person, ILLNESS", &p, &s).report(guardian("r", R::Illness)).want([day(
            AbsentExcused,
            "A",
            "absent, excused: ILLNESS reported",
            &["r"],
        )]),
        // nmped.md: "Remote days: WEEK per class": a remote day has no DAY determination.
        case("a remote day", &p, &nm_student()).fact(ev("c", ContentAccess, "08:05")).want([]),
    ]);
}

// ================================================================ daily_engagement

#[test]
fn daily_engagement() {
    let p = preset("daily-engagement");
    let s = student(GradeLevel::G3, vec![]);
    const FOUND: &str = "engagement event on the day";
    const NOTHING: &str = "absent: no qualifying activity";
    // README.md, engagement event: "SUBMISSION, MESSAGE from the student
    // (direction = FROM_STUDENT), LIVE_JOIN, CONTENT_ACCESS, RECORDING_VIEW,
    // TWO_WAY_CONTACT, OFFLINE_WORK_RETURNED. Not LOGIN, LOGOUT, LIVE_LEAVE,
    // CHECK_IN or CHECK_OUT, and not a message from a guardian or from staff."
    let mut rows = vec![case("empty day", &p, &s).want([day(AbsentUnexcused, "AU", NOTHING, &[])])];
    for kind in [Submission, LiveJoin, ContentAccess, RecordingView, TwoWayContact, OfflineWorkReturned] {
        rows.push(case("an engagement event", &p, &s).fact(ev("e", kind, "09:00")).want([day(Present, "P", FOUND, &["e"])]));
    }
    rows.push(case("a message from the student", &p, &s).fact(ev("e", Message, "09:00").dir(FromStudent)).want([day(
        Present,
        "P",
        FOUND,
        &["e"],
    )]));
    for kind in [Login, Logout, LiveLeave, CheckIn, CheckOut] {
        rows.push(case("not an engagement event", &p, &s).fact(ev("e", kind, "09:00")).want([day(
            AbsentUnexcused,
            "AU",
            NOTHING,
            &[],
        )]));
    }
    for d in [FromGuardian, FromStaff] {
        rows.push(case("a message from a guardian or from staff", &p, &s).fact(ev("e", Message, "09:00").dir(d)).want([day(
            AbsentUnexcused,
            "AU",
            NOTHING,
            &[],
        )]));
    }
    rows.push(case("an event of the day before", &p, &s).fact(ev_on("e", ContentAccess, MON, "23:59")).want([day(
        AbsentUnexcused,
        "AU",
        NOTHING,
        &[],
    )]));
    rows.push(case("ILLNESS", &p, &s).report(guardian("r", R::Illness)).want([day(
        AbsentExcused,
        "AE",
        "absent, excused: ILLNESS reported",
        &["r"],
    )]));
    check(rows);
}

/// cms.md rule 5: a guardian's hardship report is verified "on D or D + 1",
/// so cms reads D+1's record; no other preset does.
#[test]
fn only_cms_reads_the_next_day() {
    for id in ["mmsd", "mississippi", "cms", "instruction-partners", "nmped", "daily-engagement"] {
        assert_eq!(reads_next_day(&preset(id)), id == "cms", "{id}");
    }
}

// ================================================================ more rows across families

#[test]
fn half_day_hardship_per_period() {
    let p = preset("cms");
    let g9 = cms_9();
    check(vec![
        // cms.md rule 4: "two-way communication with a teacher on D (at SECTION
        // scope, that period's teacher)"; "At SECTION scope the submission,
        // engagement or recording must be in that section."
        case("staff HARDSHIP: content in p1, a call with p2's teacher, p3's work on D+1", &p, &g9)
            .report(by_staff("r", R::Hardship))
            .fact(ev("c", ContentAccess, "08:30").sec("p1"))
            .fact(ev("call", TwoWayContact, "12:30").staff("t2"))
            .fact(ev_on("s", Submission, WED, "20:00").sec("p3").assigned(TUE))
            .want([
                sec("p1", PresentRemote, "1R", "engaged with course content on the day", &["r", "c"]),
                sec("p2", PresentRemote, "1R", "two-way communication with a teacher on the day", &["r", "call"]),
                sec("p3", PresentRemote, "1R", "work for the day submitted within the allowance", &["r", "s"]),
                sec("p4", AbsentUnexcused, "AU", NOTHING, &[]),
                day(PresentRemote, "1R", "present in 3 of 4", &["r", "c", "call", "s"]),
            ]),
    ]);
}

// cms.md rule 10 says of the derived in-person DAY: "Present in at least
// half, but on site in fewer — present off site in the rest, by the live
// rule, the hardship path or a QUARANTINE / COVID / DISCIPLINARY report —
// gives 1R." Read that way, this row is p1 P, p2–p4 1R by live minutes and
// the DAY 1R. The engine, following rule 2 ("An in-person day without enough
// on-site minutes is 1R when an absence report for D gives QUARANTINE, COVID
// or DISCIPLINARY. Otherwise it is absent"), counts no live minutes on an
// in-person day: p2–p4 AU and the DAY AU. The two sentences of the page
// disagree; the row is left out of the table until the page says which holds:
//
//     case("in person, on site in p1, live in p2-p4", &p, &g9_in)
//         .facts(on_site("ci", "co", "08:00", "09:00"))
//         .facts(live("j2", "l2", "p2", "09:00", "10:00"))
//         .facts(live("j3", "l3", "p3", "10:00", "11:00"))
//         .facts(live("j4", "l4", "p4", "11:00", "12:00"))
//         .want([sec("p1", Present, ...), sec("p2", PresentRemote, "1R", ...), ...,
//                day(PresentRemote, "1R", "present off site: on site in 1 of 4", ...)]),

#[test]
fn by_mode_hybrid_week() {
    let p = preset("mississippi");
    // In person on Mondays and Wednesdays, online the other days.
    let hybrid = in_mode(ms_student(), Mode::InPerson, &[Weekday::Mon, Weekday::Wed]);
    let d420 = |d| cal(d, "08:00", "15:00", DayType::Full);
    check(vec![
        // mississippi.md rule 1: "Each day is judged by the student's mode
        // that day ... Only the evidence of the day's mode counts".
        case("hybrid, Tuesday online: login and engagement", &p, &hybrid)
            .on(d420(TUE))
            .fact(ev("l", Login, "08:00"))
            .fact(ev("c", ContentAccess, "08:05"))
            .want([day(Present, "PV", "authenticated (login) and engaged", &["l", "c"]).att(AttendanceType::Virtual)]),
        case("hybrid, Wednesday in person: login and engagement", &p, &hybrid)
            .on(d420(WED))
            .fact(ev_on("l", Login, WED, "08:00"))
            .fact(ev_on("c", ContentAccess, WED, "08:05"))
            .want([day(AbsentUnexcused, "AU", "absent", &[]).att(AttendanceType::InPerson)]),
        case("hybrid, Wednesday in person: on site all day", &p, &hybrid)
            .on(d420(WED))
            .fact(ev_on("ci", CheckIn, WED, "07:55"))
            .fact(ev_on("co", CheckOut, WED, "15:05"))
            .want([day(Present, "P", "on site 420 of 420", &["ci", "co"]).att(AttendanceType::InPerson)]),
        // README.md, engagement event: "not a message from a guardian or from staff".
        case("online, a login and a guardian's message", &p, &ms_student())
            .on(d420(TUE))
            .fact(ev("l", Login, "08:00"))
            .fact(ev("m", Message, "08:05").dir(FromGuardian).staff("t_eng"))
            .want([day(AbsentUnexcused, "AU", "absent", &[])]),
    ]);
}

#[test]
fn weekly_contacts_homeroom_and_foreign_sections() {
    // Homeroom only on Tuesdays, and the student is in person on Tuesdays.
    let mut s = nm_student();
    s.enrollments[0].meetings[0].weekdays = vec![Weekday::Tue];
    let s = in_mode(s, Mode::InPerson, &[Weekday::Tue]);
    let got = run_week(&s, &[ev_on("b", Submission, MON, "09:00").sec("band"), ev_on("l", Login, THU, "09:00")]);
    let got: Vec<(&str, &str, i32, Vec<&str>)> =
        got.iter().map(|(s, c, n, e)| (s.as_str(), c.as_str(), *n, e.iter().map(String::as_str).collect())).collect();
    // nmped.md rule 1: "The classes are the student's enrollments that meet on
    // at least one of those remote days, and the homeroom section (when the
    // student is enrolled in it)": the homeroom has its WEEK though it meets
    // only on the in-person Tuesday; PE, Tuesday only, has none. Rule 2: "An
    // event with a section_id counts for that class": a section the student is
    // not in counts for no class; a plain login counts for the homeroom.
    assert_eq!(got, vec![("hr", "C1", 1, vec!["l"]), ("math", "CNC", 0, vec![])]);
}

/// cms.md rule 5: "A guardian's report that staff have not verified yet, for
/// a remote day that is still open, raises at once one TEACHER_FOLLOW_UP to
/// the homeroom teacher ... A staff report raises none."
#[test]
fn hardship_awaiting_verification() {
    let cms = preset("cms");
    let remote = cms_k5();
    let rows: Vec<(&str, &Policy, StudentRecord, Vec<ReportFact>, Vec<Fact>, Vec<Fact>, Option<&str>)> = vec![
        ("guardian HARDSHIP, nothing yet", &cms, remote.clone(), vec![guardian("r", R::Hardship)], vec![], vec![], Some("r")),
        ("guardian CONNECTIVITY", &cms, remote.clone(), vec![guardian("r", R::Connectivity)], vec![], vec![], Some("r")),
        ("staff HARDSHIP", &cms, remote.clone(), vec![by_staff("r", R::Hardship)], vec![], vec![], None),
        ("guardian ILLNESS is no hardship", &cms, remote.clone(), vec![guardian("r", R::Illness)], vec![], vec![], None),
        (
            "guardian HARDSHIP, verified by a call on D",
            &cms,
            remote.clone(),
            vec![guardian("r", R::Hardship)],
            vec![ev("call", TwoWayContact, "10:00").staff("t_hr")],
            vec![],
            None,
        ),
        (
            "guardian HARDSHIP, verified by a call on D+1",
            &cms,
            remote.clone(),
            vec![guardian("r", R::Hardship)],
            vec![],
            vec![ev_on("call", TwoWayContact, WED, "10:00").staff("t_hr")],
            None,
        ),
        (
            "guardian HARDSHIP, only the guardian wrote",
            &cms,
            remote.clone(),
            vec![guardian("r", R::Hardship)],
            vec![ev("m", Message, "10:00").dir(FromGuardian).staff("t_hr")],
            vec![],
            Some("r"),
        ),
        // cms.md rule 4: the hardship path (and so its verification) is for remote days.
        (
            "guardian HARDSHIP on an in-person day",
            &cms,
            in_person(remote.clone()),
            vec![guardian("r", R::Hardship)],
            vec![],
            vec![],
            None,
        ),
    ];
    let no_verify = cms_policy(false);
    let mmsd = preset("mmsd");
    let more: Vec<(&str, &Policy, StudentRecord, Vec<ReportFact>, Vec<Fact>, Vec<Fact>, Option<&str>)> = vec![
        // cms.md rule 5: "verify_hardship = true (false: a report counts as made, and no follow-up is raised)".
        ("verify_hardship = false", &no_verify, remote.clone(), vec![guardian("r", R::Hardship)], vec![], vec![], None),
        ("not a half_day policy", &mmsd, remote.clone(), vec![guardian("r", R::Hardship)], vec![], vec![], None),
    ];
    let day = cal(TUE, "08:00", "14:00", DayType::Full);
    for (name, policy, student, reports, facts, next, want) in rows.into_iter().chain(more) {
        let school = school(policy, vec![day.clone()]);
        let record = DayRecord { facts, reports };
        let next = DayRecord { facts: next, reports: vec![] };
        let input = DayInput { school: &school, day: &day, student: &student, record: &record, next: Some(&next) };
        assert_eq!(input.unverified_hardship().map(|r| r.report_id.as_str()), want, "{name}");
    }
}

/// Which close finalizes a window: the `[finalize]` of each preset by the day's mode.
#[test]
fn closes_by_mode() {
    let cases: Vec<(&str, &str, StudentRecord, FinalizeKey)> = vec![
        // cms.md rule 11: "A remote day ... is FINAL at local midnight at the
        // end of D + 1. An in-person day is FINAL at the end of D."
        ("cms", "remote", cms_k5(), FinalizeKey::DayEnd(1)),
        ("cms", "in person", in_person(cms_k5()), FinalizeKey::DayEnd(0)),
        // mississippi.md: "In-person and online days: end of D. ASYNC_OFFLINE
        // and LEARNING_PACKETS days: end of the Sunday of D's week."
        ("mississippi", "online", ms_student(), FinalizeKey::DayEnd(0)),
        ("mississippi", "in person", in_person(ms_student()), FinalizeKey::DayEnd(0)),
        ("mississippi", "packets", in_mode(ms_student(), Mode::LearningPackets, ALL_DAYS), FinalizeKey::WeekEnd),
        ("mississippi", "offline", in_mode(ms_student(), Mode::AsyncOffline, ALL_DAYS), FinalizeKey::WeekEnd),
        // mmsd.md rule 7: "Every window is FINAL at local midnight at the end of D".
        ("mmsd", "remote", mmsd_k5(), FinalizeKey::DayEnd(0)),
        // instruction-partners.md: "Final: The end of the school day".
        ("instruction-partners", "remote", ip_student(), FinalizeKey::SchoolDayEnd),
        // nmped.md rule 6: in-person days "FINAL at the end of D".
        ("nmped", "in person", in_person(nm_student()), FinalizeKey::DayEnd(0)),
    ];
    for (id, mode, student, want) in cases {
        let c = case("closes", &preset(id), &student).on(cal(TUE, "08:00", "15:00", DayType::Full)).facts(hr());
        let school = school(&c.policy, vec![c.day.clone()]);
        let record = DayRecord { facts: c.facts.clone(), reports: vec![] };
        let input = DayInput { school: &school, day: &c.day, student: &c.student, record: &record, next: None };
        let outcomes = evaluate_day(&input);
        assert!(!outcomes.is_empty(), "{id} {mode}: no outcome");
        for o in outcomes {
            assert_eq!(o.closes_by, want, "{id} {mode}");
        }
    }
    // nmped.md rule 5: "A WEEK determination is FINAL on the following Monday at 16:00 local."
    let p = preset("nmped");
    let school = school(&p, week_calendar());
    let student = nm_student();
    let weeks = evaluate_week(&school, &student, date(MON), &[]);
    assert!(!weeks.is_empty());
    for o in weeks {
        assert_eq!(o.closes_by, FinalizeKey::NextWeek(Weekday::Mon.index(), 16 * 60));
    }
}

#[test]
fn more_boundaries() {
    let d = cal(TUE, "08:00", "15:00", DayType::Full);
    let ip = preset("instruction-partners");
    let ms = preset("mississippi");
    let mmsd = preset("mmsd");
    let packets = in_mode(ms_student(), Mode::LearningPackets, ALL_DAYS);
    check(vec![
        // instruction-partners.md rule 1: "A block is attended when the student
        // has live minutes inside it": one minute of the morning session is enough.
        case("the last minute of the morning session", &ip, &ip_student())
            .on(d.clone())
            .facts(live("jh", "lh", "hr", "09:29", "09:45"))
            .want([day(Present, "MORNING_ONLY", "attended 1 of 3 blocks (morning session attended)", &["jh", "lh"]).minutes(1)]),
        // mississippi.md rule 5: "a school date no later than the Sunday of D's
        // week": work for Tuesday handed in on Monday counts.
        case("packets for Tuesday returned on Monday", &ms, &packets)
            .fact(ev_on("w", OfflineWorkReturned, MON, "15:00").assigned(TUE))
            .want([day(Present, "PV", "work for the day returned by the end of its week", &["w"])]),
        // mmsd.md rule 3: "a submission for D made later ... do[es] not count", at SECTION scope too.
        case("grade 9: science work for D made on D+1", &mmsd, &mmsd_9())
            .fact(ev_on("s", Submission, WED, "07:00").sec("sci").assigned(TUE))
            .want([sec("math", AbsentUnexcused, "AU", NOTHING, &[]), sec("sci", AbsentUnexcused, "AU", NOTHING, &[])]),
        // mmsd.md rule 4: "with the student or with the guardian, at every grade".
        case("grade 9: the guardian and the science teacher exchange messages", &mmsd, &mmsd_9())
            .fact(ev("m_in", Message, "12:00").dir(FromGuardian).sec("sci"))
            .fact(ev("m_out", Message, "12:30").dir(FromStaff).sec("sci"))
            .want([
                sec("math", AbsentUnexcused, "AU", NOTHING, &[]),
                sec("sci", Present, "P", "two-way communication with the class teacher", &["m_in", "m_out"]),
            ]),
    ]);
    // nmped.md rule 2: "Monday through Sunday (weekends count)".
    let got = run_week(&nm_student(), &[ev_on("c", ContentAccess, SAT, "11:00").sec("math")]);
    assert_eq!(got[1], ("math".to_string(), "C1".to_string(), 1, vec!["c".to_string()]));
}

// ---------------------------------------------------------------- explanations

mod explanations {
    use super::*;
    use crate::eval::explain::{explain_day, explain_week};

    type Explained = crate::eval::explain::Explained;

    /// Leaked: the outcomes borrow from what they were decided with.
    fn explain_one(
        s: School,
        st: StudentRecord,
        facts: Vec<Fact>,
        reports: Vec<ReportFact>,
    ) -> Vec<(Outcome<'static>, Explained)> {
        let s: &'static School = Box::leak(Box::new(s));
        let st: &'static StudentRecord = Box::leak(Box::new(st));
        let record: &'static DayRecord = Box::leak(Box::new(DayRecord { facts, reports }));
        let input = DayInput { school: s, day: s.instructional(date(TUE)).unwrap(), student: st, record, next: None };
        evaluate_day(&input)
            .into_iter()
            .map(|o| {
                let e = explain_day(&input, &o);
                (o, e)
            })
            .collect()
    }

    /// mmsd: an absence says what each of the three rules looked for, and
    /// that content views are not attendance under this policy.
    #[test]
    fn an_absence_names_what_was_looked_for_and_what_was_seen() {
        let p = preset("mmsd");
        let s = school(&p, vec![cal(TUE, "08:00", "14:30", DayType::Full)]);
        let st = student(
            GradeLevel::G2,
            vec![meets("hr", "t_hr", WEEKDAYS, "08:00", "14:30"), specials(meets("art", "t_art", WEEKDAYS, "10:00", "10:45"))],
        );
        let facts = vec![
            ev("c1", ContentAccess, "09:12").sec("hr"),
            ev("c2", ContentAccess, "11:00").sec("hr"),
            ev("m1", Message, "12:00").sec("hr").dir(Direction::FromStudent),
        ];
        let out = explain_one(s, st, facts, vec![]);
        let (o, e) = &out[0];
        assert_eq!(o.status, Status::AbsentUnexcused);
        assert!(e.evidence_detail.is_empty());
        assert_eq!(e.looked_for[0], "a live session on Tue Oct 6");
        assert!(
            e.looked_for[1].starts_with("a submission of work assigned for Tue Oct 6, made by the end of"),
            "{:?}",
            e.looked_for
        );
        assert_eq!(
            e.looked_for[2],
            "two-way communication with the homeroom teacher (t_hr) and every specials teacher of the day (t_art) on Tue Oct 6"
        );
        assert_eq!(e.seen.len(), 2, "{:?}", e.seen);
        assert_eq!(
            (e.seen[0].kind.as_str(), e.seen[0].count, e.seen[0].first_local_time.as_str()),
            ("CONTENT_ACCESS", 2, "2020-10-06 09:12")
        );
        assert_eq!(e.seen[0].why_not, "the mmsd policy does not count content views as attendance");
        assert!(e.seen[1].why_not.contains("two-way"), "{:?}", e.seen[1]);
    }

    /// A present day carries its evidence in detail, the teacher taken from
    /// the section when the event names none; nothing is looked for.
    #[test]
    fn a_present_day_details_its_evidence() {
        let p = preset("mmsd");
        let s = school(&p, vec![cal(TUE, "08:00", "14:30", DayType::Full)]);
        let st = student(GradeLevel::G2, vec![meets("hr", "t_hr", WEEKDAYS, "08:00", "14:30")]);
        let mut join = ev("j1", LiveJoin, "08:05").sec("hr").session("m-1");
        join.source = Some("zoom".into());
        let out = explain_one(s, st, vec![join, ev("c1", ContentAccess, "09:00").sec("hr")], vec![]);
        let (o, e) = &out[0];
        assert_eq!(o.status, Status::Present);
        assert!(e.looked_for.is_empty() && e.seen.is_empty());
        let d = &e.evidence_detail[0];
        assert_eq!((d.id.as_str(), d.kind.as_str(), d.local_time.as_deref()), ("j1", "LIVE_JOIN", Some("2020-10-06 08:05")));
        assert_eq!(
            (d.source.as_deref(), d.section_id.as_deref(), d.staff_id.as_deref()),
            (Some("zoom"), Some("hr"), Some("t_hr"))
        );
        assert_eq!(d.detail.as_deref(), Some("session m-1"));
    }

    /// An excused absence details its report.
    #[test]
    fn an_excused_absence_details_its_report() {
        let p = preset("mmsd");
        let s = school(&p, vec![cal(TUE, "08:00", "14:30", DayType::Full)]);
        let st = student(GradeLevel::G2, vec![meets("hr", "t_hr", WEEKDAYS, "08:00", "14:30")]);
        let out = explain_one(s, st, vec![], vec![guardian("r1", R::Illness)]);
        let (o, e) = &out[0];
        assert_eq!(o.status, Status::AbsentExcused);
        assert_eq!(e.evidence_detail[0].kind, "ABSENCE_REPORT");
        assert_eq!(e.evidence_detail[0].detail.as_deref(), Some("ILLNESS reported by a guardian"));
        assert!(!e.looked_for.is_empty());
    }

    /// nmped: a class with no contact in the week says what counted as one.
    #[test]
    fn a_week_without_contact_says_what_a_contact_is() {
        let p = preset("nmped");
        let s = school(&p, vec![cal(MON, "08:00", "15:00", DayType::Full), cal(TUE, "08:00", "15:00", DayType::Full)]);
        let st = student(GradeLevel::G7, vec![meets("math", "t_m", WEEKDAYS, "08:00", "09:00")]);
        let rec = DayRecord { facts: vec![ev("m1", Message, "09:30").sec("math").dir(Direction::FromStaff)], reports: vec![] };
        let days = [(date(TUE), &rec)];
        let outcomes = evaluate_week(&s, &st, date(MON), &days);
        let math = outcomes.iter().find(|o| o.section == Some("math")).unwrap();
        assert_eq!(math.contacts, Some(0));
        let e = explain_week(&s, &st, &days, math);
        assert!(e.looked_for[0].starts_with("a contact with math ("), "{:?}", e.looked_for);
        assert_eq!(e.seen.len(), 1);
        assert_eq!(e.seen[0].why_not, "messages count as a contact only sent from the student or from a guardian");
    }
}
