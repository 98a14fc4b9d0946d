//! 1EdTech Caliper 1.1 and 1.2: an envelope (`sensor`, `sendTime`,
//! `dataVersion`, `data[]`) of events and entities.
//!
//! | Caliper event | action | ActivityEvent |
//! |---|---|---|
//! | `SessionEvent` | `LoggedIn` | `LOGIN` |
//! | `SessionEvent` | `LoggedOut` | `LOGOUT` |
//! | `SessionEvent` | `TimedOut` | `LOGOUT`, `attributes.reason = timeout`; the actor is the SoftwareApplication, the student is `object.user` (else `session.user`) |
//! | `AssignableEvent`, `AssessmentEvent` | `Submitted` | `SUBMISSION` |
//! | `MessageEvent` | `Posted` | `MESSAGE`; `FROM_STUDENT` when `membership.roles` has `Learner`, `FROM_STAFF` for `Instructor` (and `Instructor#TeachingAssistant`), `TeachingAssistant`, `Administrator`, `ContentDeveloper`, `Manager` (without roles: by the identity view). A staff post names its student through `object.replyTo.creators[0]`; without one it is ignored |
//! | `MediaEvent` on a `VideoObject` or `AudioObject` | `Started`, `Ended` | `RECORDING_VIEW`; a `Started`→`Ended` pair of one actor and object in the same request is one event (the `Ended` one) with `duration_seconds` = Ended − Started |
//! | `MediaEvent` on other media | `Started`, `Ended` | `CONTENT_ACCESS` |
//! | `NavigationEvent` / `ViewEvent` / `ToolUseEvent` | `NavigatedTo` / `Viewed` / `Used` | `CONTENT_ACCESS` |
//! | anything else (other events and actions, entities in `data`, events whose actor is a SoftwareApplication) | | ignored, counted by `Type.Action` |
//!
//! Every event: `event_id` ← `id`; `occurred_at` ← `eventTime` (any RFC
//! 3339 offset is converted to UTC); student ← the actor's `id` through the
//! identity view (`student` rows); `section_id` ← `group.id` through the
//! view (`section` rows); `attributes` ← `object_id`, `ed_app`,
//! `session_id`, `roles`. Any entity may be an IRI string or an object.
//!
//! The media duration comes from the pair, never from a `duration` field:
//! the official 1.2 LoggedOut fixture's `duration` disagrees with its own
//! times (standards.md, surprise 10).
//!
//! Caliper 1.0 (`@context` `…/ctx/caliper/v1/Context`, `@id`/`@type` keys)
//! and any other `dataVersion` are refused with
//! [`IngestError::UnsupportedVersion`] (HTTP 422, Caliper §6.1).

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use rollcall_model::{ActivityKind, Direction};

use crate::encoded::Encoded;
use crate::json::{parse, Node, Tree};
use crate::{Draft, IdentityView, IngestError, Normalizer, Outcome, Rejected, Role};

mod scan;
mod typed;

pub const V1P1: &str = "http://purl.imsglobal.org/ctx/caliper/v1p1";
pub const V1P2: &str = "http://purl.imsglobal.org/ctx/caliper/v1p2";

/// Whose Caliper: the standard one, or Canvas's (whose keys are its own
/// user and course ids, shared with its Live Events form).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Standard,
    Canvas,
}

/// Normalizes a Caliper envelope.
pub fn normalize(body: &[u8], ids: &IdentityView, source: &str) -> Result<Outcome, Rejected> {
    if let Some(o) = typed::normalize(body, ids, source) {
        return Ok(o);
    }
    read_whole(body, ids, source)
}

/// [`normalize`], its events encoded: the fast path writes them straight
/// to Avro (see [`crate::encoded`]).
pub(crate) fn encode(body: &[u8], ids: &IdentityView, source: &str, received_at: DateTime<Utc>) -> Result<Encoded, Rejected> {
    if let Some(e) = typed::encode(body, ids, source, received_at) {
        return Ok(e);
    }
    read_whole(body, ids, source).map(|o| Encoded::from_outcome(o, received_at))
}

/// What the fast path gives up on: the body read into a tree first, which
/// is how every error is found and named.
fn read_whole(body: &[u8], ids: &IdentityView, source: &str) -> Result<Outcome, Rejected> {
    let doc = parse(body)?;
    normalize_value(&doc, ids, source, Dialect::Standard)
}

