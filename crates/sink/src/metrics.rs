//! The sink's Prometheus metrics, on the processor's conventions
//! (`crates/kafka/src/metrics.rs`): base units, `_total` counters,
//! `_seconds` histograms, and labels that are table names, topics, error
//! kinds, outcomes and partition numbers — never a student, staff or
//! section id. Rows are counted when their transaction commits.
//!
//! Served with `/healthz` and `/readyz` by the endpoint every rollcall
//! process has (`rollcall-http`), like `rollcall run`'s.

use std::sync::Mutex;

use prometheus::{Encoder, Histogram, HistogramOpts, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::db::Written;

/// Every metric family the sink exports.
pub const METRIC_NAMES: &[&str] = &[
    "rollcall_sink_records_consumed_total",
    "rollcall_sink_rows_written_total",
    "rollcall_sink_bad_records_total",
    "rollcall_sink_batches_total",
    "rollcall_sink_batch_seconds",
    "rollcall_sink_lag_records",
];

/// The error kinds of records the sink cannot use (the processor's names).
pub const BAD_RECORD_KINDS: &[&str] =
    &["MISSING_VALUE", "NOT_AVRO", "WRONG_SCHEMA", "UNKNOWN_ENUM", "SCHEMA_INVALID", "INVALID_RECORD"];

/// The tables whose rows are counted, the `table` label's values.
pub const TABLES: &[&str] = &["determinations", "determination_versions", "outreach_triggers", "sink_dead_letters"];

pub struct SinkMetrics {
    registry: Registry,
    pub records_consumed: IntCounterVec,
    pub rows_written: IntCounterVec,
    pub bad_records: IntCounterVec,
    pub batches: IntCounterVec,
    pub batch_seconds: Histogram,
    pub lag: IntGaugeVec,
    ready: Mutex<Result<(), String>>,
}

impl std::fmt::Debug for SinkMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SinkMetrics")
    }
}

impl Default for SinkMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl SinkMetrics {
    pub fn new() -> SinkMetrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
            registry.register(Box::new(c.clone())).expect("metric registered once");
            c
        };
        let records_consumed =
            counter("rollcall_sink_records_consumed_total", "Kafka records in committed batches, by topic.", &["topic"]);
        let rows_written = counter(
            "rollcall_sink_rows_written_total",
            "Rows inserted or replaced by committed batches, by table (an older version that does not replace a row is not counted).",
            &["table"],
        );
        let bad_records = counter(
            "rollcall_sink_bad_records_total",
            "Records that could not be used (kept in sink_dead_letters), by topic and error kind.",
            &["topic", "error_kind"],
        );
        let batches = counter("rollcall_sink_batches_total", "Batch transactions, by outcome (committed, failed).", &["outcome"]);
        let batch_seconds = Histogram::with_opts(
            HistogramOpts::new("rollcall_sink_batch_seconds", "Time to write and commit one batch.")
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
        )
        .expect("valid metric definition");
        registry.register(Box::new(batch_seconds.clone())).expect("metric registered once");
        let lag = IntGaugeVec::new(
            Opts::new("rollcall_sink_lag_records", "Records between the sink's position and the end of the partition."),
            &["topic", "partition"],
        )
        .expect("valid metric definition");
        registry.register(Box::new(lag.clone())).expect("metric registered once");
        for t in TABLES {
            rows_written.with_label_values(&[t]);
        }
        for o in ["committed", "failed"] {
            batches.with_label_values(&[o]);
        }
        SinkMetrics {
            registry,
            records_consumed,
            rows_written,
            bad_records,
            batches,
            batch_seconds,
            lag,
            ready: Mutex::new(Err("starting".into())),
        }
    }

    /// Makes every series of the topics visible at zero before anything is
    /// read, so that rates and alerts work from the first scrape.
    pub fn init_topics(&self, topics: &[&str]) {
        for t in topics {
            self.records_consumed.with_label_values(&[t]);
            for kind in BAD_RECORD_KINDS {
                self.bad_records.with_label_values(&[t, kind]);
            }
        }
    }

    pub fn committed(&self, w: &Written, by_topic: &[(String, u64)], seconds: f64) {
        for (table, n) in [
            ("determinations", w.determinations),
            ("determination_versions", w.determination_versions),
            ("outreach_triggers", w.outreach_triggers),
            ("sink_dead_letters", w.sink_dead_letters),
        ] {
            self.rows_written.with_label_values(&[table]).inc_by(n);
        }
        for (topic, n) in by_topic {
            self.records_consumed.with_label_values(&[topic]).inc_by(*n);
        }
        self.batches.with_label_values(&["committed"]).inc();
        self.batch_seconds.observe(seconds);
    }

    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Encoding into a Vec fails only on an invalid family, which new() rules out.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }

    pub fn set_ready(&self, r: Result<(), String>) {
        if let Ok(mut g) = self.ready.lock() {
            *g = r;
        }
    }

    fn readiness(&self) -> Result<(), String> {
        self.ready.lock().map(|g| g.clone()).unwrap_or_else(|_| Err("poisoned".into()))
    }
}

/// Ready once partitions are assigned at the stored positions.
impl rollcall_http::Observed for SinkMetrics {
    fn render(&self) -> Vec<u8> {
        SinkMetrics::render(self)
    }
    fn readiness(&self) -> Result<(), String> {
        SinkMetrics::readiness(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_exported_without_ids() {
        let m = SinkMetrics::new();
        m.init_topics(&["t"]);
        m.committed(&Written { determinations: 2, determination_versions: 3, ..Default::default() }, &[("t".into(), 3)], 0.01);
        m.bad_records.with_label_values(&["t", "NOT_AVRO"]).inc();
        m.lag.with_label_values(&["t", "0"]).set(5);
        let text = String::from_utf8(m.render()).unwrap();
        for name in METRIC_NAMES {
            assert!(text.contains(&format!("# TYPE {name}")), "{name} missing:\n{text}");
        }
        assert!(text.contains("rollcall_sink_rows_written_total{table=\"determination_versions\"} 3"), "{text}");
    }
}
