//! `rollcall sink postgres`: the determinations and outreach topics into
//! PostgreSQL, exactly once.
//!
//! The positions are the database's, not Kafka's: every batch writes its
//! rows and the next offset of each partition it read (`sink_offsets`) in one
//! transaction, and a starting sink assigns itself every partition of the two
//! topics and seeks to the stored offsets (the beginning where none is
//! stored). Whenever the sink stops — SIGKILL in the middle of a COPY
//! included — the database holds either all of a batch and its positions or
//! neither, so the next start neither skips nor repeats a record. No Kafka
//! group offsets are committed; the group id only names the client.
//!
//! Out-of-order versions are harmless: `determinations` is replaced only by
//! a higher version, and `determination_versions` and `outreach_triggers`
//! insert each id once.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{Datelike, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use rollcall_kafka::wire::Topics;
use rollcall_kafka::QuietContext;
use rollcall_model::avro::AvroError;
use rollcall_model::{Determination, OutreachTrigger, SchoolCalendar, StudentRecord};
use rollcall_registry::{Codec, DecodeError};
use tracing::{info, warn, Instrument};

use crate::db::{self, BadRecord, Batch, Roster, Written};
use crate::metrics::SinkMetrics;
use crate::SinkError;

/// Everything `rollcall sink postgres` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkConfig {
    pub brokers: String,
    /// `postgres://user[:password]@host:port/db` or `host=… user=… dbname=…`.
    pub database_url: String,
    /// Put before every topic name, as the processor's `topic_prefix`.
    pub topic_prefix: String,
    /// Names the Kafka client (no offsets are committed to the group).
    pub group: String,
    /// While the writer is busy, a batch closes after this many records…
    pub batch_max_records: usize,
    /// …or this many milliseconds after its first record. A writer that
    /// waits takes what has been read at once.
    pub batch_max_ms: u64,
    /// Stop once every partition is read to its end and written (tests, backfills).
    pub exit_when_idle: bool,
    /// Database connections that write a batch side by side, each the
    /// partitions `p` with `p % writers` its own, in a transaction of its
    /// own with those partitions' positions. A key is always in one
    /// partition, so no two writers touch one row.
    pub writers: usize,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            brokers: "127.0.0.1:9092".into(),
            database_url: String::new(),
            topic_prefix: String::new(),
            group: "rollcall-sink".into(),
            // A transaction's fixed cost (a round trip and an fsync) shared by
            // many rows; a batch of this size still commits in well under a second.
            batch_max_records: 20_000,
            batch_max_ms: 200,
            exit_when_idle: false,
            // PostgreSQL runs one backend process per connection: one writer
            // keeps one core of the database busy at most.
            writers: 2,
        }
    }
}

impl SinkConfig {
    pub fn validate(&self) -> Result<(), SinkError> {
        let invalid = |field, message: &str| Err(SinkError::Config { field, message: message.into() });
        if self.brokers.trim().is_empty() {
            return invalid("brokers", "give at least one host:port");
        }
        if self.database_url.trim().is_empty() {
            return invalid("database_url", "give the PostgreSQL URL, e.g. postgres://rollcall@db:5432/rollcall");
        }
        if let Err(e) = self.database_url.parse::<tokio_postgres::Config>() {
            return invalid("database_url", &format!("`{}` is not a PostgreSQL URL: {e}", crate::redact_url(&self.database_url)));
        }
        if self.group.trim().is_empty() {
            return invalid("group", "must not be empty");
        }
        if self.batch_max_records == 0 || self.batch_max_ms == 0 {
            return invalid("batch_max_records / batch_max_ms", "must be above zero");
        }
        if !(1..=MAX_WRITERS).contains(&self.writers) {
            return invalid("writers", &format!("must be between 1 and {MAX_WRITERS}"));
        }
        Ok(())
    }

    pub fn topics(&self) -> Topics {
        Topics::with_prefix(&self.topic_prefix)
    }
}

/// What a run did, over all its sessions.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SinkStats {
    pub records: u64,
    pub batches: u64,
    pub bad_records: u64,
    pub determinations: u64,
    pub determination_versions: u64,
    pub outreach_triggers: u64,
    /// Connections made (more than one: the database or broker went away).
    pub sessions: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Determinations,
    Outreach,
    /// The roster and the calendars the processor decided with, for the
    /// reports' groups and the schools' time zones.
    Roster,
    Calendars,
}

