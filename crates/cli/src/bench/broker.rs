//! The benchmarks that need a Kafka broker: `bench kafka`, `bench latency`,
//! `bench restore` and `bench peers`. Each creates its own topics under a
//! unique prefix (`bench<pid>-<millis>-<name>.`), so runs never collide, and
//! runs the processor in this process with its metrics shared, which is how
//! progress, readiness and the first commit are seen while it runs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{Timelike, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::{Offset, TopicPartitionList};
use rollcall_kafka::metrics::{activity_kind_label, Metrics};
use rollcall_kafka::wire::Topics;
use rollcall_kafka::{ClockMode, Processor, ProcessorConfig, RunStats};
use rollcall_model::avro::AvroRecord;
use rollcall_model::{
    ActivityEvent, ActivityKind, CalendarDay, DayType, Determination, Finality, GradeLevel, SchoolCalendar, StudentRecord,
};
use rollcall_sim::file::Entry;
use rollcall_sim::SimConfig;

use super::{bar, load_or_simulate, simulate, DistrictOnBroker, KafkaArgs, LatencyArgs, Loaded, PeersArgs};

pub(super) fn unique(name: &str) -> String {
    format!("bench{}-{}-{name}.", std::process::id(), Utc::now().timestamp_millis())
}

pub(super) fn spinner(what: &str) -> ProgressBar {
    let s = ProgressBar::new_spinner();
    s.set_style(
        ProgressStyle::with_template(&format!("{{spinner}} {what}: {{pos}} {{msg}}  {{per_sec}}  {{elapsed}}"))
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    s.enable_steady_tick(Duration::from_millis(200));
    s
}

fn create_topics(brokers: &str, prefix: &str, partitions: i32) -> anyhow::Result<Topics> {
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
fn produce(brokers: &str, topics: &Topics, data: &Loaded, policy: Option<&str>) -> anyhow::Result<u64> {
    produce_with(brokers, topics, data, policy, &rollcall_registry::Codec::single_object())
}

/// [`produce`], each value written by `codec` (single-object or Confluent-framed).
fn produce_with(
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
pub(super) fn high_watermarks(brokers: &str, topics: &[&str]) -> anyhow::Result<HashMap<(String, i32), i64>> {
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
fn bare_consume(brokers: &str, topics: &[&str]) -> anyhow::Result<(u64, u64, f64)> {
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
fn consumed(m: &Metrics, topics: &Topics) -> u64 {
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
struct Watched {
    /// First readiness (assigned and restored), since the start.
    ready: Option<Duration>,
    /// The first committed transaction that carried input records, and their number.
    first_commit: Option<(Duration, u64)>,
    /// Entering the rebalance's restore, and readiness after it.
    restore_began: Option<Duration>,
    restore_ended: Option<Duration>,
}

/// Polls a running processor's metrics every millisecond; shows progress.
fn watch(
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

struct ProcRun {
    stats: RunStats,
    wall: Duration,
    watched: Watched,
}

fn processor_config(
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
fn run_processor(cfg: ProcessorConfig, expected: u64, what: &str) -> anyhow::Result<ProcRun> {
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
pub(super) fn ratio(r: f64) -> String {
    if r >= 0.01 || r == 0.0 {
        format!("{r:.2}")
    } else {
        format!("{r:.4}")
    }
}

pub(super) fn rate(n: u64, secs: f64) -> f64 {
    n as f64 / secs.max(1e-9)
}

pub fn kafka(a: KafkaArgs) -> anyhow::Result<ExitCode> {
    let confluent = match a.value_format.as_str() {
        "single-object" => None,
        "confluent" => Some(
            a.registry_url
                .clone()
                .filter(|u| !u.trim().is_empty())
                .context("--value-format confluent needs --registry-url (scripts/registry.sh start prints one)")?,
        ),
        other => anyhow::bail!("--value-format: `{other}` is neither single-object nor confluent"),
    };
    let data =
        load_or_simulate(&a.file, &SimConfig { students: a.students, days: a.days, seed: a.seed, ..SimConfig::default() })?;
    let prefix = unique("kafka");
    let topics = create_topics(&a.brokers, &prefix, a.partitions)?;
    let keyed = produce(&a.brokers, &topics, &data, None)?;
    println!("input: {}; {keyed} records on the roster, report and activity topics", data.source);

    let (n, bytes, secs) = bare_consume(&a.brokers, &[&topics.activity, &topics.roster, &topics.reports])?;
    let bare = rate(n, secs);
    println!(
        "bare consumer (read_committed, fetch.wait.max.ms 100): {n} records ({bytes} bytes) in {secs:.3} s = {bare:.0} records/s"
    );

    let state = tempfile::tempdir().context("creating a state directory")?;
    let cfg = processor_config(&a.brokers, &prefix, "proc", state.path().to_path_buf(), Some(data.end));
    let proc_rate = bench_processor(cfg, keyed, n, bare, a.partitions, "processor")?;
    let Some(url) = confluent else {
        println!(
            "kafka: processor {proc_rate:.0} records/s, bare consumer {bare:.0} records/s, ratio {}",
            ratio(proc_rate / bare.max(1e-9))
        );
        return Ok(ExitCode::SUCCESS);
    };

    // The same district again, Confluent-framed in and out, through the registry.
    let prefix = unique("kafka-confluent");
    let topics = create_topics(&a.brokers, &prefix, a.partitions)?;
    let format = rollcall_kafka::replay::Format::confluent(&url);
    let codec = format.input_codec(&topics)?;
    let keyed_cf = produce_with(&a.brokers, &topics, &data, None, &codec)?;
    anyhow::ensure!(keyed_cf == keyed, "{keyed_cf} Confluent-framed records produced, {keyed} single-object");
    let (n_cf, bytes_cf, _) = bare_consume(&a.brokers, &[&topics.activity, &topics.roster, &topics.reports])?;
    println!("confluent inputs: {n_cf} records ({bytes_cf} bytes; single-object {bytes} bytes)");
    let state = tempfile::tempdir().context("creating a state directory")?;
    let mut cfg = processor_config(&a.brokers, &prefix, "proc", state.path().to_path_buf(), Some(data.end));
    cfg.value_format = rollcall_registry::ValueFormat::Confluent;
    cfg.registry_url = url;
    let cf_rate = bench_processor(cfg, keyed_cf, n_cf, bare, a.partitions, "processor, confluent")?;
    println!(
        "kafka: processor {proc_rate:.0} records/s single-object, {cf_rate:.0} records/s confluent (ratio {}), bare consumer {bare:.0} records/s",
        ratio(cf_rate / proc_rate.max(1e-9))
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs one processor over the bench's topics and prints what it did; its rate.
fn bench_processor(cfg: ProcessorConfig, keyed: u64, n: u64, bare: f64, partitions: i32, what: &str) -> anyhow::Result<f64> {
    let format = cfg.value_format;
    let r = run_processor(cfg, keyed, what)?;
    let wall = r.wall.as_secs_f64();
    let proc_rate = rate(r.stats.records, wall);
    println!(
        "{what} (exactly-once, replay clock, one instance, {partitions} partitions, {format}): {} records in {wall:.3} s from start to exit, {} transactions, {} determinations, {} outreach, {} dead letters",
        r.stats.records, r.stats.transactions, r.stats.determinations, r.stats.outreach, r.stats.dead_letters
    );
    if let Some(t) = r.watched.ready {
        let steady = rate(r.stats.records, (r.wall - t).as_secs_f64());
        println!(
            "  start-up (group join, partitions assigned and opened) {:.3} s; from then to exit: {steady:.0} records/s, ratio {}",
            t.as_secs_f64(),
            ratio(steady / bare.max(1e-9))
        );
    }
    if let Some((t, at)) = r.watched.first_commit {
        println!("  first transaction with input records committed at {:.3} s, holding {at} records", t.as_secs_f64());
    }
    anyhow::ensure!(r.stats.records == n, "the processor consumed {} records, the bare consumer {n}", r.stats.records);
    Ok(proc_rate)
}

/// A time zone (a whole-hour `Etc/GMT` zone) in which it is now between
/// 12:00 and 13:00, so today's school day has hours left on both sides.
fn noon_zone() -> (String, i64) {
    let offset = 12 - Utc::now().hour() as i64;
    let name = match offset {
        0 => "Etc/UTC".to_string(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    };
    (name, offset)
}

pub fn latency(a: LatencyArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(a.rate > 0 && a.seconds > 0, "--rate and --seconds must be above zero");
    let total = (a.rate * a.seconds) as usize;
    let prefix = unique("latency");
    let topics = create_topics(&a.brokers, &prefix, a.partitions)?;
    // One school, under the daily-engagement policy, in session all of today.
    let (tz, offset) = noon_zone();
    let today = (Utc::now() + chrono::Duration::hours(offset)).date_naive();
    let t = |s: &str| s.parse().map_err(|e: String| anyhow::anyhow!(e));
    let cal = SchoolCalendar {
        school_id: "lat-school".into(),
        timezone: tz.clone(),
        policy: "daily-engagement".into(),
        days: vec![CalendarDay {
            date: today,
            instructional: true,
            day_type: DayType::Full,
            start: t("00:00")?,
            end: t("23:59")?,
        }],
    };
    let student = |i: usize| format!("lat-{i:07}");
    let p = rollcall_kafka::replay::producer(&a.brokers)?;
    let now = Utc::now();
    rollcall_kafka::replay::send(&p, &topics.calendar, &cal.school_id, &cal.to_single_object()?, now)?;
    for i in 0..total {
        let s = StudentRecord::new(student(i), cal.school_id.clone(), GradeLevel::G3);
        rollcall_kafka::replay::send(&p, &topics.roster, &s.student_id, &s.to_single_object()?, now)?;
    }
    p.flush(Duration::from_secs(60)).context("flushing the roster")?;
    drop(p);
    println!(
        "world: one school ({tz}, today {today}, daily-engagement), {total} students; {} events/s for {} s",
        a.rate, a.seconds
    );

    // The processor, on the wall clock, in its own thread until stopped.
    let state = tempfile::tempdir().context("creating a state directory")?;
    let cfg = processor_config(&a.brokers, &prefix, "lat", state.path().to_path_buf(), None);
    let metrics = Arc::new(Metrics::new());
    let stop = Arc::new(AtomicBool::new(false));
    let proc = {
        let (metrics, stop) = (metrics.clone(), stop.clone());
        std::thread::spawn(move || Processor::with_metrics(cfg, stop, metrics).and_then(|mut p| p.run()))
    };
    let result = measure_latency(&a, &topics, total, &metrics, &proc, student);
    stop.store(true, Ordering::SeqCst);
    let ran = proc.join().map_err(|_| anyhow::anyhow!("the processor thread panicked"))?;
    let mut lat = result?;
    ran.context("the processor")?;
    anyhow::ensure!(!lat.is_empty(), "no provisional determination became visible");
    lat.sort_by(|x, y| x.total_cmp(y));
    let q = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1];
    println!(
        "{} of {total} deciding events seen as PROVISIONAL PRESENT; min {:.3} s, p50 {:.3} s, p90 {:.3} s, p99 {:.3} s, max {:.3} s",
        lat.len(),
        lat[0],
        q(0.5),
        q(0.9),
        q(0.99),
        lat[lat.len() - 1]
    );
    println!("latency: p50 {:.3} s, p99 {:.3} s over {} determinations", q(0.5), q(0.99), lat.len());
    Ok(ExitCode::SUCCESS)
}

/// Waits for the roster to be committed, then sends the events at the
/// steady rate while a read_committed consumer watches the determinations.
fn measure_latency(
    a: &LatencyArgs,
    topics: &Topics,
    total: usize,
    metrics: &Arc<Metrics>,
    proc: &std::thread::JoinHandle<Result<RunStats, rollcall_kafka::KafkaError>>,
    student: impl Fn(usize) -> String,
) -> anyhow::Result<Vec<f64>> {
    let wait = spinner("loading the roster into the processor");
    let started = Instant::now();
    loop {
        let loaded = metrics.events_consumed.with_label_values(&[&topics.roster, "roster"]).get();
        wait.set_position(loaded);
        if loaded >= total as u64 && metrics.readiness().is_ok() {
            break;
        }
        anyhow::ensure!(!proc.is_finished(), "the processor stopped before it was ready");
        anyhow::ensure!(started.elapsed() < Duration::from_secs(300), "the processor did not load the roster in 300 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    wait.finish_and_clear();
    eprintln!("roster loaded in {:.1} s", started.elapsed().as_secs_f64());

    // The watcher of the determinations topic, from its beginning.
    let c = rollcall_kafka::reader(&a.brokers, &format!("bench-latency-{}", std::process::id()))?;
    let md = c.fetch_metadata(Some(&topics.determinations), Duration::from_secs(30))?;
    let mut tpl = TopicPartitionList::new();
    for t in md.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(&topics.determinations, p.id(), Offset::Beginning)?;
        }
    }
    c.assign(&tpl)?;
    let sent: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; total]));
    let done_sending = Arc::new(AtomicBool::new(false));
    let producer = {
        let (sent, done, brokers, topic) = (sent.clone(), done_sending.clone(), a.brokers.clone(), topics.activity.clone());
        let ids: Vec<String> = (0..total).map(&student).collect();
        let rate = a.rate;
        std::thread::spawn(move || -> anyhow::Result<()> {
            let p: BaseProducer = ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .set("partitioner", "murmur2_random")
                .set("enable.idempotence", "true")
                .set("linger.ms", "0")
                .create()?;
            let start = Instant::now();
            for (i, id) in ids.iter().enumerate() {
                let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
                if let Some(d) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
                let now = Utc::now();
                let e = ActivityEvent {
                    event_id: format!("lat-e-{i}"),
                    source: "bench".into(),
                    student_id: id.clone(),
                    school_id: "lat-school".into(),
                    section_id: None,
                    staff_id: None,
                    kind: ActivityKind::ContentAccess,
                    direction: None,
                    occurred_at: now,
                    assigned_date: None,
                    live_session_id: None,
                    duration_seconds: None,
                    attributes: Default::default(),
                };
                let v = e.to_single_object()?;
                if let Ok(mut s) = sent.lock() {
                    s[i] = Some(Instant::now());
                }
                rollcall_kafka::replay::send(&p, &topic, id, &v, now)?;
                p.poll(Duration::ZERO);
            }
            p.flush(Duration::from_secs(30))?;
            done.store(true, Ordering::SeqCst);
            Ok(())
        })
    };
    let bar = bar(total as u64, "determinations seen");
    let index: HashMap<String, usize> = (0..total).map(|i| (student(i), i)).collect();
    let mut seen: Vec<Option<Instant>> = vec![None; total];
    let mut n = 0usize;
    let mut sending_ended: Option<Instant> = None;
    while n < total {
        if sending_ended.is_none() && done_sending.load(Ordering::SeqCst) {
            sending_ended = Some(Instant::now());
        }
        if sending_ended.is_some_and(|t| t.elapsed() > Duration::from_secs(30))
            || (producer.is_finished() && !done_sending.load(Ordering::SeqCst))
        {
            break;
        }
        anyhow::ensure!(!proc.is_finished(), "the processor stopped during the measurement");
        match c.poll(Duration::from_millis(50)) {
            None => {}
            Some(Err(e)) if rollcall_kafka::is_eof(&e) => {}
            Some(Err(e)) => anyhow::bail!("determinations consumer: {e}"),
            Some(Ok(m)) => {
                let at = Instant::now();
                let Some(v) = m.payload() else { continue };
                let d = Determination::from_single_object(v)?;
                if d.finality != Finality::Provisional || !d.status.is_present() {
                    continue;
                }
                if let Some(&i) = index.get(&d.student_id) {
                    if seen[i].is_none() {
                        seen[i] = Some(at);
                        n += 1;
                        bar.set_position(n as u64);
                    }
                }
            }
        }
    }
    bar.finish_and_clear();
    producer.join().map_err(|_| anyhow::anyhow!("the producer thread panicked"))??;
    let sent = sent.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    Ok(seen
        .iter()
        .zip(sent.iter())
        .filter_map(|(v, s)| Some(v.as_ref()?.saturating_duration_since(*s.as_ref()?).as_secs_f64()))
        .collect())
}

pub fn restore(a: DistrictOnBroker) -> anyhow::Result<ExitCode> {
    let data = simulate(&a.sim());
    let prefix = unique("restore");
    let topics = create_topics(&a.brokers, &prefix, a.partitions)?;
    let keyed = produce(&a.brokers, &topics, &data, None)?;
    println!("input: {}; {keyed} input records", data.source);
    let first = tempfile::tempdir().context("creating a state directory")?;
    let fill = processor_config(&a.brokers, &prefix, "fill", first.path().to_path_buf(), Some(data.end));
    let changelog = fill.topics().changelog;
    let r = run_processor(fill, keyed, "filling the changelog")?;
    let highs = high_watermarks(&a.brokers, &[&changelog])?;
    println!(
        "first run: {} records in {:.1} s; changelog {} offsets over {} partitions",
        r.stats.records,
        r.wall.as_secs_f64(),
        highs.values().sum::<i64>(),
        highs.len()
    );
    // The same instance of the same group (the changelog is the group's, and
    // its static member id takes the partitions back at once), started again
    // with an empty state directory: every partition comes from the changelog.
    let empty = tempfile::tempdir().context("creating a state directory")?;
    let expected = highs.values().sum::<i64>().max(0) as u64;
    let cfg = processor_config(&a.brokers, &prefix, "fill", empty.path().to_path_buf(), Some(data.end));
    let metrics = Arc::new(Metrics::new());
    let stop_watch = Arc::new(AtomicBool::new(false));
    let bar = bar(expected, "restoring");
    let started = Instant::now();
    let shown = {
        let (m, bar, stop) = (metrics.clone(), bar.clone(), stop_watch.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                bar.set_position(m.restore_records.get());
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let watcher = watch(metrics.clone(), topics.clone(), ProgressBar::hidden(), stop_watch.clone(), started);
    let result = Processor::with_metrics(cfg, Arc::new(AtomicBool::new(false)), metrics).and_then(|mut p| p.run());
    stop_watch.store(true, Ordering::SeqCst);
    let w = watcher.join().map_err(|_| anyhow::anyhow!("the watcher thread panicked"))?;
    let _ = shown.join();
    bar.finish_and_clear();
    let stats = result.context("the restoring processor")?;
    let (Some(t0), Some(t1)) = (w.restore_began, w.restore_ended) else {
        anyhow::bail!("the restore was not seen (readiness never went from rebalancing to ready)")
    };
    let secs = (t1 - t0).as_secs_f64();
    anyhow::ensure!(stats.restored_records > 0, "nothing was restored");
    println!(
        "second instance, empty state directory: {} state records restored in {secs:.3} s (assignment to ready; {:.1} s from start to exit), {} records consumed after it",
        stats.restored_records,
        started.elapsed().as_secs_f64(),
        stats.records
    );
    println!(
        "restore: {:.0} records/s ({} records, {} partitions)",
        rate(stats.restored_records, secs),
        stats.restored_records,
        highs.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn peers_dir(a: &PeersArgs) -> PathBuf {
    if let Some(d) = &a.peers_dir {
        return d.clone();
    }
    let here = PathBuf::from("bench/peers");
    if here.join("run.sh").is_file() {
        return here;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/peers")
}

fn on_path(tool: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {tool}")]).stdout(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Runs one peer through run.sh; its events/s, or why there is none.
fn run_peer(
    dir: &std::path::Path,
    name: &str,
    brokers: &str,
    input: &str,
    output: &str,
    expected: u64,
    timeout: Duration,
) -> Result<(f64, String), String> {
    let needs: &[&str] = if name == "quix" { &["python3"] } else { &["java"] };
    let jar = dir.join("kafka-streams/target/daily-engagement-kstreams.jar");
    let needs: Vec<&str> = if name == "kafka-streams" && !jar.is_file() { vec!["java", "mvn"] } else { needs.to_vec() };
    for tool in needs {
        if !on_path(tool) {
            return Err(format!("not run: {tool} not found"));
        }
    }
    use std::os::unix::process::CommandExt;
    let mut child = Command::new("bash")
        .arg(dir.join("run.sh"))
        .args(["--brokers", brokers, "--input", input, "--output", output, "--expected", &expected.to_string(), "--only", name])
        .args(["--", "--engagement", "rollcall"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("not run: {e}"))?;
    let spin = spinner(name);
    spin.set_message("running");
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if started.elapsed() > timeout => {
                let _ = Command::new("kill").args(["-TERM", "--", &format!("-{}", child.id())]).status();
                let _ = child.wait();
                spin.finish_and_clear();
                return Err(format!("not finished within {} s (stopped)", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => return Err(e.to_string()),
        }
    };
    spin.finish_and_clear();
    let mut out = String::new();
    if let Some(mut s) = child.stdout.take() {
        use std::io::Read;
        let _ = s.read_to_string(&mut out);
    }
    let line = out.lines().rev().find(|l| l.starts_with(&format!("{name}: "))).unwrap_or_default().to_string();
    let r = line.strip_suffix(" events/s").and_then(|l| l.rsplit("= ").next()).and_then(|n| n.trim().parse::<f64>().ok());
    match r {
        Some(r) if status.success() => Ok((r, line)),
        _ => Err(format!(
            "failed ({}): {}",
            status,
            if line.is_empty() { "no result line; run bench/peers/run.sh by hand for its log" } else { &line }
        )),
    }
}

pub fn peers(a: PeersArgs) -> anyhow::Result<ExitCode> {
    let dir = peers_dir(&a);
    anyhow::ensure!(dir.join("run.sh").is_file(), "{}: no run.sh (give --peers-dir)", dir.display());
    let data = simulate(&a.district.sim());
    let prefix = unique("peers");
    let topics = create_topics(&a.district.brokers, &prefix, a.district.partitions)?;
    let keyed = produce(&a.district.brokers, &topics, &data, Some("daily-engagement"))?;
    let events: u64 = high_watermarks(&a.district.brokers, &[&topics.activity])?.values().sum::<i64>().max(0) as u64;
    println!("input: {}, every school under daily-engagement; {events} records on {}", data.source, topics.activity);

    let state = tempfile::tempdir().context("creating a state directory")?;
    let r = run_processor(
        processor_config(&a.district.brokers, &prefix, "rollcall", state.path().to_path_buf(), Some(data.end)),
        keyed,
        "rollcall",
    )?;
    let from = r.watched.ready.unwrap_or_default();
    let secs = (r.wall - from).as_secs_f64();
    let ours = rate(events, secs);
    println!(
        "rollcall (exactly-once, replay clock to the end, absences too): {events} events ({} records with roster and reports) in {secs:.3} s after start-up ({:.3} s) = {ours:.0} events/s; {} determinations",
        r.stats.records,
        from.as_secs_f64(),
        r.stats.determinations
    );
    let timeout = Duration::from_secs(a.peer_timeout);
    let mut results = Vec::new();
    for name in ["kafka-streams", "quix"] {
        let output = format!("{prefix}{name}.daily.v1");
        let res = run_peer(&dir, name, &a.district.brokers, &topics.activity, &output, events, timeout);
        match &res {
            Ok((_, line)) => println!("{line}"),
            Err(why) => println!("{name}: {why}"),
        }
        results.push((name, res));
    }
    println!();
    println!("| system | events/s | rollcall / system |");
    println!("|---|---|---|");
    println!("| rollcall | {ours:.0} | |");
    let mut last = format!("peers: rollcall {ours:.0} events/s");
    for (name, res) in &results {
        match res {
            Ok((r, _)) => {
                println!("| {name} | {r:.0} | {:.2}x |", ours / r.max(1e-9));
                last.push_str(&format!(", {name} {r:.0} events/s ({:.2}x)", ours / r.max(1e-9)));
            }
            Err(why) => {
                println!("| {name} | {why} | |");
                last.push_str(&format!(", {name} not measured"));
            }
        }
    }
    println!("{last}");
    Ok(ExitCode::SUCCESS)
}

/// `rollcall bench sink`: a simulated district through the processor (its
/// determinations per second, start to exit), then the sink over the
/// processor's output topics and a bare COPY of the same rows
/// (crate::sink_cmd::bench_after_processor).
pub fn sink(a: crate::sink_cmd::BenchSinkArgs) -> anyhow::Result<ExitCode> {
    let data = load_or_simulate(&None, &SimConfig { students: a.students, days: a.days, seed: a.seed, ..SimConfig::default() })?;
    let prefix = unique("sink");
    let topics = create_topics(&a.brokers, &prefix, a.partitions)?;
    let keyed = produce(&a.brokers, &topics, &data, None)?;
    println!("input: {}; {keyed} records on the roster, report and activity topics", data.source);
    let state = tempfile::tempdir().context("creating a state directory")?;
    let cfg = processor_config(&a.brokers, &prefix, "proc", state.path().to_path_buf(), Some(data.end));
    let r = run_processor(cfg, keyed, "processor")?;
    println!(
        "processor: {} records in {:.3} s, {} determinations, {} outreach",
        r.stats.records,
        r.wall.as_secs_f64(),
        r.stats.determinations,
        r.stats.outreach
    );
    let run = crate::sink_cmd::ProcessorRun { determinations: r.stats.determinations, seconds: r.wall.as_secs_f64() };
    crate::sink_cmd::bench_after_processor(&a, &prefix, run)
}
