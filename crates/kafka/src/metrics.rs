//! Prometheus metrics of the processor: one registry per process, names in
//! base units (`_total` counters, `_seconds` histograms), and never a
//! student, staff or section id in a label.
//!
//! What is counted, and when:
//! - input records, outputs and dead letters are counted when the
//!   transaction that carries them commits, so the counters agree with what
//!   a read_committed consumer sees (a batch that is aborted and processed
//!   again is counted once); calendar records, which are read outside the
//!   transactions by every instance, are counted when they are read;
//! - `rollcall_event_to_output_seconds` is observed once per determination
//!   or outreach trigger of a committed batch that had input records, from
//!   the newest input record of the batch to the end of the commit. With the
//!   wall clock the start is that record's Kafka timestamp (time spent in
//!   Kafka included); with the replay clock record timestamps are historical,
//!   so the start is the wall-clock instant the processor received the
//!   record (processing latency only). Outputs of a batch without input
//!   (closes on the clock) are not observed;
//! - `rollcall_event_delivery_delay_seconds` is observed for each activity
//!   event of a committed batch that the gateway stamped (`received_at`,
//!   ActivityEvent schema version 2): from when the event occurred to when
//!   the gateway took it, i.e. how late platforms deliver; the processor's
//!   own delay is in `rollcall_event_to_output_seconds`;
//! - `rollcall_windows_evaluated_total{result}` counts, per committed batch,
//!   the day and week windows its records touched: `evaluated` by their
//!   rule, or `skipped` because nothing that arrived could change them (the
//!   engine's incremental evaluation, ARCHITECTURE.md);
//! - gauges (lag, windows, schools, RocksDB) are refreshed by the processor
//!   loop: lag after every batch, the others at most every few seconds;
//! - `rollcall_open_windows{scope}`: for each school, the instructional
//!   dates (`day`) and weeks (`week`) that have begun by the task's engine
//!   clock and whose close has not fired, times the school's students in the
//!   task; summed over the tasks. Derived from the close schedule and the
//!   school index, not from per-window state: a student whose day window was
//!   already finalized by an earlier rule of the same date is still counted;
//! - `rollcall_schools_in_session`: schools whose calendar makes the local
//!   date instructional, at the wall clock (or, with the replay clock, at the
//!   latest engine clock of the tasks);
//! - RocksDB gauges per partition: `rocksdb.estimate-live-data-size` and
//!   `rocksdb.estimate-pending-compaction-bytes` summed over the column
//!   families, `rocksdb.block-cache-usage` of the one cache they share.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use rollcall_model::{ActivityKind, DeadLetterKind, Determination, Finality, OutreachKind, OutreachTrigger, Scope};

use crate::wire::{Input, InputTopic, Topics};

/// Every metric family the processor exports. Dashboards and alert rules may
/// only use these (a test cross-checks deploy/), and a test fails if one of
/// them disappears from a scrape.
pub const METRIC_NAMES: &[&str] = &[
    "rollcall_events_consumed_total",
    "rollcall_determinations_emitted_total",
    "rollcall_outreach_triggers_total",
    "rollcall_dlq_records_total",
    "rollcall_late_events_total",
    "rollcall_windows_evaluated_total",
    "rollcall_event_to_output_seconds",
    "rollcall_event_delivery_delay_seconds",
    "rollcall_consumer_lag_records",
    "rollcall_transaction_commit_seconds",
    "rollcall_transactions_total",
    "rollcall_partitions_assigned",
    "rollcall_state_restore_records_total",
    "rollcall_state_restores_in_progress",
    "rollcall_open_windows",
    "rollcall_events_waiting",
    "rollcall_schools_in_session",
    "rollcall_rocksdb_live_data_bytes",
    "rollcall_rocksdb_block_cache_usage_bytes",
    "rollcall_rocksdb_pending_compaction_bytes",
    "rollcall_build_info",
];

/// `kind` of an activity record: the activity kind in snake_case.
pub fn activity_kind_label(k: ActivityKind) -> &'static str {
    const LABELS: [&str; 12] = [
        "login",
        "logout",
        "submission",
        "message",
        "live_join",
        "live_leave",
        "content_access",
        "recording_view",
        "two_way_contact",
        "check_in",
        "check_out",
        "offline_work_returned",
    ];
    LABELS.get(k.index() as usize).copied().unwrap_or("other")
}

