//! Whether the brokers can be reached, asked once at start-up with a short
//! limit: a wrong address or a broker that is down is said in seconds, with
//! the address and what failed, instead of surfacing half a minute later
//! as a transaction timeout behind a client that retries for ever.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::KafkaError;

/// Remembers the last transport error librdkafka met ("Connect to
/// ipv4#127.0.0.1:1 failed: Connection refused"): the metadata request
/// itself only says that it timed out.
struct Probe {
    last: Mutex<Option<String>>,
    /// A failure that waiting will not mend: the brokers refused the
    /// credentials, or the TLS handshake failed.
    fatal: Mutex<Option<Refusal>>,
}

/// Why the brokers could be reached but not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// SASL authentication failed (a wrong user or password, or a mechanism
    /// the broker does not offer).
    Authentication(String),
    /// The TLS handshake failed; `untrusted` when the broker's certificate
    /// could not be verified.
    Tls { untrusted: bool, detail: String },
}

/// Reads a librdkafka error or log line for a failure that retrying will
/// not mend.
pub fn refusal_of(code: Option<rdkafka::types::RDKafkaErrorCode>, text: &str) -> Option<Refusal> {
    use rdkafka::types::RDKafkaErrorCode as C;
    let lower = text.to_ascii_lowercase();
    let untrusted = lower.contains("certificate verify failed") || lower.contains("could not be verified");
    if code == Some(C::Authentication)
        || code == Some(C::SaslAuthenticationFailed)
        || lower.contains("sasl authentication error")
        || lower.contains("authentication failed")
    {
        Some(Refusal::Authentication(text.to_string()))
    } else if code == Some(C::SSL) || lower.contains("ssl handshake failed") || untrusted {
        Some(Refusal::Tls { untrusted, detail: text.to_string() })
    } else {
        None
    }
}

impl Probe {
    fn note(&self, code: Option<rdkafka::types::RDKafkaErrorCode>, text: &str) {
        if let Ok(mut l) = self.last.lock() {
            *l = Some(text.to_string());
        }
        if let Some(r) = refusal_of(code, text) {
            if let Ok(mut f) = self.fatal.lock() {
                f.get_or_insert(r);
            }
        }
    }
}

impl rdkafka::ClientContext for Probe {
    fn log(&self, _: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        if fac == "FAIL" {
            self.note(None, message);
        }
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        let text = if reason.is_empty() { error.to_string() } else { reason.to_string() };
        self.note(error.rdkafka_error_code(), &text);
    }
}

impl rdkafka::consumer::ConsumerContext for Probe {}

/// How long one check may take before it says what failed.
pub const CHECK_LIMIT: Duration = Duration::from_secs(5);

/// Asks the brokers for metadata, for at most `CHECK_LIMIT`; then, while
/// `wait` has not passed, again every second. Returns at once with
/// [`KafkaError::Stopped`] when `stop` is set, and with
/// [`KafkaError::Refused`] when the brokers refuse the credentials or the
/// TLS handshake fails: waiting would not mend those.
pub fn check_brokers(brokers: &str, wait: Duration, stop: &AtomicBool) -> Result<(), KafkaError> {
    let client: BaseConsumer<Probe> = crate::client_config(brokers)
        .set("socket.connection.setup.timeout.ms", "3000")
        .set("reconnect.backoff.max.ms", "1000")
        .create_with_context(Probe { last: Mutex::new(None), fatal: Mutex::new(None) })
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
            if let Some(r) = client.context().fatal.lock().ok().and_then(|f| f.clone()) {
                return Err(refused(brokers, r));
            }
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

/// The error for a refusal, in the words of the settings to check.
fn refused(brokers: &str, r: Refusal) -> KafkaError {
    let security = crate::security::installed();
    let (what, detail) = match r {
        Refusal::Authentication(detail) => (security.describe_auth(), detail),
        Refusal::Tls { untrusted, detail } => (security.describe_tls(untrusted), detail),
    };
    KafkaError::Refused { brokers: brokers.to_string(), what, detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_told_apart_from_transport_failures() {
        use rdkafka::types::RDKafkaErrorCode as C;
        let auth = "sasl_ssl://127.0.0.1:9093/bootstrap: SASL authentication error: Authentication failed during \
                    authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 (after 310ms in state AUTH_REQ)";
        assert!(matches!(refusal_of(Some(C::Authentication), auth), Some(Refusal::Authentication(_))));
        assert!(matches!(refusal_of(None, auth), Some(Refusal::Authentication(_))));
        let tls = "ssl://127.0.0.1:9093/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify \
                   failed: broker certificate could not be verified, verify that ssl.ca.location is correctly configured";
        assert_eq!(refusal_of(Some(C::SSL), tls), Some(Refusal::Tls { untrusted: true, detail: tls.into() }));
        let other = "ssl://127.0.0.1:9092/bootstrap: SSL handshake failed: Disconnected: connecting to a PLAINTEXT listener?";
        assert!(matches!(refusal_of(None, other), Some(Refusal::Tls { untrusted: false, .. })));
        let refused = "Connect to ipv4#127.0.0.1:1 failed: Connection refused (after 0ms in state CONNECT)";
        assert_eq!(refusal_of(Some(C::BrokerTransportFailure), refused), None);
        assert_eq!(refusal_of(Some(C::AllBrokersDown), "1/1 brokers are down"), None);
    }

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