/// Whether a value is a Caliper 1.0 event or envelope, and where it says so.
/// `place` and `sep` are joined only for the answer (`data[3]` and `.`).
fn caliper_1_0<T: Tree>(v: &T, place: &str, sep: &str) -> Option<String> {
    let ctx = v.member("@context").and_then(T::as_text).unwrap_or("");
    if ctx.contains("/ctx/caliper/v1/") || ctx.ends_with("/ctx/caliper/v1") {
        return Some(format!("{place}{sep}@context"));
    }
    if v.member("@type").is_some() || v.member("@id").is_some() {
        return Some(format!("{place}{sep}@type"));
    }
    None
}

pub(crate) fn normalize_value<T: Tree>(doc: &T, ids: &IdentityView, source: &str, dialect: Dialect) -> Result<Outcome, Rejected> {
    let root = Node::root(doc);
    if !root.is_object() {
        return Err(root.err(format!("expected a Caliper envelope object, found {}", crate::json::kind(doc))).into());
    }
    // The version first: a 1.0 payload fails every later check, and the
    // platform must be told the version is the problem (422), not the shape.
    match doc.member("dataVersion").and_then(T::as_text) {
        Some(v) if v == V1P1 || v == V1P2 => {}
        Some(v) => {
            let found = if v.contains("/ctx/caliper/v1/") || v.ends_with("/ctx/caliper/v1") {
                "1.0".to_string()
            } else {
                format!("dataVersion `{v}`")
            };
            return Err(IngestError::UnsupportedVersion { place: "dataVersion".into(), found }.into());
        }
        _ => {
            if let Some(place) = caliper_1_0(doc, "", "") {
                return Err(IngestError::UnsupportedVersion { place, found: "1.0".into() }.into());
            }
            if let Some(data) = doc.member("data").and_then(T::elements) {
                for (i, d) in data.iter().enumerate() {
                    if let Some(place) = caliper_1_0(d, &format!("data[{i}]"), ".") {
                        return Err(IngestError::UnsupportedVersion { place, found: "1.0".into() }.into());
                    }
                }
            }
        }
    }
    let mut errors = Vec::new();
    if let Err(e) = root.req_text("sensor") {
        errors.push(e);
    }
    if let Err(e) = root.req("sendTime").and_then(|t| t.time()) {
        errors.push(e);
    }
    if let Err(e) = root.req("dataVersion").and_then(|v| v.text().map(|_| ())) {
        errors.push(e);
    }
    let data = match root.req("data").and_then(|d| d.items()) {
        Ok(d) => d,
        Err(e) => {
            errors.push(e);
            return Err(Rejected { errors });
        }
    };
    let mut n = Normalizer::new(ids, source);
    n.errors = errors;
    let pairs = media_pairs(&data, dialect);
    for item in &data {
        if let Some(place) = caliper_1_0(item.v, &item.place, ".") {
            n.errors.push(IngestError::UnsupportedVersion { place, found: "1.0".into() });
            continue;
        }
        if let Err(e) = event(&mut n, item, dialect, &pairs) {
            n.errors.push(e);
        }
    }
    n.finish()
}

/// The person key of an entity (a Person, or a Session's user).
fn person_key<T: Tree>(node: &Node<T>, dialect: Dialect, event: &Node<T>) -> Result<String, IngestError> {
    let id = node.entity_id()?;
    Ok(match dialect {
        Dialect::Standard => id.to_string(),
        Dialect::Canvas => canvas_user_key(id, event),
    })
}

/// Canvas: `user_sis_id` from the Canvas extension when it is there, else
/// the user id of the `urn:instructure:canvas:user:` IRI, the same key as
/// its Live Events form gives.
fn canvas_user_key<T: Tree>(iri: &str, event: &Node<T>) -> String {
    let sis = event
        .v
        .member("extensions")
        .and_then(|x| x.member("com.instructure.canvas"))
        .and_then(|c| c.member("user_sis_id"))
        .and_then(T::as_text)
        .filter(|s| !s.is_empty());
    match sis {
        Some(s) => s.to_string(),
        None => iri.strip_prefix("urn:instructure:canvas:user:").unwrap_or(iri).to_string(),
    }
}

fn class_key(group: &str, dialect: Dialect) -> String {
    match dialect {
        Dialect::Standard => group.to_string(),
        Dialect::Canvas => group.strip_prefix("urn:instructure:canvas:course:").unwrap_or(group).to_string(),
    }
}

fn is_recording<T: Tree>(object: &Node<T>) -> bool {
    matches!(object.entity_type(), Some("VideoObject" | "AudioObject"))
}

