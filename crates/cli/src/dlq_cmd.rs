//! `rollcall dlq replay`: dead letters of chosen kinds back onto their topics.

use std::process::ExitCode;

use anyhow::Context;
use rollcall_kafka::dlq::{replay, ReplayRequest};
use rollcall_kafka::wire::Topics;
use rollcall_model::DeadLetterKind;

#[derive(clap::Subcommand)]
pub enum DlqCommand {
    /// Put the dead letters of the given kinds back on the input topics they
    /// came from, once their cause is mended (a calendar or roster record
    /// that came too late). Remembers how far it got, per selection of
    /// kinds, so a second run does not put the same letters back twice.
    Replay(ReplayArgs),
}

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// Kafka bootstrap servers, host:port[,host:port...].
    #[arg(long, env = "ROLLCALL_BROKERS")]
    brokers: String,
    /// Put before every topic name, as given to `topics create --topic-prefix`.
    #[arg(long, default_value = "")]
    topic_prefix: String,
    /// The dead-letter topic is behind this prefix instead (a group run with `--output-prefix`).
    #[arg(long)]
    output_prefix: Option<String>,
    /// A kind to replay, such as UNKNOWN_SCHOOL or UNKNOWN_STUDENT (repeatable; at least one).
    #[arg(long = "kind", required = true)]
    kinds: Vec<String>,
    /// The consumer group that remembers how far replays got
    /// [default: rollcall-dlq-replay-<the kinds>].
    #[arg(long)]
    group: Option<String>,
    /// Count what would be replayed; produce and remember nothing.
    #[arg(long)]
    dry_run: bool,
}

pub fn run(cmd: DlqCommand) -> anyhow::Result<ExitCode> {
    let DlqCommand::Replay(a) = cmd;
    let kinds = a
        .kinds
        .iter()
        .map(|k| {
            k.parse::<DeadLetterKind>().map_err(|_| {
                let all: Vec<&str> = DeadLetterKind::ALL.iter().map(|k| k.as_str()).collect();
                anyhow::anyhow!("--kind: `{k}` is not a dead-letter kind; the kinds are {}", all.join(", "))
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut topics = Topics::with_prefix(&a.topic_prefix);
    if let Some(o) = &a.output_prefix {
        topics = topics.with_outputs_behind(o);
    }
    let group = a.group.unwrap_or_else(|| ReplayRequest::default_group(&kinds));
    let req = ReplayRequest { kinds, group: group.clone(), dry_run: a.dry_run };
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} reading {msg}  {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let report = replay(&a.brokers, &topics, &req, |r| {
        bar.set_message(format!("{}: {} read, {} to replay", topics.dlq, r.read, r.replayed.values().sum::<u64>()))
    })
    .with_context(|| format!("replaying dead letters from {}", topics.dlq))?;
    bar.finish_and_clear();
    let verb = if a.dry_run { "would replay" } else { "replayed" };
    for (topic, n) in &report.replayed {
        println!("{verb:<12} {n:>8}  to {topic}");
    }
    println!(
        "{} dead letter(s) read from {} (group {group}): {} {verb}, {} of other kinds passed over, {} not from an input topic of this prefix",
        report.read,
        topics.dlq,
        report.replayed.values().sum::<u64>(),
        report.other_kinds,
        report.not_replayable
    );
    Ok(ExitCode::SUCCESS)
}
