//! Records in: school calendars and roster records (the world), activity
//! events and absence reports. Each is checked and refused with a
//! [`Rejection`] a person can act on, or applied to the student's day
//! record; the windows it touched are evaluated at the next flush.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use rollcall_model::avro::AvroRecord;
use rollcall_model::{AbsenceReport, ActivityEvent, ActivityKind, SchoolCalendar, StudentRecord};
use rollcall_policy::Rule;

use crate::eval;
use crate::kv::{KvStore, Table};
use crate::school::{monday_of, School};
use crate::state::{self, Fact, ReportFact};

use super::records::DayKey;
use super::{reject, Applied, ApplyError, DeadLetterKind, Engine, EngineError, Rejection};

impl<S: KvStore> Engine<S> {
    pub(super) fn install_school(&mut self, cal: SchoolCalendar) -> Result<(), Rejection> {
        let bad = |kind, message: String| Rejection { kind, message };
        if cal.school_id.is_empty() {
            return Err(bad(DeadLetterKind::InvalidRecord, "calendar: school_id is empty".into()));
        }
        let tz = Tz::from_str(&cal.timezone).map_err(|_| {
            bad(
                DeadLetterKind::InvalidRecord,
                format!("calendar of school `{}`: timezone `{}` is not an IANA time zone name", cal.school_id, cal.timezone),
            )
        })?;
        let policy = self.policy(&cal.policy).ok_or_else(|| {
            bad(
                DeadLetterKind::UnknownPolicy,
                format!(
                    "calendar of school `{}`: policy `{}` is neither a preset ({}) nor a registered policy",
                    cal.school_id,
                    cal.policy,
                    rollcall_policy::PRESET_IDS.join(", ")
                ),
            )
        })?;
        let mut seen = BTreeSet::new();
        for (i, d) in cal.days.iter().enumerate() {
            if !seen.insert(d.date) {
                return Err(bad(
                    DeadLetterKind::InvalidRecord,
                    format!("calendar of school `{}`: days[{i}]: date {} is listed twice", cal.school_id, d.date),
                ));
            }
            if d.instructional && d.end <= d.start {
                return Err(bad(
                    DeadLetterKind::InvalidRecord,
                    format!(
                        "calendar of school `{}`: days[{i}] ({}): an instructional day needs start before end, got {}–{}",
                        cal.school_id, d.date, d.start, d.end
                    ),
                ));
            }
        }
        let id = cal.school_id.clone();
        let school = Arc::new(School::new(cal, tz, policy));
        self.schedule.retain(|(_, s, _)| *s != id);
        let after = self.clock.map(|c| c.timestamp_micros()).unwrap_or(i64::MIN);
        for (at, action) in school.close_schedule() {
            let at = at.timestamp_micros();
            if at > after {
                self.schedule.insert((at, id.clone(), action));
            }
        }
        self.schools.insert(id, school);
        self.world_changed();
        self.finalize_memo.get_mut().clear();
        self.horizon_memo.get_mut().clear();
        Ok(())
    }

    /// Loads (or replaces) a school calendar.
    pub fn load_calendar(&mut self, cal: SchoolCalendar) -> Result<(), ApplyError> {
        let bytes = cal.to_avro_datum().map_err(|e| reject(DeadLetterKind::InvalidRecord, e.to_string()))?;
        let key = cal.school_id.clone();
        self.install_school(cal).map_err(ApplyError::Rejected)?;
        self.store.put(Table::Calendar, key.as_bytes(), &bytes).map_err(EngineError::from)?;
        self.release_parked_at_school(&key)?;
        Ok(())
    }

