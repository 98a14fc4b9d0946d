//! The gauges the loop keeps current (counters are counted where things
//! happen): readiness after an assignment, lag after every batch, and the
//! costlier RocksDB, window and school figures at most every 5 seconds.

use std::time::{Duration, Instant};

use tracing::debug;

use super::fetch::cached_high_watermark;
use super::Processor;
use crate::config::ClockMode;

impl Processor {
    /// Every assigned partition has its task, restored: ready.
    pub(super) fn after_assignment(&mut self) {
        self.metrics.shared.partitions_assigned.set(self.tasks.len() as i64);
        self.metrics.shared.set_ready();
        self.metrics.last_refresh = None;
    }

    /// The tasks' input positions for a transaction's span: `p<partition>=`
    /// roster/reports/activity next offsets.
    pub(super) fn offsets_field(&self) -> String {
        let mut out = String::new();
        for (p, task) in &self.tasks {
            let pos: Vec<String> = self
                .topics
                .keyed_inputs()
                .iter()
                .map(|t| task.positions.get(*t).map_or("-".to_string(), |o| o.to_string()))
                .collect();
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&format!("p{p}={}", pos.join("/")));
        }
        out
    }

    /// Lag after every batch (from librdkafka's cached watermarks, no
    /// request); RocksDB, windows and schools at most every 5 seconds.
    pub(super) fn refresh_metrics(&mut self) {
        let m = self.metrics.shared.clone();
        m.partitions_assigned.set(self.tasks.len() as i64);
        for (p, task) in &self.tasks {
            let part = p.to_string();
            for topic in self.topics.keyed_inputs() {
                if let Some(high) = cached_high_watermark(&self.consumer, topic, *p) {
                    let pos = task.positions.get(topic).copied().unwrap_or(0);
                    m.consumer_lag.with_label_values(&[topic, &part]).set((high - pos).max(0));
                }
            }
        }
        if self.metrics.last_refresh.is_some_and(|t| t.elapsed() < Duration::from_secs(5)) {
            return;
        }
        self.metrics.last_refresh = Some(Instant::now());
        let gone: Vec<i32> = self.metrics.partitions.iter().filter(|p| !self.tasks.contains_key(p)).copied().collect();
        for p in gone {
            self.metrics.forget_partition(&self.topics, p);
        }
        let mut open = rollcall_engine::OpenWindows::default();
        let mut waiting = 0;
        for (p, task) in &self.tasks {
            match task.engine.parked() {
                Ok(n) => waiting += n,
                Err(e) => debug!(partition = p, error = %e, "waiting events not counted"),
            }
            let part = p.to_string();
            let st = task.engine.store().rocks_stats();
            m.rocksdb_live_data.with_label_values(&[&part]).set(st.live_data_bytes as i64);
            m.rocksdb_block_cache.with_label_values(&[&part]).set(st.block_cache_usage_bytes as i64);
            m.rocksdb_pending_compaction.with_label_values(&[&part]).set(st.pending_compaction_bytes as i64);
            match task.engine.open_windows() {
                Ok(w) => {
                    open.day += w.day;
                    open.week += w.week;
                }
                Err(e) => debug!(partition = p, error = %e, "open windows not counted"),
            }
            self.metrics.partitions.insert(*p);
        }
        m.open_windows.with_label_values(&["day"]).set(open.day as i64);
        m.open_windows.with_label_values(&["week"]).set(open.week as i64);
        m.events_waiting.set(waiting as i64);
        let at = match self.cfg.clock {
            ClockMode::Wall => Some(self.cfg.wall_now()),
            ClockMode::Replay => self.tasks.values().filter_map(|t| t.engine.clock()).max(),
        };
        if let (Some(at), Some(task)) = (at, self.tasks.values().next()) {
            m.schools_in_session.set(task.engine.schools_in_session(at) as i64);
        }
        for c in self.known_calendars.values() {
            if self.metrics.policies.insert(c.policy.clone()) {
                m.init_policy(&c.policy);
            }
        }
    }
}
