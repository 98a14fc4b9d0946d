//! A write-back cache of decoded state records, and a fast hasher for the
//! engine's in-memory maps.
//!
//! A student's day record is read and rewritten by every event of that day
//! and read again by every evaluation; decoding and re-encoding it, and
//! going through the store's write buffer, each time was most of the cost
//! of an event. The engine keeps decoded records here and writes the changed
//! ones back to the store when it flushes or stages a batch, so the store
//! (and the Kafka changelog copied from its buffer) sees one write per
//! changed record per batch.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;

/// The Firefox/rustc hash: a multiply and a rotate per word. Not DoS
/// resistant, which the engine's keys (its own state) do not need.
#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.hash = (self.hash.rotate_left(5) ^ w).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // The multiply leaves the low bits depending only on the low bits
        // of each word, and the hash table picks buckets by the low bits:
        // keys that differ in their last bytes (a date after a student id)
        // would share buckets. Rotating brings the well-mixed high bits down.
        self.hash.rotate_left(26)
    }
}

pub type FxBuild = BuildHasherDefault<FxHasher>;
pub type FxHashMap<K, V> = HashMap<K, V, FxBuild>;
pub type FxHashSet<K> = std::collections::HashSet<K, FxBuild>;

/// A cached record: `None` when the store has no record under the key.
struct Slot<T> {
    value: Option<Arc<T>>,
    dirty: bool,
}

/// Decoded records of one table, by key, with the keys changed since the
/// last write-back. Keys are small fixed-size values (engine-local numbers
/// for ids, see `engine::records::Names`): the store's byte keys are built
/// only when a record is read from or written to the store.
pub struct RecordCache<K, T> {
    map: FxHashMap<K, Slot<T>>,
    dirty: Vec<K>,
}

impl<K, T> Default for RecordCache<K, T> {
    fn default() -> Self {
        RecordCache { map: FxHashMap::default(), dirty: Vec::new() }
    }
}

impl<K: Copy + Eq + Hash, T: Clone> RecordCache<K, T> {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// `None`: not cached; `Some(None)`: cached as absent.
    pub fn get(&self, key: &K) -> Option<Option<&Arc<T>>> {
        self.map.get(key).map(|s| s.value.as_ref())
    }

    /// Caches what the store holds.
    pub fn insert_clean(&mut self, key: K, value: Option<Arc<T>>) {
        self.map.insert(key, Slot { value, dirty: false });
    }

    /// Replaces a record (cached or not) and marks it changed.
    pub fn set(&mut self, key: K, value: T) {
        let slot = self.map.entry(key).or_insert(Slot { value: None, dirty: false });
        slot.value = Some(Arc::new(value));
        if !slot.dirty {
            slot.dirty = true;
            self.dirty.push(key);
        }
    }

    /// Hands every changed record to `write` (in the order they were first
    /// changed) and marks it clean.
    pub fn write_back<E>(&mut self, mut write: impl FnMut(&K, Option<&T>) -> Result<(), E>) -> Result<(), E> {
        for key in std::mem::take(&mut self.dirty) {
            if let Some(slot) = self.map.get_mut(&key).filter(|s| s.dirty) {
                slot.dirty = false;
                write(&key, slot.value.as_deref())?;
            }
        }
        Ok(())
    }

    #[cfg(test)]
    pub fn has_changes(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Forgets the records whose key `drop` picks, changed or not (their
    /// keys were removed from the store).
    pub fn forget(&mut self, mut drop: impl FnMut(&K) -> bool) {
        self.map.retain(|k, _| !drop(k));
    }

    /// Forgets everything, changed records included (after a write-back, or
    /// when the store was rolled back).
    pub fn clear(&mut self) {
        self.map.clear();
        self.dirty.clear();
    }
}

impl<K: Copy + Eq + Hash, T: Clone + Default> RecordCache<K, T> {
    /// A cached record to change (created empty when absent); it is written
    /// back at the next write-back. The key must be cached already.
    pub fn modify(&mut self, key: &K) -> Option<&mut T> {
        let slot = self.map.get_mut(key)?;
        if !slot.dirty {
            slot.dirty = true;
            self.dirty.push(*key);
        }
        Some(Arc::make_mut(slot.value.get_or_insert_with(Default::default)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_written_back_once() {
        let mut c: RecordCache<u32, Vec<u8>> = RecordCache::default();
        c.insert_clean(1, None);
        c.modify(&1).unwrap().push(1);
        c.modify(&1).unwrap().push(2);
        c.set(2, vec![9]);
        let mut seen = Vec::new();
        c.write_back(|k, v| -> Result<(), ()> {
            seen.push((*k, v.cloned()));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![(1, Some(vec![1, 2])), (2, Some(vec![9]))]);
        assert!(!c.has_changes());
        assert_eq!(c.get(&1).unwrap().map(|v| v.as_slice()), Some(&[1u8, 2][..]));
        assert!(c.get(&3).is_none());
    }
}