/// One topic's consumer. One per topic, because an end-of-partition event
/// names only the partition: with both topics on one consumer, "partition 0
/// is at its end" would not say of which topic.
struct TopicReader {
    topic: String,
    kind: Kind,
    consumer: BaseConsumer<QuietContext>,
    partitions: Vec<i32>,
    at_end: HashSet<i32>,
}

pub struct Sink {
    cfg: SinkConfig,
    /// Reads either value format; Confluent-framed values need its registry.
    codec: Codec,
    stop: Arc<AtomicBool>,
    metrics: Arc<SinkMetrics>,
    stats: SinkStats,
}

const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// More connections than this would only queue on the database's cores.
pub const MAX_WRITERS: usize = 16;

/// The writer of a partition: the same one for as long as the session runs.
fn lane(partition: i32, writers: usize) -> usize {
    partition.unsigned_abs() as usize % writers
}

impl Sink {
    pub fn new(cfg: SinkConfig, stop: Arc<AtomicBool>, metrics: Arc<SinkMetrics>) -> Result<Sink, SinkError> {
        cfg.validate()?;
        Ok(Sink { cfg, codec: Codec::single_object(), stop, metrics, stats: SinkStats::default() })
    }

    /// Reads Confluent-framed values too, their writer schemas from the
    /// codec's registry (single-object values are read either way).
    pub fn with_codec(mut self, codec: Codec) -> Sink {
        self.codec = codec;
        self
    }

