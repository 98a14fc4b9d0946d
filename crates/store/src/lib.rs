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

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, Options, ReadOptions, WriteBatch, WriteOptions, DB,
};
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
        StoreConfig { block_cache_bytes: 64 << 20, write_buffer_bytes: 8 << 20, max_write_buffers: 2, sync_commits: false }
    }
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("state directory {path}: RocksDB cannot open it")]
    Rocks { path: PathBuf, source: rocksdb::Error },
}

/// RocksDB figures of one store, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RocksStats {
    pub live_data_bytes: u64,
    pub block_cache_usage_bytes: u64,
    pub pending_compaction_bytes: u64,
}

/// Bytes of state files on disk, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateFiles {
    pub sst: u64,
    /// Write-ahead log files (`NNNNNN.log`; not RocksDB's info `LOG`).
    pub wal: u64,
}

/// Buffered writes, one ordered map per table (indexed by `Table as usize`),
/// so a read looks a key up without building a (table, key) pair.
type Pending = Vec<BTreeMap<Vec<u8>, Option<Vec<u8>>>>;

fn no_pending() -> Pending {
    Table::ALL.iter().map(|_| BTreeMap::new()).collect()
}

/// The engine's tables in one RocksDB database.
pub struct RocksStore {
    db: DB,
    path: PathBuf,
    pending: Pending,
    /// Entries in `pending`, over every table.
    pending_len: usize,
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
            let point_lookups = matches!(table, Table::Day | Table::Emitted | Table::Roster | Table::Trigger | Table::Dedup);
            if point_lookups {
                b.set_bloom_filter(10.0, false);
            }
            o.set_block_based_table_factory(&b);
            if point_lookups {
                // Most lookups miss (a new event id, a window seen for the
                // first time): a bloom filter over the memtable answers them
                // without walking its skip list.
                o.set_memtable_whole_key_filtering(true);
                o.set_memtable_prefix_bloom_ratio(0.05);
            }
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
            .map_err(|source| OpenError::Rocks { path: path.to_path_buf(), source })?;
        Ok(RocksStore {
            db,
            path: path.to_path_buf(),
            pending: no_pending(),
            pending_len: 0,
            sync: cfg.sync_commits,
            _cache: cache,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The writes buffered since the last commit, in (table, key) order;
    /// `None` is a delete. The Kafka runtime copies them to its changelog.
    pub fn pending_writes(&self) -> impl Iterator<Item = (Table, &[u8], Option<&[u8]>)> {
        Table::ALL.iter().zip(&self.pending).flat_map(|(t, m)| m.iter().map(move |(k, v)| (*t, k.as_slice(), v.as_deref())))
    }

    /// Forgets every buffered write: the state is again what was last committed.
    pub fn rollback(&mut self) {
        self.pending.iter_mut().for_each(BTreeMap::clear);
        self.pending_len = 0;
    }

    /// Applies one write straight to the buffer (changelog restore).
    pub fn apply(&mut self, table: Table, key: &[u8], value: Option<&[u8]>) {
        self.buffer(table, key, value.map(<[u8]>::to_vec));
    }

    fn buffer(&mut self, table: Table, key: &[u8], value: Option<Vec<u8>>) {
        let m = &mut self.pending[table as usize];
        match m.get_mut(key) {
            Some(v) => *v = value,
            None => {
                m.insert(key.to_vec(), value);
                self.pending_len += 1;
            }
        }
    }

    fn cf(&self, table: Table) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db.cf_handle(table.name()).ok_or_else(|| StoreError::Layout(format!("column family {} missing", table.name())))
    }

    /// A RocksDB integer property summed over every column family
    /// (e.g. `rocksdb.estimate-live-data-size`, `rocksdb.block-cache-usage`).
    pub fn property_sum(&self, name: &str) -> u64 {
        self.property_values(name).sum()
    }

    /// A RocksDB integer property's largest value over the column families:
    /// for properties of something they share, such as the block cache.
    pub fn property_max(&self, name: &str) -> u64 {
        self.property_values(name).max().unwrap_or(0)
    }

    /// An integer property's value in each column family that has it.
    fn property_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = u64> + 'a {
        Table::ALL
            .iter()
            .filter_map(|t| self.db.cf_handle(t.name()))
            .filter_map(move |cf| self.db.property_int_value_cf(cf, name).ok().flatten())
    }

    /// The figures an operator watches: live data and pending compaction
    /// summed over the column families, and the usage of the one block
    /// cache they share (summing it would count it once per family).
    pub fn rocks_stats(&self) -> RocksStats {
        RocksStats {
            live_data_bytes: self.property_sum("rocksdb.estimate-live-data-size"),
            block_cache_usage_bytes: self.property_max("rocksdb.block-cache-usage"),
            pending_compaction_bytes: self.property_sum("rocksdb.estimate-pending-compaction-bytes"),
        }
    }

    /// A RocksDB integer property of one table (e.g. `rocksdb.total-sst-files-size`;
    /// for the block cache, shared by every table, any table gives the whole).
    pub fn table_property(&self, table: Table, name: &str) -> Option<u64> {
        let cf = self.db.cf_handle(table.name())?;
        self.db.property_int_value_cf(cf, name).ok().flatten()
    }

