//! The benchmarks that need a Kafka broker: `bench kafka`, `bench latency`,
//! `bench restore` and `bench peers`. Each creates its own topics under a
//! unique prefix (`bench<pid>-<millis>-<name>.`), so runs never collide, and
//! runs the processor in this process with its metrics shared, which is how
//! progress, readiness and the first commit are seen while it runs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use indicatif::ProgressBar;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};
use rollcall_kafka::metrics::{activity_kind_label, Metrics};
use rollcall_kafka::wire::Topics;
use rollcall_kafka::{ClockMode, Processor, ProcessorConfig, RunStats};
use rollcall_model::ActivityKind;
use rollcall_sim::file::Entry;

use crate::district::Loaded;
use crate::progress::bar;

pub(crate) fn unique(name: &str) -> String {
    format!("bench{}-{}-{name}.", std::process::id(), Utc::now().timestamp_millis())
}

pub(crate) fn create_topics(brokers: &str, prefix: &str, partitions: i32) -> anyhow::Result<Topics> {
    let topics = Topics::with_prefix(prefix);
    rollcall_kafka::topics::create_topics(brokers, &topics, partitions, 1).context("creating the benchmark's topics")?;
    eprintln!("topics: {prefix}* ({partitions} partitions)");
    Ok(topics)
}

/// Produces a district to the input topics as `rollcall simulate --brokers`
/// does (calendars and roster just before the first arrival, then reports
/// and events with their arrival instants as timestamps). `policy`, when
/// given, replaces every school's policy. Returns the records of the keyed
/// inputs (roster, reports, activity).
pub(crate) fn produce(brokers: &str, topics: &Topics, data: &Loaded, policy: Option<&str>) -> anyhow::Result<u64> {
    produce_with(brokers, topics, data, policy, &rollcall_registry::Codec::single_object())
}

/// [`produce`], each value written by `codec` (single-object or Confluent-framed).
pub(crate) fn produce_with(
    brokers: &str,
    topics: &Topics,
    data: &Loaded,
    policy: Option<&str>,
    codec: &rollcall_registry::Codec,
) -> anyhow::Result<u64> {
    use rollcall_kafka::replay::send;
    let p = rollcall_kafka::replay::producer(brokers)?;
    let first = data
        .entries
        .iter()
        .find_map(|e| match e {
            Entry::Report { arrives_at, .. } | Entry::Event { arrives_at, .. } => Some(*arrives_at),
            _ => None,
        })
        .unwrap_or(data.end);
    let world_ts = first - chrono::Duration::seconds(1);
    let bar = bar(data.entries.len() as u64, "producing");
    let mut keyed = 0u64;
    for (i, e) in data.entries.iter().enumerate() {
        match e {
            Entry::Calendar(c) => {
                let mut c = c.clone();
                if let Some(p) = policy {
                    c.policy = p.to_string();
                }
                send(&p, &topics.calendar, &c.school_id, &codec.encode(&c)?, world_ts)?;
            }
            Entry::Student(s) => {
                send(&p, &topics.roster, &s.student_id, &codec.encode(s)?, world_ts)?;
                keyed += 1;
            }
            Entry::Report { report, arrives_at } => {
                send(&p, &topics.reports, &report.student_id, &codec.encode(report)?, *arrives_at)?;
                keyed += 1;
            }
            Entry::Event { event, arrives_at } => {
                send(&p, &topics.activity, &event.student_id, &codec.encode(event)?, *arrives_at)?;
                keyed += 1;
            }
        }
        if i % 4096 == 0 {
            bar.set_position(i as u64);
            p.poll(Duration::ZERO);
        }
    }
    p.flush(Duration::from_secs(120)).context("flushing the producer")?;
    bar.finish_and_clear();
    Ok(keyed)
}

/// The end offset of every partition of `topics`.
pub(crate) fn high_watermarks(brokers: &str, topics: &[&str]) -> anyhow::Result<HashMap<(String, i32), i64>> {
    let c = rollcall_kafka::reader(brokers, &format!("bench-watermarks-{}", std::process::id()))?;
    let mut out = HashMap::new();
    for t in topics {
        let md = c.fetch_metadata(Some(t), Duration::from_secs(30)).with_context(|| format!("metadata of {t}"))?;
        for mt in md.topics() {
            for p in mt.partitions() {
                let (_, high) =
                    c.fetch_watermarks(t, p.id(), Duration::from_secs(30)).with_context(|| format!("watermarks of {t}"))?;
                out.insert((t.to_string(), p.id()), high);
            }
        }
    }
    Ok(out)
}

