//! The processor's settings: a TOML file, then `ROLLCALL_*` environment
//! variables, then command-line flags, validated before anything starts.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rollcall_registry::ValueFormat;
use rollcall_store::StoreConfig;
use serde::{Deserialize, Serialize};

use crate::security::KafkaSecurity;

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

/// Which windows the engine evaluates at a flush (ARCHITECTURE.md,
/// "Incremental evaluation").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvaluationMode {
    /// Skip a window when nothing that arrived could change it.
    #[default]
    Incremental,
    /// Evaluate every window an input touched: the same outputs, more work.
    Reference,
}

impl From<EvaluationMode> for rollcall_engine::Evaluation {
    fn from(m: EvaluationMode) -> Self {
        match m {
            EvaluationMode::Incremental => rollcall_engine::Evaluation::Incremental,
            EvaluationMode::Reference => rollcall_engine::Evaluation::Reference,
        }
    }
}

/// How far `clock_offset_seconds` may shift the wall clock: ten years.
pub const MAX_CLOCK_OFFSET_SECONDS: u64 = 10 * 366 * 86_400;
const MAX_CLOCK_OFFSET_SECONDS_I64: i64 = MAX_CLOCK_OFFSET_SECONDS as i64;

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
    /// For tests and demos only: the wall clock is shifted by this many
    /// seconds (read once, at start), so that a school day of the near
    /// future closes within seconds. 0 in production.
    pub clock_offset_seconds: i64,
    /// Replay: advance to this instant once every input is consumed.
    pub until: Option<DateTime<Utc>>,
    /// Exit once every input is consumed (and, in replay, the final advance is committed).
    pub exit_when_idle: bool,
    /// A transaction closes after this many input records…
    pub batch_max_records: usize,
    /// …or this many milliseconds.
    pub batch_max_ms: u64,
    /// Threads that apply a batch's partitions side by side; 0: one per
    /// core this instance may run on (its CPU affinity and cgroup quota).
    pub apply_threads: usize,
    /// Broker-side timeout of an open transaction: how long a killed
    /// instance's open transaction can hold back read_committed readers.
    pub transaction_timeout_ms: u64,
    /// Events further than this from the clock are dead-lettered as absurd.
    pub max_clock_skew_days: i64,
    /// How long an event waits for its student's roster record before it is
    /// dead-lettered UNKNOWN_STUDENT (0: at once).
    pub unknown_student_wait_days: u32,
    /// How long an event waits for its school's calendar before it is
    /// dead-lettered UNKNOWN_SCHOOL (0: at once).
    pub unknown_school_wait_hours: u32,
    /// Drop a school year's windows, emitted versions and absence marks from
    /// the state once the year is past its correction horizon.
    pub retire_closed_years: bool,
    /// `reference` evaluates every touched window, as a check on the
    /// incremental evaluation: the outputs are the same.
    pub evaluation: EvaluationMode,
    /// District policy files, registered by their ids.
    pub policy_files: Vec<PathBuf>,
    /// Preset ids that a policy file may replace. A file whose id is a
    /// preset's is refused otherwise: a copy of `rollcall policy show cms`
    /// that kept `id = "cms"` would change every cms school.
    pub replace_presets: Vec<String>,
    /// Put before every topic name (empty in production).
    pub topic_prefix: String,
    /// Put before the output topics' names (determinations, outreach, dead
    /// letters) instead of `topic_prefix`: a trial group reads production's
    /// inputs and writes outputs of its own. Empty: `topic_prefix`.
    pub output_topic_prefix: String,
    /// At start, how long to keep trying brokers that cannot be reached
    /// (0: give up after the first check, a few seconds).
    pub broker_wait_seconds: u64,
    pub store: StoreConfig,
    /// How every Kafka client reaches the brokers: TLS, SASL (the `[kafka]` section).
    pub kafka: KafkaSecurity,
    /// Where `rollcall run` serves /metrics, /healthz and /readyz: an
    /// IP:port (port 0 picks a free one), or `off`.
    pub metrics_addr: String,
    /// HTTPS for the metrics endpoint (the `[http]` section): a certificate
    /// chain and its key; both empty, plain HTTP.
    pub http: rollcall_http::HttpTlsConfig,
    /// The format of the values written (determinations, outreach, dead
    /// letters): Avro single-object encoding, or the Confluent wire format
    /// with schemas in `registry_url`. Inputs are read in either.
    pub value_format: ValueFormat,
    /// The schema registry's Confluent API (`http://host:port/apis/ccompat/v7`
    /// for Apicurio, `http://host:8081` for Confluent's). Needed by
    /// `value_format = "confluent"`, and to read Confluent-framed inputs.
    pub registry_url: String,
    /// A file holding the registry's credentials: `user:password` (basic) or
    /// `Bearer TOKEN`. Empty: ROLLCALL_REGISTRY_CREDENTIALS, if set, else none.
    pub registry_credentials_file: String,
    /// At start, how long to wait for a registry that does not answer.
    pub registry_wait_seconds: u64,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        ProcessorConfig {
            brokers: "127.0.0.1:9092".into(),
            group: "rollcall".into(),
            state_dir: PathBuf::from("rollcall-state"),
            instance_id: "0".into(),
            clock: ClockMode::Wall,
            clock_offset_seconds: 0,
            until: None,
            exit_when_idle: false,
            batch_max_records: 20_000,
            batch_max_ms: 200,
            apply_threads: 0,
            transaction_timeout_ms: 10_000,
            max_clock_skew_days: 400,
            unknown_student_wait_days: 3,
            unknown_school_wait_hours: 24,
            retire_closed_years: true,
            evaluation: EvaluationMode::Incremental,
            policy_files: Vec::new(),
            replace_presets: Vec::new(),
            topic_prefix: String::new(),
            output_topic_prefix: String::new(),
            broker_wait_seconds: 0,
            store: StoreConfig { sync_commits: true, ..StoreConfig::default() },
            kafka: KafkaSecurity::default(),
            metrics_addr: "127.0.0.1:9464".into(),
            http: rollcall_http::HttpTlsConfig::default(),
            value_format: ValueFormat::SingleObject,
            registry_url: String::new(),
            registry_credentials_file: String::new(),
            registry_wait_seconds: 60,
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

/// The environment variable of a key.
pub fn env_var(section: Option<&str>, key: &str) -> String {
    match section {
        None => format!("ROLLCALL_{}", key.to_ascii_uppercase()),
        Some(s) => format!("ROLLCALL_{}__{}", s.to_ascii_uppercase(), key.to_ascii_uppercase()),
    }
}

/// An environment variable's text as the value its key holds now.
fn env_value(text: &str, current: Option<&toml::Value>) -> Result<toml::Value, String> {
    use toml::Value as V;
    Ok(match current {
        Some(V::Integer(_)) => V::Integer(text.trim().parse().map_err(|_| format!("`{text}` is not a whole number"))?),
        Some(V::Boolean(_)) => V::Boolean(match text.trim() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => return Err(format!("`{text}` is neither true nor false")),
        }),
        Some(V::Array(_)) => {
            V::Array(text.split(',').map(str::trim).filter(|x| !x.is_empty()).map(|x| V::String(x.into())).collect())
        }
        _ => V::String(text.to_string()),
    })
}

