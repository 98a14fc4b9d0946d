//! The persistent state store: the engine's tables as RocksDB column
//! families, one database per partition (or per scenario run).
//!
//! Writes are buffered in memory and applied in one atomic `WriteBatch` on
//! `commit`, so a runtime can make a batch of state changes durable together
//! with the input positions (kept in the `meta` table) that produced them.
//! Reads see buffered writes first. Memory is capped by configuration: one
//! LRU block cache shared by every column family and bounded write buffers.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};

use rocksdb::{BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB};
use rollcall_engine::{KvStore, StoreError, Table};
use serde::{Deserialize, Serialize};

/// RocksDB settings that bound memory and pick durability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Shared LRU block cache, bytes.
    pub block_cache_bytes: usize,
    /// Memtable size per column family, bytes.
    pub write_buffer_bytes: usize,
    /// Memtables per column family before writes stall.
    pub max_write_buffers: i32,
    /// fsync the WAL on every commit. Off when the input log can replay what
    /// a lost commit held (the Kafka processor's recovery protocol).
    pub sync_commits: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            block_cache_bytes: 64 << 20,
            write_buffer_bytes: 8 << 20,
            max_write_buffers: 2,
            sync_commits: false,
        }
    }
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("state directory {path}: {message}")]
    Rocks { path: PathBuf, message: String },
}

type Pending = BTreeMap<(Table, Vec<u8>), Option<Vec<u8>>>;

/// The engine's tables in one RocksDB database.
pub struct RocksStore {
    db: DB,
    path: PathBuf,
    pending: Pending,
    sync: bool,
    _cache: Cache,
}

impl RocksStore {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path, cfg: &StoreConfig) -> Result<RocksStore, OpenError> {
        let cache = Cache::new_lru_cache(cfg.block_cache_bytes);
        let cf_opts = |table: Table| {
            let mut o = Options::default();
            let mut b = BlockBasedOptions::default();
            b.set_block_cache(&cache);
            b.set_cache_index_and_filter_blocks(true);
            if matches!(table, Table::Day | Table::Emitted | Table::Roster | Table::Trigger) {
                b.set_bloom_filter(10.0, false);
            }
            o.set_block_based_table_factory(&b);
            o.set_write_buffer_size(cfg.write_buffer_bytes);
            o.set_max_write_buffer_number(cfg.max_write_buffers);
            o.set_compression_type(DBCompressionType::Lz4);
            o.set_bottommost_compression_type(DBCompressionType::Zstd);
            ColumnFamilyDescriptor::new(table.name(), o)
        };
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_max_background_jobs(2);
        db_opts.set_keep_log_file_num(3);
        let cfs: Vec<_> = Table::ALL.iter().map(|t| cf_opts(*t)).collect();
        let db = DB::open_cf_descriptors(&db_opts, path, cfs)
            .map_err(|e| OpenError::Rocks { path: path.to_path_buf(), message: e.to_string() })?;
        Ok(RocksStore { db, path: path.to_path_buf(), pending: Pending::new(), sync: cfg.sync_commits, _cache: cache })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The writes buffered since the last commit, in (table, key) order;
    /// `None` is a delete. The Kafka runtime copies them to its changelog.
    pub fn pending_writes(&self) -> impl Iterator<Item = (Table, &[u8], Option<&[u8]>)> {
        self.pending.iter().map(|((t, k), v)| (*t, k.as_slice(), v.as_deref()))
    }

    /// Forgets every buffered write: the state is again what was last committed.
    pub fn rollback(&mut self) {
        self.pending.clear();
    }

    /// Applies one write straight to the buffer (changelog restore).
    pub fn apply(&mut self, table: Table, key: &[u8], value: Option<&[u8]>) {
        self.pending.insert((table, key.to_vec()), value.map(<[u8]>::to_vec));
    }

    fn cf(&self, table: Table) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db.cf_handle(table.name()).ok_or_else(|| StoreError(format!("column family {} missing", table.name())))
    }

    /// A RocksDB integer property summed over every column family
    /// (e.g. `rocksdb.estimate-live-data-size`, `rocksdb.block-cache-usage`).
    pub fn property_sum(&self, name: &str) -> u64 {
        Table::ALL
            .iter()
            .filter_map(|t| self.db.cf_handle(t.name()))
            .filter_map(|cf| self.db.property_int_value_cf(cf, name).ok().flatten())
            .sum()
    }

    /// Bytes of SST and WAL files on disk, after flushing memtables.
    pub fn disk_bytes(&self) -> Result<u64, StoreError> {
        for t in Table::ALL {
            self.db.flush_cf(self.cf(t)?).map_err(|e| StoreError(e.to_string()))?;
        }
        Ok(dir_size(&self.path))
    }

    /// Compacts every table fully (drops tombstones and deleted data).
    pub fn compact(&self) -> Result<(), StoreError> {
        for t in Table::ALL {
            self.db.compact_range_cf(self.cf(t)?, None::<&[u8]>, None::<&[u8]>);
        }
        Ok(())
    }
}

