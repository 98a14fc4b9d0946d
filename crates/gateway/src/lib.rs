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
//! One file per concern: `config` (the sources and limits, validated at
//! start), `auth` (tokens and signatures), `produce` (the Kafka side),
//! `metrics`, `routes` (the handlers).

pub mod auth;
pub mod config;
pub mod metrics;
pub mod produce;
pub mod routes;

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
    let state = routes::AppState::new(&cfg)?;
    let app = routes::router(&cfg, state);
    let listener = std::net::TcpListener::bind(&cfg.listen)
        .map_err(|source| GatewayError::Io { what: format!("listening on {}", cfg.listen), source })?;
    listener.set_nonblocking(true).map_err(|source| GatewayError::Io { what: "listener".into(), source })?;
    let addr = listener.local_addr().map_err(|source| GatewayError::Io { what: "listener".into(), source })?;
    bound(addr);
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|source| GatewayError::Io { what: format!("listening on {addr}"), source })?;
        tracing::info!(address = %addr, "gateway listening");
        axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
            .map_err(|source| GatewayError::Io { what: format!("serving on {addr}"), source })
    })
}
