//! `rollcall serve`: explain, a student's attendance, a school's day and
//! the reports over HTTP, behind bearer tokens.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use rollcall_serve::{AppState, Tokens};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// The sink's database: postgres://user[:password]@host:port/database
    #[arg(long, env = "ROLLCALL_DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// IP:port to listen on (port 0 picks a free one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: String,
    /// The accepted bearer tokens, one a line (also ROLLCALL_SERVE_TOKENS, comma-separated).
    #[arg(long)]
    tokens_file: Option<PathBuf>,
    #[command(flatten)]
    tls: TlsArgs,
}

/// HTTPS for a command's endpoint: a certificate chain and its key (PEM).
#[derive(clap::Args, Default)]
pub struct TlsArgs {
    /// Serve HTTPS with this PEM certificate chain (the server's certificate first, then the
    /// intermediates); needs --tls-key-file. Without both: plain HTTP.
    #[arg(long, env = rollcall_http::tls::CERT_VAR)]
    tls_cert_file: Option<String>,
    /// The PEM private key of --tls-cert-file (unencrypted).
    #[arg(long, env = rollcall_http::tls::KEY_VAR)]
    tls_key_file: Option<String>,
}

impl TlsArgs {
    /// The settings given (both empty: plain HTTP).
    pub fn config(&self) -> rollcall_http::HttpTlsConfig {
        self.overlay(rollcall_http::HttpTlsConfig::default())
    }

    /// `base` with each flag given in place of its setting.
    pub fn overlay(&self, mut base: rollcall_http::HttpTlsConfig) -> rollcall_http::HttpTlsConfig {
        if let Some(c) = &self.tls_cert_file {
            base.tls_cert_file = c.clone();
        }
        if let Some(k) = &self.tls_key_file {
            base.tls_key_file = k.clone();
        }
        base
    }
}

pub fn run(a: ServeArgs) -> anyhow::Result<ExitCode> {
    let tls_config = a.tls.config();
    // A certificate or key that cannot be used is said before anything else.
    let tls = tls_config.load().context("HTTPS")?;
    let tokens = Tokens::load(a.tokens_file.as_deref(), std::env::var("ROLLCALL_SERVE_TOKENS").ok().as_deref())?;
    // A wrong URL is said at start, not on the first request.
    a.database_url
        .parse::<tokio_postgres::Config>()
        .with_context(|| format!("--database-url {} is not a PostgreSQL URL", rollcall_sink::redact_url(&a.database_url)))?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        let state = Arc::new(AppState { db: rollcall_serve::db::Db::new(a.database_url.clone()), tokens });
        state.db.client().await.with_context(|| format!("connecting to {}", rollcall_sink::redact_url(&a.database_url)))?;
        let router = rollcall_serve::router(state);
        let scheme = tls_config.scheme();
        rollcall_serve::serve(&a.listen, router, tls, crate::kafka_cmd::terminated(), |addr| {
            println!("listening on {scheme}://{addr}")
        })
        .await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