    /// Loads (or replaces) a student's roster record.
    pub fn upsert_student(&mut self, rec: StudentRecord) -> Result<(), ApplyError> {
        if rec.student_id.is_empty() || rec.student_id.contains('\0') {
            return Err(reject(DeadLetterKind::InvalidRecord, "roster record: student_id is empty or contains NUL"));
        }
        if rec.school_id.is_empty() {
            return Err(reject(DeadLetterKind::InvalidRecord, "roster record: school_id is empty"));
        }
        for (i, e) in rec.enrollments.iter().enumerate() {
            for (j, m) in e.meetings.iter().enumerate() {
                if m.end <= m.start {
                    return Err(reject(
                        DeadLetterKind::InvalidRecord,
                        format!("roster record: enrollments[{i}].meetings[{j}]: start {} is not before end {}", m.start, m.end),
                    ));
                }
            }
        }
        if let Some(old) = self.student(&rec.student_id)? {
            if old.school_id != rec.school_id {
                self.store
                    .delete(Table::SchoolStudents, &state::school_student_key(&old.school_id, &old.student_id))
                    .map_err(EngineError::from)?;
            }
        }
        let bytes = rec.to_avro_datum().map_err(|e| reject(DeadLetterKind::InvalidRecord, e.to_string()))?;
        let store = &mut self.store;
        store.put(Table::Roster, rec.student_id.as_bytes(), &bytes).map_err(EngineError::from)?;
        store
            .put(Table::SchoolStudents, &state::school_student_key(&rec.school_id, &rec.student_id), &[])
            .map_err(EngineError::from)?;
        if self.roster.len() >= self.config.roster_cache_entries {
            self.roster.clear();
        }
        let no = self.names.number(&rec.student_id);
        let id = rec.student_id.clone();
        self.roster.insert(no, Arc::new(rec));
        self.world_changed();
        self.release_parked(&id)?;
        Ok(())
    }

    /// `what` names the record in a refusal; it is only built for one.
    fn check_time(&self, school: &School, at: DateTime<Utc>, what: &dyn Fn() -> String) -> Result<NaiveDate, ApplyError> {
        let date = school.local_date(at);
        if let Some(now) = self.clock.or(self.checks_at) {
            let skew = Duration::days(self.config.max_clock_skew_days);
            if at > now + skew || at < now - skew {
                return Err(reject(
                    DeadLetterKind::TimestampOutOfRange,
                    format!(
                        "{} {at} is more than {} days from the processing clock {now}",
                        what(),
                        self.config.max_clock_skew_days
                    ),
                ));
            }
            if now > self.correctable_until(school, date) {
                return Err(reject(
                    DeadLetterKind::TooLate,
                    format!(
                        "{} is for {date}, whose windows were final and past the {}-day correction horizon at {now}",
                        what(),
                        school.policy.correction_horizon_days
                    ),
                ));
            }
        }
        Ok(date)
    }

    pub(super) fn resolve(
        &mut self,
        student_id: &str,
        school_id: &str,
        what: &dyn Fn() -> String,
    ) -> Result<(u32, Arc<StudentRecord>, Arc<School>), ApplyError> {
        let (no, student) = self.student_no(student_id)?.ok_or_else(|| {
            reject(DeadLetterKind::UnknownStudent, format!("{}: student `{student_id}` is not on the roster", what()))
        })?;
        if !school_id.is_empty() && school_id != student.school_id {
            return Err(reject(
                DeadLetterKind::SchoolMismatch,
                format!("{}: school `{school_id}` but the roster has student `{student_id}` at `{}`", what(), student.school_id),
            ));
        }
        let school = self.schools.get(&student.school_id).cloned().ok_or_else(|| {
            reject(DeadLetterKind::UnknownSchool, format!("{}: no calendar for school `{}`", what(), student.school_id))
        })?;
        Ok((no, student, school))
    }

