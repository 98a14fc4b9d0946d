//! `rollcall scenario check|run`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use rollcall_engine::MemStore;
use rollcall_scenario::{check as check_expect, run as run_scenario, RunOutput, Scenario, ScenarioError};
use rollcall_store::{RocksStore, StoreConfig};

fn expand(files: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for f in files {
        if f.is_dir() {
            out.extend(rollcall_scenario::scenario_files(f).with_context(|| format!("{}: cannot list", f.display()))?);
        } else {
            out.push(f.clone());
        }
    }
    Ok(out)
}

/// Runs a scenario on the chosen store.
pub fn execute(s: &Scenario, memory: bool) -> Result<RunOutput, ScenarioError> {
    if memory {
        return run_scenario(s, MemStore::new()).map(|(o, _)| o);
    }
    let dir = tempfile::tempdir().map_err(|source| ScenarioError::Io { file: s.file.clone(), source })?;
    let store = RocksStore::open(dir.path(), &StoreConfig::default()).map_err(|e| ScenarioError::Invalid {
        file: s.file.clone(),
        place: "state store".into(),
        message: e.to_string(),
    })?;
    run_scenario(s, store).map(|(o, _)| o)
}

pub fn check(files: &[PathBuf], memory: bool) -> anyhow::Result<ExitCode> {
    let files = expand(files)?;
    let (mut passed, mut failed) = (0, 0);
    for f in &files {
        match check_one(f, memory) {
            Ok(diffs) if diffs.is_empty() => {
                passed += 1;
                println!("pass  {}", f.display());
            }
            Ok(diffs) => {
                failed += 1;
                println!("FAIL  {} ({} difference{})", f.display(), diffs.len(), if diffs.len() == 1 { "" } else { "s" });
                for d in diffs {
                    println!("      {}: expected {}, got {}", d.key, d.expected, d.actual);
                }
            }
            Err(e) => {
                failed += 1;
                println!("FAIL  {e}");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn check_one(f: &Path, memory: bool) -> Result<Vec<rollcall_scenario::Difference>, ScenarioError> {
    let s = Scenario::load(f)?;
    let out = execute(&s, memory)?;
    Ok(check_expect(&s, &out))
}

pub fn run(file: &Path, memory: bool) -> anyhow::Result<ExitCode> {
    let s = Scenario::load(file)?;
    let out = execute(&s, memory)?;
    for d in out.latest().values() {
        println!("{}", serde_json::to_string(d)?);
    }
    for t in &out.outreach {
        println!("{}", serde_json::to_string(t)?);
    }
    for d in &out.dead_letters {
        eprintln!("refused {} ({}): {}: {}", d.source, d.event_id.as_deref().unwrap_or("-"), d.error_kind, d.message);
    }
    Ok(ExitCode::SUCCESS)
}
