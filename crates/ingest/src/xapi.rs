//! xAPI 1.0.3 and 2.0 statements: one statement, or an array of them (the
//! body of `POST /statements`).
//!
//! | verb IRI | ActivityEvent |
//! |---|---|
//! | `https://w3id.org/xapi/adl/verbs/logged-in` | `LOGIN` |
//! | `https://w3id.org/xapi/adl/verbs/logged-out` | `LOGOUT` |
//! | `http://adlnet.gov/expapi/verbs/attended` | with `result.duration`: `LIVE_LEAVE` with `duration_seconds`, ending at `timestamp`; without: `LIVE_JOIN`. `live_session_id` ← `object.id` |
//! | `http://adlnet.gov/expapi/verbs/completed`, `http://activitystrea.ms/schema/1.0/submit` | `SUBMISSION` |
//! | `http://adlnet.gov/expapi/verbs/answered` | `CONTENT_ACCESS` (a per-source table can make it `SUBMISSION`) |
//! | `http://adlnet.gov/expapi/verbs/commented` | `MESSAGE`, `FROM_STUDENT` (a comment by staff names no student and is ignored) |
//! | `http://adlnet.gov/expapi/verbs/launched`, `http://adlnet.gov/expapi/verbs/experienced` | `CONTENT_ACCESS`; `RECORDING_VIEW` (with `result.duration`) when `object.definition.type` is a video activity type |
//! | `http://adlnet.gov/expapi/verbs/voided` and any other verb | ignored, counted by verb IRI, unless the per-source table ([`XapiOptions::verbs`]) names a kind |
//!
//! Every statement: `event_id` ← `id` (a statement without one, which only
//! an LRS may complete, gets `xapi:` and a hash of actor, verb, object and
//! time); `occurred_at` ← `timestamp`, else `stored`; student ←
//! `actor.account.name`, else `actor.mbox` (the `mailto:` IRI as sent),
//! through the identity view; `section_id` ← the first
//! `context.contextActivities.grouping` id, else the first `parent` id,
//! through the view; `attributes` ← `object_id`, `registration`,
//! `account_home_page`.
//!
//! A batch that repeats a statement id is refused whole
//! ([`IngestError::DuplicateId`]; an LRS answers 400). A timestamp must carry
//! its offset (xAPI 2.0 requires one; without it the school date is unknown).

use std::collections::{BTreeMap, HashMap};

use rollcall_model::{ActivityKind, Direction};

use crate::json::{parse, Node};
use crate::{derived_id, iso_duration_seconds, Draft, IdentityView, IngestError, Normalizer, Outcome, Rejected};

pub const LOGGED_IN: &str = "https://w3id.org/xapi/adl/verbs/logged-in";
pub const LOGGED_OUT: &str = "https://w3id.org/xapi/adl/verbs/logged-out";
pub const ATTENDED: &str = "http://adlnet.gov/expapi/verbs/attended";
pub const COMPLETED: &str = "http://adlnet.gov/expapi/verbs/completed";
pub const SUBMIT: &str = "http://activitystrea.ms/schema/1.0/submit";
pub const ANSWERED: &str = "http://adlnet.gov/expapi/verbs/answered";
pub const COMMENTED: &str = "http://adlnet.gov/expapi/verbs/commented";
pub const LAUNCHED: &str = "http://adlnet.gov/expapi/verbs/launched";
pub const EXPERIENCED: &str = "http://adlnet.gov/expapi/verbs/experienced";

/// Activity types taken as a recording of instruction.
pub const VIDEO_TYPES: &[&str] = &["https://w3id.org/xapi/video/activity-type/video", "http://activitystrea.ms/schema/1.0/video"];

/// A source's settings.
#[derive(Debug, Clone)]
pub struct XapiOptions {
    pub source: String,
    /// Verb IRI → kind, for verbs the built-in table does not know or
    /// should read otherwise (`answered` → `SUBMISSION`). Consulted first.
    pub verbs: BTreeMap<String, ActivityKind>,
}

impl XapiOptions {
    pub fn new(source: &str) -> XapiOptions {
        XapiOptions { source: source.to_string(), verbs: BTreeMap::new() }
    }
}

