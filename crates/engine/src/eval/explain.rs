//! What a person asks of a determination: each piece of its evidence in
//! detail and, for an absence, what the rule looked for and did not find,
//! and the activity it saw in the window that did not count, with why.
//!
//! Worked out only when a determination is emitted (most evaluations emit
//! nothing), from the same facts the rule read, so it travels with the
//! determination and explain needs nothing but the determinations.

use chrono::{DateTime, Duration, NaiveDate};
use rollcall_model::{
    ActivityKind, CourseType, Direction, EvidenceDetail, Mode, Reporter, Scope, SeenActivity, Status, StudentRecord,
};
use rollcall_policy::{BandScope, Rule};

use super::{live_allowed, DayInput, Outcome};
use crate::school::{monday_of, School};
use crate::state::{DayRecord, Fact, ReportFact};

/// The explanation that rides on an emitted determination.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Explained {
    pub evidence_detail: Vec<EvidenceDetail>,
    pub looked_for: Vec<String>,
    pub seen: Vec<SeenActivity>,
}

/// `YYYY-MM-DD HH:MM` in the school's time zone. Written by hand: chrono's
/// `format` reads its pattern anew on every call, and every emitted
/// determination names a few instants; and where the school keeps the
/// date's local midnight, the wall clock is a subtraction, not a time-zone
/// lookup.
pub fn local_time(school: &School, micros: i64) -> String {
    use chrono::{Datelike, Timelike};
    let (date, minute) = match school.local_minute(micros) {
        Some(dm) => dm,
        None => match DateTime::from_timestamp_micros(micros) {
            Some(t) => {
                let l = t.with_timezone(&school.tz);
                (l.date_naive(), (l.hour() * 60 + l.minute()) as i64)
            }
            None => return format!("{micros} µs"),
        },
    };
    let year = date.year();
    if !(0..=9999).contains(&year) {
        return format!("{year:04}-{:02}-{:02} {:02}:{:02}", date.month(), date.day(), minute / 60, minute % 60);
    }
    let mut out = String::with_capacity(16);
    let push2 = |out: &mut String, n: u32, after: Option<char>| {
        out.push(char::from(b'0' + (n / 10) as u8));
        out.push(char::from(b'0' + (n % 10) as u8));
        out.extend(after);
    };
    push2(&mut out, year as u32 / 100, None);
    push2(&mut out, year as u32 % 100, Some('-'));
    push2(&mut out, date.month(), Some('-'));
    push2(&mut out, date.day(), Some(' '));
    push2(&mut out, (minute / 60) as u32, Some(':'));
    push2(&mut out, (minute % 60) as u32, None);
    out
}

/// `Tue Oct 6`.
fn short(d: NaiveDate) -> String {
    use chrono::Datelike;
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!("{} {} {}", DAYS[d.weekday().num_days_from_monday() as usize], MONTHS[d.month0() as usize], d.day())
}

fn direction_words(d: Direction) -> &'static str {
    match d {
        Direction::FromStudent => "from the student",
        Direction::FromGuardian => "from a guardian",
        Direction::FromStaff => "from staff",
    }
}

fn join_directions(dirs: &[Direction]) -> String {
    dirs.iter().map(|d| direction_words(*d)).collect::<Vec<_>>().join(" or ")
}

fn fact_detail(school: &School, f: &Fact, staff: Option<&str>) -> EvidenceDetail {
    let mut detail: Vec<String> = Vec::new();
    if let Some(d) = f.direction {
        detail.push(direction_words(d).into());
    }
    if let Some(a) = f.assigned {
        detail.push(format!("work assigned for {a}"));
    }
    if let Some(s) = &f.session {
        detail.push(format!("session {s}"));
    }
    if let Some(s) = f.duration_s {
        detail.push(format!("{} minutes", s / 60));
    }
    EvidenceDetail {
        id: f.event_id.clone(),
        kind: f.kind.as_str().to_string(),
        occurred_at: DateTime::from_timestamp_micros(f.at),
        local_time: Some(local_time(school, f.at)),
        source: f.source.clone(),
        section_id: f.section.clone(),
        staff_id: staff.map(str::to_string),
        detail: (!detail.is_empty()).then(|| detail.join(", ")),
    }
}

fn report_detail(r: &ReportFact) -> EvidenceDetail {
    let by = match r.reporter {
        Reporter::Guardian => "a guardian",
        Reporter::Staff => "staff",
    };
    EvidenceDetail {
        id: r.report_id.clone(),
        kind: "ABSENCE_REPORT".into(),
        occurred_at: None,
        local_time: None,
        source: None,
        section_id: None,
        staff_id: None,
        detail: Some(format!("{} reported by {by}", r.reason)),
    }
}