/// `kind` of a consumed input record: the activity kind, `roster`,
/// `absence_report` or `calendar`; `unknown` for an activity record that
/// could not be read.
pub fn input_label(topic_kind: InputTopic, input: Option<&Input>) -> &'static str {
    match input {
        Some(Input::Activity(e)) => activity_kind_label(e.kind),
        Some(Input::Roster(_)) => "roster",
        Some(Input::Report(_)) => "absence_report",
        Some(Input::Calendar(_)) => "calendar",
        None => match topic_kind {
            InputTopic::Roster => "roster",
            InputTopic::Reports => "absence_report",
            InputTopic::Calendar => "calendar",
            InputTopic::Activity => "unknown",
        },
    }
}

fn scope_label(s: Scope) -> &'static str {
    match s {
        Scope::Day => "day",
        Scope::Section => "section",
        Scope::Week => "week",
    }
}

fn finality_label(f: Finality) -> &'static str {
    match f {
        Finality::Provisional => "provisional",
        Finality::Final => "final",
        Finality::Correction => "correction",
    }
}

fn outreach_label(k: OutreachKind) -> &'static str {
    match k {
        OutreachKind::TeacherFollowUp => "teacher_follow_up",
        OutreachKind::SocialWorker => "social_worker",
        OutreachKind::LowContact => "low_contact",
        OutreachKind::TruancyReferral => "truancy_referral",
        OutreachKind::ChronicAbsence => "chronic_absence",
        OutreachKind::FamilyOutreach => "family_outreach",
    }
}

/// The metric families of one process, and its readiness.
pub struct Metrics {
    registry: Registry,
    pub events_consumed: IntCounterVec,
    pub determinations: IntCounterVec,
    pub outreach: IntCounterVec,
    pub dlq: IntCounterVec,
    pub late_events: IntCounterVec,
    pub windows: IntCounterVec,
    pub event_to_output: Histogram,
    pub delivery_delay: Histogram,
    pub consumer_lag: IntGaugeVec,
    pub transaction_commit: Histogram,
    pub transactions: IntCounterVec,
    pub partitions_assigned: IntGauge,
    pub restore_records: IntCounter,
    pub restores_in_progress: IntGauge,
    pub open_windows: IntGaugeVec,
    pub schools_in_session: IntGauge,
    pub events_waiting: IntGauge,
    pub rocksdb_live_data: IntGaugeVec,
    pub rocksdb_block_cache: IntGaugeVec,
    pub rocksdb_pending_compaction: IntGaugeVec,
    pub build_info: IntGaugeVec,
    ready: AtomicBool,
    not_ready: Mutex<String>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("ready", &self.ready.load(Ordering::SeqCst)).finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric options");
    r.register(Box::new(c.clone())).expect("metric registered once");
    c
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric options");
    r.register(Box::new(g.clone())).expect("metric registered once");
    g
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::with_opts(Opts::new(name, help)).expect("valid metric options");
    r.register(Box::new(g.clone())).expect("metric registered once");
    g
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect("valid metric options");
    r.register(Box::new(h.clone())).expect("metric registered once");
    h
}