    /// Flushes every memtable, then counts the bytes of the SST files and of
    /// the write-ahead log files in the state directory.
    pub fn state_files(&self) -> Result<StateFiles, StoreError> {
        for t in Table::ALL {
            self.db.flush_cf(self.cf(t)?).map_err(|e| StoreError::backend(format!("flushing {}", t.name()), e))?;
        }
        let mut files = StateFiles::default();
        let rd = std::fs::read_dir(&self.path).map_err(|e| StoreError::backend(format!("listing {}", self.path.display()), e))?;
        for e in rd.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            let len = e.metadata().map(|m| m.len()).unwrap_or(0);
            if name.ends_with(".sst") {
                files.sst += len;
            } else if name.ends_with(".log") {
                files.wal += len;
            }
        }
        Ok(files)
    }

    /// Bytes of SST and WAL files on disk, after flushing memtables.
    pub fn disk_bytes(&self) -> Result<u64, StoreError> {
        for t in Table::ALL {
            self.db.flush_cf(self.cf(t)?).map_err(|e| StoreError::backend(format!("flushing {}", t.name()), e))?;
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

/// A RocksDB error, with what was being done to which table.
fn rocks_err(what: &'static str, table: Table) -> impl FnOnce(rocksdb::Error) -> StoreError {
    move |e| StoreError::backend(format!("{what} {}", table.name()), e)
}

impl KvStore for RocksStore {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.pending[table as usize].get(key) {
            return Ok(v.clone());
        }
        self.db.get_cf(self.cf(table)?, key).map_err(rocks_err("reading", table))
    }

    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.buffer(table, key, Some(value.to_vec()));
        Ok(())
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> Result<(), StoreError> {
        self.buffer(table, key, None);
        Ok(())
    }

    fn range(&self, table: Table, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        if start >= end || limit == 0 {
            return Ok(Vec::new());
        }
        // Merge the committed keys with the buffered writes in one ordered
        // pass, stopping at `limit` live entries; a buffered write wins.
        let mut out = Vec::new();
        let mut pending =
            self.pending[table as usize].range::<[u8], _>((Bound::Included(start), Bound::Excluded(end))).peekable();
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(end.to_vec());
        let mut it = self.db.raw_iterator_cf_opt(self.cf(table)?, opts);
        it.seek(start);
        while out.len() < limit {
            let committed = it.key();
            let (from_pending, skip_committed) = match (pending.peek(), committed) {
                (None, None) => break,
                (Some(_), None) => (true, false),
                (None, Some(_)) => (false, false),
                (Some((pk, _)), Some(ck)) => match pk.as_slice().cmp(ck) {
                    std::cmp::Ordering::Less => (true, false),
                    std::cmp::Ordering::Equal => (true, true),
                    std::cmp::Ordering::Greater => (false, false),
                },
            };
            if from_pending {
                let (k, v) = pending.next().expect("peeked");
                if let Some(v) = v {
                    out.push((k.clone(), v.clone()));
                }
                if skip_committed {
                    it.next();
                }
            } else {
                let (Some(k), Some(v)) = (it.key(), it.value()) else { break };
                out.push((k.to_vec(), v.to_vec()));
                it.next();
            }
        }
        it.status().map_err(rocks_err("scanning", table))?;
        Ok(out)
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        if self.pending_len == 0 {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        for (table, m) in Table::ALL.iter().zip(&self.pending) {
            if m.is_empty() {
                continue;
            }
            let cf = self.cf(*table)?;
            for (key, v) in m {
                match v {
                    Some(v) => batch.put_cf(cf, key, v),
                    None => batch.delete_cf(cf, key),
                }
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(self.sync);
        self.db.write_opt(batch, &wo).map_err(|e| StoreError::backend("committing a batch of writes", e))?;
        self.rollback();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rocksdb_conforms_to_the_store_interface() {
        // Each store gets a directory of its own, kept for the whole run.
        let dirs = std::cell::RefCell::new(Vec::new());
        let make = || {
            let dir = tempfile::tempdir().unwrap();
            let s = RocksStore::open(dir.path(), &StoreConfig::default()).unwrap();
            dirs.borrow_mut().push(dir);
            s
        };
        let reopen = |s: RocksStore| {
            let path = s.path().to_path_buf();
            drop(s);
            RocksStore::open(&path, &StoreConfig::default()).unwrap()
        };
        rollcall_engine::kv_conformance::run_all(&make, Some(&reopen));
    }

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
    fn rocks_stats_see_flushed_data() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = RocksStore::open(dir.path(), &StoreConfig::default()).unwrap();
        for i in 0..2_000u32 {
            s.put(Table::Day, &i.to_be_bytes(), &[7u8; 100]).unwrap();
        }
        s.commit().unwrap();
        s.disk_bytes().unwrap();
        let st = s.rocks_stats();
        assert!(st.live_data_bytes > 0, "{st:?}");
        assert!(s.get(Table::Day, &5u32.to_be_bytes()).unwrap().is_some());
        assert!(s.rocks_stats().block_cache_usage_bytes > 0);
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
