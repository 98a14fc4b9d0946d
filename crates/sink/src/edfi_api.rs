//! `rollcall sink edfi`: the determinations the PostgreSQL sink keeps, sent
//! to an Ed-Fi ODS/API as they change.
//!
//! Each pass walks `determinations` in key order, makes each row's document
//! with the [`crate::edfi`] mapping, and compares it with what was last sent
//! for that key (`edfi_posted`): a new key is POSTed (the API upserts on the
//! natural key: 201 new, 200 updated); a document whose hash is unchanged is
//! not sent again; a changed document under the same natural key is POSTed
//! again; a document whose natural key changed (the category is part of it)
//! has its old resource DELETEd first (by the id from the POST's `Location`,
//! or found by a GET on the old natural key), then is POSTed.
//!
//! Crash safety: before a POST the key's row says `posting` with the new
//! hash, and after the API's answer `posted` (or `refused`). A restart that
//! finds `posting` with the hash it would send asks the API (GET by natural
//! key) whether the document is there already, and posts only if not; so a
//! SIGKILL at any instant sends no document twice. The pass's position
//! (`edfi_cursor`) is stored after every page, so a restart goes on where
//! the pass stopped rather than at the start.
//!
//! The API: OAuth2 client credentials at `{base}/oauth/token` (HTTP Basic),
//! the token kept until shortly before it expires and fetched again on a
//! 401; 5xx, 429 (its Retry-After honoured) and network failures retried
//! with exponential backoff; any other 4xx is a refusal, recorded in
//! `edfi_refusals` with the API's problem-details message, and the pass goes on.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::NaiveDate;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio_postgres::Client;
use tracing::{info, warn};

use crate::edfi::{to_document, Mapping, Row, SCHOOL_EVENTS, SECTION_EVENTS};

/// Why `rollcall sink edfi` stopped, or could not start.
#[derive(Debug, thiserror::Error)]
pub enum EdfiApiError {
    #[error("setting {field}: {message}")]
    Config { field: &'static str, message: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("database: {what}: {source}")]
    Db {
        what: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error(transparent)]
    Migration(#[from] crate::SinkError),
    #[error("{method} {url} ({what}): {source}")]
    Http {
        method: &'static str,
        url: String,
        what: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("token from {url}: HTTP {status}: {message}")]
    Token { url: String, status: u16, message: String },
    #[error("{method} {url} ({what}): HTTP {status} after {attempts} attempts: {message}")]
    GaveUp { method: &'static str, url: String, what: String, status: u16, attempts: u32, message: String },
    #[error("{method} {url} ({what}): HTTP 401 with a token fetched just now: the client may not use this resource")]
    Unauthorized { method: &'static str, url: String, what: String },
}

fn db(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> EdfiApiError {
    let what = what.into();
    move |source| EdfiApiError::Db { what, source }
}

/// A client secret: read from a file, sent only in the token request, never
/// shown (`Debug` prints `***`; there is no `Display`).
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The file's content without its trailing line break.
    pub fn read(path: &std::path::Path) -> Result<Secret, EdfiApiError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| EdfiApiError::Io { what: format!("reading the client secret from {}", path.display()), source })?;
        let s = text.trim_end_matches(['\r', '\n']);
        if s.is_empty() {
            return Err(EdfiApiError::Config { field: "client_secret_file", message: format!("{} is empty", path.display()) });
        }
        Ok(Secret(s.to_string()))
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How failed requests (5xx, 429, no answer) are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait after the first failure; doubled after each further one…
    pub base: Duration,
    /// …up to this.
    pub max: Duration,
    /// Attempts in all (the first included) before giving up.
    pub attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { base: Duration::from_millis(500), max: Duration::from_secs(30), attempts: 8 }
    }
}

/// A Retry-After this long is not believed further.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// The wait before the next attempt after `failures` failed ones, or `None`
/// when the policy's attempts are used up. A server's Retry-After wins over
/// the schedule (up to five minutes).
pub fn backoff(p: &RetryPolicy, failures: u32, retry_after: Option<Duration>) -> Option<Duration> {
    if failures == 0 || failures >= p.attempts {
        return None;
    }
    if let Some(r) = retry_after {
        return Some(r.min(MAX_RETRY_AFTER));
    }
    let factor = 1u32.checked_shl(failures - 1).unwrap_or(u32::MAX);
    Some(p.base.saturating_mul(factor).min(p.max))
}

/// A Retry-After header: delay-seconds, or an HTTP date (RFC 7231).
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let v = value.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    Some((at.with_timezone(&chrono::Utc) - now).to_std().unwrap_or(Duration::ZERO))
}

/// Everything `rollcall sink edfi` needs.
#[derive(Clone)]
pub struct EdfiSyncConfig {
    /// The PostgreSQL sink's database.
    pub database_url: String,
    /// The ODS/API's base URL, e.g. `https://api.example.org/v7.1/api` (the
    /// part before `/oauth/token` and `/data/v3`).
    pub base_url: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub mapping: Mapping,
    /// Also PROVISIONAL determinations (by default FINAL and CORRECTION).
    pub include_provisional: bool,
    /// One pass over the table, then stop.
    pub once: bool,
    /// The pause between passes.
    pub poll: Duration,
    /// Rows per page; the position is stored after each.
    pub page: i64,
    pub retry: RetryPolicy,
    /// One request's time limit.
    pub timeout: Duration,
}

impl std::fmt::Debug for EdfiSyncConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdfiSyncConfig")
            .field("database_url", &crate::redact_url(&self.database_url))
            .field("base_url", &self.base_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("include_provisional", &self.include_provisional)
            .field("once", &self.once)
            .field("poll", &self.poll)
            .field("page", &self.page)
            .field("retry", &self.retry)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl EdfiSyncConfig {
    pub fn new(database_url: String, base_url: String, client_id: String, client_secret: Secret) -> EdfiSyncConfig {
        EdfiSyncConfig {
            database_url,
            base_url,
            client_id,
            client_secret,
            mapping: Mapping::default(),
            include_provisional: false,
            once: false,
            poll: Duration::from_secs(30),
            page: 500,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(30),
        }
    }

    pub fn validate(&self) -> Result<(), EdfiApiError> {
        let invalid = |field, message: String| Err(EdfiApiError::Config { field, message });
        if let Err(e) = self.database_url.parse::<tokio_postgres::Config>() {
            return invalid("database_url", format!("`{}` is not a PostgreSQL URL: {e}", crate::redact_url(&self.database_url)));
        }
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            return invalid("base_url", format!("`{}` is not an http(s) URL", self.base_url));
        }
        if self.client_id.trim().is_empty() {
            return invalid("client_id", "must not be empty".into());
        }
        if self.page <= 0 || self.retry.attempts == 0 {
            return invalid("page / retry attempts", "must be above zero".into());
        }
        Ok(())
    }

    fn base(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }
}

/// The state of a key's row in `edfi_posted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostState {
    Posting,
    Posted,
    Refused,
}

