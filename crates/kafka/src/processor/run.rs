//! The processor's loop: poll, apply, commit, until stopped or idle; and
//! the reconnect around it, which starts again from the committed state
//! when the Kafka clients fail instead of stopping the process.

use std::sync::atomic::Ordering;
use std::time::Duration;

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
                    std::thread::sleep(backoff);
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

    fn run_once(&mut self) -> Result<(), KafkaError> {
        let t = Duration::from_secs(30);
        self.producer.init_transactions(t).map_err(|e| rd("init transactions", e))?;
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
        self.metrics.shared.set_not_ready("stopped");
        Ok(())
    }

    fn all_at_end(&self) -> bool {
        let assigned = self.consumer.assignment().map(|a| a.count()).unwrap_or(0);
        assigned > 0
            && self.calendars_at_end
            && self.tasks.len() * 3 >= assigned
            && self.tasks.values().all(|t| t.buffered.is_empty() && t.at_end.len() == 3)
    }
}
