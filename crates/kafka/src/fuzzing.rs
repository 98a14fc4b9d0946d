//! The checks of the processor's decoders on arbitrary bytes, shared by the
//! fuzz targets under `fuzz/` and the corpus test in `tests/fuzz_corpus.rs`:
//! the settings file with its environment overlay, and what a restore reads
//! from the changelog.

use rollcall_engine::{Engine, EngineConfig, KvStore, MemStore, Table};

use crate::config::ProcessorConfig;
use crate::processor::positions::{
    changelog_key, decode_changelog_key, decode_changelog_position, decode_positions, decode_refused, encode_positions,
    encode_refused, ChangelogKey,
};
use crate::processor::{META_CHANGELOG_POS, META_POSITIONS, META_REFUSED};

/// Between a settings file and its environment in a `processor_config` input.
pub const ENV_SEPARATOR: &str = "\n%%env\n";

/// A `processor_config` input is a settings file (TOML), optionally followed
/// by [`ENV_SEPARATOR`] and `ROLLCALL_KEY=value` lines. Decoding must not
/// panic; an accepted file must come back unchanged from its own TOML form;
/// the environment overlay must not panic, and what it accepts must come
/// back unchanged from TOML too; validation must not panic.
/// Returns whether the file was accepted.
pub fn processor_config(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let (file, env) = text.split_once(ENV_SEPARATOR).unwrap_or((text, ""));
    let Ok(cfg) = toml::from_str::<ProcessorConfig>(file) else {
        return false;
    };
    round_trip(&cfg, "an accepted file");
    let _ = cfg.validate();
    let vars: Vec<(&str, &str)> = env.lines().filter_map(|l| l.split_once('=')).collect();
    let mut overlaid = cfg.clone();
    if overlaid.apply_env(|k| vars.iter().rev().find(|(v, _)| *v == k).map(|(_, x)| x.to_string())).is_ok() {
        round_trip(&overlaid, "a file overlaid by its environment");
        let _ = overlaid.validate();
        let _ = overlaid.wall_now();
    }
    true
}

fn round_trip(cfg: &ProcessorConfig, what: &str) {
    let written = toml::to_string(cfg).unwrap_or_else(|e| panic!("{what} does not serialize: {e}\n{cfg:?}"));
    let back: ProcessorConfig =
        toml::from_str(&written).unwrap_or_else(|e| panic!("{what}, written back, is refused: {e}\n{written}"));
    assert_eq!(&back, cfg, "{what} changed on its way through TOML:\n{written}");
}

/// A `changelog_record` input is one changelog record as a restore reads
/// it: a flags byte (bit 0: the record has a value; else it is a
/// tombstone), the key's length (2 bytes, big-endian), the key, then the
/// value. Decoding the key must not panic and must give back the key it
/// was encoded from; the `meta` records that a restore reads itself (input
/// positions, refused records, changelog position) must decode to what
/// encodes back to the same thing; and an engine opened on a store holding
/// the record must not panic (it may refuse).
/// Returns whether the record names a table.
pub fn changelog_record(data: &[u8]) -> bool {
    let Some((&flags, rest)) = data.split_first() else {
        return false;
    };
    let Some((len, rest)) = rest.split_first_chunk::<2>() else {
        return false;
    };
    let len = usize::from(u16::from_be_bytes(*len));
    if rest.len() < len {
        return false;
    }
    let (key, value) = rest.split_at(len);
    let value = (flags & 1 == 1).then_some(value);
    let (table, k) = match decode_changelog_key(key) {
        ChangelogKey::Entry(table, k) => (table, k),
        ChangelogKey::Empty => {
            assert!(key.is_empty(), "a key with a table byte read as empty");
            return false;
        }
        ChangelogKey::UnknownTable(t) => {
            assert_eq!(Some(&t), key.first(), "the unknown table is not the key's first byte");
            assert!(!Table::ALL.iter().any(|x| *x as u8 == t), "table {t} is known");
            return false;
        }
    };
    assert_eq!(changelog_key(table, k), key, "a changelog key does not encode back to itself");
    if let (Table::Meta, Some(v)) = (table, value) {
        if k == META_POSITIONS {
            let p = decode_positions(v);
            assert_eq!(decode_positions(&encode_positions(&p)), p, "input positions changed on a round trip");
        } else if k == META_REFUSED {
            let r = decode_refused(v);
            assert_eq!(decode_refused(&encode_refused(&r)), r, "refused records changed on a round trip");
        } else if k == META_CHANGELOG_POS {
            if let Some(pos) = decode_changelog_position(v) {
                assert_eq!(pos.to_be_bytes().as_slice(), v, "a changelog position changed on a round trip");
            }
        }
    }
    let mut store = MemStore::new();
    let applied = match value {
        Some(v) => store.put(table, k, v),
        None => store.delete(table, k),
    };
    if applied.is_ok() && store.commit().is_ok() {
        let _ = Engine::open(store, EngineConfig::default());
    }
    true
}
