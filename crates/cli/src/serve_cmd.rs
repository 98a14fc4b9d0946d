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
}

pub fn run(a: ServeArgs) -> anyhow::Result<ExitCode> {
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
        rollcall_serve::serve(&a.listen, router, crate::kafka_cmd::terminated(), |addr| println!("listening on http://{addr}"))
            .await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
