//! `rollcall identities import`: the CSV form of the identity mapping onto
//! the compacted `sis.identities.v1` topic, from which every gateway keeps
//! its view (and releases the events that were waiting for a mapping).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use rollcall_kafka::wire::Topics;

#[derive(clap::Subcommand)]
pub enum IdentitiesCommand {
    /// Load a CSV whose header is exactly `source,type,external_id,id,school_id`
    /// (type: student, staff or section) onto the identities topic. A file
    /// with any bad row imports nothing; every bad row is named by its line.
    Import(ImportArgs),
}

#[derive(clap::Args)]
pub struct ImportArgs {
    /// Kafka bootstrap servers, host:port[,host:port...].
    #[arg(long, env = "ROLLCALL_BROKERS")]
    brokers: String,
    /// Put before every topic name, as given to `topics create --topic-prefix`.
    #[arg(long, default_value = "")]
    topic_prefix: String,
    /// The mapping, as a CSV file.
    #[arg(value_name = "FILE.csv")]
    file: PathBuf,
}

pub fn run(cmd: IdentitiesCommand) -> anyhow::Result<ExitCode> {
    let IdentitiesCommand::Import(a) = cmd;
    let bytes = std::fs::read(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
    let records = match rollcall_ingest::identity::records_from_csv(&bytes) {
        Ok(r) => r,
        Err(rejected) => {
            for e in &rejected.errors {
                eprintln!("{}: {e}", a.file.display());
            }
            eprintln!("{}: {} error(s); nothing was imported", a.file.display(), rejected.errors.len());
            return Ok(ExitCode::FAILURE);
        }
    };
    let topic = Topics::with_prefix(&a.topic_prefix).identities;
    let bar = indicatif::ProgressBar::new(records.len() as u64);
    let n = rollcall_kafka::identities::publish(&a.brokers, &topic, &records, |n| bar.set_position(n))
        .with_context(|| format!("producing {} identities to {topic}", records.len()))?;
    bar.finish_and_clear();
    println!("imported {n} identities from {} to {topic}", a.file.display());
    Ok(ExitCode::SUCCESS)
}