impl Metrics {
    /// A fresh registry with every family, the label sets known up front
    /// initialised to zero, and `rollcall_build_info{version}` = 1.
    pub fn new() -> Metrics {
        let r = Registry::new();
        let restore_records = IntCounter::with_opts(Opts::new(
            "rollcall_state_restore_records_total",
            "Changelog records applied to local state while restoring tasks.",
        ))
        .expect("valid metric options");
        r.register(Box::new(restore_records.clone())).expect("metric registered once");
        let m = Metrics {
            events_consumed: counter_vec(
                &r,
                "rollcall_events_consumed_total",
                "Input records consumed (keyed inputs: in committed transactions; calendars: when read).",
                &["topic", "kind"],
            ),
            determinations: counter_vec(
                &r,
                "rollcall_determinations_emitted_total",
                "Determination records emitted in committed transactions.",
                &["policy", "scope", "code", "finality"],
            ),
            outreach: counter_vec(
                &r,
                "rollcall_outreach_triggers_total",
                "Outreach triggers emitted in committed transactions.",
                &["policy", "kind"],
            ),
            dlq: counter_vec(
                &r,
                "rollcall_dlq_records_total",
                "Input records dead-lettered in committed transactions.",
                &["topic", "error_kind"],
            ),
            late_events: counter_vec(
                &r,
                "rollcall_late_events_total",
                "Late input: CORRECTION determinations emitted (correction) and records refused as TOO_LATE (too_late).",
                &["outcome"],
            ),
            windows: counter_vec(
                &r,
                "rollcall_windows_evaluated_total",
                "Day and week windows that input records touched, in committed batches: evaluated by their rule (evaluated), or skipped because nothing that arrived could change what they decided (skipped).",
                &["result"],
            ),
            event_to_output: histogram(
                &r,
                "rollcall_event_to_output_seconds",
                "From the newest input record of a batch (wall clock: its timestamp; replay clock: when it was received) to the commit of the transaction, once per output.",
                vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0],
            ),
            delivery_delay: histogram(
                &r,
                "rollcall_event_delivery_delay_seconds",
                "For activity events the gateway stamped with received_at: from when the event occurred to when the gateway took it (how late platforms deliver).",
                vec![1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14_400.0, 86_400.0, 259_200.0],
            ),
            consumer_lag: gauge_vec(
                &r,
                "rollcall_consumer_lag_records",
                "High watermark minus the task's position, per keyed input partition (librdkafka's cached watermark).",
                &["topic", "partition"],
            ),
            transaction_commit: histogram(
                &r,
                "rollcall_transaction_commit_seconds",
                "Duration of the Kafka transaction commit.",
                vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
            ),
            transactions: counter_vec(&r, "rollcall_transactions_total", "Transactions by outcome.", &["outcome"]),
            partitions_assigned: gauge(&r, "rollcall_partitions_assigned", "Partitions (tasks) this instance owns."),
            restore_records,
            restores_in_progress: gauge(&r, "rollcall_state_restores_in_progress", "Tasks restoring from the changelog now."),
            open_windows: gauge_vec(
                &r,
                "rollcall_open_windows",
                "Student day and week windows begun and not yet closed (from the close schedule and the enrolment index).",
                &["scope"],
            ),
            schools_in_session: gauge(&r, "rollcall_schools_in_session", "Schools whose calendar makes today an instructional day."),
            events_waiting: gauge(
                &r,
                "rollcall_events_waiting",
                "Events held until their student's roster record or their school's calendar arrives (refused as UNKNOWN_STUDENT or UNKNOWN_SCHOOL when their wait is over).",
            ),
            rocksdb_live_data: gauge_vec(
                &r,
                "rollcall_rocksdb_live_data_bytes",
                "RocksDB estimate-live-data-size, summed over the column families.",
                &["partition"],
            ),
            rocksdb_block_cache: gauge_vec(
                &r,
                "rollcall_rocksdb_block_cache_usage_bytes",
                "RocksDB block-cache-usage of the task's shared block cache.",
                &["partition"],
            ),
            rocksdb_pending_compaction: gauge_vec(
                &r,
                "rollcall_rocksdb_pending_compaction_bytes",
                "RocksDB estimate-pending-compaction-bytes, summed over the column families.",
                &["partition"],
            ),
            build_info: gauge_vec(&r, "rollcall_build_info", "Always 1; the version of the running build.", &["version"]),
            registry: r,
            ready: AtomicBool::new(false),
            not_ready: Mutex::new("starting".into()),
        };
        m.build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        for o in ["correction", "too_late"] {
            m.late_events.with_label_values(&[o]);
        }
        for o in ["evaluated", "skipped"] {
            m.windows.with_label_values(&[o]);
        }
        for o in ["committed", "aborted"] {
            m.transactions.with_label_values(&[o]);
        }
        for s in ["day", "week"] {
            m.open_windows.with_label_values(&[s]);
        }
        m
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The label sets that depend on the topic names.
    pub fn init_topics(&self, topics: &Topics) {
        for k in ActivityKind::ALL {
            self.events_consumed.with_label_values(&[&topics.activity, activity_kind_label(*k)]);
        }
        self.events_consumed.with_label_values(&[&topics.roster, "roster"]);
        self.events_consumed.with_label_values(&[&topics.reports, "absence_report"]);
        self.events_consumed.with_label_values(&[&topics.calendar, "calendar"]);
        for t in topics.keyed_inputs().into_iter().chain([topics.calendar.as_str()]) {
            for e in DeadLetterKind::ALL {
                self.dlq.with_label_values(&[t, e.as_str()]);
            }
        }
    }

