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
    /// HTTPS for the listener: the PEM certificate chain [config [http] tls_cert_file, env
    /// ROLLCALL_HTTP__TLS_CERT_FILE]; needs the key too.
    #[arg(long)]
    tls_cert_file: Option<String>,
    /// The PEM private key of the certificate [config [http] tls_key_file, env ROLLCALL_HTTP__TLS_KEY_FILE].
    #[arg(long)]
    tls_key_file: Option<String>,
    /// At start, keep trying brokers that cannot be reached this long, in seconds (0: give up after
    /// the first check, a few seconds). Refused credentials or TLS end it at once.
    #[arg(long, env = "ROLLCALL_BROKER_WAIT_SECONDS", default_value_t = 0)]
    broker_wait_seconds: u64,
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
    cfg.http.apply_env(|k| std::env::var(k).ok());
    if let Some(c) = a.tls_cert_file {
        cfg.http.tls_cert_file = c;
    }
    if let Some(k) = a.tls_key_file {
        cfg.http.tls_key_file = k;
    }
    // Certificates are checked before the brokers are.
    cfg.http.load().context("HTTPS")?;
    cfg.kafka.apply_env(|k| std::env::var(k).ok())?;
    cfg.kafka = cfg.kafka.resolve(std::env::var(rollcall_kafka::security::PASSWORD_VAR).ok())?;
    rollcall_kafka::security::install(cfg.kafka.clone());
    let never = std::sync::atomic::AtomicBool::new(false);
    rollcall_kafka::reach::check_brokers(&cfg.brokers, std::time::Duration::from_secs(a.broker_wait_seconds), &never)
        .context("starting the gateway")?;
    tracing::info!(scheme = cfg.http.scheme(), "gateway starting");
    rollcall_gateway::serve(cfg, crate::kafka_cmd::terminated(), |addr| println!("listening on {addr}"))
        .context("running the gateway")?;
    Ok(ExitCode::SUCCESS)
}