    /// Applies one activity event.
    pub fn apply_event(&mut self, ev: &ActivityEvent) -> Result<Applied, ApplyError> {
        let what = || format!("event `{}`", ev.event_id);
        if ev.event_id.is_empty() {
            return Err(reject(DeadLetterKind::InvalidRecord, "event: event_id is empty"));
        }
        let (no, student, school) = match self.resolve(&ev.student_id, &ev.school_id, &what) {
            Ok(r) => r,
            // Not known yet: it may wait for its roster record or calendar.
            Err(ApplyError::Rejected(r)) => return self.park(ev, r),
            Err(e) => return Err(e),
        };
        let date = self.check_time(&school, ev.occurred_at, &|| format!("{} occurred_at", what()))?;
        let at = self.now_or(ev.occurred_at);
        let hash = xxhash_rust::xxh3::xxh3_64(ev.event_id.as_bytes());
        if self.seen_before(no, hash, &ev.event_id)? {
            self.stats.duplicates += 1;
            return Ok(Applied::Duplicate);
        }
        if self.seen.get_mut(&no).expect("loaded by seen_before").note(hash, date) {
            self.seen_count += 1;
        }
        let fact = Fact {
            event_id: ev.event_id.clone(),
            kind: ev.kind,
            direction: ev.direction,
            section: ev.section_id.clone(),
            staff: ev.staff_id.clone(),
            at: ev.occurred_at.timestamp_micros(),
            local_date: date,
            assigned: ev.assigned_date,
            session: ev.live_session_id.clone(),
            duration_s: ev.duration_seconds,
            source: Some(ev.source.clone()).filter(|s| !s.is_empty()),
        };
        let assigned = ev
            .assigned_date
            .filter(|a| *a != date)
            .filter(|_| matches!(ev.kind, ActivityKind::Submission | ActivityKind::OfflineWorkReturned))
            // Work for a day beyond the horizon still counts as activity on the day it was done.
            .filter(|a| self.clock.map(|now| now <= self.correctable_until(&school, *a)).unwrap_or(true));
        match assigned {
            None => self.day_mut(no, date)?.facts.push(fact),
            Some(a) => {
                self.day_mut(no, date)?.facts.push(fact.clone());
                let arec = self.day_mut(no, a)?;
                if !arec.has_event(&ev.event_id) {
                    arec.facts.push(fact);
                }
            }
        }
        self.stats.events += 1;
        if at > self.closes_at(&school, &student, date) {
            self.stats.late_events += 1;
        }
        // Evaluated at the next flush, once for everything that arrived
        // together; a window whose rule does not read this kind of fact is
        // evaluated only if something else changed it (see `memo`).
        let rule = &school.policy.rule;
        self.dirty.push((no, date, false, self.day_still_reads(no, date, rule, ev.kind)));
        if let Some(a) = assigned {
            self.dirty.push((no, a, false, self.day_still_reads(no, a, rule, ev.kind)));
        }
        if matches!(rule, Rule::WeeklyContacts(_)) {
            let monday = monday_of(date);
            let fact = (ev.kind, ev.direction, ev.section_id.as_deref(), date);
            self.dirty.push((no, monday, true, self.week_still_reads(no, monday, rule, fact)));
        }
        if eval::reads_next_day(&school.policy) && matches!(ev.kind, ActivityKind::Message | ActivityKind::TwoWayContact) {
            if let Some(prev) = date.pred_opt() {
                self.dirty.push((no, prev, false, true));
            }
        }
        Ok(Applied::Accepted)
    }

    /// Applies one absence report.
    pub fn apply_report(&mut self, r: &AbsenceReport) -> Result<Applied, ApplyError> {
        let what = || format!("absence report `{}`", r.report_id);
        if r.report_id.is_empty() {
            return Err(reject(DeadLetterKind::InvalidRecord, "absence report: report_id is empty"));
        }
        let (no, _, school) = self.resolve(&r.student_id, "", &what)?;
        let noon = school.instant(r.date, 12 * 60);
        self.check_time(&school, noon, &|| format!("{} date", what()))?;
        let key = DayKey { student: no, date: r.date };
        self.cache_day(key)?;
        if self.days.get(&key).flatten().is_some_and(|rec| rec.reports.iter().any(|x| x.report_id == r.report_id)) {
            self.stats.duplicates += 1;
            return Ok(Applied::Duplicate);
        }
        self.day_mut(no, r.date)?.reports.push(ReportFact {
            report_id: r.report_id.clone(),
            reason: r.reason,
            reporter: r.reporter,
        });
        self.stats.reports += 1;
        self.dirty.push((no, r.date, false, true));
        Ok(Applied::Accepted)
    }
}

#[cfg(test)]
mod tests {
    use rollcall_model::DeadLetterKind;

    use super::super::fixtures::{at, chicago_school, submission};
    use super::*;

    fn refusal(r: Result<(), ApplyError>) -> Option<DeadLetterKind> {
        match r {
            Err(ApplyError::Rejected(r)) => Some(r.kind),
            _ => None,
        }
    }

    /// Before the clock is set, record times are judged against the time
    /// the processor gives, without moving the clock.
    #[test]
    fn times_are_judged_before_the_clock_is_set() {
        let mut e = chicago_school(&["s1"]);
        let event = submission("e1", "s1", "2020-10-05T15:00:00Z");
        assert_eq!(refusal(e.apply_event(&event).map(|_| ())), None, "no clock, no reference: accepted");
        e.judge_times_at(at("2026-11-30T00:00:00Z"));
        let late = submission("e2", "s1", "2020-10-05T16:00:00Z");
        assert_eq!(refusal(e.apply_event(&late).map(|_| ())), Some(DeadLetterKind::TimestampOutOfRange));
        assert_eq!(e.clock(), None, "judging does not move the clock");
        let mut e = chicago_school(&["s1"]);
        e.judge_times_at(at("2020-10-06T00:00:00Z"));
        assert_eq!(refusal(e.apply_event(&late).map(|_| ())), None, "within range");
    }
}
