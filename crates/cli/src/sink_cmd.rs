//! `rollcall sink postgres`, `rollcall sink edfi` and `rollcall export edfi`: the SIS side.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context;
use rollcall_sink::metrics::SinkMetrics;
use rollcall_sink::postgres::Sink;
use rollcall_sink::SinkConfig;

#[derive(clap::Subcommand)]
pub enum SinkCommand {
    /// Keep determinations and outreach in PostgreSQL, exactly once (README: For SIS integrators).
    Postgres(PostgresArgs),
    /// Send the determinations in the sink's database to an Ed-Fi ODS/API as they change
    /// (README: For SIS integrators, Ed-Fi).
    Edfi(EdfiSinkArgs),
}

#[derive(clap::Args)]
pub struct EdfiSinkArgs {
    /// The sink's database: postgres://user[:password]@host:port/database
    #[arg(long, env = "ROLLCALL_DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// The ODS/API's base URL, the part before /oauth/token and /data/v3 (e.g. https://api.example.org/v7.1/api).
    #[arg(long, env = "ROLLCALL_EDFI_BASE_URL")]
    base_url: String,
    /// The API client's key (OAuth2 client id).
    #[arg(long, env = "ROLLCALL_EDFI_CLIENT_ID")]
    client_id: String,
    /// A file holding the API client's secret (its first line); the secret is never printed.
    #[arg(long, env = "ROLLCALL_EDFI_CLIENT_SECRET_FILE")]
    client_secret_file: std::path::PathBuf,
    /// The mapping file (TOML; crates/sink/edfi-mapping.example.toml). Without it, Ed-Fi's default
    /// descriptors and whole-number school ids only.
    #[arg(long)]
    mapping: Option<std::path::PathBuf>,
    /// Also determinations still PROVISIONAL (by default only FINAL and CORRECTION).
    #[arg(long)]
    include_provisional: bool,
    /// One pass over the table, then exit (a cron job, a backfill); without it, a pass every --poll-seconds.
    #[arg(long)]
    once: bool,
    /// Seconds between passes.
    #[arg(long, default_value_t = 30)]
    poll_seconds: u64,
    /// Determinations read per page; the pass's position is stored after each page.
    #[arg(long, default_value_t = 500)]
    page: i64,
    /// The wait after a first 5xx, 429 or unanswered request, in milliseconds; doubled after each further failure.
    #[arg(long, default_value_t = 500)]
    retry_base_ms: u64,
    /// The longest wait between two attempts, in milliseconds (a 429's Retry-After is honoured up to 5 minutes).
    #[arg(long, default_value_t = 30_000)]
    retry_max_ms: u64,
    /// Attempts of one request (the first included) before the run stops with an error.
    #[arg(long, default_value_t = 8)]
    max_attempts: u32,
    /// One request's time limit, in seconds.
    #[arg(long, default_value_t = 30)]
    timeout_seconds: u64,
}

#[derive(clap::Args)]
pub struct PostgresArgs {
    /// Kafka bootstrap servers, host:port[,host:port...].
    #[arg(long, env = "ROLLCALL_BROKERS")]
    brokers: String,
    /// postgres://user[:password]@host:port/database
    #[arg(long, env = "ROLLCALL_DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Put before every topic name, as given to `topics create --topic-prefix`.
    #[arg(long, env = "ROLLCALL_TOPIC_PREFIX", default_value = "")]
    topic_prefix: String,
    /// Names the Kafka client; positions are kept in the database, not in the group.
    #[arg(long, env = "ROLLCALL_SINK_GROUP", default_value = "rollcall-sink")]
    group: String,
    /// While the writer is busy, a batch (one database transaction) closes after this many records…
    #[arg(long, default_value_t = SinkConfig::default().batch_max_records)]
    batch_max_records: usize,
    /// …or this many milliseconds after its first record. A writer that waits takes what has arrived at once.
    #[arg(long, default_value_t = SinkConfig::default().batch_max_ms)]
    batch_max_ms: u64,
    /// Exit once every partition is written to its end.
    #[arg(long)]
    exit_when_idle: bool,
    /// Database connections writing side by side, each the partitions `p` with `p % writers` its
    /// own, in transactions of their own (1 to 16).
    #[arg(long, default_value_t = SinkConfig::default().writers)]
    writers: usize,
    /// Serve /metrics, /healthz and /readyz here: IP:port (port 0 picks a free one), or `off`.
    #[arg(long, env = "ROLLCALL_SINK_METRICS_ADDR", default_value = "127.0.0.1:9466")]
    metrics_addr: String,
    /// The schema registry's Confluent API, to read outputs written with value_format = "confluent"
    /// (either format is read; without it, single-object only) [credentials: ROLLCALL_REGISTRY_CREDENTIALS].
    #[arg(long, env = "ROLLCALL_REGISTRY_URL")]
    registry_url: Option<String>,
    #[command(flatten)]
    tls: crate::serve_cmd::TlsArgs,
    /// At start, keep trying brokers that cannot be reached this long, in seconds (0: give up after
    /// the first check, a few seconds). Refused credentials or TLS end it at once.
    #[arg(long, env = "ROLLCALL_BROKER_WAIT_SECONDS", default_value_t = 0)]
    broker_wait_seconds: u64,
}

