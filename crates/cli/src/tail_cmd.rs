//! `rollcall tail`: any of rollcall's topics as canonical JSON lines, read
//! as an SIS consumer reads them (read_committed), so that a person can look
//! at determinations, outreach or dead letters without writing a consumer.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use rollcall_kafka::wire::{self, Topics};
use rollcall_model::avro::AvroRecord;
use rollcall_model::{AbsenceReport, ActivityEvent, DeadLetter, Determination, OutreachTrigger, SchoolCalendar, StudentRecord};
use rollcall_registry::{Codec, Credentials, Registry, ValueFormat};
use std::sync::Arc;

#[derive(clap::Args)]
pub struct TailArgs {
    /// The topic: its full name, or a short one with --topic-prefix:
    /// determinations, outreach, dlq, activity, roster, reports, calendar,
    /// identities, waiting.
    topic: String,
    /// Kafka bootstrap servers, host:port[,host:port...].
    #[arg(long, env = "ROLLCALL_BROKERS")]
    brokers: String,
    /// Put before a short topic name, as given to `topics create --topic-prefix`.
    #[arg(long, default_value = "")]
    topic_prefix: String,
    /// Start at the oldest record kept, not at the newest.
    #[arg(long)]
    from_beginning: bool,
    /// Only records with this key (a student id; a school id on the calendar topic).
    #[arg(long)]
    key: Option<String>,
    /// Stop once every partition's end is reached, instead of waiting for more.
    #[arg(long)]
    exit_at_end: bool,
    /// The schema registry's Confluent API, to read Confluent-framed values
    /// (either format is read; without it, single-object only)
    /// [credentials: ROLLCALL_REGISTRY_CREDENTIALS].
    #[arg(long, env = "ROLLCALL_REGISTRY_URL")]
    registry_url: Option<String>,
}

type Decode = fn(&Codec, &[u8]) -> anyhow::Result<serde_json::Value>;

/// A topic's record type, by the standard name it ends in.
fn decoder(name: &str) -> Option<Decode> {
    fn json<T: AvroRecord + serde::Serialize>(codec: &Codec, b: &[u8]) -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::to_value(codec.decode::<T>(b)?)?)
    }
    let by_name: [(&str, Decode); 9] = [
        (wire::DETERMINATIONS, json::<Determination>),
        (wire::OUTREACH, json::<OutreachTrigger>),
        (wire::DLQ, json::<DeadLetter>),
        (wire::ACTIVITY, json::<ActivityEvent>),
        (wire::ROSTER, json::<StudentRecord>),
        (wire::REPORTS, json::<AbsenceReport>),
        (wire::CALENDAR, json::<SchoolCalendar>),
        (wire::IDENTITIES, json::<rollcall_model::IdentityRecord>),
        (wire::WAITING, json::<ActivityEvent>),
    ];
    by_name.into_iter().find(|(n, _)| name.ends_with(n)).map(|(_, d)| d)
}

fn topic_name(args: &TailArgs) -> String {
    let t = Topics::with_prefix(&args.topic_prefix);
    match args.topic.as_str() {
        "determinations" => t.determinations,
        "outreach" => t.outreach,
        "dlq" | "dead-letters" => t.dlq,
        "activity" => t.activity,
        "roster" => t.roster,
        "reports" | "absence-reports" => t.reports,
        "calendar" => t.calendar,
        "identities" => t.identities,
        "waiting" => t.waiting,
        full => full.to_string(),
    }
}

/// A codec that reads both value formats, Confluent-framed ones through the
/// registry at `url` (credentials: ROLLCALL_REGISTRY_CREDENTIALS); without
/// a URL, single-object only.
pub fn reading_codec(url: Option<&str>) -> anyhow::Result<Codec> {
    Ok(match url.map(str::trim).filter(|u| !u.is_empty()) {
        None => Codec::single_object(),
        Some(url) => {
            let credentials = Credentials::load(None, |k| std::env::var(k).ok())?;
            Codec::new(ValueFormat::SingleObject, Some(Arc::new(Registry::new(url, credentials)?)))
        }
    })
}

pub fn run(args: TailArgs) -> anyhow::Result<ExitCode> {
    let topic = topic_name(&args);
    let decode = decoder(&topic)
        .with_context(|| format!("{topic}: not one of rollcall's record topics (the changelog is state, not records to read)"))?;
    let codec = reading_codec(args.registry_url.as_deref())?;
    let consumer: BaseConsumer<_> = rollcall_kafka::reader(&args.brokers, "rollcall-tail")?;
    let md = consumer
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .with_context(|| format!("{}: cannot read the metadata of {topic}", args.brokers))?;
    let partitions: Vec<i32> = md.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    anyhow::ensure!(!partitions.is_empty(), "{topic}: no such topic on {} (`rollcall topics create` makes them)", args.brokers);
    let mut tpl = TopicPartitionList::new();
    let start = if args.from_beginning { Offset::Beginning } else { Offset::End };
    for p in &partitions {
        tpl.add_partition_offset(&topic, *p, start).context("assigning partitions")?;
    }
    consumer.assign(&tpl).context("assigning partitions")?;
    let mut at_end = std::collections::BTreeSet::new();
    let out = std::io::stdout();
    let mut out = out.lock();
    let mut idle_since = Instant::now();
    loop {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                idle_since = Instant::now();
                at_end.remove(&m.partition());
                let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned());
                if args.key.is_some() && key != args.key {
                    continue;
                }
                let Some(value) = m.payload() else {
                    // A tombstone on a compacted topic: the key was deleted.
                    writeln!(out, "{}", serde_json::json!({ "key": key, "deleted": true }))?;
                    continue;
                };
                match decode(&codec, value) {
                    Ok(v) => writeln!(out, "{v}")?,
                    Err(e) => eprintln!("{topic} [{}] @{}: not a record rollcall can read: {e:#}", m.partition(), m.offset()),
                }
            }
            Some(Err(e)) if rollcall_kafka::is_eof(&e) => {
                if let rdkafka::error::KafkaError::PartitionEOF(p) = e {
                    at_end.insert(p);
                }
                if args.exit_at_end && at_end.len() >= partitions.len() {
                    break;
                }
            }
            Some(Err(e)) => return Err(e).with_context(|| format!("reading {topic}")),
            None => {
                // An empty topic reports no end on some brokers: a quiet read is the end too.
                if args.exit_at_end && idle_since.elapsed() > Duration::from_secs(5) {
                    break;
                }
            }
        }
        out.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}