/// The lines of a toml error that say what is wrong, without those that
/// point into a text (the environment's value has none): "unknown variant
/// `x`, expected `a` or `b` in `key`", not only "in `key`".
fn message_of(s: &str) -> String {
    let pointer = |l: &str| {
        l.starts_with('|')
            || l.starts_with("TOML parse error")
            || l.split_once(" |").is_some_and(|(n, _)| n.parse::<u32>().is_ok())
    };
    let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty() && !pointer(l)).collect();
    lines.join(" ")
}

/// What each key is for, in the example file.
fn key_doc(key: &str) -> &'static str {
    match key {
        "brokers" => "Kafka bootstrap servers, host:port[,host:port...].",
        "group" => "The consumer group: instances with one group share the partitions. It also names the\n# group's changelog topic, <topic_prefix><group>-changelog, so two groups never share state.",
        "state_dir" => "Where this instance keeps its RocksDB state, one directory per partition it owns.",
        "instance_id" => "Names this instance's transactional producer; keep it stable across restarts.",
        "clock" => "\"wall\" (production: windows close on the wall clock) or \"replay\" (the records' timestamps).",
        "clock_offset_seconds" => "For tests and demos only: shift the wall clock by this many seconds (0 in production).",
        "until" => "Replay: advance the clock to this instant once every input is consumed.",
        "exit_when_idle" => "Exit once every input is consumed.",
        "batch_max_records" => "A transaction closes after this many input records...",
        "batch_max_ms" => "...or after this many milliseconds.",
        "apply_threads" => "Threads applying a batch's partitions side by side (0: one per core this instance may run on).",
        "transaction_timeout_ms" => "How long a killed instance's open transaction can hold back read_committed readers.",
        "max_clock_skew_days" => "Events further than this from the clock, either way, are dead-lettered TIMESTAMP_OUT_OF_RANGE.",
        "unknown_student_wait_days" => "An event whose student has no roster record yet waits this long for it (0: refused at once).",
        "unknown_school_wait_hours" => "An event whose school has no calendar yet waits this long for it (0: refused at once).",
        "retire_closed_years" => "Drop a school year's windows and absence marks from the state once it is past its correction horizon (false: keep them).",
        "evaluation" => "\"incremental\" (a window is evaluated again only when something that could change it arrived) or\n# \"reference\" (every window an input touched; the same outputs, more work).",
        "policy_files" => "District policy files (TOML), registered by their ids.",
        "replace_presets" => "Preset ids a policy file may replace (a file whose id is a preset's is refused otherwise).",
        "topic_prefix" => "Put before every topic name (empty in production).",
        "output_topic_prefix" => "Put before the output topics' names instead of topic_prefix, so that a trial group reads\n# production's inputs and writes its own outputs (empty: topic_prefix).",
        "broker_wait_seconds" => "At start, keep trying unreachable brokers this long (0: give up after the first check).",
        "metrics_addr" => "Where /metrics, /healthz and /readyz are served: IP:port, or \"off\".",
        "value_format" => "The format of the values written: \"single-object\" (Avro single-object encoding) or \"confluent\"\n# (the Confluent wire format, schemas in registry_url). Inputs are read in either.",
        "registry_url" => "The schema registry's Confluent API, e.g. http://registry:8080/apis/ccompat/v7 (empty: none).",
        "registry_credentials_file" => "A file with the registry's credentials, `user:password` or `Bearer TOKEN` (empty:\n# ROLLCALL_REGISTRY_CREDENTIALS if set, else none).",
        "registry_wait_seconds" => "At start, keep trying a registry that does not answer this long.",
        "block_cache_bytes" => "RocksDB block cache shared by this instance's partitions, bytes.",
        "write_buffer_bytes" => "RocksDB memtable size per table and partition, bytes.",
        "max_write_buffers" => "Memtables per table and partition before writes stall.",
        "sync_commits" => "fsync RocksDB's log on every commit.",
        "tls_cert_file" | "tls_key_file" => rollcall_http::tls::key_doc(key),
        other => crate::security::key_doc(other),
    }
}