pub fn sink(cmd: SinkCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SinkCommand::Postgres(a) => postgres(a),
        SinkCommand::Edfi(a) => edfi_sink(a),
    }
}

fn edfi_sink(a: EdfiSinkArgs) -> anyhow::Result<ExitCode> {
    use rollcall_sink::edfi::Mapping;
    use rollcall_sink::edfi_api::{EdfiSync, EdfiSyncConfig, RetryPolicy, Secret};
    let secret = Secret::read(&a.client_secret_file)?;
    let mut cfg = EdfiSyncConfig::new(a.database_url, a.base_url, a.client_id, secret);
    cfg.mapping = match &a.mapping {
        Some(f) => Mapping::load(f)?,
        None => Mapping::default(),
    };
    cfg.include_provisional = a.include_provisional;
    cfg.once = a.once;
    cfg.poll = std::time::Duration::from_secs(a.poll_seconds);
    cfg.page = a.page;
    cfg.retry = RetryPolicy {
        base: std::time::Duration::from_millis(a.retry_base_ms),
        max: std::time::Duration::from_millis(a.retry_max_ms),
        attempts: a.max_attempts,
    };
    cfg.timeout = std::time::Duration::from_secs(a.timeout_seconds);
    let stop = Arc::new(AtomicBool::new(false));
    crate::kafka_cmd::ctrlc_flag(stop.clone());
    let st = EdfiSync::new(cfg, stop).context("starting the Ed-Fi sink")?.run()?;
    let skipped: Vec<String> = st.skipped.iter().map(|(r, n)| format!("{r}={n}")).collect();
    eprintln!(
        "edfi: {} passes, {} determinations read: {} created, {} updated, {} deleted, {} unchanged, {} confirmed after a restart, {} refused (edfi_refusals), {} retries, {} tokens; skipped: {}",
        st.passes,
        st.rows,
        st.created,
        st.updated,
        st.deleted,
        st.unchanged,
        st.confirmed,
        st.refused,
        st.retries,
        st.token_fetches,
        if skipped.is_empty() { "none".to_string() } else { skipped.join(", ") }
    );
    Ok(ExitCode::SUCCESS)
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
        writers: a.writers,
    };
    let stop = Arc::new(AtomicBool::new(false));
    crate::kafka_cmd::ctrlc_flag(stop.clone());
    let metrics = Arc::new(SinkMetrics::new());
    let _server = crate::kafka_cmd::serve_metrics(&a.metrics_addr, metrics.clone(), &a.tls.config())?;
    match rollcall_kafka::reach::check_brokers(&cfg.brokers, std::time::Duration::from_secs(a.broker_wait_seconds), &stop) {
        Ok(()) => {}
        Err(rollcall_kafka::KafkaError::Stopped) => return Ok(ExitCode::SUCCESS),
        Err(e) => return Err(e).context("starting the sink"),
    }
    let codec = crate::tail_cmd::reading_codec(a.registry_url.as_deref())?;
    let mut sink = Sink::new(cfg, stop, metrics).context("starting the sink")?.with_codec(codec);
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
    /// The sink's database: postgres://user[:password]@host:port/database
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
