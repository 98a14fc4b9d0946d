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

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::harness::{Area, Need};
use crate::support::{bin, ensure, repo, unique, TestResult};
use serde_json::Value;

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

/// `rollcall` with `args` and the environment `env`: (success, stdout, stderr).
fn rollcall_out(args: &[&str], env: &[(&str, &str)]) -> Result<(bool, String, String), String> {
    let out = Command::new(bin()).args(args).envs(env.iter().copied()).output().map_err(|e| e.to_string())?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Item 3: `topics create` prints the partitions there are, and fails
/// when an existing keyed input has another count than asked.
fn topics_create_says_what_is_there(broker: &str) -> TestResult {
    let prefix = unique("topics");
    let (ok, out, err) =
        rollcall_out(&["topics", "create", "--brokers", broker, "--topic-prefix", &prefix, "--partitions", "3"], &[])?;
    ensure(ok && out.contains("created") && !out.contains("exists"), || format!("first create:\n{out}{err}"))?;
    let (ok, out, err) =
        rollcall_out(&["topics", "create", "--brokers", broker, "--topic-prefix", &prefix, "--partitions", "6"], &[])?;
    ensure(!ok, || format!("asking 6 partitions of topics that have 3 succeeded:\n{out}{err}"))?;
    let activity = out.lines().find(|l| l.contains("lms.activity.v1")).unwrap_or_default();
    ensure(activity.starts_with("exists") && activity.contains(" 3 partition(s)"), || format!("not the actual count:\n{out}"))?;
    ensure(err.contains("3") && err.contains("6") && err.contains("partitions"), || {
        format!("the error does not say what differs:\n{err}")
    })?;
    let (ok, out, err) =
        rollcall_out(&["topics", "create", "--brokers", broker, "--topic-prefix", &prefix, "--partitions", "3"], &[])?;
    ensure(ok && !out.contains("created"), || format!("creating again with the same count:\n{out}{err}"))
}

/// Item 4: a copy of a preset that keeps its id is refused without
/// `--replace-preset`, and with it the start-up log names the file.
fn a_copied_preset_replaces_only_when_said(broker: &str) -> TestResult {
    let prefix = unique("preset");
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (ok, shown, _) = rollcall_out(&["policy", "show", "cms"], &[])?;
    ensure(ok && shown.starts_with('#') && shown.contains("id = \"cms\""), || format!("policy show cms:\n{shown}"))?;
    let file = dir.path().join("district.toml");
    std::fs::write(&file, &shown).map_err(|e| e.to_string())?;
    let file = file.display().to_string();
    let state = dir.path().join("state").display().to_string();
    rollcall_out(&["topics", "create", "--brokers", broker, "--topic-prefix", &prefix, "--partitions", "1"], &[])?;
    let run = ["run", "--brokers", broker, "--topic-prefix", &prefix, "--group", "g", "--state-dir", &state];
    let tail = ["--policy-file", &file, "--clock", "replay", "--exit-when-idle", "--metrics-addr", "off"];
    let args: Vec<&str> = run.iter().chain(&tail).copied().collect();
    let (ok, _, err) = rollcall_out(&args, &[])?;
    ensure(!ok && err.contains("--replace-preset cms") && err.contains(&file), || {
        format!("a copied preset was not refused:\n{err}")
    })?;
    let args: Vec<&str> = args.into_iter().chain(["--replace-preset", "cms"]).collect();
    let (ok, _, err) = rollcall_out(&args, &[("ROLLCALL_LOG", "info")])?;
    ensure(ok, || format!("with --replace-preset the run failed:\n{err}"))?;
    let line = err.lines().find(|l| l.contains("preset replaced by a policy file")).unwrap_or_default();
    ensure(line.contains("policy=cms") && line.contains(&file), || format!("the start-up log does not name the file:\n{err}"))?;
    let presets = err.lines().filter(|l| l.contains("policy in force") && l.contains("source=\"preset\"")).count();
    ensure(presets == 4, || format!("{presets} presets named as in force, expected the other 4:\n{err}"))
}

/// Item 6: an unreachable broker is named with what failed within seconds;
/// a SIGTERM ends the process within 2 s while it waits for brokers and
/// while it runs.
fn unreachable_brokers_are_named_and_a_stop_is_quick(broker: &str) -> TestResult {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let state = dir.path().display().to_string();
    let started = Instant::now();
    let (ok, _, err) = rollcall_out(&["run", "--brokers", "127.0.0.1:1", "--state-dir", &state, "--metrics-addr", "off"], &[])?;
    let took = started.elapsed();
    ensure(!ok && took < Duration::from_secs(10), || format!("exit {ok} after {took:?}:\n{err}"))?;
    let last = err.lines().last().unwrap_or_default();
    ensure(last.contains("`127.0.0.1:1`") && last.contains("Connection refused"), || format!("not named:\n{err}"))?;
    let stop_within = |args: &[&str], env: &[(&str, &str)], after: Duration, what: &str| -> TestResult {
        let mut child = Command::new(bin())
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        std::thread::sleep(after);
        ensure(child.try_wait().map_err(|e| e.to_string())?.is_none(), || format!("{what}: it ended by itself"))?;
        let pid = child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().map_err(|e| e.to_string())?;
        let sent = Instant::now();
        while child.try_wait().map_err(|e| e.to_string())?.is_none() {
            if sent.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                return Err(format!("{what}: still running 10 s after SIGTERM"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let took = sent.elapsed();
        ensure(took < Duration::from_secs(2), || format!("{what}: stopped {took:?} after SIGTERM"))
    };
    let waiting = ["run", "--brokers", "127.0.0.1:1", "--state-dir", &state, "--metrics-addr", "off"];
    stop_within(&waiting, &[("ROLLCALL_BROKER_WAIT_SECONDS", "120")], Duration::from_secs(7), "waiting for brokers")?;
    let prefix = unique("stop");
    rollcall_out(&["topics", "create", "--brokers", broker, "--topic-prefix", &prefix, "--partitions", "2"], &[])?;
    let group = format!("{prefix}g");
    let running = [
        "run",
        "--brokers",
        broker,
        "--topic-prefix",
        &prefix,
        "--group",
        &group,
        "--state-dir",
        &state,
        "--metrics-addr",
        "off",
    ];
    stop_within(&running, &[], Duration::from_secs(8), "running")
}

/// Items 5 and 7: a district from the past under the wall clock. Its dead
/// letters are summed up per interval (no line per record), and one line
/// says that `--clock replay` is probably wanted.
fn dead_letters_are_summed_up_and_the_clock_is_hinted(broker: &str) -> TestResult {
    let prefix = unique("wall");
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let state = dir.path().display().to_string();
    rollcall_out(&["topics", "create", "--brokers", broker, "--topic-prefix", &prefix, "--partitions", "2"], &[])?;
    let (ok, out, err) =
        rollcall_out(&["simulate", "--brokers", broker, "--topic-prefix", &prefix, "--students", "20", "--days", "2"], &[])?;
    ensure(ok, || format!("simulate: {out}{err}"))?;
    let group = format!("{prefix}g");
    let args =
        ["run", "--brokers", broker, "--topic-prefix", &prefix, "--group", &group, "--state-dir", &state, "--exit-when-idle"];
    let (ok, _, err) = rollcall_out(&[&args[..], &["--metrics-addr", "off"]].concat(), &[("ROLLCALL_LOG", "warn")])?;
    ensure(ok, || format!("run: {err}"))?;
    let dead: u64 = err
        .lines()
        .last()
        .and_then(|l| l.split(" outreach, ").nth(1))
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("no closing line:\n{err}"))?;
    ensure(dead > 100, || format!("only {dead} dead letters; the district should be refused whole"))?;
    let hints = err.lines().filter(|l| l.contains("--clock replay")).count();
    ensure(hints == 1, || format!("{hints} hints of --clock replay:\n{}", first_lines(&err, 20)))?;
    let summaries: Vec<&str> = err.lines().filter(|l| l.contains("dead letter(s) in the last")).collect();
    ensure(!summaries.is_empty() && summaries.len() < 10, || {
        format!("{} summary lines:\n{}", summaries.len(), first_lines(&err, 20))
    })?;
    ensure(summaries.iter().any(|l| l.contains("TIMESTAMP_OUT_OF_RANGE on ") && l.contains("(e.g. [")), || summaries.join("\n"))?;
    let warn_lines = err.lines().filter(|l| l.contains("WARN")).count();
    ensure(warn_lines < 12, || format!("{warn_lines} WARN lines for {dead} dead letters:\n{}", first_lines(&err, 20)))
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

pub fn area() -> Area {
    let tests = service_tests![[Need::Broker], |e| (e.broker());
        readme_walkthrough_gives_attendance,
        topics_create_says_what_is_there,
        a_copied_preset_replaces_only_when_said,
        unreachable_brokers_are_named_and_a_stop_is_quick,
        dead_letters_are_summed_up_and_the_clock_is_hinted,
    ];
    Area::new("first_hour", Duration::from_secs(900), tests)
}
