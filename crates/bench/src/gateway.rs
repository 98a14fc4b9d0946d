//! `rollcall bench gateway`: a load generator on loopback against the HTTP
//! gateway, and a bare rdkafka producer writing the same events, in one run.
//!
//! The gateway is `rollcall_gateway::serve` itself, started in this process
//! on 127.0.0.1:0 with a Caliper source, a bearer token and an identity
//! mapping of the simulated students written to a temporary directory, on
//! fresh topics under a unique prefix. Every body is made and normalized
//! before anything is timed, so the client's share of the two cores is
//! only HTTP. Phases:
//!
//! 1. `--rounds` rounds (3), each:
//!    - batched: `--connections` keep-alive HTTP/1.1 connections post
//!      Caliper envelopes of `--batch` events, closed loop, until
//!      `--events` events are acknowledged (written as ready-made bytes by
//!      [`crate::http1`], so that the client takes as little as it can of
//!      the cores the gateway runs on);
//!    - bare: a `FutureProducer` with the gateway's producer settings writes
//!      the same events (the same Avro single-object bytes, keys and
//!      timestamps) to a topic of its own and waits for every ack (before
//!      the first round, an untimed warm-up of as many records as the
//!      gateway's warm-up request, so that neither side's first round pays
//!      for connecting);
//!
//!    the ratio is the median of the rounds' ratios: on a shared machine a
//!    moment of load elsewhere falls on one phase of one round, and the
//!    bare phase, the shorter, is the easier to hit;
//! 2. single: one event per request, offered at `--rate` requests/s for
//!    `--seconds`, open loop: each request is sent at its scheduled instant
//!    whatever the answers before it, and its latency counts from that
//!    instant, so a stalled gateway shows in the percentiles instead of
//!    slowing the offered load.
//!
//! Then the topics' end offsets must equal the events acknowledged, or the
//! bench fails: a figure for events that were answered 200 and not written
//! would be worthless.

use std::collections::VecDeque;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rollcall_gateway::{GatewayConfig, SourceConfig};
use rollcall_ingest::{Encoded, Format, IdentityView};
use serde_json::json;

use crate::broker::{high_watermarks, rate, ratio, unique};
use crate::http1::Connection;
use crate::progress::bar;

#[derive(clap::Args)]
pub struct GatewayBenchArgs {
    /// Kafka bootstrap servers, host:port[,host:port...] (the bench makes topics of its own).
    #[arg(long, env = "ROLLCALL_BROKERS")]
    brokers: String,
    /// Events posted in each batched phase, and produced by the bare producer after it.
    #[arg(long, default_value_t = 200_000)]
    events: usize,
    /// Batched phases, each followed by the bare producer on the same events: the ratio is
    /// the median of the rounds' ratios, so that a moment of load on a shared machine
    /// decides one round, not the figure.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Caliper events per envelope in the batched phase.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Concurrent keep-alive HTTP/1.1 connections in the batched phase.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Single-event requests offered per second in the second phase (open loop).
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// How long the single-event phase offers its rate.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Simulated students in the identity mapping; event n is student n mod this.
    #[arg(long, default_value_t = 10_000)]
    students: usize,
    /// Partitions of the gateway's activity topic and of the bare producer's topic.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
}

const SOURCE: &str = "caliper";
const ROUTE: &str = "/v1/caliper";
const SCHOOL: &str = "bench-school";

fn user_iri(student: usize) -> String {
    format!("https://bench.example.edu/users/{student}")
}

/// The identity mapping: each simulated student's Caliper IRI to its SIS id.
fn identities_csv(students: usize) -> String {
    let mut out = String::from("source,type,external_id,id,school_id\n");
    for s in 0..students {
        out.push_str(&format!("{SOURCE},student,{},BS{s},{SCHOOL}\n", user_iri(s)));
    }
    out
}