    /// Runs until stopped (or, with `exit_when_idle`, until everything is
    /// written). A database or broker that goes away is waited for: the
    /// session is dropped and started again from the stored positions,
    /// backing off up to 30 s.
    pub fn run(&mut self) -> Result<SinkStats, SinkError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| SinkError::Io { what: "starting the async runtime".into(), source })?;
        rt.block_on(self.run_async())
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    async fn run_async(&mut self) -> Result<SinkStats, SinkError> {
        let mut backoff = Duration::from_millis(250);
        loop {
            self.stats.sessions += 1;
            let batches_before = self.stats.batches;
            match self.session().await {
                Ok(()) => break,
                Err(e) if self.stopped() => {
                    warn!(error = %e, "stopping after an error");
                    break;
                }
                Err(e) if e.is_transient() => {
                    if self.stats.batches > batches_before {
                        backoff = Duration::from_millis(250);
                    }
                    self.metrics.set_ready(Err(format!("reconnecting: {e}")));
                    warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "sink session ended; starting again from the stored positions");
                    self.sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) => {
                    self.metrics.set_ready(Err(e.to_string()));
                    return Err(e);
                }
            }
        }
        self.metrics.set_ready(Err("stopped".into()));
        Ok(self.stats.clone())
    }

    /// Sleeps, waking early on a stop request (shutdown stays within 2 s).
    async fn sleep(&self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until && !self.stopped() {
            tokio::time::sleep(Duration::from_millis(50).min(until - Instant::now())).await;
        }
    }

    /// A connection to the database, closed when the returned guard drops.
    async fn connect(&self) -> Result<(tokio_postgres::Client, AbortOnDrop), SinkError> {
        let url = crate::redact_url(&self.cfg.database_url);
        let (client, connection) = tokio_postgres::connect(&self.cfg.database_url, tokio_postgres::NoTls)
            .await
            .map_err(SinkError::db(format!("connecting to {url}")))?;
        let conn = tokio::spawn(async move {
            if let Err(e) = connection.await {
                warn!(error = %e, "database connection closed");
            }
        });
        Ok((client, AbortOnDrop(conn)))
    }

    async fn session(&mut self) -> Result<(), SinkError> {
        let url = crate::redact_url(&self.cfg.database_url);
        let (mut client, _abort) = self.connect().await?;
        let topics = self.cfg.topics();
        // One writer per set of topics: a second sink on the same database
        // waits here instead of interleaving its batches' positions.
        let lock_key = lock_key(&topics.determinations);
        let mut said = false;
        loop {
            let row = client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&lock_key])
                .await
                .map_err(SinkError::db("taking the sink's advisory lock"))?;
            if row.get::<_, bool>(0) {
                break;
            }
            if !said {
                info!(database = %url, "another sink writes these topics into this database; waiting for it to stop");
                said = true;
            }
            self.metrics.set_ready(Err("another sink holds the database's lock".into()));
            self.sleep(Duration::from_secs(1)).await;
            if self.stopped() {
                return Ok(());
            }
        }
        let applied = crate::migrate::migrate(&mut client).await?;
        if !applied.is_empty() {
            info!(?applied, "database migrations applied");
        }
        db::prepare_session(&client).await?;
        // The other writers' connections: they only write while this one
        // holds the lock, and go with it when the session ends.
        let mut others = Vec::with_capacity(self.cfg.writers - 1);
        for _ in 1..self.cfg.writers {
            let (c, guard) = self.connect().await?;
            db::prepare_session(&c).await?;
            others.push((c, guard));
        }
        let all: [&str; 4] = [&topics.determinations, &topics.outreach, &topics.roster, &topics.calendar];
        self.metrics.init_topics(&all);
        let stored = db::load_offsets(&client, &all).await?;
        // One consumer per topic, made side by side: each waits on the
        // broker for its metadata, ~50 ms apiece one after the other.
        let wanted = [
            (&topics.determinations, Kind::Determinations),
            (&topics.outreach, Kind::Outreach),
            (&topics.roster, Kind::Roster),
            (&topics.calendar, Kind::Calendars),
        ];
        let made: Vec<Result<TopicReader, SinkError>> = std::thread::scope(|s| {
            let cfg = &self.cfg;
            let stored = &stored;
            let handles: Vec<_> = wanted.iter().map(|(topic, kind)| s.spawn(move || reader(cfg, topic, *kind, stored))).collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(SinkError::Io {
                            what: "making a consumer".into(),
                            source: std::io::Error::other("the thread panicked"),
                        })
                    })
                })
                .collect()
        });
        let mut readers = Vec::with_capacity(made.len());
        for made in made {
            match made {
                Ok(r) => readers.push(r),
                // The roster and calendars only feed the reports: without
                // them the determinations are still kept.
                Err(SinkError::NoTopic(t)) if t == topics.roster || t == topics.calendar => {
                    warn!(topic = %t, "topic does not exist: the students, schools and school_days tables are not kept")
                }
                Err(e) => return Err(e),
            }
        }
        self.metrics.set_ready(Ok(()));
        info!(database = %url, brokers = %self.cfg.brokers, "sink started");
        let partitions: Vec<(String, i32)> =
            readers.iter().flat_map(|r| r.partitions.iter().map(|p| (r.topic.clone(), *p))).collect();
        // The committed position per partition, for the lag gauge.
        let mut positions: BTreeMap<(String, i32), i64> =
            partitions.iter().filter_map(|k| stored.get(k).map(|o| (k.clone(), *o))).collect();
        // The ends of the partitions, asked of the broker by a thread of
        // their own: the requests take ~100 ms a partition (a second for the
        // two topics), which this loop spent reading and writing nothing.
        let ends = Watermarks::start(&self.cfg, &partitions)?;
        // Reading and decoding the next batch overlap writing this one.
        let mut reading = Reading::start(&self.cfg, &self.codec, &self.stop, readers)?;
        let mut lag_refreshed: Option<Instant> = None;
        loop {
            if lag_refreshed.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
                self.refresh_lag(&partitions, &positions, &ends);
                lag_refreshed = Some(Instant::now());
            }
            reading.hungry.store(true, Ordering::SeqCst);
            let read = tokio::time::timeout(Duration::from_secs(1), reading.batches.recv()).await;
            reading.hungry.store(false, Ordering::SeqCst);
            let Ok(read) = read else { continue };
            if self.stopped() {
                // A batch read but not written is dropped: nothing of it is committed.
                return Ok(());
            }
            match read {
                Some(Read::Batch(lanes)) => {
                    let mut clients: Vec<&mut tokio_postgres::Client> = vec![&mut client];
                    clients.extend(others.iter_mut().map(|(c, _)| c));
                    self.write(clients, lanes, &mut positions).await?
                }
                Some(Read::AllWritten) => {
                    info!("every partition is written to its end");
                    return Ok(());
                }
                Some(Read::Failed(e)) => return Err(e),
                None => {
                    return Err(SinkError::Io {
                        what: "reading the topics".into(),
                        source: std::io::Error::other("the reading thread ended"),
                    })
                }
            }
        }
    }

    /// Writes each writer's part of a batch on its own connection, side by
    /// side; a part that committed counts even when another failed (its
    /// positions are stored with it), and the session then starts again.
    async fn write(
        &mut self,
        clients: Vec<&mut tokio_postgres::Client>,
        lanes: Vec<Batch>,
        positions: &mut BTreeMap<(String, i32), i64>,
    ) -> Result<(), SinkError> {
        let parts = clients.into_iter().zip(lanes.iter()).enumerate().filter(|(_, (_, b))| !b.is_empty()).map(
            |(writer, (client, batch))| async move {
                let started = Instant::now();
                let span = batch_span(writer, batch);
                let written = db::write_batch(client, batch).instrument(span.clone()).await;
                (batch, span, written, started.elapsed().as_secs_f64())
            },
        );
        let mut failed = None;
        for (batch, span, written, seconds) in futures_util::future::join_all(parts).await {
            match written {
                Ok(w) => self.committed(batch, &span, w, seconds, positions),
                Err(e) => {
                    self.metrics.batches.with_label_values(&["failed"]).inc();
                    span.in_scope(|| warn!(error = %e, "batch not written"));
                    failed.get_or_insert(e);
                }
            }
        }
        failed.map_or(Ok(()), Err)
    }

    fn committed(
        &mut self,
        batch: &Batch,
        span: &tracing::Span,
        written: Written,
        seconds: f64,
        positions: &mut BTreeMap<(String, i32), i64>,
    ) {
        let mut by_topic: BTreeMap<String, u64> = BTreeMap::new();
        for (k, o) in &batch.next_offsets {
            positions.insert(k.clone(), *o);
        }
        for b in &batch.bad {
            self.metrics.bad_records.with_label_values(&[&b.topic, b.error_kind]).inc();
        }
        for ((t, _), _) in batch.next_offsets.iter() {
            by_topic.entry(t.clone()).or_default();
        }
        let per_topic = batch.per_topic();
        for (t, n) in per_topic {
            *by_topic.entry(t).or_default() += n;
        }
        self.metrics.committed(&written, &by_topic.into_iter().collect::<Vec<_>>(), seconds);
        self.stats.records += batch.records as u64;
        self.stats.batches += 1;
        self.stats.bad_records += batch.bad.len() as u64;
        self.stats.determinations += written.determinations;
        self.stats.determination_versions += written.determination_versions;
        self.stats.outreach_triggers += written.outreach_triggers;
        span.in_scope(|| {
            tracing::debug!(
                seconds,
                determinations = written.determinations,
                versions = written.determination_versions,
                outreach = written.outreach_triggers,
                "batch committed"
            )
        });
    }

    /// The lag gauge: the end of each partition (as last asked) less the committed position.
    fn refresh_lag(&self, partitions: &[(String, i32)], positions: &BTreeMap<(String, i32), i64>, ends: &Watermarks) {
        let ends = ends.get();
        for k in partitions {
            if let Some(&(low, high)) = ends.get(k) {
                let pos = positions.get(k).copied().unwrap_or(low);
                self.metrics.lag.with_label_values(&[&k.0, &k.1.to_string()]).set((high - pos).max(0));
            }
        }
    }
}

