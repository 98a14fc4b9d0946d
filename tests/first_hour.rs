//! The README's "Running against a Kafka cluster" walkthrough, run as it is
//! written: its marked block is read from README.md and each `rollcall`
//! line is run in order against a real broker, with only the broker address,
//! the state directory, the instance id, a topic prefix and the group made
//! unique to this run. The processor line runs in the background, as a
//! person keeps it running in one shell while they type in another.
//!
//! The walkthrough must give attendance, not dead letters: every final
//! determination read back with `rollcall tail` equals what the engine
//! decides for the same simulated district on its own, every school of the
//! district has determinations, and the dead-letter topic stays empty.
//! Prints `N passed, N failed`.

mod support;

use std::collections::BTreeMap;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{bin, ensure, repo, run_one, summary, unique, Broker, TestResult};

/// The `rollcall` lines of the README's first-hour block, split into words.
fn walkthrough() -> Result<Vec<Vec<String>>, String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).map_err(|e| format!("README.md: {e}"))?;
    let begin = readme.find("<!-- first-hour:begin -->").ok_or("README.md has no first-hour block")?;
    let end = readme[begin..].find("<!-- first-hour:end -->").ok_or("the first-hour block is not closed")? + begin;
    let lines: Vec<Vec<String>> = readme[begin..end]
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("rollcall "))
        .map(|l| shell_words(&l["rollcall ".len()..]))
        .collect();
    ensure(lines.len() >= 4, || format!("the first-hour block has {} rollcall lines", lines.len()))?;
    Ok(lines)
}

/// Words as a shell splits these simple lines: spaces, and double quotes.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// A README line made to run here: this broker, a state directory of the
/// test's own, a fixed instance id, and this run's topic prefix and group.
fn localize(words: &[String], broker: &str, state: &str, prefix: &str) -> Vec<String> {
    let mut out: Vec<String> = words
        .iter()
        .map(|w| match w.as_str() {
            "kafka-1:9092" => broker.to_string(),
            "/var/lib/rollcall" => state.to_string(),
            "$(hostname)" => "first-hour".to_string(),
            _ => w.clone(),
        })
        .collect();
    if let Some(i) = out.iter().position(|w| w == "--group") {
        out[i + 1] = format!("{prefix}{}", out[i + 1]);
    }
    out.push("--topic-prefix".into());
    out.push(prefix.to_string());
    out
}

fn rollcall(args: &[String]) -> Result<String, String> {
    let out = Command::new(bin()).args(args).output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure(out.status.success(), || {
        format!("rollcall {}: {}\n{stdout}{}", args.join(" "), out.status, String::from_utf8_lossy(&out.stderr))
    })?;
    Ok(stdout)
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn readme_walkthrough_gives_attendance(broker: &str) -> TestResult {
    let lines = walkthrough()?;
    let prefix = unique("first-hour");
    let state = tempfile::tempdir().map_err(|e| e.to_string())?;
    let state_path = state.path().to_string_lossy().into_owned();
    let mut processor = None;
    let mut determinations = String::new();
    let mut dead = String::new();
    let mut simulate = None;
    for words in &lines {
        let args = localize(words, broker, &state_path, &prefix);
        match words.first().map(String::as_str) {
            Some("run") => {
                let child = Command::new(bin())
                    .args(&args)
                    .args(["--metrics-addr", "127.0.0.1:0"])
                    .env("ROLLCALL_LOG", "error")
                    .stdout(Stdio::null())
                    .spawn()
                    .map_err(|e| e.to_string())?;
                processor = Some(Killed(child));
            }
            Some("simulate") => {
                rollcall(&args)?;
                simulate = Some(words.clone());
            }
            Some("tail") if words.get(1).map(String::as_str) == Some("determinations") => {
                ensure(processor.is_some(), || "the README tails before it runs the processor".into())?;
                // The processor works while the person reads: read until two reads agree.
                let started = Instant::now();
                loop {
                    std::thread::sleep(Duration::from_secs(3));
                    let now = rollcall(&args)?;
                    let settled = !now.is_empty() && now.lines().count() == determinations.lines().count();
                    determinations = now;
                    if settled || started.elapsed() > Duration::from_secs(120) {
                        break;
                    }
                }
            }
            Some("tail") => dead = rollcall(&args)?,
            _ => {
                rollcall(&args)?;
            }
        }
    }
    drop(processor);
    let simulate = simulate.ok_or("the README never simulates a district")?;

    // The same district through the engine alone, as a scenario file.
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = dir.path().join("district.json");
    let mut args: Vec<String> = simulate.iter().filter(|w| !w.contains("kafka-1")).cloned().collect();
    if let Some(i) = args.iter().position(|w| w == "--brokers") {
        args.remove(i);
    }
    args.extend(["--out".to_string(), file.to_string_lossy().into_owned()]);
    rollcall(&args)?;
    let alone = rollcall(&["scenario".into(), "run".into(), "--memory".into(), file.to_string_lossy().into_owned()])?;
    let expected: BTreeMap<String, Value> = alone
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("determination_id").is_some())
        .map(|v| (key(&v), v))
        .collect();

    ensure(dead.trim().is_empty(), || format!("dead letters on the first try:\n{}", first_lines(&dead, 5)))?;
    let mut latest: BTreeMap<String, Value> = BTreeMap::new();
    for l in determinations.lines() {
        let v: Value = serde_json::from_str(l).map_err(|e| format!("tail printed `{l}`: {e}"))?;
        let k = key(&v);
        if latest.get(&k).is_none_or(|p| p["version"].as_i64() < v["version"].as_i64()) {
            latest.insert(k, v);
        }
    }
    let schools: std::collections::BTreeSet<&str> = latest.values().filter_map(|v| v["school_id"].as_str()).collect();
    let district: std::collections::BTreeSet<&str> = expected.values().filter_map(|v| v["school_id"].as_str()).collect();
    ensure(schools == district, || format!("determinations for schools {schools:?}, the district has {district:?}"))?;
    let mut compared = 0;
    for (k, v) in latest.iter().filter(|(_, v)| v["finality"] != "PROVISIONAL") {
        let e = expected.get(k).ok_or_else(|| format!("{k}: decided through Kafka, not by the engine alone"))?;
        for field in ["status", "code", "minutes", "contacts", "category"] {
            ensure(v[field] == e[field], || {
                format!("{k} {field}: {} through Kafka, {} by the engine alone", v[field], e[field])
            })?;
        }
        compared += 1;
    }
    ensure(compared > 100, || format!("only {compared} final determinations to compare"))?;
    eprintln!("  {} determination keys read back, {compared} final ones equal to the engine's, no dead letters", latest.len());
    Ok(())
}

fn key(v: &Value) -> String {
    let s = |f: &str| v[f].as_str().unwrap_or_default().to_string();
    match v["section_id"].as_str() {
        Some(sec) => format!("{}|{}|{}|{sec}", s("student_id"), s("scope"), s("date")),
        None => format!("{}|{}|{}", s("student_id"), s("scope"), s("date")),
    }
}

fn first_lines(s: &str, n: usize) -> String {
    s.lines().take(n).collect::<Vec<_>>().join("\n")
}

fn main() -> ExitCode {
    let Some(broker) = Broker::get_or_report() else { return ExitCode::FAILURE };
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(600));
        println!("the first-hour test did not finish within 10 minutes");
        println!("0 passed, 1 failed");
        std::process::exit(1);
    });
    let ok = run_one("readme_walkthrough_gives_attendance", || readme_walkthrough_gives_attendance(&broker.address));
    drop(broker);
    if ok {
        summary(1, 0)
    } else {
        summary(0, 1)
    }
}
