//! Canvas Live Events: the Canvas form (`{"metadata": {...}, "body": {...}}`,
//! one event or an array of them) and Canvas's Caliper 1.1 form (an
//! envelope with `dataVersion`, read by [`crate::caliper`] with Canvas keys).
//!
//! | `metadata.event_name` | ActivityEvent |
//! |---|---|
//! | `logged_in` | `LOGIN` |
//! | `logged_out` | `LOGOUT` |
//! | `submission_created` | `SUBMISSION`, `occurred_at` ← `body.submitted_at` (else `event_time`); the student is `body.user_id` |
//! | `discussion_entry_created` | `MESSAGE`; `context_role` `StudentEnrollment` → `FROM_STUDENT`; a staff or observer entry names no student and is ignored |
//! | `conversation_message_created` | `MESSAGE`, `FROM_STUDENT` when the identity view knows `body.author_id` as a student; Canvas gives no recipients, so a staff author's message is ignored |
//! | `asset_accessed` | `CONTENT_ACCESS`, `attributes` ← `asset_type`, `asset_id`, `asset_subtype` |
//! | anything else | ignored, counted by event name |
//!
//! Every event: `occurred_at` ← `metadata.event_time`; student ←
//! `metadata.user_sis_id` when present, else the user id as Canvas sends it
//! (`metadata.user_id`, else the body's `user_id` / `author_id`), through
//! the identity view. A `submission_created` whose `body.user_id` is not the
//! acting user (an LTI grade passback, a teacher submitting for a student)
//! is keyed by `body.user_id`. `section_id` ← `metadata.context_id` when
//! `context_type` is `Course`, through the view's `section` rows (Canvas
//! names courses, not sections: the view maps a course to a section).
//!
//! Canvas gives no event id: `event_id` is `canvas:` and a SHA-256 of
//! `event_name`, `event_time`, `request_id`, the acting user and the body's
//! own id (`submission_id` and `attempt`, `discussion_entry_id`,
//! `message_id`, `asset_id`), so that a re-delivered event is a duplicate.
//! The Caliper form carries `urn:uuid:` ids, used as they are; its keys are
//! the Canvas extension's `user_sis_id`, else the id in the
//! `urn:instructure:canvas:user:` IRI, and the course id in the group's
//! `urn:instructure:canvas:course:` IRI, the same keys as the Canvas form.

use crate::caliper::{self, Dialect};
use crate::json::{parse, Json, Node, Tree};
use crate::{derived_id, Draft, IdentityView, IngestError, Normalizer, Outcome, Rejected, Role};
use rollcall_model::{ActivityKind, Direction};

/// Normalizes a Canvas Live Events body in either form.
pub fn normalize(body: &[u8], ids: &IdentityView, source: &str) -> Result<Outcome, Rejected> {
    let doc = parse(body)?;
    if doc.member("dataVersion").is_some() || doc.member("sensor").is_some() {
        return caliper::normalize_value(&doc, ids, source, Dialect::Canvas);
    }
    let root = Node::root(&doc);
    let mut n = Normalizer::new(ids, source);
    for e in root.one_or_many() {
        if let Err(err) = event(&mut n, &e) {
            n.errors.push(err);
        }
    }
    n.finish()
}

