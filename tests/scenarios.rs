//! Every scenario — the shared examples and the project's own — passes, on
//! the in-memory store and on RocksDB, through the library and through the
//! `rollcall scenario check` command.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::harness::Area;
use rollcall_engine::{EngineConfig, Evaluation, MemStore};
use rollcall_scenario::{check, run, run_with, scenario_files, RunOptions, Scenario};
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

fn there_are_scenarios_for_every_preset() {
    let names: Vec<String> = all_scenarios().iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for preset in rollcall_policy::PRESET_IDS {
        let n = names.iter().filter(|n| n.starts_with(preset)).count();
        assert!(n >= 3, "{preset}: only {n} scenarios");
    }
}

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

fn json<T: serde::Serialize>(v: &[T]) -> Vec<String> {
    v.iter().map(|x| serde_json::to_string(x).unwrap()).collect()
}

/// Everything a run emits, as JSON lines in emission order: determinations,
/// outreach triggers and dead letters, and the number of events applied.
fn emitted(out: &rollcall_scenario::RunOutput) -> (Vec<String>, Vec<String>, Vec<String>, u64) {
    (json(&out.determinations), json(&out.outreach), json(&out.dead_letters), out.events_applied)
}

/// The same scenario on RocksDB and in memory: the same determinations,
/// outreach triggers and dead letters, in the same order.
fn rocksdb_matches_memory(s: &Scenario, what: &str) -> (usize, usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open(dir.path(), &StoreConfig::default()).unwrap();
    let (rocks, _) = run(s, store).unwrap();
    let (mem, _) = run(s, MemStore::new()).unwrap();
    let (a, b) = (emitted(&rocks), emitted(&mem));
    assert_eq!(a.0, b.0, "{what}: RocksDB and memory runs differ in their determinations");
    assert_eq!(a.1, b.1, "{what}: RocksDB and memory runs differ in their outreach triggers");
    assert_eq!(a.2, b.2, "{what}: RocksDB and memory runs differ in their dead letters");
    assert_eq!(a.3, b.3, "{what}: RocksDB and memory runs applied different numbers of events");
    assert!(check(s, &rocks).is_empty(), "{what}: {:?}", check(s, &rocks));
    (a.0.len(), a.1.len(), a.2.len())
}

fn every_scenario_passes_on_rocksdb_and_matches_memory() {
    let (mut dets, mut triggers, mut dead) = (0, 0, 0);
    for f in all_scenarios() {
        let s = Scenario::load(&f).unwrap();
        let (d, t, x) = rocksdb_matches_memory(&s, &f.display().to_string());
        (dets, triggers, dead) = (dets + d, triggers + t, dead + x);
    }
    // The comparison proves something only if each kind of output occurs.
    assert!(dets > 0 && triggers > 0 && dead > 0, "determinations {dets}, triggers {triggers}, dead letters {dead}");
}

fn a_simulated_district_on_rocksdb_matches_memory() {
    let w = rollcall_sim::generate(&rollcall_sim::SimConfig { students: 300, days: 12, seed: 5, ..Default::default() });
    let s = Scenario::from_world(w, "district");
    let (dets, triggers, _) = rocksdb_matches_memory(&s, "a simulated district of 300 students over 12 days");
    assert!(dets > 1_000 && triggers > 10, "determinations {dets}, triggers {triggers}");
}

/// The same scenario decided twice in memory: by the reference, which
/// evaluates every window an input touched, and incrementally, which skips
/// a window when nothing its rule reads has changed. Every output must be
/// the same, in the same order; returns the windows the incremental run
/// skipped and the outputs compared.
fn incremental_matches_reference(s: &Scenario, what: &str) -> (u64, usize) {
    let decide = |evaluation| {
        let engine = EngineConfig { evaluation, ..EngineConfig::default() };
        let (out, e) = run_with(s, MemStore::new(), &mut RunOptions { engine, ..RunOptions::default() })
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        (emitted(&out), e.stats().clone())
    };
    let (reference, ref_stats) = decide(Evaluation::Reference);
    let (incremental, stats) = decide(Evaluation::Incremental);
    assert_eq!(ref_stats.windows_skipped, 0, "{what}: the reference skipped a window");
    for (what_differs, a, b) in [
        ("determinations", &reference.0, &incremental.0),
        ("outreach triggers", &reference.1, &incremental.1),
        ("dead letters", &reference.2, &incremental.2),
    ] {
        if let Some(k) = (0..a.len().max(b.len())).find(|k| a.get(*k) != b.get(*k)) {
            panic!(
                "{what}: incremental evaluation differs from the reference in its {what_differs}, first at #{k}:\n  reference:   {:?}\n  incremental: {:?}",
                a.get(k),
                b.get(k)
            );
        }
    }
    assert_eq!(reference.3, incremental.3, "{what}: events applied differ");
    assert_eq!(
        stats.windows_evaluated + stats.windows_skipped,
        ref_stats.windows_evaluated,
        "{what}: every touched window is either evaluated or skipped"
    );
    (stats.windows_skipped, reference.0.len() + reference.1.len() + reference.2.len())
}

fn incremental_evaluation_matches_the_reference_on_every_scenario() {
    let (mut skipped, mut outputs) = (0, 0);
    for f in all_scenarios() {
        let s = Scenario::load(&f).unwrap();
        let (k, n) = incremental_matches_reference(&s, &f.display().to_string());
        (skipped, outputs) = (skipped + k, outputs + n);
    }
    // Proves something only if windows were skipped and outputs compared.
    assert!(skipped > 0 && outputs > 0, "skipped {skipped}, outputs {outputs}");
}

fn incremental_evaluation_matches_the_reference_on_a_simulated_district() {
    let w = rollcall_sim::generate(&rollcall_sim::SimConfig { students: 300, days: 12, seed: 11, ..Default::default() });
    let s = Scenario::from_world(w, "district");
    let (skipped, outputs) = incremental_matches_reference(&s, "a simulated district of 300 students over 12 days");
    assert!(skipped > 1_000 && outputs > 1_000, "skipped {skipped}, outputs {outputs}");
}

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

/// Nothing to set up: these run on the runner's thread pool.
pub fn area() -> Area {
    Area::plain(
        "scenarios",
        plain_tests![
            there_are_scenarios_for_every_preset,
            every_scenario_passes_in_memory,
            every_scenario_passes_on_rocksdb_and_matches_memory,
            a_simulated_district_on_rocksdb_matches_memory,
            incremental_evaluation_matches_the_reference_on_every_scenario,
            incremental_evaluation_matches_the_reference_on_a_simulated_district,
            a_wrong_expectation_is_reported_by_key,
            check_command_prints_a_line_per_file_and_the_totals,
            run_command_prints_json_lines,
        ],
    )
}