/// A bare librdkafka consumer (read_committed, the processor's fetch
/// settings) reads `topics` from the beginning to their ends and counts
/// records. Returns (records, bytes, seconds from assignment to the last record).
pub(crate) fn bare_consume(brokers: &str, topics: &[&str]) -> anyhow::Result<(u64, u64, f64)> {
    let highs = high_watermarks(brokers, topics)?;
    let total: i64 = highs.values().sum();
    let c = rollcall_kafka::reader(brokers, &format!("bench-bare-{}-{}", std::process::id(), Utc::now().timestamp_millis()))?;
    let mut tpl = TopicPartitionList::new();
    let mut left = 0usize;
    for ((t, p), high) in &highs {
        if *high > 0 {
            tpl.add_partition_offset(t, *p, Offset::Beginning)?;
            left += 1;
        }
    }
    let bar = bar(total as u64, "bare consumer");
    let started = Instant::now();
    c.assign(&tpl)?;
    let (mut n, mut bytes) = (0u64, 0u64);
    let mut last = started.elapsed();
    while left > 0 {
        if started.elapsed() > Duration::from_secs(600) {
            anyhow::bail!("the bare consumer did not reach the end in 600 s ({n} of {total} records)");
        }
        match c.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(e)) if rollcall_kafka::is_eof(&e) => {}
            Some(Err(e)) => anyhow::bail!("bare consumer: {e}"),
            Some(Ok(m)) => {
                n += 1;
                bytes += m.payload().map_or(0, <[u8]>::len) as u64;
                if highs.get(&(m.topic().to_string(), m.partition())).is_some_and(|h| m.offset() + 1 == *h) {
                    left -= 1;
                }
                if n % 8192 == 0 {
                    bar.set_position(n);
                }
                last = started.elapsed();
            }
        }
    }
    bar.finish_and_clear();
    Ok((n, bytes, last.as_secs_f64()))
}

/// Keyed input records the processor has committed, from its metrics.
pub(crate) fn consumed(m: &Metrics, topics: &Topics) -> u64 {
    let mut n = 0;
    for k in ActivityKind::ALL {
        n += m.events_consumed.with_label_values(&[&topics.activity, activity_kind_label(*k)]).get();
    }
    n += m.events_consumed.with_label_values(&[&topics.activity, "unknown"]).get();
    n += m.events_consumed.with_label_values(&[&topics.roster, "roster"]).get();
    n += m.events_consumed.with_label_values(&[&topics.reports, "absence_report"]).get();
    n
}

/// What the watcher saw of one processor run.
#[derive(Debug, Default, Clone)]
pub(crate) struct Watched {
    /// First readiness (assigned and restored), since the start.
    pub(crate) ready: Option<Duration>,
    /// The first committed transaction that carried input records, and their number.
    pub(crate) first_commit: Option<(Duration, u64)>,
    /// Entering the rebalance's restore, and readiness after it.
    pub(crate) restore_began: Option<Duration>,
    pub(crate) restore_ended: Option<Duration>,
}

/// Polls a running processor's metrics every millisecond; shows progress.
pub(crate) fn watch(
    metrics: Arc<Metrics>,
    topics: Topics,
    bar: ProgressBar,
    stop: Arc<AtomicBool>,
    started: Instant,
) -> std::thread::JoinHandle<Watched> {
    std::thread::spawn(move || {
        let mut w = Watched::default();
        let mut shown = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            let at = started.elapsed();
            match metrics.readiness() {
                Ok(()) => {
                    w.ready.get_or_insert(at);
                    if w.restore_began.is_some() {
                        w.restore_ended.get_or_insert(at);
                    }
                }
                Err(why) if why.starts_with("rebalancing") => {
                    w.restore_began.get_or_insert(at);
                }
                Err(_) => {}
            }
            // Input records are counted when their transaction commits.
            if w.first_commit.is_none() {
                let n = consumed(&metrics, &topics);
                if n > 0 {
                    w.first_commit = Some((at, n));
                }
            }
            if shown.elapsed() > Duration::from_millis(100) {
                bar.set_position(consumed(&metrics, &topics));
                shown = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        w
    })
}

pub(crate) struct ProcRun {
    pub(crate) stats: RunStats,
    pub(crate) wall: Duration,
    pub(crate) watched: Watched,
}

pub(crate) fn processor_config(
    brokers: &str,
    prefix: &str,
    group: &str,
    state_dir: PathBuf,
    data_end: Option<chrono::DateTime<Utc>>,
) -> ProcessorConfig {
    ProcessorConfig {
        brokers: brokers.to_string(),
        group: format!("{prefix}{group}"),
        state_dir,
        instance_id: group.to_string(),
        clock: if data_end.is_some() { ClockMode::Replay } else { ClockMode::Wall },
        until: data_end,
        exit_when_idle: data_end.is_some(),
        topic_prefix: prefix.to_string(),
        metrics_addr: "off".into(),
        ..ProcessorConfig::default()
    }
}

/// Runs a replay processor to its exit on this thread, watched.
pub(crate) fn run_processor(cfg: ProcessorConfig, expected: u64, what: &str) -> anyhow::Result<ProcRun> {
    let topics = cfg.topics();
    let metrics = Arc::new(Metrics::new());
    let bar = bar(expected, what);
    let stop_watch = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let watcher = watch(metrics.clone(), topics, bar.clone(), stop_watch.clone(), started);
    let result = Processor::with_metrics(cfg, Arc::new(AtomicBool::new(false)), metrics).and_then(|mut p| p.run());
    let wall = started.elapsed();
    stop_watch.store(true, Ordering::SeqCst);
    let watched = watcher.join().map_err(|_| anyhow::anyhow!("the watcher thread panicked"))?;
    bar.finish_and_clear();
    Ok(ProcRun { stats: result.context("the processor")?, wall, watched })
}

/// Two decimals, more when that would show zero.
pub(crate) fn ratio(r: f64) -> String {
    if r >= 0.01 || r == 0.0 {
        format!("{r:.2}")
    } else {
        format!("{r:.4}")
    }
}

pub(crate) fn rate(n: u64, secs: f64) -> f64 {
    n as f64 / secs.max(1e-9)
}
