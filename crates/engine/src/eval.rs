//! The policies' rules as pure functions: one student's facts for a day (or a
//! week) in, outcomes out. No state, no clock: what is decided here depends
//! only on the facts, so the order in which they arrived cannot matter.

use std::borrow::Cow;

use chrono::{Duration, NaiveDate};
use rollcall_model::{
    ActivityKind, AttendanceType, CalendarDay, CourseType, DayType, Direction, Enrollment, LocalTime, Meeting, Mode, Reporter,
    Scope, Status, StudentRecord, Weekday,
};
use rollcall_policy::{AnyEvidence, BandScope, Blocks, ByMode, HalfDay, Policy, Rule, WeeklyContacts};

use crate::school::{monday_of, FinalizeKey, School};
use crate::state::{DayRecord, Fact, ReportFact};

/// One evaluated determination, before versioning. It borrows its strings
/// from the policy, the roster record and the facts: most evaluations find
/// nothing new to emit, and then nothing is copied.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome<'a> {
    pub scope: Scope,
    pub date: NaiveDate,
    pub section: Option<&'a str>,
    pub status: Status,
    pub code: &'a str,
    pub attendance_type: Option<AttendanceType>,
    pub minutes: Option<i64>,
    pub contacts: Option<i32>,
    pub category: Option<&'a str>,
    pub rule: Why<'a>,
    pub evidence: Vec<&'a str>,
    /// Which close finalizes this window.
    pub closes_by: FinalizeKey,
    /// For a WEEK outcome, the days of the week (bit 0 Monday) with a
    /// contact for the class: a later fact on one of them changes nothing.
    pub contact_days: u8,
}

/// Why an outcome was reached, in words for the people who read a
/// determination. Kept as its numbers and written out only when the outcome
/// is emitted: most evaluations emit nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum Why<'a> {
    Text(Cow<'a, str>),
    /// Enough minutes of the day or the period, on site or live.
    Minutes {
        on_site: bool,
        minutes: i64,
        of: f64,
        what: &'static str,
        percent: f64,
    },
    /// The DAY derived from periods: present in at least half, or not.
    Periods {
        present: usize,
        of: usize,
        enough: bool,
    },
    /// An in-person DAY derived from periods, present in at least half but
    /// on site in fewer than half: present off site.
    PeriodsOffSite {
        on_site: usize,
        present: usize,
        of: usize,
    },
    /// The instruction-partners day category.
    Blocks {
        category: &'static str,
        attended: usize,
        of: usize,
        morning: bool,
        async_day: bool,
    },
    /// Contact days of a class in a week.
    Contacts {
        contacts: u32,
        code: &'a str,
    },
}

impl std::fmt::Display for Why<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Text(t) => f.write_str(t),
            Why::Minutes { on_site, minutes, of, what, percent } => {
                let how = if *on_site { "on site" } else { "live" };
                write!(f, "{how} {minutes} of {of} minutes of {what} (at least {percent}%)")
            }
            Why::Periods { present, of, enough: true } => {
                write!(f, "present in {present} of {of} scheduled periods (at least half)")
            }
            Why::Periods { present, of, enough: false } => {
                write!(f, "absent: present in {present} of {of} scheduled periods (fewer than half)")
            }
            Why::PeriodsOffSite { on_site, present, of } => write!(
                f,
                "present off site: on site in {on_site} of {of} scheduled periods (fewer than half), \
                 present in {present} of {of} (at least half)"
            ),
            Why::Blocks { category, attended, of, morning, async_day } => {
                let morning = if *morning { "attended" } else { "missed" };
                write!(f, "{category}: attended {attended} of {of} blocks (morning session {morning})")?;
                if *async_day {
                    f.write_str(" on an asynchronous day")?;
                }
                Ok(())
            }
            Why::Contacts { contacts, code } => {
                write!(f, "{contacts} day(s) with contact for the class, Monday to Sunday: {code}")
            }
        }
    }
}

impl<'a> From<&'a str> for Why<'a> {
    fn from(s: &'a str) -> Self {
        Why::Text(Cow::Borrowed(s))
    }
}

impl From<String> for Why<'_> {
    fn from(s: String) -> Self {
        Why::Text(Cow::Owned(s))
    }
}

impl Outcome<'_> {
    /// Decided before its window closes: a positive outcome can only be
    /// overturned by a correction, so it may be emitted at once.
    pub fn decided(&self) -> bool {
        self.status.is_present() || self.status == Status::Exempt || (self.contacts.unwrap_or(0) > 0)
    }
}

/// One student's day, as the rules read it.
pub struct DayInput<'a> {
    pub school: &'a School,
    pub day: &'a CalendarDay,
    pub student: &'a StudentRecord,
    pub record: &'a DayRecord,
    /// The record of the next calendar date, where a rule reads D+1
    /// (cms: a hardship verified on the day after); see [`reads_next_day`].
    pub next: Option<&'a DayRecord>,
}

