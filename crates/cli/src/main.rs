//! `rollcall`: the command-line program. Runs scenarios, the demo district,
//! and shows policies. Errors from the libraries surface here with their
//! file, place and problem.

mod demo;
mod dlq_cmd;
mod explain_cmd;
mod forget_cmd;
mod gateway_cmd;
mod identities_cmd;
mod kafka_cmd;
mod normalize_cmd;
mod report_cmd;
mod roster_cmd;
mod scenario_cmd;
mod serve_cmd;
mod sink_cmd;
mod tail_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

// The engine allocates and frees many small records per event (facts,
// outcomes, keys); glibc's allocator spent about a fifth of the engine's
// time on them (BENCHMARKS.md, engine step 9).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "rollcall", version, about = "Attendance from learning activity, under each district's written policy")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines on stderr as text for a person, or one JSON object per line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    /// Show student ids in log lines as they are. Without it they appear as
    /// a keyed hash, `st:1a2b3c4d` (key: ROLLCALL_LOG_HASH_KEY, else random per process).
    #[arg(long, global = true)]
    log_student_ids: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run and check scenario files (docs/scenarios.md).
    Scenario {
        #[command(subcommand)]
        command: ScenarioCommand,
    },
    /// Run a simulated district through the engine and summarise it per school.
    Demo(demo::DemoArgs),
    /// Turn a platform's own payload (Caliper, xAPI, Canvas, Zoom, native) into ActivityEvents, one JSON line each.
    Normalize(normalize_cmd::NormalizeArgs),
    /// Show or check attendance policies.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Manage the Kafka topics.
    Topics {
        #[command(subcommand)]
        command: kafka_cmd::TopicsCommand,
    },
    /// Run the processor: consume the input topics, emit determinations and outreach, exactly once.
    Run(kafka_cmd::RunArgs),
    /// Generate a deterministic district and produce it to Kafka, or write it as a scenario file.
    Simulate(kafka_cmd::SimulateArgs),
    /// Print a topic's records as JSON lines (read_committed), as an SIS consumer sees them.
    Tail(tail_cmd::TailArgs),
    /// Take the platforms' own events over HTTP (Caliper, xAPI, Canvas, Zoom, native) onto Kafka.
    Gateway(gateway_cmd::GatewayArgs),
    /// Load the mapping from platforms' ids to SIS ids onto the identities topic.
    Identities {
        #[command(subcommand)]
        command: identities_cmd::IdentitiesCommand,
    },
    /// Load a district's roster (a OneRoster CSV export) onto the roster and identities topics.
    Roster {
        #[command(subcommand)]
        command: roster_cmd::RosterCommand,
    },
    /// Load school calendars (CSV) onto the calendar topic.
    Calendar {
        #[command(subcommand)]
        command: roster_cmd::CalendarCommand,
    },
    /// Erase a student (a privacy request): their state in every processor,
    /// their determinations and identity mappings on the compacted topics.
    Forget(forget_cmd::ForgetArgs),
    /// Put dead letters back on their topics once their cause is mended.
    Dlq {
        #[command(subcommand)]
        command: dlq_cmd::DlqCommand,
    },
    /// The processor's settings.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Keep what the processor decided in a store an SIS reads (PostgreSQL).
    Sink {
        #[command(subcommand)]
        command: sink_cmd::SinkCommand,
    },
    /// Why a student was marked as they were on a date: the rule, the evidence, the versions.
    Explain(explain_cmd::ExplainArgs),
    /// Serve explain, a student's attendance, a school's day and the reports over HTTP (JSON and pages).
    Serve(serve_cmd::ServeArgs),
    /// Export what the sink keeps in a standard's shape (Ed-Fi).
    Export {
        #[command(subcommand)]
        command: sink_cmd::ExportCommand,
    },
    /// The reports the policies ask for, from the sink's tables, as CSV or HTML (docs/reports.md).
    Report(report_cmd::ReportArgs),
    /// Measure the engine and its state (BENCHMARKS.md).
    Bench {
        #[command(subcommand)]
        command: rollcall_bench::BenchCommand,
    },
}

