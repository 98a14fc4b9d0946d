//! `rollcall explain`: why a student was marked as they were on a date,
//! from the sink's tables.

use std::process::ExitCode;

use anyhow::Context;
use chrono::NaiveDate;

#[derive(clap::Args)]
pub struct ExplainArgs {
    /// The student (SIS student id).
    student: String,
    /// The school-local date (YYYY-MM-DD).
    date: NaiveDate,
    /// Only this section's determinations (its period and its week).
    #[arg(long)]
    section: Option<String>,
    /// The sink's database: postgres://user[:password]@host:port/database
    #[arg(long, env = "ROLLCALL_DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Text for a person, or the JSON that `rollcall serve` answers with.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

/// Connects to the sink's database for one command; the connection's task
/// ends with the runtime.
pub async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let shown = rollcall_sink::redact_url(url);
    let (client, conn) =
        tokio_postgres::connect(url, tokio_postgres::NoTls).await.with_context(|| format!("connecting to {shown}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

pub fn run(a: ExplainArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let explanation = rt.block_on(async {
        let client = connect(&a.database_url).await?;
        anyhow::Ok(rollcall_query::explain(&client, &a.student, a.date, a.section.as_deref()).await?)
    })?;
    match a.format {
        Format::Text => print!("{}", rollcall_query::text::render(&explanation)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&explanation)?),
    }
    Ok(ExitCode::SUCCESS)
}