/// Caliper 1.2 event `n`: a LoggedIn SessionEvent or a Submitted
/// AssignableEvent (alternately) of student `n mod students`, both of which
/// normalize to an ActivityEvent; the id carries the run's prefix so that
/// no two runs share one.
fn caliper_event(run: &str, n: usize, students: usize, at: DateTime<Utc>) -> serde_json::Value {
    let actor = user_iri(n % students);
    let time = at.to_rfc3339_opts(SecondsFormat::Millis, true);
    let id = format!("urn:rollcall-bench:{run}{n}");
    if n.is_multiple_of(2) {
        json!({
            "@context": "http://purl.imsglobal.org/ctx/caliper/v1p2", "id": id,
            "type": "SessionEvent", "profile": "SessionProfile",
            "actor": { "id": actor, "type": "Person" }, "action": "LoggedIn",
            "object": { "id": "https://bench.example.edu", "type": "SoftwareApplication" },
            "eventTime": time, "edApp": "https://bench.example.edu",
            "session": { "id": format!("https://bench.example.edu/sessions/{n}"), "type": "Session", "user": actor }
        })
    } else {
        json!({
            "@context": "http://purl.imsglobal.org/ctx/caliper/v1p2", "id": id,
            "type": "AssignableEvent", "profile": "AssignableProfile",
            "actor": { "id": actor, "type": "Person" }, "action": "Submitted",
            "object": { "id": format!("https://bench.example.edu/assignments/{}", n % 50), "type": "AssignableDigitalResource" },
            "eventTime": time, "edApp": { "id": "https://bench.example.edu", "type": "SoftwareApplication" },
            "membership": { "id": "https://bench.example.edu/memberships/1", "type": "Membership", "roles": ["Learner"] }
        })
    }
}

/// Envelopes of events `from..to`, `per` events each (the last may hold fewer).
fn envelopes(run: &str, from: usize, to: usize, per: usize, students: usize) -> anyhow::Result<Vec<Bytes>> {
    let now = Utc::now();
    let mut out = Vec::new();
    let mut n = from;
    while n < to {
        let end = (n + per).min(to);
        let data: Vec<serde_json::Value> = (n..end).map(|i| caliper_event(run, i, students, now)).collect();
        let body = json!({
            "sensor": "https://bench.example.edu/sensors/1",
            "sendTime": now.to_rfc3339_opts(SecondsFormat::Millis, true),
            "dataVersion": "http://purl.imsglobal.org/ctx/caliper/v1p2",
            "data": data,
        });
        out.push(Bytes::from(serde_json::to_vec(&body)?));
        n = end;
    }
    Ok(out)
}

/// What the gateway will produce for `bodies`, found with the same pure
/// function it runs (its events stamped with `received`); also proves that
/// every event is accepted, not ignored nor waiting for an identity.
fn encoded(bodies: &[Bytes], ids: &IdentityView, expected: usize, received: DateTime<Utc>) -> anyhow::Result<Vec<Encoded>> {
    let mut out = Vec::with_capacity(bodies.len());
    for b in bodies {
        let e = rollcall_ingest::encode(Format::Caliper, b, ids, Some(SOURCE), received).map_err(|r| anyhow::anyhow!("{r}"))?;
        anyhow::ensure!(
            e.waiting.is_empty() && e.ignored.is_empty(),
            "a generated envelope does not normalize whole: {} waiting, ignored {:?}",
            e.waiting.len(),
            e.ignored
        );
        out.push(e);
    }
    let n: usize = out.iter().map(|e| e.events.len()).sum();
    anyhow::ensure!(n == expected, "{n} events normalized from {expected} generated");
    Ok(out)
}

/// The gateway's own work on a request, Kafka and HTTP apart, on this one
/// thread: CPU µs per event normalizing into owned `ActivityEvent`s and
/// encoding them, and reading the same bodies straight to Avro as the
/// gateway does; medians of three interleaved passes. The two must give
/// the same bytes.
fn normalizing_cpu(
    bodies: &[Bytes],
    ids: &IdentityView,
    want: &[Encoded],
    received: DateTime<Utc>,
) -> anyhow::Result<(f64, f64)> {
    let events: usize = want.iter().map(|e| e.events.len()).sum::<usize>().max(1);
    let (mut owned, mut direct) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let start = cpu_seconds().0;
        for (b, w) in bodies.iter().zip(want) {
            let o = rollcall_ingest::normalize(Format::Caliper, b, ids, Some(SOURCE)).map_err(|r| anyhow::anyhow!("{r}"))?;
            let e = Encoded::from_outcome(o, received);
            anyhow::ensure!(e.bytes == w.bytes, "the owned path wrote other bytes than the direct one");
        }
        owned.push((cpu_seconds().0 - start) * 1e6 / events as f64);
        let start = cpu_seconds().0;
        for b in bodies {
            rollcall_ingest::encode(Format::Caliper, b, ids, Some(SOURCE), received).map_err(|r| anyhow::anyhow!("{r}"))?;
        }
        direct.push((cpu_seconds().0 - start) * 1e6 / events as f64);
    }
    Ok((median(owned), median(direct)))
}

