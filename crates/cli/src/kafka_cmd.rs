//! `rollcall topics create` and `rollcall run`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use rollcall_http::{HttpServer, Observed};
use rollcall_kafka::metrics::Metrics;
use rollcall_kafka::{ClockMode, Processor, ProcessorConfig};

#[derive(clap::Subcommand)]
pub enum TopicsCommand {
    /// Create every topic rollcall reads and writes (running it again is fine).
    Create {
        /// Kafka bootstrap servers, host:port[,host:port...].
        #[arg(long, env = "ROLLCALL_BROKERS")]
        brokers: String,
        /// Partitions of the keyed topics (the inputs must agree).
        #[arg(long, default_value_t = 6)]
        partitions: i32,
        /// Replicas of every partition (at most the number of brokers).
        #[arg(long, default_value_t = 1)]
        replication: i32,
        /// Put before every topic name (`trial.` gives trial.lms.activity.v1, ...).
        #[arg(long = "topic-prefix", visible_alias = "prefix", default_value = "")]
        prefix: String,
        /// Put this before the output topics' names instead (determinations,
        /// outreach, dead letters): a trial group's outputs, as given to
        /// `run --output-prefix`.
        #[arg(long = "output-prefix")]
        output_prefix: Option<String>,
        /// The consumer group whose changelog to create too (`rollcall run`
        /// creates its group's changelog itself when it is missing).
        #[arg(long, default_value = rollcall_kafka::wire::DEFAULT_GROUP)]
        group: String,
    },
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// Settings file (TOML); environment variables ROLLCALL_* and these flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Kafka bootstrap servers, host:port[,host:port...] [env ROLLCALL_BROKERS].
    #[arg(long)]
    brokers: Option<String>,
    /// Where this instance keeps its RocksDB state, one directory per
    /// partition it owns; a restart resumes from it [env ROLLCALL_STATE_DIR].
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// The consumer group: instances with one group share the partitions
    /// and produce one set of outputs [env ROLLCALL_GROUP].
    #[arg(long)]
    group: Option<String>,
    /// Names this instance's transactional producer; keep it stable across restarts.
    #[arg(long)]
    instance_id: Option<String>,
    /// `wall` (production) or `replay` (the records' timestamps).
    #[arg(long)]
    clock: Option<String>,
    /// Replay: advance the clock to this instant once every input is consumed.
    #[arg(long)]
    until: Option<DateTime<Utc>>,
    /// Exit once every input is consumed.
    #[arg(long)]
    exit_when_idle: bool,
    /// Put before every topic name, as given to `topics create --topic-prefix`.
    #[arg(long)]
    topic_prefix: Option<String>,
    /// Write the outputs (determinations, outreach, dead letters) behind this
    /// prefix instead, so that a trial group reads production's inputs and
    /// keeps its outputs apart [config output_topic_prefix].
    #[arg(long)]
    output_prefix: Option<String>,
    /// A district policy file (repeatable).
    #[arg(long = "policy-file")]
    policy_files: Vec<PathBuf>,
    /// Let a policy file whose id is this preset's replace the preset for
    /// every school that names it (repeatable; refused otherwise).
    #[arg(long = "replace-preset")]
    replace_presets: Vec<String>,
    /// Serve /metrics, /healthz and /readyz here: IP:port (port 0 picks a
    /// free one), or `off` [default: 127.0.0.1:9464; config metrics_addr,
    /// env ROLLCALL_METRICS_ADDR].
    #[arg(long)]
    metrics_addr: Option<String>,
    /// The format of the values written: `single-object` or `confluent`
    /// (the Confluent wire format; needs --registry-url). Inputs are read
    /// in either [config value_format, env ROLLCALL_VALUE_FORMAT].
    #[arg(long)]
    value_format: Option<String>,
    /// The schema registry's Confluent API, e.g.
    /// http://registry:8080/apis/ccompat/v7 [config registry_url, env
    /// ROLLCALL_REGISTRY_URL]; credentials from registry_credentials_file
    /// or ROLLCALL_REGISTRY_CREDENTIALS.
    #[arg(long)]
    registry_url: Option<String>,
}

#[derive(clap::Args)]
pub struct SimulateArgs {
    /// Students in the district, spread over schools of the five presets.
    #[arg(long, default_value_t = 400)]
    students: usize,
    /// Calendar days to simulate, from Monday 2020-10-05.
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// The same seed gives the same district, event for event.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Produce the district to these brokers (topics must exist)…
    #[arg(long, required_unless_present = "out")]
    brokers: Option<String>,
    /// Put before every topic name, as given to `topics create --topic-prefix`.
    #[arg(long, default_value = "")]
    topic_prefix: String,
    /// …or write it to this file: an Avro object container file
    /// (schemas/simulation_entry.avsc) that `rollcall bench engine --file` replays.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The file's format: `avro`, or `scenario` (a scenario file for
    /// `rollcall scenario run`). Default: `scenario` for a name ending in
    /// `.json`, else `avro`.
    #[arg(long, requires = "out")]
    format: Option<String>,
}

