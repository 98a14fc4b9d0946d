//! Retention: a school year past its correction horizon can no longer
//! change, so what the engine kept to decide it (the students' day windows,
//! the versions it emitted, the absence marks of the year) leaves the
//! store. The weekly purge keeps a moving window already; this drops the
//! last weeks of the year, which no later week close would reach, and the
//! year's marks, so that a district's state does not grow from year to
//! year. The roster record stays (the student is usually still enrolled),
//! and so do the outreach trigger ids (hashes that name no one, which keep
//! an outreach from being raised twice).

use chrono::{Duration, NaiveDate};

use super::{Engine, EngineError};
use crate::cache::FxHashSet;
use crate::kv::{KvStore, Table};
use crate::state;

impl<S: KvStore> Engine<S> {
    /// Drops the school year `school_year` of the students of `school_id`:
    /// their day and emitted records up to `last`, and their marks of that
    /// year. Nothing when retention is off.
    pub(super) fn retire_year(&mut self, school_id: &str, school_year: i32, last: NaiveDate) -> Result<(), EngineError> {
        if !self.config.retire_closed_years {
            return Ok(());
        }
        // The range deletes below work on the store: it must hold every change.
        self.write_back()?;
        self.world_changed();
        let end_day = last + Duration::days(1);
        let mut retired: FxHashSet<u32> = FxHashSet::default();
        for sid in self.school_students(school_id)? {
            let start = state::student_prefix(&sid);
            let end = state::day_key(&sid, end_day);
            self.store.delete_range(Table::Day, &start, &end)?;
            self.store.delete_range(Table::Emitted, &start, &end)?;
            self.store.delete(Table::Year, &state::year_key(&sid, school_year))?;
            if let Some(no) = self.names.get(&sid) {
                retired.insert(no);
                if let Some(seen) = self.seen.get_mut(&no) {
                    let before = seen.first.len() + seen.more.len();
                    seen.first.retain(|_, d| *d > last);
                    seen.more.retain(|(_, d)| *d > last);
                    self.seen_count = self.seen_count.saturating_sub(before) + seen.first.len() + seen.more.len();
                }
            }
        }
        self.days.forget(|k| k.date <= last && retired.contains(&k.student));
        self.emitted.forget(|k| k.date <= last && retired.contains(&k.student));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{at, chicago_school_with, submission};
    use crate::kv::{KvStore, Table};
    use crate::EngineConfig;

    fn rows(e: &crate::Engine<crate::MemStore>, t: Table) -> usize {
        e.store().range(t, &[], &[0xff; 64], usize::MAX).unwrap().len()
    }

    /// The year's records stay until its correction horizon has passed,
    /// then leave; with retention off they stay. The determinations are the
    /// same either way.
    #[test]
    fn a_school_year_past_its_horizon_leaves_the_store() {
        let run = |retire: bool| {
            let mut e =
                chicago_school_with(EngineConfig { retire_closed_years: retire, ..EngineConfig::default() }, &["s1", "s2"]);
            for (i, s) in ["s1", "s2"].iter().enumerate() {
                e.apply_event(&submission(&format!("sub-{i}"), s, "2020-10-05T15:00:00Z")).unwrap();
            }
            // A week after the last day: final, within mmsd's horizon.
            e.advance(at("2020-10-13T12:00:00Z")).unwrap();
            e.flush().unwrap();
            let within = (rows(&e, Table::Day), rows(&e, Table::Emitted), rows(&e, Table::Year));
            // Half a year on: long past it.
            e.advance(at("2021-04-01T12:00:00Z")).unwrap();
            e.flush().unwrap();
            let after = (rows(&e, Table::Day), rows(&e, Table::Emitted), rows(&e, Table::Year));
            assert_eq!(rows(&e, Table::Roster), 2, "the roster records stay");
            let outputs = e.take_outputs();
            (within, after, outputs)
        };
        let (within, after, out_on) = run(true);
        assert!(within.0 > 0 && within.1 > 0 && within.2 > 0, "the year has state before its horizon: {within:?}");
        assert_eq!(after, (0, 0, 0), "nothing of the year after its horizon");
        let (within_off, after_off, out_off) = run(false);
        assert_eq!(within_off, within);
        assert_eq!(after_off.1, within.1, "kept without retention");
        assert_eq!(out_on, out_off, "retention changes no decision");
    }
}