/// The gateway, serving on its own threads until dropped.
struct InProcess {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), rollcall_gateway::GatewayError>>>,
}

impl InProcess {
    fn start(cfg: GatewayConfig) -> anyhow::Result<InProcess> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            rollcall_gateway::serve(
                cfg,
                async move {
                    let _ = stopped.await;
                },
                move |addr| {
                    let _ = tx.send(addr);
                },
            )
        });
        match rx.recv() {
            Ok(addr) => Ok(InProcess { addr, stop: Some(stop), thread: Some(thread) }),
            // The sender is gone: serve returned before binding.
            Err(_) => match thread.join() {
                Ok(Err(e)) => Err(anyhow::Error::new(e).context("starting the gateway")),
                Ok(Ok(())) => anyhow::bail!("the gateway stopped before listening"),
                Err(_) => anyhow::bail!("the gateway's thread panicked"),
            },
        }
    }

    fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> anyhow::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.thread.take().map(std::thread::JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(anyhow::Error::new(e).context("the gateway")),
            Some(Err(_)) => anyhow::bail!("the gateway's thread panicked"),
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// What the requests of one phase did.
#[derive(Default)]
struct Answers {
    /// Seconds each answered request took, in no order.
    latencies: Vec<f64>,
    /// Events the gateway said it accepted (its `accepted`, 200 answers only).
    accepted: u64,
    failures: u64,
    first_failure: Option<String>,
}

impl Answers {
    fn merge(&mut self, o: Answers) {
        self.latencies.extend(o.latencies);
        self.accepted += o.accepted;
        self.failures += o.failures;
        if self.first_failure.is_none() {
            self.first_failure = o.first_failure;
        }
    }

    fn fail(&mut self, why: String) {
        self.failures += 1;
        self.first_failure.get_or_insert(why);
    }

    /// Refuses to report figures for a phase in which requests failed.
    fn ensure_ok(&self, phase: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.failures == 0,
            "{phase}: {} requests failed (first: {})",
            self.failures,
            self.first_failure.as_deref().unwrap_or("?")
        );
        Ok(())
    }
}

/// Posts one body; the events the gateway accepted, or why it did not.
async fn post(client: &reqwest::Client, url: &str, token: &str, body: Bytes) -> Result<u64, String> {
    let r = client
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("{e:#}"))?;
    let status = r.status().as_u16();
    let text = r.bytes().await.map_err(|e| format!("{e:#}"))?;
    accepted(status, &text)
}

/// The events an answer says were accepted, or why the request failed.
fn accepted(status: u16, body: &[u8]) -> Result<u64, String> {
    if !(200..300).contains(&status) {
        return Err(format!("{status}: {}", String::from_utf8_lossy(body)));
    }
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("answer {e}"))?;
    v.get("accepted").and_then(serde_json::Value::as_u64).ok_or_else(|| format!("no `accepted` in {v}"))
}

fn client(connections: usize) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(connections.max(1))
        .timeout(Duration::from_secs(60))
        .build()
        .context("an HTTP client")
}

/// Phase 1: `connections` closed-loop clients share the bodies. Returns the
/// answers and the seconds from the first request to the last answer.
async fn batched(
    addr: std::net::SocketAddr,
    token: &str,
    bodies: Arc<Vec<Bytes>>,
    connections: usize,
    events: usize,
) -> (Answers, f64) {
    let next = Arc::new(AtomicUsize::new(0));
    let bar = bar(events as u64, "gateway, batched");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections.max(1) {
        let (token, bodies, next, bar) = (token.to_string(), bodies.clone(), next.clone(), bar.clone());
        tasks.push(tokio::spawn(async move {
            let mut a = Answers::default();
            let mut conn = match Connection::open(addr, ROUTE, &token).await {
                Ok(c) => c,
                Err(why) => {
                    a.fail(why);
                    return a;
                }
            };
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let t = Instant::now();
                match conn.post(body).await.and_then(|(status, answer)| accepted(status, &answer)) {
                    Ok(n) => {
                        a.latencies.push(t.elapsed().as_secs_f64());
                        a.accepted += n;
                        bar.inc(n);
                    }
                    Err(why) => a.fail(why),
                }
            }
            a
        }));
    }
    let mut all = Answers::default();
    for t in tasks {
        match t.await {
            Ok(a) => all.merge(a),
            Err(e) => all.fail(format!("a client task: {e}")),
        }
    }
    let secs = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    (all, secs)
}