/// `rollcall simulate`: a deterministic district, to topics, to an Avro file or to a scenario file.
pub fn simulate(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let cfg = rollcall_sim::SimConfig { students: args.students, days: args.days, seed: args.seed, ..Default::default() };
    if let Some(out) = args.out {
        let format = match args.format.as_deref() {
            Some(f) => f.to_string(),
            None if out.extension().is_some_and(|e| e == "json") => "scenario".into(),
            None => "avro".into(),
        };
        match format.as_str() {
            "avro" => return simulate_to_avro(&cfg, &out),
            "scenario" => {}
            other => anyhow::bail!("--format: `{other}` is neither `avro` nor `scenario`"),
        }
        let world = rollcall_sim::generate(&cfg);
        let v = world.to_scenario_json(&format!("simulated district (seed {})", args.seed), "mmsd");
        std::fs::write(&out, serde_json::to_string(&v)?).with_context(|| format!("writing {}", out.display()))?;
        eprintln!("wrote {} events to {}", world.events.len(), out.display());
        return Ok(ExitCode::SUCCESS);
    }
    let world = rollcall_sim::generate(&cfg);
    let brokers = args.brokers.unwrap_or_default();
    let s = rollcall_scenario::Scenario::from_world(world, "simulated");
    let topics = rollcall_kafka::wire::Topics::with_prefix(&args.topic_prefix);
    let n = rollcall_kafka::replay::produce_scenario(&brokers, &topics, &s)?;
    println!("produced {n} records; replay with --clock replay --until {}", s.now.to_rfc3339());
    Ok(ExitCode::SUCCESS)
}