impl ProcessorConfig {
    /// The example configuration file: every key with its default and what
    /// it is for (deploy/rollcall.example.toml is this text, checked by a test).
    pub fn example_toml() -> String {
        let defaults = toml::Table::try_from(ProcessorConfig::default()).unwrap_or_default();
        let mut out = String::from(
            "# rollcall run --config FILE: every setting, at its default. Each one can also come from the\n\
             # environment (ROLLCALL_<KEY>; in [store], ROLLCALL_STORE__<KEY>; lists comma-separated), which\n\
             # overrides this file, and a flag of `rollcall run`, where it has one, overrides both.\n\
             # [kafka] applies to every command that talks to Kafka (the others read ROLLCALL_KAFKA__<KEY>).\n",
        );
        let mut section = None;
        for (sec, key) in ProcessorConfig::keys() {
            if sec != section {
                out.push_str(&format!("\n[{}]\n", sec.unwrap_or_default()));
                section = sec;
            }
            let table = match sec {
                None => Some(&defaults),
                Some(s) => defaults.get(s).and_then(toml::Value::as_table),
            };
            out.push_str(&format!("\n# {}\n", key_doc(key)));
            match table.and_then(|t| t.get(key)) {
                Some(v) => out.push_str(&format!("{key} = {v}\n")),
                None => out.push_str(&format!("# {key} = \"2020-10-12T00:00:00Z\"\n")),
            }
        }
        out
    }