/// Whether a policy's rules read the record of D+1 when deciding D: the
/// runtime then loads it, and re-decides D when D+1 changes.
pub fn reads_next_day(policy: &Policy) -> bool {
    matches!(&policy.rule, Rule::HalfDay(h) if h.verify_hardship)
}

/// A scheduled section meeting on a date.
#[derive(Debug, Clone)]
pub struct Block<'a> {
    pub enrollment: &'a Enrollment,
    pub meeting: &'a Meeting,
}

impl<'a> DayInput<'a> {
    fn date(&self) -> NaiveDate {
        self.day.date
    }
    fn policy(&self) -> &'a Policy {
        &self.school.policy
    }
    fn mode(&self) -> Mode {
        self.student.mode_on(self.date())
    }
    fn attendance_type(&self) -> AttendanceType {
        if self.mode() == Mode::InPerson {
            AttendanceType::InPerson
        } else {
            AttendanceType::Virtual
        }
    }
    fn closes_by(&self) -> FinalizeKey {
        let f = &self.policy().finalize;
        match self.mode() {
            Mode::InPerson => f.in_person_day.into(),
            m if m.is_offline() => f.offline_day.into(),
            _ => f.remote_day.into(),
        }
    }
    /// Facts that happened on the date.
    fn on_day(&self) -> impl Iterator<Item = &'a Fact> + '_ {
        let d = self.date();
        self.record.facts.iter().filter(move |f| f.local_date == d)
    }
    /// Submissions (and returned offline work) assigned for the date, made by the end of `by`.
    fn for_day(&self, by: NaiveDate) -> impl Iterator<Item = &'a Fact> + '_ {
        let d = self.date();
        self.record.facts.iter().filter(move |f| {
            f.assigned == Some(d)
                && f.local_date <= by
                && matches!(f.kind, ActivityKind::Submission | ActivityKind::OfflineWorkReturned)
        })
    }
    /// The section meetings scheduled on the date, in start-time order.
    pub fn blocks(&self) -> Vec<Block<'a>> {
        let wd = Weekday::of(self.date());
        let mut v: Vec<Block<'a>> = self
            .student
            .enrollments
            .iter()
            .flat_map(|e| {
                e.meetings.iter().filter(move |m| m.weekdays.contains(&wd)).map(move |m| Block { enrollment: e, meeting: m })
            })
            .collect();
        v.sort_by_key(|b| (b.meeting.start, b.meeting.end));
        v
    }
    fn staff_of(&self, f: &'a Fact) -> Option<&'a str> {
        if let Some(s) = &f.staff {
            return Some(s);
        }
        let section = f.section.as_deref()?;
        if let Some(e) = self.student.enrollment(section) {
            return Some(e.staff_id.as_str());
        }
        if self.student.homeroom_section_id.as_deref() == Some(section) {
            return self.student.homeroom_staff_id.as_deref();
        }
        None
    }
    /// Evidence of two-way communication on the date with `staff` (or with
    /// any staff member when `None`): a two-way contact, or a message from the
    /// student or guardian and one back from that staff member.
    fn two_way(&self, staff: Option<&str>) -> Option<Vec<&'a str>> {
        self.two_way_among(self.on_day(), staff)
    }
    /// `two_way` over the facts of one date.
    fn two_way_among(&self, facts: impl Iterator<Item = &'a Fact>, staff: Option<&str>) -> Option<Vec<&'a str>> {
        let matches = |f: &'a Fact| staff.is_none() || self.staff_of(f) == staff;
        let mut inbound: Vec<&Fact> = Vec::new();
        let mut outbound: Vec<&Fact> = Vec::new();
        for f in facts.filter(|f| matches(f)) {
            match (f.kind, f.direction) {
                (ActivityKind::TwoWayContact, _) => return Some(vec![f.event_id.as_str()]),
                (ActivityKind::Message, Some(Direction::FromStudent | Direction::FromGuardian)) => inbound.push(f),
                (ActivityKind::Message, Some(Direction::FromStaff)) => outbound.push(f),
                _ => {}
            }
        }
        for i in &inbound {
            let who = self.staff_of(i);
            if let Some(o) = outbound.iter().find(|o| self.staff_of(o) == who && who.is_some()) {
                return Some(vec![i.event_id.as_str(), o.event_id.as_str()]);
            }
        }
        None
    }
    /// Whether staff have verified a hardship report, and the events that
    /// show it: reported by STAFF, or two-way communication between a
    /// teacher and the student or guardian on D or D+1.
    fn hardship_verified(&self, r: &ReportFact) -> Option<Vec<&'a str>> {
        if r.reporter == Reporter::Staff {
            return Some(Vec::new());
        }
        let d1 = self.date().succ_opt()?;
        self.two_way(None).or_else(|| {
            let next = self.next?;
            self.two_way_among(next.facts.iter().filter(move |f| f.local_date == d1), None)
        })
    }
    /// cms: a guardian's hardship report for a remote day that no teacher
    /// has verified yet (the engine asks the homeroom teacher to verify it).
    pub fn unverified_hardship(&self) -> Option<&'a ReportFact> {
        let Rule::HalfDay(p) = &self.policy().rule else { return None };
        if !p.verify_hardship || self.mode() == Mode::InPerson {
            return None;
        }
        let hardship: Vec<&'a ReportFact> =
            self.record.reports.iter().filter(|r| p.hardship_reasons.contains(&r.reason)).collect();
        if hardship.iter().any(|r| self.hardship_verified(r).is_some()) {
            return None;
        }
        hardship.into_iter().find(|r| r.reporter == Reporter::Guardian)
    }
    fn absence(&self) -> (Status, &'a str, Why<'a>, Vec<&'a str>) {
        let p = self.policy();
        let excused = self.record.reports.iter().find(|r| p.excused_reasons.contains(&r.reason));
        match excused {
            Some(r) => (
                Status::AbsentExcused,
                &p.codes.absent_excused,
                format!("absent, excused: {} reported", r.reason).into(),
                vec![r.report_id.as_str()],
            ),
            None => (
                Status::AbsentUnexcused,
                &p.codes.absent_unexcused,
                "absent: no qualifying activity and no excusing report".into(),
                vec![],
            ),
        }
    }
    fn present_code(&self) -> (Status, &'a str) {
        let c = &self.policy().codes;
        if self.mode() == Mode::InPerson {
            (Status::Present, &c.present)
        } else {
            (c.remote_status, &c.present_remote)
        }
    }
    fn outcome(
        &self,
        scope: Scope,
        section: Option<&'a str>,
        status: Status,
        code: &'a str,
        rule: Why<'a>,
        evidence: Vec<&'a str>,
    ) -> Outcome<'a> {
        Outcome {
            scope,
            date: self.date(),
            section,
            status,
            code,
            attendance_type: Some(self.attendance_type()),
            minutes: None,
            contacts: None,
            category: None,
            rule,
            evidence,
            closes_by: self.closes_by(),
            contact_days: 0,
        }
    }
    fn present_or_absent(&self, scope: Scope, section: Option<&'a str>, found: Option<Found<'a>>) -> Outcome<'a> {
        match found {
            Some((rule, evidence)) => {
                let (status, code) = self.present_code();
                self.outcome(scope, section, status, code, rule, evidence)
            }
            None => {
                let (status, code, rule, evidence) = self.absence();
                self.outcome(scope, section, status, code, rule, evidence)
            }
        }
    }
    /// The UTC span of the school day.
    fn day_window(&self) -> (i64, i64) {
        self.school.span(self.date(), self.day.start, self.day.end)
    }
    fn meeting_window(&self, m: &Meeting) -> (i64, i64) {
        self.school.span(self.date(), m.start, m.end)
    }
}

