//! What the test binaries that run against a real broker share: the
//! repository, the `rollcall` binary, a broker (the given one or one started
//! with scripts/kafka.sh), unique topic prefixes and a simulated district.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use rollcall_scenario::Scenario;

pub mod browser;
pub mod http;
pub mod pg;
pub mod pipeline;
pub mod registry;

pub type TestResult = Result<(), String>;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `rollcall` binary: the one cargo built for this test, or the copy
/// named by ROLLCALL_TEST_BIN (where several checkouts share one target
/// directory, a copy taken right after the build cannot be replaced by
/// another checkout's build while the tests run).
pub fn bin() -> String {
    std::env::var("ROLLCALL_TEST_BIN")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_rollcall").to_string())
}

/// A broker for the run: the given one, or one started here.
pub struct Broker {
    pub address: String,
    run_dir: Option<PathBuf>,
}

impl Broker {
    pub fn get() -> Result<Broker, String> {
        if let Ok(b) = std::env::var("ROLLCALL_TEST_BROKERS") {
            if !b.trim().is_empty() {
                return Ok(Broker { address: b, run_dir: None });
            }
        }
        let run_dir = std::env::temp_dir().join(format!("rollcall-{}-test-{}", env!("CARGO_CRATE_NAME"), std::process::id()));
        eprintln!("starting a Kafka broker with scripts/kafka.sh (run dir {})", run_dir.display());
        let out = Command::new("bash")
            .arg(repo().join("scripts/kafka.sh"))
            .arg("start")
            .env("ROLLCALL_KAFKA_RUN", &run_dir)
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("scripts/kafka.sh: {e}"))?;
        if !out.status.success() {
            return Err("scripts/kafka.sh start failed".into());
        }
        let address = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_string();
        Ok(Broker { address, run_dir: Some(run_dir) })
    }

    /// The broker, or, when none can be had, the failure said the way the
    /// test binaries end (`0 passed, 1 failed`).
    pub fn get_or_report() -> Option<Broker> {
        match Broker::get() {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("no broker: {e}");
                println!("0 passed, 1 failed");
                None
            }
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(d) = &self.run_dir {
            let _ = Command::new("bash").arg(repo().join("scripts/kafka.sh")).arg("stop").env("ROLLCALL_KAFKA_RUN", d).status();
        }
    }
}

pub fn unique(name: &str) -> String {
    format!("t{}-{}-{name}.", std::process::id(), chrono::Utc::now().timestamp_millis())
}

pub fn ensure(cond: bool, msg: impl FnOnce() -> String) -> TestResult {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}

/// A simulated district as a scenario (no expectations).
pub fn district(students: usize, days: u32, seed: u64) -> Scenario {
    let w = rollcall_sim::generate(&rollcall_sim::SimConfig { students, days, seed, ..Default::default() });
    Scenario::from_world(w, "district")
}

/// Runs one test, printing `test NAME ... ok|FAILED` as libtest does;
/// returns whether it passed.
pub fn run_one(name: &str, f: impl FnOnce() -> TestResult) -> bool {
    eprintln!("test {name} ...");
    let started = std::time::Instant::now();
    match f() {
        Ok(()) => {
            println!("test {name} ... ok ({:.0} s)", started.elapsed().as_secs_f64());
            true
        }
        Err(e) => {
            println!("test {name} ... FAILED ({:.0} s)\n{e}", started.elapsed().as_secs_f64());
            false
        }
    }
}

/// Prints the summary line libtest prints and gives the binary's exit code.
pub fn summary(passed: usize, failed: usize) -> ExitCode {
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs the tests whose names contain the command line's filter (its first
/// argument not starting with `-`), each given `ctx`, and gives the exit
/// code after the summary line. A run that outlives `limit` is a failure,
/// not a stalled suite.
pub fn run_all<C: ?Sized>(
    what: &str,
    limit: std::time::Duration,
    tests: &[(&str, fn(&C) -> TestResult)],
    ctx: &C,
) -> (usize, usize) {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let what = what.to_string();
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        println!("the {what} tests did not finish within {} minutes", limit.as_secs() / 60);
        println!("0 passed, 1 failed");
        std::process::exit(1);
    });
    let (mut passed, mut failed) = (0, 0);
    for (name, f) in tests {
        if filter.as_deref().is_some_and(|p| !name.contains(p)) {
            continue;
        }
        if run_one(name, || f(ctx)) {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    (passed, failed)
}
