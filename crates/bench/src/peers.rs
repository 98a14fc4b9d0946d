use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::broker::{create_topics, high_watermarks, processor_config, produce, rate, run_processor, unique};
use crate::district::{simulate, DistrictOnBroker};
use crate::progress::spinner;

#[derive(clap::Args)]
pub struct PeersArgs {
    #[command(flatten)]
    district: DistrictOnBroker,
    /// The directory of the peers' run.sh [default: bench/peers of this repository].
    #[arg(long)]
    peers_dir: Option<PathBuf>,
    /// Give up on a peer after this many seconds.
    #[arg(long, default_value_t = 1200)]
    peer_timeout: u64,
    /// One commit cadence for every system: rollcall's `batch_max_ms`, Kafka
    /// Streams' `commit.interval.ms`, Quix's and Flink's checkpoint interval.
    #[arg(long, default_value_t = 1000)]
    commit_interval_ms: u64,
    /// Threads for every system that has them: rollcall's apply threads,
    /// Kafka Streams' stream threads, Flink's parallelism (Quix is one
    /// process) [default: the cores of the machine].
    #[arg(long)]
    parallelism: Option<usize>,
}

pub(crate) fn peers_dir(a: &PeersArgs) -> PathBuf {
    if let Some(d) = &a.peers_dir {
        return d.clone();
    }
    let here = PathBuf::from("bench/peers");
    if here.join("run.sh").is_file() {
        return here;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/peers")
}

pub(crate) fn on_path(tool: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {tool}")]).stdout(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// How a peer is run: how long it may take, and the arguments of its own
/// (after the job's `--engagement rollcall`).
pub(crate) struct PeerOptions {
    pub timeout: Duration,
    pub extra: Vec<String>,
}

/// Runs one peer through run.sh; its events/s, or why there is none.
pub(crate) fn run_peer(
    dir: &std::path::Path,
    name: &str,
    brokers: &str,
    input: &str,
    output: &str,
    expected: u64,
    how: &PeerOptions,
) -> Result<(f64, String), String> {
    let needs: &[&str] = if name == "quix" { &["python3"] } else { &["java"] };
    let jar = match name {
        "kafka-streams" => Some(dir.join("kafka-streams/target/daily-engagement-kstreams.jar")),
        "flink" => Some(dir.join("flink/target/daily-engagement-flink.jar")),
        _ => None,
    };
    let needs: Vec<&str> = if jar.is_some_and(|j| !j.is_file()) { vec!["java", "mvn"] } else { needs.to_vec() };
    for tool in needs {
        if !on_path(tool) {
            return Err(format!("not run: {tool} not found"));
        }
    }
    use std::os::unix::process::CommandExt;
    let mut child = Command::new("bash")
        .arg(dir.join("run.sh"))
        .args(["--brokers", brokers, "--input", input, "--output", output, "--expected", &expected.to_string(), "--only", name])
        .args(["--", "--engagement", "rollcall"])
        .args(&how.extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("not run: {e}"))?;
    let spin = spinner(name);
    spin.set_message("running");
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if started.elapsed() > how.timeout => {
                let _ = Command::new("kill").args(["-TERM", "--", &format!("-{}", child.id())]).status();
                let _ = child.wait();
                spin.finish_and_clear();
                return Err(format!("not finished within {} s (stopped)", how.timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => return Err(e.to_string()),
        }
    };
    spin.finish_and_clear();
    let mut out = String::new();
    if let Some(mut s) = child.stdout.take() {
        use std::io::Read;
        let _ = s.read_to_string(&mut out);
    }
    let line = out.lines().rev().find(|l| l.starts_with(&format!("{name}: "))).unwrap_or_default().to_string();
    let r = line.strip_suffix(" events/s").and_then(|l| l.rsplit("= ").next()).and_then(|n| n.trim().parse::<f64>().ok());
    match r {
        Some(r) if status.success() => Ok((r, line)),
        _ => Err(format!(
            "failed ({}): {}",
            status,
            if line.is_empty() { "no result line; run bench/peers/run.sh by hand for its log" } else { &line }
        )),
    }
}

pub fn peers(a: PeersArgs) -> anyhow::Result<ExitCode> {
    let dir = peers_dir(&a);
    anyhow::ensure!(dir.join("run.sh").is_file(), "{}: no run.sh (give --peers-dir)", dir.display());
    let data = simulate(&a.district.sim());
    let prefix = unique("peers");
    let topics = create_topics(&a.district.brokers, &prefix, a.district.partitions)?;
    let keyed = produce(&a.district.brokers, &topics, &data, Some("daily-engagement"))?;
    let events: u64 = high_watermarks(&a.district.brokers, &[&topics.activity])?.values().sum::<i64>().max(0) as u64;
    println!("input: {}, every school under daily-engagement; {events} records on {}", data.source, topics.activity);

    let parallelism = a.parallelism.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from)).max(1);
    println!(
        "every system: commits every {} ms, {parallelism} thread(s) (Kafka Streams' stream threads, Flink's parallelism, rollcall's apply threads; Quix is one process)",
        a.commit_interval_ms
    );
    let state = tempfile::tempdir().context("creating a state directory")?;
    let mut cfg = processor_config(&a.district.brokers, &prefix, "rollcall", state.path().to_path_buf(), Some(data.end));
    cfg.batch_max_ms = a.commit_interval_ms.max(1);
    cfg.apply_threads = parallelism;
    let r = run_processor(cfg, keyed, "rollcall")?;
    let from = r.watched.ready.unwrap_or_default();
    let secs = (r.wall - from).as_secs_f64();
    let ours = rate(events, secs);
    println!(
        "rollcall (exactly-once, replay clock to the end, absences too): {events} events ({} records with roster and reports) in {secs:.3} s after start-up ({:.3} s) = {ours:.0} events/s; {} determinations",
        r.stats.records,
        from.as_secs_f64(),
        r.stats.determinations
    );
    let timeout = Duration::from_secs(a.peer_timeout);
    let mut results = Vec::new();
    for name in ["kafka-streams", "quix", "flink"] {
        let output = format!("{prefix}{name}.daily.v1");
        let mut extra = vec!["--commit-interval-ms".to_string(), a.commit_interval_ms.to_string()];
        match name {
            "kafka-streams" => extra.extend(["--threads".to_string(), parallelism.to_string()]),
            "flink" => extra.extend(["--parallelism".to_string(), parallelism.to_string()]),
            _ => {}
        }
        let how = PeerOptions { timeout, extra };
        let res = run_peer(&dir, name, &a.district.brokers, &topics.activity, &output, events, &how);
        match &res {
            Ok((_, line)) => println!("{line}"),
            Err(why) => println!("{name}: {why}"),
        }
        results.push((name, res));
    }
    println!();
    println!("| system | events/s | rollcall / system |");
    println!("|---|---|---|");
    println!("| rollcall | {ours:.0} | |");
    let mut last = format!("peers: rollcall {ours:.0} events/s");
    for (name, res) in &results {
        match res {
            Ok((r, _)) => {
                println!("| {name} | {r:.0} | {:.2}x |", ours / r.max(1e-9));
                last.push_str(&format!(", {name} {r:.0} events/s ({:.2}x)", ours / r.max(1e-9)));
            }
            Err(why) => {
                println!("| {name} | {why} | |");
                last.push_str(&format!(", {name} not measured"));
            }
        }
    }
    println!("{last}");
    Ok(ExitCode::SUCCESS)
}