    /// The outreach label sets of a policy in use.
    pub fn init_policy(&self, policy: &str) {
        for k in OutreachKind::ALL {
            self.outreach.with_label_values(&[policy, outreach_label(*k)]);
        }
    }

    /// The exposition of every family, Prometheus text format 0.0.4.
    pub fn render(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            buf = format!("# encoding failed: {e}\n").into_bytes();
        }
        buf
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    pub fn set_not_ready(&self, reason: &str) {
        if let Ok(mut g) = self.not_ready.lock() {
            *g = reason.to_string();
        }
        self.ready.store(false, Ordering::SeqCst);
    }

    /// Ok once the assignment is in and every assigned partition restored;
    /// otherwise why not.
    pub fn readiness(&self) -> Result<(), String> {
        if self.ready.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(self.not_ready.lock().map(|g| g.clone()).unwrap_or_else(|_| "not ready".into()))
        }
    }

    /// Counts a restore while it runs.
    pub fn restore_started(self: &Arc<Self>) -> RestoreGuard {
        self.restores_in_progress.inc();
        RestoreGuard(self.clone())
    }
}

/// Lowers `rollcall_state_restores_in_progress` when dropped.
pub struct RestoreGuard(Arc<Metrics>);

impl Drop for RestoreGuard {
    fn drop(&mut self) {
        self.0.restores_in_progress.dec();
    }
}

