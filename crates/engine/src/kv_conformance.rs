//! One suite of behaviour every [`KvStore`] must show, run against the
//! in-memory store here and against RocksDB in the store crate: the engine
//! is tested on the first and runs on the second, so they must not differ.
//!
//! Each check panics with what differed. `reopen` turns a store into the
//! same store opened again (RocksDB: closed and reopened from its
//! directory); a store with nothing to reopen passes `None` and the
//! durability checks are left out.

use crate::kv::{KvStore, Table};

fn kv(k: &[u8], v: &[u8]) -> (Vec<u8>, Vec<u8>) {
    (k.to_vec(), v.to_vec())
}

/// Every check, each on a fresh store from `make`.
pub fn run_all<S: KvStore>(make: &dyn Fn() -> S, reopen: Option<&dyn Fn(S) -> S>) {
    get_put_delete(make());
    tables_are_separate(make());
    ranges_are_ordered_half_open_and_limited(make());
    binary_keys_sort_bytewise(make());
    delete_range_removes_exactly_the_range(make());
    buffered_writes_are_read_back_before_commit(make());
    if let Some(reopen) = reopen {
        commit_is_what_survives_a_reopen(make(), reopen);
    }
}

fn get_put_delete<S: KvStore>(mut s: S) {
    assert_eq!(s.get(Table::Day, b"k").unwrap(), None, "a new store is empty");
    s.put(Table::Day, b"k", b"v1").unwrap();
    assert_eq!(s.get(Table::Day, b"k").unwrap(), Some(b"v1".to_vec()));
    s.put(Table::Day, b"k", b"v2").unwrap();
    assert_eq!(s.get(Table::Day, b"k").unwrap(), Some(b"v2".to_vec()), "a put replaces");
    s.put(Table::Day, b"empty", b"").unwrap();
    assert_eq!(s.get(Table::Day, b"empty").unwrap(), Some(Vec::new()), "an empty value is a value, not a delete");
    s.delete(Table::Day, b"k").unwrap();
    assert_eq!(s.get(Table::Day, b"k").unwrap(), None);
    s.delete(Table::Day, b"never").unwrap();
    s.commit().unwrap();
    assert_eq!(s.get(Table::Day, b"k").unwrap(), None, "a delete survives its commit");
    assert_eq!(s.get(Table::Day, b"empty").unwrap(), Some(Vec::new()));
}

fn tables_are_separate<S: KvStore>(mut s: S) {
    for (i, t) in Table::ALL.iter().enumerate() {
        s.put(*t, b"same-key", &[i as u8]).unwrap();
    }
    s.commit().unwrap();
    for (i, t) in Table::ALL.iter().enumerate() {
        assert_eq!(s.get(*t, b"same-key").unwrap(), Some(vec![i as u8]), "{t:?}");
        assert_eq!(s.range(*t, b"", &[0xff], usize::MAX).unwrap().len(), 1, "{t:?}");
    }
    s.delete(Table::Timer, b"same-key").unwrap();
    assert_eq!(
        s.get(Table::Day, b"same-key").unwrap(),
        Some(vec![Table::ALL.iter().position(|t| *t == Table::Day).unwrap() as u8])
    );
}

fn ranges_are_ordered_half_open_and_limited<S: KvStore>(mut s: S) {
    for k in ["b", "d", "a", "c", "e"] {
        s.put(Table::Emitted, k.as_bytes(), k.as_bytes()).unwrap();
    }
    s.commit().unwrap();
    let all = s.range(Table::Emitted, b"a", b"z", usize::MAX).unwrap();
    assert_eq!(all, ["a", "b", "c", "d", "e"].map(|k| kv(k.as_bytes(), k.as_bytes())).to_vec(), "in key order");
    let mid = s.range(Table::Emitted, b"b", b"d", usize::MAX).unwrap();
    assert_eq!(mid, vec![kv(b"b", b"b"), kv(b"c", b"c")], "start included, end excluded");
    assert_eq!(s.range(Table::Emitted, b"a", b"z", 2).unwrap(), vec![kv(b"a", b"a"), kv(b"b", b"b")], "at most limit");
    assert_eq!(s.range(Table::Emitted, b"a", b"z", 0).unwrap(), vec![], "limit 0");
    assert_eq!(s.range(Table::Emitted, b"d", b"b", usize::MAX).unwrap(), vec![], "start after end");
    assert_eq!(s.range(Table::Emitted, b"c", b"c", usize::MAX).unwrap(), vec![], "start equal to end");
    assert_eq!(s.range(Table::Emitted, b"bb", b"cc", usize::MAX).unwrap(), vec![kv(b"c", b"c")], "bounds between keys");
}