impl PostState {
    fn as_str(self) -> &'static str {
        match self {
            PostState::Posting => "posting",
            PostState::Posted => "posted",
            PostState::Refused => "refused",
        }
    }

    fn parse(s: &str) -> PostState {
        match s {
            "posted" => PostState::Posted,
            "refused" => PostState::Refused,
            // Anything else is treated as unconfirmed: asked about, never assumed.
            _ => PostState::Posting,
        }
    }
}

/// What was last sent for a key.
#[derive(Debug, Clone, PartialEq)]
pub struct Posted {
    pub resource: String,
    pub natural_key: String,
    pub hash: String,
    pub resource_id: Option<String>,
    pub state: PostState,
}

/// What would be sent for a key now.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub resource: &'static str,
    pub natural_key: String,
    pub category: String,
    pub hash: String,
    pub body: Value,
}

impl Planned {
    pub fn new(resource: &'static str, body: Value) -> Planned {
        let params = key_params(resource, &body);
        Planned {
            resource,
            natural_key: natural_key(&params),
            category: body["attendanceEventCategoryDescriptor"].as_str().unwrap_or_default().to_string(),
            hash: document_hash(&body),
            body,
        }
    }
}

/// What a key needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Never sent: POST.
    New,
    /// Sent (or refused) with this very hash: nothing.
    Unchanged,
    /// Same natural key, another document: POST (the API updates).
    Updated,
    /// The natural key changed (the category, or the resource): DELETE the
    /// old resource, then POST.
    KeyChanged,
    /// This hash was being posted when the last run stopped: ask the API.
    Unconfirmed,
    /// Sent before, but the mapping now gives no document: DELETE.
    Withdrawn,
}

/// Compares what was sent with what would be sent; `None`: nothing either way.
pub fn detect(prev: Option<&Posted>, next: Option<&Planned>) -> Option<Change> {
    Some(match (prev, next) {
        (None, None) => return None,
        (None, Some(_)) => Change::New,
        (Some(_), None) => Change::Withdrawn,
        (Some(p), Some(n)) => {
            if p.resource != n.resource || p.natural_key != n.natural_key {
                Change::KeyChanged
            } else if p.hash == n.hash {
                match p.state {
                    PostState::Posted | PostState::Refused => Change::Unchanged,
                    PostState::Posting => Change::Unconfirmed,
                }
            } else {
                Change::Updated
            }
        }
    })
}

/// The natural key of a document as the API's GET query parameters.
pub fn key_params(resource: &str, body: &Value) -> Vec<(String, String)> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let mut p = vec![("studentUniqueId".to_string(), text(&body["studentReference"]["studentUniqueId"]))];
    if resource == SECTION_EVENTS {
        let s = &body["sectionReference"];
        for f in ["localCourseCode", "schoolId", "schoolYear", "sectionIdentifier", "sessionName"] {
            p.push((f.to_string(), text(&s[f])));
        }
    } else {
        let s = &body["sessionReference"];
        for f in ["schoolId", "schoolYear", "sessionName"] {
            p.push((f.to_string(), text(&s[f])));
        }
    }
    p.push(("eventDate".into(), text(&body["eventDate"])));
    p.push(("attendanceEventCategoryDescriptor".into(), text(&body["attendanceEventCategoryDescriptor"])));
    p
}