/// Normalizes one statement or an array of them.
pub fn normalize(body: &[u8], ids: &IdentityView, options: &XapiOptions) -> Result<Outcome, Rejected> {
    let doc = parse(body)?;
    let root = Node::root(&doc);
    let statements = root.one_or_many();
    let mut n = Normalizer::new(ids, &options.source);
    // Statement ids are case-insensitive UUIDs: compare them lower-cased.
    let mut seen: HashMap<String, String> = HashMap::new();
    for s in &statements {
        if let Some(Ok(id)) = s.get("id").map(|i| i.text()) {
            if let Some(first) = seen.get(&id.to_ascii_lowercase()) {
                n.errors.push(IngestError::DuplicateId {
                    place: format!("{}.id", s.place),
                    id: id.to_string(),
                    first: first.clone(),
                });
                continue;
            }
            seen.insert(id.to_ascii_lowercase(), crate::place_name(&s.place));
        }
    }
    if !n.errors.is_empty() {
        return n.finish();
    }
    for s in &statements {
        if let Err(e) = statement(&mut n, s, options) {
            n.errors.push(e);
        }
    }
    n.finish()
}

fn statement(n: &mut Normalizer, s: &Node, options: &XapiOptions) -> Result<(), IngestError> {
    if !s.is_object() {
        return Err(s.err(format!("expected a statement object, found {}", crate::json::kind(s.v))));
    }
    let actor = s.req("actor")?;
    let verb = s.req("verb")?.req_text("id")?;
    let object = s.req("object")?;
    let at = match s.get("timestamp") {
        Some(t) => t.time()?,
        None => s.get("stored").ok_or_else(|| s.err("neither `timestamp` nor `stored` is given"))?.time()?,
    };
    let (key, home_page) = match actor.get("account") {
        Some(account) => (account.req_text("name")?.to_string(), account.opt_text("homePage")?),
        None => match actor.get("mbox") {
            Some(m) => (m.text()?.to_string(), None),
            None => {
                return Err(actor
                    .err("no `account.name` or `mbox` to identify the person (mbox_sha1sum, openid and groups are not read)"))
            }
        },
    };
    let object_id = object.opt_text("id")?;
    let activity_type = object.get("definition").map(|d| d.opt_text("type")).transpose()?.flatten();
    let duration = match s.get("result").and_then(|r| r.get("duration")) {
        Some(d) => {
            let text = d.text()?;
            Some(iso_duration_seconds(text).ok_or_else(|| d.err(format!("`{text}` is not an ISO 8601 duration")))?)
        }
        None => None,
    };
    let is_video = activity_type.is_some_and(|t| VIDEO_TYPES.contains(&t));
    let kind = match options.verbs.get(verb) {
        Some(k) => *k,
        None => match verb {
            LOGGED_IN => ActivityKind::Login,
            LOGGED_OUT => ActivityKind::Logout,
            ATTENDED if duration.is_some() => ActivityKind::LiveLeave,
            ATTENDED => ActivityKind::LiveJoin,
            COMPLETED | SUBMIT => ActivityKind::Submission,
            ANSWERED => ActivityKind::ContentAccess,
            COMMENTED => ActivityKind::Message,
            LAUNCHED | EXPERIENCED if is_video => ActivityKind::RecordingView,
            LAUNCHED | EXPERIENCED => ActivityKind::ContentAccess,
            _ => {
                n.out.ignore(verb);
                return Ok(());
            }
        },
    };
    let event_id = match s.get("id") {
        Some(id) => id.text()?.to_string(),
        None => derived_id("xapi", &[&key, verb, object_id.unwrap_or(""), &at.to_rfc3339()]),
    };
    let mut d = Draft::new(event_id, kind, at, key);
    if let Some(ctx) = s.get("context") {
        if let Some(r) = ctx.opt_text("registration")? {
            d.attr("registration", r);
        }
        if let Some(acts) = ctx.get("contextActivities") {
            let first = |name: &str| -> Result<Option<String>, IngestError> {
                match acts.get(name).and_then(|g| g.one_or_many().into_iter().next()) {
                    Some(a) => Ok(Some(a.req_text("id")?.to_string())),
                    None => Ok(None),
                }
            };
            d.section_key = match first("grouping")? {
                Some(g) => Some(g),
                None => first("parent")?,
            };
        }
    }
    if let Some(o) = object_id {
        d.attr("object_id", o);
    }
    if let Some(h) = home_page {
        d.attr("account_home_page", h);
    }
    match kind {
        // The data model reads a duration only on a LIVE_LEAVE (it then
        // counts on its own, ending at `occurred_at`) or a RECORDING_VIEW.
        ActivityKind::LiveLeave | ActivityKind::RecordingView => d.duration_seconds = duration,
        _ => {}
    }
    if matches!(kind, ActivityKind::LiveJoin | ActivityKind::LiveLeave) {
        d.live_session_id = object_id.map(str::to_string);
    }
    if kind == ActivityKind::Message {
        d.direction = Some(Direction::FromStudent);
    }
    n.emit(&s.place, verb, d);
    Ok(())
}