/// Phase 2: each body is sent at `start + i / rate`, whether or not the
/// earlier ones were answered. Returns the answers (latency from the
/// scheduled instant) and the seconds from the first scheduled instant to
/// the last answer.
async fn single(client: &reqwest::Client, url: &str, token: &str, bodies: Vec<Bytes>, rate: u64) -> (Answers, f64) {
    let total = bodies.len();
    let bar = bar(total as u64, "gateway, single");
    let done = Arc::new(AtomicU64::new(0));
    let start = tokio::time::Instant::now() + Duration::from_millis(10);
    let mut tasks = Vec::with_capacity(total);
    for (i, body) in bodies.into_iter().enumerate() {
        let due = start + Duration::from_secs_f64(i as f64 / rate.max(1) as f64);
        tokio::time::sleep_until(due).await;
        let (client, url, token, bar, done) = (client.clone(), url.to_string(), token.to_string(), bar.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let r = post(&client, &url, &token, body).await;
            let latency = due.elapsed().as_secs_f64();
            bar.set_position(done.fetch_add(1, Ordering::Relaxed) + 1);
            r.map(|n| (n, latency))
        }));
    }
    let mut all = Answers::default();
    for t in tasks {
        match t.await {
            Ok(Ok((n, latency))) => {
                all.accepted += n;
                all.latencies.push(latency);
            }
            Ok(Err(why)) => all.fail(why),
            Err(e) => all.fail(format!("a request task: {e}")),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    (all, secs)
}

/// One topic for the bare producer, beside the gateway's.
async fn create_topic(brokers: &str, name: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = rollcall_kafka::client_config(brokers).create().context("an admin client")?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin.create_topics(&[NewTopic::new(name, partitions, TopicReplication::Fixed(1))], &opts).await?;
    for r in results {
        if let Err((t, code)) = r {
            anyhow::bail!("creating topic {t}: {code}");
        }
    }
    Ok(())
}

/// A producer configured as the gateway's, so that the difference between
/// the two is the gateway and not Kafka.
fn bare_producer(brokers: &str) -> anyhow::Result<FutureProducer> {
    rollcall_gateway::produce::Producer::settings(brokers, Duration::from_secs(30)).create().context("the bare producer")
}

/// Phase 3: every record sent as fast as librdkafka takes it, at most
/// `WINDOW` unacknowledged; the seconds from the first send to the last ack.
async fn bare(p: &FutureProducer, topic: &str, records: &[(String, Vec<u8>, i64)]) -> anyhow::Result<f64> {
    // Deep enough that the window never starves the batches, shallow enough
    // that librdkafka's queue (100,000 messages by default) rarely fills.
    const WINDOW: usize = 50_000;
    let bar = bar(records.len() as u64, "bare producer");
    let acked = |r: Result<rdkafka::producer::future_producer::OwnedDeliveryResult, _>| -> anyhow::Result<()> {
        match r {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _))) => anyhow::bail!("the bare producer: a record was not acknowledged: {e}"),
            Err(_) => anyhow::bail!("the bare producer: a delivery was dropped"),
        }
    };
    let started = Instant::now();
    let mut pending = VecDeque::with_capacity(WINDOW);
    let mut done = 0u64;
    for (key, value, ts) in records {
        let mut record = FutureRecord::to(topic).key(key.as_bytes()).payload(value).timestamp(*ts);
        loop {
            match p.send_result(record) {
                Ok(f) => {
                    pending.push_back(f);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    match pending.pop_front() {
                        Some(f) => {
                            acked(f.await)?;
                            done += 1;
                        }
                        None => tokio::time::sleep(Duration::from_millis(1)).await,
                    }
                }
                Err((e, _)) => anyhow::bail!("the bare producer: {e}"),
            }
        }
        if pending.len() >= WINDOW {
            if let Some(f) = pending.pop_front() {
                acked(f.await)?;
                done += 1;
            }
        }
        if done.is_multiple_of(4096) {
            bar.set_position(done);
        }
    }
    while let Some(f) = pending.pop_front() {
        acked(f.await)?;
        done += 1;
        if done.is_multiple_of(4096) {
            bar.set_position(done);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    Ok(secs)
}

/// The `q` quantile of `v` (sorted in place), nearest rank, in milliseconds.
fn quantile_ms(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1] * 1000.0
}

