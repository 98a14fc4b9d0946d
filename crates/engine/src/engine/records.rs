//! The records the engine reads through caches in front of the store:
//! roster records, day records and emitted versions, keyed by engine-local
//! student and section numbers so that a lookup builds no byte key. Changed
//! day and emitted records reach the store only at a write-back, so that a
//! batch encodes and writes each record once however many events touch it.

use std::sync::Arc;

use chrono::NaiveDate;
use rollcall_model::avro::AvroRecord;
use rollcall_model::{Scope, StudentRecord};

use crate::cache::FxHashMap;
use crate::codec::CodecError;
use crate::kv::{KvStore, Table};
use crate::state::{self, DayRecord, Emitted};

use super::dedup::SEEN_IDS_CAP;
use super::{Engine, EngineError};

/// Engine-local numbers for the student and section ids the engine has
/// met, so that the caches' keys are a few integers: hashing and comparing
/// them costs no string work, and a lookup builds no byte key. The numbers
/// never reach the store or the outputs, and differ between processes.
#[derive(Default)]
pub(super) struct Names {
    numbers: FxHashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Names {
    pub(super) fn number(&mut self, name: &str) -> u32 {
        if let Some(n) = self.numbers.get(name) {
            return *n;
        }
        let n = self.names.len() as u32;
        self.names.push(name.into());
        self.numbers.insert(name.into(), n);
        n
    }
    pub(super) fn get(&self, name: &str) -> Option<u32> {
        self.numbers.get(name).copied()
    }
    pub(super) fn name(&self, n: u32) -> &str {
        &self.names[n as usize]
    }
}

/// A student's day record in the cache (`state::day_key` in the store).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct DayKey {
    pub(super) student: u32,
    pub(super) date: NaiveDate,
}

/// An emitted version in the cache (`state::emitted_key` in the store).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct EmittedKey {
    pub(super) student: u32,
    pub(super) date: NaiveDate,
    pub(super) scope: Scope,
    /// The section's number, or `NO_SECTION`.
    pub(super) section: u32,
}

const NO_SECTION: u32 = u32::MAX;

impl<S: KvStore> Engine<S> {
    pub(super) fn student(&mut self, id: &str) -> Result<Option<Arc<StudentRecord>>, EngineError> {
        Ok(self.student_no(id)?.map(|(_, s)| s))
    }

    /// A student's roster record and number.
    pub(super) fn student_no(&mut self, id: &str) -> Result<Option<(u32, Arc<StudentRecord>)>, EngineError> {
        if let Some(no) = self.names.get(id) {
            if let Some(s) = self.roster.get(&no) {
                return Ok(Some((no, s.clone())));
            }
        }
        let Some(bytes) = self.store.get(Table::Roster, id.as_bytes())? else { return Ok(None) };
        let rec = StudentRecord::from_avro_datum(&bytes).map_err(|e| EngineError::CorruptRecord {
            table: Table::Roster,
            key: id.to_string(),
            message: e.to_string(),
        })?;
        let rec = Arc::new(rec);
        if self.roster.len() >= self.config.roster_cache_entries {
            self.roster.clear();
        }
        let no = self.names.number(id);
        self.roster.insert(no, rec.clone());
        Ok(Some((no, rec)))
    }

    /// The roster record of a student number.
    pub(super) fn student_by_no(&mut self, no: u32) -> Result<Option<Arc<StudentRecord>>, EngineError> {
        if let Some(s) = self.roster.get(&no) {
            return Ok(Some(s.clone()));
        }
        let id = self.names.name(no).to_string();
        self.student(&id)
    }

    /// Makes sure the day record under `key` is in the cache.
    pub(super) fn cache_day(&mut self, key: DayKey) -> Result<(), EngineError> {
        if self.days.get(&key).is_some() {
            return Ok(());
        }
        let store_key = state::day_key(self.names.name(key.student), key.date);
        let value = self.store.get(Table::Day, &store_key)?.map(|b| decode_stored(Table::Day, &store_key, &b, DayRecord::decode));
        self.days.insert_clean(key, value.transpose()?.map(Arc::new));
        Ok(())
    }

    /// A student's day record, if there is one.
    pub(super) fn day_record(&mut self, student: u32, date: NaiveDate) -> Result<Option<Arc<DayRecord>>, EngineError> {
        let key = DayKey { student, date };
        self.cache_day(key)?;
        Ok(self.days.get(&key).flatten().cloned())
    }

    pub(super) fn load_day(&mut self, student: u32, date: NaiveDate) -> Result<Arc<DayRecord>, EngineError> {
        Ok(self.day_record(student, date)?.unwrap_or_default())
    }

