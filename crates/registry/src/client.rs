//! The registry client: register a schema under a subject, look a schema up
//! by id (cached), credentials, and the wait at start-up.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use apache_avro::schema::Schema;
use rollcall_model::avro::{parsing_canonical_form, rabin_fingerprint};
use tracing::{info, warn};

/// The environment variable that carries the registry's credentials when
/// no file is given: `user:password` (basic) or `Bearer TOKEN`.
pub const CREDENTIALS_ENV: &str = "ROLLCALL_REGISTRY_CREDENTIALS";

/// Why the registry could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry could not be reached, or answered with a server error:
    /// worth trying again later.
    #[error("schema registry at {url}: {what}")]
    Unreachable {
        url: String,
        what: String,
        #[source]
        source: Option<reqwest::Error>,
    },
    /// The registry answered, and refused (an incompatible schema: 409;
    /// bad credentials: 401 or 403), with its own message.
    #[error("schema registry at {url}: {what}: HTTP {status}: {message}")]
    Refused { url: String, what: String, status: u16, message: String },
    /// The registry's answer is not what its API says it should be.
    #[error("schema registry at {url}: {what}: {message}")]
    Protocol { url: String, what: String, message: String },
    /// The credentials file or variable cannot be used.
    #[error("registry credentials from {from}: {message}")]
    Credentials { from: String, message: String },
    /// A schema the registry holds is not a valid Avro schema.
    #[error("schema id {id}: not a valid Avro schema: {message}")]
    Schema { id: u32, message: String },
    /// Asked to stop while waiting for the registry.
    #[error("stopped while waiting for the schema registry")]
    Stopped,
}

impl RegistryError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, RegistryError::Unreachable { .. })
    }

    /// The HTTP status of a refusal, if this is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            RegistryError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// How rollcall proves who it is to the registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Basic { user: String, password: String },
    Bearer(String),
}

// Never print a secret.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic { user, .. } => write!(f, "Basic({user}:***)"),
            Credentials::Bearer(_) => write!(f, "Bearer(***)"),
        }
    }
}

impl Credentials {
    /// `user:password` for basic authentication, `Bearer TOKEN` for a bearer
    /// token (one line; surrounding white space is ignored).
    pub fn parse(text: &str, from: &str) -> Result<Credentials, RegistryError> {
        let bad = |message: &str| RegistryError::Credentials { from: from.to_string(), message: message.to_string() };
        let text = text.trim();
        if let Some(token) = text.strip_prefix("Bearer ").or_else(|| text.strip_prefix("bearer ")) {
            let token = token.trim();
            if token.is_empty() {
                return Err(bad("`Bearer` with no token"));
            }
            return Ok(Credentials::Bearer(token.to_string()));
        }
        match text.split_once(':') {
            Some((user, password)) if !user.is_empty() => {
                Ok(Credentials::Basic { user: user.to_string(), password: password.to_string() })
            }
            _ => Err(bad("expected `user:password` or `Bearer TOKEN`")),
        }
    }

    /// From `file` when one is given, else from [`CREDENTIALS_ENV`] when it
    /// is set, else none.
    pub fn load(file: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> Result<Option<Credentials>, RegistryError> {
        if let Some(f) = file {
            let from = f.display().to_string();
            let text = std::fs::read_to_string(f)
                .map_err(|e| RegistryError::Credentials { from: from.clone(), message: e.to_string() })?;
            return Credentials::parse(&text, &from).map(Some);
        }
        match env(CREDENTIALS_ENV) {
            Some(text) if !text.trim().is_empty() => Credentials::parse(&text, CREDENTIALS_ENV).map(Some),
            _ => Ok(None),
        }
    }

    fn apply(&self, rb: reqwest::blocking::RequestBuilder) -> reqwest::blocking::RequestBuilder {
        match self {
            Credentials::Basic { user, password } => rb.basic_auth(user, Some(password)),
            Credentials::Bearer(token) => rb.bearer_auth(token),
        }
    }
}

/// A writer schema the registry holds, as rollcall uses it.
#[derive(Debug)]
pub struct WriterSchema {
    pub id: u32,
    /// CRC-64-AVRO of its Parsing Canonical Form: equal to a record type's
    /// own fingerprint when the writer used rollcall's schema as it is.
    pub fingerprint: u64,
    /// The full name of the record it describes (`org.rollcall.v1.ActivityEvent`).
    pub name: Option<String>,
    pub schema: Schema,
}

/// A client of a Confluent-compatible schema registry.
pub struct Registry {
    url: String,
    http: reqwest::blocking::Client,
    credentials: Option<Credentials>,
    by_id: RwLock<HashMap<u32, Arc<WriterSchema>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("url", &self.url).field("credentials", &self.credentials).finish()
    }
}

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

