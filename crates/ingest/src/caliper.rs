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
use serde_json::Value;

use crate::json::{parse, Node};
use crate::{Draft, IdentityView, IngestError, Normalizer, Outcome, Rejected, Role};

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
    let doc = parse(body)?;
    normalize_value(&doc, ids, source, Dialect::Standard)
}

/// Whether a value is a Caliper 1.0 event or envelope, and where it says so.
fn caliper_1_0(v: &Value, place: &str) -> Option<String> {
    let ctx = v.get("@context").and_then(Value::as_str).unwrap_or("");
    if ctx.contains("/ctx/caliper/v1/") || ctx.ends_with("/ctx/caliper/v1") {
        return Some(format!("{place}@context"));
    }
    if v.get("@type").is_some() || v.get("@id").is_some() {
        return Some(format!("{place}@type"));
    }
    None
}

pub(crate) fn normalize_value(doc: &Value, ids: &IdentityView, source: &str, dialect: Dialect) -> Result<Outcome, Rejected> {
    let root = Node::root(doc);
    if !root.is_object() {
        return Err(root.err(format!("expected a Caliper envelope object, found {}", crate::json::kind(doc))).into());
    }
    // The version first: a 1.0 payload fails every later check, and the
    // platform must be told the version is the problem (422), not the shape.
    match doc.get("dataVersion") {
        Some(Value::String(v)) if v == V1P1 || v == V1P2 => {}
        Some(Value::String(v)) => {
            let found = if v.contains("/ctx/caliper/v1/") || v.ends_with("/ctx/caliper/v1") {
                "1.0".to_string()
            } else {
                format!("dataVersion `{v}`")
            };
            return Err(IngestError::UnsupportedVersion { place: "dataVersion".into(), found }.into());
        }
        _ => {
            if let Some(place) = caliper_1_0(doc, "") {
                return Err(IngestError::UnsupportedVersion { place, found: "1.0".into() }.into());
            }
            if let Some(Value::Array(data)) = doc.get("data") {
                for (i, d) in data.iter().enumerate() {
                    if let Some(place) = caliper_1_0(d, &format!("data[{i}].")) {
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
        if let Some(place) = caliper_1_0(item.v, &format!("{}.", item.place)) {
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
fn person_key(node: &Node, dialect: Dialect, event: &Node) -> Result<String, IngestError> {
    let id = node.entity_id()?;
    Ok(match dialect {
        Dialect::Standard => id.to_string(),
        Dialect::Canvas => canvas_user_key(id, event),
    })
}

/// Canvas: `user_sis_id` from the Canvas extension when it is there, else
/// the user id of the `urn:instructure:canvas:user:` IRI, the same key as
/// its Live Events form gives.
fn canvas_user_key(iri: &str, event: &Node) -> String {
    let sis = event
        .v
        .get("extensions")
        .and_then(|x| x.get("com.instructure.canvas"))
        .and_then(|c| c.get("user_sis_id"))
        .and_then(Value::as_str)
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

fn is_recording(object: &Node) -> bool {
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
fn media_pairs(data: &[Node], dialect: Dialect) -> Pairs {
    let mut open: HashMap<(String, String), Vec<(usize, DateTime<Utc>)>> = HashMap::new();
    let mut media = Vec::new();
    for (i, item) in data.iter().enumerate() {
        if item.v.get("type").and_then(Value::as_str) != Some("MediaEvent") {
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

fn event(n: &mut Normalizer, item: &Node, dialect: Dialect, pairs: &Pairs) -> Result<(), IngestError> {
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
fn item_index(item: &Node) -> Option<usize> {
    item.place.strip_prefix("data[")?.strip_suffix(']')?.parse().ok()
}

/// `membership.roles`, when the membership is an object that has them.
fn roles(item: &Node) -> Result<Vec<String>, IngestError> {
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
fn classify_roles(roles: &[String]) -> Option<Role> {
    let base = |r: &str| -> String {
        let term = match (r.rsplit_once("/membership#"), r.rsplit_once("/membership/")) {
            (Some((_, t)), _) | (None, Some((_, t))) => t,
            (None, None) => r,
        };
        term.split('#').next().unwrap_or(term).to_string()
    };
    let bases: BTreeSet<String> = roles.iter().map(|r| base(r)).collect();
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
