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

#[derive(clap::Args)]
pub struct BenchSinkArgs {
    /// Kafka bootstrap servers, host:port[,host:port...] (the bench makes topics of its own).
    #[arg(long, env = "ROLLCALL_BROKERS")]
    brokers: String,
    /// A server where the user may CREATE DATABASE: the bench writes into a
    /// database of its own and drops it afterwards.
    #[arg(long, env = "ROLLCALL_DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Determination records to produce (three versions per key).
    #[arg(long, default_value_t = 300_000)]
    records: usize,
    /// Partitions of the determinations topic.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// A sink batch (one database transaction) closes after this many records.
    #[arg(long, default_value_t = 5_000)]
    batch_max_records: usize,
}

/// `rollcall bench sink`: the sink's write rate, from topics that are
/// already full (the processor is not part of it).
pub fn bench(a: BenchSinkArgs) -> anyhow::Result<ExitCode> {
    use rollcall_model::avro::AvroRecord;
    use rollcall_model::{Determination, Finality, Scope, Status};
    let stamp = chrono::Utc::now().timestamp_millis();
    let prefix = format!("bench-sink-{stamp}.");
    let topics = rollcall_kafka::wire::Topics::with_prefix(&prefix);
    rollcall_kafka::topics::create_topics(&a.brokers, &topics, a.partitions, 1)?;
    let p = rollcall_kafka::replay::producer(&a.brokers)?;
    let start = chrono::NaiveDate::from_ymd_opt(2020, 9, 1).context("start date")?;
    let decided = chrono::DateTime::from_timestamp(1_600_000_000, 0).context("timestamp")?;
    for i in 0..a.records {
        let (key, version) = (i / 3, (i % 3) as i32 + 1);
        let (student, day) = (key % 20_000, key / 20_000);
        let d = Determination {
            determination_id: String::new(),
            student_id: format!("bench-{student:06}"),
            school_id: "bench-school".into(),
            scope: Scope::Day,
            date: start + chrono::Duration::days(day as i64),
            section_id: None,
            policy: "mmsd".into(),
            status: if version == 3 { Status::AbsentUnexcused } else { Status::Present },
            code: if version == 3 { "AU".into() } else { "P".into() },
            attendance_type: Some(rollcall_model::AttendanceType::Virtual),
            minutes: Some(120),
            contacts: None,
            category: None,
            rule: "(a) live session on the day".into(),
            evidence: vec![format!("ev-{i}-a"), format!("ev-{i}-b")],
            version,
            finality: if version == 1 { Finality::Provisional } else { Finality::Final },
            decided_at: decided,
        };
        let d = Determination { determination_id: format!("{}#{version}", d.key()), ..d };
        rollcall_kafka::replay::send(&p, &topics.determinations, &d.key(), &d.to_single_object()?, decided)?;
    }
    rdkafka::producer::Producer::flush(&p, std::time::Duration::from_secs(120))?;
    // A database of its own, dropped at the end.
    let db = format!("rollcall_bench_{stamp}");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let admin = |sql: String| -> anyhow::Result<()> {
        rt.block_on(async {
            let (c, conn) = tokio_postgres::connect(&a.database_url, tokio_postgres::NoTls).await?;
            let task = tokio::spawn(async move {
                let _ = conn.await;
            });
            c.batch_execute(&sql).await?;
            drop(c);
            let _ = task.await;
            anyhow::Ok(())
        })
    };
    admin(format!("CREATE DATABASE {db}"))?;
    let url = {
        let mut cfg: tokio_postgres::Config = a.database_url.parse()?;
        cfg.dbname(&db);
        config_url(&cfg)
    };
    let cfg = SinkConfig {
        brokers: a.brokers.clone(),
        database_url: url,
        topic_prefix: prefix,
        group: format!("bench-sink-{stamp}"),
        batch_max_records: a.batch_max_records,
        exit_when_idle: true,
        ..SinkConfig::default()
    };
    let started = std::time::Instant::now();
    let result = Sink::new(cfg, Arc::new(AtomicBool::new(false)), Arc::new(SinkMetrics::new())).and_then(|mut s| s.run());
    let seconds = started.elapsed().as_secs_f64();
    let dropped = admin(format!("DROP DATABASE {db}"));
    let st = result?;
    dropped?;
    anyhow::ensure!(st.records as usize == a.records, "the sink read {} records of {}", st.records, a.records);
    println!("sink: {:.0} records/s ({} records, {} batches)", st.records as f64 / seconds, st.records, st.batches);
    Ok(ExitCode::SUCCESS)
}

/// A key=value connection string of a parsed configuration (its password included).
fn config_url(cfg: &tokio_postgres::Config) -> String {
    let q = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
    let mut parts = Vec::new();
    for h in cfg.get_hosts() {
        if let tokio_postgres::config::Host::Tcp(h) = h {
            parts.push(format!("host={}", q(h)));
        }
    }
    if let Some(p) = cfg.get_ports().first() {
        parts.push(format!("port={p}"));
    }
    if let Some(u) = cfg.get_user() {
        parts.push(format!("user={}", q(u)));
    }
    if let Some(pw) = cfg.get_password() {
        parts.push(format!("password={}", q(&String::from_utf8_lossy(pw))));
    }
    if let Some(d) = cfg.get_dbname() {
        parts.push(format!("dbname={}", q(d)));
    }
    parts.join(" ")
}
