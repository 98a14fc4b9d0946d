//! Checks of the Avro decoders on arbitrary bytes, shared by the fuzz
//! targets under `fuzz/` and the corpus tests in `tests/fuzz_corpus.rs`.
//!
//! Each check must not panic on any input. Whatever decodes must come back
//! unchanged through the encoder, and encoding must be canonical (encoding
//! the decoded record again gives the same bytes); a check panics when it
//! does not, which is what fails a fuzz run or a test. Each returns whether
//! the input decoded, so that a test can also require its seeds to be valid.

use std::fmt::Debug;
use std::path::{Path, PathBuf};

use crate::avro::{single_object_fingerprint, AvroError, AvroRecord};
use crate::*;

/// `decode(encode(x)) == x`, and the encoding is the same each time.
fn assert_round_trip<T: AvroRecord + PartialEq + Debug>(
    x: &T,
    encode: fn(&T) -> Result<Vec<u8>, AvroError>,
    decode: fn(&[u8]) -> Result<T, AvroError>,
) {
    let bytes = encode(x).unwrap_or_else(|e| panic!("a decoded {} does not encode: {e}\n{x:?}", T::SCHEMA_FILE));
    let back = decode(&bytes).unwrap_or_else(|e| panic!("a re-encoded {} does not decode: {e}\n{x:?}", T::SCHEMA_FILE));
    assert_eq!(&back, x, "a {} changed on its way through the encoder", T::SCHEMA_FILE);
    let again = encode(&back).expect("encodes once, encodes twice");
    assert_eq!(again, bytes, "two encodings of one {} differ", T::SCHEMA_FILE);
}

fn datum<T: AvroRecord + PartialEq + Debug>(bytes: &[u8]) -> bool {
    // The direct decoder, where a type has one, must agree with the generic
    // one on everything it accepts.
    if let Some(direct) = T::decode_direct(bytes) {
        match T::from_avro_datum_generic(bytes) {
            Ok(generic) => assert_eq!(direct, generic, "the direct and generic {} decoders disagree", T::SCHEMA_FILE),
            Err(e) => panic!("the direct {} decoder accepted a datum the generic one refuses: {e}", T::SCHEMA_FILE),
        }
    }
    match T::from_avro_datum(bytes) {
        Ok(x) => {
            // So does the direct encoder with the generic one.
            assert_eq!(
                x.to_avro_datum().ok(),
                x.to_avro_datum_generic().ok(),
                "the direct and generic {} encoders disagree",
                T::SCHEMA_FILE
            );
            assert_round_trip(&x, T::to_avro_datum, T::from_avro_datum);
            true
        }
        Err(_) => false,
    }
}

/// The raw datum decoder (`from_avro_datum`) of every record type. The
/// first byte picks the type (modulo the eight types); the rest is the datum.
pub fn avro_datum(data: &[u8]) -> bool {
    let Some((&which, bytes)) = data.split_first() else {
        return false;
    };
    match which % 8 {
        0 => {
            let decoded = datum::<ActivityEvent>(bytes);
            // Every valid event takes the direct path.
            assert_eq!(ActivityEvent::decode_direct(bytes).is_some(), decoded, "the direct event decoder declined a valid datum");
            decoded
        }
        1 => datum::<StudentRecord>(bytes),
        2 => datum::<SchoolCalendar>(bytes),
        3 => datum::<AbsenceReport>(bytes),
        4 => {
            let decoded = datum::<Determination>(bytes);
            assert_eq!(
                Determination::decode_direct(bytes).is_some(),
                decoded,
                "the direct determination decoder declined a valid datum"
            );
            decoded
        }
        5 => datum::<OutreachTrigger>(bytes),
        6 => datum::<DeadLetter>(bytes),
        _ => datum::<IdentityRecord>(bytes),
    }
}

/// One type's single-object decoder on the whole input.
fn single<T: AvroRecord + PartialEq + Debug>(data: &[u8]) -> bool {
    match T::from_single_object(data) {
        Ok(x) => {
            // Today's schema, or an earlier version of it that reads as today's.
            let fp = single_object_fingerprint(data).ok();
            assert!(
                fp == Some(T::fingerprint()) || T::earlier().iter().any(|e| Some(e.fingerprint()) == fp),
                "a {} decoded under another fingerprint",
                T::SCHEMA_FILE
            );
            assert_round_trip(&x, T::to_single_object, T::from_single_object);
            true
        }
        Err(AvroError::Fingerprint { found, expected, .. }) => {
            assert_eq!(expected, T::fingerprint());
            assert_eq!(
                single_object_fingerprint(data).ok(),
                Some(found),
                "the fingerprint error names another fingerprint than the header's"
            );
            assert_ne!(found, expected, "refused for its fingerprint although it is the expected one");
            assert!(!T::earlier().iter().any(|e| e.fingerprint() == found), "refused although an earlier version's");
            false
        }
        Err(AvroError::Header(_)) => {
            assert!(single_object_fingerprint(data).is_err(), "a header error for a header that reads");
            false
        }
        Err(_) => false,
    }
}

/// The single-object decoder (`C3 01`, fingerprint, datum) as the processor
/// applies it to every input record, tried as each of the record types:
/// header and fingerprint parsing, then the datum. At most one type may
/// accept any input, since each has its own fingerprint.
pub fn single_object(data: &[u8]) -> bool {
    let decoded = [
        single::<ActivityEvent>(data),
        single::<StudentRecord>(data),
        single::<SchoolCalendar>(data),
        single::<AbsenceReport>(data),
        single::<Determination>(data),
        single::<OutreachTrigger>(data),
        single::<DeadLetter>(data),
        single::<IdentityRecord>(data),
    ];
    let n = decoded.iter().filter(|d| **d).count();
    assert!(n <= 1, "one input decoded as {n} record types");
    n == 1
}

/// The repository's `fuzz/` directory (this crate is at `crates/model`).
pub fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.expect("listing a corpus directory").path()).filter(|p| p.is_file()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("{}: {e}", dir.display()),
    };
    files.sort();
    files
}

/// For the stable-toolchain corpus tests: runs a fuzz target's check on
/// each of its seeds under `fuzz/corpus/TARGET/`, each of which must be a
/// valid input (the check returns true), and on each input that once made
/// it fail, under `fuzz/regressions/TARGET/`, which must now pass (whether
/// or not it decodes). Returns how many seeds there are; there must be some.
pub fn check_corpus(target: &str, check: fn(&[u8]) -> bool) -> usize {
    let seeds = files(&fuzz_dir().join("corpus").join(target));
    assert!(!seeds.is_empty(), "fuzz/corpus/{target}/ has no seed inputs");
    for path in &seeds {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eprintln!("seed {}", path.display());
        assert!(check(&data), "{}: a seed input of {target} does not decode", path.display());
    }
    for path in files(&fuzz_dir().join("regressions").join(target)) {
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eprintln!("regression {}", path.display());
        check(&data);
    }
    seeds.len()
}
