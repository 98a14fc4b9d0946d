//! The input positions a task keeps with its state: per keyed input topic,
//! the next offset to consume. They are written to the `meta` table in the
//! same transaction as the state they describe, so a restored task resumes
//! exactly where its state ends.

use std::collections::BTreeMap;

use rollcall_engine::{Engine, KvStore, Table};
use rollcall_store::RocksStore;

use super::{Record, META_POSITIONS, META_REFUSED};
use crate::wire::Topics;
use crate::KafkaError;

/// One `topic=offset` line per input topic. Kafka topic names are made of
/// `[a-zA-Z0-9._-]`, so neither `=` nor a line break needs escaping.
pub(crate) fn encode_positions(p: &BTreeMap<String, i64>) -> Vec<u8> {
    let mut out = Vec::new();
    for (t, o) in p {
        out.extend_from_slice(t.as_bytes());
        out.push(b'=');
        out.extend_from_slice(o.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

/// The input positions of a task's last committed batch.
pub(super) fn committed_positions(engine: &Engine<RocksStore>, partition: i32) -> Result<BTreeMap<String, i64>, KafkaError> {
    let b = engine
        .store()
        .get(Table::Meta, META_POSITIONS)
        .map_err(|e| KafkaError::state(format!("partition {partition}: reading the input positions"), e))?;
    Ok(b.map(|b| decode_positions(&b)).unwrap_or_default())
}

/// The refused records above the positions, one `topic@offset` a line.
pub(crate) fn encode_refused(r: &std::collections::BTreeSet<(String, i64)>) -> Vec<u8> {
    r.iter().flat_map(|(t, o)| format!("{t}@{o}\n").into_bytes()).collect()
}

/// The refused records of a task's last committed batch (see [`encode_refused`]).
pub(super) fn committed_refused(
    engine: &Engine<RocksStore>,
    partition: i32,
) -> Result<std::collections::BTreeSet<(String, i64)>, KafkaError> {
    let b = engine
        .store()
        .get(Table::Meta, META_REFUSED)
        .map_err(|e| KafkaError::state(format!("partition {partition}: reading the refused records"), e))?;
    Ok(b.map(|b| decode_refused(&b)).unwrap_or_default())
}

/// What [`encode_refused`] wrote; a line that does not parse is skipped.
pub(crate) fn decode_refused(b: &[u8]) -> std::collections::BTreeSet<(String, i64)> {
    String::from_utf8_lossy(b)
        .lines()
        .filter_map(|l| l.rsplit_once('@').and_then(|(t, o)| Some((t.to_string(), o.parse().ok()?))))
        .collect()
}

/// A changelog record's key: the table's number, then the table's key.
pub(crate) fn changelog_key(table: Table, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 1);
    out.push(table as u8);
    out.extend_from_slice(key);
    out
}

/// What a changelog record's key says (see [`changelog_key`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ChangelogKey<'a> {
    /// A write to this table, at this key.
    Entry(Table, &'a [u8]),
    /// No table byte at all: the record is skipped.
    Empty,
    /// A table number this build does not know: the changelog is not ours.
    UnknownTable(u8),
}

pub(crate) fn decode_changelog_key(key: &[u8]) -> ChangelogKey<'_> {
    let Some((&t, k)) = key.split_first() else { return ChangelogKey::Empty };
    match Table::ALL.iter().copied().find(|x| *x as u8 == t) {
        Some(table) => ChangelogKey::Entry(table, k),
        None => ChangelogKey::UnknownTable(t),
    }
}

/// The changelog offset a restored store has read up to (8 bytes, big-endian);
/// anything else reads as none, and the restore starts from the beginning.
pub(crate) fn decode_changelog_position(b: &[u8]) -> Option<i64> {
    b.try_into().ok().map(i64::from_be_bytes)
}

/// What [`encode_positions`] wrote. A line that does not parse is skipped:
/// its topic then has no position, and the task reads it from the beginning.
pub(crate) fn decode_positions(b: &[u8]) -> BTreeMap<String, i64> {
    String::from_utf8_lossy(b)
        .lines()
        .filter_map(|l| l.split_once('=').and_then(|(t, o)| Some((t.to_string(), o.parse().ok()?))))
        .collect()
}

/// Moves the positions after a batch was applied. Records are applied in
/// timestamp order, and a topic's offsets need not follow it (absence
/// reports arrive out of order): a position is the lowest offset not yet
/// applied (`waiting` holds what was fetched and held back), so a restart
/// fetches everything still waiting. What was applied beyond it comes again
/// and is a duplicate the engine drops. A topic with nothing fetched keeps
/// its position.
pub(super) fn advance_positions(
    positions: &mut BTreeMap<String, i64>,
    waiting: &[Record],
    fetched: &BTreeMap<String, i64>,
    topics: &Topics,
) {
    for topic in topics.keyed_inputs() {
        let waiting = waiting.iter().filter(|r| r.topic == topic).map(|r| r.offset).min();
        if let Some(next) = waiting.or_else(|| fetched.get(topic).copied()) {
            positions.insert(topic.to_string(), next);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::wire::{ACTIVITY, REPORTS, ROSTER};

    /// Positions as a table writes them: (topic, offset).
    type Entries = &'static [(&'static str, i64)];

    fn map(entries: &[(&str, i64)]) -> BTreeMap<String, i64> {
        entries.iter().map(|(t, o)| (t.to_string(), *o)).collect()
    }

    #[test]
    fn changelog_keys_round_trip() {
        for t in Table::ALL {
            let k = changelog_key(t, b"s1\0x");
            assert_eq!(decode_changelog_key(&k), ChangelogKey::Entry(t, b"s1\0x"));
        }
        assert_eq!(decode_changelog_key(b""), ChangelogKey::Empty);
        assert_eq!(decode_changelog_key(&[200, 1]), ChangelogKey::UnknownTable(200));
        assert_eq!(decode_changelog_position(&7i64.to_be_bytes()), Some(7));
        assert_eq!(decode_changelog_position(b"short"), None);
        let r: std::collections::BTreeSet<(String, i64)> = [("a.b".to_string(), 3), ("c".to_string(), -1)].into();
        assert_eq!(decode_refused(&encode_refused(&r)), r);
    }

    #[test]
    fn positions_round_trip() {
        let p = map(&[(ACTIVITY, 42), (ROSTER, 0)]);
        assert_eq!(decode_positions(&encode_positions(&p)), p);
    }

    #[test]
    fn encoding_table() {
        // The bytes are in every task's changelog: a change here must read what is there.
        let cases: &[(&str, Entries, &str)] = &[
            ("no positions", &[], ""),
            ("one line per topic, in topic order", &[(ROSTER, 0), (ACTIVITY, 42)], "lms.activity.v1=42\nsis.roster.v1=0\n"),
            ("a prefixed topic", &[("t1.sis.roster.v1", 7)], "t1.sis.roster.v1=7\n"),
            ("the largest offset", &[(REPORTS, i64::MAX)], "sis.absence-reports.v1=9223372036854775807\n"),
        ];
        for (name, positions, bytes) in cases {
            assert_eq!(String::from_utf8(encode_positions(&map(positions))).unwrap(), *bytes, "{name}");
        }
    }

    #[test]
    fn decoding_table() {
        let cases: &[(&str, &str, Entries)] = &[
            ("nothing stored", "", &[]),
            ("two topics", "a=1\nb=2\n", &[("a", 1), ("b", 2)]),
            ("no final line break", "a=1\nb=2", &[("a", 1), ("b", 2)]),
            ("CRLF line breaks", "a=1\r\nb=2\r\n", &[("a", 1), ("b", 2)]),
            ("a line without `=` is skipped", "a=1\ngarbage\nb=2\n", &[("a", 1), ("b", 2)]),
            ("an offset that is not a number is skipped", "a=x\nb=2\n", &[("b", 2)]),
            ("a second `=` makes the offset unreadable", "a=1=2\n", &[]),
            ("an empty offset is skipped", "a=\n", &[]),
            ("a negative offset is kept", "a=-1\n", &[("a", -1)]),
            ("the last line of a topic wins", "a=1\na=7\n", &[("a", 7)]),
        ];
        for (name, bytes, positions) in cases {
            assert_eq!(decode_positions(bytes.as_bytes()), map(positions), "{name}");
        }
    }

    #[test]
    fn advance_table() {
        struct Case {
            name: &'static str,
            before: Entries,
            /// Fetched and not applied (held back by the replay merge).
            waiting: Entries,
            /// Next offset after the last record fetched, per topic.
            fetched: Entries,
            after: Entries,
        }
        let cases = [
            Case {
                name: "nothing fetched: the committed positions stay",
                before: &[(ROSTER, 5)],
                waiting: &[],
                fetched: &[],
                after: &[(ROSTER, 5)],
            },
            Case {
                name: "everything fetched was applied: the offset after the last one",
                before: &[(ACTIVITY, 0)],
                waiting: &[],
                fetched: &[(ACTIVITY, 10)],
                after: &[(ACTIVITY, 10)],
            },
            Case {
                name: "a record held back keeps its topic at it",
                before: &[(REPORTS, 0)],
                waiting: &[(REPORTS, 4)],
                fetched: &[(REPORTS, 9)],
                after: &[(REPORTS, 4)],
            },
            Case {
                name: "the lowest offset waiting, not the first or the last",
                before: &[],
                waiting: &[(REPORTS, 7), (REPORTS, 3), (REPORTS, 5)],
                fetched: &[(REPORTS, 9)],
                after: &[(REPORTS, 3)],
            },
            Case {
                name: "each topic by itself",
                before: &[(ROSTER, 2), (REPORTS, 2), (ACTIVITY, 2)],
                waiting: &[(ACTIVITY, 4), (ROSTER, 6)],
                fetched: &[(ROSTER, 7), (ACTIVITY, 8)],
                after: &[(ROSTER, 6), (REPORTS, 2), (ACTIVITY, 4)],
            },
            Case {
                name: "a topic that is not an input gets no position",
                before: &[],
                waiting: &[("elsewhere", 1)],
                fetched: &[("elsewhere", 2)],
                after: &[],
            },
        ];
        for c in cases {
            let mut positions = map(c.before);
            let waiting: Vec<Record> = c.waiting.iter().map(|(t, o)| Record::at(t, *o, Some(0))).collect();
            advance_positions(&mut positions, &waiting, &map(c.fetched), &Topics::with_prefix(""));
            assert_eq!(positions, map(c.after), "{}", c.name);
        }
    }

    proptest! {
        #[test]
        fn any_positions_round_trip(p in prop::collection::btree_map("[a-zA-Z0-9._-]{1,60}", any::<i64>(), 0..6)) {
            prop_assert_eq!(decode_positions(&encode_positions(&p)), p);
        }
    }
}
