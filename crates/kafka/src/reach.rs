//! Whether the brokers can be reached, asked once at start-up with a short
//! limit: a wrong address or a broker that is down is said in seconds, with
//! the address and what failed, instead of surfacing half a minute later
//! as a transaction timeout behind a client that retries for ever.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

use crate::KafkaError;

/// Remembers the last transport error librdkafka met ("Connect to
/// ipv4#127.0.0.1:1 failed: Connection refused"): the metadata request
/// itself only says that it timed out.
struct Probe {
    last: Mutex<Option<String>>,
}

impl rdkafka::ClientContext for Probe {
    fn log(&self, _: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        if fac == "FAIL" {
            if let Ok(mut l) = self.last.lock() {
                *l = Some(message.to_string());
            }
        }
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if let Ok(mut l) = self.last.lock() {
            *l = Some(if reason.is_empty() { error.to_string() } else { reason.to_string() });
        }
    }
}

impl rdkafka::consumer::ConsumerContext for Probe {}

/// How long one check may take before it says what failed.
pub const CHECK_LIMIT: Duration = Duration::from_secs(5);

/// Asks the brokers for metadata, for at most `CHECK_LIMIT`; then, while
/// `wait` has not passed, again every second. Returns at once with
/// [`KafkaError::Stopped`] when `stop` is set.
pub fn check_brokers(brokers: &str, wait: Duration, stop: &AtomicBool) -> Result<(), KafkaError> {
    let client: BaseConsumer<Probe> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("socket.connection.setup.timeout.ms", "3000")
        .set("reconnect.backoff.max.ms", "1000")
        .create_with_context(Probe { last: Mutex::new(None) })
        .map_err(|e| KafkaError::kafka(format!("a client for {brokers}"), e))?;
    let started = Instant::now();
    let mut warned = false;
    loop {
        let round = Instant::now();
        while round.elapsed() < CHECK_LIMIT {
            if stop.load(Ordering::SeqCst) {
                return Err(KafkaError::Stopped);
            }
            if client.fetch_metadata(None, Duration::from_millis(500)).is_ok() {
                if warned {
                    tracing::info!(brokers, waited_s = started.elapsed().as_secs(), "brokers reachable");
                }
                return Ok(());
            }
            // Serves the error callbacks, which say what failed.
            let _ = client.poll(Duration::ZERO);
        }
        let detail = client
            .context()
            .last
            .lock()
            .ok()
            .and_then(|l| l.clone())
            .unwrap_or_else(|| "no answer to a metadata request".to_string());
        let waited = started.elapsed();
        if waited >= wait {
            return Err(KafkaError::Unreachable { brokers: brokers.to_string(), detail, waited_s: waited.as_secs() });
        }
        tracing::warn!(brokers, %detail, left_s = (wait - waited).as_secs(), "cannot reach the Kafka brokers; trying again");
        warned = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_address_is_named_with_what_failed_within_the_limit() {
        // Port 1 on loopback: nothing listens, the connection is refused.
        let t = Instant::now();
        let e = check_brokers("127.0.0.1:1", Duration::ZERO, &AtomicBool::new(false)).expect_err("nothing listens on port 1");
        assert!(t.elapsed() < CHECK_LIMIT + Duration::from_secs(2), "{:?}", t.elapsed());
        let text = format!("{e:#}");
        assert!(text.contains("127.0.0.1:1") && text.contains("refused"), "{text}");
        assert!(!e.is_reconnectable(), "a start-up check that failed is not retried by the reconnect loop");
    }

    #[test]
    fn a_stop_ends_the_wait_at_once() {
        let stop = AtomicBool::new(true);
        let t = Instant::now();
        let e = check_brokers("127.0.0.1:1", Duration::from_secs(60), &stop).expect_err("stopped");
        assert!(matches!(e, KafkaError::Stopped), "{e}");
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    }
}
