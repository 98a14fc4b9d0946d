//! The gateway's Prometheus metrics, on the processor's conventions: base
//! units, `_total` counters, `_seconds` histograms, labels that are routes,
//! statuses, formats and kinds — never a person's or a class's id.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

use crate::identities::Identities;

pub struct GatewayMetrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub events: IntCounterVec,
    pub ignored: IntCounterVec,
    pub latency: HistogramVec,
    /// Events the resolver holds, waiting for an identity.
    pub held: IntGauge,
    pub released: IntCounter,
    pub dead_lettered: IntCounterVec,
    pub identities_unusable: IntCounter,
    ready: AtomicBool,
    identities: OnceLock<Arc<Identities>>,
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        GatewayMetrics::new()
    }
}

impl GatewayMetrics {
    pub fn new() -> GatewayMetrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("rollcall_gateway_requests_total", "HTTP requests answered, by route and status."),
            &["route", "status"],
        )
        .unwrap_or_else(|e| panic!("metric definition: {e}"));
        let events = IntCounterVec::new(
            Opts::new("rollcall_gateway_events_total", "Events acknowledged by Kafka, by format and kind."),
            &["format", "kind"],
        )
        .unwrap_or_else(|e| panic!("metric definition: {e}"));
        let ignored = IntCounterVec::new(
            Opts::new("rollcall_gateway_ignored_total", "Platform events with no attendance meaning, accepted and not produced."),
            &["format"],
        )
        .unwrap_or_else(|e| panic!("metric definition: {e}"));
        let latency = HistogramVec::new(
            HistogramOpts::new("rollcall_gateway_request_seconds", "Time from a request's arrival to its answer.")
                .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0]),
            &["route"],
        )
        .unwrap_or_else(|e| panic!("metric definition: {e}"));
        let held = IntGauge::new(
            "rollcall_gateway_identities_waiting",
            "Events held by this gateway's resolver until the identity mapping names everyone in them.",
        )
        .unwrap_or_else(|e| panic!("metric definition: {e}"));
        let released = IntCounter::new(
            "rollcall_gateway_released_total",
            "Events that waited for an identity and were produced once the mapping had it.",
        )
        .unwrap_or_else(|e| panic!("metric definition: {e}"));
        let dead_lettered = IntCounterVec::new(
            Opts::new("rollcall_gateway_dead_letters_total", "Records of the waiting topic dead-lettered, by error kind."),
            &["error_kind"],
        )
        .unwrap_or_else(|e| panic!("metric definition: {e}"));
        let identities_unusable = IntCounter::new(
            "rollcall_gateway_identities_unusable_total",
            "Records of the identities topic that are not IdentityRecords (or tombstones with an unreadable key), passed over.",
        )
        .unwrap_or_else(|e| panic!("metric definition: {e}"));
        for c in [&requests, &events, &ignored, &dead_lettered] {
            registry.register(Box::new(c.clone())).unwrap_or_else(|e| panic!("metric registration: {e}"));
        }
        registry.register(Box::new(latency.clone())).unwrap_or_else(|e| panic!("metric registration: {e}"));
        registry.register(Box::new(held.clone())).unwrap_or_else(|e| panic!("metric registration: {e}"));
        for c in [&released, &identities_unusable] {
            registry.register(Box::new(c.clone())).unwrap_or_else(|e| panic!("metric registration: {e}"));
        }
        GatewayMetrics {
            registry,
            requests,
            events,
            ignored,
            latency,
            held,
            released,
            dead_lettered,
            identities_unusable,
            ready: AtomicBool::new(true),
            identities: OnceLock::new(),
        }
    }

    /// Readiness also waits for the identities to be read to their end.
    pub fn watch_identities(&self, ids: Arc<Identities>) {
        let _ = self.identities.set(ids);
    }

    /// Not ready while Kafka does not acknowledge.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }
}

impl rollcall_http::Observed for GatewayMetrics {
    fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }

    fn readiness(&self) -> Result<(), String> {
        if !self.ready.load(Ordering::SeqCst) {
            return Err("Kafka did not acknowledge the last request's events".into());
        }
        match self.identities.get() {
            Some(ids) if !ids.is_caught_up() => Err("the identities topic is not read to its end yet".into()),
            _ => Ok(()),
        }
    }
}