fn event(n: &mut Normalizer, e: &Node) -> Result<(), IngestError> {
    if !e.is_object() {
        return Err(e.err(format!("expected a Live Event object with `metadata` and `body`, found {}", crate::json::kind(e.v))));
    }
    let meta = e.req("metadata")?;
    let body = match e.get("body") {
        Some(b) if b.is_object() => b,
        Some(b) => return Err(b.err(format!("expected an object, found {}", crate::json::kind(b.v)))),
        // `logged_out` has an empty body; some senders drop it.
        None => Node {
            v: &Json::Null,
            place: format!("{}body", if e.place.is_empty() { String::new() } else { format!("{}.", e.place) }),
        },
    };
    let name = meta.req_text("event_name")?;
    let event_time = meta.req("event_time")?;
    let kind = match name {
        "logged_in" => ActivityKind::Login,
        "logged_out" => ActivityKind::Logout,
        "submission_created" => ActivityKind::Submission,
        "discussion_entry_created" | "conversation_message_created" => ActivityKind::Message,
        "asset_accessed" => ActivityKind::ContentAccess,
        _ => {
            n.out.ignore(name);
            return Ok(());
        }
    };
    let sis = meta.opt_text("user_sis_id")?;
    let meta_user = meta.opt_id("user_id")?;
    let body_user = match name {
        "conversation_message_created" => body.opt_id("author_id")?,
        _ => body.opt_id("user_id")?,
    };
    let key = match (name, &body_user, &meta_user) {
        // Someone other than the student acted (a grade passback, a teacher).
        ("submission_created", Some(b), m) if m.as_ref() != Some(b) => b.clone(),
        _ => match (sis, &meta_user, &body_user) {
            (Some(s), _, _) => s.to_string(),
            (None, Some(m), _) => m.clone(),
            (None, None, Some(b)) => b.clone(),
            (None, None, None) => return Err(meta.err("no `user_sis_id` or `user_id`, and the body names no user")),
        },
    };
    let at = match (name, body.get("submitted_at")) {
        ("submission_created", Some(t)) => t.time()?,
        _ => event_time.time()?,
    };
    let own_id = match name {
        "submission_created" => {
            let attempt = body.opt_id("attempt")?.unwrap_or_default();
            format!("{}#{attempt}", body.opt_id("submission_id")?.unwrap_or_default())
        }
        "discussion_entry_created" => body.opt_id("discussion_entry_id")?.unwrap_or_default(),
        "conversation_message_created" => body.opt_id("message_id")?.unwrap_or_default(),
        "asset_accessed" => body.opt_id("asset_id")?.unwrap_or_default(),
        _ => meta.opt_text("session_id")?.unwrap_or_default().to_string(),
    };
    let request_id = meta.opt_text("request_id")?.unwrap_or_default();
    let acting = meta_user.clone().or(sis.map(str::to_string)).unwrap_or_default();
    let event_id = derived_id("canvas", &[name, event_time.str()?, request_id, &acting, &own_id]);

    let mut d = Draft::new(event_id, kind, at, key);
    if meta.opt_text("context_type")? == Some("Course") {
        d.section_key = meta.opt_id("context_id")?;
    }
    if let Some(r) = meta.opt_text("context_role")? {
        d.attr("context_role", r);
    }
    match name {
        "asset_accessed" => {
            for f in ["asset_type", "asset_id", "asset_subtype"] {
                if let Some(v) = body.opt_id(f)? {
                    d.attr(f, v);
                }
            }
        }
        "submission_created" => {
            if let Some(v) = body.opt_id("assignment_id")? {
                d.attr("assignment_id", v);
            }
            if let Some(v) = body.opt_text("submission_type")? {
                d.attr("submission_type", v);
            }
        }
        "discussion_entry_created" => match meta.opt_text("context_role")? {
            Some("StudentEnrollment") => d.direction = Some(Direction::FromStudent),
            // A teacher's or observer's entry names no student: Canvas does
            // not say whose entry it answers.
            Some(role) => {
                n.out.ignore(format!("{name} by {role} (no student named)"));
                return Ok(());
            }
            None => match n.role_of(&d.student_key) {
                Some(Role::Staff) => {
                    n.out.ignore(format!("{name} by staff (no student named)"));
                    return Ok(());
                }
                _ => d.direction = Some(Direction::FromStudent),
            },
        },
        "conversation_message_created" => {
            if let Some(v) = body.opt_id("conversation_id")? {
                d.attr("conversation_id", v);
            }
            if n.role_of(&d.student_key) == Some(Role::Staff) {
                n.out.ignore(format!("{name} by staff (no student named)"));
                return Ok(());
            }
            d.direction = Some(Direction::FromStudent);
        }
        _ => {}
    }
    n.emit(&e.place, name, d);
    Ok(())
}