/// Each evidence id in the outcome's order, found among the records' facts
/// and reports (an id the records no longer hold, past a purge, is skipped).
/// `staff` names the teacher of a fact: its own, else its section's.
fn details<'r>(
    school: &School,
    evidence: &[&str],
    records: impl Iterator<Item = &'r DayRecord> + Clone,
    staff: impl Fn(&'r Fact) -> Option<&'r str>,
) -> Vec<EvidenceDetail> {
    evidence
        .iter()
        .filter_map(|id| {
            let fact = records.clone().flat_map(|r| r.facts.iter()).find(|f| f.event_id == *id);
            match fact {
                Some(f) => Some(fact_detail(school, f, staff(f))),
                None => records.clone().flat_map(|r| r.reports.iter()).find(|r| r.report_id == *id).map(report_detail),
            }
        })
        .collect()
}

fn kind_words(kind: ActivityKind) -> &'static str {
    match kind {
        ActivityKind::Login => "logins",
        ActivityKind::Logout => "logouts",
        ActivityKind::Submission => "submissions",
        ActivityKind::Message => "messages",
        ActivityKind::LiveJoin => "joining a live session",
        ActivityKind::LiveLeave => "leaving a live session",
        ActivityKind::ContentAccess => "content views",
        ActivityKind::RecordingView => "recording views",
        ActivityKind::TwoWayContact => "two-way contacts",
        ActivityKind::CheckIn => "check-ins",
        ActivityKind::CheckOut => "check-outs",
        ActivityKind::OfflineWorkReturned => "returned offline work",
    }
}

/// Groups the window's facts that are not evidence by kind and section.
fn seen<'f>(
    school: &School,
    facts: impl Iterator<Item = &'f Fact>,
    evidence: &[&str],
    why_not: impl Fn(&Fact) -> String,
) -> Vec<SeenActivity> {
    let mut out: Vec<(SeenActivity, i64)> = Vec::new();
    let mut counted: Vec<&str> = Vec::new();
    for f in facts {
        if evidence.contains(&f.event_id.as_str()) || counted.contains(&f.event_id.as_str()) {
            continue;
        }
        counted.push(&f.event_id);
        match out.iter_mut().find(|(s, _)| s.kind == f.kind.as_str() && s.section_id == f.section) {
            Some((s, first)) => {
                s.count += 1;
                if f.at < *first {
                    *first = f.at;
                    s.first_local_time = local_time(school, f.at);
                }
            }
            None => out.push((
                SeenActivity {
                    kind: f.kind.as_str().to_string(),
                    section_id: f.section.clone(),
                    count: 1,
                    first_local_time: local_time(school, f.at),
                    why_not: why_not(f),
                },
                f.at,
            )),
        }
    }
    out.sort_by_key(|(_, first)| *first);
    out.into_iter().map(|(s, _)| s).collect()
}

fn is_absence(o: &Outcome) -> bool {
    matches!(o.status, Status::AbsentExcused | Status::AbsentUnexcused)
}

/// A day's (or a period's) determination explained.
pub fn explain_day<'a>(input: &DayInput<'a>, o: &Outcome) -> Explained {
    let school = input.school;
    let records = std::iter::once(input.record).chain(input.next);
    let evidence_detail = details(school, &o.evidence, records, |f| input.staff_of(f));
    if !is_absence(o) {
        return Explained { evidence_detail, ..Explained::default() };
    }
    let section = o.section;
    let in_window = |f: &&Fact| match section {
        Some(s) => f.section.as_deref() == Some(s),
        None => true,
    };
    let looked_for = looked_for_day(input, o);
    let seen = seen(school, input.on_day().filter(in_window), &o.evidence, |f| why_not_day(input, o, f));
    Explained { evidence_detail, looked_for, seen }
}

fn percent(f: f64) -> String {
    format!("{}%", (f * 1000.0).round() / 10.0)
}