    /// A student's day record to change; created empty when there is none.
    pub(super) fn day_mut(&mut self, student: u32, date: NaiveDate) -> Result<&mut DayRecord, EngineError> {
        let key = DayKey { student, date };
        self.cache_day(key)?;
        Ok(self.days.modify(&key).expect("cached just now"))
    }

    pub(super) fn emitted_key(&mut self, student: u32, date: NaiveDate, scope: Scope, section: Option<&str>) -> EmittedKey {
        let section = section.map(|s| self.names.number(s)).unwrap_or(NO_SECTION);
        EmittedKey { student, date, scope, section }
    }

    pub(super) fn load_emitted(&mut self, key: EmittedKey) -> Result<Option<Arc<Emitted>>, EngineError> {
        if let Some(v) = self.emitted.get(&key) {
            return Ok(v.cloned());
        }
        let section = (key.section != NO_SECTION).then(|| self.names.name(key.section));
        let store_key = state::emitted_key(self.names.name(key.student), key.date, key.scope, section);
        let value =
            self.store.get(Table::Emitted, &store_key)?.map(|b| decode_stored(Table::Emitted, &store_key, &b, Emitted::decode));
        let value = value.transpose()?.map(Arc::new);
        self.emitted.insert_clean(key, value.clone());
        Ok(value)
    }

    /// Writes changed day and emitted records to the store's buffer, and
    /// bounds the caches.
    pub(super) fn write_back(&mut self) -> Result<(), EngineError> {
        let store = &mut self.store;
        let names = &self.names;
        self.days.write_back(|k, v| {
            let key = state::day_key(names.name(k.student), k.date);
            match v {
                Some(v) => store.put(Table::Day, &key, &v.encode()),
                None => store.delete(Table::Day, &key),
            }
        })?;
        self.emitted.write_back(|k, v| {
            let section = (k.section != NO_SECTION).then(|| names.name(k.section));
            let key = state::emitted_key(names.name(k.student), k.date, k.scope, section);
            match v {
                Some(v) => store.put(Table::Emitted, &key, &v.encode()),
                None => store.delete(Table::Emitted, &key),
            }
        })?;
        if self.days.len() + self.emitted.len() > self.config.record_cache_entries {
            self.days.clear();
            self.emitted.clear();
        }
        // Here, where every changed record is in the store (see `load_seen`).
        if self.seen_count > SEEN_IDS_CAP {
            self.seen.clear();
            self.seen_count = 0;
        }
        Ok(())
    }
}

/// Decodes a record read from the store under `key`; a failure names the
/// table and the key.
pub(super) fn decode_stored<T>(
    table: Table,
    key: &[u8],
    bytes: &[u8],
    decode: fn(&[u8]) -> Result<T, CodecError>,
) -> Result<T, EngineError> {
    decode(bytes).map_err(|source| EngineError::Corrupt { table, key: String::from_utf8_lossy(key).into_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{at, chicago_school_with, submission};
    use crate::EngineConfig;

    /// A record cache far smaller than the district decides exactly what
    /// an unbounded one does: what it drops is re-read from the store.
    #[test]
    fn a_small_record_cache_changes_no_decision() {
        let students: Vec<String> = (0..12).map(|i| format!("s{i}")).collect();
        let ids: Vec<&str> = students.iter().map(String::as_str).collect();
        let run = |cap: usize| {
            let mut e = chicago_school_with(EngineConfig { record_cache_entries: cap, ..EngineConfig::default() }, &ids);
            let mut largest = 0;
            for (day, close) in [("2020-10-05", "2020-10-06T02:00:00Z"), ("2020-10-06", "2020-10-07T02:00:00Z")] {
                for (i, s) in ids.iter().enumerate().filter(|(i, _)| (i + day.len()) % 3 != 0) {
                    let mut ev = submission(&format!("{day}-{i}"), s, &format!("{day}T15:00:00Z"));
                    ev.assigned_date = Some(day.parse().unwrap());
                    e.apply_event(&ev).unwrap();
                    // A batch every few events: each write-back bounds the caches.
                    if i % 4 == 3 {
                        e.flush().unwrap();
                        largest = largest.max(e.days.len() + e.emitted.len());
                    }
                }
                e.advance(at(close)).unwrap();
                e.flush().unwrap();
                largest = largest.max(e.days.len() + e.emitted.len());
            }
            e.advance(at("2020-10-20T12:00:00Z")).unwrap();
            e.flush().unwrap();
            (e.take_outputs(), largest)
        };
        let (unbounded, seen) = run(usize::MAX);
        assert!(seen > 8, "the district has more records than the small cache holds: {seen}");
        for cap in [0, 3, 8] {
            let (bounded, largest) = run(cap);
            assert_eq!(bounded, unbounded, "cap {cap}");
            assert!(largest <= cap, "cap {cap}: {largest} records stayed cached after a write-back");
        }
    }
}
