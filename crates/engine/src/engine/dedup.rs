//! Which event ids were applied already. The day records are the truth;
//! in memory the engine keeps only a hash of each id and the date whose
//! record holds it, loaded per student on first sight, so that a duplicate
//! costs one record lookup however old the original is.

use std::sync::Arc;

use chrono::NaiveDate;

use crate::cache::FxHashMap;
use crate::codec;
use crate::kv::{KvStore, Table};
use crate::state::{self, DayRecord};

use super::records::{decode_stored, DayKey};
use super::{Engine, EngineError};

/// Bound on the event-id hashes kept in memory (12 bytes and some each).
pub(super) const SEEN_IDS_CAP: usize = 4_000_000;

/// The event ids of one student, by hash: the local date of the event
/// (whose day record holds it), and for the rare hash shared by ids of
/// different dates, the other dates.
#[derive(Default)]
pub(super) struct SeenIds {
    pub(super) first: FxHashMap<u64, NaiveDate>,
    pub(super) more: Vec<(u64, NaiveDate)>,
}

impl SeenIds {
    /// Returns whether an entry was added.
    pub(super) fn note(&mut self, hash: u64, date: NaiveDate) -> bool {
        match self.first.entry(hash) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(date);
                true
            }
            std::collections::hash_map::Entry::Occupied(o) => {
                if *o.get() == date || self.more.contains(&(hash, date)) {
                    false
                } else {
                    self.more.push((hash, date));
                    true
                }
            }
        }
    }
}

impl<S: KvStore> Engine<S> {
    /// Whether the student's day records hold this event id already: the
    /// record of the date its hash points to (one record, usually cached)
    /// is searched for the id itself, so a hash collision is never taken
    /// for a duplicate.
    pub(super) fn seen_before(&mut self, no: u32, hash: u64, event_id: &str) -> Result<bool, EngineError> {
        if !self.seen.contains_key(&no) {
            self.load_seen(no)?;
        }
        let seen = &self.seen[&no];
        let Some(first) = seen.first.get(&hash).copied() else { return Ok(false) };
        let more: Vec<NaiveDate> = seen.more.iter().filter(|(h, _)| *h == hash).map(|(_, d)| *d).collect();
        for date in std::iter::once(first).chain(more) {
            let key = DayKey { student: no, date };
            self.cache_day(key)?;
            if self.days.get(&key).flatten().is_some_and(|r| r.has_event(event_id)) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Reads a student's day records (into the cache as well) to learn the
    /// event ids they hold. Every record changed since the last write-back
    /// that holds facts was changed by an event of a student whose ids were
    /// in memory already, so the store has all of this student's facts.
    fn load_seen(&mut self, no: u32) -> Result<(), EngineError> {
        let prefix = state::student_prefix(self.names.name(no));
        let mut seen = SeenIds::default();
        for (k, v) in self.store.range(Table::Day, &prefix, &state::prefix_end(&prefix), usize::MAX)? {
            let Some(date) = codec::date_from_key(&k[prefix.len()..]) else {
                return Err(EngineError::CorruptRecord {
                    table: Table::Day,
                    key: String::from_utf8_lossy(&k).into_owned(),
                    message: "the key does not end in a date".into(),
                });
            };
            let key = DayKey { student: no, date };
            let rec = match self.days.get(&key) {
                Some(Some(r)) => r.clone(),
                Some(None) => continue,
                None => {
                    let rec = Arc::new(decode_stored(Table::Day, &k, &v, DayRecord::decode)?);
                    self.days.insert_clean(key, Some(rec.clone()));
                    rec
                }
            };
            for f in &rec.facts {
                seen.note(xxhash_rust::xxh3::xxh3_64(f.event_id.as_bytes()), f.local_date);
            }
        }
        self.seen_count += seen.first.len() + seen.more.len();
        self.seen.insert(no, seen);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rollcall_model::{ActivityEvent, ActivityKind};
    use rollcall_policy::Policy;

    use crate::engine::fixtures::{at, chicago_school};
    use crate::engine::{Applied, Engine, EngineConfig};

    #[test]
    fn a_resent_event_is_a_duplicate_after_a_reopen_and_a_reload() {
        let mut e = chicago_school(&["a"]);
        let ev = |id: &str, t: &str| ActivityEvent {
            event_id: id.into(),
            source: "lms".into(),
            student_id: "a".into(),
            school_id: "sch".into(),
            section_id: None,
            staff_id: None,
            kind: ActivityKind::CheckIn,
            direction: None,
            occurred_at: at(t),
            assigned_date: None,
            live_session_id: None,
            duration_seconds: None,
            attributes: Default::default(),
            received_at: None,
        };
        e.advance(at("2020-10-05T14:00:00Z")).unwrap();
        assert_eq!(e.apply_event(&ev("e1", "2020-10-05T14:00:00Z")).unwrap(), Applied::Accepted);
        e.commit().unwrap();
        // Reopened over the committed store: the id is known, whatever its timestamp.
        let mut e = Engine::open(e.into_store(), EngineConfig::default()).unwrap();
        e.register_policy(Policy::preset("mmsd").unwrap());
        assert_eq!(e.apply_event(&ev("e1", "2020-10-06T14:00:00Z")).unwrap(), Applied::Duplicate);
        assert_eq!(e.apply_event(&ev("e2", "2020-10-05T15:00:00Z")).unwrap(), Applied::Accepted);
        // Never staged: after a reload the store has not seen e2.
        e.reload().unwrap();
        assert_eq!(e.apply_event(&ev("e2", "2020-10-05T15:00:00Z")).unwrap(), Applied::Accepted);
        assert_eq!(e.apply_event(&ev("e2", "2020-10-06T15:00:00Z")).unwrap(), Applied::Duplicate);
        assert_eq!(e.apply_event(&ev("e1", "2020-10-05T14:00:00Z")).unwrap(), Applied::Duplicate);
        assert_eq!(e.stats().duplicates, 3);
    }
}