/// Why a window counts as attended, and the events that show it.
type Found<'a> = (Why<'a>, Vec<&'a str>);

fn is_engagement(f: &Fact) -> bool {
    f.kind.is_engagement_kind() && (f.kind != ActivityKind::Message || f.direction == Some(Direction::FromStudent))
}

/// Minutes covered by the union of open/close intervals (LIVE_JOIN..LIVE_LEAVE
/// or CHECK_IN..CHECK_OUT) inside `window`, and the events that contributed.
/// Intervals pair within a live session (or a section when there is no
/// session id); an interval left open closes at the window's end; a leave that
/// knows its duration stands on its own.
pub fn covered_minutes<'f>(
    facts: impl Iterator<Item = &'f Fact>,
    open_kind: ActivityKind,
    close_kind: ActivityKind,
    window: (i64, i64),
) -> (i64, Vec<&'f str>) {
    covered_in(&intervals(facts, open_kind, close_kind), window)
}

/// An interval of presence: start, end (`None` while left open), the
/// opening event and the closing one.
type Interval<'f> = (i64, Option<i64>, &'f str, Option<&'f str>);

/// The intervals of `covered_minutes`, before any window: the same for
/// every block of a day, so the blocks pair their events once.
fn intervals<'f>(facts: impl Iterator<Item = &'f Fact>, open_kind: ActivityKind, close_kind: ActivityKind) -> Vec<Interval<'f>> {
    let mut evs: Vec<&Fact> = facts.filter(|f| f.kind == open_kind || f.kind == close_kind).collect();
    fn group(f: &Fact) -> &str {
        f.session.as_deref().or(f.section.as_deref()).unwrap_or_default()
    }
    evs.sort_by(|a, b| {
        (group(a), a.at, a.kind != open_kind, &a.event_id).cmp(&(group(b), b.at, b.kind != open_kind, &b.event_id))
    });
    let mut intervals: Vec<Interval<'f>> = Vec::new();
    let mut i = 0;
    while i < evs.len() {
        let g = group(evs[i]);
        let mut open: Option<&Fact> = None;
        while i < evs.len() && group(evs[i]) == g {
            let f = evs[i];
            if f.kind == open_kind {
                if open.is_none() {
                    open = Some(f);
                }
            } else if let Some(o) = open.take() {
                intervals.push((o.at, Some(f.at), &o.event_id, Some(&f.event_id)));
            } else if let Some(d) = f.duration_s {
                intervals.push((f.at - d.max(0) * 1_000_000, Some(f.at), &f.event_id, None));
            }
            i += 1;
        }
        if let Some(o) = open {
            intervals.push((o.at, None, &o.event_id, None));
        }
    }
    intervals
}