impl Registry {
    /// A client of the registry at `url` (the Confluent API's base, e.g.
    /// `http://registry:8080/apis/ccompat/v7`). Connects to nothing yet.
    pub fn new(url: &str, credentials: Option<Credentials>) -> Result<Registry, RegistryError> {
        let url = url.trim().trim_end_matches('/').to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(RegistryError::Protocol {
                url,
                what: "the URL".into(),
                message: "must start with http:// or https://".into(),
            });
        }
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| RegistryError::Unreachable {
                url: url.clone(),
                what: "building the HTTP client".into(),
                source: Some(e),
            })?;
        Ok(Registry { url, http, credentials, by_id: RwLock::new(HashMap::new()) })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn request(&self, rb: reqwest::blocking::RequestBuilder, what: &str) -> Result<Option<serde_json::Value>, RegistryError> {
        let rb = match &self.credentials {
            Some(c) => c.apply(rb),
            None => rb,
        };
        let unreachable =
            |e: reqwest::Error| RegistryError::Unreachable { url: self.url.clone(), what: what.to_string(), source: Some(e) };
        let resp = rb.header("Accept", CONTENT_TYPE).send().map_err(unreachable)?;
        let status = resp.status();
        let body = resp.text().map_err(unreachable)?;
        if status.as_u16() == 404 {
            return Ok(None);
        }
        if status.is_server_error() {
            return Err(RegistryError::Unreachable {
                url: self.url.clone(),
                what: format!("{what}: HTTP {status}: {}", body.chars().take(300).collect::<String>()),
                source: None,
            });
        }
        if !status.is_success() {
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_string))
                .unwrap_or_else(|| body.chars().take(300).collect());
            return Err(RegistryError::Refused {
                url: self.url.clone(),
                what: what.to_string(),
                status: status.as_u16(),
                message,
            });
        }
        serde_json::from_str(&body).map(Some).map_err(|e| RegistryError::Protocol {
            url: self.url.clone(),
            what: what.to_string(),
            message: format!("the answer is not JSON: {e}"),
        })
    }

    /// Whether the registry answers (its subject list).
    pub fn ping(&self) -> Result<(), RegistryError> {
        self.request(self.http.get(format!("{}/subjects", self.url)), "listing the subjects").map(|_| ())
    }

    /// Waits until the registry answers, at most `wait` (zero: one try),
    /// saying once on the log that it waits and for what.
    pub fn wait_until_up(&self, wait: Duration, stop: &AtomicBool) -> Result<(), RegistryError> {
        let started = Instant::now();
        let mut warned = false;
        loop {
            match self.ping() {
                Ok(()) => {
                    if warned {
                        info!(url = %self.url, waited_s = started.elapsed().as_secs(), "schema registry is up");
                    }
                    return Ok(());
                }
                Err(e) if e.is_transient() && started.elapsed() < wait => {
                    if !warned {
                        warn!(url = %self.url, error = %error_chain(&e), wait_s = wait.as_secs(),
                            "the schema registry does not answer; waiting for it (registry_wait_seconds)");
                        warned = true;
                    }
                }
                Err(e) => return Err(e),
            }
            for _ in 0..10 {
                if stop.load(Ordering::SeqCst) {
                    return Err(RegistryError::Stopped);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// Registers `schema` (its JSON text) under `subject` and returns its id.
    /// Idempotent: the same schema gets the same id. A schema the subject's
    /// compatibility rule refuses is [`RegistryError::Refused`] with 409.
    pub fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let what = format!("registering a schema under `{subject}`");
        let body = serde_json::json!({ "schemaType": "AVRO", "schema": schema });
        let rb = self
            .http
            .post(format!("{}/subjects/{}/versions", self.url, subject))
            .header("Content-Type", CONTENT_TYPE)
            .body(body.to_string());
        let answer = self.request(rb, &what)?.ok_or_else(|| RegistryError::Refused {
            url: self.url.clone(),
            what: what.clone(),
            status: 404,
            message: "not found".into(),
        })?;
        let id = answer.get("id").and_then(|v| v.as_u64()).and_then(|v| u32::try_from(v).ok());
        let id = id.ok_or_else(|| RegistryError::Protocol {
            url: self.url.clone(),
            what,
            message: format!("no schema id in {answer}"),
        })?;
        // The schema is known by its id now: no lookup needed for our own records.
        if let Ok(writer) = writer_schema(id, schema) {
            if let Ok(mut m) = self.by_id.write() {
                m.insert(id, Arc::new(writer));
            }
        }
        Ok(id)
    }

    /// The schema of `id`: from the cache, else asked of the registry (and
    /// cached). `None` when the registry does not know the id.
    pub fn schema_by_id(&self, id: u32) -> Result<Option<Arc<WriterSchema>>, RegistryError> {
        if let Some(w) = self.by_id.read().ok().and_then(|m| m.get(&id).cloned()) {
            return Ok(Some(w));
        }
        let answer =
            self.request(self.http.get(format!("{}/schemas/ids/{id}", self.url)), &format!("looking up schema id {id}"))?;
        let Some(answer) = answer else { return Ok(None) };
        if let Some(t) = answer.get("schemaType").and_then(|t| t.as_str()) {
            if t != "AVRO" {
                return Err(RegistryError::Schema { id, message: format!("a {t} schema, not Avro") });
            }
        }
        let text = answer.get("schema").and_then(|s| s.as_str()).ok_or_else(|| RegistryError::Protocol {
            url: self.url.clone(),
            what: format!("looking up schema id {id}"),
            message: "the answer has no `schema`".into(),
        })?;
        let writer = Arc::new(writer_schema(id, text)?);
        if let Ok(mut m) = self.by_id.write() {
            m.insert(id, writer.clone());
        }
        Ok(Some(writer))
    }

    /// How many schemas are cached by id.
    pub fn cached(&self) -> usize {
        self.by_id.read().map(|m| m.len()).unwrap_or(0)
    }
}

fn writer_schema(id: u32, text: &str) -> Result<WriterSchema, RegistryError> {
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| RegistryError::Schema { id, message: format!("not JSON: {e}") })?;
    let schema = Schema::parse(&json).map_err(|e| RegistryError::Schema { id, message: e.to_string() })?;
    let fingerprint = rabin_fingerprint(parsing_canonical_form(&json, None).as_bytes());
    let name = match &schema {
        Schema::Record(r) => Some(r.name.fullname(None)),
        _ => None,
    };
    Ok(WriterSchema { id, fingerprint, name, schema })
}

/// An error and its causes on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !s.ends_with(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cause = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_parse_basic_and_bearer() {
        assert_eq!(
            Credentials::parse(" svc:p:w \n", "f").unwrap(),
            Credentials::Basic { user: "svc".into(), password: "p:w".into() }
        );
        assert_eq!(Credentials::parse("Bearer abc\n", "f").unwrap(), Credentials::Bearer("abc".into()));
        assert!(Credentials::parse("Bearer  ", "f").is_err());
        assert!(Credentials::parse("nocolon", "f").is_err());
        assert!(!format!("{:?}", Credentials::parse("u:secret", "f").unwrap()).contains("secret"));
    }

    #[test]
    fn credentials_come_from_the_file_before_the_environment() {
        let dir = std::env::temp_dir().join(format!("rollcall-registry-cred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c");
        std::fs::write(&f, "Bearer t1").unwrap();
        let env = |_: &str| Some("u:p".to_string());
        assert_eq!(Credentials::load(Some(&f), env).unwrap(), Some(Credentials::Bearer("t1".into())));
        assert_eq!(Credentials::load(None, env).unwrap(), Some(Credentials::Basic { user: "u".into(), password: "p".into() }));
        assert_eq!(Credentials::load(None, |_| None).unwrap(), None);
        assert!(Credentials::load(Some(&dir.join("missing")), env).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_url_must_be_http() {
        assert!(Registry::new("registry:8080", None).is_err());
        assert!(Registry::new("http://127.0.0.1:1/apis/ccompat/v7/", None).is_ok());
    }

    #[test]
    fn a_registry_that_is_down_is_transient() {
        // Port 1 on loopback: nothing listens there.
        let r = Registry::new("http://127.0.0.1:1", None).unwrap();
        let e = r.ping().unwrap_err();
        assert!(e.is_transient(), "{e}");
        let stop = AtomicBool::new(false);
        let t = Instant::now();
        assert!(r.wait_until_up(Duration::from_millis(1500), &stop).unwrap_err().is_transient());
        assert!(t.elapsed() >= Duration::from_millis(1500));
    }
}
