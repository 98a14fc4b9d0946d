//! `rollcall sink postgres` and `rollcall export edfi`: the SIS side.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context;
use rollcall_sink::metrics::{MetricsServer, SinkMetrics};
use rollcall_sink::postgres::Sink;
use rollcall_sink::SinkConfig;

#[derive(clap::Subcommand)]
pub enum SinkCommand {
    /// Keep determinations and outreach in PostgreSQL, exactly once (README: For SIS integrators).
    Postgres(PostgresArgs),
}

#[derive(clap::Args)]
pub struct PostgresArgs {
    #[arg(long, env = "ROLLCALL_BROKERS")]
    brokers: String,
    /// postgres://user[:password]@host:port/database
    #[arg(long, env = "ROLLCALL_DATABASE_URL", hide_env_values = true)]
    database_url: String,
    #[arg(long, env = "ROLLCALL_TOPIC_PREFIX", default_value = "")]
    topic_prefix: String,
    /// Names the Kafka client; positions are kept in the database, not in the group.
    #[arg(long, env = "ROLLCALL_SINK_GROUP", default_value = "rollcall-sink")]
    group: String,
    /// A batch (one database transaction) closes after this many records…
    #[arg(long, default_value_t = 5_000)]
    batch_max_records: usize,
    /// …or this many milliseconds after its first record.
    #[arg(long, default_value_t = 200)]
    batch_max_ms: u64,
    /// Exit once every partition is written to its end.
    #[arg(long)]
    exit_when_idle: bool,
    /// Serve /metrics, /healthz and /readyz here: IP:port (port 0 picks a free one), or `off`.
    #[arg(long, env = "ROLLCALL_SINK_METRICS_ADDR", default_value = "127.0.0.1:9466")]
    metrics_addr: String,
}

pub fn sink(cmd: SinkCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SinkCommand::Postgres(a) => postgres(a),
    }
}

fn postgres(a: PostgresArgs) -> anyhow::Result<ExitCode> {
    let cfg = SinkConfig {
        brokers: a.brokers,
        database_url: a.database_url,
        topic_prefix: a.topic_prefix,
        group: a.group,
        batch_max_records: a.batch_max_records,
        batch_max_ms: a.batch_max_ms,
        exit_when_idle: a.exit_when_idle,
    };
    let stop = Arc::new(AtomicBool::new(false));
    crate::kafka_cmd::ctrlc_flag(stop.clone());
    let metrics = Arc::new(SinkMetrics::new());
    let _server = if a.metrics_addr == "off" {
        None
    } else {
        let s = MetricsServer::start(&a.metrics_addr, metrics.clone())
            .with_context(|| format!("serving metrics on {}", a.metrics_addr))?;
        tracing::info!(address = %s.local_addr(), "serving /metrics, /healthz and /readyz");
        Some(s)
    };
    let mut sink = Sink::new(cfg, stop, metrics).context("starting the sink")?;
    let st = sink.run()?;
    eprintln!(
        "sink: {} records in {} batches: {} determinations rows written, {} versions, {} outreach triggers, {} bad records ({} sessions)",
        st.records, st.batches, st.determinations, st.determination_versions, st.outreach_triggers, st.bad_records, st.sessions
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Subcommand)]
pub enum ExportCommand {
    /// Ed-Fi StudentSchoolAttendanceEvent and StudentSectionAttendanceEvent documents from the
    /// sink's `determinations` table, as JSON lines `{"resource", "determination_id", "document"}`.
    Edfi(EdfiArgs),
}

#[derive(clap::Args)]
pub struct EdfiArgs {
    #[arg(long, env = "ROLLCALL_DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Only this school (rollcall's school_id).
    #[arg(long)]
    school: Option<String>,
    /// First date (YYYY-MM-DD, inclusive).
    #[arg(long)]
    from: Option<chrono::NaiveDate>,
    /// Last date (inclusive).
    #[arg(long)]
    to: Option<chrono::NaiveDate>,
    /// The mapping file (TOML; crates/sink/edfi-mapping.example.toml). Without it, Ed-Fi's default
    /// descriptors and whole-number school ids only.
    #[arg(long)]
    mapping: Option<std::path::PathBuf>,
    /// Also determinations still PROVISIONAL (by default only FINAL and CORRECTION).
    #[arg(long)]
    include_provisional: bool,
    /// Write here instead of standard output.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

pub fn export(cmd: ExportCommand) -> anyhow::Result<ExitCode> {
    let ExportCommand::Edfi(a) = cmd;
    use rollcall_sink::edfi::{export, Filter, Mapping};
    let mapping = match &a.mapping {
        Some(f) => Mapping::load(f)?,
        None => Mapping::default(),
    };
    if let (Some(f), Some(t)) = (a.from, a.to) {
        anyhow::ensure!(f <= t, "--from {f} is after --to {t}");
    }
    let filter = Filter { school: a.school, from: a.from, to: a.to, include_provisional: a.include_provisional };
    let mut out: Box<dyn std::io::Write> = match &a.out {
        Some(p) => {
            Box::new(std::io::BufWriter::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?))
        }
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let url = rollcall_sink::redact_url(&a.database_url);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let stats = rt.block_on(async {
        let (mut client, conn) = tokio_postgres::connect(&a.database_url, tokio_postgres::NoTls)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        let task = tokio::spawn(async move {
            let _ = conn.await;
        });
        let stats = export(&mut client, &mapping, &filter, &mut out).await;
        drop(client);
        let _ = task.await;
        anyhow::Ok(stats?)
    })?;
    let resources: Vec<String> = stats.by_resource.iter().map(|(r, n)| format!("{n} {r}")).collect();
    let skipped: Vec<String> = stats.skipped.iter().map(|(r, n)| format!("{r}={n}")).collect();
    eprintln!(
        "edfi: {} determinations: {}; skipped: {}",
        stats.rows,
        if resources.is_empty() { "no documents".to_string() } else { resources.join(", ") },
        if skipped.is_empty() { "none".to_string() } else { skipped.join(", ") }
    );
    Ok(ExitCode::SUCCESS)
}
