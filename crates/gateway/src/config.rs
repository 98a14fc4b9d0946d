//! The gateway's settings: a TOML file naming each source (its route,
//! format and credentials) and the limits, checked at start with messages
//! that say what to change. Secrets are read from files or environment
//! variables named in the file, never written in it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rollcall_ingest::Format;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// IP:port to listen on.
    pub listen: String,
    pub brokers: String,
    /// Put before the activity topic's name, as `topics create --topic-prefix`.
    pub topic_prefix: String,
    /// Requests with a larger body are refused with 413.
    pub max_body_bytes: usize,
    /// How long Kafka may take to acknowledge a request's events before the
    /// request is answered 503.
    pub produce_timeout_ms: u64,
    /// An identity mapping read at start (CSV: source,type,external_id,id,
    /// school_id), before and beneath the identities topic.
    pub identities_file: Option<PathBuf>,
    /// How long an event naming someone the mapping does not know is held
    /// before it is dead-lettered `UNKNOWN_IDENTITY` (default 3 days).
    pub identity_wait_seconds: u64,
    /// The consumer group of the resolver (behind the topic prefix), shared
    /// by the gateways of one district so that each waiting event is
    /// settled by one of them.
    pub resolver_group: String,
    /// How the gateway's Kafka clients reach the brokers (TLS, SASL); the
    /// environment's `ROLLCALL_KAFKA__*` overrides it.
    pub kafka: rollcall_kafka::KafkaSecurity,
    /// HTTPS for the listener (`[http]`: tls_cert_file and tls_key_file);
    /// the environment's `ROLLCALL_HTTP__*` overrides it. Empty: plain HTTP.
    pub http: rollcall_http::HttpTlsConfig,
    #[serde(rename = "source")]
    pub sources: Vec<SourceConfig>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: "127.0.0.1:8088".into(),
            brokers: "127.0.0.1:9092".into(),
            topic_prefix: String::new(),
            max_body_bytes: 1 << 20,
            produce_timeout_ms: 10_000,
            identities_file: None,
            identity_wait_seconds: 3 * 86_400,
            resolver_group: "rollcall-gateway".into(),
            kafka: rollcall_kafka::KafkaSecurity::default(),
            http: rollcall_http::HttpTlsConfig::default(),
            sources: Vec::new(),
        }
    }
}

/// One platform instance sending to the gateway.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The source's name: the identity mapping's `source` column and the
    /// events' `source`. Defaults to the format's name.
    pub name: Option<String>,
    /// caliper, xapi, canvas, zoom or native (ActivityEvent JSON; on a
    /// route ending in `.csv`, the contacts CSV).
    pub format: String,
    /// The route (`/v1/caliper`); defaults to `/v1/<name>`.
    pub route: Option<String>,
    /// The bearer token, from a file (its first line)…
    pub token_file: Option<PathBuf>,
    /// …or from this environment variable.
    pub token_env: Option<String>,
    /// Zoom: the webhook secret token, from a file or a variable; the
    /// signature replaces the bearer token.
    pub secret_file: Option<PathBuf>,
    pub secret_env: Option<String>,
}

/// A source ready to serve: its secrets read.
#[derive(Clone)]
pub struct Source {
    pub name: String,
    pub format: Format,
    pub route: String,
    pub csv: bool,
    pub credential: Credential,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source").field("name", &self.name).field("route", &self.route).finish_non_exhaustive()
    }
}

/// How a source's requests are authenticated. Never printed.
#[derive(Clone)]
pub enum Credential {
    Bearer(Vec<u8>),
    ZoomSecret(Vec<u8>),
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {message}")]
    File { file: String, message: String },
    #[error("source `{source_name}`: {message}")]
    Source { source_name: String, message: String },
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
}

impl GatewayConfig {
    pub fn load(file: &Path) -> Result<GatewayConfig, ConfigError> {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(file).map_err(|e| ConfigError::File { file: name.clone(), message: e.to_string() })?;
        toml::from_str(text.trim_start_matches('\u{feff}')).map_err(|e| ConfigError::File { file: name, message: e.to_string() })
    }

