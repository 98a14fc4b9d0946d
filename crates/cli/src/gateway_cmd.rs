//! `rollcall gateway`: the platforms' own events over HTTP, onto Kafka.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use rollcall_gateway::GatewayConfig;

#[derive(clap::Args)]
pub struct GatewayArgs {
    /// The gateway's settings (TOML): the sources with their routes, formats
    /// and credentials, the limits (README: For platform integrators).
    #[arg(long)]
    config: PathBuf,
    /// IP:port to listen on (port 0 picks a free one) [config listen].
    #[arg(long)]
    listen: Option<String>,
    /// Kafka bootstrap servers, host:port[,host:port...] [config brokers].
    #[arg(long, env = "ROLLCALL_BROKERS")]
    brokers: Option<String>,
    /// Put before the activity topic's name, as given to `topics create --topic-prefix`.
    #[arg(long)]
    topic_prefix: Option<String>,
    /// An identity mapping read at start, beneath the identities topic; CSV:
    /// source,type,external_id,id,school_id [config identities_file].
    #[arg(long)]
    identities: Option<PathBuf>,
    /// How long an event naming someone the mapping does not know waits for
    /// the mapping before it is dead-lettered UNKNOWN_IDENTITY [config identity_wait_seconds; 3 days].
    #[arg(long)]
    identity_wait_seconds: Option<u64>,
}

pub fn run(a: GatewayArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = GatewayConfig::load(&a.config)?;
    if let Some(l) = a.listen {
        cfg.listen = l;
    }
    if let Some(b) = a.brokers {
        cfg.brokers = b;
    }
    if let Some(p) = a.topic_prefix {
        cfg.topic_prefix = p;
    }
    if let Some(i) = a.identities {
        cfg.identities_file = Some(i);
    }
    if let Some(w) = a.identity_wait_seconds {
        cfg.identity_wait_seconds = w;
    }
    cfg.kafka.apply_env(|k| std::env::var(k).ok())?;
    cfg.kafka = cfg.kafka.resolve(std::env::var(rollcall_kafka::security::PASSWORD_VAR).ok())?;
    rollcall_kafka::security::install(cfg.kafka.clone());
    rollcall_gateway::serve(cfg, crate::kafka_cmd::terminated(), |addr| println!("listening on {addr}"))
        .context("running the gateway")?;
    Ok(ExitCode::SUCCESS)
}