fn binary_keys_sort_bytewise<S: KvStore>(mut s: S) {
    let keys: [&[u8]; 5] = [b"\x00", b"a\x00b", b"a", b"a\xff", b"\xff\xff"];
    for k in keys {
        s.put(Table::Timer, k, b"x").unwrap();
    }
    let got: Vec<Vec<u8>> =
        s.range(Table::Timer, b"", &[0xff, 0xff, 0xff], usize::MAX).unwrap().into_iter().map(|(k, _)| k).collect();
    let mut want: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
    want.sort();
    assert_eq!(got, want, "buffered binary keys sort as bytes");
    s.commit().unwrap();
    let got: Vec<Vec<u8>> =
        s.range(Table::Timer, b"", &[0xff, 0xff, 0xff], usize::MAX).unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(got, want, "committed binary keys sort as bytes");
}

fn delete_range_removes_exactly_the_range<S: KvStore>(mut s: S) {
    for k in ["s1\x002020-10-01", "s1\x002020-10-05", "s1\x002020-10-09", "s2\x002020-10-01"] {
        s.put(Table::Day, k.as_bytes(), b"v").unwrap();
    }
    s.commit().unwrap();
    s.put(Table::Day, b"s1\x002020-10-02", b"buffered").unwrap();
    s.delete_range(Table::Day, b"s1\x00", b"s1\x002020-10-06").unwrap();
    let left: Vec<Vec<u8>> = s.range(Table::Day, b"", &[0xff], usize::MAX).unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        left,
        vec![b"s1\x002020-10-09".to_vec(), b"s2\x002020-10-01".to_vec()],
        "committed and buffered keys in the range go"
    );
    s.commit().unwrap();
    let left = s.range(Table::Day, b"", &[0xff], usize::MAX).unwrap().len();
    assert_eq!(left, 2, "and stay gone once committed");
}

fn buffered_writes_are_read_back_before_commit<S: KvStore>(mut s: S) {
    s.put(Table::Year, b"a", b"1").unwrap();
    s.put(Table::Year, b"c", b"3").unwrap();
    s.commit().unwrap();
    s.put(Table::Year, b"b", b"2").unwrap();
    s.delete(Table::Year, b"c").unwrap();
    s.put(Table::Year, b"a", b"1b").unwrap();
    assert_eq!(s.get(Table::Year, b"a").unwrap(), Some(b"1b".to_vec()));
    assert_eq!(s.get(Table::Year, b"c").unwrap(), None);
    assert_eq!(s.range(Table::Year, b"a", b"z", usize::MAX).unwrap(), vec![kv(b"a", b"1b"), kv(b"b", b"2")]);
    assert_eq!(s.range(Table::Year, b"a", b"z", 1).unwrap(), vec![kv(b"a", b"1b")], "limit counts what is visible");
}

fn commit_is_what_survives_a_reopen<S: KvStore>(mut s: S, reopen: &dyn Fn(S) -> S) {
    s.put(Table::Meta, b"kept", b"1").unwrap();
    s.put(Table::Meta, b"gone", b"1").unwrap();
    s.commit().unwrap();
    s.delete(Table::Meta, b"gone").unwrap();
    s.put(Table::Meta, b"lost", b"1").unwrap();
    s.delete(Table::Meta, b"kept").unwrap();
    let mut s = reopen(s);
    assert_eq!(s.get(Table::Meta, b"kept").unwrap(), Some(b"1".to_vec()), "an uncommitted delete is lost");
    assert_eq!(s.get(Table::Meta, b"gone").unwrap(), Some(b"1".to_vec()));
    assert_eq!(s.get(Table::Meta, b"lost").unwrap(), None, "an uncommitted put is lost");
    s.delete(Table::Meta, b"gone").unwrap();
    s.commit().unwrap();
    let s = reopen(s);
    assert_eq!(s.get(Table::Meta, b"gone").unwrap(), None, "a committed delete survives");
}

#[cfg(test)]
mod tests {
    use crate::kv::MemStore;

    #[test]
    fn the_memory_store_conforms() {
        super::run_all(&MemStore::new, None);
    }
}