    /// The sources with their secrets, or what is wrong with them.
    pub fn sources(&self, env: impl Fn(&str) -> Option<String>) -> Result<Vec<Source>, ConfigError> {
        if self.sources.is_empty() {
            return Err(ConfigError::Invalid {
                field: "source",
                message: "no [[source]] is configured: nothing could send".into(),
            });
        }
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::Invalid { field: "listen", message: format!("`{}` is not an IP:port", self.listen) });
        }
        if self.identity_wait_seconds == 0 || self.identity_wait_seconds > 365 * 86_400 {
            return Err(ConfigError::Invalid {
                field: "identity_wait_seconds",
                message: format!("{} is not between 1 and 31536000 (a year)", self.identity_wait_seconds),
            });
        }
        if self.max_body_bytes == 0 || self.produce_timeout_ms == 0 {
            return Err(ConfigError::Invalid {
                field: "max_body_bytes / produce_timeout_ms",
                message: "must be above zero".into(),
            });
        }
        let mut routes = BTreeSet::new();
        let mut out = Vec::new();
        for s in &self.sources {
            let format = Format::from_name(&s.format).ok_or_else(|| ConfigError::Source {
                source_name: s.name.clone().unwrap_or_else(|| s.format.clone()),
                message: format!("format `{}` is not one of caliper, xapi, canvas, zoom, native", s.format),
            })?;
            let name = s.name.clone().unwrap_or_else(|| format.name().to_string());
            let bad = |message: String| ConfigError::Source { source_name: name.clone(), message };
            let route = s.route.clone().unwrap_or_else(|| format!("/v1/{name}"));
            if !route.starts_with('/') || route.contains(['{', '}', '*', ':']) {
                return Err(bad(format!("route `{route}` must be a plain path starting with /")));
            }
            if !routes.insert(route.clone()) {
                return Err(bad(format!("route `{route}` is given to two sources")));
            }
            let read = |file: &Option<PathBuf>, var: &Option<String>, what: &str| -> Result<Option<Vec<u8>>, ConfigError> {
                let value = match (file, var) {
                    (Some(f), _) => Some(
                        std::fs::read_to_string(f)
                            .map_err(|e| bad(format!("{what} file {}: {e}", f.display())))?
                            .lines()
                            .next()
                            .unwrap_or_default()
                            .trim()
                            .to_string(),
                    ),
                    (None, Some(v)) => Some(env(v).ok_or_else(|| bad(format!("{what} variable {v} is not set")))?),
                    (None, None) => None,
                };
                match value {
                    Some(v) if v.len() < 16 => Err(bad(format!("the {what} is shorter than 16 characters"))),
                    other => Ok(other.map(String::into_bytes)),
                }
            };
            let credential = if format == Format::Zoom {
                match read(&s.secret_file, &s.secret_env, "secret")? {
                    Some(secret) => Credential::ZoomSecret(secret),
                    None => return Err(bad("a zoom source needs secret_file or secret_env (the app's secret token)".into())),
                }
            } else {
                match read(&s.token_file, &s.token_env, "token")? {
                    Some(token) => Credential::Bearer(token),
                    None => return Err(bad("needs token_file or token_env (the bearer token the platform sends)".into())),
                }
            };
            out.push(Source { csv: format == Format::Native && route.ends_with(".csv"), name, format, route, credential });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(sources: &str) -> GatewayConfig {
        toml::from_str(sources).unwrap()
    }

    #[test]
    fn the_example_configuration_reads() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/gateway.example.toml");
        let c = GatewayConfig::load(&file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((c.identity_wait_seconds, c.resolver_group.as_str()), (259_200, "rollcall-gateway"));
        let formats: BTreeSet<&str> = c.sources.iter().map(|s| s.format.as_str()).collect();
        assert_eq!(formats, BTreeSet::from(["caliper", "canvas", "native", "xapi", "zoom"]));
        let wait = GatewayConfig { identity_wait_seconds: 0, ..c.clone() };
        let e = wait.sources(|_| Some("0123456789abcdef-token".into())).expect_err("a wait of 0").to_string();
        assert!(e.starts_with("identity_wait_seconds:"), "{e}");
    }

    #[test]
    fn sources_are_checked_with_messages_that_say_what_to_change() {
        let env = |v: &str| (v == "TOKEN").then(|| "0123456789abcdef-token".to_string());
        let ok = cfg("[[source]]\nformat = \"caliper\"\ntoken_env = \"TOKEN\"\n[[source]]\nformat = \"native\"\nroute = \"/v1/contacts.csv\"\nname = \"contacts\"\ntoken_env = \"TOKEN\"\n");
        let s = ok.sources(env).unwrap();
        assert_eq!((s[0].name.as_str(), s[0].route.as_str(), s[0].csv), ("caliper", "/v1/caliper", false));
        assert_eq!((s[1].name.as_str(), s[1].route.as_str(), s[1].csv), ("contacts", "/v1/contacts.csv", true));
        let table = [
            ("", "no [[source]] is configured"),
            ("[[source]]\nformat = \"moodle\"\ntoken_env = \"TOKEN\"\n", "format `moodle` is not one of"),
            ("[[source]]\nformat = \"caliper\"\n", "needs token_file or token_env"),
            ("[[source]]\nformat = \"caliper\"\ntoken_env = \"NOPE\"\n", "variable NOPE is not set"),
            ("[[source]]\nformat = \"zoom\"\ntoken_env = \"TOKEN\"\n", "needs secret_file or secret_env"),
            ("[[source]]\nformat = \"caliper\"\ntoken_env = \"TOKEN\"\n[[source]]\nformat = \"xapi\"\nroute = \"/v1/caliper\"\ntoken_env = \"TOKEN\"\n", "given to two sources"),
            ("[[source]]\nformat = \"caliper\"\nroute = \"v1\"\ntoken_env = \"TOKEN\"\n", "must be a plain path"),
        ];
        for (text, want) in table {
            let e = cfg(text).sources(env).expect_err(text).to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
        let short = cfg("[[source]]\nformat = \"caliper\"\ntoken_env = \"SHORT\"\n");
        let e = short.sources(|_| Some("abc".into())).expect_err("short").to_string();
        assert!(e.contains("shorter than 16") && !e.contains("abc"), "{e}");
    }
}
