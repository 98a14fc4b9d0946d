//! `rollcall report KIND`: a report of one school over a span of dates,
//! from the sink's tables, as CSV or as one self-contained HTML page
//! (docs/reports.md).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use chrono::NaiveDate;
use rollcall_report::{query, Kind, Params};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Html,
}

#[derive(clap::Args)]
pub struct ReportArgs {
    /// The report: mississippi-monthly, nmped-weekly, data-team-weekly or chronic-absence.
    kind: String,
    /// The sink's database (postgres://user:password@host/db or key=value form).
    #[arg(long, env = "ROLLCALL_DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// The school, as its school_id.
    #[arg(long)]
    school: String,
    /// The first day of the span (YYYY-MM-DD).
    #[arg(long)]
    from: String,
    /// The last day of the span, included (YYYY-MM-DD).
    #[arg(long)]
    to: String,
    /// CSV (RFC 4180, a header row) or one self-contained HTML page.
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    format: Format,
    /// Write here instead of to stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn date(flag: &str, s: &str) -> anyhow::Result<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .with_context(|| format!("--{flag} `{s}` is not a date: write it as YYYY-MM-DD, e.g. 2020-10-05"))
}

pub fn run(a: ReportArgs) -> anyhow::Result<ExitCode> {
    let kind: Kind = a.kind.parse()?;
    let params = Params::new(&a.school, date("from", &a.from)?, date("to", &a.to)?)?;
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let data = rt.block_on(async {
        let client = crate::explain_cmd::connect(&a.database_url).await?;
        anyhow::Ok(query::fetch(&client, kind, &params, |line| eprintln!("report: {line}")).await?)
    })?;
    let report = rollcall_report::build(kind, &params, &data);
    let text = match a.format {
        Format::Csv => rollcall_report::csv::report(&report),
        Format::Html => rollcall_report::html::report(&report),
    };
    match &a.out {
        Some(p) => std::fs::write(p, &text).with_context(|| format!("writing {}", p.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
    }
    eprintln!(
        "report: {} for {} from {} to {}: {} rows in {:.1} s",
        kind.name(),
        params.school,
        params.from,
        params.to,
        report.flat.rows.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
