//! rollcall-gateway: the HTTP door for platforms. A route per configured
//! source takes the platform's own payload (Caliper, xAPI, Canvas Live
//! Events, Zoom webhooks, rollcall's ActivityEvent JSON or the contacts
//! CSV), authenticates it (a bearer token per source, or Zoom's signature),
//! normalizes it with `rollcall-ingest`'s pure functions, produces the
//! events to the activity topic, and answers 2xx only once Kafka has
//! acknowledged every one of them (idempotent producer, acks=all). A
//! request is validated whole before anything is produced; a broker that
//! does not acknowledge in time gives 503, never a 2xx.
//!
//! An event naming a person or class the identity mapping does not know yet
//! is not refused: it is made durable on the waiting topic with the
//! platform's own ids, and released to the activity topic when the mapping
//! arrives on `sis.identities.v1`, or dead-lettered `UNKNOWN_IDENTITY` after
//! the configured wait.
//!
//! One file per concern: `config` (the sources and limits, validated at
//! start), `auth` (tokens and signatures), `produce` (the Kafka side),
//! `identities` (the view, kept from the topic), `resolver` (the waiting
//! events), `metrics`, `routes` (the handlers).

pub mod auth;
pub mod config;
pub mod identities;
pub mod metrics;
pub mod produce;
pub mod resolver;
pub mod routes;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub use config::{GatewayConfig, SourceConfig};

/// Why the gateway could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}")]
    Kafka {
        what: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error(transparent)]
    Brokers(#[from] rollcall_kafka::KafkaError),
    #[error("HTTPS: {0}")]
    Tls(#[from] rollcall_http::TlsError),
}

/// Runs the gateway until `stop` resolves. Binds before it returns the
/// address to `bound` (port 0 picks a free port).
pub fn serve(
    cfg: GatewayConfig,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
    bound: impl FnOnce(std::net::SocketAddr),
) -> Result<(), GatewayError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| GatewayError::Io { what: "starting the gateway's runtime".into(), source })?;
    // Certificates are checked before anything connects or binds.
    let tls = cfg.http.load()?;
    let state = routes::AppState::new(&cfg)?;
    let app = routes::router(&cfg, state.clone());
    let topics = rollcall_kafka::wire::Topics::with_prefix(&cfg.topic_prefix);
    let halt = Arc::new(AtomicBool::new(false));
    let follower = {
        let (brokers, topic, ids, metrics, halt) =
            (cfg.brokers.clone(), topics.identities.clone(), state.identities.clone(), state.metrics.clone(), halt.clone());
        spawn("identities", move || identities::follow(brokers, topic, ids, metrics, halt))?
    };
    let resolver = {
        let rc = resolver::ResolverConfig {
            brokers: cfg.brokers.clone(),
            group: format!("{}{}", cfg.topic_prefix, cfg.resolver_group),
            waiting: topics.waiting.clone(),
            activity: topics.activity.clone(),
            dlq: topics.dlq.clone(),
            wait: chrono::Duration::seconds(cfg.identity_wait_seconds as i64),
        };
        let (ids, metrics, halt) = (state.identities.clone(), state.metrics.clone(), halt.clone());
        spawn("resolver", move || resolver::run(rc, ids, metrics, halt))?
    };
    let listener = std::net::TcpListener::bind(&cfg.listen)
        .map_err(|source| GatewayError::Io { what: format!("listening on {}", cfg.listen), source })?;
    listener.set_nonblocking(true).map_err(|source| GatewayError::Io { what: "listener".into(), source })?;
    let addr = listener.local_addr().map_err(|source| GatewayError::Io { what: "listener".into(), source })?;
    bound(addr);
    let served = rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|source| GatewayError::Io { what: format!("listening on {addr}"), source })?;
        tracing::info!(address = %addr, https = tls.is_some(), "gateway listening");
        rollcall_http::tls::serve(listener, app, tls, stop)
            .await
            .map_err(|source| GatewayError::Io { what: format!("serving on {addr}"), source })
    });
    // The resolver commits what it settled before it returns.
    halt.store(true, Ordering::SeqCst);
    for t in [follower, resolver] {
        let _ = t.join();
    }
    served
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<std::thread::JoinHandle<()>, GatewayError> {
    std::thread::Builder::new()
        .name(format!("gateway-{name}"))
        .spawn(f)
        .map_err(|source| GatewayError::Io { what: format!("starting the {name} thread"), source })
}