/// Seconds on a CPU so far: the calling thread's, and all of this
/// process's threads' together, from /proc (Linux; zeros elsewhere). The machine is shared
/// with the broker and whatever else runs, so events/s move with the load;
/// CPU per event does not, and says where the gateway's time goes.
fn cpu_seconds() -> (f64, f64) {
    let read = |path: &std::path::Path| -> f64 {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|ns| ns.parse::<f64>().ok()))
            .map_or(0.0, |ns| ns / 1e9)
    };
    let own = read(std::path::Path::new("/proc/thread-self/schedstat"));
    let mut all = 0.0;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            all += read(&t.path().join("schedstat"));
        }
    }
    (own, all)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn sum_watermarks(brokers: &str, topic: &str) -> anyhow::Result<u64> {
    Ok(high_watermarks(brokers, &[topic])?.values().sum::<i64>().max(0) as u64)
}

/// One batched phase and the bare producer right after it.
struct Round {
    events_s: f64,
    requests_s: f64,
    client_cpu: f64,
    gateway_cpu_us: f64,
    bare_events_s: f64,
    bare_cpu_us: f64,
    load: String,
}

impl Round {
    fn ratio(&self) -> f64 {
        self.events_s / self.bare_events_s.max(1e-9)
    }
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

pub fn gateway(a: GatewayBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        a.batch > 0 && a.events > 0 && a.students > 0 && a.rounds > 0,
        "--batch, --events, --students and --rounds must be above zero"
    );
    anyhow::ensure!(a.rate > 0 && a.seconds > 0, "--rate and --seconds must be above zero");
    let single_n =
        a.rate.checked_mul(a.seconds).and_then(|n| usize::try_from(n).ok()).context("--rate × --seconds is too large")?;
    let prefix = unique("gateway");
    let topics = rollcall_kafka::wire::Topics::with_prefix(&prefix);
    rollcall_kafka::topics::create_topics(&a.brokers, &topics, a.partitions, 1).context("creating the benchmark's topics")?;
    let bare_topic = format!("{prefix}bare.activity");

