//! The gauges the loop keeps current (counters are counted where things
//! happen): readiness after an assignment, lag after every batch, and the
//! costlier RocksDB, window and school figures at most every 5 seconds.

use std::time::{Duration, Instant};

use tracing::debug;

use chrono::{DateTime, Utc};
use rollcall_engine::Engine;
use rollcall_store::RocksStore;

use super::fetch::cached_high_watermark;
use super::Processor;
use crate::config::ClockMode;
use crate::metrics::Metrics;

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
        let at = match self.cfg.clock {
            ClockMode::Wall => Some(self.cfg.wall_now()),
            ClockMode::Replay => self.tasks.values().filter_map(|t| t.engine.clock()).max(),
        };
        set_state_gauges(&m, self.tasks.iter().map(|(p, t)| (*p, &t.engine)), at);
        self.metrics.partitions.extend(self.tasks.keys().copied());
        for c in self.known_calendars.values() {
            if self.metrics.policies.insert(c.policy.clone()) {
                m.init_policy(&c.policy);
            }
        }
    }
}

/// The gauges read from the tasks' state: RocksDB's figures per partition,
/// the open day and week windows, the events waiting for their roster
/// record or calendar, and the schools in session at `at` (the clock).
pub(crate) fn set_state_gauges<'a>(
    m: &Metrics,
    engines: impl Iterator<Item = (i32, &'a Engine<RocksStore>)>,
    at: Option<DateTime<Utc>>,
) {
    let mut open = rollcall_engine::OpenWindows::default();
    let mut waiting = 0;
    let mut first = None;
    for (p, engine) in engines {
        match engine.parked() {
            Ok(n) => waiting += n,
            Err(e) => debug!(partition = p, error = %e, "waiting events not counted"),
        }
        let part = p.to_string();
        let st = engine.store().rocks_stats();
        m.rocksdb_live_data.with_label_values(&[&part]).set(st.live_data_bytes as i64);
        m.rocksdb_block_cache.with_label_values(&[&part]).set(st.block_cache_usage_bytes as i64);
        m.rocksdb_pending_compaction.with_label_values(&[&part]).set(st.pending_compaction_bytes as i64);
        match engine.open_windows() {
            Ok(w) => {
                open.day += w.day;
                open.week += w.week;
            }
            Err(e) => debug!(partition = p, error = %e, "open windows not counted"),
        }
        first = first.or(Some(engine));
    }
    m.open_windows.with_label_values(&["day"]).set(open.day as i64);
    m.open_windows.with_label_values(&["week"]).set(open.week as i64);
    m.events_waiting.set(waiting as i64);
    // Every task knows every calendar: one answers for all.
    if let (Some(at), Some(engine)) = (at, first) {
        m.schools_in_session.set(engine.schools_in_session(at) as i64);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use rollcall_store::StoreConfig;

    use super::*;

    /// The gauges as the processor sets them, from engines that ran real
    /// scenarios on RocksDB, against what the scenarios' calendars and
    /// rosters say.
    #[test]
    fn state_gauges_follow_the_engines() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        // 23:59 CDT Tuesday: Tuesday is an instructional day of the one school,
        // and each of the three students' Tuesday and week windows are open.
        let s = rollcall_scenario::Scenario::load(&repo.join("tests/scenarios/mmsd-06-final-at-end-of-local-day.json")).unwrap();
        assert_eq!(s.roster.len(), 3);
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path(), &StoreConfig::default()).unwrap();
        let (_, engine) = rollcall_scenario::run(&s, store).unwrap();
        let m = Metrics::new();
        set_state_gauges(&m, [(4, &engine)].into_iter(), Some(s.now));
        assert_eq!(m.schools_in_session.get(), 1, "Tuesday is on the calendar");
        assert_eq!(m.open_windows.with_label_values(&["day"]).get(), 3, "Tuesday's window of each student");
        assert_eq!(m.open_windows.with_label_values(&["week"]).get(), 3, "the week of each student");
        assert_eq!(m.events_waiting.get(), 0, "every event's student and school are known");
        let st = engine.store().rocks_stats();
        assert_eq!(m.rocksdb_live_data.with_label_values(&["4"]).get(), st.live_data_bytes as i64);
        assert_eq!(m.rocksdb_block_cache.with_label_values(&["4"]).get(), st.block_cache_usage_bytes as i64);
        // A week later nothing is in session, and the clock says so.
        set_state_gauges(&m, [(4, &engine)].into_iter(), Some(s.now + chrono::Duration::days(7)));
        assert_eq!(m.schools_in_session.get(), 0, "no day of the calendar a week later");
        // No tasks: the windows and the waiting are zero, not left as they were.
        set_state_gauges(&m, std::iter::empty(), Some(s.now));
        assert_eq!(m.open_windows.with_label_values(&["day"]).get(), 0);
    }
}