/// The span of one writer's part of a batch: its sizes and positions.
fn batch_span(writer: usize, batch: &Batch) -> tracing::Span {
    let spans: Vec<String> = batch.next_offsets.iter().map(|((t, p), o)| format!("{t}[{p}]<{o}")).collect();
    tracing::info_span!(
        "batch",
        writer,
        records = batch.records,
        determinations = batch.determinations.len(),
        outreach = batch.outreach.len(),
        bad = batch.bad.len(),
        positions = %spans.join(" ")
    )
}

/// A consumer of `topic`, assigned at the stored positions (the start
/// where none is stored).
fn reader(cfg: &SinkConfig, topic: &str, kind: Kind, stored: &BTreeMap<(String, i32), i64>) -> Result<TopicReader, SinkError> {
    let consumer: BaseConsumer<QuietContext> = rollcall_kafka::client_config(&cfg.brokers)
        .set("group.id", &cfg.group)
        .set("client.id", format!("{}-{topic}", cfg.group))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        // A stored position that the topic no longer has (retention,
        // a recreated topic) reads from the start: rows are idempotent.
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .create_with_context(QuietContext)
        .map_err(SinkError::kafka(format!("consumer for {topic} at {}", cfg.brokers)))?;
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(SinkError::kafka(format!("metadata of {topic}")))?;
    let partitions: Vec<i32> =
        md.topics().iter().filter(|t| t.name() == topic).flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    if partitions.is_empty() {
        return Err(SinkError::NoTopic(topic.to_string()));
    }
    let mut tpl = TopicPartitionList::new();
    let mut stored_here = 0;
    for &p in &partitions {
        let offset = match stored.get(&(topic.to_string(), p)) {
            Some(&o) => {
                stored_here += 1;
                Offset::Offset(o)
            }
            None => Offset::Beginning,
        };
        tpl.add_partition_offset(topic, p, offset).map_err(SinkError::kafka(format!("assigning {topic}[{p}]")))?;
    }
    consumer.assign(&tpl).map_err(SinkError::kafka(format!("assigning {topic}")))?;
    info!(topic, partitions = partitions.len(), stored = stored_here, "assigned at the stored positions");
    Ok(TopicReader { topic: topic.to_string(), kind, consumer, partitions, at_end: HashSet::new() })
}

