//! The input positions a task keeps with its state: per keyed input topic,
//! the next offset to consume. They are written to the `meta` table in the
//! same transaction as the state they describe, so a restored task resumes
//! exactly where its state ends.

use std::collections::BTreeMap;

use rollcall_engine::{Engine, KvStore, Table};
use rollcall_store::RocksStore;

use super::META_POSITIONS;
use crate::KafkaError;

pub(super) fn encode_positions(p: &BTreeMap<String, i64>) -> Vec<u8> {
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
pub(super) fn committed_positions(engine: &Engine<RocksStore>) -> Result<BTreeMap<String, i64>, KafkaError> {
    let b = engine.store().get(Table::Meta, META_POSITIONS).map_err(|e| KafkaError::State(e.to_string()))?;
    Ok(b.map(|b| decode_positions(&b)).unwrap_or_default())
}

pub(super) fn decode_positions(b: &[u8]) -> BTreeMap<String, i64> {
    String::from_utf8_lossy(b)
        .lines()
        .filter_map(|l| l.split_once('=').and_then(|(t, o)| Some((t.to_string(), o.parse().ok()?))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire;

    #[test]
    fn positions_round_trip() {
        let mut p = BTreeMap::new();
        p.insert(wire::ACTIVITY.to_string(), 42);
        p.insert(wire::ROSTER.to_string(), 0);
        assert_eq!(decode_positions(&encode_positions(&p)), p);
    }
}
