//! Purging: once a week closes, the state of dates past the correction
//! horizon can no longer change, so the student's day and emitted records
//! of those dates leave the store, and their ids leave the dedup memory.

use chrono::{Duration, NaiveDate};
use rollcall_model::StudentRecord;

use crate::kv::{KvStore, Table};
use crate::school::School;
use crate::state;

use super::{Engine, EngineError};

impl<S: KvStore> Engine<S> {
    /// Drops what can no longer change: day windows, emitted versions and
    /// timers of dates past the correction horizon.
    pub(super) fn purge_before(
        &mut self,
        no: u32,
        student: &StudentRecord,
        school: &School,
        monday: NaiveDate,
    ) -> Result<(), EngineError> {
        let keep_from = purge_horizon(school, monday);
        self.world_changed();
        let sid = &student.student_id;
        let start = state::student_prefix(sid);
        let end = state::day_key(sid, keep_from);
        self.store.delete_range(Table::Day, &start, &end)?;
        self.store.delete_range(Table::Emitted, &start, &end)?;
        if let Some(seen) = self.seen.get_mut(&no) {
            let before = seen.first.len() + seen.more.len();
            seen.first.retain(|_, d| *d >= keep_from);
            seen.more.retain(|(_, d)| *d >= keep_from);
            self.seen_count = self.seen_count.saturating_sub(before) + seen.first.len() + seen.more.len();
        }
        Ok(())
    }
}

/// Closing the week of `monday` drops the state of the dates before this one.
pub(super) fn purge_horizon(school: &School, monday: NaiveDate) -> NaiveDate {
    monday - Duration::days(school.policy.correction_horizon_days as i64 + 21)
}
