//! When a student's window closes, when a closed window becomes final, and
//! until when a date may still be corrected. The instants come from the
//! school's calendar and policy; they are memoised per school and date
//! because every event asks, and the memos are cleared when a calendar is
//! (re)loaded.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rollcall_model::StudentRecord;
use rollcall_policy::Rule;

use crate::kv::KvStore;
use crate::school::{FinalizeKey, School};

use super::Engine;

impl<S: KvStore> Engine<S> {
    /// The last instant at which a window of `date` may still change: its
    /// latest finalization plus the correction horizon.
    pub(super) fn correctable_until(&self, school: &School, date: NaiveDate) -> DateTime<Utc> {
        let key = (school as *const School as usize, date);
        if let Some(t) = self.horizon_memo.borrow().get(&key) {
            return *t;
        }
        let t = self.compute_correctable_until(school, date);
        self.horizon_memo.borrow_mut().insert(key, t);
        t
    }

    /// When a window of `date` closed by `rule` becomes final.
    pub(super) fn finalize_instant(&self, school: &School, date: NaiveDate, rule: FinalizeKey) -> DateTime<Utc> {
        let key = (school as *const School as usize, date, rule);
        if let Some(t) = self.finalize_memo.borrow().get(&key) {
            return *t;
        }
        let t = school.finalize_instant(date, rule);
        self.finalize_memo.borrow_mut().insert(key, t);
        t
    }

    fn compute_correctable_until(&self, school: &School, date: NaiveDate) -> DateTime<Utc> {
        let f = &school.policy.finalize;
        let last = [f.in_person_day, f.remote_day, f.offline_day, f.week]
            .into_iter()
            .map(|r| school.finalize_instant(date, FinalizeKey::from(r)))
            .max()
            .unwrap_or_else(|| school.start_of(date));
        last + Duration::days(school.policy.correction_horizon_days as i64)
    }

    /// When the window of `date` closes for this student.
    pub(super) fn closes_at(&self, school: &School, student: &StudentRecord, date: NaiveDate) -> DateTime<Utc> {
        let f = &school.policy.finalize;
        let mode = student.mode_on(date);
        let rule = if matches!(school.policy.rule, Rule::WeeklyContacts(_)) && mode != rollcall_model::Mode::InPerson {
            f.week
        } else if mode == rollcall_model::Mode::InPerson {
            f.in_person_day
        } else if mode.is_offline() {
            f.offline_day
        } else {
            f.remote_day
        };
        self.finalize_instant(school, date, rule.into())
    }
}
