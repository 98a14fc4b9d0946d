//! `rollcall demo`: a simulated district through the engine, summarised per
//! school as a person would want to read it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use rollcall_model::{Determination, Scope};
use rollcall_scenario::{run_with, RunOptions, RunOutput, Scenario};
use rollcall_sim::{generate, SimConfig};
use rollcall_store::{RocksStore, StoreConfig};

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Students in the simulated district.
    #[arg(long, default_value_t = 400)]
    students: usize,
    /// Calendar days to simulate, from Monday 2020-10-05.
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// Seed of the simulation (the same seed gives the same district).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Keep the RocksDB state here instead of a temporary directory.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Run through this Kafka cluster (topics are created under a fresh
    /// prefix `demo-<ms>.` and deleted at the end, unless --keep-topics).
    /// Without it, an in-process mock cluster is used.
    #[arg(long, conflicts_with = "engine_only")]
    brokers: Option<String>,
    /// With --brokers: leave the demo's topics on the cluster, to read them afterwards.
    #[arg(long, requires = "brokers")]
    keep_topics: bool,
    /// Feed the engine directly, without Kafka: the engine's own speed.
    #[arg(long)]
    engine_only: bool,
    /// Serve the processor's /metrics, /healthz and /readyz here while it runs (IP:port).
    #[arg(long, conflicts_with = "engine_only")]
    metrics_addr: Option<String>,
}

impl DemoArgs {
    /// Without --brokers the demo's Kafka is its own in-process mock
    /// cluster (or none, with --engine-only): always plaintext, so the
    /// `ROLLCALL_KAFKA__*` settings are not for it.
    pub fn own_cluster(&self) -> bool {
        self.brokers.is_none()
    }
}

/// The note said when `ROLLCALL_KAFKA__*` variables are set but the demo
/// runs its own cluster; `None` when none is set.
pub fn ignored_security_note(vars: impl IntoIterator<Item = String>) -> Option<String> {
    let mut set: Vec<String> = vars.into_iter().filter(|k| k.starts_with("ROLLCALL_KAFKA__")).collect();
    if set.is_empty() {
        return None;
    }
    set.sort();
    Some(format!(
        "note: {} ignored: the demo's in-process mock cluster is always plaintext (give --brokers to use a secured cluster)",
        set.join(", ")
    ))
}

pub fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    if let Some(a) = &args.metrics_addr {
        rollcall_kafka::ProcessorConfig { metrics_addr: a.clone(), ..Default::default() }.validate()?;
    }
    let cfg = SimConfig { students: args.students, days: args.days, seed: args.seed, ..SimConfig::default() };
    eprintln!(
        "rollcall demo: simulating {} students over {} days from {} (seed {})",
        cfg.students, cfg.days, cfg.start, cfg.seed
    );
    let world = generate(&cfg);
    let scenario = Scenario::from_world(world, "demo district");

    if !args.engine_only {
        return through_kafka(args, &scenario, &scenario.calendars, &scenario.roster);
    }
    let tmp;
    let dir = match &args.state_dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().context("creating a temporary state directory")?;
            tmp.path().to_path_buf()
        }
    };
    let store = RocksStore::open(&dir, &StoreConfig::default())?;

    let bar = ProgressBar::new(scenario.events.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} engine [{bar:40}] {pos}/{len} events  {per_sec}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut progress = |done: usize, _total: usize| bar.set_position(done as u64);
    let started = Instant::now();
    let (out, engine) = run_with(
        &scenario,
        store,
        &mut RunOptions { commit_every: 5_000, progress: Some(&mut progress), ..RunOptions::default() },
    )?;
    let elapsed = started.elapsed();
    bar.finish_and_clear();

    print_summary(&scenario.calendars, &scenario.roster, &out);
    let stats = engine.stats();
    let rate = stats.events as f64 / elapsed.as_secs_f64().max(1e-9);
    println!();
    println!(
        "{} events applied ({} duplicates ignored, {} refused), {} determination records ({} corrections), {} outreach triggers",
        stats.events,
        stats.duplicates,
        out.dead_letters.len(),
        stats.determinations,
        stats.corrections,
        stats.outreach
    );
    println!(
        "engine: {} events in {:.2} s, {:.0} events/s (one thread, RocksDB state in {})",
        stats.events + stats.duplicates,
        elapsed.as_secs_f64(),
        rate,
        if args.state_dir.is_some() { dir.display().to_string() } else { "a temporary directory".into() }
    );
    Ok(ExitCode::SUCCESS)
}

