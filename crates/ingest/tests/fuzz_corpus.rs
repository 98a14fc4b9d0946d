//! The fuzz targets' checks (`rollcall_ingest::fuzzing`) on their seed
//! inputs (`fuzz/corpus/ingest_*/`, copies of the fixtures) and saved crash
//! inputs (`fuzz/regressions/ingest_*/`), on the stable toolchain; then the
//! same checks on mutations of the seeds, a little of what the fuzzer does,
//! so that a panic on a near-valid input shows up in `cargo test` too.

mod common;

use rollcall_ingest::fuzzing;
use rollcall_model::fuzzing::{check_corpus, fuzz_dir};

type Check = fn(&[u8]) -> bool;

const TARGETS: [(&str, Check); 8] = [
    ("ingest_caliper", fuzzing::caliper),
    ("ingest_xapi", fuzzing::xapi),
    ("ingest_canvas", fuzzing::canvas),
    ("ingest_zoom", fuzzing::zoom),
    ("ingest_native", fuzzing::native),
    ("ingest_identities", fuzzing::identities),
    ("ingest_oneroster", fuzzing::oneroster),
    ("ingest_calendar_csv", fuzzing::calendar_csv),
];

#[test]
fn ingest_caliper_corpus() {
    assert!(check_corpus("ingest_caliper", fuzzing::caliper) >= 6);
}

#[test]
fn ingest_xapi_corpus() {
    assert!(check_corpus("ingest_xapi", fuzzing::xapi) >= 3);
}

#[test]
fn ingest_canvas_corpus() {
    assert!(check_corpus("ingest_canvas", fuzzing::canvas) >= 5, "each event name and the Caliper form");
}

#[test]
fn ingest_zoom_corpus() {
    assert!(check_corpus("ingest_zoom", fuzzing::zoom) >= 3);
}

#[test]
fn ingest_native_corpus() {
    assert!(check_corpus("ingest_native", fuzzing::native) >= 3, "JSON, one and many, and the CSV");
}

#[test]
fn ingest_identities_corpus() {
    assert!(check_corpus("ingest_identities", fuzzing::identities) >= 1);
}

#[test]
fn ingest_oneroster_corpus() {
    assert!(check_corpus("ingest_oneroster", fuzzing::oneroster) >= 4, "1.1, 1.2, bad rows, a users.csv");
}

#[test]
fn ingest_calendar_csv_corpus() {
    assert!(check_corpus("ingest_calendar_csv", fuzzing::calendar_csv) >= 1);
}

/// The bundle seeds are the fixture exports, file for file.
#[test]
fn the_oneroster_seeds_are_the_fixtures() {
    for v in ["v1p1", "v1p2", "bad"] {
        let seed =
            std::fs::read(rollcall_model::fuzzing::fuzz_dir().join(format!("corpus/ingest_oneroster/{v}-bundle"))).unwrap();
        let input = fuzzing::oneroster_input(&seed);
        let mut names: Vec<String> = std::fs::read_dir(common::fixture_path(&format!("oneroster/{v}")))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(input.files.keys().cloned().collect::<Vec<_>>(), names, "{v}");
        for n in &names {
            assert_eq!(input.files[n], common::fixture(&format!("oneroster/{v}/{n}")), "{v}/{n}");
        }
        assert_eq!(input.sections.map(|c| c.bytes), Some(common::fixture("oneroster/sections.csv")));
        assert_eq!(input.modes.map(|c| c.bytes), Some(common::fixture("oneroster/modes.csv")));
    }
}

/// The fuzz targets' view is the fixtures' identities.csv.
#[test]
fn the_fuzz_view_is_the_fixtures_view() {
    let csv = common::ids();
    let fuzz = fuzzing::fixture_identities();
    assert_eq!(csv.len(), fuzz.len());
    let text = String::from_utf8(common::fixture("identities.csv")).unwrap();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let kind = rollcall_ingest::IdType::parse(f[1]).unwrap();
        assert_eq!(fuzz.get(f[0], kind, f[2]), csv.get(f[0], kind, f[2]), "{line}");
    }
}

/// xorshift64*: a fixed sequence, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes the JSON and CSV readers care about.
const INTERESTING: &[&[u8]] = &[
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"null",
    b"0",
    b"-1",
    b"1e999",
    b"\"\"",
    b"\\u0000",
    b"\n",
    b"\r\n",
    b"\xff",
    b"\xef\xbb\xbf",
    b"T",
    b"Z",
    b"+14:00",
    b"PT",
    b"data",
    b"type",
    b"id",
    b"Event",
    b"MediaEvent",
    b"Started",
    b"Ended",
    b"TimedOut",
    b"Posted",
    b"user",
    b"replyTo",
    b"creators",
    b"grouping",
    b"parent",
    b"account",
    b"--- ",
    b"student",
    b"teacher",
    b"homeroom",
    b"true",
    b"metadata.",
    b"2026-02-02",
    b"{LTI:",
];

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut d = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(d.len() + 1);
        match rng.below(5) {
            0 if !d.is_empty() => {
                let i = at.min(d.len() - 1);
                d[i] ^= 1 << rng.below(8);
            }
            1 => {
                let end = (at + rng.below(16)).min(d.len());
                d.drain(at..end);
            }
            2 => {
                let s = INTERESTING[rng.below(INTERESTING.len())];
                d.splice(at..at, s.iter().copied());
            }
            3 => d.truncate(at),
            _ => {
                // Duplicate a slice (a repeated event, a nested copy).
                let end = (at + rng.below(64)).min(d.len());
                let copy = d[at..end].to_vec();
                d.splice(at..at, copy);
            }
        }
    }
    d
}

#[test]
fn mutated_seeds_never_panic() {
    let mut rng = Rng(0x5eed_0f1a_9e57);
    for (target, check) in TARGETS {
        let dir = fuzz_dir().join("corpus").join(target);
        let mut seeds: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        seeds.sort();
        for path in seeds {
            let seed = std::fs::read(&path).unwrap();
            for _ in 0..1000 {
                let input = mutate(&mut rng, &seed);
                let result = std::panic::catch_unwind(|| check(&input));
                assert!(
                    result.is_ok(),
                    "{target}: a mutation of {} panics:\n{}",
                    path.display(),
                    String::from_utf8_lossy(&input)
                );
            }
        }
    }
}
