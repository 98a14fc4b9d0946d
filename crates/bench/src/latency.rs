use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{Timelike, Utc};
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::{Offset, TopicPartitionList};
use rollcall_kafka::metrics::Metrics;
use rollcall_kafka::wire::Topics;
use rollcall_kafka::{Processor, RunStats};
use rollcall_model::avro::AvroRecord;
use rollcall_model::{
    ActivityEvent, ActivityKind, CalendarDay, DayType, Determination, Finality, GradeLevel, SchoolCalendar, StudentRecord,
};

use crate::broker::{create_topics, processor_config, unique};
use crate::progress::{bar, spinner};

#[derive(clap::Args)]
pub struct LatencyArgs {
    /// Kafka bootstrap servers, host:port[,host:port...] (the bench makes topics of its own).
    #[arg(long)]
    brokers: String,
    /// How long the deciding events are sent for.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Deciding events per second, each for a different student.
    #[arg(long, default_value_t = 500)]
    rate: u64,
    /// Partitions of the keyed topics.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
}

/// A time zone (a whole-hour `Etc/GMT` zone) in which it is now between
/// 12:00 and 13:00, so today's school day has hours left on both sides.
pub(crate) fn noon_zone() -> (String, i64) {
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
pub(crate) fn measure_latency(
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
            let p: BaseProducer = rollcall_kafka::client_config(&brokers)
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
                    received_at: None,
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