/// The demo on the production path: topics, the exactly-once processor, outputs read back read_committed.
fn through_kafka(
    args: &DemoArgs,
    scenario: &Scenario,
    calendars: &[rollcall_model::SchoolCalendar],
    roster: &[rollcall_model::StudentRecord],
) -> anyhow::Result<ExitCode> {
    use rollcall_kafka::{replay, topics, wire::Topics, ClockMode, Processor, ProcessorConfig};
    let prefix = format!("demo-{}.", chrono::Utc::now().timestamp_millis());
    let group = format!("{prefix}demo");
    let names = Topics::of_group(&prefix, &group);
    let mock;
    let brokers = match &args.brokers {
        Some(b) => {
            topics::create_topics(b, &names, 3, 1)?;
            eprintln!("Kafka: {b} (topics under the prefix `{prefix}`)");
            b.clone()
        }
        None => {
            mock = rdkafka::mocking::MockCluster::new(1).context("starting the in-process mock Kafka cluster")?;
            for spec in topics::topic_specs(&names, 3) {
                mock.create_topic(&spec.name, spec.partitions, 1).context("creating a topic on the mock cluster")?;
            }
            eprintln!("Kafka: an in-process mock cluster (in memory, not durable; give --brokers for a real one)");
            mock.bootstrap_servers()
        }
    };
    let produced = replay::produce_scenario(&brokers, &names, scenario)?;
    let tmp = tempfile::tempdir().context("creating a temporary state directory")?;
    let state_dir = args.state_dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let cfg = ProcessorConfig {
        brokers: brokers.clone(),
        group,
        state_dir,
        instance_id: "demo".into(),
        clock: ClockMode::Replay,
        until: Some(scenario.now),
        exit_when_idle: true,
        topic_prefix: prefix.clone(),
        ..ProcessorConfig::default()
    };
    let metrics = std::sync::Arc::new(rollcall_kafka::metrics::Metrics::new());
    let server = match &args.metrics_addr {
        Some(a) => crate::kafka_cmd::serve_metrics(a, metrics.clone(), &Default::default())?,
        None => None,
    };
    if let Some(s) = &server {
        eprintln!("metrics: http://{}/metrics", s.local_addr());
    }
    let bar = ProgressBar::new_spinner();
    bar.set_message(format!("processing {produced} records through Kafka, exactly once"));
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let started = Instant::now();
    let stats = std::thread::scope(|sc| {
        sc.spawn(|| -> anyhow::Result<rollcall_kafka::RunStats> {
            let mut p =
                Processor::with_metrics(cfg, std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)), metrics.clone())?;
            Ok(p.run()?)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the processor thread panicked"))?
    })?;
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let out = replay::read_outputs(&brokers, &names)?;
    if let Some(b) = &args.brokers {
        if args.keep_topics {
            eprintln!("Kafka: the demo's topics stay on {b} under the prefix `{prefix}` (--keep-topics)");
        } else {
            let deleted = topics::delete_topics(b, &names)?;
            eprintln!("Kafka: deleted the demo's {} topics under `{prefix}` (--keep-topics keeps them)", deleted.len());
        }
    }
    print_summary(calendars, roster, &out);
    println!();
    println!(
        "{} input records in {} transactions: {} determination records, {} outreach triggers, {} dead letters",
        stats.records, stats.transactions, stats.determinations, stats.outreach, stats.dead_letters
    );
    println!(
        "processor: {} records in {:.2} s, {:.0} records/s through Kafka with exactly-once (includes start-up)",
        stats.records,
        elapsed.as_secs_f64(),
        stats.records as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}

fn print_summary(calendars: &[rollcall_model::SchoolCalendar], roster: &[rollcall_model::StudentRecord], out: &RunOutput) {
    let latest = out.latest();
    for cal in calendars {
        let students = roster.iter().filter(|s| s.school_id == cal.school_id).count();
        println!();
        println!("{}  ·  policy {}  ·  {}  ·  {} students", cal.school_id, cal.policy, cal.timezone, students);
        let dets: Vec<&&Determination> = latest.values().filter(|d| d.school_id == cal.school_id).collect();
        for scope in [Scope::Day, Scope::Section, Scope::Week] {
            // rows: date → code → count
            let mut rows: BTreeMap<_, BTreeMap<&str, usize>> = BTreeMap::new();
            let mut codes: BTreeMap<&str, ()> = BTreeMap::new();
            for d in dets.iter().filter(|d| d.scope == scope) {
                *rows.entry(d.date).or_default().entry(d.code.as_str()).or_default() += 1;
                codes.insert(d.code.as_str(), ());
            }
            if rows.is_empty() {
                continue;
            }
            let label = match scope {
                Scope::Day => "day",
                Scope::Section => "periods",
                Scope::Week => "week of (per class)",
            };
            let codes: Vec<&str> = codes.into_keys().collect();
            print!("  {label:<20}");
            for c in &codes {
                print!("{c:>14}");
            }
            println!();
            for (date, counts) in rows {
                print!("  {:<20}", format!("{date} {}", date.format("%a")));
                for c in &codes {
                    print!("{:>14}", counts.get(c).copied().unwrap_or(0));
                }
                println!();
            }
        }
        let mut outreach: BTreeMap<String, usize> = BTreeMap::new();
        for t in out.outreach.iter().filter(|t| t.school_id == cal.school_id) {
            *outreach.entry(format!("{} → {}", t.kind, t.recipient_role)).or_default() += 1;
        }
        if outreach.is_empty() {
            println!("  outreach: none");
        } else {
            let list: Vec<String> = outreach.iter().map(|(k, n)| format!("{n} {k}")).collect();
            println!("  outreach: {}", list.join(", "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_variables_are_named_as_ignored_and_others_are_not() {
        assert_eq!(ignored_security_note(["ROLLCALL_BROKERS".to_string(), "PATH".to_string()]), None);
        let note = ignored_security_note([
            "ROLLCALL_KAFKA__SECURITY_PROTOCOL".to_string(),
            "HOME".to_string(),
            "ROLLCALL_KAFKA__SASL_PASSWORD".to_string(),
        ])
        .expect("two are set");
        assert!(note.contains("ROLLCALL_KAFKA__SASL_PASSWORD, ROLLCALL_KAFKA__SECURITY_PROTOCOL ignored"), "{note}");
        assert!(note.contains("plaintext"), "{note}");
    }
}