fn natural_key(params: &[(String, String)]) -> String {
    serde_json::to_string(params).unwrap_or_default()
}

fn params_of(natural_key: &str) -> Vec<(String, String)> {
    serde_json::from_str(natural_key).unwrap_or_default()
}

/// SHA-256 of the document's canonical JSON (keys sorted), in hex.
pub fn document_hash(body: &Value) -> String {
    let digest = Sha256::digest(body.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether every field of `ours` is in `theirs` with the same value (the
/// API adds `id`, `_etag`, `link`s of its own).
pub fn same_document(ours: &Value, theirs: &Value) -> bool {
    match (ours, theirs) {
        (Value::Object(a), Value::Object(b)) => a.iter().all(|(k, v)| b.get(k).is_some_and(|w| same_document(v, w))),
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    }
}

/// The resource id at the end of a `Location` header.
pub fn id_of_location(location: &str) -> Option<String> {
    let path = location.split(['?', '#']).next()?.trim_end_matches('/');
    path.rsplit('/').next().filter(|s| !s.is_empty()).map(str::to_string)
}

/// The API's words for a refusal: problem details (`detail`, else `title`,
/// and the `errors` / `validationErrors` it lists), else the body itself.
pub fn problem_message(body: &str) -> String {
    let cut = |s: &str| s.chars().take(2000).collect::<String>();
    let Ok(v) = serde_json::from_str::<Value>(body) else { return cut(body.trim()) };
    let mut parts = Vec::new();
    for f in ["detail", "title", "message"] {
        if let Some(s) = v.get(f).and_then(Value::as_str) {
            parts.push(s.to_string());
            break;
        }
    }
    if let Some(errors) = v.get("errors").and_then(Value::as_array) {
        parts.extend(errors.iter().map(|e| e.as_str().map(str::to_string).unwrap_or_else(|| e.to_string())));
    }
    if let Some(ve) = v.get("validationErrors").and_then(Value::as_object) {
        for (field, msgs) in ve {
            parts.push(format!("{field}: {msgs}"));
        }
    }
    if parts.is_empty() {
        return cut(body.trim());
    }
    cut(&parts.join("; "))
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncStats {
    pub passes: u64,
    pub rows: u64,
    /// POSTs answered 201 (created) and 200 (updated).
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub deleted: u64,
    /// Documents found already there after a restart (not posted again).
    pub confirmed: u64,
    pub refused: u64,
    pub retries: u64,
    pub token_fetches: u64,
    pub skipped: BTreeMap<&'static str, u64>,
}

/// An answer that is not a retry or a failure.
enum Answer {
    /// 2xx, or a 404 (for GET and DELETE: not there).
    Done { status: u16, location: Option<String>, body: String },
    /// Any other 4xx: the API's refusal.
    Refused { status: u16, body: String },
}

struct Api {
    http: reqwest::Client,
    base: String,
    client_id: String,
    secret: Secret,
    retry: RetryPolicy,
    token: Option<(String, Instant)>,
    stop: Arc<AtomicBool>,
}

impl Api {
    fn url(&self, resource: &str) -> String {
        format!("{}/data/v3/ed-fi/{resource}", self.base)
    }

    async fn sleep(&self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until && !self.stop.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(50).min(until - Instant::now())).await;
        }
    }

    /// The cached token, or a new one.
    async fn token(&mut self, stats: &mut SyncStats) -> Result<String, EdfiApiError> {
        if let Some((t, until)) = &self.token {
            if Instant::now() < *until {
                return Ok(t.clone());
            }
        }
        let url = format!("{}/oauth/token", self.base);
        let mut failures = 0;
        loop {
            let sent = self
                .http
                .post(&url)
                .basic_auth(&self.client_id, Some(self.secret.expose()))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await;
            let (status, retry_after, body) = match sent {
                Err(source) => {
                    failures += 1;
                    if let Some(d) = backoff(&self.retry, failures, None) {
                        warn!(url, error = %source, retry_in_ms = d.as_millis() as u64, "token request failed; retrying");
                        stats.retries += 1;
                        self.sleep(d).await;
                        continue;
                    }
                    return Err(EdfiApiError::Http { method: "POST", url, what: "token".into(), source });
                }
                Ok(r) => {
                    let status = r.status().as_u16();
                    let ra = retry_after(&r);
                    (status, ra, r.text().await.unwrap_or_default())
                }
            };
            if status == 429 || status >= 500 {
                failures += 1;
                if let Some(d) = backoff(&self.retry, failures, retry_after) {
                    warn!(url, status, retry_in_ms = d.as_millis() as u64, "token request failed; retrying");
                    stats.retries += 1;
                    self.sleep(d).await;
                    continue;
                }
            }
            if !(200..300).contains(&status) {
                return Err(EdfiApiError::Token { url, status, message: problem_message(&body) });
            }
            let v: Value = serde_json::from_str(&body).map_err(|e| EdfiApiError::Token {
                url: url.clone(),
                status,
                message: format!("the answer is not JSON: {e}"),
            })?;
            let Some(token) = v.get("access_token").and_then(Value::as_str).filter(|t| !t.is_empty()) else {
                return Err(EdfiApiError::Token { url, status, message: "the answer has no access_token".into() });
            };
            let expires_in = v.get("expires_in").and_then(Value::as_u64).unwrap_or(1800);
            // Renewed a little before the API would refuse it.
            let margin = (expires_in / 10).min(60);
            let until = Instant::now() + Duration::from_secs(expires_in.saturating_sub(margin));
            stats.token_fetches += 1;
            self.token = Some((token.to_string(), until));
            return Ok(token.to_string());
        }
    }

    /// One request, with the token, a fresh token after a 401, and retries.
    async fn send(
        &mut self,
        method: &'static str,
        url: &str,
        query: &[(String, String)],
        body: Option<&Value>,
        what: &str,
        stats: &mut SyncStats,
    ) -> Result<Answer, EdfiApiError> {
        let mut failures = 0;
        let mut refreshed = false;
        loop {
            let token = self.token(stats).await?;
            let m = match method {
                "GET" => reqwest::Method::GET,
                "DELETE" => reqwest::Method::DELETE,
                _ => reqwest::Method::POST,
            };
            let mut req = self.http.request(m, url).bearer_auth(&token);
            if !query.is_empty() {
                req = req.query(query);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let r = match req.send().await {
                Ok(r) => r,
                Err(source) => {
                    failures += 1;
                    if let Some(d) = backoff(&self.retry, failures, None) {
                        warn!(method, url, error = %source, retry_in_ms = d.as_millis() as u64, "no answer; retrying");
                        stats.retries += 1;
                        self.sleep(d).await;
                        continue;
                    }
                    return Err(EdfiApiError::Http { method, url: url.into(), what: what.into(), source });
                }
            };
            let status = r.status().as_u16();
            let ra = retry_after(&r);
            let location = r.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string);
            let text = r.text().await.unwrap_or_default();
            match status {
                401 if !refreshed => {
                    // Expired or revoked: one fresh token, then the same request.
                    refreshed = true;
                    self.token = None;
                    continue;
                }
                401 => return Err(EdfiApiError::Unauthorized { method, url: url.into(), what: what.into() }),
                429 | 500..=599 => {
                    failures += 1;
                    if let Some(d) = backoff(&self.retry, failures, ra) {
                        warn!(method, url, status, retry_in_ms = d.as_millis() as u64, "the API asks to retry");
                        stats.retries += 1;
                        self.sleep(d).await;
                        continue;
                    }
                    return Err(EdfiApiError::GaveUp {
                        method,
                        url: url.into(),
                        what: what.into(),
                        status,
                        attempts: failures,
                        message: problem_message(&text),
                    });
                }
                200..=299 => return Ok(Answer::Done { status, location, body: text }),
                404 if method != "POST" => return Ok(Answer::Done { status, location, body: text }),
                _ => return Ok(Answer::Refused { status, body: text }),
            }
        }
    }

    /// The id of the resource with this natural key whose fields include
    /// `doc`'s (any with the key when `doc` is `None`), if the API has one.
    async fn find(
        &mut self,
        resource: &str,
        params: &[(String, String)],
        doc: Option<&Value>,
        what: &str,
        stats: &mut SyncStats,
    ) -> Result<Option<(String, bool)>, EdfiApiError> {
        let url = self.url(resource);
        match self.send("GET", &url, params, None, what, stats).await? {
            Answer::Done { status: 200, body, .. } => {
                let found: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let first = found.as_array().and_then(|a| a.first()).cloned();
                Ok(first.and_then(|f| {
                    let id = f.get("id").and_then(Value::as_str).map(str::to_string)?;
                    let same = doc.is_none_or(|d| same_document(d, &f));
                    Some((id, same))
                }))
            }
            _ => Ok(None),
        }
    }
}

fn retry_after(r: &reqwest::Response) -> Option<Duration> {
    r.headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, chrono::Utc::now()))
}

