//! The events of one student on one day, written from the day plan.
//!
//! Times are kept as seconds after local midnight while a day is written and
//! turned into UTC instants with the day's base (see
//! [`crate::district::local_day_base`]); the caller assigns event ids and
//! arrival times.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rollcall_model::{ActivityEvent, ActivityKind, CourseType, Direction, Enrollment, Mode, StudentRecord, Weekday};

use crate::district::{is_elementary, School};
use crate::plan::{DayPlan, Presence};
use crate::rng::Rng;

const MIN: u32 = 60;
const HOUR: u32 = 3600;
const NOON: u32 = 12 * HOUR;
/// Nothing is written before 05:00 or after 23:59 local, which keeps every
/// event clear of daylight-saving switches and on its own local date.
const EARLIEST: u32 = 5 * HOUR;
const LATEST: u32 = 24 * HOUR - 1;

/// One scheduled meeting of one enrollment on the day, in seconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Block {
    pub start: u32,
    pub end: u32,
    pub enr: usize,
}

/// The student's meetings on `weekday`, in start order (the
/// instruction-partners "blocks").
pub(crate) fn blocks_on(student: &StudentRecord, weekday: Weekday, out: &mut Vec<Block>) {
    out.clear();
    for (enr, e) in student.enrollments.iter().enumerate() {
        for m in e.meetings.iter().filter(|m| m.weekdays.contains(&weekday)) {
            out.push(Block { start: m.start.minutes() * MIN, end: m.end.minutes() * MIN, enr });
        }
    }
    out.sort_by_key(|b| b.start);
}

/// Writes one student's events for one local date.
pub(crate) struct DayWriter<'a> {
    pub school: &'a School,
    pub student: &'a StudentRecord,
    pub date: NaiveDate,
    /// Local midnight of `date`, in UTC.
    pub base: DateTime<Utc>,
    pub rng: Rng,
    pub out: &'a mut Vec<ActivityEvent>,
}

