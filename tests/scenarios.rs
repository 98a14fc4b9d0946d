//! Every scenario — the shared examples and the project's own — passes, on
//! the in-memory store and on RocksDB, through the library and through the
//! `rollcall scenario check` command.

use std::path::{Path, PathBuf};
use std::process::Command;

use rollcall_engine::MemStore;
use rollcall_scenario::{check, run, scenario_files, Scenario};
use rollcall_store::{RocksStore, StoreConfig};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn all_scenarios() -> Vec<PathBuf> {
    let mut v = scenario_files(&repo().join("tests/scenarios")).expect("tests/scenarios");
    let shared = repo().join("../shared/scenarios");
    if shared.is_dir() {
        v.extend(scenario_files(&shared).expect("shared scenarios"));
    }
    v
}

#[test]
fn there_are_scenarios_for_every_preset() {
    let names: Vec<String> = all_scenarios().iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for preset in rollcall_policy::PRESET_IDS {
        let n = names.iter().filter(|n| n.starts_with(preset)).count();
        assert!(n >= 3, "{preset}: only {n} scenarios");
    }
}

#[test]
fn every_scenario_passes_in_memory() {
    let mut failures = Vec::new();
    for f in all_scenarios() {
        let s = Scenario::load(&f).unwrap_or_else(|e| panic!("{e}"));
        let (out, _) = run(&s, MemStore::new()).unwrap_or_else(|e| panic!("{e}"));
        for d in check(&s, &out) {
            failures.push(format!("{}: {}: expected {}, got {}", f.display(), d.key, d.expected, d.actual));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_scenario_passes_on_rocksdb_and_matches_memory() {
    for f in all_scenarios() {
        let s = Scenario::load(&f).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path(), &StoreConfig::default()).unwrap();
        let (rocks, _) = run(&s, store).unwrap();
        assert!(check(&s, &rocks).is_empty(), "{}", f.display());
        let (mem, _) = run(&s, MemStore::new()).unwrap();
        let a: Vec<_> = rocks.determinations.iter().map(|d| serde_json::to_string(d).unwrap()).collect();
        let b: Vec<_> = mem.determinations.iter().map(|d| serde_json::to_string(d).unwrap()).collect();
        assert_eq!(a, b, "{}: RocksDB and memory runs differ", f.display());
    }
}

#[test]
fn a_wrong_expectation_is_reported_by_key() {
    let f = repo().join("tests/scenarios/cross-01-timezone-local-date-mmsd-cst.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
    let first = &mut v["expect"]["determinations"][0];
    let key = format!(
        "{}|{}|{}",
        first["student_id"].as_str().unwrap(),
        first["scope"].as_str().unwrap(),
        first["date"].as_str().unwrap()
    );
    first["code"] = serde_json::json!("XX");
    let s = Scenario::parse(&v.to_string(), "edited.json", None).unwrap();
    let (out, _) = run(&s, MemStore::new()).unwrap();
    let diffs = check(&s, &out);
    assert_eq!(diffs.len(), 1, "{diffs:?}");
    assert_eq!(diffs[0].key, format!("{key} code"));
    assert_eq!(diffs[0].expected, "XX");
}

#[test]
fn check_command_prints_a_line_per_file_and_the_totals() {
    let dir = tempfile::tempdir().unwrap();
    let good = repo().join("tests/scenarios/cross-01-timezone-local-date-mmsd-cst.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&good).unwrap()).unwrap();
    v["expect"]["determinations"][0]["code"] = serde_json::json!("XX");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, v.to_string()).unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_rollcall")).args(["scenario", "check"]).arg(&good).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.lines().last() == Some("1 passed, 0 failed"), "{text}");

    let out = Command::new(env!("CARGO_BIN_EXE_rollcall")).args(["scenario", "check"]).arg(&good).arg(&bad).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL") && text.contains("expected XX"), "{text}");
    assert!(text.lines().last() == Some("1 passed, 1 failed"), "{text}");
}

#[test]
fn run_command_prints_json_lines() {
    let f = repo().join("tests/scenarios/instruction-partners-01-day-categories-blocks.json");
    let out = Command::new(env!("CARGO_BIN_EXE_rollcall")).args(["scenario", "run", "--memory"]).arg(&f).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut dets = 0;
    let mut triggers = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        if v.get("determination_id").is_some() {
            dets += 1;
        } else if v.get("trigger_id").is_some() {
            triggers += 1;
        } else {
            panic!("neither a determination nor a trigger: {line}");
        }
    }
    assert!(dets > 0 && triggers > 0, "{text}");
}
