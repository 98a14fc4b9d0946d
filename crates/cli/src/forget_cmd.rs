//! `rollcall forget STUDENT`: erase one student from the processors' state
//! and the compacted topics (`rollcall_kafka::forget`).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use rollcall_kafka::wire::{Topics, DEFAULT_GROUP};

#[derive(clap::Args)]
pub struct ForgetArgs {
    /// The student's SIS id, as on the roster topic.
    student: String,
    /// Kafka bootstrap servers, host:port[,host:port...].
    #[arg(long, env = "ROLLCALL_BROKERS")]
    brokers: String,
    /// Put before every topic name, as given to `topics create --topic-prefix`.
    #[arg(long, default_value = "")]
    topic_prefix: String,
    /// The processors' consumer group (`rollcall run --group`): the request
    /// is done once this group has consumed it.
    #[arg(long, default_value = DEFAULT_GROUP)]
    group: String,
    /// How long to wait for the processors to consume the request, in seconds.
    #[arg(long, default_value_t = 120)]
    wait_seconds: u64,
}

pub fn run(a: ForgetArgs) -> anyhow::Result<ExitCode> {
    let topics = Topics::of_group(&a.topic_prefix, &a.group);
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg}  {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let report =
        rollcall_kafka::forget::forget(&a.brokers, &topics, &a.group, &a.student, Duration::from_secs(a.wait_seconds), |m| {
            bar.set_message(m.to_string())
        })
        .context("erasing the student")?;
    bar.finish_and_clear();
    println!(
        "erased: the request is {} [{}] @{}; group {} dropped the student's state; {} determination key(s) and {} identity mapping(s) tombstoned",
        topics.roster, report.partition, report.offset, a.group, report.determinations, report.identities
    );
    println!(
        "compaction removes them from {}, {}, {} and {} (its changelog); activity, absence reports, outreach and dead letters age out by retention",
        topics.roster, topics.determinations, topics.identities, topics.changelog
    );
    Ok(ExitCode::SUCCESS)
}