impl DayWriter<'_> {
    fn enrollment(&self, i: usize) -> &Enrollment {
        &self.student.enrollments[i]
    }

    /// Appends an event at local second `at` and returns it for the
    /// kind-specific fields.
    fn push(&mut self, kind: ActivityKind, source: &str, enr: Option<usize>, at: u32) -> &mut ActivityEvent {
        let at = at.clamp(EARLIEST, LATEST);
        let section_id = enr.map(|i| self.student.enrollments[i].section_id.clone());
        self.out.push(ActivityEvent {
            event_id: String::new(),
            source: source.to_string(),
            student_id: self.student.student_id.clone(),
            school_id: self.student.school_id.clone(),
            section_id,
            staff_id: None,
            kind,
            direction: None,
            occurred_at: self.base + Duration::seconds(at as i64),
            assigned_date: None,
            live_session_id: None,
            duration_seconds: None,
            attributes: BTreeMap::new(),
            received_at: None,
        });
        self.out.last_mut().expect("just pushed")
    }

    /// A random second in `[from, to)`.
    fn between(&mut self, from: u32, to: u32) -> u32 {
        if to <= from {
            from
        } else {
            from + self.rng.below((to - from) as u64) as u32
        }
    }

    /// How many assignments a section posts for a day, and how likely a
    /// student who attends is to hand each in.
    fn assignments(&self, enr: usize, async_day: bool) -> (u32, f64) {
        let e = self.enrollment(enr);
        // With no live class, the day's assignment is the day's attendance.
        let bonus = if async_day { 0.3 } else { 0.0 };
        if e.dual_enrollment {
            (1, 0.2)
        } else if e.specials {
            (1, 0.3 + bonus)
        } else if is_elementary(self.student.grade_level) {
            // Per homeroom block; it meets twice a day.
            (1, 0.8 + bonus)
        } else if e.course_type == CourseType::AsyncOnly {
            (1, 0.8)
        } else {
            (1, 0.55 + bonus)
        }
    }

    fn submission(&mut self, enr: usize, assigned: NaiveDate, at: u32) {
        let lms = self.school.lms;
        // The assignment page is opened before anything is handed in.
        for _ in 0..self.rng.range(1, 2) {
            let opened = at.saturating_sub(self.between(2 * MIN, 25 * MIN));
            self.push(ActivityKind::ContentAccess, lms, Some(enr), opened);
        }
        let ev = self.push(ActivityKind::Submission, lms, Some(enr), at);
        ev.assigned_date = Some(assigned);
    }

    fn content(&mut self, enr: Option<usize>, at: u32) {
        let lms = self.school.lms;
        self.push(ActivityKind::ContentAccess, lms, enr, at);
    }

    fn login(&mut self, at: u32) {
        let lms = self.school.lms;
        self.push(ActivityKind::Login, lms, None, at);
    }

    fn logout(&mut self, at: u32) {
        let lms = self.school.lms;
        self.push(ActivityKind::Logout, lms, None, at);
    }

    /// One join..leave interval in a live session.
    fn live(&mut self, enr: usize, session: &str, join: u32, leave: u32) {
        let video = self.school.video;
        let ev = self.push(ActivityKind::LiveJoin, video, Some(enr), join);
        ev.live_session_id = Some(session.to_string());
        let ev = self.push(ActivityKind::LiveLeave, video, Some(enr), leave);
        ev.live_session_id = Some(session.to_string());
        // Zoom's participant report carries the duration; Meet's does not.
        if video == "zoom" {
            ev.duration_seconds = Some(leave.saturating_sub(join) as i64);
        }
    }

    fn two_way_contact(&mut self, enr: usize, at: u32, channel: &str) {
        let staff = self.enrollment(enr).staff_id.clone();
        let ev = self.push(ActivityKind::TwoWayContact, "teacher_log", Some(enr), at);
        ev.staff_id = Some(staff);
        ev.attributes.insert("channel".into(), channel.into());
    }

    /// A message to a teacher, usually answered the same day (which makes
    /// the exchange two-way under the policies that ask for it).
    fn conversation(&mut self, enr: usize) {
        let lms = self.school.lms;
        let staff = self.enrollment(enr).staff_id.clone();
        let from = if is_elementary(self.student.grade_level) && self.rng.chance(0.6) {
            Direction::FromGuardian
        } else {
            Direction::FromStudent
        };
        let at = self.between(7 * HOUR + 30 * MIN, 20 * HOUR);
        let ev = self.push(ActivityKind::Message, lms, Some(enr), at);
        ev.direction = Some(from);
        ev.staff_id = Some(staff.clone());
        if self.rng.chance(0.75) {
            let reply = at + self.between(5 * MIN, 2 * HOUR);
            let ev = self.push(ActivityKind::Message, lms, Some(enr), reply.min(23 * HOUR));
            ev.direction = Some(Direction::FromStaff);
            ev.staff_id = Some(staff);
        }
    }

    /// A remote day (SYNC_ONLINE or ASYNC_ONLINE, or any online day on an
    /// asynchronous calendar day).
    pub(crate) fn online_day(&mut self, plan: &DayPlan, blocks: &[Block], mode: Mode, async_day: bool, hardship: bool) {
        if plan.presence == Presence::Off || blocks.is_empty() {
            return;
        }
        let attended = self.attended(plan.presence, blocks);
        let session_date = self.date.to_string();
        let mut first = None;
        let mut last = 0;
        for (b, &went) in blocks.iter().zip(&attended) {
            if !went {
                continue;
            }
            let e = self.enrollment(b.enr);
            let live = !async_day && mode != Mode::AsyncOnline && e.course_type == CourseType::Live;
            let (mut from, mut to) = (b.start, b.end);
            if live {
                let session = [e.section_id.as_str(), "-", &session_date].concat();
                // Most of the meeting: a few minutes late, out a little early.
                let (late, early) = if hardship {
                    (self.between(5 * MIN, 20 * MIN), self.between(5 * MIN, 20 * MIN))
                } else {
                    (self.between(0, 5 * MIN), self.between(0, 4 * MIN))
                };
                from = b.start.saturating_sub(3 * MIN) + late;
                to = (b.end - early).max(from + 5 * MIN);
                let long = to - from > 2 * HOUR;
                if to - from > 30 * MIN && self.rng.chance(if long { 0.4 } else { 0.1 }) {
                    // A dropped connection or a break, then back in.
                    let gap_at = self.between(from + 10 * MIN, to - 10 * MIN);
                    let back = gap_at + self.between(MIN, if long { 15 * MIN } else { 4 * MIN });
                    self.live(b.enr, &session, from, gap_at);
                    self.live(b.enr, &session, back.min(to - MIN), to);
                } else {
                    self.live(b.enr, &session, from, to);
                }
            }
            // Pages, files and quizzes opened during class: more in a long block.
            let views = self.rng.range(1, 1 + (b.end - b.start) / (12 * MIN));
            for _ in 0..views {
                let at = self.between(from, to);
                self.content(Some(b.enr), at);
            }
            if !plan.late_work {
                self.same_day_submissions(b.enr, to, async_day);
            }
            first.get_or_insert(from);
            last = last.max(to);
        }
        if plan.presence == Presence::Sparse {
            self.catch_up(blocks, plan.late_work);
        }
        if let Some(first) = first {
            let at = first.saturating_sub(self.between(MIN, 10 * MIN));
            self.login(at);
            if self.rng.chance(0.7) {
                let at = last + self.between(MIN, 5 * MIN);
                self.logout(at);
            }
        }
        self.chatter(blocks, &attended);
    }

    /// An in-person day: the door scanner records arrival and departure;
    /// classroom devices record some LMS activity.
    pub(crate) fn in_person_day(&mut self, plan: &DayPlan, blocks: &[Block]) {
        if plan.presence == Presence::Off || blocks.is_empty() {
            return;
        }
        let arrive = self.between(7 * HOUR + 35 * MIN, 7 * HOUR + 58 * MIN);
        let leave = match plan.presence {
            Presence::Full => self.between(15 * HOUR, 15 * HOUR + 20 * MIN),
            Presence::Partial => self.between(12 * HOUR + 50 * MIN, 13 * HOUR + 30 * MIN),
            _ => self.between(11 * HOUR + 35 * MIN, 11 * HOUR + 58 * MIN),
        };
        self.push(ActivityKind::CheckIn, "door", None, arrive);
        // Scanners miss the odd departure.
        if self.rng.chance(0.93) {
            self.push(ActivityKind::CheckOut, "door", None, leave);
        }
        if self.rng.chance(0.5) {
            let at = self.between(8 * HOUR + 2 * MIN, 8 * HOUR + 20 * MIN);
            self.login(at);
        }
        let attended: Vec<bool> = blocks.iter().map(|b| b.end <= leave).collect();
        for (b, _) in blocks.iter().zip(&attended).filter(|(_, a)| **a) {
            for _ in 0..self.rng.range(0, 2) {
                let at = self.between(b.start, b.end);
                self.content(Some(b.enr), at);
            }
            if !plan.late_work {
                self.same_day_submissions(b.enr, b.end, false);
            }
        }
        self.chatter(blocks, &attended);
    }

    /// Which blocks a student with this presence attends.
    fn attended(&mut self, presence: Presence, blocks: &[Block]) -> Vec<bool> {
        let mut went: Vec<bool> = match presence {
            Presence::Full => vec![true; blocks.len()],
            Presence::Morning => blocks.iter().map(|b| b.start < NOON).collect(),
            Presence::Partial => blocks.iter().map(|_| self.rng.chance(0.6)).collect(),
            Presence::Sparse | Presence::Off => vec![false; blocks.len()],
        };
        if matches!(presence, Presence::Morning | Presence::Partial) {
            // Partial means some but not all; a morning with no morning
            // class still means the first one.
            if !went.iter().any(|w| *w) {
                went[0] = true;
            }
            if presence == Presence::Partial && blocks.len() > 1 && went.iter().all(|w| *w) {
                let skip = 1 + self.rng.below(blocks.len() as u64 - 1) as usize;
                went[skip] = false;
            }
        }
        went
    }

    /// Work for today handed in today: mostly right after class, some in
    /// the evening.
    fn same_day_submissions(&mut self, enr: usize, class_end: u32, async_day: bool) {
        let (count, p) = self.assignments(enr, async_day);
        for _ in 0..count {
            if self.rng.chance(p) {
                let at = if self.rng.chance(0.6) {
                    class_end + self.between(0, 90 * MIN)
                } else {
                    self.between(16 * HOUR, 21 * HOUR + 30 * MIN)
                };
                let date = self.date;
                self.submission(enr, date, at);
            }
        }
    }

    /// A student who missed live class catches up in the evening: a recording
    /// of at least one class and, often, an assignment.
    fn catch_up(&mut self, blocks: &[Block], late_work: bool) {
        let video = self.school.video;
        let login = self.between(16 * HOUR, 20 * HOUR);
        self.login(login);
        let mut at = login + self.between(MIN, 10 * MIN);
        let live: Vec<usize> =
            blocks.iter().filter(|b| self.enrollment(b.enr).course_type == CourseType::Live).map(|b| b.enr).collect();
        let views = if live.is_empty() { 0 } else { self.rng.range(1, 2) };
        for _ in 0..views {
            let enr = live[self.rng.below(live.len() as u64) as usize];
            let secs = self.between(15 * MIN, 50 * MIN);
            let ev = self.push(ActivityKind::RecordingView, video, Some(enr), at);
            ev.duration_seconds = Some(secs as i64);
            at += secs + self.between(MIN, 5 * MIN);
        }
        if (views == 0 || self.rng.chance(0.6)) && !late_work {
            let enr = blocks[self.rng.below(blocks.len() as u64) as usize].enr;
            let (date, at) = (self.date, at + self.between(5 * MIN, 40 * MIN));
            self.submission(enr, date, at);
        }
    }

    /// Messages and calls that happen around the school day.
    fn chatter(&mut self, blocks: &[Block], attended: &[bool]) {
        if self.rng.chance(0.2) {
            let b = blocks[self.rng.below(blocks.len() as u64) as usize];
            self.conversation(b.enr);
        }
        // Office hours, mostly for students who are around anyway.
        if attended.iter().any(|a| *a) && self.rng.chance(0.03) {
            let b = blocks[self.rng.below(blocks.len() as u64) as usize];
            let at = self.between(14 * HOUR, 16 * HOUR);
            self.two_way_contact(b.enr, at, "office_hours");
        }
    }

    /// A teacher phones home about a student who was not in class.
    pub(crate) fn welfare_call(&mut self, blocks: &[Block], p: f64) {
        if blocks.is_empty() || !self.rng.chance(p) {
            return;
        }
        // The homeroom teacher in elementary school, any teacher later on.
        let enr =
            if is_elementary(self.student.grade_level) { 0 } else { blocks[self.rng.below(blocks.len() as u64) as usize].enr };
        let at = self.between(13 * HOUR, 17 * HOUR);
        self.two_way_contact(enr, at, "phone");
    }

    /// The teacher logs the week's returned packets on pickup day.
    pub(crate) fn packets_returned(&mut self, days: &[NaiveDate]) {
        let mut at = self.between(10 * HOUR, 13 * HOUR);
        let week = days.first().map(|d| d.to_string()).unwrap_or_default();
        for &day in days {
            let staff = self.enrollment(0).staff_id.clone();
            let ev = self.push(ActivityKind::OfflineWorkReturned, "teacher_log", Some(0), at);
            ev.assigned_date = Some(day);
            ev.staff_id = Some(staff);
            ev.attributes.insert("packet".into(), format!("week-of-{week}"));
            at += self.between(10, 120);
        }
    }

    /// Homework for `assigned` handed in this evening (the late submitter's
    /// habit). `rng` is the stream for the assigned day, so the same work is
    /// produced whichever round writes it.
    pub(crate) fn late_work(&mut self, assigned: NaiveDate, blocks: &[Block]) {
        let mut times = Vec::new();
        for b in blocks {
            let (count, p) = self.assignments(b.enr, false);
            for _ in 0..count {
                if self.rng.chance(p) {
                    let at = self.between(18 * HOUR, 22 * HOUR + 30 * MIN);
                    times.push((b.enr, at));
                }
            }
        }
        if let Some(first) = times.iter().map(|t| t.1).min() {
            let at = first.saturating_sub(self.between(2 * MIN, 15 * MIN));
            self.login(at);
        }
        for (enr, at) in times {
            self.submission(enr, assigned, at);
        }
    }

    /// Weekend and holiday browsing: a login and a few pages.
    pub(crate) fn off_day_browsing(&mut self) {
        let at = self.between(13 * HOUR, 19 * HOUR);
        self.login(at);
        let live: Vec<usize> = (0..self.student.enrollments.len()).filter(|i| !self.enrollment(*i).dual_enrollment).collect();
        for k in 0..self.rng.range(1, 3) {
            let enr = live[self.rng.below(live.len() as u64) as usize];
            let t = at + (k + 1) * self.between(2 * MIN, 12 * MIN);
            self.content(Some(enr), t);
        }
    }
}