/// Minutes of `window` covered by the union of `intervals` (an open one
/// ends at the window's end), and the events of the intervals that count.
fn covered_in<'f>(intervals: &[Interval<'f>], window: (i64, i64)) -> (i64, Vec<&'f str>) {
    let mut clipped: Vec<(i64, i64)> = Vec::new();
    let mut evidence = Vec::new();
    for &(a, b, e1, e2) in intervals {
        let b = b.unwrap_or(window.1.max(a));
        let (a, b) = (a.max(window.0), b.min(window.1));
        if a < b {
            clipped.push((a, b));
            evidence.push(e1);
            if let Some(e) = e2 {
                evidence.push(e);
            }
        }
    }
    clipped.sort();
    let mut total = 0i64;
    let mut cur: Option<(i64, i64)> = None;
    for (a, b) in clipped {
        match cur {
            Some((ca, cb)) if a <= cb => cur = Some((ca, cb.max(b))),
            Some((ca, cb)) => {
                total += cb - ca;
                cur = Some((a, b));
            }
            None => cur = Some((a, b)),
        }
    }
    if let Some((a, b)) = cur {
        total += b - a;
    }
    evidence.sort();
    evidence.dedup();
    (total / 60_000_000, evidence)
}

/// Every DAY and SECTION outcome of one student's instructional day.
pub fn evaluate_day<'a>(input: &DayInput<'a>) -> Vec<Outcome<'a>> {
    let policy = input.policy();
    let Some(band) = policy.band(input.student.grade_level) else { return Vec::new() };
    match (&policy.rule, band.scope) {
        (Rule::AnyEvidence(p), BandScope::Day) => vec![any_evidence_day(input, p)],
        (Rule::AnyEvidence(p), BandScope::Section) => input.blocks().iter().map(|b| any_evidence_section(input, p, b)).collect(),
        (Rule::AnyEvidence(p), BandScope::SectionAndDay) => {
            let sections: Vec<Outcome> = input.blocks().iter().map(|b| any_evidence_section(input, p, b)).collect();
            with_derived_day(input, sections)
        }
        (Rule::ByMode(p), _) => vec![by_mode_day(input, p)],
        (Rule::HalfDay(p), BandScope::Day) => vec![half_day(input, p, None)],
        (Rule::HalfDay(p), BandScope::Section) => input.blocks().iter().map(|b| half_day(input, p, Some(b))).collect(),
        (Rule::HalfDay(p), BandScope::SectionAndDay) => {
            let sections: Vec<Outcome> = input.blocks().iter().map(|b| half_day(input, p, Some(b))).collect();
            with_derived_day(input, sections)
        }
        (Rule::Blocks(p), _) => blocks_day(input, p, &block_attendance(input)).into_iter().collect(),
        (Rule::WeeklyContacts(p), _) => {
            // Remote days are decided per week; in-person days daily.
            if input.mode() == Mode::InPerson {
                vec![weekly_in_person_day(input, p)]
            } else {
                Vec::new()
            }
        }
        (Rule::DailyEngagement, _) => {
            let found = input
                .on_day()
                .find(|f| is_engagement(f))
                .map(|f| ("engagement event on the day".into(), vec![f.event_id.as_str()]));
            vec![input.present_or_absent(Scope::Day, None, found)]
        }
        (_, BandScope::WeekSection) => Vec::new(),
    }
}