/// A determination's key, as in `determinations`' primary key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    student_id: String,
    scope: String,
    date: NaiveDate,
    section_key: String,
}

impl Key {
    fn describe(&self) -> String {
        format!("{} {} {} {}", self.student_id, self.scope, self.date, self.section_key)
    }
}

pub struct EdfiSync {
    cfg: EdfiSyncConfig,
    stop: Arc<AtomicBool>,
    stats: SyncStats,
}

impl EdfiSync {
    pub fn new(cfg: EdfiSyncConfig, stop: Arc<AtomicBool>) -> Result<EdfiSync, EdfiApiError> {
        cfg.validate()?;
        Ok(EdfiSync { cfg, stop, stats: SyncStats::default() })
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Runs passes until stopped (or one, with `once`).
    pub fn run(&mut self) -> Result<SyncStats, EdfiApiError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| EdfiApiError::Io { what: "starting the async runtime".into(), source })?;
        rt.block_on(self.run_async())
    }

    async fn run_async(&mut self) -> Result<SyncStats, EdfiApiError> {
        let url = crate::redact_url(&self.cfg.database_url);
        let (mut client, connection) = tokio_postgres::connect(&self.cfg.database_url, tokio_postgres::NoTls)
            .await
            .map_err(db(format!("connecting to {url}")))?;
        let conn = tokio::spawn(async move {
            if let Err(e) = connection.await {
                warn!(error = %e, "database connection closed");
            }
        });
        let _abort = AbortOnDrop(conn);
        // One sender per database and API: a second waits for the first.
        let lock = lock_key(self.cfg.base());
        let mut said = false;
        loop {
            let row =
                client.query_one("SELECT pg_try_advisory_lock($1)", &[&lock]).await.map_err(db("taking the advisory lock"))?;
            if row.get::<_, bool>(0) {
                break;
            }
            if !said {
                info!("another `rollcall sink edfi` sends this database to this API; waiting for it to stop");
                said = true;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            if self.stopped() {
                return Ok(self.stats.clone());
            }
        }
        let applied = crate::migrate::migrate(&mut client).await?;
        if !applied.is_empty() {
            info!(?applied, "database migrations applied");
        }
        let http = reqwest::Client::builder()
            .timeout(self.cfg.timeout)
            .user_agent(concat!("rollcall/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| EdfiApiError::Http {
                method: "-",
                url: self.cfg.base_url.clone(),
                what: "making the HTTP client".into(),
                source,
            })?;
        let mut api = Api {
            http,
            base: self.cfg.base().to_string(),
            client_id: self.cfg.client_id.clone(),
            secret: self.cfg.client_secret.clone(),
            retry: self.cfg.retry,
            token: None,
            stop: self.stop.clone(),
        };
        info!(database = %url, api = %self.cfg.base_url, "sending determinations to the Ed-Fi API");
        loop {
            self.pass(&client, &mut api).await?;
            if self.cfg.once || self.stopped() {
                break;
            }
            api.sleep(self.cfg.poll).await;
            if self.stopped() {
                break;
            }
        }
        Ok(self.stats.clone())
    }

    /// One pass over `determinations`, from the stored position to the end.
    async fn pass(&mut self, client: &Client, api: &mut Api) -> Result<(), EdfiApiError> {
        let base = self.cfg.base().to_string();
        let row = client
            .query_opt("SELECT student_id, scope, date, section_key FROM edfi_cursor WHERE base_url = $1", &[&base])
            .await
            .map_err(db("reading edfi_cursor"))?;
        let mut after: Option<Key> = row.and_then(|r| {
            Some(Key { student_id: r.get::<_, Option<String>>(0)?, scope: r.get(1), date: r.get(2), section_key: r.get(3) })
        });
        if let Some(k) = &after {
            info!(at = %k.describe(), "resuming the pass where it stopped");
        }
        let stmt = client
            .prepare(
                "SELECT d.determination_id, d.student_id, d.school_id, d.scope, d.date, d.section_id, d.policy, d.status,
                        d.code, d.attendance_type, d.minutes, d.rule, d.section_key,
                        p.resource, p.natural_key, p.document_hash, p.resource_id, p.state
                   FROM determinations d
                   LEFT JOIN edfi_posted p
                          ON p.base_url = $7 AND p.student_id = d.student_id AND p.scope = d.scope
                         AND p.date = d.date AND p.section_key = d.section_key
                  WHERE ($1::text IS NULL OR (d.student_id, d.scope, d.date, d.section_key) > ($1, $2, $3, $4))
                    AND ($5 OR d.finality <> 'PROVISIONAL')
                  ORDER BY d.student_id, d.scope, d.date, d.section_key
                  LIMIT $6",
            )
            .await
            .map_err(db("preparing the pass's query"))?;
        loop {
            let (s, sc, d, sk) = match &after {
                Some(k) => (Some(k.student_id.clone()), Some(k.scope.clone()), Some(k.date), Some(k.section_key.clone())),
                None => (None, None, None, None),
            };
            let rows = client
                .query(&stmt, &[&s, &sc, &d, &sk, &self.cfg.include_provisional, &self.cfg.page, &base])
                .await
                .map_err(db("reading determinations"))?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                let row = Row {
                    determination_id: r.get(0),
                    student_id: r.get(1),
                    school_id: r.get(2),
                    scope: r.get(3),
                    date: r.get(4),
                    section_id: r.get(5),
                    policy: r.get(6),
                    status: r.get(7),
                    code: r.get(8),
                    attendance_type: r.get(9),
                    minutes: r.get(10),
                    rule: r.get(11),
                };
                let key =
                    Key { student_id: row.student_id.clone(), scope: row.scope.clone(), date: row.date, section_key: r.get(12) };
                let prev = r.get::<_, Option<String>>(13).map(|resource| Posted {
                    resource,
                    natural_key: r.get(14),
                    hash: r.get(15),
                    resource_id: r.get(16),
                    state: PostState::parse(r.get::<_, &str>(17)),
                });
                self.stats.rows += 1;
                self.handle(client, api, &key, &row, prev.as_ref()).await?;
                after = Some(key);
                if self.stopped() {
                    break;
                }
            }
            if let Some(k) = &after {
                client
                    .execute(
                        "INSERT INTO edfi_cursor (base_url, student_id, scope, date, section_key) VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (base_url) DO UPDATE SET student_id = excluded.student_id, scope = excluded.scope,
                           date = excluded.date, section_key = excluded.section_key, updated_at = now()",
                        &[&base, &k.student_id, &k.scope, &k.date, &k.section_key],
                    )
                    .await
                    .map_err(db("writing edfi_cursor"))?;
            }
            if self.stopped() {
                return Ok(());
            }
        }
        // The pass is complete: the next starts at the beginning.
        client
            .execute(
                "INSERT INTO edfi_cursor (base_url) VALUES ($1)
                 ON CONFLICT (base_url) DO UPDATE SET student_id = NULL, scope = NULL, date = NULL, section_key = NULL,
                   updated_at = now()",
                &[&base],
            )
            .await
            .map_err(db("resetting edfi_cursor"))?;
        self.stats.passes += 1;
        let st = &self.stats;
        info!(
            rows = st.rows,
            created = st.created,
            updated = st.updated,
            deleted = st.deleted,
            refused = st.refused,
            confirmed = st.confirmed,
            "pass complete"
        );
        Ok(())
    }

    async fn handle(
        &mut self,
        client: &Client,
        api: &mut Api,
        key: &Key,
        row: &Row,
        prev: Option<&Posted>,
    ) -> Result<(), EdfiApiError> {
        let planned = match to_document(&self.cfg.mapping, row) {
            Ok(d) => Some(Planned::new(d.resource, d.body)),
            Err(why) => {
                *self.stats.skipped.entry(why).or_default() += 1;
                None
            }
        };
        let what = format!("determination {}", row.determination_id);
        match detect(prev, planned.as_ref()) {
            None | Some(Change::Unchanged) => {
                self.stats.unchanged += 1;
                Ok(())
            }
            Some(Change::New) | Some(Change::Updated) => {
                let Some(p) = planned else { return Ok(()) };
                self.post(client, api, key, row, &p, &what).await
            }
            Some(Change::Unconfirmed) => {
                let Some(p) = planned else { return Ok(()) };
                let params = key_params(p.resource, &p.body);
                match api.find(p.resource, &params, Some(&p.body), &what, &mut self.stats).await? {
                    Some((id, true)) => {
                        self.stats.confirmed += 1;
                        self.mark(client, key, PostState::Posted, Some(&id), None).await
                    }
                    _ => self.post(client, api, key, row, &p, &what).await,
                }
            }
            Some(Change::KeyChanged) => {
                let Some(p) = planned else { return Ok(()) };
                if let Some(old) = prev {
                    if !self.delete(client, api, key, row, old, &what).await? {
                        return Ok(());
                    }
                }
                self.post(client, api, key, row, &p, &what).await
            }
            Some(Change::Withdrawn) => {
                if let Some(old) = prev {
                    if self.delete(client, api, key, row, old, &what).await? {
                        client
                            .execute(
                                "DELETE FROM edfi_posted
                                  WHERE base_url = $5 AND student_id = $1 AND scope = $2 AND date = $3 AND section_key = $4",
                                &[&key.student_id, &key.scope, &key.date, &key.section_key, &self.cfg.base()],
                            )
                            .await
                            .map_err(db(format!("forgetting {what} in edfi_posted")))?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Deletes what was sent for the key; false when the API refused.
    async fn delete(
        &mut self,
        client: &Client,
        api: &mut Api,
        key: &Key,
        row: &Row,
        old: &Posted,
        what: &str,
    ) -> Result<bool, EdfiApiError> {
        let id = match &old.resource_id {
            Some(id) => Some(id.clone()),
            None => api.find(&old.resource, &params_of(&old.natural_key), None, what, &mut self.stats).await?.map(|(id, _)| id),
        };
        let Some(id) = id else { return Ok(true) };
        let url = format!("{}/{id}", api.url(&old.resource));
        match api.send("DELETE", &url, &[], None, what, &mut self.stats).await? {
            Answer::Done { status, .. } => {
                if status != 404 {
                    self.stats.deleted += 1;
                }
                Ok(true)
            }
            Answer::Refused { status, body } => {
                self.refusal(client, key, row, &old.resource, "DELETE", status, &body).await?;
                Ok(false)
            }
        }
    }

    async fn post(
        &mut self,
        client: &Client,
        api: &mut Api,
        key: &Key,
        row: &Row,
        p: &Planned,
        what: &str,
    ) -> Result<(), EdfiApiError> {
        // Said before the POST: a restart that finds `posting` asks the API first.
        client
            .execute(
                "INSERT INTO edfi_posted (base_url, student_id, scope, date, section_key, determination_id, resource,
                                          natural_key, category, document_hash, state)
                 VALUES ($10, $1, $2, $3, $4, $5, $6, $7, $8, $9, 'posting')
                 ON CONFLICT (base_url, student_id, scope, date, section_key) DO UPDATE SET
                   determination_id = excluded.determination_id, category = excluded.category,
                   document_hash = excluded.document_hash, state = 'posting', updated_at = now(),
                   resource_id = CASE WHEN edfi_posted.resource = excluded.resource
                                       AND edfi_posted.natural_key = excluded.natural_key
                                      THEN edfi_posted.resource_id END,
                   location = CASE WHEN edfi_posted.resource = excluded.resource
                                    AND edfi_posted.natural_key = excluded.natural_key
                                   THEN edfi_posted.location END,
                   resource = excluded.resource, natural_key = excluded.natural_key",
                &[
                    &key.student_id,
                    &key.scope,
                    &key.date,
                    &key.section_key,
                    &row.determination_id,
                    &p.resource,
                    &p.natural_key,
                    &p.category,
                    &p.hash,
                    &self.cfg.base(),
                ],
            )
            .await
            .map_err(db(format!("recording {what} as posting")))?;
        let url = api.url(p.resource);
        match api.send("POST", &url, &[], Some(&p.body), what, &mut self.stats).await? {
            Answer::Done { status, location, .. } => {
                if status == 201 {
                    self.stats.created += 1;
                } else {
                    self.stats.updated += 1;
                }
                let id = location.as_deref().and_then(id_of_location);
                self.mark(client, key, PostState::Posted, id.as_deref(), location.as_deref()).await
            }
            Answer::Refused { status, body } => {
                self.refusal(client, key, row, p.resource, "POST", status, &body).await?;
                self.mark(client, key, PostState::Refused, None, None).await
            }
        }
    }

    /// Sets the key's state (and its id and location, when given).
    async fn mark(
        &self,
        client: &Client,
        key: &Key,
        state: PostState,
        id: Option<&str>,
        location: Option<&str>,
    ) -> Result<(), EdfiApiError> {
        client
            .execute(
                "UPDATE edfi_posted SET state = $5, resource_id = coalesce($6, resource_id),
                        location = coalesce($7, location), updated_at = now()
                  WHERE base_url = $8 AND student_id = $1 AND scope = $2 AND date = $3 AND section_key = $4",
                &[&key.student_id, &key.scope, &key.date, &key.section_key, &state.as_str(), &id, &location, &self.cfg.base()],
            )
            .await
            .map_err(db(format!("recording {} as {}", key.describe(), state.as_str())))?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn refusal(
        &mut self,
        client: &Client,
        key: &Key,
        row: &Row,
        resource: &str,
        method: &str,
        status: u16,
        body: &str,
    ) -> Result<(), EdfiApiError> {
        let message = problem_message(body);
        self.stats.refused += 1;
        // The key names a student: it is in the table, not in the log.
        warn!(resource, method, status, %message, "the Ed-Fi API refused a document; recorded in edfi_refusals");
        client
            .execute(
                "INSERT INTO edfi_refusals (base_url, student_id, scope, date, section_key, determination_id, resource,
                                            method, status, message, body)
                 VALUES ($11, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    &key.student_id,
                    &key.scope,
                    &key.date,
                    &key.section_key,
                    &row.determination_id,
                    &resource,
                    &method,
                    &(status as i32),
                    &message,
                    &body,
                    &self.cfg.base(),
                ],
            )
            .await
            .map_err(db(format!("recording the refusal of determination {}", row.determination_id)))?;
        Ok(())
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn lock_key(base: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in b"rollcall-sink-edfi:".iter().chain(base.as_bytes()) {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

/// The two resources' names, for callers that check them.
pub const RESOURCES: [&str; 2] = [SCHOOL_EVENTS, SECTION_EVENTS];

/// HTTP Basic credentials as the token request sends them (for tests of a fake API).
pub fn basic_credentials(client_id: &str, secret: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{secret}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn posted(natural_key: &str, hash: &str, state: PostState) -> Posted {
        Posted {
            resource: SCHOOL_EVENTS.into(),
            natural_key: natural_key.into(),
            hash: hash.into(),
            resource_id: Some("id1".into()),
            state,
        }
    }

    fn planned(natural_key: &str, hash: &str) -> Planned {
        Planned {
            resource: SCHOOL_EVENTS,
            natural_key: natural_key.into(),
            category: "c".into(),
            hash: hash.into(),
            body: json!({}),
        }
    }

    #[test]
    fn change_detection_table() {
        use PostState::{Posting, Refused};
        let done = PostState::Posted;
        let cases: &[(Option<Posted>, Option<Planned>, Option<Change>)] = &[
            (None, None, None),
            (None, Some(planned("k", "h")), Some(Change::New)),
            (Some(posted("k", "h", done)), Some(planned("k", "h")), Some(Change::Unchanged)),
            (Some(posted("k", "h", Refused)), Some(planned("k", "h")), Some(Change::Unchanged)),
            (Some(posted("k", "h", Posting)), Some(planned("k", "h")), Some(Change::Unconfirmed)),
            (Some(posted("k", "h", done)), Some(planned("k", "h2")), Some(Change::Updated)),
            (Some(posted("k", "h", Posting)), Some(planned("k", "h2")), Some(Change::Updated)),
            (Some(posted("k", "h", done)), Some(planned("k2", "h2")), Some(Change::KeyChanged)),
            (Some(posted("k", "h", Refused)), Some(planned("k2", "h2")), Some(Change::KeyChanged)),
            (Some(posted("k", "h", done)), None, Some(Change::Withdrawn)),
        ];
        for (i, (prev, next, want)) in cases.iter().enumerate() {
            assert_eq!(detect(prev.as_ref(), next.as_ref()), *want, "case {i}");
        }
        // Another resource under the same key text is a key change too.
        let mut other = planned("k", "h");
        other.resource = SECTION_EVENTS;
        assert_eq!(detect(Some(&posted("k", "h", done)), Some(&other)), Some(Change::KeyChanged));
    }

    #[test]
    fn backoff_schedule_table() {
        let p = RetryPolicy { base: Duration::from_millis(500), max: Duration::from_secs(4), attempts: 6 };
        let ms = |n: u64| Some(Duration::from_millis(n));
        let cases: &[(u32, Option<Duration>, Option<Duration>)] = &[
            (0, None, None),
            (1, None, ms(500)),
            (2, None, ms(1000)),
            (3, None, ms(2000)),
            (4, None, ms(4000)),
            (5, None, ms(4000)),
            (6, None, None),
            (2, Some(Duration::from_secs(7)), Some(Duration::from_secs(7))),
            (2, Some(Duration::from_secs(3600)), Some(MAX_RETRY_AFTER)),
            (6, Some(Duration::from_secs(1)), None),
        ];
        for (failures, ra, want) in cases {
            assert_eq!(backoff(&p, *failures, *ra), *want, "after {failures} failures, Retry-After {ra:?}");
        }
        // No overflow on a long run.
        let long = RetryPolicy { attempts: u32::MAX, ..p };
        assert_eq!(backoff(&long, 100, None), Some(Duration::from_secs(4)));
    }

    #[test]
    fn retry_after_header_forms() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-30T00:00:00Z").unwrap().with_timezone(&chrono::Utc);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Mon, 30 Nov 2026 00:00:10 GMT", now), Some(Duration::from_secs(10)));
        assert_eq!(parse_retry_after("Sun, 29 Nov 2026 00:00:10 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn natural_keys_hold_the_category_and_hashes_the_document() {
        let doc = json!({
            "studentReference": {"studentUniqueId": "s1"},
            "schoolReference": {"schoolId": 7},
            "sessionReference": {"schoolId": 7, "schoolYear": 2021, "sessionName": "2020-2021 School Year"},
            "eventDate": "2020-10-06",
            "attendanceEventCategoryDescriptor": "uri://ed-fi.org/AttendanceEventCategoryDescriptor#In Attendance",
            "schoolAttendanceDuration": 390
        });
        let a = Planned::new(SCHOOL_EVENTS, doc.clone());
        let params = key_params(SCHOOL_EVENTS, &doc);
        assert_eq!(params.len(), 6);
        assert!(params.contains(&("schoolYear".into(), "2021".into())));
        assert_eq!(params_of(&a.natural_key), params);
        let mut moved = doc.clone();
        moved["attendanceEventCategoryDescriptor"] = json!("uri://ed-fi.org/AttendanceEventCategoryDescriptor#Tardy");
        let b = Planned::new(SCHOOL_EVENTS, moved);
        assert_ne!(a.natural_key, b.natural_key);
        let mut longer = doc.clone();
        longer["schoolAttendanceDuration"] = json!(400);
        let c = Planned::new(SCHOOL_EVENTS, longer);
        assert_eq!(a.natural_key, c.natural_key);
        assert_ne!(a.hash, c.hash);
        assert_eq!(a.hash, Planned::new(SCHOOL_EVENTS, doc.clone()).hash);
        assert_eq!(a.hash.len(), 64);
        // What the API gives back holds ours and more.
        let mut theirs = doc.clone();
        theirs["id"] = json!("abc");
        theirs["schoolReference"]["link"] = json!({"rel": "School"});
        assert!(same_document(&doc, &theirs));
        assert!(!same_document(&c.body, &theirs));
    }

    #[test]
    fn locations_and_problem_details() {
        assert_eq!(id_of_location("https://h/data/v3/ed-fi/studentSchoolAttendanceEvents/ab12"), Some("ab12".into()));
        assert_eq!(id_of_location("/x/ab12/"), Some("ab12".into()));
        let body = r#"{"type":"urn:ed-fi:api:bad-request:data-validation-failed","title":"Data Validation Failed",
                       "status":400,"detail":"Data validation failed. See 'validationErrors' for details.",
                       "errors":["eventDate is required"]}"#;
        let m = problem_message(body);
        assert!(m.starts_with("Data validation failed") && m.contains("eventDate is required"), "{m}");
        assert_eq!(problem_message("plain words"), "plain words");
    }

    #[test]
    fn secrets_are_not_shown() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        let mut cfg = EdfiSyncConfig::new("postgres://u:pw@h/db".into(), "http://api".into(), "id".into(), s);
        cfg.once = true;
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("pw@"), "{shown}");
        cfg.validate().unwrap();
        cfg.base_url = "ftp://x".into();
        assert!(cfg.validate().unwrap_err().to_string().contains("base_url"));
    }
}