/// What one batch will add to the counters if its transaction commits.
#[derive(Debug, Default)]
struct Batch {
    consumed: Vec<(String, &'static str, u64)>,
    determinations: Vec<(String, &'static str, String, &'static str, u64)>,
    outreach: Vec<(String, &'static str, u64)>,
    dead: Vec<((String, &'static str), u64)>,
    corrections: u64,
    too_late: u64,
    windows_evaluated: u64,
    windows_skipped: u64,
    outputs: u64,
    newest_input_ms: Option<i64>,
    delivery_delays: Vec<f64>,
}

fn bump<K: PartialEq>(v: &mut Vec<(K, u64)>, k: K) {
    match v.iter_mut().find(|(x, _)| *x == k) {
        Some((_, n)) => *n += 1,
        None => v.push((k, 1)),
    }
}

/// A processor's side of the metrics: the shared families, the counts of
/// the batch in flight (added on commit, dropped on abort), and the state of
/// the periodic gauge refresh.
#[derive(Debug)]
pub struct Recorder {
    pub shared: Arc<Metrics>,
    batch: Batch,
    /// Replay clock: latency is measured from when a record was received.
    replay: bool,
    pub(crate) last_refresh: Option<Instant>,
    /// Partitions that have per-partition series, to drop them when the partition goes.
    pub(crate) partitions: BTreeSet<i32>,
    pub(crate) policies: BTreeSet<String>,
}

impl Recorder {
    pub fn new(shared: Arc<Metrics>, replay: bool) -> Recorder {
        Recorder {
            shared,
            batch: Batch::default(),
            replay,
            last_refresh: None,
            partitions: BTreeSet::new(),
            policies: BTreeSet::new(),
        }
    }

    /// Forgets the counts of a batch that will not commit.
    pub fn begin_batch(&mut self) {
        self.batch = Batch::default();
    }

    /// One input record applied in this batch. `timestamp_ms` is the record's
    /// Kafka timestamp, `received_ms` when the processor received it.
    pub fn consumed(&mut self, topic: &str, kind: &'static str, timestamp_ms: Option<i64>, received_ms: i64) {
        match self.batch.consumed.iter_mut().find(|(t, k, _)| t == topic && *k == kind) {
            Some((_, _, n)) => *n += 1,
            None => self.batch.consumed.push((topic.to_string(), kind, 1)),
        }
        let start = if self.replay { received_ms } else { timestamp_ms.unwrap_or(received_ms) };
        self.batch.newest_input_ms = Some(self.batch.newest_input_ms.map_or(start, |n| n.max(start)));
    }

    /// An activity event of this batch that the gateway took `secs` after it occurred.
    pub fn delivered_after(&mut self, secs: f64) {
        self.batch.delivery_delays.push(secs);
    }

    /// A calendar record read (outside the transactions): counted at once.
    pub fn calendar_consumed(&self, topic: &str) {
        self.shared.events_consumed.with_label_values(&[topic, "calendar"]).inc();
    }

    pub fn determination(&mut self, d: &Determination) {
        let (scope, fin) = (scope_label(d.scope), finality_label(d.finality));
        match self
            .batch
            .determinations
            .iter_mut()
            .find(|(p, s, c, f, _)| *p == d.policy && *s == scope && *c == d.code && *f == fin)
        {
            Some((.., n)) => *n += 1,
            None => self.batch.determinations.push((d.policy.clone(), scope, d.code.clone(), fin, 1)),
        }
        if d.finality == Finality::Correction {
            self.batch.corrections += 1;
        }
        self.batch.outputs += 1;
    }

    pub fn outreach(&mut self, t: &OutreachTrigger) {
        let kind = outreach_label(t.kind);
        match self.batch.outreach.iter_mut().find(|(p, k, _)| *p == t.policy && *k == kind) {
            Some((.., n)) => *n += 1,
            None => self.batch.outreach.push((t.policy.clone(), kind, 1)),
        }
        self.batch.outputs += 1;
    }

    /// A dead letter of `topic` (the input it came from).
    pub fn dead_letter(&mut self, topic: &str, error_kind: DeadLetterKind) {
        bump(&mut self.batch.dead, (topic.to_string(), error_kind.as_str()));
        if error_kind == DeadLetterKind::TooLate {
            self.batch.too_late += 1;
        }
    }

    /// Touched windows a task's part of the batch evaluated and skipped.
    pub fn windows(&mut self, evaluated: u64, skipped: u64) {
        self.batch.windows_evaluated += evaluated;
        self.batch.windows_skipped += skipped;
    }

    /// The batch's transaction committed after `commit` in the commit call.
    pub fn committed(&mut self, commit: Duration) {
        let b = std::mem::take(&mut self.batch);
        let m = &self.shared;
        for (t, k, n) in &b.consumed {
            m.events_consumed.with_label_values(&[t.as_str(), k]).inc_by(*n);
        }
        for (p, s, c, f, n) in &b.determinations {
            m.determinations.with_label_values(&[p.as_str(), s, c.as_str(), f]).inc_by(*n);
        }
        for (p, k, n) in &b.outreach {
            m.outreach.with_label_values(&[p.as_str(), k]).inc_by(*n);
        }
        for ((t, e), n) in &b.dead {
            m.dlq.with_label_values(&[t.as_str(), e]).inc_by(*n);
        }
        if b.corrections > 0 {
            m.late_events.with_label_values(&["correction"]).inc_by(b.corrections);
        }
        if b.too_late > 0 {
            m.late_events.with_label_values(&["too_late"]).inc_by(b.too_late);
        }
        m.windows.with_label_values(&["evaluated"]).inc_by(b.windows_evaluated);
        m.windows.with_label_values(&["skipped"]).inc_by(b.windows_skipped);
        for secs in &b.delivery_delays {
            m.delivery_delay.observe(*secs);
        }
        m.transactions.with_label_values(&["committed"]).inc();
        m.transaction_commit.observe(commit.as_secs_f64());
        if let Some(start) = b.newest_input_ms {
            let now = chrono::Utc::now().timestamp_millis();
            let secs = (now - start).max(0) as f64 / 1000.0;
            for _ in 0..b.outputs {
                m.event_to_output.observe(secs);
            }
        }
    }

    /// A transaction was aborted: its batch is not counted.
    pub fn aborted(&mut self) {
        self.batch = Batch::default();
        self.shared.transactions.with_label_values(&["aborted"]).inc();
    }

    /// A partition's task is gone: its per-partition series go too.
    pub(crate) fn forget_partition(&mut self, topics: &Topics, partition: i32) {
        let p = partition.to_string();
        let m = &self.shared;
        for t in topics.keyed_inputs() {
            let _ = m.consumer_lag.remove_label_values(&[t, &p]);
        }
        let _ = m.rocksdb_live_data.remove_label_values(&[&p]);
        let _ = m.rocksdb_block_cache.remove_label_values(&[&p]);
        let _ = m.rocksdb_pending_compaction.remove_label_values(&[&p]);
        self.partitions.remove(&partition);
    }
}

impl rollcall_http::Observed for Metrics {
    fn render(&self) -> Vec<u8> {
        Metrics::render(self)
    }
    fn readiness(&self) -> Result<(), String> {
        Metrics::readiness(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollcall_engine::MemStore;
    use rollcall_scenario::Scenario;
    use std::collections::HashSet;
    use std::path::Path;

    fn repo() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    /// Every label value of every series in the registry.
    fn label_values(m: &Metrics) -> Vec<(String, String, String)> {
        let mut v = Vec::new();
        for f in m.registry().gather() {
            for s in f.get_metric() {
                for l in s.get_label() {
                    v.push((f.name().to_string(), l.name().to_string(), l.value().to_string()));
                }
            }
        }
        v
    }

    #[test]
    fn activity_labels_are_the_kinds_in_snake_case() {
        for k in ActivityKind::ALL {
            assert_eq!(activity_kind_label(*k), k.as_str().to_ascii_lowercase());
        }
    }

    /// Real scenarios' outputs through the recording functions: every family
    /// is exported and no label value is an id of a student, staff member or section.
    #[test]
    fn no_ids_in_labels_and_every_family_exported() {
        let files = [
            "tests/scenarios/cross-05-late-event-correction-mmsd.json",
            "tests/scenarios/cross-06-late-event-beyond-correction-horizon.json",
            "tests/scenarios/cross-11-chronic-absence-mmsd.json",
            "tests/scenarios/instruction-partners-03-teacher-follow-up-as-soon-as-block-ends.json",
            "tests/scenarios/cms-05-high-school-periods-async-only-section.json",
        ];
        let metrics = Arc::new(Metrics::new());
        let topics = Topics::with_prefix("");
        metrics.init_topics(&topics);
        let mut rec = Recorder::new(metrics.clone(), false);
        let mut ids = HashSet::new();
        let (mut corrections, mut too_late, mut outreach) = (0, 0, 0);
        let (mut evaluated, mut skipped) = (0, 0);
        for f in files {
            let s = Scenario::load(&repo().join(f)).unwrap();
            ids.extend(s.roster.iter().flat_map(|r| r.identifiers().map(str::to_string)));
            rec.begin_batch();
            for a in &s.events {
                ids.insert(a.event.student_id.clone());
                ids.extend(a.event.section_id.clone());
                ids.extend(a.event.staff_id.clone());
                let input = Input::Activity(a.event.clone());
                let label = input_label(InputTopic::Activity, Some(&input));
                rec.consumed(&topics.activity, label, Some(a.arrives_at.timestamp_millis()), 0);
            }
            for r in &s.roster {
                rec.consumed(&topics.roster, input_label(InputTopic::Roster, Some(&Input::Roster(r.clone()))), None, 0);
            }
            let (out, engine) = rollcall_scenario::run(&s, MemStore::default()).unwrap();
            let st = engine.stats();
            rec.windows(st.windows_evaluated, st.windows_skipped);
            (evaluated, skipped) = (evaluated + st.windows_evaluated, skipped + st.windows_skipped);
            for d in &out.determinations {
                corrections += (d.finality == Finality::Correction) as u32;
                rec.determination(d);
            }
            for t in &out.outreach {
                outreach += 1;
                ids.extend(t.staff_id.clone());
                rec.outreach(t);
            }
            for d in &out.dead_letters {
                too_late += (d.error_kind == DeadLetterKind::TooLate) as u32;
                rec.dead_letter(&topics.activity, d.error_kind);
            }
            rec.committed(Duration::from_millis(3));
            rec.calendar_consumed(&topics.calendar);
        }
        assert!(corrections > 0 && too_late > 0 && outreach > 0, "the scenarios should exercise every path");
        rec.aborted();
        let _g = metrics.restore_started();
        metrics.restore_records.inc_by(5);
        // The lag needs a consumer's watermarks: tests/operations.rs checks
        // its value against a real broker. Here only its labels are checked.
        metrics.consumer_lag.with_label_values(&[&topics.activity, "0"]).set(3);
        // The state gauges as the processor sets them, from an engine on RocksDB.
        let dir = tempfile::tempdir().unwrap();
        let store = rollcall_store::RocksStore::open(dir.path(), &rollcall_store::StoreConfig::default()).unwrap();
        let s = Scenario::load(&repo().join(files[2])).unwrap();
        let (_, engine) = rollcall_scenario::run(&s, store).unwrap();
        crate::processor::metrics_glue::set_state_gauges(&metrics, [(0, &engine)].into_iter(), Some(s.now));
        metrics.init_policy("mmsd");

        let names: HashSet<String> = metrics.registry().gather().iter().map(|f| f.name().to_string()).collect();
        for n in METRIC_NAMES {
            assert!(names.contains(*n), "{n} missing from the registry");
        }
        let values = label_values(&metrics);
        assert!(!values.is_empty());
        for (family, label, value) in &values {
            assert!(!ids.contains(value), "{family}{{{label}=\"{value}\"}} is an id");
        }
        let late: HashSet<&str> =
            values.iter().filter(|(f, ..)| f == "rollcall_late_events_total").map(|(.., v)| v.as_str()).collect();
        assert_eq!(late, HashSet::from(["correction", "too_late"]));
        assert_eq!(metrics.late_events.with_label_values(&["correction"]).get(), corrections as u64);
        assert_eq!(metrics.late_events.with_label_values(&["too_late"]).get(), too_late as u64);
        assert!(evaluated > 0, "the scenarios evaluate windows");
        assert_eq!(metrics.windows.with_label_values(&["evaluated"]).get(), evaluated);
        assert_eq!(metrics.windows.with_label_values(&["skipped"]).get(), skipped);
        assert!(metrics.event_to_output.get_sample_count() > 0);
        let text = String::from_utf8(metrics.render()).unwrap();
        assert!(text.contains("rollcall_build_info{version=\""), "{text}");
        assert!(text.contains("rollcall_transactions_total{outcome=\"aborted\"} 1"), "{text}");
    }

    #[test]
    fn an_aborted_batch_is_not_counted() {
        let m = Arc::new(Metrics::new());
        let mut r = Recorder::new(m.clone(), true);
        r.consumed("a", "login", Some(0), 0);
        r.delivered_after(90.0);
        r.windows(5, 7);
        r.aborted();
        r.begin_batch();
        r.consumed("a", "login", Some(0), 0);
        r.consumed("a", "login", Some(0), 0);
        r.delivered_after(4.0);
        r.committed(Duration::from_millis(1));
        assert_eq!(m.events_consumed.with_label_values(&["a", "login"]).get(), 2);
        assert_eq!((m.delivery_delay.get_sample_count(), m.delivery_delay.get_sample_sum()), (1, 4.0));
        assert_eq!(m.transactions.with_label_values(&["committed"]).get(), 1);
        assert_eq!(m.transactions.with_label_values(&["aborted"]).get(), 1);
        assert_eq!(m.windows.with_label_values(&["evaluated"]).get(), 0, "the aborted batch's windows");
    }

    /// The processor's registry and readiness behind the shared endpoint
    /// (whose own tests cover the HTTP side).
    #[test]
    fn the_endpoint_shows_this_registry_and_readiness() {
        use rollcall_http::Observed;
        let m = Arc::new(Metrics::new());
        m.set_not_ready("restoring partition 3");
        assert_eq!(Observed::readiness(&*m), Err("restoring partition 3".to_string()));
        m.set_ready();
        assert_eq!(Observed::readiness(&*m), Ok(()));
        let text = String::from_utf8(Observed::render(&*m)).unwrap();
        assert!(text.contains("# TYPE rollcall_transaction_commit_seconds histogram"), "{text}");
    }
}