fn looked_for_day(input: &DayInput, o: &Outcome) -> Vec<String> {
    let date = input.date();
    let day = short(date);
    let policy = input.policy();
    let derived = o.scope == Scope::Day
        && policy.band(input.student.grade_level).map(|b| b.scope) == Some(BandScope::SectionAndDay)
        && !matches!(policy.rule, Rule::Blocks(_) | Rule::ByMode(_) | Rule::WeeklyContacts(_));
    if derived {
        let n = input.blocks().len();
        return vec![format!(
            "presence in at least half of the {n} period(s) scheduled on {day} (each period is decided on its own)"
        )];
    }
    let mut v: Vec<String> = Vec::new();
    match &policy.rule {
        Rule::AnyEvidence(p) => {
            let by = date + Duration::days(p.submission_allowance_days as i64);
            let (of, in_class) = match o.section {
                Some(s) => (format!(" of {s}"), format!(" in {s}")),
                None => (String::new(), String::new()),
            };
            if live_allowed(input, p) {
                v.push(format!("a live session{of} on {day}"));
            }
            v.push(format!("a submission{in_class} of work assigned for {day}, made by the end of {}", short(by)));
            match o.section {
                Some(s) => {
                    let teacher = input.student.enrollment(s).map(|e| e.staff_id.as_str()).unwrap_or("?");
                    v.push(format!("two-way communication with the class teacher ({teacher}) on {day}"));
                }
                None => {
                    let homeroom = input.student.homeroom_staff_id.as_deref().unwrap_or("none on the roster");
                    let mut specials: Vec<&str> =
                        input.blocks().iter().filter(|b| b.enrollment.specials).map(|b| b.enrollment.staff_id.as_str()).collect();
                    specials.sort();
                    specials.dedup();
                    let specials = if specials.is_empty() {
                        String::new()
                    } else {
                        format!(" and every specials teacher of the day ({})", specials.join(", "))
                    };
                    v.push(format!("two-way communication with the homeroom teacher ({homeroom}){specials} on {day}"));
                }
            }
        }
        Rule::ByMode(p) => match input.mode() {
            Mode::InPerson => v.push(format!(
                "on site (check-in to check-out) for at least {} of the instructional day on {day}",
                percent(p.min_present_fraction)
            )),
            m if m.is_offline() => {
                v.push(format!("work for {day} returned by the end of its week ({})", short(monday_of(date) + Duration::days(6))))
            }
            _ if p.lms => v.push(format!(
                "a login and an engagement (a submission, a message from the student, a live session, a content or \
                 recording view, a two-way contact) on {day}"
            )),
            _ => v.push(format!("a two-way contact on {day}")),
        },
        Rule::HalfDay(p) => {
            let what = if o.section.is_some() { "the period" } else { "the day" };
            let async_only = o
                .section
                .and_then(|s| input.student.enrollment(s))
                .map(|e| e.course_type == CourseType::AsyncOnly)
                .unwrap_or(false);
            if input.mode() == Mode::InPerson {
                v.push(format!("on site for at least {} of {what} on {day}", percent(p.fraction)));
                if !p.remote_present_reasons.is_empty() {
                    v.push(format!("or a report of {} (present off site)", join(&p.remote_present_reasons)));
                }
            } else {
                if async_only {
                    v.push(format!("engagement with the asynchronous course on {day}"));
                } else {
                    v.push(format!("live for at least {} of {what} on {day}", percent(p.fraction)));
                }
                if !p.hardship_reasons.is_empty() {
                    let verified = if p.verify_hardship { ", verified by a teacher," } else { "" };
                    v.push(format!(
                        "or a report of {}{verified} with work submitted, engagement, two-way communication or a \
                         recording watched",
                        join(&p.hardship_reasons)
                    ));
                }
            }
        }
        Rule::Blocks(_) => {
            let how = if input.mode() == Mode::InPerson { "on site" } else { "in its live session" };
            let n = input.blocks().iter().filter(|b| b.enrollment.course_type == CourseType::Live).count();
            v.push(format!("attendance {how} at any of the {n} block(s) scheduled on {day}"));
        }
        Rule::WeeklyContacts(_) => v.push(format!("a check-in on campus on {day}")),
        Rule::DailyEngagement => v.push(format!("an engagement event on {day}")),
    }
    if !policy.excused_reasons.is_empty() && o.status == Status::AbsentUnexcused {
        v.push(format!("an absence report that excuses ({})", join(&policy.excused_reasons)));
    }
    v
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}

