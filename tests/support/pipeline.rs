//! A scenario through the whole pipeline: its topics, the processor on a
//! replay clock up to the scenario's `now`, and the PostgreSQL sink to the
//! end of its topics; for the tests that read what the sink keeps.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rollcall_kafka::replay::produce_scenario;
use rollcall_kafka::topics::create_topics;
use rollcall_kafka::wire::Topics;
use rollcall_scenario::Scenario;

use super::{bin, ensure, unique};

/// Produces `s` to topics of a fresh prefix and runs the processor over
/// them to the end; gives the prefix.
pub fn process(b: &str, s: &Scenario, name: &str) -> Result<String, String> {
    let prefix = unique(name);
    let topics = Topics::with_prefix(&prefix);
    create_topics(b, &topics, 3, 1).map_err(|e| e.to_string())?;
    produce_scenario(b, &topics, s).map_err(|e| e.to_string())?;
    let state = tempfile::tempdir().map_err(|e| e.to_string())?;
    let status = Command::new(bin())
        .args(["run", "--brokers", b, "--clock", "replay", "--exit-when-idle", "--instance-id", "p"])
        .args(["--until", &s.now.to_rfc3339(), "--topic-prefix", &prefix, "--group", &format!("{prefix}g")])
        .args(["--metrics-addr", "off"])
        .arg("--state-dir")
        .arg(state.path())
        .env("ROLLCALL_LOG", std::env::var("ROLLCALL_TEST_LOG").unwrap_or_else(|_| "error".into()))
        .stdout(Stdio::null())
        .status()
        .map_err(|e| e.to_string())?;
    ensure(status.success(), || format!("rollcall run exited with {status}"))?;
    Ok(prefix)
}

/// Runs `rollcall sink postgres` over the prefix's topics until it has
/// written them to their ends; gives what it printed on stderr.
pub fn sink_to_end(b: &str, prefix: &str, url: &str) -> Result<String, String> {
    let started = Instant::now();
    let mut child = Command::new(bin())
        .args(["sink", "postgres", "--brokers", b, "--database-url", url, "--topic-prefix", prefix])
        .args(["--group", &format!("{prefix}sink"), "--exit-when-idle", "--metrics-addr", "off"])
        .env("ROLLCALL_LOG", std::env::var("ROLLCALL_TEST_LOG").unwrap_or_else(|_| "warn".into()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut err = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = err.as_mut() {
            let _ = std::io::Read::read_to_string(e, &mut s);
        }
        s
    });
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break st;
        }
        if started.elapsed() > Duration::from_secs(180) {
            let _ = child.kill();
            let _ = child.wait();
            return Err("the sink did not finish within 180 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let said = reader.join().unwrap_or_default();
    ensure(status.success(), || format!("the sink exited with {status}: {said}"))?;
    Ok(said)
}
