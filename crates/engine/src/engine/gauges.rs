//! Gauges for a runtime's metrics: open windows and schools in session.
//! They only read the close schedule, the calendars and the school index,
//! never window state, so that a scrape costs no record decoding.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, NaiveDate, Utc};

use crate::kv::{KvStore, Table};
use crate::school::SchoolAction;

use super::{Engine, EngineError};

/// Windows that have begun and not yet closed, counted per student.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenWindows {
    pub day: u64,
    pub week: u64,
}

impl<S: KvStore> Engine<S> {
    /// For each school, the instructional dates and weeks that have begun
    /// by the engine clock and whose close has not fired yet, times the
    /// school's students in this store. Read from the in-memory close
    /// schedule and one scan of the school index, not from window state: a
    /// day already finalized by an earlier rule of its date (in-person days
    /// close before remote ones) still counts until the date's last close.
    pub fn open_windows(&self) -> Result<OpenWindows, EngineError> {
        let Some(now) = self.clock else { return Ok(OpenWindows::default()) };
        // A school-local date is at most a day ahead of the UTC date.
        let latest = now.date_naive() + Duration::days(1);
        let mut days: HashMap<&str, BTreeSet<NaiveDate>> = HashMap::new();
        let mut weeks: HashMap<&str, BTreeSet<NaiveDate>> = HashMap::new();
        for (_, school_id, action) in &self.schedule {
            let (date, into) = match action {
                SchoolAction::CloseDays { date, .. } => (*date, &mut days),
                SchoolAction::CloseWeek { monday } => (*monday, &mut weeks),
                SchoolAction::DayStarts { .. } | SchoolAction::RetireYear { .. } => continue,
            };
            if date > latest {
                continue;
            }
            let Some(school) = self.schools.get(school_id) else { continue };
            if school.start_of(date) <= now {
                into.entry(school_id.as_str()).or_default().insert(date);
            }
        }
        if days.is_empty() && weeks.is_empty() {
            return Ok(OpenWindows::default());
        }
        let mut students: HashMap<Vec<u8>, u64> = HashMap::new();
        for (k, _) in self.store.range(Table::SchoolStudents, &[], &[0xff], usize::MAX)? {
            if let Some(sep) = k.iter().position(|b| *b == 0) {
                *students.entry(k[..sep].to_vec()).or_default() += 1;
            }
        }
        let count = |m: &HashMap<&str, BTreeSet<NaiveDate>>| -> u64 {
            m.iter().map(|(s, d)| d.len() as u64 * students.get(s.as_bytes()).copied().unwrap_or(0)).sum()
        };
        Ok(OpenWindows { day: count(&days), week: count(&weeks) })
    }

    /// Schools whose calendar makes the local date of `at` instructional.
    pub fn schools_in_session(&self, at: DateTime<Utc>) -> usize {
        self.schools.values().filter(|s| s.instructional(s.local_date(at)).is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::OpenWindows;
    use crate::engine::fixtures::{at, chicago_school};

    #[test]
    fn open_windows_follow_the_close_schedule() {
        let mut e = chicago_school(&["a", "b", "c"]);
        assert_eq!(e.open_windows().unwrap(), OpenWindows::default(), "no clock yet");
        // Sunday before: nothing has begun.
        e.advance(at("2020-10-04T12:00:00Z")).unwrap();
        assert_eq!(e.open_windows().unwrap(), OpenWindows { day: 0, week: 0 });
        assert_eq!(e.schools_in_session(at("2020-10-04T18:00:00Z")), 0);
        // Monday noon in Chicago: Monday's day window and the week are open.
        e.advance(at("2020-10-05T17:00:00Z")).unwrap();
        assert_eq!(e.open_windows().unwrap(), OpenWindows { day: 3, week: 3 });
        assert_eq!(e.schools_in_session(at("2020-10-05T17:00:00Z")), 1);
        // Wednesday: both days closed (mmsd closes at the end of each day), the week is open.
        e.advance(at("2020-10-07T17:00:00Z")).unwrap();
        assert_eq!(e.open_windows().unwrap().day, 0);
        assert_eq!(e.open_windows().unwrap().week, 3);
        assert_eq!(e.schools_in_session(at("2020-10-07T17:00:00Z")), 0);
    }
}
