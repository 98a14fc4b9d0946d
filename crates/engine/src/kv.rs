//! The key-value interface the engine keeps its state behind.
//!
//! The engine owns the key layouts and encodings (see `state.rs`); a store
//! only keeps bytes in named tables and hands back ordered ranges. Writes are
//! buffered by the store until `commit`, so that a runtime can make a batch of
//! state changes durable together with the input position that produced them.

use std::collections::BTreeMap;
use std::ops::Bound;

/// The tables of engine state. Each is a RocksDB column family in the
/// persistent store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// student_id → StudentRecord (Avro datum).
    Roster,
    /// school_id \0 student_id → (): the students of a school, for closing its days.
    SchoolStudents,
    /// school_id → SchoolCalendar (Avro datum).
    Calendar,
    /// student_id \0 date → the day's activity facts and absence reports.
    Day,
    /// student_id \0 date \0 scope \0 section → last emitted version of a determination.
    Emitted,
    /// student_id \0 school year → absence marks and outreach already raised.
    Year,
    /// due micros \0 student_id \0 payload → a per-student timer.
    Timer,
    /// trigger_id → (): outreach already raised.
    Trigger,
    /// Not written: a re-sent event is recognised by its id in the day
    /// records (the table stays so that the numbers of the others do not move).
    Dedup,
    /// name → value: the engine clock and the runtime's input positions.
    Meta,
    /// student_id \0 event_id → an event waiting for its roster record or calendar.
    Parked,
}

impl Table {
    pub const ALL: [Table; 11] = [
        Table::Roster,
        Table::SchoolStudents,
        Table::Calendar,
        Table::Day,
        Table::Emitted,
        Table::Year,
        Table::Timer,
        Table::Trigger,
        Table::Dedup,
        Table::Meta,
        Table::Parked,
    ];

    /// The column family name.
    pub fn name(self) -> &'static str {
        match self {
            Table::Roster => "roster",
            Table::SchoolStudents => "school_students",
            Table::Calendar => "calendar",
            Table::Day => "day",
            Table::Emitted => "emitted",
            Table::Year => "year",
            Table::Timer => "timer",
            Table::Trigger => "trigger",
            Table::Dedup => "dedup",
            Table::Meta => "meta",
            Table::Parked => "parked",
        }
    }
}

/// A failure of the underlying store: what the store was doing, and the
/// backend's own error as the source (the engine does not know RocksDB, so
/// the source is boxed).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store: {what}")]
    Backend {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The store is not laid out as the engine needs (a table missing).
    #[error("state store: {0}")]
    Layout(String),
}

impl StoreError {
    pub fn backend(what: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        StoreError::Backend { what: what.into(), source: Box::new(source) }
    }
}

/// Ordered byte tables with buffered writes.
pub trait KvStore {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    fn delete(&mut self, table: Table, key: &[u8]) -> Result<(), StoreError>;
    /// Entries with `start <= key < end`, in key order, at most `limit`.
    fn range(&self, table: Table, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError>;
    /// Removes every key in `start <= key < end`.
    fn delete_range(&mut self, table: Table, start: &[u8], end: &[u8]) -> Result<(), StoreError> {
        for (k, _) in self.range(table, start, end, usize::MAX)? {
            self.delete(table, &k)?;
        }
        Ok(())
    }
    /// Makes every write so far durable, atomically.
    fn commit(&mut self) -> Result<(), StoreError>;
}

/// An in-memory store: the scenario runner's default and the tests' store.
#[derive(Debug, Default, Clone)]
pub struct MemStore {
    tables: BTreeMap<Table, BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held per table (keys plus values), for state-size checks.
    pub fn bytes(&self, table: Table) -> usize {
        self.tables.get(&table).map(|t| t.iter().map(|(k, v)| k.len() + v.len()).sum()).unwrap_or(0)
    }

    pub fn len(&self, table: Table) -> usize {
        self.tables.get(&table).map(|t| t.len()).unwrap_or(0)
    }
}

impl KvStore for MemStore {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tables.get(&table).and_then(|t| t.get(key)).cloned())
    }

    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.tables.entry(table).or_default().insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> Result<(), StoreError> {
        if let Some(t) = self.tables.get_mut(&table) {
            t.remove(key);
        }
        Ok(())
    }

    fn range(&self, table: Table, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        let Some(t) = self.tables.get(&table) else { return Ok(Vec::new()) };
        if start >= end {
            return Ok(Vec::new());
        }
        Ok(t.range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}
