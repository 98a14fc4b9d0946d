//! `rollcall roster import` (a OneRoster CSV bulk export onto the roster and
//! identities topics) and `rollcall calendar import` (school calendars as
//! CSV onto the calendar topic). The reading is rollcall-ingest's
//! (`oneroster`, `calendar_csv`); this module reads the files, reports,
//! and produces.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::NaiveDate;
use rollcall_ingest::oneroster::{self, Companion, IdKey, Input, SisId};
use rollcall_kafka::wire::Topics;
use rollcall_kafka::KafkaError;
use rollcall_model::avro::AvroRecord;

#[derive(clap::Subcommand)]
pub enum RosterCommand {
    /// Load a OneRoster 1.1 or 1.2 CSV bulk export onto the roster topic
    /// (one StudentRecord per student) and the identities topic (platform
    /// ids to SIS ids, per --source). A bad row is named by file and line,
    /// and nothing is imported unless --skip-bad-rows is given
    /// (docs/roster-import.md).
    Import(RosterImportArgs),
}

#[derive(clap::Subcommand)]
pub enum CalendarCommand {
    /// Load school calendars from a CSV whose header is exactly
    /// `school_id,timezone,policy,date,instructional,day_type,start,end`
    /// onto the calendar topic, one record per school. A bad row is named
    /// by its line, and nothing is imported unless --skip-bad-rows is given.
    Import(CalendarImportArgs),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SisIdArg {
    /// `identifier` when present, else `sourcedId`.
    Identifier,
    /// Always `sourcedId`.
    SourcedId,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum IdKeyArg {
    /// users.sourcedId.
    SourcedId,
    /// users.identifier.
    Identifier,
    /// users.username.
    Username,
    /// users.email as written (Zoom).
    Email,
    /// `mailto:` and users.email (xAPI's actor.mbox).
    Mailto,
    /// Each id of users.userIds (`{LTI:554433}` gives `554433`).
    UserIds,
}

#[derive(clap::Args)]
struct Target {
    /// Kafka bootstrap servers, host:port[,host:port...] (not needed with --dry-run).
    #[arg(long, env = "ROLLCALL_BROKERS", required_unless_present = "dry_run")]
    brokers: Option<String>,
    /// Put before every topic name, as given to `topics create --topic-prefix`.
    #[arg(long, default_value = "")]
    topic_prefix: String,
    /// Import the good rows even when some are bad (the bad ones are still reported).
    #[arg(long)]
    skip_bad_rows: bool,
    /// Read and check only: print the records as JSON lines on stdout, the summary on stderr, and produce nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(clap::Args)]
pub struct RosterImportArgs {
    /// The export's directory, unzipped: manifest.csv, orgs.csv, classes.csv, users.csv, enrollments.csv, roles.csv (1.2), ...
    #[arg(long, value_name = "DIR")]
    oneroster: PathBuf,
    /// Section kinds and meetings, a CSV with the header exactly
    /// `section_id,course_type,specials,dual_enrollment,weekdays,start,end`.
    #[arg(long, value_name = "FILE.csv")]
    companion: Option<PathBuf>,
    /// Students' learning modes by date, a CSV with the header exactly `student_id,from,to,weekdays,mode`.
    #[arg(long, value_name = "FILE.csv")]
    modes: Option<PathBuf>,
    /// A platform instance to write identities for, as the gateway names its source (repeatable).
    #[arg(long = "source", value_name = "NAME", required = true)]
    sources: Vec<String>,
    /// The date the roster is taken on: only enrollments, roles and classes in force on it count (default: today).
    #[arg(long, value_name = "YYYY-MM-DD")]
    as_of: Option<NaiveDate>,
    /// Count every enrollment, role and class, whatever its dates.
    #[arg(long, conflicts_with = "as_of")]
    all_dates: bool,
    /// Which of a user's ids is the SIS student or staff id.
    #[arg(long, value_enum, default_value = "identifier")]
    sis_id: SisIdArg,
    /// The platform keys to write identities for (repeatable; default: all of them).
    #[arg(long = "identity-key", value_enum, value_name = "KEY")]
    identity_keys: Vec<IdKeyArg>,
    #[command(flatten)]
    target: Target,
}

#[derive(clap::Args)]
pub struct CalendarImportArgs {
    /// The calendars, as a CSV file.
    #[arg(value_name = "FILE.csv")]
    file: PathBuf,
    #[command(flatten)]
    target: Target,
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// The export's `*.csv` files by name.
fn export_files(dir: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading the directory {}", dir.display()))? {
        let path = entry.with_context(|| format!("reading the directory {}", dir.display()))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        if path.is_file() && name.ends_with(".csv") {
            files.insert(name.to_string(), read(&path)?);
        }
    }
    Ok(files)
}

pub fn roster(cmd: RosterCommand) -> anyhow::Result<ExitCode> {
    let RosterCommand::Import(a) = cmd;
    if let Some(s) = a.sources.iter().find(|s| s.is_empty() || s.contains('|')) {
        anyhow::bail!("--source `{s}`: a source name is not empty and has no `|` (it is part of the identities' key)");
    }
    let companion = |p: &Option<PathBuf>| -> anyhow::Result<Option<Companion>> {
        p.as_ref().map(|p| Ok(Companion { name: p.display().to_string(), bytes: read(p)? })).transpose()
    };
    let input = Input { files: export_files(&a.oneroster)?, sections: companion(&a.companion)?, modes: companion(&a.modes)? };
    let as_of = if a.all_dates { None } else { Some(a.as_of.unwrap_or_else(|| chrono::Local::now().date_naive())) };
    let keys =
        if a.identity_keys.is_empty() { IdKey::ALL.to_vec() } else { a.identity_keys.iter().map(|k| id_key(*k)).collect() };
    let opts = oneroster::Options {
        sources: a.sources.clone(),
        sis_id: match a.sis_id {
            SisIdArg::Identifier => SisId::Identifier,
            SisIdArg::SourcedId => SisId::SourcedId,
        },
        identity_keys: keys,
        as_of,
    };
    // The export's own files are named by their path, the companions as given.
    let place = |e: &oneroster::RosterError| {
        if input.files.contains_key(e.file()) {
            format!("{}/{e}", a.oneroster.display().to_string().trim_end_matches('/'))
        } else {
            e.to_string()
        }
    };
    let import = match oneroster::import(&input, &opts) {
        Ok(i) => i,
        Err(refused) => {
            for e in &refused.errors {
                eprintln!("{}", place(e));
            }
            eprintln!("{}: the export cannot be read; nothing was imported", a.oneroster.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    for e in &import.errors {
        eprintln!("{}", place(e));
    }
    if !import.errors.is_empty() && !a.target.skip_bad_rows {
        eprintln!(
            "{}: {} bad row(s); nothing was imported (--skip-bad-rows imports the rest)",
            a.oneroster.display(),
            import.errors.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    let topics = Topics::with_prefix(&a.target.topic_prefix);
    let c = &import.counts;
    let date = as_of.map(|d| format!("as of {d}")).unwrap_or_else(|| "every date".into());
    let mut summary = vec![
        format!("OneRoster {} bulk export {} ({date})", import.version.as_str(), a.oneroster.display()),
        row("users", c.users, ""),
        row("staff", c.staff, ""),
        row("classes in force", c.classes, ""),
        row("student enrollments", c.enrollments, ""),
        row("not in force", c.not_in_force, "(enrollments, roles, classes)"),
        row("bad rows skipped", import.errors.len(), ""),
    ];
    if a.target.dry_run {
        for s in &import.students {
            println!("{}", serde_json::to_string(s)?);
        }
        for r in &import.identities {
            println!("{}", serde_json::to_string(r)?);
        }
        summary.push(row("students", import.students.len(), &format!("would go to {}", topics.roster)));
        summary.push(row("identities", import.identities.len(), &format!("would go to {}", topics.identities)));
        summary.iter().for_each(|l| eprintln!("{l}"));
        return Ok(ExitCode::SUCCESS);
    }
    let brokers = a.target.brokers.as_deref().context("--brokers is needed unless --dry-run")?;
    // The roster first: an event the gateway releases once its identities
    // arrive goes on to the processor, which needs the student's record.
    let students = import.students.iter().map(|s| {
        let value =
            s.to_single_object().map_err(|e| KafkaError::Record { what: format!("the student {}", s.student_id), source: e })?;
        Ok((s.student_id.clone(), Some(value)))
    });
    let n = produce(brokers, &topics.roster, import.students.len(), students)?;
    summary.push(row("students", n as usize, &format!("to {}", topics.roster)));
    let bar = indicatif::ProgressBar::new(import.identities.len() as u64);
    let m = rollcall_kafka::identities::publish(brokers, &topics.identities, &import.identities, |n| bar.set_position(n))
        .with_context(|| format!("producing {} identities to {}", import.identities.len(), topics.identities))?;
    bar.finish_and_clear();
    summary.push(row("identities", m as usize, &format!("to {} ({})", topics.identities, a.sources.join(", "))));
    summary.iter().for_each(|l| println!("{l}"));
    Ok(ExitCode::SUCCESS)
}

fn id_key(k: IdKeyArg) -> IdKey {
    match k {
        IdKeyArg::SourcedId => IdKey::SourcedId,
        IdKeyArg::Identifier => IdKey::Identifier,
        IdKeyArg::Username => IdKey::Username,
        IdKeyArg::Email => IdKey::Email,
        IdKeyArg::Mailto => IdKey::Mailto,
        IdKeyArg::UserIds => IdKey::UserIds,
    }
}

fn row(what: &str, n: usize, note: &str) -> String {
    format!("  {what:<22}{n:>7}  {note}").trim_end().to_string()
}

fn produce(
    brokers: &str,
    topic: &str,
    len: usize,
    records: impl IntoIterator<Item = Result<(String, Option<Vec<u8>>), KafkaError>>,
) -> anyhow::Result<u64> {
    let bar = indicatif::ProgressBar::new(len as u64);
    let n = rollcall_kafka::identities::produce_all(brokers, topic, records, |n| bar.set_position(n))
        .with_context(|| format!("producing {len} record(s) to {topic}"))?;
    bar.finish_and_clear();
    Ok(n)
}

pub fn calendar(cmd: CalendarCommand) -> anyhow::Result<ExitCode> {
    let CalendarCommand::Import(a) = cmd;
    let file = a.file.display();
    let read = match rollcall_ingest::calendar_csv::read(&read(&a.file)?) {
        Ok(c) => c,
        Err(rejected) => {
            for e in &rejected.errors {
                eprintln!("{file}: {e}");
            }
            eprintln!("{file}: nothing was imported");
            return Ok(ExitCode::FAILURE);
        }
    };
    for e in &read.errors {
        match e {
            rollcall_ingest::IngestError::Csv { line, column, problem } => match column {
                Some(c) => eprintln!("{file}:{line}: column `{c}`: {problem}"),
                None => eprintln!("{file}:{line}: {problem}"),
            },
            other => eprintln!("{file}: {other}"),
        }
    }
    if !read.errors.is_empty() && !a.target.skip_bad_rows {
        eprintln!("{file}: {} bad row(s); nothing was imported (--skip-bad-rows imports the rest)", read.errors.len());
        return Ok(ExitCode::FAILURE);
    }
    for c in &read.calendars {
        if !rollcall_policy::PRESET_IDS.contains(&c.policy.as_str()) {
            eprintln!(
                "note: school {} names the policy `{}`, which is not a preset: the processor needs a policy file with that id",
                c.school_id, c.policy
            );
        }
    }
    let topic = Topics::with_prefix(&a.target.topic_prefix).calendar;
    let days: usize = read.calendars.iter().map(|c| c.days.len()).sum();
    if a.target.dry_run {
        for c in &read.calendars {
            println!("{}", serde_json::to_string(c)?);
        }
        eprintln!("{} calendar(s), {days} day(s) from {file} would go to {topic}", read.calendars.len());
        return Ok(ExitCode::SUCCESS);
    }
    let brokers = a.target.brokers.as_deref().context("--brokers is needed unless --dry-run")?;
    let records = read.calendars.iter().map(|c| {
        let value = c
            .to_single_object()
            .map_err(|e| KafkaError::Record { what: format!("the calendar of {}", c.school_id), source: e })?;
        Ok((c.school_id.clone(), Some(value)))
    });
    let n = produce(brokers, &topic, read.calendars.len(), records)?;
    let skipped = if read.errors.is_empty() { String::new() } else { format!("; {} bad row(s) skipped", read.errors.len()) };
    println!("imported {n} calendar(s), {days} day(s) from {file} to {topic}{skipped}");
    Ok(ExitCode::SUCCESS)
}