/// Started→Ended pairs of one actor and one media object within a request.
#[derive(Default)]
struct Pairs {
    /// For each paired Ended (by index in `data`), its Started's time.
    ended: HashMap<usize, DateTime<Utc>>,
    /// The paired Starteds.
    started: HashSet<usize>,
}

/// Each Started pairs with the first Ended of the same actor and object at
/// or after it.
fn media_pairs<T: Tree>(data: &[Node<T>], dialect: Dialect) -> Pairs {
    let mut open: HashMap<(String, String), Vec<(usize, DateTime<Utc>)>> = HashMap::new();
    let mut media = Vec::new();
    for (i, item) in data.iter().enumerate() {
        if item.v.member("type").and_then(T::as_text) != Some("MediaEvent") {
            continue;
        }
        let read = || -> Result<(String, String, String, DateTime<Utc>), IngestError> {
            let actor = person_key(&item.req("actor")?, dialect, item)?;
            let object = item.req("object")?.entity_id()?.to_string();
            Ok((item.req_text("action")?.to_string(), actor, object, item.req("eventTime")?.time()?))
        };
        if let Ok(m) = read() {
            media.push((i, m));
        }
    }
    // In time order, so that a request listing Ended before Started still pairs.
    media.sort_by_key(|(i, (_, _, _, t))| (*t, *i));
    let mut pairs = Pairs::default();
    for (i, (action, actor, object, t)) in media {
        match action.as_str() {
            "Started" => open.entry((actor, object)).or_default().push((i, t)),
            "Ended" => {
                if let Some(starts) = open.get_mut(&(actor, object)) {
                    if !starts.is_empty() {
                        let (s, started) = starts.remove(0);
                        pairs.ended.insert(i, started);
                        pairs.started.insert(s);
                    }
                }
            }
            _ => {}
        }
    }
    pairs
}

