//! What the areas of tests/main.rs share: the runner (harness.rs), the
//! repository, the `rollcall` binary, a broker (the given one or one started
//! with scripts/kafka.sh), unique topic prefixes and a simulated district.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rollcall_scenario::Scenario;

pub mod browser;
#[macro_use]
pub mod harness;
pub mod http;
pub mod pg;
pub mod pipeline;
pub mod registry;
pub mod secure;
pub mod skip;

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

    /// The same broker, as a handle that stops nothing when dropped.
    pub fn handle(&self) -> Broker {
        Broker { address: self.address.clone(), run_dir: None }
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

/// A port on 127.0.0.1 that is free when this returns, taken from below the
/// kernel's ephemeral range: a port the kernel picked for `bind(0)` is in that
/// range, so any outgoing connection (the broker's, librdkafka's) can take it
/// between this call and the server's bind, and a server then fails with
/// "address already in use". Below the range only an explicit bind competes,
/// and each call in this process tries a different port.
pub fn free_port() -> Result<u16, String> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    let (from, to) = (10_000u32, ephemeral_low.min(65_535));
    if to > from + 1_000 {
        let span = to - from;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let seed = std::process::id().wrapping_mul(7_919).wrapping_add(nanos);
        for _ in 0..span.min(2_000) {
            let port = (from + seed.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed).wrapping_mul(7_883)) % span) as u16;
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
        }
    }
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// [`free_port`] as an address.
pub fn free_addr() -> Result<String, String> {
    Ok(format!("127.0.0.1:{}", free_port()?))
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

/// The program's path if it is on PATH.
pub fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|f| f.is_file()))
}

/// Every determination and outreach record on a run's output topics, as
/// JSON text, sorted: what two runs that must agree are compared by.
pub fn output_records(b: &str, topics: &rollcall_kafka::wire::Topics) -> Result<Vec<String>, String> {
    let out = rollcall_kafka::replay::read_outputs(b, topics).map_err(|e| format!("{e:#}"))?;
    let mut v: Vec<String> = out
        .determinations
        .iter()
        .map(|d| serde_json::to_string(d).unwrap_or_default())
        .chain(out.outreach.iter().map(|t| serde_json::to_string(t).unwrap_or_default()))
        .collect();
    v.sort();
    Ok(v)
}

/// Keeps the `[kafka]` and `[http]` settings of this process's environment
/// (ROLLCALL_KAFKA__*, ROLLCALL_HTTP__*) from a command a test starts: the
/// test gives it its own.
pub fn clean_env(cmd: &mut Command) {
    for (k, _) in std::env::vars() {
        if k.starts_with("ROLLCALL_KAFKA__") || k.starts_with("ROLLCALL_HTTP__") {
            cmd.env_remove(k);
        }
    }
}