/// The DAY code derived from periods is present when the student is present
/// in at least half of the periods scheduled that day. For the half-day rule
/// an in-person day is present on site only when the student was on site in
/// at least half of them, and otherwise present off site (cms: "attend school
/// for at least half of the day to be marked Present On-Site").
fn with_derived_day<'a>(input: &DayInput<'a>, mut sections: Vec<Outcome<'a>>) -> Vec<Outcome<'a>> {
    if sections.is_empty() {
        return sections;
    }
    let n = sections.len();
    let present: Vec<&Outcome> = sections.iter().filter(|o| o.status.is_present()).collect();
    let evidence = |of: &[&Outcome<'a>]| distinct(of.iter().flat_map(|o| o.evidence.iter().copied()));
    if matches!(input.policy().rule, Rule::HalfDay(_)) && input.mode() == Mode::InPerson && 2 * present.len() >= n {
        let on_site: Vec<&Outcome> =
            present.iter().copied().filter(|o| matches!(o.rule, Why::Minutes { on_site: true, .. })).collect();
        if 2 * on_site.len() < n {
            let codes = &input.policy().codes;
            let rule = Why::PeriodsOffSite { on_site: on_site.len(), present: present.len(), of: n };
            let day = input.outcome(Scope::Day, None, codes.remote_status, &codes.present_remote, rule, evidence(&present));
            sections.push(day);
            return sections;
        }
    }
    let found =
        (2 * present.len() >= n).then(|| (Why::Periods { present: present.len(), of: n, enough: true }, evidence(&present)));
    let mut day = input.present_or_absent(Scope::Day, None, found);
    if !day.status.is_present() && day.status == Status::AbsentUnexcused {
        day.rule = Why::Periods { present: present.len(), of: n, enough: false };
    }
    sections.push(day);
    sections
}

fn live_allowed(input: &DayInput, p: &AnyEvidence) -> bool {
    !p.no_live_weekdays.contains(&Weekday::of(input.date())) && !p.no_live_day_types.contains(&input.day.day_type)
}

fn any_evidence_day<'a>(input: &DayInput<'a>, p: &AnyEvidence) -> Outcome<'a> {
    let date = input.date();
    let blocks = input.blocks();
    let scheduled =
        |s: &str| input.student.homeroom_section_id.as_deref() == Some(s) || blocks.iter().any(|b| b.enrollment.section_id == s);
    let live = live_allowed(input, p)
        .then(|| input.on_day().find(|f| f.kind == ActivityKind::LiveJoin && f.section.as_deref().map(scheduled).unwrap_or(true)))
        .flatten()
        .map(|f| -> Found<'a> { ("(a) live session on the day".into(), vec![f.event_id.as_str()]) });
    let by = date + Duration::days(p.submission_allowance_days as i64);
    let submission = || {
        input
            .for_day(by)
            .find(|f| f.kind == ActivityKind::Submission)
            .map(|f| -> Found<'a> { ("(b) task for the day submitted on time".into(), vec![f.event_id.as_str()]) })
    };
    let two_way = || {
        let homeroom = input.student.homeroom_staff_id.as_deref()?;
        let mut evidence = input.two_way(Some(homeroom))?;
        let mut specials: Vec<&str> =
            blocks.iter().filter(|b| b.enrollment.specials).map(|b| b.enrollment.staff_id.as_str()).collect();
        specials.sort();
        specials.dedup();
        for s in &specials {
            evidence.extend(input.two_way(Some(s))?);
        }
        Some(("(c) two-way communication with the homeroom teacher and every specials teacher of the day".into(), evidence))
    };
    let found = live.or_else(submission).or_else(two_way);
    input.present_or_absent(Scope::Day, None, found)
}

fn any_evidence_section<'a>(input: &DayInput<'a>, p: &AnyEvidence, b: &Block<'a>) -> Outcome<'a> {
    let section: &'a str = b.enrollment.section_id.as_str();
    let in_section = |f: &&Fact| f.section.as_deref() == Some(section);
    let live = live_allowed(input, p)
        .then(|| input.on_day().filter(in_section).find(|f| f.kind == ActivityKind::LiveJoin))
        .flatten()
        .map(|f| -> Found<'a> { ("live session of the class on the day".into(), vec![f.event_id.as_str()]) });
    let by = input.date() + Duration::days(p.submission_allowance_days as i64);
    let found = live
        .or_else(|| {
            input
                .for_day(by)
                .filter(in_section)
                .find(|f| f.kind == ActivityKind::Submission)
                .map(|f| -> Found<'a> { ("task for the class submitted on time".into(), vec![f.event_id.as_str()]) })
        })
        .or_else(|| {
            input
                .two_way(Some(&b.enrollment.staff_id))
                .map(|e| -> Found<'a> { ("two-way communication with the class teacher".into(), e) })
        });
    input.present_or_absent(Scope::Section, Some(section), found)
}

fn by_mode_day<'a>(input: &DayInput<'a>, p: &ByMode) -> Outcome<'a> {
    let policy = input.policy();
    let blocks = input.blocks();
    let mode = input.mode();
    if p.dual_enrollment_exempt && !blocks.is_empty() && blocks.iter().all(|b| b.enrollment.dual_enrollment) {
        return input.outcome(
            Scope::Day,
            None,
            Status::Exempt,
            &policy.codes.exempt,
            "exempt: every scheduled section is dual enrollment".into(),
            vec![],
        );
    }
    let date = input.date();
    let found: Option<Found<'a>> = match mode {
        Mode::InPerson => on_site_share(input, &blocks, p.min_present_fraction),
        m if m.is_offline() => {
            let week_end = monday_of(date) + Duration::days(6);
            input.for_day(week_end).next().map(|f| {
                (format!("{}: work for the day returned by the end of its week", mode).into(), vec![f.event_id.as_str()])
            })
        }
        _ if p.lms => {
            let login = input.on_day().find(|f| f.kind == ActivityKind::Login);
            let engaged = input.on_day().find(|f| is_engagement(f));
            match (login, engaged) {
                (Some(l), Some(e)) => Some((
                    "virtual: authenticated (login) and engaged on the day".into(),
                    vec![l.event_id.as_str(), e.event_id.as_str()],
                )),
                _ => None,
            }
        }
        _ => input
            .on_day()
            .find(|f| f.kind == ActivityKind::TwoWayContact)
            .map(|f| ("virtual without an LMS: two-way contact on the day".into(), vec![f.event_id.as_str()])),
    };
    let mut o = input.present_or_absent(Scope::Day, None, found);
    let window = input.day_window();
    let (minutes, _) = if mode == Mode::InPerson {
        covered_minutes(input.on_day(), ActivityKind::CheckIn, ActivityKind::CheckOut, window)
    } else {
        covered_minutes(input.on_day(), ActivityKind::LiveJoin, ActivityKind::LiveLeave, window)
    };
    o.minutes = Some(minutes);
    o
}

/// mississippi in person: on-site minutes of at least `fraction` of the day's
/// instructional minutes, with the scheduled dual-enrollment periods taken
/// out of both (the student is at the college then, not absent).
fn on_site_share<'a>(input: &DayInput<'a>, blocks: &[Block<'a>], fraction: f64) -> Option<Found<'a>> {
    let day = input.day_window();
    let present = intervals(input.on_day(), ActivityKind::CheckIn, ActivityKind::CheckOut);
    let (on_site, evidence) = covered_in(&present, day);
    // The dual-enrollment periods inside the school day, merged.
    let mut dual: Vec<(i64, i64)> = blocks
        .iter()
        .filter(|b| b.enrollment.dual_enrollment)
        .map(|b| input.meeting_window(b.meeting))
        .map(|(a, b)| (a.max(day.0), b.min(day.1)))
        .filter(|(a, b)| a < b)
        .collect();
    dual.sort();
    let mut merged: Vec<(i64, i64)> = Vec::new();
    for (a, b) in dual {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    let dual_minutes: i64 = merged.iter().map(|(a, b)| (b - a) / 60_000_000).sum();
    let on_site_in_dual: i64 = merged.iter().map(|w| covered_in(&present, *w).0).sum();
    let day_minutes = (day.1 - day.0) / 60_000_000 - dual_minutes;
    let counted = on_site - on_site_in_dual;
    let needed = day_minutes as f64 * fraction;
    if counted > 0 && counted as f64 >= needed {
        let what = if dual_minutes > 0 { "the day outside dual-enrollment periods" } else { "the day" };
        Some((
            Why::Minutes { on_site: true, minutes: counted, of: day_minutes as f64, what, percent: fraction * 100.0 },
            evidence,
        ))
    } else {
        None
    }
}

fn half_day<'a>(input: &DayInput<'a>, p: &HalfDay, block: Option<&Block<'a>>) -> Outcome<'a> {
    let policy = input.policy();
    let section: Option<&'a str> = block.map(|b| b.enrollment.section_id.as_str());
    let scope = if block.is_some() { Scope::Section } else { Scope::Day };
    let in_scope = |f: &&Fact| section.is_none() || f.section.as_deref() == section;
    let window = match block {
        Some(b) => input.meeting_window(b.meeting),
        None => input.day_window(),
    };
    let needed = ((window.1 - window.0) / 60_000_000) as f64 * p.fraction;
    let what = if block.is_some() { "the period" } else { "the day" };
    let mode = input.mode();
    let date = input.date();

    let mut minutes = 0;
    let found: Option<Found<'a>> = if mode == Mode::InPerson {
        // On site: presence on campus, whichever section the door saw.
        let (m, ev) = covered_minutes(input.on_day(), ActivityKind::CheckIn, ActivityKind::CheckOut, window);
        minutes = m;
        if m as f64 >= needed && m > 0 {
            Some((Why::Minutes { on_site: true, minutes: m, of: needed / p.fraction, what, percent: p.fraction * 100.0 }, ev))
        } else {
            None
        }
    } else if block.map(|b| b.enrollment.course_type == CourseType::AsyncOnly).unwrap_or(false) {
        input
            .on_day()
            .filter(in_scope)
            .find(|f| is_engagement(f))
            .map(|f| ("asynchronous-only course: engaged with the course on the day".into(), vec![f.event_id.as_str()]))
    } else {
        let (m, ev) = covered_minutes(input.on_day().filter(in_scope), ActivityKind::LiveJoin, ActivityKind::LiveLeave, window);
        minutes = m;
        if m as f64 >= needed && m > 0 {
            Some((Why::Minutes { on_site: false, minutes: m, of: needed / p.fraction, what, percent: p.fraction * 100.0 }, ev))
        } else {
            None
        }
    };
    if let Some((rule, evidence)) = found {
        let (status, code) = input.present_code();
        let mut o = input.outcome(scope, section, status, code, rule, evidence);
        o.minutes = Some(minutes);
        return o;
    }
    let remote = |rule: String, evidence: Vec<&'a str>| {
        let mut o =
            input.outcome(scope, section, policy.codes.remote_status, &policy.codes.present_remote, rule.into(), evidence);
        o.minutes = Some(minutes);
        o
    };
    if mode == Mode::InPerson {
        if let Some(r) = input.record.reports.iter().find(|r| p.remote_present_reasons.contains(&r.reason)) {
            return remote(format!("present off-site: {} reported", r.reason), vec![r.report_id.as_str()]);
        }
    } else if let Some((r, verified_by)) = input.record.reports.iter().find_map(|r| {
        if !p.hardship_reasons.contains(&r.reason) {
            return None;
        }
        if !p.verify_hardship {
            return Some((r, Vec::new()));
        }
        input.hardship_verified(r).map(|e| (r, e))
    }) {
        let by = date + Duration::days(p.submission_allowance_days as i64);
        let teacher = block.map(|b| b.enrollment.staff_id.as_str());
        let path = input
            .for_day(by)
            .filter(in_scope)
            .find(|f| f.kind == ActivityKind::Submission)
            .map(|f| ("work for the day submitted within the allowance", vec![f.event_id.as_str()]))
            .or_else(|| {
                input
                    .on_day()
                    .filter(in_scope)
                    .find(|f| is_engagement(f))
                    .map(|f| ("engaged with course content on the day", vec![f.event_id.as_str()]))
            })
            .or_else(|| input.two_way(teacher).map(|e| ("two-way communication with a teacher on the day", e)))
            .or_else(|| {
                input
                    .on_day()
                    .filter(in_scope)
                    .find(|f| f.kind == ActivityKind::RecordingView)
                    .map(|f| ("watched the recording of instruction", vec![f.event_id.as_str()]))
            });
        if let Some((why, evidence)) = path {
            let verified = match (p.verify_hardship, r.reporter) {
                (false, _) => "",
                (true, Reporter::Staff) => ", reported by staff",
                (true, Reporter::Guardian) => ", verified by a teacher",
            };
            let mut all = vec![r.report_id.as_str()];
            for e in verified_by.into_iter().chain(evidence) {
                if !all.contains(&e) {
                    all.push(e);
                }
            }
            return remote(format!("present off-site by hardship ({} reported{verified}): {why}", r.reason), all);
        }
    }
    let (status, code, rule, evidence) = input.absence();
    let mut o = input.outcome(scope, section, status, code, rule, evidence);
    o.minutes = Some(minutes);
    o
}

/// A block of the instruction-partners day and whether it was attended.
#[derive(Debug, Clone)]
pub struct BlockAttendance<'a> {
    pub section: &'a str,
    pub staff: &'a str,
    pub start: LocalTime,
    pub end: LocalTime,
    pub attended: bool,
    pub minutes: i64,
    pub evidence: Vec<&'a str>,
}

