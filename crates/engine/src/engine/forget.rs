//! Erasing a student, as student-privacy law lets a family ask: every
//! record the engine keeps of them leaves the store, in the batch that
//! carries the request, so the runtime's changelog carries the deletes and
//! a restore cannot bring the student back.

use rollcall_model::determination_key;

use super::{Engine, EngineError, Output};
use crate::kv::{KvStore, Table};
use crate::state;

/// What [`Engine::forget_student`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forgotten {
    /// The determination keys (`student|scope|date[|section]`) whose last
    /// versions the store still held; the runtime tombstones them on the
    /// determinations topic (older keys, past the correction horizon, are
    /// found on the topic itself).
    pub determination_keys: Vec<String>,
    /// The student erased.
    pub student_id: String,
    /// Records deleted from the store, over every table.
    pub records: usize,
}

impl<S: KvStore> Engine<S> {
    /// Removes every record of `student_id`: the roster record and the
    /// school's list entry, day windows, emitted versions, school-year
    /// marks, timers and parked events; windows of theirs waiting to be
    /// evaluated are dropped and the caches forget them. Outreach already
    /// raised is remembered only as hashed trigger ids, which name no one
    /// and stay, so that an outreach is never raised twice. Events for the
    /// student that come later wait for a roster record like any unknown
    /// student's.
    pub fn forget_student(&mut self, student_id: &str) -> Result<Forgotten, EngineError> {
        let no = self.names.get(student_id);
        if let Some(no) = no {
            self.dirty.retain(|t| t.0 != no);
        }
        self.world_changed();
        // Every other record changed in this batch reaches the store first:
        // the caches are emptied below.
        self.write_back()?;
        let mut records = 0;
        if let Some(rec) = self.student(student_id)? {
            self.store.delete(Table::SchoolStudents, &state::school_student_key(&rec.school_id, student_id))?;
            self.store.delete(Table::Roster, student_id.as_bytes())?;
            records += 2;
        }
        let start = state::student_prefix(student_id);
        let end = state::prefix_end(&start);
        let mut determination_keys = Vec::new();
        for (k, _) in self.store.range(Table::Emitted, &start, &end, usize::MAX)? {
            if let Some((date, scope, section)) = state::parse_emitted_key(student_id, &k) {
                determination_keys.push(determination_key(student_id, scope, date, section.as_deref()));
            }
        }
        for table in [Table::Day, Table::Emitted, Table::Year, Table::Parked] {
            let keys = self.store.range(table, &start, &end, usize::MAX)?;
            records += keys.len();
            for (k, _) in keys {
                self.store.delete(table, &k)?;
            }
        }
        let timers: Vec<Vec<u8>> = self
            .pending_timers()?
            .iter()
            .filter(|k| state::parse_timer_key(k).is_some_and(|(_, s, _)| s == student_id))
            .cloned()
            .collect();
        records += timers.len();
        for k in timers {
            self.store.delete(Table::Timer, &k)?;
            self.pending_timers()?.remove(&k);
        }
        if let Some(no) = no {
            self.roster.remove(&no);
            if let Some(seen) = self.seen.remove(&no) {
                self.seen_count = self.seen_count.saturating_sub(seen.first.len() + seen.more.len());
            }
        }
        self.days.clear();
        self.emitted.clear();
        let forgotten = Forgotten { determination_keys, records, student_id: student_id.to_string() };
        self.out.push(Output::Forgotten(forgotten.clone()));
        Ok(forgotten)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{at, chicago_school, submission};
    use super::super::{Applied, Output};
    use crate::kv::{KvStore, MemStore, Table};
    use crate::Engine;

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    /// Every (table, key, value) in the store.
    fn everything(e: &Engine<MemStore>) -> Vec<(Table, Vec<u8>, Vec<u8>)> {
        let mut all = Vec::new();
        for t in Table::ALL {
            for (k, v) in e.store().range(t, &[], &[0xff; 64], usize::MAX).unwrap() {
                all.push((t, k, v));
            }
        }
        all
    }

    #[test]
    fn a_forgotten_student_leaves_nothing_and_the_others_keep_everything() {
        let (gone, kept) = ("student-forgotten", "student-kept");
        let mut e = chicago_school(&[gone, kept]);
        for (i, s) in [gone, kept].iter().enumerate() {
            e.apply_event(&submission(&format!("sub-{i}"), s, "2020-10-05T15:00:00Z")).unwrap();
        }
        // Tuesday's window stays open: a timer and an undecided day remain.
        e.advance(at("2020-10-06T16:00:00Z")).unwrap();
        e.flush().unwrap();
        let outputs = e.take_outputs();
        assert!(outputs.iter().any(|o| matches!(o, Output::Determination(d) if d.student_id == gone)));
        let before = everything(&e);
        assert!(before.iter().filter(|(t, ..)| *t == Table::Emitted).count() >= 2);
        let of = |all: &[(Table, Vec<u8>, Vec<u8>)], who: &str| -> Vec<(Table, Vec<u8>, Vec<u8>)> {
            all.iter().filter(|(_, k, v)| contains(k, who.as_bytes()) || contains(v, who.as_bytes())).cloned().collect()
        };
        assert!(of(&before, gone).len() >= 4, "the student had state: {:?}", of(&before, gone));

        let forgotten = e.forget_student(gone).unwrap();
        assert_eq!(e.take_outputs(), vec![Output::Forgotten(forgotten.clone())]);
        e.flush().unwrap();
        e.store_mut().commit().unwrap();
        assert!(!forgotten.determination_keys.is_empty());
        assert!(forgotten.determination_keys.iter().all(|k| k.starts_with(&format!("{gone}|"))), "{forgotten:?}");
        assert_eq!(forgotten.records, of(&before, gone).len(), "{:?}", of(&before, gone));
        let after = everything(&e);
        assert_eq!(of(&after, gone), Vec::new(), "nothing of the student remains");
        assert_eq!(of(&after, kept), of(&before, kept), "the other student's records are untouched");

        // The days close; nothing more is decided for the forgotten student,
        // and an event of theirs that comes now waits like an unknown student's.
        e.advance(at("2020-10-08T12:00:00Z")).unwrap();
        e.flush().unwrap();
        let outputs = e.take_outputs();
        assert!(outputs.iter().all(|o| !matches!(o, Output::Determination(d) if d.student_id == gone)), "{outputs:?}");
        assert!(outputs.iter().any(|o| matches!(o, Output::Determination(d) if d.student_id == kept)));
        let late = submission("sub-late", gone, "2020-10-06T15:00:00Z");
        assert!(matches!(e.apply_event(&late), Ok(Applied::Parked)));
        // Forgetting someone the engine never knew removes nothing.
        let nobody = e.forget_student("nobody").unwrap();
        assert_eq!((nobody.records, nobody.determination_keys.len()), (0, 0));
    }
}