fn dir_size(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn rocks_err(e: rocksdb::Error) -> StoreError {
    StoreError(e.to_string())
}

impl KvStore for RocksStore {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.pending.get(&(table, key.to_vec())) {
            return Ok(v.clone());
        }
        self.db.get_cf(self.cf(table)?, key).map_err(rocks_err)
    }

    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.pending.insert((table, key.to_vec()), Some(value.to_vec()));
        Ok(())
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> Result<(), StoreError> {
        self.pending.insert((table, key.to_vec()), None);
        Ok(())
    }

    fn range(&self, table: Table, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        if start >= end || limit == 0 {
            return Ok(Vec::new());
        }
        // Merge the committed keys with the buffered writes; a buffered write wins.
        let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        let lo = (table, start.to_vec());
        let hi = (table, end.to_vec());
        for ((_, k), v) in self.pending.range((Bound::Included(lo), Bound::Excluded(hi))) {
            merged.insert(k.clone(), v.clone());
        }
        let mut taken = 0usize;
        let iter = self.db.iterator_cf(self.cf(table)?, IteratorMode::From(start, Direction::Forward));
        for item in iter {
            let (k, v) = item.map_err(rocks_err)?;
            if &*k >= end {
                break;
            }
            merged.entry(k.to_vec()).or_insert_with(|| Some(v.to_vec()));
            taken += 1;
            // Enough committed rows to fill `limit` even if every buffered one is a delete.
            if taken >= limit.saturating_add(self.pending.len()) {
                break;
            }
        }
        Ok(merged.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).take(limit).collect())
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        for ((table, key), v) in &self.pending {
            let cf = self.cf(*table)?;
            match v {
                Some(v) => batch.put_cf(cf, key, v),
                None => batch.delete_cf(cf, key),
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(self.sync);
        self.db.write_opt(batch, &wo).map_err(rocks_err)?;
        self.pending.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffered_writes_are_visible_and_commit_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = RocksStore::open(dir.path(), &StoreConfig::default()).unwrap();
        s.put(Table::Day, b"a", b"1").unwrap();
        s.put(Table::Day, b"b", b"2").unwrap();
        s.commit().unwrap();
        s.put(Table::Day, b"c", b"3").unwrap();
        s.delete(Table::Day, b"a").unwrap();
        assert_eq!(s.get(Table::Day, b"a").unwrap(), None);
        let r = s.range(Table::Day, b"a", b"z", 10).unwrap();
        assert_eq!(r, vec![(b"b".to_vec(), b"2".to_vec()), (b"c".to_vec(), b"3".to_vec())]);
        // Dropped without commit: the buffered writes are lost, the committed ones stay.
        drop(s);
        let s = RocksStore::open(dir.path(), &StoreConfig::default()).unwrap();
        assert_eq!(s.get(Table::Day, b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(s.get(Table::Day, b"c").unwrap(), None);
        assert_eq!(s.get(Table::Emitted, b"a").unwrap(), None);
    }

    #[test]
    fn range_limit_skips_buffered_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = RocksStore::open(dir.path(), &StoreConfig::default()).unwrap();
        for k in [b"k1", b"k2", b"k3", b"k4"] {
            s.put(Table::Timer, k, b"").unwrap();
        }
        s.commit().unwrap();
        s.delete(Table::Timer, b"k1").unwrap();
        s.delete(Table::Timer, b"k2").unwrap();
        let r = s.range(Table::Timer, b"k", b"l", 1).unwrap();
        assert_eq!(r, vec![(b"k3".to_vec(), vec![])]);
        s.delete_range(Table::Timer, b"k", b"l").unwrap();
        s.commit().unwrap();
        assert!(s.range(Table::Timer, b"", b"\xff", 10).unwrap().is_empty());
    }

    #[test]
    fn rollback_forgets_buffered_writes() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = RocksStore::open(dir.path(), &StoreConfig::default()).unwrap();
        s.put(Table::Day, b"a", b"1").unwrap();
        s.commit().unwrap();
        s.put(Table::Day, b"a", b"2").unwrap();
        s.delete(Table::Meta, b"m").unwrap();
        assert_eq!(s.pending_writes().count(), 2);
        s.rollback();
        assert_eq!(s.pending_writes().count(), 0);
        assert_eq!(s.get(Table::Day, b"a").unwrap(), Some(b"1".to_vec()));
    }

    #[test]
    fn unusable_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let err = RocksStore::open(&file, &StoreConfig::default()).err().unwrap().to_string();
        assert!(err.contains("not-a-dir"), "{err}");
    }
}
