//! The clock: moving it fires, in time order, the school closes of the
//! close schedule and the per-student timers of the `Timer` table (teacher
//! follow-ups after a missed block, the morning check); this file also
//! schedules those timers.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use rollcall_model::{OutreachKind, RecipientRole, StudentRecord};

use crate::cache::FxHashSet;
use crate::codec;
use crate::eval::{self, BlockAttendance, DayInput};
use crate::kv::{KvStore, Table};
use crate::school::{School, SchoolAction};
use crate::state::{self, DayRecord, TimerAction};

use super::outreach::Raise;
use super::purge::purge_horizon;
use super::{Engine, EngineError};

impl<S: KvStore> Engine<S> {
    pub(super) fn now_or(&self, fallback: DateTime<Utc>) -> DateTime<Utc> {
        self.clock.unwrap_or(fallback)
    }

    /// Judges the times of records against `now` (TIMESTAMP_OUT_OF_RANGE,
    /// TOO_LATE) while the clock has not been set, without moving it. Under
    /// a wall clock the processor reads its backlog before it sets the clock
    /// (so that closes see the whole roster); a record from years ago must
    /// not pass only because the clock has not been set yet.
    pub fn judge_times_at(&mut self, now: DateTime<Utc>) {
        self.checks_at = Some(now);
    }

    /// Moves the clock to `now`: evaluates what arrived since the last flush,
    /// then fires every close and timer due by then, in time order. Records
    /// that arrive at one instant are evaluated together, so their order
    /// among themselves cannot matter; a clock that does not move fires nothing.
    pub fn advance(&mut self, now: DateTime<Utc>) -> Result<(), EngineError> {
        if self.clock.is_none() {
            self.clock = Some(now);
        } else if self.clock.map(|c| now <= c).unwrap_or(false) {
            return Ok(());
        }
        self.evaluate_touched()?;
        let now_us = now.timestamp_micros();
        loop {
            let next_school = self.schedule.first().filter(|(at, _, _)| *at <= now_us).cloned();
            let next_timer = self.due_timer(now_us)?;
            let timer_at = next_timer.as_ref().and_then(|(k, _)| codec::i64_from_key(k));
            match (next_school, timer_at) {
                (None, None) => break,
                (Some(s), t) if t.map(|t| s.0 <= t).unwrap_or(true) => {
                    self.schedule.remove(&s);
                    let at = DateTime::from_timestamp_micros(s.0).unwrap_or(now);
                    self.set_clock(at);
                    self.fire_school(&s.1, &s.2, at)?;
                }
                _ => {
                    let Some((key, _)) = next_timer else { break };
                    self.store.delete(Table::Timer, &key)?;
                    self.pending_timers()?.remove(&key);
                    let Some((due, student, action)) = state::parse_timer_key(&key) else {
                        return Err(EngineError::CorruptRecord {
                            table: Table::Timer,
                            key: format!("{key:?}"),
                            message: "timer key does not parse".into(),
                        });
                    };
                    let at = DateTime::from_timestamp_micros(due).unwrap_or(now);
                    self.set_clock(at);
                    self.stats.timers_fired += 1;
                    self.fire_timer(&student, action, at)?;
                }
            }
        }
        self.set_clock(now);
        Ok(())
    }

    /// The pending timer keys (see `timers`).
    pub(super) fn pending_timers(&mut self) -> Result<&mut BTreeSet<Vec<u8>>, EngineError> {
        if self.timers.is_none() {
            let rows = self.store.range(Table::Timer, &[], &[0xff; 9], usize::MAX)?;
            self.timers = Some(rows.into_iter().map(|(k, _)| k).collect());
        }
        Ok(self.timers.as_mut().expect("read above"))
    }

    /// The earliest timer if it is due by `now_us`.
    fn due_timer(&mut self, now_us: i64) -> Result<Option<(Vec<u8>, Vec<u8>)>, EngineError> {
        let first = self.pending_timers()?.first();
        Ok(first.filter(|k| codec::i64_from_key(k).is_some_and(|d| d <= now_us)).map(|k| (k.clone(), Vec::new())))
    }

    fn set_clock(&mut self, t: DateTime<Utc>) {
        if self.clock.map(|c| t > c).unwrap_or(true) {
            self.clock = Some(t);
        }
    }

    pub(super) fn school_students(&self, school: &str) -> Result<Vec<String>, EngineError> {
        let prefix = state::student_prefix(school);
        let rows = self.store.range(Table::SchoolStudents, &prefix, &state::prefix_end(&prefix), usize::MAX)?;
        Ok(rows.into_iter().map(|(k, _)| String::from_utf8_lossy(&k[prefix.len()..]).into_owned()).collect())
    }

