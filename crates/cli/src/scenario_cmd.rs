//! `rollcall scenario check|run`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use rollcall_engine::MemStore;
use rollcall_kafka::replay::Format;
use rollcall_scenario::{check as check_expect, run as run_scenario, RunOutput, Scenario, ScenarioError};
use rollcall_store::{RocksStore, StoreConfig};

fn expand(files: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for f in files {
        if f.is_dir() {
            let found = rollcall_scenario::scenario_files(f).with_context(|| format!("{}: cannot list", f.display()))?;
            // An empty directory is a wrong path far more often than a suite with nothing in it.
            anyhow::ensure!(!found.is_empty(), "{}: no scenario files (*.json) in this directory", f.display());
            out.extend(found);
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
        message: rollcall_model::error_chain(&e),
    })?;
    run_scenario(s, store).map(|(o, _)| o)
}

/// The value format of a run through Kafka, from the flags.
pub fn format_of(value_format: &str, registry_url: Option<&str>) -> anyhow::Result<Format> {
    let value_format: rollcall_registry::ValueFormat =
        value_format.parse().map_err(|e| anyhow::anyhow!("--value-format: {e}"))?;
    let registry_url = registry_url.unwrap_or_default().trim().to_string();
    anyhow::ensure!(
        value_format == rollcall_registry::ValueFormat::SingleObject || !registry_url.is_empty(),
        "--value-format confluent needs --registry-url (scripts/registry.sh start prints one)"
    );
    Ok(Format { value_format, registry_url })
}

pub fn check(files: &[PathBuf], memory: bool, brokers: Option<&str>, format: &Format) -> anyhow::Result<ExitCode> {
    let files = expand(files)?;
    let (mut passed, mut failed) = (0, 0);
    for (i, f) in files.iter().enumerate() {
        let result = match brokers {
            None => check_one(f, memory),
            Some(b) => check_through_kafka(f, b, i, format),
        };
        match result {
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
                println!("FAIL  {}", rollcall_model::error_chain(&e));
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn check_through_kafka(
    f: &Path,
    brokers: &str,
    n: usize,
    format: &Format,
) -> Result<Vec<rollcall_scenario::Difference>, ScenarioError> {
    let s = Scenario::load(f)?;
    let failed = |message: String| ScenarioError::Invalid { file: s.file.clone(), place: "through Kafka".into(), message };
    let dir = tempfile::tempdir().map_err(|e| failed(e.to_string()))?;
    // Each scenario gets topics of its own on the shared broker.
    let prefix = format!("scenario-{}-{}-{n}.", std::process::id(), chrono::Utc::now().timestamp_millis());
    let (out, _) = rollcall_kafka::replay::run_scenario_in(brokers, &s, &prefix, dir.path(), format)
        .map_err(|e| failed(format!("{e:#}")))?;
    Ok(check_expect(&s, &out))
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