    /// Defaults, overlaid by `file` if given, then by the environment.
    pub fn load(file: Option<&Path>) -> Result<ProcessorConfig, ConfigError> {
        let mut cfg = match file {
            None => ProcessorConfig::default(),
            Some(f) => {
                let name = f.display().to_string();
                let text =
                    std::fs::read_to_string(f).map_err(|e| ConfigError::File { file: name.clone(), message: e.to_string() })?;
                toml::from_str(&text).map_err(|e| ConfigError::File { file: name, message: e.to_string() })?
            }
        };
        cfg.apply_env(|k| std::env::var(k).ok())?;
        Ok(cfg)
    }

    /// Every key can come from the environment: `ROLLCALL_` and the key in
    /// capitals (`ROLLCALL_BATCH_MAX_MS`), a `[store]` key with `STORE__`
    /// before it (`ROLLCALL_STORE__BLOCK_CACHE_BYTES`), a list as
    /// comma-separated items (`ROLLCALL_POLICY_FILES=a.toml,b.toml`).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let broken = |field, e: toml::ser::Error| ConfigError::Invalid { field, message: e.to_string() };
        let mut doc = toml::Table::try_from(&*self).map_err(|e| broken("config", e))?;
        for (section, key) in ProcessorConfig::keys() {
            let var = env_var(section, key);
            let Some(text) = get(&var) else { continue };
            let table = match section {
                None => &mut doc,
                Some(s) => match doc.get_mut(s).and_then(toml::Value::as_table_mut) {
                    Some(t) => t,
                    None => continue,
                },
            };
            let value = env_value(&text, table.get(key)).map_err(|message| ConfigError::Env { var: var.clone(), message })?;
            table.insert(key.to_string(), value);
            // Checked one variable at a time, so that the error names it.
            ProcessorConfig::deserialize(toml::Value::Table(doc.clone()))
                .map_err(|e| ConfigError::Env { var, message: format!("`{text}`: {}", message_of(&e.to_string())) })?;
        }
        *self = ProcessorConfig::deserialize(toml::Value::Table(doc))
            .map_err(|e| ConfigError::Invalid { field: "environment", message: message_of(&e.to_string()) })?;
        Ok(())
    }

    /// Every key, as (section, name): what the environment and the example
    /// file cover. `until` is the one key whose default (none) serializes to
    /// nothing.
    pub fn keys() -> Vec<(Option<&'static str>, &'static str)> {
        const TOP: &[&str] = &[
            "brokers",
            "group",
            "state_dir",
            "instance_id",
            "clock",
            "clock_offset_seconds",
            "until",
            "exit_when_idle",
            "batch_max_records",
            "batch_max_ms",
            "apply_threads",
            "transaction_timeout_ms",
            "max_clock_skew_days",
            "unknown_student_wait_days",
            "unknown_school_wait_hours",
            "retire_closed_years",
            "evaluation",
            "policy_files",
            "replace_presets",
            "topic_prefix",
            "output_topic_prefix",
            "broker_wait_seconds",
            "metrics_addr",
            "value_format",
            "registry_url",
            "registry_credentials_file",
            "registry_wait_seconds",
        ];
        const STORE: &[&str] = &["block_cache_bytes", "write_buffer_bytes", "max_write_buffers", "sync_commits"];
        TOP.iter()
            .map(|k| (None, *k))
            .chain(STORE.iter().map(|k| (Some("store"), *k)))
            .chain(crate::security::KEYS.iter().map(|k| (Some("kafka"), *k)))
            .chain(rollcall_http::tls::KEYS.iter().map(|k| (Some("http"), *k)))
            .collect()
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
        if self.apply_threads > 1024 {
            return invalid("apply_threads", "at most 1024 (0: one per core this instance may run on)");
        }
        if self.transaction_timeout_ms < 1_000 {
            return invalid("transaction_timeout_ms", "at least 1000");
        }
        if self.clock == ClockMode::Wall && self.until.is_some() {
            return invalid("until", "only the replay clock takes a final instant");
        }
        if self.clock == ClockMode::Replay && self.clock_offset_seconds != 0 {
            return invalid("clock_offset_seconds", "only the wall clock is shifted; the replay clock is the records'");
        }
        if self.clock_offset_seconds.unsigned_abs() > MAX_CLOCK_OFFSET_SECONDS {
            return invalid("clock_offset_seconds", &format!("at most {MAX_CLOCK_OFFSET_SECONDS} seconds either way"));
        }
        if self.metrics_addr != "off" && self.metrics_addr.parse::<std::net::SocketAddr>().is_err() {
            return invalid(
                "metrics_addr",
                &format!("`{}` is not an IP:port (such as 127.0.0.1:9464) nor `off`", self.metrics_addr),
            );
        }
        if self.value_format == ValueFormat::Confluent && self.registry_url.trim().is_empty() {
            return invalid("registry_url", "value_format = \"confluent\" needs the schema registry's URL");
        }
        let url = self.registry_url.trim();
        if !url.is_empty() && !url.starts_with("http://") && !url.starts_with("https://") {
            return invalid("registry_url", &format!("`{url}` is not an http:// or https:// URL"));
        }
        if !self.registry_credentials_file.is_empty() && url.is_empty() {
            return invalid("registry_credentials_file", "credentials without a registry_url");
        }
        Ok(())
    }

    pub fn topics(&self) -> crate::wire::Topics {
        let outputs = if self.output_topic_prefix.is_empty() { &self.topic_prefix } else { &self.output_topic_prefix };
        crate::wire::Topics::of_group(&self.topic_prefix, &self.group).with_outputs_behind(outputs)
    }

    /// The wall clock as the processor sees it: now, shifted by
    /// [`ProcessorConfig::clock_offset_seconds`].
    pub fn wall_now(&self) -> DateTime<Utc> {
        Utc::now()
            + chrono::Duration::seconds(
                self.clock_offset_seconds.clamp(-MAX_CLOCK_OFFSET_SECONDS_I64, MAX_CLOCK_OFFSET_SECONDS_I64),
            )
    }

    pub fn transactional_id(&self) -> String {
        format!("rollcall-{}-{}", self.group, self.instance_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_in_the_example_at_its_default() {
        let text = ProcessorConfig::example_toml();
        let parsed: ProcessorConfig = toml::from_str(&text).unwrap();
        assert_eq!(parsed, ProcessorConfig::default());
        for (_, key) in ProcessorConfig::keys() {
            assert!(!key_doc(key).is_empty(), "{key} has no description");
            assert!(text.contains(&format!("\n{key} = ")) || text.contains(&format!("\n# {key} = ")), "{key} missing:\n{text}");
        }
        // Every field of the config is a key: a new field must be listed.
        let full = ProcessorConfig { until: Some(Utc::now()), ..Default::default() };
        let doc = toml::Table::try_from(&full).unwrap();
        let keys = ProcessorConfig::keys();
        for (k, v) in &doc {
            match v.as_table() {
                Some(t) => t.keys().for_each(|sk| assert!(keys.contains(&(Some(k.as_str()), sk.as_str())), "{k}.{sk}")),
                None => assert!(keys.contains(&(None, k.as_str())), "{k} is not in ProcessorConfig::keys()"),
            }
        }
        let shipped =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/rollcall.example.toml")).unwrap();
        assert_eq!(
            shipped, text,
            "deploy/rollcall.example.toml is out of date: rollcall config example > deploy/rollcall.example.toml"
        );
    }

    /// A file value, then an environment value that overrides it, per key.
    fn precedence_table() -> Vec<(Option<&'static str>, &'static str, &'static str, &'static str)> {
        vec![
            (None, "brokers", "\"f:1\"", "e:2"),
            (None, "group", "\"fg\"", "eg"),
            (None, "state_dir", "\"/f\"", "/e"),
            (None, "instance_id", "\"fi\"", "ei"),
            (None, "clock", "\"replay\"", "wall"),
            (None, "clock_offset_seconds", "60", "-60"),
            (None, "until", "\"2020-10-12T00:00:00Z\"", "2021-01-01T00:00:00Z"),
            (None, "exit_when_idle", "true", "false"),
            (None, "batch_max_records", "7", "8"),
            (None, "batch_max_ms", "9", "10"),
            (None, "apply_threads", "1", "2"),
            (None, "transaction_timeout_ms", "2000", "3000"),
            (None, "max_clock_skew_days", "11", "12"),
            (None, "unknown_student_wait_days", "1", "2"),
            (None, "unknown_school_wait_hours", "3", "4"),
            (None, "retire_closed_years", "false", "true"),
            (None, "evaluation", "\"reference\"", "incremental"),
            (None, "policy_files", "[\"f.toml\"]", "e1.toml, e2.toml"),
            (None, "replace_presets", "[\"cms\"]", "mmsd"),
            (None, "topic_prefix", "\"f.\"", "e."),
            (None, "output_topic_prefix", "\"fo.\"", "eo."),
            (None, "broker_wait_seconds", "5", "6"),
            (None, "metrics_addr", "\"127.0.0.1:1\"", "off"),
            (None, "value_format", "\"confluent\"", "single-object"),
            (None, "registry_url", "\"http://f:1\"", "http://e:2"),
            (None, "registry_credentials_file", "\"/f/cred\"", "/e/cred"),
            (None, "registry_wait_seconds", "7", "8"),
            (Some("store"), "block_cache_bytes", "13", "14"),
            (Some("store"), "write_buffer_bytes", "15", "16"),
            (Some("store"), "max_write_buffers", "3", "4"),
            (Some("store"), "sync_commits", "false", "true"),
            (Some("kafka"), "security_protocol", "\"ssl\"", "sasl_ssl"),
            (Some("kafka"), "ssl_ca_file", "\"/f/ca.pem\"", "/e/ca.pem"),
            (Some("kafka"), "ssl_certificate_file", "\"/f/c.pem\"", "/e/c.pem"),
            (Some("kafka"), "ssl_key_file", "\"/f/k.pem\"", "/e/k.pem"),
            (Some("kafka"), "sasl_mechanism", "\"PLAIN\"", "SCRAM-SHA-256"),
            (Some("kafka"), "sasl_username", "\"fu\"", "eu"),
            (Some("kafka"), "sasl_password_file", "\"/f/pw\"", "/e/pw"),
            (Some("http"), "tls_cert_file", "\"/f/c.pem\"", "/e/c.pem"),
            (Some("http"), "tls_key_file", "\"/f/k.pem\"", "/e/k.pem"),
        ]
    }

    #[test]
    fn every_key_comes_from_the_file_and_the_environment_overrides_it() {
        let table = precedence_table();
        assert_eq!(
            table.iter().map(|(s, k, ..)| (*s, *k)).collect::<Vec<_>>(),
            ProcessorConfig::keys(),
            "the table covers every key"
        );
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("rollcall.toml");
        for (section, key, file_value, env_value) in table {
            let text = match section {
                None => format!("{key} = {file_value}\n"),
                Some(s) => format!("[{s}]\n{key} = {file_value}\n"),
            };
            std::fs::write(&f, &text).unwrap();
            let from_file: ProcessorConfig = toml::from_str(&text).unwrap();
            assert_ne!(from_file, ProcessorConfig::default(), "{key}: the file value must differ from the default");
            let mut c = from_file.clone();
            let var = env_var(section, key);
            c.apply_env(|k| (k == var).then(|| env_value.to_string())).unwrap_or_else(|e| panic!("{var}: {e}"));
            assert_ne!(c, from_file, "{var} did not override the file's {key}");
            let get = |t: &toml::Table| -> Option<toml::Value> {
                match section {
                    None => t.get(key).cloned(),
                    Some(s) => t.get(s).and_then(|v| v.get(key)).cloned(),
                }
            };
            let got = get(&toml::Table::try_from(&c).unwrap()).unwrap();
            let want = env_value_for_test(env_value, get(&toml::Table::try_from(&from_file).unwrap()).as_ref());
            assert_eq!(got, want, "{var}");
        }
    }

    fn env_value_for_test(text: &str, current: Option<&toml::Value>) -> toml::Value {
        env_value(text, current).unwrap()
    }

    #[test]
    fn the_confluent_format_needs_a_registry() {
        let c = ProcessorConfig { value_format: ValueFormat::Confluent, ..Default::default() };
        assert!(c.validate().unwrap_err().to_string().starts_with("registry_url:"));
        let c = ProcessorConfig { registry_url: "registry:8080".into(), ..c };
        assert!(c.validate().unwrap_err().to_string().contains("not an http"));
        let c = ProcessorConfig { registry_url: "http://registry:8080/apis/ccompat/v7".into(), ..c };
        c.validate().unwrap();
        let c = ProcessorConfig { registry_credentials_file: "/etc/cred".into(), ..ProcessorConfig::default() };
        assert!(c.validate().unwrap_err().to_string().starts_with("registry_credentials_file:"));
        let mut c = ProcessorConfig::default();
        let e = c.apply_env(|k| (k == "ROLLCALL_VALUE_FORMAT").then(|| "json".to_string())).unwrap_err().to_string();
        assert!(e.contains("ROLLCALL_VALUE_FORMAT") && e.contains("json"), "{e}");
    }

    #[test]
    fn a_bad_environment_value_names_its_variable() {
        let mut c = ProcessorConfig::default();
        for (var, value, says) in [
            ("ROLLCALL_BATCH_MAX_MS", "fast", "not a whole number"),
            ("ROLLCALL_CLOCK", "sundial", "sundial"),
            ("ROLLCALL_STORE__SYNC_COMMITS", "maybe", "neither true nor false"),
            ("ROLLCALL_UNTIL", "tomorrow", "tomorrow"),
            ("ROLLCALL_EVALUATION", "bogus", "expected `incremental` or `reference`"),
            ("ROLLCALL_CLOCK", "sundial", "expected `wall` or `replay`"),
        ] {
            let e = c.apply_env(|k| (k == var).then(|| value.to_string())).unwrap_err().to_string();
            assert!(e.contains(var) && e.contains(says), "{var}: {e}");
        }
    }

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