/// Streams the district into an Avro object container file, with a progress bar.
fn simulate_to_avro(cfg: &rollcall_sim::SimConfig, out: &std::path::Path) -> anyhow::Result<ExitCode> {
    use indicatif::{ProgressBar, ProgressStyle};
    let f = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} writing {msg}: {pos} events  {per_sec}  {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(out.display().to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let n = rollcall_sim::file::write_simulation(cfg, std::io::BufWriter::with_capacity(1 << 20, f), |n| {
        bar.set_position(n.events as u64)
    })
    .with_context(|| format!("writing {}", out.display()))?;
    bar.finish_and_clear();
    let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    println!(
        "wrote {}: {} calendars, {} students, {} absence reports, {} events ({} bytes, Avro object container file)",
        out.display(),
        n.calendars,
        n.students,
        n.reports,
        n.events,
        bytes
    );
    Ok(ExitCode::SUCCESS)
}

pub fn topics(cmd: TopicsCommand) -> anyhow::Result<ExitCode> {
    use rollcall_kafka::topics::{check_partitions, create_topics, partition_counts, topic_specs};
    let TopicsCommand::Create { brokers, partitions, replication, prefix, output_prefix, group } = cmd;
    let mut topics = rollcall_kafka::wire::Topics::of_group(&prefix, &group);
    if let Some(o) = &output_prefix {
        topics = topics.with_outputs_behind(o);
    }
    let created = create_topics(&brokers, &topics, partitions, replication)?;
    let specs = topic_specs(&topics, partitions);
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    // What is there now, not what was asked: a topic that existed keeps its count.
    let counts = partition_counts(&brokers, &names)?;
    for spec in &specs {
        let state = if created.contains(&spec.name) { "created" } else { "exists" };
        let actual = counts.get(&spec.name).map_or_else(|| "?".to_string(), |n| n.to_string());
        println!("{state:<8} {:<36} {actual} partition(s){}", spec.name, if spec.compacted { ", compacted" } else { "" });
    }
    check_partitions(&topics, &counts, partitions)?;
    Ok(ExitCode::SUCCESS)
}

impl RunArgs {
    /// The flags' layer: each flag given overrides the file and the
    /// environment; a repeatable list flag adds to the list they give.
    fn apply(self, cfg: &mut ProcessorConfig) -> anyhow::Result<()> {
        let args = self;
        if let Some(b) = args.brokers {
            cfg.brokers = b;
        }
        if let Some(d) = args.state_dir {
            cfg.state_dir = d;
        }
        if let Some(g) = args.group {
            cfg.group = g;
        }
        if let Some(i) = args.instance_id {
            cfg.instance_id = i;
        }
        if let Some(c) = args.clock {
            cfg.clock = match c.as_str() {
                "wall" => ClockMode::Wall,
                "replay" => ClockMode::Replay,
                other => anyhow::bail!("--clock: `{other}` is neither `wall` nor `replay`"),
            };
        }
        if args.until.is_some() {
            cfg.until = args.until;
        }
        if args.exit_when_idle {
            cfg.exit_when_idle = true;
        }
        if let Some(p) = args.topic_prefix {
            cfg.topic_prefix = p;
        }
        if let Some(p) = args.output_prefix {
            cfg.output_topic_prefix = p;
        }
        cfg.policy_files.extend(args.policy_files);
        cfg.replace_presets.extend(args.replace_presets);
        if let Some(a) = args.metrics_addr {
            cfg.metrics_addr = a;
        }
        if let Some(f) = args.value_format {
            cfg.value_format = f.parse().map_err(|e| anyhow::anyhow!("--value-format: {e}"))?;
        }
        if let Some(u) = args.registry_url {
            cfg.registry_url = u;
        }
        Ok(())
    }
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = ProcessorConfig::load(args.config.as_deref())?;
    args.apply(&mut cfg)?;
    cfg.validate()?;
    cfg.kafka = cfg.kafka.resolve(std::env::var(rollcall_kafka::security::PASSWORD_VAR).ok())?;
    rollcall_kafka::security::install(cfg.kafka.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    ctrlc_flag(s);
    let metrics = Arc::new(Metrics::new());
    let _server = serve_metrics(&cfg.metrics_addr, metrics.clone(), &cfg.http)?;
    let mut p = match Processor::with_metrics(cfg, stop.clone(), metrics) {
        Ok(p) => p,
        Err(rollcall_kafka::KafkaError::Stopped) => return Ok(ExitCode::SUCCESS),
        Err(e) => return Err(e).context("starting the processor"),
    };
    let stats = p.run()?;
    eprintln!(
        "processed {} records in {} transactions: {} determinations, {} outreach, {} dead letters ({} state records restored)",
        stats.records, stats.transactions, stats.determinations, stats.outreach, stats.dead_letters, stats.restored_records
    );
    let _ = stop.load(Ordering::SeqCst);
    Ok(ExitCode::SUCCESS)
}

/// Starts the HTTP endpoint (`off`: none), over HTTPS when `tls` names a
/// certificate and key. Failing to bind, or a certificate or key that cannot
/// be used, is an error: a processor that cannot be watched should not run
/// unnoticed.
pub fn serve_metrics(
    addr: &str,
    observed: Arc<dyn Observed>,
    tls: &rollcall_http::HttpTlsConfig,
) -> anyhow::Result<Option<HttpServer>> {
    if addr == "off" {
        return Ok(None);
    }
    let acceptor = tls.load().context("HTTPS")?;
    let server = HttpServer::observe_with(addr, observed, acceptor).with_context(|| format!("serving metrics on {addr}"))?;
    tracing::info!(address = %server.local_addr(), scheme = tls.scheme(), "serving /metrics, /healthz and /readyz");
    Ok(Some(server))
}

/// Completes on SIGINT or SIGTERM (on SIGINT alone where SIGTERM cannot be
/// listened for): how every long-running command is asked to stop.
pub async fn terminated() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// How long a stop may take before the process exits anyway.
const STOP_LIMIT: std::time::Duration = std::time::Duration::from_millis(1800);

/// Stops the loop cleanly on SIGINT/SIGTERM (the open transaction is
/// aborted). A loop that cannot stop in time (a transaction step waiting
/// for a broker that is away) is not waited for: the process exits, which
/// is as safe as a crash, since the state on disk only ever holds committed
/// transactions and the broker aborts the open one.
pub fn ctrlc_flag(flag: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(terminated());
        flag.store(true, Ordering::SeqCst);
        std::thread::sleep(STOP_LIMIT);
        tracing::warn!(limit_ms = STOP_LIMIT.as_millis() as u64, "not stopped in time; exiting without the open transaction");
        std::process::exit(0);
    });
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};
    use rollcall_kafka::config::env_var;

    use super::*;

    #[derive(Parser)]
    struct Run {
        #[command(flatten)]
        args: RunArgs,
    }

    /// Per key with a flag of `rollcall run`: the file's value (TOML), the
    /// environment's (text), the flag's arguments, then what the key holds
    /// after the environment and after the flag (TOML). A repeatable list
    /// flag adds to the list the file and the environment give.
    type Row = (&'static str, &'static str, &'static str, &'static [&'static str], &'static str, &'static str);

    fn table() -> Vec<Row> {
        vec![
            ("brokers", "\"f:1\"", "e:2", &["--brokers", "g:3"], "\"e:2\"", "\"g:3\""),
            ("state_dir", "\"/f\"", "/e", &["--state-dir", "/g"], "\"/e\"", "\"/g\""),
            ("group", "\"fg\"", "eg", &["--group", "gg"], "\"eg\"", "\"gg\""),
            ("instance_id", "\"fi\"", "ei", &["--instance-id", "gi"], "\"ei\"", "\"gi\""),
            ("clock", "\"replay\"", "wall", &["--clock", "replay"], "\"wall\"", "\"replay\""),
            (
                "until",
                "\"2020-10-12T00:00:00Z\"",
                "2021-01-01T00:00:00Z",
                &["--until", "2022-02-02T00:00:00Z"],
                "\"2021-01-01T00:00:00Z\"",
                "\"2022-02-02T00:00:00Z\"",
            ),
            ("exit_when_idle", "true", "false", &["--exit-when-idle"], "false", "true"),
            ("topic_prefix", "\"f.\"", "e.", &["--topic-prefix", "g."], "\"e.\"", "\"g.\""),
            ("output_topic_prefix", "\"fo.\"", "eo.", &["--output-prefix", "go."], "\"eo.\"", "\"go.\""),
            (
                "policy_files",
                "[\"f.toml\"]",
                "e1.toml,e2.toml",
                &["--policy-file", "g.toml"],
                "[\"e1.toml\", \"e2.toml\"]",
                "[\"e1.toml\", \"e2.toml\", \"g.toml\"]",
            ),
            ("replace_presets", "[\"cms\"]", "mmsd", &["--replace-preset", "nmped"], "[\"mmsd\"]", "[\"mmsd\", \"nmped\"]"),
            ("metrics_addr", "\"127.0.0.1:1\"", "off", &["--metrics-addr", "127.0.0.1:2"], "\"off\"", "\"127.0.0.1:2\""),
            (
                "value_format",
                "\"confluent\"",
                "single-object",
                &["--value-format", "confluent"],
                "\"single-object\"",
                "\"confluent\"",
            ),
            (
                "registry_url",
                "\"http://f:1\"",
                "http://e:2",
                &["--registry-url", "http://g:3"],
                "\"http://e:2\"",
                "\"http://g:3\"",
            ),
        ]
    }

    /// The configuration of a file that sets only `key`.
    fn only(key: &str, value: &str) -> ProcessorConfig {
        toml::from_str(&format!("{key} = {value}\n")).unwrap_or_else(|e| panic!("{key} = {value}: {e}"))
    }

    #[test]
    fn a_flag_beats_the_environment_which_beats_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rollcall.toml");
        for (key, file_value, env_value, flags, after_env, after_flag) in table() {
            assert!(ProcessorConfig::keys().contains(&(None, key)), "{key} is not a key");
            std::fs::write(&file, format!("{key} = {file_value}\n")).unwrap();
            let from_file = ProcessorConfig::load(Some(&file)).unwrap();
            assert_eq!(from_file, only(key, file_value), "{key} from the file");
            assert_ne!(from_file, ProcessorConfig::default(), "{key}: the file's value must not be the default");
            let mut cfg = from_file.clone();
            let var = env_var(None, key);
            cfg.apply_env(|k| (k == var).then(|| env_value.to_string())).unwrap_or_else(|e| panic!("{var}: {e}"));
            assert_eq!(cfg, only(key, after_env), "{var} over the file");
            assert_ne!(cfg, from_file, "{var} must change what the file gave");
            let args = Run::try_parse_from(std::iter::once("run").chain(flags.iter().copied()))
                .unwrap_or_else(|e| panic!("{flags:?}: {e}"))
                .args;
            let before = cfg.clone();
            args.apply(&mut cfg).unwrap();
            assert_eq!(cfg, only(key, after_flag), "{flags:?} over {var} and the file");
            assert_ne!(cfg, before, "{flags:?} must change what the environment gave");
        }
    }

    #[test]
    fn every_flag_of_run_is_in_the_precedence_table() {
        let flags: std::collections::BTreeSet<String> = Run::command()
            .get_arguments()
            .filter_map(|a| a.get_long().map(str::to_string))
            .filter(|l| !matches!(l.as_str(), "config" | "help" | "version"))
            .collect();
        let covered: std::collections::BTreeSet<String> =
            table().iter().map(|r| r.3[0].trim_start_matches("--").to_string()).collect();
        assert_eq!(flags, covered, "a flag of `rollcall run` missing from the table, or a row without a flag");
    }

    #[test]
    fn a_bad_clock_flag_is_refused() {
        let args = Run::try_parse_from(["run", "--clock", "sundial"]).unwrap().args;
        let e = args.apply(&mut ProcessorConfig::default()).unwrap_err().to_string();
        assert!(e.contains("--clock") && e.contains("sundial"), "{e}");
    }
}
