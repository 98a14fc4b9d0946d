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