/// The blocks of the day in start order, each with its attendance.
pub fn block_attendance<'a>(input: &DayInput<'a>) -> Vec<BlockAttendance<'a>> {
    let present = if input.mode() == Mode::InPerson {
        intervals(input.on_day(), ActivityKind::CheckIn, ActivityKind::CheckOut)
    } else {
        intervals(input.on_day(), ActivityKind::LiveJoin, ActivityKind::LiveLeave)
    };
    input
        .blocks()
        .into_iter()
        // Attendance is taken "at the start of each synchronous block": an
        // asynchronous-only section is not a block.
        .filter(|b| b.enrollment.course_type == CourseType::Live)
        .map(|b| {
            let (minutes, evidence) = covered_in(&present, input.meeting_window(b.meeting));
            BlockAttendance {
                section: &b.enrollment.section_id,
                staff: &b.enrollment.staff_id,
                start: b.meeting.start,
                end: b.meeting.end,
                attended: !evidence.is_empty(),
                minutes,
                evidence,
            }
        })
        .collect()
}

/// The instruction-partners DAY outcome from the day's block attendance.
pub fn blocks_day<'a>(input: &DayInput<'a>, p: &Blocks, blocks: &[BlockAttendance<'a>]) -> Option<Outcome<'a>> {
    if blocks.is_empty() {
        return None;
    }
    let attended = blocks.iter().filter(|b| b.attended).count();
    let morning = blocks[0].attended;
    let afternoon = blocks.iter().any(|b| b.attended && b.start >= p.afternoon_starts);
    let category = if attended == 0 {
        "ABSENT"
    } else if attended == blocks.len() {
        "ALL_DAY"
    } else if morning && !afternoon {
        "MORNING_ONLY"
    } else {
        "PARTIAL"
    };
    let rule = Why::Blocks { category, attended, of: blocks.len(), morning, async_day: input.day.day_type == DayType::Async };
    let evidence: Vec<&'a str> = distinct(blocks.iter().flat_map(|b| b.evidence.iter().copied()));
    // docs/policies/instruction-partners.md: status PRESENT unless ABSENT, whatever the mode.
    let status = if attended == 0 { input.absence().0 } else { Status::Present };
    let mut o = input.outcome(Scope::Day, None, status, category, rule, evidence);
    if attended == 0 {
        o.evidence = input.absence().3;
    }
    o.category = Some(category);
    o.minutes = Some(blocks.iter().map(|b| b.minutes).sum());
    Some(o)
}

fn weekly_in_person_day<'a>(input: &DayInput<'a>, p: &'a WeeklyContacts) -> Outcome<'a> {
    let found = input.on_day().find(|f| f.kind == ActivityKind::CheckIn);
    match found {
        Some(f) => input.outcome(
            Scope::Day,
            None,
            Status::Present,
            &p.in_person_present,
            "in person: checked in on campus".into(),
            vec![f.event_id.as_str()],
        ),
        None => {
            let (status, _, rule, evidence) = input.absence();
            input.outcome(Scope::Day, None, status, &p.in_person_absent, rule, evidence)
        }
    }
}

/// nmped: the WEEK outcome per class for the week starting `monday`.
/// `days` holds the student's day records of that week (any order).
pub fn evaluate_week<'a>(
    school: &'a School,
    student: &'a StudentRecord,
    monday: NaiveDate,
    days: &[(NaiveDate, &'a DayRecord)],
) -> Vec<Outcome<'a>> {
    let Rule::WeeklyContacts(p) = &school.policy.rule else { return Vec::new() };
    let sunday = monday + Duration::days(6);
    // Remote instructional days of this week decide whether there is a WEEK determination at all.
    let remote_days: Vec<NaiveDate> =
        school.instructional_days(monday, sunday).map(|d| d.date).filter(|d| student.mode_on(*d) != Mode::InPerson).collect();
    if remote_days.is_empty() {
        return Vec::new();
    }
    let homeroom = student.homeroom_section_id.as_deref();
    let mut sections: Vec<&Enrollment> = student
        .enrollments
        .iter()
        .filter(|e| {
            remote_days.iter().any(|d| {
                let wd = Weekday::of(*d);
                e.meetings.iter().any(|m| m.weekdays.contains(&wd))
            }) || Some(e.section_id.as_str()) == homeroom
        })
        .collect();
    sections.sort_by(|a, b| a.section_id.cmp(&b.section_id));
    sections
        .into_iter()
        .map(|e| {
            let mut dates: Vec<(NaiveDate, &'a str)> = Vec::new();
            for (date, rec) in days {
                if *date < monday || *date > sunday {
                    continue;
                }
                let contact = rec.facts.iter().find(|f| {
                    f.local_date == *date
                        && p.is_indicator(f.kind, f.direction)
                        && match f.section.as_deref() {
                            Some(s) => s == e.section_id,
                            None => homeroom == Some(e.section_id.as_str()),
                        }
                });
                if let Some(f) = contact {
                    dates.push((*date, &f.event_id));
                }
            }
            dates.sort();
            let contacts = dates.len() as u32;
            let code = p.codes.iter().rev().find(|c| contacts >= c.min).map(|c| c.code.as_str()).unwrap_or_default();
            Outcome {
                scope: Scope::Week,
                date: monday,
                section: Some(e.section_id.as_str()),
                status: Status::Contacts,
                code,
                attendance_type: Some(AttendanceType::Virtual),
                minutes: None,
                contacts: Some(contacts as i32),
                category: None,
                rule: Why::Contacts { contacts, code },
                contact_days: dates.iter().fold(0, |m, (d, _)| m | 1 << (*d - monday).num_days()),
                evidence: dates.into_iter().map(|(_, e)| e).collect(),
                closes_by: school.policy.finalize.week.into(),
            }
        })
        .collect()
}

/// Event ids in the order first met, each once: a day derived from its
/// periods or blocks names an event that several of them counted (one
/// check-in covers every period of the morning) once.
fn distinct<'a>(ids: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&'a str> = Vec::new();
    for id in ids {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

pub mod explain;
pub mod reads;

#[cfg(test)]
mod tests;
