//! The processor's settings: a TOML file, then `ROLLCALL_*` environment
//! variables, then command-line flags, validated before anything starts.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rollcall_store::StoreConfig;
use serde::{Deserialize, Serialize};

/// Where the engine's clock comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockMode {
    /// Production: windows close on the wall clock, even on a quiet night.
    Wall,
    /// Replay: the clock is the input records' timestamps (merged across the
    /// input topics in timestamp order), plus an explicit final advance.
    Replay,
}

/// Everything `rollcall run` needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessorConfig {
    pub brokers: String,
    pub group: String,
    pub state_dir: PathBuf,
    /// Names this instance's transactional producer (`rollcall-{group}-{instance_id}`):
    /// a restarted instance with the same id fences its predecessor at once.
    pub instance_id: String,
    pub clock: ClockMode,
    /// Replay: advance to this instant once every input is consumed.
    pub until: Option<DateTime<Utc>>,
    /// Exit once every input is consumed (and, in replay, the final advance is committed).
    pub exit_when_idle: bool,
    /// A transaction closes after this many input records…
    pub batch_max_records: usize,
    /// …or this many milliseconds.
    pub batch_max_ms: u64,
    /// Broker-side timeout of an open transaction: how long a killed
    /// instance's open transaction can hold back read_committed readers.
    pub transaction_timeout_ms: u64,
    /// Events further than this from the clock are dead-lettered as absurd.
    pub max_clock_skew_days: i64,
    /// District policy files, registered by their ids.
    pub policy_files: Vec<PathBuf>,
    /// Put before every topic name (empty in production).
    pub topic_prefix: String,
    pub store: StoreConfig,
    /// Where `rollcall run` serves /metrics, /healthz and /readyz: an
    /// IP:port (port 0 picks a free one), or `off`.
    pub metrics_addr: String,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        ProcessorConfig {
            brokers: "127.0.0.1:9092".into(),
            group: "rollcall".into(),
            state_dir: PathBuf::from("rollcall-state"),
            instance_id: "0".into(),
            clock: ClockMode::Wall,
            until: None,
            exit_when_idle: false,
            batch_max_records: 20_000,
            batch_max_ms: 200,
            transaction_timeout_ms: 10_000,
            max_clock_skew_days: 400,
            policy_files: Vec::new(),
            topic_prefix: String::new(),
            store: StoreConfig { sync_commits: true, ..StoreConfig::default() },
            metrics_addr: "127.0.0.1:9464".into(),
        }
    }
}

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {message}")]
    File { file: String, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
}

impl ProcessorConfig {
    /// Defaults, overlaid by `file` if given, then by the environment.
    pub fn load(file: Option<&Path>) -> Result<ProcessorConfig, ConfigError> {
        let mut cfg = match file {
            None => ProcessorConfig::default(),
            Some(f) => {
                let name = f.display().to_string();
                let text = std::fs::read_to_string(f)
                    .map_err(|e| ConfigError::File { file: name.clone(), message: e.to_string() })?;
                toml::from_str(&text).map_err(|e| ConfigError::File { file: name, message: e.to_string() })?
            }
        };
        cfg.apply_env(|k| std::env::var(k).ok())?;
        Ok(cfg)
    }