#[derive(Subcommand)]
enum ScenarioCommand {
    /// Check every expectation; prints one line per file and `N passed, N failed`.
    Check {
        /// Keep state in memory instead of a temporary RocksDB database.
        #[arg(long)]
        memory: bool,
        /// Run each scenario through these Kafka brokers and a real processor instead.
        #[arg(long, conflicts_with = "memory")]
        brokers: Option<String>,
        /// With --brokers: the value format of the run, inputs and outputs
        /// (`single-object` or `confluent`, which needs --registry-url).
        #[arg(long, requires = "brokers", default_value = "single-object")]
        value_format: String,
        /// The schema registry's Confluent API, for --value-format confluent.
        #[arg(long, requires = "brokers", env = "ROLLCALL_REGISTRY_URL")]
        registry_url: Option<String>,
        /// Scenario files, or directories of them.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print every final determination and trigger as one JSON object per line.
    Run {
        /// Keep state in memory instead of a temporary RocksDB database.
        #[arg(long)]
        memory: bool,
        /// The scenario file.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print an example settings file for `rollcall run --config`: every key at its default.
    Example,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Print a preset's policy file (a starting point for a district's own).
    Show {
        /// A preset id (`rollcall policy list`).
        id: String,
    },
    /// Validate a policy file.
    Check {
        /// The policy file (TOML).
        file: PathBuf,
    },
    /// List the presets.
    List,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The long-running processor reports its progress in its log; the other
    // commands print for a person and log only what went wrong.
    let default = match cli.command {
        Command::Run(_) => "warn,rollcall_kafka=info",
        Command::Sink { .. } => "warn,rollcall_sink=info",
        Command::Serve(_) => "warn,rollcall_serve=info",
        _ => "error",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROLLCALL_LOG").unwrap_or_else(|_| default.into());
    rollcall_kafka::redact::configure(cli.log_student_ids, std::env::var("ROLLCALL_LOG_HASH_KEY").ok().as_deref());
    use std::io::IsTerminal;
    match cli.log_format {
        LogFormat::Human => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .init(),
        // Each line carries the current span (partition, offsets, counts) and its parents.
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(std::io::stderr)
            .init(),
    }
    // `run` and `gateway` read the [kafka] section of their config files
    // too; every other command that talks to Kafka, the environment alone;
    // `demo` on its own mock cluster, none of it (plaintext).
    let own_cluster = matches!(&cli.command, Command::Demo(a) if a.own_cluster());
    if own_cluster {
        if let Some(note) = demo::ignored_security_note(std::env::vars_os().filter_map(|(k, _)| k.into_string().ok())) {
            eprintln!("{note}");
        }
    }
    if !own_cluster && !matches!(cli.command, Command::Run(_) | Command::Gateway(_)) {
        let security = rollcall_kafka::KafkaSecurity::from_env()
            .and_then(|s| s.resolve(std::env::var(rollcall_kafka::security::PASSWORD_VAR).ok()));
        match security {
            Ok(s) => {
                rollcall_kafka::security::install(s);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let result = match cli.command {
        Command::Scenario { command: ScenarioCommand::Check { memory, brokers, value_format, registry_url, files } } => {
            scenario_cmd::format_of(&value_format, registry_url.as_deref())
                .and_then(|format| scenario_cmd::check(&files, memory, brokers.as_deref(), &format))
        }
        Command::Scenario { command: ScenarioCommand::Run { memory, file } } => scenario_cmd::run(&file, memory),
        Command::Demo(args) => demo::run(&args),
        Command::Normalize(args) => normalize_cmd::run(&args),
        Command::Policy { command } => policy(command),
        Command::Topics { command } => kafka_cmd::topics(command),
        Command::Run(args) => kafka_cmd::run(args),
        Command::Simulate(args) => kafka_cmd::simulate(args),
        Command::Tail(args) => tail_cmd::run(args),
        Command::Dlq { command } => dlq_cmd::run(command),
        Command::Forget(args) => forget_cmd::run(args),
        Command::Identities { command } => identities_cmd::run(command),
        Command::Roster { command } => roster_cmd::roster(command),
        Command::Calendar { command } => roster_cmd::calendar(command),
        Command::Gateway(args) => gateway_cmd::run(args),
        Command::Config { command: ConfigCommand::Example } => {
            print!("{}", rollcall_kafka::ProcessorConfig::example_toml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Sink { command } => sink_cmd::sink(command),
        Command::Export { command } => sink_cmd::export(command),
        Command::Explain(args) => explain_cmd::run(args),
        Command::Serve(args) => serve_cmd::run(args),
        Command::Bench { command } => rollcall_bench::run(command),
        Command::Report(args) => report_cmd::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn policy(cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    use rollcall_policy::{Policy, PRESET_IDS};
    match cmd {
        PolicyCommand::List => {
            for id in PRESET_IDS {
                let p = Policy::preset(id).ok_or_else(|| anyhow::anyhow!("preset {id} missing"))?;
                println!("{id:<22} {}", p.title);
            }
        }
        PolicyCommand::Show { id } => match Policy::preset_text(&id) {
            Some(t) => {
                // The output is the usual start of a district's own file: a copy
                // that keeps the preset's id would stand in for the preset.
                println!("# The `{id}` preset. To make a district policy of it, give it an id of its own");
                println!("# (id = \"{id}-district\", say): a file that keeps the id `{id}` is refused by");
                println!("# `rollcall run` unless --replace-preset {id} is given, so that it cannot replace");
                println!("# the preset for every school that names it by accident.");
                print!("{t}")
            }
            None => anyhow::bail!("no preset `{id}` (presets: {})", PRESET_IDS.join(", ")),
        },
        PolicyCommand::Check { file } => {
            let p = Policy::load(&file)?;
            println!("{}: ok (policy `{}`, {} grade band(s))", file.display(), p.id, p.bands.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every flag and argument of every command says what it is for in `--help`.
    #[test]
    fn every_argument_is_described() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if id != "help" && id != "version" && a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let cmd = Cli::command();
        cmd.clone().debug_assert();
        let mut missing = Vec::new();
        walk(&cmd, "rollcall", &mut missing);
        assert!(missing.is_empty(), "arguments without a description:\n  {}", missing.join("\n  "));
    }
}