    // The gateway's inputs: a token and the identity mapping, on disk as
    // `rollcall gateway` reads them.
    let dir = tempfile::tempdir().context("a temporary directory")?;
    let token = format!("bench-{}", unique("token").trim_end_matches('.'));
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &token).context("writing the token file")?;
    let csv = identities_csv(a.students);
    let identities_file = dir.path().join("identities.csv");
    std::fs::write(&identities_file, &csv).context("writing the identity mapping")?;
    let ids = IdentityView::from_csv(csv.as_bytes()).map_err(|r| anyhow::anyhow!("the identity mapping: {r}"))?;

    // Every body before any timing: warm-up, batched, single.
    let warm_n = a.batch;
    let (b0, b1, b2) = (warm_n, warm_n + a.events, warm_n + a.events + single_n);
    let spin = crate::progress::spinner("generating and normalizing Caliper envelopes");
    let warm = envelopes(&prefix, 0, b0, a.batch, a.students)?;
    let batch_bodies = envelopes(&prefix, b0, b1, a.batch, a.students)?;
    let single_bodies = envelopes(&prefix, b1, b2, 1, a.students)?;
    // The bare producer writes the gateway's very bytes: each event stamped
    // with a time it was taken, as the gateway stamps it.
    let received = Utc::now();
    let requests = encoded(&batch_bodies, &ids, a.events, received)?;
    let records: Vec<(String, Vec<u8>, i64)> = requests
        .iter()
        .flat_map(|r| r.events.iter().map(move |e| (r, e)))
        .map(|(r, e)| (String::from_utf8_lossy(r.key(e)).into_owned(), r.payload(e).to_vec(), e.occurred_at_ms))
        .collect();
    let bytes: usize = batch_bodies.iter().map(Bytes::len).sum();
    spin.set_message("timing the gateway's normalization on one thread");
    let (owned_us, direct_us) = normalizing_cpu(&batch_bodies, &ids, &requests, received)?;
    drop(requests);
    spin.finish_and_clear();

    let cfg = GatewayConfig {
        listen: "127.0.0.1:0".into(),
        brokers: a.brokers.clone(),
        topic_prefix: prefix.clone(),
        identities_file: Some(identities_file),
        sources: vec![SourceConfig {
            name: None,
            format: SOURCE.into(),
            route: Some(ROUTE.into()),
            token_file: Some(token_file),
            token_env: None,
            secret_file: None,
            secret_env: None,
        }],
        ..GatewayConfig::default()
    };
    let gw = InProcess::start(cfg)?;
    let url = format!("http://{}{ROUTE}", gw.addr);
    println!(
        "gateway: in this process on {} (rollcall_gateway::serve), a Caliper source, {} students in its identity mapping; topics {prefix}* ({} partitions)",
        gw.addr, a.students, a.partitions
    );

    // The client gets one thread: the two cores are the gateway's and
    // librdkafka's to share, and the bodies are ready-made bytes.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("the client's runtime")?;
    let http = client(a.connections)?;
    let bodies = Arc::new(batch_bodies);
    let warm_answers = rt.block_on(async {
        let mut answers = Answers::default();
        for b in warm {
            match post(&http, &url, &token, b).await {
                Ok(n) => answers.accepted += n,
                Err(why) => answers.fail(why),
            }
        }
        answers
    });
    warm_answers.ensure_ok("warm-up")?;
    let p = rt.block_on(async {
        create_topic(&a.brokers, &bare_topic, a.partitions).await?;
        let p = bare_producer(&a.brokers)?;
        // Connections, metadata and a producer id before the clock starts,
        // as the gateway's producer had them from its warm-up request: the
        // same number of records, untimed.
        p.client().fetch_metadata(Some(&bare_topic), Duration::from_secs(30)).context("the bare topic's metadata")?;
        bare(&p, &bare_topic, &records[..warm_n.min(records.len())]).await?;
        anyhow::Ok(p)
    })?;

    let mut rounds: Vec<Round> = Vec::with_capacity(a.rounds);
    let mut batched_accepted = 0;
    let mut latencies = Vec::new();
    for n in 1..=a.rounds {
        let load = load_average();
        let cpu0 = cpu_seconds();
        let (answers, secs) = rt.block_on(batched(gw.addr, &token, bodies.clone(), a.connections, a.events));
        let cpu1 = cpu_seconds();
        answers.ensure_ok(&format!("batched, round {n}"))?;
        let bare_cpu0 = cpu_seconds().1;
        let bare_secs = rt.block_on(bare(&p, &bare_topic, &records))?;
        let bare_cpu = cpu_seconds().1 - bare_cpu0;
        let round = Round {
            events_s: rate(answers.accepted, secs),
            requests_s: rate(answers.latencies.len() as u64, secs),
            client_cpu: cpu1.0 - cpu0.0,
            gateway_cpu_us: (cpu1.1 - cpu0.1 - (cpu1.0 - cpu0.0)) * 1e6 / answers.accepted.max(1) as f64,
            bare_events_s: rate(records.len() as u64, bare_secs),
            bare_cpu_us: bare_cpu * 1e6 / records.len().max(1) as f64,
            load,
        };
        println!(
            "round {n}: batched {} events in {} requests of up to {} events ({:.1} MB of JSON) from {} connections in {secs:.3} s = {:.0} events/s, {:.0} requests/s, {:.1} µs of CPU per event (gateway and librdkafka; the client's thread {:.2} s); bare producer {:.0} events/s, {:.1} µs per event; ratio {}; load average {}",
            answers.accepted,
            answers.latencies.len(),
            a.batch,
            bytes as f64 / 1e6,
            a.connections,
            round.events_s,
            round.requests_s,
            round.gateway_cpu_us,
            round.client_cpu,
            round.bare_events_s,
            round.bare_cpu_us,
            ratio(round.ratio()),
            round.load
        );
        batched_accepted += answers.accepted;
        latencies.extend(answers.latencies);
        rounds.push(round);
    }
    let (single_answers, single_secs) = rt.block_on(single(&http, &url, &token, single_bodies, a.rate));
    single_answers.ensure_ok("single")?;
    gw.stop()?;

    let (b50, b99, bmax) =
        (quantile_ms(&mut latencies, 0.50), quantile_ms(&mut latencies, 0.99), quantile_ms(&mut latencies, 1.0));
    println!("batched, every round: latency p50 {b50:.1} ms, p99 {b99:.1} ms, max {bmax:.1} ms");
    let single_req_s = rate(single_answers.latencies.len() as u64, single_secs);
    let mut sl = single_answers.latencies;
    let (s50, s99, smax) = (quantile_ms(&mut sl, 0.50), quantile_ms(&mut sl, 0.99), quantile_ms(&mut sl, 1.0));
    println!(
        "single: {single_n} one-event requests offered at {}/s for {} s (open loop; latency from each request's scheduled instant): {single_req_s:.0} requests/s answered; latency p50 {s50:.1} ms, p99 {s99:.1} ms, max {smax:.1} ms",
        a.rate, a.seconds
    );

    let expected = warm_answers.accepted + batched_accepted + single_answers.accepted;
    let posted = (warm_n + a.events * a.rounds + single_n) as u64;
    anyhow::ensure!(
        expected == posted,
        "the gateway accepted {expected} events of the {posted} posted (answered 200 with fewer `accepted`)"
    );
    let on_topic = sum_watermarks(&a.brokers, &topics.activity)?;
    anyhow::ensure!(
        on_topic == expected,
        "{} holds {on_topic} records, but the gateway acknowledged {expected} events",
        topics.activity
    );
    let bare_on_topic = sum_watermarks(&a.brokers, &bare_topic)?;
    let bare_expected = (records.len() * a.rounds + warm_n.min(records.len())) as u64;
    anyhow::ensure!(
        bare_on_topic == bare_expected,
        "{bare_topic} holds {bare_on_topic} records, but the bare producer had {bare_expected} acknowledged"
    );
    println!(
        "verified: {} holds {on_topic} records = {expected} events acknowledged ({warm_n} warm-up, {batched_accepted} batched, {} single); {bare_topic} holds {bare_on_topic}",
        topics.activity, single_answers.accepted
    );
    let med = |f: &dyn Fn(&Round) -> f64| median(rounds.iter().map(f).collect());
    let (ev_s, req_s, bare_ev_s, r) =
        (med(&|r| r.events_s), med(&|r| r.requests_s), med(&|r| r.bare_events_s), med(&Round::ratio));
    let (gw_us, bare_us) = (med(&|r| r.gateway_cpu_us), med(&|r| r.bare_cpu_us));
    println!();
    println!("| round | gateway, batched events/s | bare producer events/s | ratio | gateway µs CPU/event | bare µs CPU/event | load average |");
    println!("|---|---|---|---|---|---|---|");
    for (n, x) in rounds.iter().enumerate() {
        println!(
            "| {} | {:.0} | {:.0} | {} | {:.1} | {:.1} | {} |",
            n + 1,
            x.events_s,
            x.bare_events_s,
            ratio(x.ratio()),
            x.gateway_cpu_us,
            x.bare_cpu_us,
            x.load
        );
    }
    println!("| **median** | {ev_s:.0} | {bare_ev_s:.0} | {} | {gw_us:.1} | {bare_us:.1} | |", ratio(r));
    println!();
    println!("| | events/s | requests/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|");
    println!(
        "| gateway, batched ({} per request, {} connections; median of {} rounds) | {ev_s:.0} | {req_s:.0} | {b50:.1} | {b99:.1} |",
        a.batch, a.connections, a.rounds
    );
    println!("| gateway, single (offered {}/s) | {single_req_s:.0} | {single_req_s:.0} | {s50:.1} | {s99:.1} |", a.rate);
    println!("| bare producer (median of {} rounds) | {bare_ev_s:.0} | | | |", a.rounds);
    println!();
    println!(
        "normalizing and encoding a request, one thread, HTTP and Kafka apart (median of 3 passes over the batched bodies): \
         {owned_us:.2} µs of CPU per event through owned ActivityEvents, {direct_us:.2} µs written straight to Avro as the gateway does ({:.2}×)",
        owned_us / direct_us.max(f64::MIN_POSITIVE)
    );
    println!(
        "gateway: batched {ev_s:.0} events/s (bare producer {bare_ev_s:.0} events/s, ratio {}), single p50 {s50:.1} ms p99 {s99:.1} ms at {single_req_s:.0} requests/s",
        ratio(r)
    );
    Ok(ExitCode::SUCCESS)
}