/// Why a fact of the window did not make the outcome present.
fn why_not_day(input: &DayInput, o: &Outcome, f: &Fact) -> String {
    let policy = &input.policy().id;
    let not_counted = || format!("the {policy} policy does not count {} as attendance", kind_words(f.kind));
    let mode = input.mode();
    match &input.policy().rule {
        Rule::AnyEvidence(p) => match f.kind {
            ActivityKind::LiveJoin if !live_allowed(input, p) => format!("live sessions do not count on {}", short(input.date())),
            ActivityKind::LiveJoin => "a live session counts only in a class the student is scheduled for that day".into(),
            ActivityKind::Submission => {
                "a submission counts for the day its work was assigned for, made within the allowance".into()
            }
            ActivityKind::Message | ActivityKind::TwoWayContact => {
                "communication counts only when two-way with the teacher(s) the rule names".into()
            }
            _ => not_counted(),
        },
        Rule::ByMode(p) => match (mode, f.kind) {
            (Mode::InPerson, ActivityKind::CheckIn | ActivityKind::CheckOut) => {
                "the on-site time fell short of the share of the day the rule requires".into()
            }
            (Mode::InPerson, _) => "an in-person day counts only time on site".into(),
            (m, ActivityKind::OfflineWorkReturned | ActivityKind::Submission) if m.is_offline() => {
                "returned work counts for the day it was assigned for, by the end of that week".into()
            }
            (m, _) if m.is_offline() => "an offline day counts only work returned for it".into(),
            (_, ActivityKind::Login) if p.lms => "a login counts only with an engagement on the same day".into(),
            (_, k) if p.lms && k.is_engagement_kind() => "an engagement counts only with a login on the same day".into(),
            (_, ActivityKind::TwoWayContact) => "a two-way contact counts only on the day it happened".into(),
            _ => not_counted(),
        },
        Rule::HalfDay(_) => match (mode, f.kind) {
            (Mode::InPerson, ActivityKind::CheckIn | ActivityKind::CheckOut) => {
                "the on-site time fell short of the share the rule requires".into()
            }
            (Mode::InPerson, _) => "an in-person day counts only time on site, or a report".into(),
            (_, ActivityKind::LiveJoin | ActivityKind::LiveLeave) => {
                let minutes = o.minutes.map(|m| format!(" ({m} minutes)")).unwrap_or_default();
                format!("the live time{minutes} fell short of the share the rule requires")
            }
            (_, k) if k.is_engagement_kind() => {
                "work and engagement count only on a hardship day the rule accepts, with its report".into()
            }
            _ => not_counted(),
        },
        Rule::Blocks(_) => match f.kind {
            ActivityKind::LiveJoin | ActivityKind::LiveLeave | ActivityKind::CheckIn | ActivityKind::CheckOut => {
                "attendance counts only inside a scheduled block's time".into()
            }
            _ => not_counted(),
        },
        Rule::WeeklyContacts(_) => match f.kind {
            ActivityKind::CheckIn | ActivityKind::CheckOut => "not a check-in on the day".into(),
            _ => "an in-person day counts only a check-in on campus; contacts count on remote days".into(),
        },
        Rule::DailyEngagement => not_counted(),
    }
}

/// A week's per-class contact determination explained: its evidence, and
/// with no contact at all, what the rule looked for and what it saw.
pub fn explain_week<'r>(
    school: &School,
    student: &'r StudentRecord,
    days: &[(NaiveDate, &'r DayRecord)],
    o: &Outcome,
) -> Explained {
    let staff = |f: &'r Fact| -> Option<&'r str> {
        f.staff.as_deref().or_else(|| Some(student.enrollment(f.section.as_deref()?)?.staff_id.as_str()))
    };
    let evidence_detail = details(school, &o.evidence, days.iter().map(|(_, r)| *r), staff);
    if o.contacts.unwrap_or(0) > 0 {
        return Explained { evidence_detail, ..Explained::default() };
    }
    let Rule::WeeklyContacts(p) = &school.policy.rule else { return Explained { evidence_detail, ..Explained::default() } };
    let class = o.section.unwrap_or("?");
    let kinds: Vec<&str> = p.indicators.iter().map(|i| i.kind.as_str()).collect();
    let looked_for = vec![format!(
        "a contact with {class} ({}) on any day from {} to {}",
        kinds.join(", "),
        short(o.date),
        short(o.date + Duration::days(6))
    )];
    let homeroom = student.homeroom_section_id.as_deref() == o.section;
    let sunday = o.date + Duration::days(6);
    let facts = days
        .iter()
        .flat_map(|(d, r)| r.facts.iter().filter(move |f| f.local_date == *d))
        .filter(|f| f.local_date >= o.date && f.local_date <= sunday)
        .filter(|f| f.section.as_deref() == o.section || (homeroom && f.section.is_none()));
    let seen = seen(school, facts, &o.evidence, |f| {
        if p.is_indicator(f.kind, f.direction) {
            return "not a contact with this class".into();
        }
        match p.indicators.iter().find(|i| i.kind == f.kind).and_then(|i| i.directions.as_ref()) {
            Some(dirs) => format!("{} count as a contact only sent {}", kind_words(f.kind), join_directions(dirs)),
            None => format!("the {} policy does not count {} as a contact", school.policy.id, kind_words(f.kind)),
        }
    });
    Explained { evidence_detail, looked_for, seen }
}