    fn fire_school(&mut self, school_id: &str, action: &SchoolAction, at: DateTime<Utc>) -> Result<(), EngineError> {
        let Some(school) = self.schools.get(school_id).cloned() else { return Ok(()) };
        if let SchoolAction::RetireYear { school_year, last } = action {
            return self.retire_year(school_id, *school_year, *last);
        }
        if matches!(action, SchoolAction::CloseWeek { .. }) {
            // Closing a week reads emitted versions by range and purges old
            // state by range, in the store: it must hold every change.
            self.write_back()?;
        }
        let mut closed: FxHashSet<u32> = FxHashSet::default();
        for sid in self.school_students(school_id)? {
            let Some((no, student)) = self.student_no(&sid)? else { continue };
            if student.school_id != school_id {
                continue;
            }
            match action {
                SchoolAction::CloseDays { date, rules } => {
                    self.reevaluate_day(no, &student, &school, *date, Some(rules), at)?;
                }
                SchoolAction::DayStarts { date } => self.schedule_morning_check(&student, &school, *date)?,
                SchoolAction::CloseWeek { monday } => {
                    self.close_week(no, &student, &school, *monday, at)?;
                    closed.insert(no);
                }
                SchoolAction::RetireYear { .. } => {}
            }
        }
        if let SchoolAction::CloseWeek { monday } = action {
            // The cached records must not outlive what `purge_before` removed
            // from the store: forget the purged dates of these students.
            let keep_from = purge_horizon(&school, *monday);
            self.days.forget(|k| k.date < keep_from && closed.contains(&k.student));
            self.emitted.forget(|k| k.date < keep_from && closed.contains(&k.student));
        }
        Ok(())
    }

    fn fire_timer(&mut self, student_id: &str, action: TimerAction, at: DateTime<Utc>) -> Result<(), EngineError> {
        // Its student is usually unknown: that is why it waited.
        if let TimerAction::ParkExpires { event_id } = &action {
            return self.expire_parked(student_id, event_id);
        }
        let Some((no, student)) = self.student_no(student_id)? else { return Ok(()) };
        let Some(school) = self.schools.get(&student.school_id).cloned() else { return Ok(()) };
        match action {
            TimerAction::BlockEnded { date, section } => {
                let Some(day) = school.instructional(date) else { return Ok(()) };
                let record = self.load_day(no, date)?;
                let input = DayInput { school: &school, day, student: &student, record: &record, next: None };
                let blocks = eval::block_attendance(&input);
                let morning = blocks.first().filter(|b| b.attended);
                let missed = blocks.iter().skip(1).find(|b| b.section == section && !b.attended);
                if let (Some(m), Some(b)) = (morning, missed) {
                    let policy = school.policy.clone();
                    self.raise(Raise {
                        student: &student,
                        policy: &policy,
                        kind: OutreachKind::TeacherFollowUp,
                        role: RecipientRole::Teacher,
                        staff: Some(b.staff.to_string()),
                        section: Some(b.section.to_string()),
                        window: (date, date),
                        reason: format!(
                            "present at the morning session ({} {}) but missed {} at {}–{}",
                            m.section, m.start, b.section, b.start, b.end
                        ),
                        evidence: m.evidence.iter().map(|e| e.to_string()).collect(),
                        discriminator: b.start.to_string(),
                        at,
                    })?;
                }
            }
            // Handled above, before the student is looked up.
            TimerAction::ParkExpires { .. } => {}
            TimerAction::MorningEnded { date } => {
                let Some(day) = school.instructional(date) else { return Ok(()) };
                let record = self.load_day(no, date)?;
                let input = DayInput { school: &school, day, student: &student, record: &record, next: None };
                let blocks = eval::block_attendance(&input);
                let Some(morning) = blocks.first().filter(|b| !b.attended) else { return Ok(()) };
                let policy = school.policy.clone();
                self.raise(Raise {
                    student: &student,
                    policy: &policy,
                    kind: OutreachKind::FamilyOutreach,
                    role: RecipientRole::AttendanceTeam,
                    staff: None,
                    section: Some(morning.section.to_string()),
                    window: (date, date),
                    reason: format!(
                        "missed the morning session ({} {}–{}): contact the family",
                        morning.section, morning.start, morning.end
                    ),
                    evidence: Vec::new(),
                    discriminator: "morning".into(),
                    at,
                })?;
            }
        }
        Ok(())
    }

    pub(super) fn schedule_follow_ups(&mut self, input: &DayInput, blocks: &[BlockAttendance]) -> Result<(), EngineError> {
        let Some(first) = blocks.first() else { return Ok(()) };
        if !first.attended {
            return Ok(());
        }
        for b in blocks.iter().skip(1).filter(|b| !b.attended) {
            let due = input.school.micros(input.day.date, b.end.minutes());
            let action = TimerAction::BlockEnded { date: input.day.date, section: b.section.to_string() };
            let key = state::timer_key(due, &input.student.student_id, &action);
            self.store.put(Table::Timer, &key, &[])?;
            if let Some(t) = self.timers.as_mut() {
                t.insert(key);
            }
        }
        Ok(())
    }

    /// instruction-partners: a timer at the end of the student's morning
    /// session of `date`, so that a missed morning reaches the family-outreach
    /// person as soon as it is over, even for a student with no events at all.
    fn schedule_morning_check(&mut self, student: &StudentRecord, school: &School, date: NaiveDate) -> Result<(), EngineError> {
        let Some(day) = school.instructional(date) else { return Ok(()) };
        let record = DayRecord::default();
        let input = DayInput { school, day, student, record: &record, next: None };
        let Some(morning) = eval::block_attendance(&input).into_iter().next() else { return Ok(()) };
        let due = school.micros(date, morning.end.minutes());
        let key = state::timer_key(due, &student.student_id, &TimerAction::MorningEnded { date });
        self.store.put(Table::Timer, &key, &[])?;
        if let Some(t) = self.timers.as_mut() {
            t.insert(key);
        }
        Ok(())
    }
}