    /// `ROLLCALL_BROKERS`, `ROLLCALL_GROUP`, `ROLLCALL_STATE_DIR`, `ROLLCALL_INSTANCE_ID`,
    /// `ROLLCALL_CLOCK`, `ROLLCALL_BATCH_MAX_RECORDS`, `ROLLCALL_BATCH_MAX_MS`,
    /// `ROLLCALL_METRICS_ADDR`.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let num = |var: &str, v: String| -> Result<u64, ConfigError> {
            v.parse().map_err(|_| ConfigError::Env { var: var.into(), message: format!("`{v}` is not a whole number") })
        };
        if let Some(v) = get("ROLLCALL_BROKERS") {
            self.brokers = v;
        }
        if let Some(v) = get("ROLLCALL_GROUP") {
            self.group = v;
        }
        if let Some(v) = get("ROLLCALL_STATE_DIR") {
            self.state_dir = v.into();
        }
        if let Some(v) = get("ROLLCALL_INSTANCE_ID") {
            self.instance_id = v;
        }
        if let Some(v) = get("ROLLCALL_CLOCK") {
            self.clock = match v.as_str() {
                "wall" => ClockMode::Wall,
                "replay" => ClockMode::Replay,
                _ => {
                    return Err(ConfigError::Env {
                        var: "ROLLCALL_CLOCK".into(),
                        message: format!("`{v}` is neither `wall` nor `replay`"),
                    })
                }
            };
        }
        if let Some(v) = get("ROLLCALL_BATCH_MAX_RECORDS") {
            self.batch_max_records = num("ROLLCALL_BATCH_MAX_RECORDS", v)? as usize;
        }
        if let Some(v) = get("ROLLCALL_BATCH_MAX_MS") {
            self.batch_max_ms = num("ROLLCALL_BATCH_MAX_MS", v)?;
        }
        if let Some(v) = get("ROLLCALL_METRICS_ADDR") {
            self.metrics_addr = v;
        }
        Ok(())
    }

    /// Checks what can be checked before connecting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, message: &str| Err(ConfigError::Invalid { field, message: message.into() });
        if self.brokers.trim().is_empty() {
            return invalid("brokers", "give at least one host:port");
        }
        if self.group.trim().is_empty() {
            return invalid("group", "the consumer group must be named");
        }
        if self.instance_id.trim().is_empty() {
            return invalid("instance_id", "must not be empty");
        }
        if self.batch_max_records == 0 || self.batch_max_ms == 0 {
            return invalid("batch_max_records / batch_max_ms", "must be above zero");
        }
        if self.transaction_timeout_ms < 1_000 {
            return invalid("transaction_timeout_ms", "at least 1000");
        }
        if self.clock == ClockMode::Wall && self.until.is_some() {
            return invalid("until", "only the replay clock takes a final instant");
        }
        if self.metrics_addr != "off" && self.metrics_addr.parse::<std::net::SocketAddr>().is_err() {
            return invalid("metrics_addr", &format!("`{}` is not an IP:port (such as 127.0.0.1:9464) nor `off`", self.metrics_addr));
        }
        Ok(())
    }

    pub fn topics(&self) -> crate::wire::Topics {
        crate::wire::Topics::with_prefix(&self.topic_prefix)
    }

    pub fn transactional_id(&self) -> String {
        format!("rollcall-{}-{}", self.group, self.instance_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_and_is_checked() {
        let mut c = ProcessorConfig::default();
        c.apply_env(|k| match k {
            "ROLLCALL_BROKERS" => Some("h:1".into()),
            "ROLLCALL_CLOCK" => Some("replay".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!((c.brokers.as_str(), c.clock), ("h:1", ClockMode::Replay));
        c.apply_env(|k| (k == "ROLLCALL_METRICS_ADDR").then(|| "127.0.0.1:9999".to_string())).unwrap();
        assert_eq!(c.metrics_addr, "127.0.0.1:9999");
        let e = c.apply_env(|k| (k == "ROLLCALL_BATCH_MAX_MS").then(|| "fast".to_string())).unwrap_err();
        assert!(e.to_string().contains("ROLLCALL_BATCH_MAX_MS") && e.to_string().contains("fast"));
    }

    #[test]
    fn validation_names_the_setting() {
        let c = ProcessorConfig { group: " ".into(), ..Default::default() };
        assert!(c.validate().unwrap_err().to_string().starts_with("group:"));
        let c = ProcessorConfig { until: Some(Utc::now()), ..Default::default() };
        assert!(c.validate().unwrap_err().to_string().starts_with("until:"));
        let c = ProcessorConfig { metrics_addr: "localhost".into(), ..Default::default() };
        assert!(c.validate().unwrap_err().to_string().starts_with("metrics_addr:"));
        for ok in ["off", "0.0.0.0:9464", "[::1]:0"] {
            ProcessorConfig { metrics_addr: ok.into(), ..Default::default() }.validate().unwrap();
        }
    }

    #[test]
    fn metrics_address_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("rollcall.toml");
        std::fs::write(&f, "metrics_addr = \"127.0.0.1:9500\"\n").unwrap();
        let c = ProcessorConfig::load(Some(&f)).unwrap();
        assert_eq!(c.metrics_addr, "127.0.0.1:9500");
    }

    #[test]
    fn unknown_file_field_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("rollcall.toml");
        std::fs::write(&f, "brokers = \"x:1\"\ngroop = \"g\"\n").unwrap();
        let e = ProcessorConfig::load(Some(&f)).unwrap_err().to_string();
        assert!(e.contains("rollcall.toml") && e.contains("groop"), "{e}");
    }
}
