//! The processor's loop: poll, apply, commit, until stopped or idle; and
//! the reconnect around it, which starts again from the committed state
//! when the Kafka clients fail instead of stopping the process.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError as RdError;

use rdkafka::consumer::Consumer;
use rdkafka::producer::Producer;
use tracing::{info, warn};

use super::clients::connect;
use super::{rd, Processor, RunStats};
use crate::config::ClockMode;
use crate::KafkaError;

impl Processor {
    /// Runs until stopped, or, with `exit_when_idle`, until every input is
    /// consumed. When the Kafka clients fail (a broker that went away and
    /// came back with the group or the transaction forgotten, a fenced or
    /// fatal client), it starts again as after a crash: fresh clients, tasks
    /// reopened from their committed state. It waits rather than stops.
    pub fn run(&mut self) -> Result<RunStats, KafkaError> {
        let mut backoff = Duration::from_secs(1);
        loop {
            match self.run_once() {
                Ok(()) => return Ok(self.stats.clone()),
                Err(e) if e.is_reconnectable() && !self.stop.load(Ordering::SeqCst) => {
                    let error = format!("{e:#}");
                    warn!(%error, retry_in_s = backoff.as_secs(), "Kafka clients failed; reconnecting from the committed state");
                    self.stats.reconnects += 1;
                    self.metrics.shared.set_not_ready("reconnecting to Kafka");
                    self.tasks.clear();
                    self.in_txn = false;
                    self.calendars_at_end = false;
                    // The new calendar reader reads every calendar again.
                    self.calendar_dead.clear();
                    if !self.pause(backoff) {
                        return Ok(self.stats.clone());
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    let (consumer, producer, calendars) = connect(&self.cfg)?;
                    self.consumer = consumer;
                    self.producer = producer;
                    self.calendars = calendars;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sleeps for `d` unless asked to stop first; false when stopped.
    fn pause(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        while Instant::now() < until {
            if self.stop.load(Ordering::SeqCst) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50).min(until.saturating_duration_since(Instant::now())));
        }
        !self.stop.load(Ordering::SeqCst)
    }

    /// Registers the transactional id with the coordinator, in short calls
    /// so that a stop is honoured at once (a timed-out call resumes where it
    /// was). False when stopped.
    fn init_transactions(&self) -> Result<bool, KafkaError> {
        let started = Instant::now();
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return Ok(false);
            }
            match self.producer.init_transactions(Duration::from_secs(1)) {
                Ok(()) => return Ok(true),
                Err(RdError::Transaction(e)) if e.is_retriable() && started.elapsed() < Duration::from_secs(30) => {}
                Err(e) => return Err(rd("init transactions", e)),
            }
        }
    }

    fn run_once(&mut self) -> Result<(), KafkaError> {
        let t = Duration::from_secs(30);
        if !self.init_transactions()? {
            return Ok(());
        }
        self.start_calendar_feed()?;
        self.consumer.subscribe(&self.topics.keyed_inputs()).map_err(|e| rd("subscribe", e))?;
        self.metrics.shared.set_not_ready("waiting for the partition assignment");
        info!(group = %self.cfg.group, transactional_id = %self.cfg.transactional_id(), "processor started");
        let mut idle_rounds = 0u32;
        while !self.stop.load(Ordering::SeqCst) {
            for (what, client) in
                [("consumer", self.consumer.client().fatal_error()), ("producer", self.producer.client().fatal_error())]
            {
                if let Some((code, reason)) = client {
                    return Err(KafkaError::kafka_step(format!("{what} failed fatally: {code:?}: {reason}")));
                }
            }
            self.poll_calendars()?;
            let fetched = self.fetch_batch()?;
            if fetched > 0 {
                self.catch_up_calendars()?;
            }
            if self.consumer.context().rebalanced.swap(false, Ordering::SeqCst) {
                self.on_rebalance()?;
                continue;
            }
            // End-of-partition events queue behind everything prefetched
            // (the whole of a short topic's neighbours), so the ends are
            // read from positions and the cached watermarks after every
            // fetch: the replay horizon must not wait for those events.
            self.refresh_ends()?;
            let idle = fetched == 0 && self.all_at_end();
            // Replay: once the inputs are consumed, every task (also one taken
            // over later) advances to the final instant; a task already there
            // does not move again.
            let until = if idle && self.cfg.clock == ClockMode::Replay { self.cfg.until } else { None };
            let worked = self.process_batch(until)?;
            self.refresh_metrics();
            self.log_dead_letters(idle);
            if idle && !worked {
                idle_rounds += 1;
                let finished = self.cfg.until.map(|u| self.tasks.values().all(|t| t.engine.clock() >= Some(u))).unwrap_or(true);
                if self.cfg.exit_when_idle && idle_rounds >= 3 && finished {
                    info!("all inputs consumed; exiting");
                    break;
                }
            } else {
                idle_rounds = 0;
            }
        }
        if self.in_txn {
            let _ = self.producer.abort_transaction(t);
        }
        self.log_dead_letters(true);
        self.metrics.shared.set_not_ready("stopped");
        Ok(())
    }

    /// The dead letters since the last summary, when the interval is over
    /// or the inputs are consumed; and, under the wall clock, the hint that
    /// the input is from the past.
    fn log_dead_letters(&mut self, now: bool) {
        if self.cfg.clock == ClockMode::Wall {
            if let Some(hint) = self.dead_log.take_clock_hint() {
                warn!("{hint}");
            }
        }
        if let Some(s) = self.dead_log.take_due(std::time::Instant::now(), now) {
            warn!(dead_letters = s.total, topic = %self.topics.dlq, "{s}");
        }
    }

    fn all_at_end(&self) -> bool {
        let assigned = self.consumer.assignment().map(|a| a.count()).unwrap_or(0);
        assigned > 0
            && self.calendars_at_end
            && self.tasks.len() * 3 >= assigned
            && self.tasks.values().all(|t| t.buffered.is_empty() && t.at_end.len() == 3)
    }
}