/// What the reading thread hands the writer.
enum Read {
    /// A batch, in one part per writer (by [`lane`]).
    Batch(Vec<Batch>),
    /// Every partition is read to its end, and every batch before this was
    /// handed over (`exit_when_idle`).
    AllWritten,
    /// The session must start again (partitions were added).
    Failed(SinkError),
}

/// The thread that reads and decodes batches while the session writes the
/// previous one; at most one batch waits for the writer. Dropping this ends
/// the thread and waits for it (within a poll, ~25 ms).
struct Reading {
    batches: tokio::sync::mpsc::Receiver<Read>,
    /// The writer waits for a batch: the one being read is handed over at
    /// once, however small. A batch grows while the writer is busy, so
    /// batches are as large as the writer is slow, and the first write
    /// starts without waiting for a full batch.
    hungry: Arc<AtomicBool>,
    quit: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reading {
    fn start(cfg: &SinkConfig, codec: &Codec, stop: &Arc<AtomicBool>, readers: Vec<TopicReader>) -> Result<Reading, SinkError> {
        let (tx, batches) = tokio::sync::mpsc::channel(1);
        let quit = Arc::new(AtomicBool::new(false));
        let hungry = Arc::new(AtomicBool::new(false));
        let (cfg, codec, stop, q, h) = (cfg.clone(), codec.clone(), stop.clone(), quit.clone(), hungry.clone());
        let thread = std::thread::Builder::new()
            .name("sink-reader".into())
            .spawn(move || {
                let mut readers = readers;
                read_batches(&cfg, &codec, &stop, &q, &h, &mut readers, &tx);
                // Closing a consumer waits for its threads: the consumers
                // close side by side, not one after the other.
                std::thread::scope(|s| {
                    for r in readers {
                        s.spawn(move || drop(r));
                    }
                });
            })
            .map_err(|source| SinkError::Io { what: "starting the reading thread".into(), source })?;
        Ok(Reading { batches, hungry, quit, thread: Some(thread) })
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        self.quit.store(true, Ordering::SeqCst);
        // Wakes the thread if it waits to hand over a batch.
        self.batches.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The reading thread's loop: batches to the writer until the session ends.
fn read_batches(
    cfg: &SinkConfig,
    codec: &Codec,
    stop: &AtomicBool,
    quit: &AtomicBool,
    hungry: &AtomicBool,
    readers: &mut [TopicReader],
    tx: &tokio::sync::mpsc::Sender<Read>,
) {
    let halted = || stop.load(Ordering::SeqCst) || quit.load(Ordering::SeqCst);
    // The partition count is asked of the broker every 10 s.
    let mut checked = Instant::now();
    loop {
        if checked.elapsed() > Duration::from_secs(10) {
            checked = Instant::now();
            // Partitions added to a topic are read from their start: the
            // session begins again and assigns them with the others.
            for r in readers.iter() {
                if let Ok(md) = r.consumer.fetch_metadata(Some(&r.topic), Duration::from_millis(500)) {
                    let n = md.topics().iter().filter(|t| t.name() == r.topic).map(|t| t.partitions().len()).sum::<usize>();
                    if n > r.partitions.len() {
                        let _ = tx.blocking_send(Read::Failed(SinkError::PartitionsAdded {
                            topic: r.topic.clone(),
                            before: r.partitions.len(),
                            now: n,
                        }));
                        return;
                    }
                }
            }
        }
        let batch = match collect(cfg, codec, &halted, hungry, readers) {
            Ok(Some(batch)) => batch,
            Ok(None) => return,
            Err(e) => {
                let _ = tx.blocking_send(Read::Failed(e));
                return;
            }
        };
        if batch.iter().all(Batch::is_empty) {
            if cfg.exit_when_idle && readers.iter().all(|r| r.at_end.len() == r.partitions.len()) {
                let _ = tx.blocking_send(Read::AllWritten);
                return;
            }
            if tx.is_closed() {
                return;
            }
            continue;
        }
        if tx.blocking_send(Read::Batch(batch)).is_err() {
            return;
        }
    }
}

/// Reads one batch: up to `batch_max_records` records, or what arrived
/// within `batch_max_ms` of the first, or what was read when the writer
/// asks for it (`hungry`). `None`: stop requested (the
/// partial batch is dropped; nothing of it is committed). An error: a
/// value that cannot be judged now (its schema registry does not answer).
fn collect(
    cfg: &SinkConfig,
    codec: &Codec,
    halted: &dyn Fn() -> bool,
    hungry: &AtomicBool,
    readers: &mut [TopicReader],
) -> Result<Option<Vec<Batch>>, SinkError> {
    let mut batch: Vec<Batch> = (0..cfg.writers).map(|_| Batch::default()).collect();
    let mut records = 0;
    let mut first: Option<Instant> = None;
    let max_wait = Duration::from_millis(cfg.batch_max_ms);
    let mut idle_rounds = 0;
    loop {
        if halted() {
            return Ok(None);
        }
        if records >= cfg.batch_max_records || first.is_some_and(|f| f.elapsed() >= max_wait) {
            return Ok(Some(batch));
        }
        let mut got = false;
        for r in readers.iter_mut() {
            // Drain what is buffered without waiting; wait only when a
            // whole round found nothing.
            let timeout = if idle_rounds > 0 { Duration::from_millis(25) } else { Duration::ZERO };
            for _ in 0..1_000 {
                if records >= cfg.batch_max_records {
                    break;
                }
                match r.consumer.poll(timeout) {
                    None => break,
                    Some(Err(RdError::PartitionEOF(p))) => {
                        r.at_end.insert(p);
                        break;
                    }
                    Some(Err(e)) => {
                        // librdkafka retries fetches itself; say what happened.
                        warn!(topic = %r.topic, error = %e, "kafka consumer");
                        break;
                    }
                    Some(Ok(m)) => {
                        got = true;
                        first.get_or_insert_with(Instant::now);
                        r.at_end.remove(&m.partition());
                        records += 1;
                        take(r.kind, codec, &m, &mut batch[lane(m.partition(), cfg.writers)])?;
                    }
                }
            }
        }
        if records > 0 && hungry.load(Ordering::SeqCst) {
            return Ok(Some(batch));
        }
        if got {
            idle_rounds = 0;
        } else if cfg.exit_when_idle && readers.iter().all(|r| r.at_end.len() == r.partitions.len()) {
            // Every partition is read to its end and nothing more is
            // awaited: the last batch need not wait out `batch_max_ms`.
            return Ok(Some(batch));
        } else {
            idle_rounds += 1;
            if first.is_none() && idle_rounds > 1 {
                // Nothing at all: give the caller a chance to check idleness.
                return Ok(Some(batch));
            }
        }
    }
}

/// The low and high watermarks of every partition read, refreshed every
/// 10 s by a thread with a consumer of its own; it stops when dropped.
struct Watermarks {
    ends: Arc<Mutex<BTreeMap<(String, i32), (i64, i64)>>>,
    stop: Arc<AtomicBool>,
}

impl Watermarks {
    fn start(cfg: &SinkConfig, partitions: &[(String, i32)]) -> Result<Watermarks, SinkError> {
        let consumer: BaseConsumer<QuietContext> = rollcall_kafka::client_config(&cfg.brokers)
            .set("group.id", &cfg.group)
            .set("client.id", format!("{}-watermarks", cfg.group))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create_with_context(QuietContext)
            .map_err(SinkError::kafka(format!("watermark consumer at {}", cfg.brokers)))?;
        let partitions = partitions.to_vec();
        let ends = Arc::new(Mutex::new(BTreeMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (e, s) = (ends.clone(), stop.clone());
        std::thread::Builder::new()
            .name("sink-watermarks".into())
            .spawn(move || {
                while !s.load(Ordering::SeqCst) {
                    for (t, p) in &partitions {
                        if s.load(Ordering::SeqCst) {
                            return;
                        }
                        if let Ok(w) = consumer.fetch_watermarks(t, *p, Duration::from_millis(300)) {
                            e.lock().unwrap_or_else(|p| p.into_inner()).insert((t.clone(), *p), w);
                        }
                    }
                    for _ in 0..100 {
                        if s.load(Ordering::SeqCst) {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            })
            .map_err(|source| SinkError::Io { what: "starting the watermark thread".into(), source })?;
        Ok(Watermarks { ends, stop })
    }

    fn get(&self) -> BTreeMap<(String, i32), (i64, i64)> {
        self.ends.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for Watermarks {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The advisory lock's key: a stable hash of the determinations topic's
/// name (FNV-1a), so sinks of differently prefixed pipelines do not wait on
/// each other.
fn lock_key(topic: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in b"rollcall-sink:".iter().chain(topic.as_bytes()) {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

impl Batch {
    /// Records per topic, for the consumed counter.
    fn per_topic(&self) -> Vec<(String, u64)> {
        self.topic_counts.iter().map(|(t, n)| (t.clone(), *n)).collect()
    }
}

/// The dead-letter error kind of an undecodable record, as the processor
/// names them (`rollcall.dlq.v1`).
fn error_kind(e: &AvroError) -> &'static str {
    match e {
        AvroError::Header(_) => "NOT_AVRO",
        AvroError::Fingerprint { .. } => "WRONG_SCHEMA",
        AvroError::Field { message, .. } if message.contains("unknown") => "UNKNOWN_ENUM",
        AvroError::Decode(message) if message.contains("enum index") => "UNKNOWN_ENUM",
        _ => "SCHEMA_INVALID",
    }
}

/// Why PostgreSQL could not store a decoded record, if it could not: text
/// may not hold NUL, and timestamptz ends at 4713 BC and 294276 AD.
fn unstorable<'a>(strings: impl IntoIterator<Item = &'a str>, instants: &[chrono::DateTime<Utc>]) -> Option<String> {
    if strings.into_iter().any(|s| s.contains('\0')) {
        return Some("a text field holds a NUL character, which PostgreSQL text cannot store".into());
    }
    instants.iter().find(|t| !(-4712..=294_275).contains(&t.year())).map(|t| format!("instant {t} is outside PostgreSQL's range"))
}

fn det_problem(d: &Determination) -> Option<String> {
    let strings = [&d.determination_id, &d.student_id, &d.school_id, &d.policy, &d.code, &d.rule]
        .into_iter()
        .map(String::as_str)
        .chain(d.section_id.as_deref())
        .chain(d.category.as_deref())
        .chain(d.evidence.iter().map(String::as_str))
        .chain(d.looked_for.iter().map(String::as_str))
        .chain(d.evidence_detail.iter().flat_map(|e| {
            [&e.id, &e.kind]
                .into_iter()
                .map(String::as_str)
                .chain([&e.local_time, &e.source, &e.section_id, &e.staff_id, &e.detail].into_iter().flat_map(|s| s.as_deref()))
        }))
        .chain(d.seen.iter().flat_map(|s| {
            [&s.kind, &s.first_local_time, &s.why_not].into_iter().map(String::as_str).chain(s.section_id.as_deref())
        }));
    let mut instants = vec![d.decided_at];
    instants.extend(d.evidence_detail.iter().filter_map(|e| e.occurred_at));
    unstorable(strings, &instants)
}

fn trigger_problem(t: &OutreachTrigger) -> Option<String> {
    let strings = [&t.trigger_id, &t.student_id, &t.school_id, &t.reason, &t.policy]
        .into_iter()
        .map(String::as_str)
        .chain(t.staff_id.as_deref())
        .chain(t.section_id.as_deref())
        .chain(t.evidence.iter().map(String::as_str));
    unstorable(strings, &[t.created_at])
}

/// A value that could not be read as its record: its error kind and why,
/// or, when the registry could not be asked, the error that ends the
/// session (the record is not at fault and is read again).
fn refused(topic: &str, e: DecodeError) -> Result<(&'static str, String), SinkError> {
    match e {
        DecodeError::Avro(a) => Ok((error_kind(&a), a.to_string())),
        e @ (DecodeError::UnknownId { .. } | DecodeError::WrongSchema { .. } | DecodeError::NoRegistry { .. }) => {
            Ok(("WRONG_SCHEMA", e.to_string()))
        }
        source @ DecodeError::Registry { .. } => Err(SinkError::Registry { topic: topic.to_string(), source }),
    }
}

/// Adds one Kafka record to the batch: a row, or a bad record with its origin.
fn take(kind: Kind, codec: &Codec, m: &BorrowedMessage<'_>, batch: &mut Batch) -> Result<(), SinkError> {
    let (topic, partition, offset) = (m.topic(), m.partition(), m.offset());
    batch.records += 1;
    batch.next_offsets.insert((topic.to_string(), partition), offset + 1);
    *batch.topic_counts.entry(topic.to_string()).or_default() += 1;
    let problem: Option<(&'static str, String)> = match m.payload() {
        // A compacted roster's tombstone: the student left.
        None if kind == Kind::Roster => match m.key().map(String::from_utf8_lossy) {
            Some(k) => {
                batch.roster.push(Roster::Gone(k.into_owned()));
                None
            }
            None => Some(("MISSING_VALUE", "a roster tombstone without a key".into())),
        },
        // A determination key tombstoned (`rollcall forget`): its rows go.
        None if kind == Kind::Determinations => {
            match m.key().and_then(|k| std::str::from_utf8(k).ok()).and_then(rollcall_model::parse_determination_key) {
                Some(key) => {
                    batch.erased.push(key);
                    None
                }
                None => Some(("MISSING_VALUE", "a determinations tombstone whose key is not a determination key".into())),
            }
        }
        None => Some(("MISSING_VALUE", "the record has no value".into())),
        Some(v) => match kind {
            Kind::Determinations => match codec.decode::<Determination>(v) {
                Ok(d) => match det_problem(&d) {
                    None => {
                        batch.determinations.push(d);
                        None
                    }
                    Some(p) => Some(("INVALID_RECORD", p)),
                },
                Err(e) => Some(refused(topic, e)?),
            },
            Kind::Roster => match codec.decode::<StudentRecord>(v) {
                Ok(r) => match unstorable(
                    [&r.student_id, &r.school_id].into_iter().map(String::as_str).chain(r.groups.iter().map(String::as_str)),
                    &[],
                ) {
                    None => {
                        batch.roster.push(Roster::Student(Box::new(r)));
                        None
                    }
                    Some(p) => Some(("INVALID_RECORD", p)),
                },
                Err(e) => Some(refused(topic, e)?),
            },
            Kind::Calendars => match codec.decode::<SchoolCalendar>(v) {
                Ok(c) => match unstorable([c.school_id.as_str(), &c.timezone, &c.policy], &[]) {
                    None => {
                        batch.calendars.push(c);
                        None
                    }
                    Some(p) => Some(("INVALID_RECORD", p)),
                },
                Err(e) => Some(refused(topic, e)?),
            },
            Kind::Outreach => match codec.decode::<OutreachTrigger>(v) {
                Ok(t) => match trigger_problem(&t) {
                    None => {
                        batch.outreach.push(t);
                        None
                    }
                    Some(p) => Some(("INVALID_RECORD", p)),
                },
                Err(e) => Some(refused(topic, e)?),
            },
        },
    };
    if let Some((error_kind, message)) = problem {
        warn!(topic, partition, offset, error_kind, %message, "record cannot be used; kept in sink_dead_letters");
        batch.bad.push(BadRecord {
            topic: topic.to_string(),
            partition,
            offset,
            // Keys of these topics start with a student id: hashed for the log
            // above, kept as they are in the table (an SIS-side store).
            key: m.key().map(|k| String::from_utf8_lossy(k).replace('\0', "\u{fffd}")),
            value: m.payload().map(|v| v.to_vec()),
            error_kind,
            message: message.replace('\0', "\u{fffd}"),
            failed_at: Utc::now(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        let ok = SinkConfig { database_url: "postgres://u@h:5432/db".into(), ..Default::default() };
        ok.validate().unwrap();
        let e = SinkConfig { database_url: "".into(), ..Default::default() }.validate().unwrap_err();
        assert!(e.to_string().contains("database_url"), "{e}");
        let e = SinkConfig { batch_max_ms: 0, ..ok.clone() }.validate().unwrap_err();
        assert!(e.to_string().contains("batch_max"), "{e}");
        let e =
            SinkConfig { database_url: "postgres://u:secret@h:notaport/db".into(), ..Default::default() }.validate().unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
    }

    #[test]
    fn writers_are_bounded_and_own_whole_partitions() {
        let ok = SinkConfig { database_url: "postgres://u@h:5432/db".into(), ..Default::default() };
        for w in [0, MAX_WRITERS + 1] {
            let e = SinkConfig { writers: w, ..ok.clone() }.validate().unwrap_err();
            assert!(e.to_string().contains("writers"), "{e}");
        }
        // Every partition has one writer, the writers share the partitions
        // evenly, and one writer takes them all.
        for writers in 1..=4 {
            let mut per = vec![0; writers];
            for p in 0..12 {
                per[lane(p, writers)] += 1;
            }
            assert!(per.iter().all(|&n| n == 12 / writers || n == 12 / writers + 1), "{per:?}");
        }
        assert!((0..50).all(|p| lane(p, 1) == 0));
    }

    #[test]
    fn lock_keys_differ_by_prefix() {
        assert_ne!(lock_key("a.attendance.determinations.v1"), lock_key("attendance.determinations.v1"));
        assert_eq!(lock_key("x"), lock_key("x"));
    }

    #[test]
    fn unstorable_values_are_named() {
        assert!(unstorable(["ok", "n\0ul"], &[Utc::now()]).is_some());
        assert!(unstorable(["ok"], &[Utc::now()]).is_none());
    }
}