fn event<T: Tree>(n: &mut Normalizer, item: &Node<T>, dialect: Dialect, pairs: &Pairs) -> Result<(), IngestError> {
    if !item.is_object() {
        return Err(item.err(format!("expected an event or entity object, found {}", crate::json::kind(item.v))));
    }
    let ty = item.req_text("type")?;
    if !ty.ends_with("Event") {
        // Entities may travel in `data` beside events (Caliper §5.2).
        n.out.ignore(format!("entity {ty}"));
        return Ok(());
    }
    let id = item.req_text("id")?;
    let action = item.req_text("action")?;
    let at = item.req("eventTime")?.time()?;
    let actor = item.req("actor")?;
    let object = item.req("object")?;
    let object_id = object.entity_id()?;
    let actor_id = actor.entity_id()?;
    let label = format!("{ty}.{action}");
    let group = item.get("group").map(|g| g.entity_id()).transpose()?;
    let actor_is_app = actor.entity_type() == Some("SoftwareApplication");

    let (kind, student) = match (ty, action) {
        ("SessionEvent", "TimedOut") => {
            // The actor is the application that timed the session out; the
            // student is the session's user.
            let user = match object.get("user") {
                Some(u) => u,
                None => match item.get("session").and_then(|s| s.get("user")) {
                    Some(u) => u,
                    None => {
                        return Err(object.err(
                            "a TimedOut event's object must be the Session with its `user` (or the event's `session.user`)",
                        ))
                    }
                },
            };
            (ActivityKind::Logout, person_key(&user, dialect, item)?)
        }
        _ if actor_is_app => {
            // Canvas sends some NavigationEvents with the application as the
            // actor: no person did anything.
            n.out.ignore(format!("{label} by a SoftwareApplication"));
            return Ok(());
        }
        ("SessionEvent", "LoggedIn") => (ActivityKind::Login, person_key(&actor, dialect, item)?),
        ("SessionEvent", "LoggedOut") => (ActivityKind::Logout, person_key(&actor, dialect, item)?),
        ("AssignableEvent" | "AssessmentEvent", "Submitted") => (ActivityKind::Submission, person_key(&actor, dialect, item)?),
        ("MessageEvent", "Posted") => (ActivityKind::Message, person_key(&actor, dialect, item)?),
        ("MediaEvent", "Started" | "Ended") => {
            let kind = if is_recording(&object) { ActivityKind::RecordingView } else { ActivityKind::ContentAccess };
            (kind, person_key(&actor, dialect, item)?)
        }
        ("NavigationEvent", "NavigatedTo") | ("ViewEvent", "Viewed") | ("ToolUseEvent", "Used") => {
            (ActivityKind::ContentAccess, person_key(&actor, dialect, item)?)
        }
        _ => {
            n.out.ignore(label);
            return Ok(());
        }
    };

    let index = item_index(item);
    let mut d = Draft::new(id.to_string(), kind, at, student);
    d.section_key = group.map(|g| class_key(g, dialect));
    d.attr("object_id", object_id);
    if let Some(app) = item.get("edApp") {
        d.attr("ed_app", app.entity_id()?);
    }
    if let Some(s) = item.get("session") {
        d.attr("session_id", s.entity_id()?);
    }
    let roles = roles(item)?;
    if !roles.is_empty() {
        d.attr("roles", roles.join(","));
    }
    if action == "TimedOut" {
        d.attr("reason", "timeout");
        d.attr("actor_id", actor_id);
    }

    if ty == "MediaEvent" {
        if action == "Started" && index.is_some_and(|i| pairs.started.contains(&i)) {
            // Reported with its Ended, which carries the duration.
            return Ok(());
        }
        if let Some(started) = index.and_then(|i| pairs.ended.get(&i)) {
            if kind == ActivityKind::RecordingView {
                d.duration_seconds = Some((at - *started).num_seconds().max(0));
            }
            d.attr("started_at", started.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        }
    }

    if kind == ActivityKind::Message {
        let direction = match classify_roles(&roles) {
            Some(role) => role,
            None => n.role_of(&d.student_key).unwrap_or(Role::Student),
        };
        match direction {
            Role::Student => d.direction = Some(Direction::FromStudent),
            Role::Staff => {
                // A staff post is a message to the student it replies to.
                let replied =
                    object.get("replyTo").and_then(|r| r.get("creators")).and_then(|c| c.one_or_many().into_iter().next());
                let Some(to) = replied else {
                    n.out.ignore(format!("{label} by staff (no student named)"));
                    return Ok(());
                };
                d.staff_key = Some(std::mem::replace(&mut d.student_key, person_key(&to, dialect, item)?));
                d.direction = Some(Direction::FromStaff);
            }
        }
    }
    n.emit(&item.place, &label, d);
    Ok(())
}

/// The index of `data[i]` from its place.
fn item_index<T: Tree>(item: &Node<T>) -> Option<usize> {
    item.place.strip_prefix("data[")?.strip_suffix(']')?.parse().ok()
}

/// `membership.roles`, when the membership is an object that has them.
fn roles<T: Tree>(item: &Node<T>) -> Result<Vec<String>, IngestError> {
    let Some(roles) = item.get("membership").and_then(|m| m.get("roles")) else {
        return Ok(Vec::new());
    };
    roles.one_or_many().iter().map(|r| r.text().map(str::to_string)).collect()
}

/// Learner → student; the staff roles of the LIS vocabulary → staff. A
/// role may be a term (`Learner`, `Instructor#TeachingAssistant`) or its
/// full IRI: `http://purl.imsglobal.org/vocab/lis/v2/membership#Learner`
/// for a context role, `…/membership/Instructor#TeachingAssistant` for a
/// sub-role (Caliper §roles), so the context role is read from either.
fn classify_roles<S: AsRef<str>>(roles: &[S]) -> Option<Role> {
    let base = |r: &str| -> String {
        let term = match (r.rsplit_once("/membership#"), r.rsplit_once("/membership/")) {
            (Some((_, t)), _) | (None, Some((_, t))) => t,
            (None, None) => r,
        };
        term.split('#').next().unwrap_or(term).to_string()
    };
    let bases: BTreeSet<String> = roles.iter().map(|r| base(r.as_ref())).collect();
    // Not Mentor: LIS uses it for advisors and auditors but also for parents.
    let staff = ["Instructor", "TeachingAssistant", "Administrator", "ContentDeveloper", "Manager"];
    if staff.iter().any(|s| bases.contains(*s)) {
        Some(Role::Staff)
    } else if bases.contains("Learner") {
        Some(Role::Student)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_as_terms_and_iris() {
        let role = |rs: &[&str]| classify_roles(&rs.iter().map(|r| r.to_string()).collect::<Vec<_>>());
        assert_eq!(role(&["Learner"]), Some(Role::Student));
        assert_eq!(role(&["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"]), Some(Role::Student));
        assert_eq!(role(&["Learner#NonCreditLearner"]), Some(Role::Student));
        assert_eq!(role(&["Instructor#TeachingAssistant"]), Some(Role::Staff));
        assert_eq!(role(&["http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant"]), Some(Role::Staff));
        assert_eq!(role(&["http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor", "Learner"]), Some(Role::Staff));
        // Mentor covers parents as well as advisors: left to the identity view.
        assert_eq!(role(&["Mentor"]), None);
        assert_eq!(role(&["Member"]), None);
        assert_eq!(role(&[]), None);
    }
}

/// The fast path and the tree against `serde_json::Value`, the reading
/// every normalizer had before: the same outcome, or the same errors.
#[cfg(test)]
mod differential {
    use std::path::Path;

    use proptest::prelude::*;

    use super::*;

    fn ids() -> IdentityView {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/identities.csv");
        IdentityView::from_csv(&std::fs::read(p).unwrap()).unwrap()
    }

    /// The reference: `serde_json::Value` and `normalize_value`.
    fn by_value(body: &[u8], ids: &IdentityView, dialect: Dialect) -> Result<Outcome, Rejected> {
        let v = crate::json::parse_value(body)?;
        normalize_value(&v, ids, "caliper", dialect)
    }

    fn received() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-02-19T15:30:00.123456Z").unwrap().with_timezone(&Utc)
    }

    /// `encoded` holds the outcome's events as `to_single_object` writes
    /// each, stamped with `received`, keyed by student and timed by when
    /// it happened; and its waiting events and ignored counts.
    fn assert_encodes(outcome: &Outcome, encoded: &Encoded, body: &[u8]) {
        use rollcall_model::avro::AvroRecord;
        let body = String::from_utf8_lossy(body);
        assert_eq!(encoded.events.len(), outcome.events.len(), "{body}");
        let mut end = 0;
        for (e, r) in outcome.events.iter().zip(&encoded.events) {
            let stamped = rollcall_model::ActivityEvent { received_at: Some(received()), ..e.clone() };
            assert_eq!(encoded.payload(r), stamped.to_single_object().unwrap(), "{body}");
            assert_eq!(encoded.key(r), e.student_id.as_bytes(), "{body}");
            assert_eq!((r.occurred_at_ms, r.kind), (e.occurred_at.timestamp_millis(), e.kind), "{body}");
            assert_eq!(r.payload.start, end, "one message after another: {body}");
            end = r.payload.end;
        }
        assert_eq!(end, encoded.bytes.len(), "{body}");
        let stamped: Vec<crate::Waiting> = outcome
            .waiting
            .iter()
            .map(|w| {
                let mut w = w.clone();
                w.event.received_at = Some(received());
                w
            })
            .collect();
        assert_eq!((&encoded.waiting, &encoded.ignored), (&stamped, &outcome.ignored), "{body}");
    }

    /// Holds every reading of `body` to the reference; how many events the
    /// fast path wrote straight to Avro, when it took the body.
    fn check(body: &[u8], ids: &IdentityView) -> Option<usize> {
        let text = String::from_utf8_lossy(body);
        let reference = by_value(body, ids, Dialect::Standard);
        let tree =
            crate::json::parse(body).map_err(Rejected::from).and_then(|d| normalize_value(&d, ids, "caliper", Dialect::Standard));
        assert_eq!(tree, reference, "the borrowed tree differs on {text}");
        assert_eq!(normalize(body, ids, "caliper"), reference, "normalize differs on {text}");
        match (&reference, crate::encode(crate::Format::Caliper, body, ids, None, received())) {
            (Ok(o), Ok(encoded)) => assert_encodes(o, &encoded, body),
            (Err(r), Err(e)) => assert_eq!(r, &e, "encode refuses otherwise: {text}"),
            (r, e) => panic!("normalize gives {r:?}, encode {e:?}: {text}"),
        }
        match (typed::normalize(body, ids, "caliper"), typed::encode(body, ids, "caliper", received())) {
            (Some(fast), Some(encoded)) => {
                assert_eq!(Ok(&fast), reference.as_ref(), "the fast path differs on {text}");
                assert_encodes(&fast, &encoded, body);
                Some(encoded.events.len())
            }
            (None, None) => None,
            (fast, encoded) => panic!("the fast path took it {} and encoded it {}: {text}", fast.is_some(), encoded.is_some()),
        }
    }

    fn fixtures(dir: &str) -> Vec<(String, Vec<u8>)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(dir);
        let mut out: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn every_caliper_fixture_reads_the_same() {
        let ids = ids();
        let mut fast = 0;
        for (_, body) in fixtures("caliper") {
            fast += usize::from(check(&body, &ids).is_some());
        }
        // The fast path is not a path nobody takes.
        assert!(fast >= 3, "the fast path took {fast} fixtures");
    }

    #[test]
    fn canvas_caliper_fixtures_read_the_same_through_the_tree() {
        let ids = ids();
        for (name, body) in fixtures("canvas") {
            let reference = crate::json::parse_value(&body).map_err(Rejected::from).and_then(|v| {
                if v.get("dataVersion").is_some() || v.get("sensor").is_some() {
                    normalize_value(&v, &ids, "canvas", Dialect::Canvas)
                } else {
                    Ok(Outcome::default())
                }
            });
            let tree = crate::json::parse(&body).map_err(Rejected::from).and_then(|d| {
                if d.member("dataVersion").is_some() || d.member("sensor").is_some() {
                    normalize_value(&d, &ids, "canvas", Dialect::Canvas)
                } else {
                    Ok(Outcome::default())
                }
            });
            assert_eq!(tree, reference, "{name}");
        }
    }

    #[test]
    fn what_the_fast_path_must_not_take() {
        let ids = ids();
        let event = r#"{"id":"urn:x:1","type":"SessionEvent","action":"LoggedIn","eventTime":"2025-01-01T00:00:00Z","actor":"https://lms.example.edu/users/554433","object":"https://lms.example.edu"}"#;
        let env = |data: &str, extra: &str| {
            format!(r#"{{"sensor":"s","sendTime":"2025-01-01T00:00:00Z","dataVersion":"{V1P2}","data":{data}{extra}}}"#)
        };
        let taken = env(&format!("[{event}]"), "");
        assert!(check(taken.as_bytes(), &ids).is_some());
        for body in [
            // Numbers and strings that `serde_json` skips more leniently than it reads.
            env(&format!("[{event}]"), r#","x":1e400"#),
            env(&format!("[{event}]"), r#","x":"\ud800""#),
            env(&format!("[{event}]"), ",\"x\":\"\u{1}\""),
            // Nested deeper than `serde_json` reads (and than the fast path does).
            env(&format!("[{event}]"), &format!(r#","x":{}{}"#, "[".repeat(150), "]".repeat(150))),
            env(&format!("[{event}]"), &format!(r#","x":{}{}"#, "[".repeat(110), "]".repeat(110))),
            // Not an envelope, or not an array of objects.
            format!(r#"["s","2025-01-01T00:00:00Z","{V1P2}",[{event}]]"#),
            env(&format!("[[{event}]]"), ""),
            env(&format!("[{event},1]"), ""),
            env(&format!("{{\"a\":{event}}}"), ""),
            // Caliper 1.0 markers, even null ones.
            env(&format!("[{}]", event.replacen('{', r#"{"@type":null,"#, 1)), ""),
            env(
                &format!("[{}]", event.replacen('{', r#"{"@context":"http://purl.imsglobal.org/ctx/caliper/v1/Context","#, 1)),
                "",
            ),
        ] {
            assert!(check(body.as_bytes(), &ids).is_none(), "taken: {body}");
        }
        // Not UTF-8: the fast path reads a `str`, the tree says where it fails.
        let mut latin1 = taken.clone().into_bytes();
        let at = latin1.windows(6).position(|w| w == b"554433").unwrap();
        latin1[at] = 0xE9;
        assert!(check(&latin1, &ids).is_none(), "taken: a body that is not UTF-8");
        let refused = normalize(&latin1, &ids, "caliper").unwrap_err().to_string();
        assert!(refused.contains("column") && refused.contains("unicode"), "{refused}");
        // A repeated member is read as its last value, by every reading.
        let twice = env(&format!("[{}]", event.replacen('{', r#"{"actor":5,"#, 1)), r#","sensor":"t""#);
        assert!(check(twice.as_bytes(), &ids).is_some());
        let twice = env(&format!("[{}]", event.replacen('}', r#","actor":5}"#, 1)), "");
        check(twice.as_bytes(), &ids);
    }

    /// A JSON text from a seed: envelopes near and far from what the fast
    /// path takes, with members repeated, missing, null and mistyped.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            // xorshift64*
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
            xs[(self.next() % xs.len() as u64) as usize]
        }

        fn chance(&mut self, in_100: u64) -> bool {
            self.next() % 100 < in_100
        }

        fn string(s: &str) -> String {
            serde_json::to_string(s).unwrap()
        }

        /// An object from members, some left out, some repeated.
        fn object(&mut self, members: Vec<(&str, String)>) -> String {
            let mut parts = Vec::new();
            for (k, v) in members {
                if self.chance(8) {
                    continue;
                }
                if self.chance(3) {
                    parts.push(format!("{}:{}", Gen::string(k), self.scalar()));
                }
                parts.push(format!("{}:{v}", Gen::string(k)));
            }
            if self.chance(10) {
                parts.push(format!("\"extra\":{}", self.scalar()));
            }
            format!("{{{}}}", parts.join(","))
        }

        fn scalar(&mut self) -> String {
            self.pick(&["null", "5", "-1.5", "true", "\"\"", "[]", "{}", "[1,{\"a\":null}]", "\"x\\u00e9\\/y\""]).to_string()
        }

        fn person(&mut self) -> String {
            let iri = self.pick(&[
                "https://lms.example.edu/users/554433",
                "https://example.edu/users/554433",
                "https://lms.example.edu/users/112233",
                "https://lms.example.edu/users/999",
                "https:\\/\\/lms.example.edu\\/users\\/554433",
            ]);
            self.entity(iri, &["Person", "SoftwareApplication"])
        }

        fn entity(&mut self, iri: &str, types: &[&str]) -> String {
            let iri = format!("\"{iri}\"");
            match self.next() % 10 {
                0 => self.scalar(),
                1..=4 => iri,
                _ => {
                    let ty = Gen::string(self.pick(types));
                    self.object(vec![("id", iri), ("type", ty)])
                }
            }
        }

        fn membership(&mut self) -> String {
            let roles = self
                .pick(&[
                    "[\"Learner\"]",
                    "\"Learner\"",
                    "[\"http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor\"]",
                    "[\"Learner\",\"Mentor\"]",
                    "[]",
                    "[null]",
                    "[\"\"]",
                    "5",
                    "null",
                ])
                .to_string();
            match self.next() % 6 {
                0 => self.scalar(),
                1 => "\"https://lms.example.edu/memberships/1\"".to_string(),
                _ => self.object(vec![("id", "\"https://lms.example.edu/memberships/1\"".into()), ("roles", roles)]),
            }
        }

        fn item(&mut self, n: usize) -> String {
            if self.chance(3) {
                return self.scalar();
            }
            let ty = self.pick(&[
                "SessionEvent",
                "SessionEvent",
                "AssignableEvent",
                "AssessmentEvent",
                "MessageEvent",
                "NavigationEvent",
                "ViewEvent",
                "ToolUseEvent",
                "GradeEvent",
                "MediaEvent",
                "Person",
                "",
            ]);
            let action = self.pick(&[
                "LoggedIn",
                "LoggedOut",
                "TimedOut",
                "Submitted",
                "Posted",
                "NavigatedTo",
                "Viewed",
                "Used",
                "Graded",
                "Started",
                "",
            ]);
            let time = self.pick(&[
                "2025-02-19T15:25:30.123Z",
                "2025-02-19T10:25:30-05:00",
                "2025-02-19T15:25:30.1234567Z",
                "yesterday",
            ]);
            let mut members = vec![
                ("id", Gen::string(&format!("urn:uuid:{n}"))),
                ("type", Gen::string(ty)),
                ("action", Gen::string(action)),
                ("eventTime", Gen::string(time)),
                ("actor", self.person()),
                ("object", self.entity("https://lms.example.edu/sections/1/assess/1", &["Assessment", "VideoObject", "Session"])),
                ("edApp", self.entity("https://lms.example.edu", &["SoftwareApplication"])),
                ("session", self.entity("https://lms.example.edu/sessions/1", &["Session"])),
                ("group", self.entity("https://lms.example.edu/sections/1", &["CourseSection"])),
                ("membership", self.membership()),
            ];
            if self.chance(30) {
                members.retain(|(k, _)| *k != "group");
            }
            if self.chance(5) {
                members.push(("@context", Gen::string(self.pick(&[V1P2, "http://purl.imsglobal.org/ctx/caliper/v1/Context"]))));
            }
            if self.chance(2) {
                members.push((self.pick(&["@type", "@id"]), "null".into()));
            }
            self.object(members)
        }

        fn envelope(&mut self, events: usize) -> String {
            let data: Vec<String> = (0..events).map(|n| self.item(n)).collect();
            let version = self.pick(&[V1P2, V1P2, V1P1, "http://purl.imsglobal.org/ctx/caliper/v1/Context", "2.0"]);
            self.object(vec![
                ("sensor", "\"https://lms.example.edu/sensor/1\"".into()),
                ("sendTime", "\"2025-02-19T15:25:31Z\"".into()),
                ("dataVersion", Gen::string(version)),
                ("data", format!("[{}]", data.join(","))),
            ])
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn generated_envelopes_read_the_same(seed in any::<u64>(), events in 0usize..6) {
            let ids = ids();
            let body = Gen(seed | 1).envelope(events);
            check(body.as_bytes(), &ids);
        }
    }

    #[test]
    fn the_fast_path_takes_generated_envelopes_too() {
        // Not only errors: some of the generated envelopes are taken whole.
        let ids = ids();
        let taken: Vec<usize> = (1..3000u64).filter_map(|s| check(Gen(s).envelope(2).as_bytes(), &ids)).collect();
        assert!(taken.len() > 50, "the fast path took {} of 3000", taken.len());
    }

    /// Well-formed envelopes of mapped events, the gateway's traffic: known
    /// and unknown students and classes, staff, every optional entity there
    /// or not, strings with escapes. Most are written straight to Avro.
    #[test]
    fn well_formed_envelopes_are_written_straight_to_avro() {
        let ids = ids();
        let mut direct = 0;
        for seed in 1..2000u64 {
            let mut g = Gen(seed);
            let events: Vec<String> = (0..1 + seed % 4)
                .map(|n| {
                    let (ty, action) = *[
                        ("SessionEvent", "LoggedIn"),
                        ("SessionEvent", "LoggedOut"),
                        ("AssignableEvent", "Submitted"),
                        ("AssessmentEvent", "Submitted"),
                        ("MessageEvent", "Posted"),
                        ("NavigationEvent", "NavigatedTo"),
                        ("ViewEvent", "Viewed"),
                        ("ToolUseEvent", "Used"),
                    ]
                    .get((g.next() % 8) as usize)
                    .unwrap();
                    let actor = g.pick(&[
                        "\"https://lms.example.edu/users/554433\"",
                        "{\"id\":\"https://example.edu/users/554433\",\"type\":\"Person\"}",
                        "\"https:\\/\\/lms.example.edu\\/users\\/554433\"",
                        "\"https://lms.example.edu/users/999\"",
                        "\"https://lms.example.edu/users/112233\"",
                    ]);
                    let mut members = vec![
                        format!("\"id\":\"urn:uuid:{seed}-{n}\""),
                        format!("\"type\":\"{ty}\",\"action\":\"{action}\""),
                        format!(
                            "\"eventTime\":\"{}\"",
                            g.pick(&["2025-02-19T15:25:30.123Z", "2025-02-19T10:25:30.1234567-05:00"])
                        ),
                        format!("\"actor\":{actor}"),
                        "\"object\":{\"id\":\"https://lms.example.edu/sections/1/assess/1\",\"type\":\"Assessment\"}".into(),
                    ];
                    let optional = [
                        "\"group\":\"https://lms.example.edu/sections/1\"",
                        "\"group\":{\"id\":\"https://lms.example.edu/sections/2\",\"type\":\"CourseSection\"}",
                        "\"edApp\":\"https://lms.example.edu\"",
                        "\"session\":{\"id\":\"https://lms.example.edu/sessions/1\"}",
                        "\"membership\":{\"id\":\"m\",\"roles\":[\"Learner\",\"Mentor\"]}",
                        "\"membership\":{\"id\":\"m\",\"roles\":\"Learner\"}",
                        "\"extensions\":{\"a\":[1,2,{\"b\":null}]}",
                    ];
                    for o in optional {
                        if g.chance(40) {
                            members.push(o.to_string());
                        }
                    }
                    format!("{{{}}}", members.join(","))
                })
                .collect();
            let body = format!(
                r#"{{"sensor":"https://lms.example.edu/sensor/1","sendTime":"2025-02-19T15:25:31Z","dataVersion":"{V1P2}","data":[{}]}}"#,
                events.join(",")
            );
            // A staff member's message is the one thing here it leaves to the slow path.
            let staff_message = body.contains(r#""MessageEvent","action":"Posted","eventTime":"2025-02-19T15:25:30.123Z","actor":"https://lms.example.edu/users/112233""#)
                || body.contains(r#""MessageEvent","action":"Posted","eventTime":"2025-02-19T10:25:30.1234567-05:00","actor":"https://lms.example.edu/users/112233""#);
            match check(body.as_bytes(), &ids) {
                Some(n) => direct += n,
                None => assert!(staff_message, "the fast path gave up on {body}"),
            }
        }
        assert!(direct > 1000, "the fast path wrote {direct} events to Avro");
    }
}
