//! Zoom webhooks: participant events, the endpoint URL validation, and the
//! `x-zm-signature` check.
//!
//! | `event` | ActivityEvent |
//! |---|---|
//! | `meeting.participant_joined`, `webinar.participant_joined` | `LIVE_JOIN`, `occurred_at` ← `participant.join_time` |
//! | `meeting.participant_left`, `webinar.participant_left` | `LIVE_LEAVE`, `occurred_at` ← `participant.leave_time`, `attributes.leave_reason` |
//! | `endpoint.url_validation` | no event: the gateway answers with [`url_validation_response`] |
//! | anything else | ignored, counted by event name |
//!
//! Every event: `live_session_id` ← `payload.object.uuid` (one instance of
//! a possibly recurring meeting); student ← `participant.customer_key`, else
//! `registrant_id`, else `email`, through the identity view (never
//! `participant.user_id`, a per-meeting number); a participant with none of
//! them (a guest) is ignored; `section_id` ← the meeting number
//! `payload.object.id` (a string or a number) through the view's `section`
//! rows; `attributes` ← `meeting_id`. Zoom gives no event id: `event_id` is
//! `zoom:` and a SHA-256 of `event`, `object.uuid`, `participant_uuid` (else
//! `user_id`, else the student key) and the join or leave time. The join and
//! leave pair through `live_session_id`; no duration is computed here.
//!
//! The signature is checked over the raw body bytes as received (Zoom's
//! sample signs `JSON.stringify(req.body)`, which a re-serialisation here
//! would not reproduce), and a request timestamp more than
//! [`MAX_SKEW_SECONDS`] from `now` is refused as a replay. The caller gives
//! `now`: nothing here reads a clock.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rollcall_model::ActivityKind;
use sha2::Sha256;

use crate::json::{parse, Node, Tree};
use crate::{derived_id, Draft, IdentityView, IngestError, Normalizer, Outcome, Rejected};

/// The usual tolerance for `x-zm-request-timestamp` (Zoom states none).
pub const MAX_SKEW_SECONDS: i64 = 300;

fn mac(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length; `new_from_slice` fails for none.
    <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() & 1 == 1 || !s.is_ascii() {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

/// `v0=` and the hex HMAC-SHA256 of `v0:{timestamp}:{raw body}`: what Zoom
/// sends in `x-zm-signature`.
pub fn signature(secret: &[u8], timestamp: &str, raw_body: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(format!("v0:{timestamp}:").as_bytes());
    m.update(raw_body);
    format!("v0={}", hex(&m.finalize().into_bytes()))
}

/// Checks `x-zm-signature` (`signature_header`) and
/// `x-zm-request-timestamp` (`timestamp_header`, epoch seconds) of a
/// request whose body is `raw_body`, at `now`.
pub fn verify_signature(
    secret: &[u8],
    timestamp_header: &str,
    signature_header: &str,
    raw_body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), IngestError> {
    let ts: i64 = timestamp_header.trim().parse().map_err(|_| IngestError::BadSignature {
        problem: format!("x-zm-request-timestamp `{timestamp_header}` is not a number of seconds"),
    })?;
    let skew = now.timestamp().saturating_sub(ts);
    if skew.saturating_abs() > MAX_SKEW_SECONDS {
        return Err(IngestError::StaleTimestamp {
            timestamp: ts,
            now: now.timestamp(),
            skew_seconds: skew,
            max: MAX_SKEW_SECONDS,
        });
    }
    let given = signature_header
        .trim()
        .strip_prefix("v0=")
        .and_then(unhex)
        .ok_or_else(|| IngestError::BadSignature { problem: "expected `v0=` and 64 hex digits".into() })?;
    let mut m = mac(secret);
    m.update(format!("v0:{}:", timestamp_header.trim()).as_bytes());
    m.update(raw_body);
    // Constant-time comparison: a timing difference would reveal how much
    // of a forged signature was right.
    m.verify_slice(&given).map_err(|_| IngestError::BadSignature { problem: "does not match the body and timestamp".into() })
}

/// For an `endpoint.url_validation` request, the JSON Zoom expects back:
/// `{"plainToken": …, "encryptedToken": hex(HMAC-SHA256(secret, plainToken))}`.
/// `None` for any other event.
pub fn url_validation_response(body: &[u8], secret: &[u8]) -> Result<Option<serde_json::Value>, Rejected> {
    let doc = parse(body)?;
    let root = Node::root(&doc);
    if root.get("event").and_then(|e| e.v.as_text()) != Some("endpoint.url_validation") {
        return Ok(None);
    }
    let plain = root.req("payload")?.req_text("plainToken")?;
    let mut m = mac(secret);
    m.update(plain.as_bytes());
    let encrypted = hex(&m.finalize().into_bytes());
    Ok(Some(serde_json::json!({ "plainToken": plain, "encryptedToken": encrypted })))
}

/// Normalizes one webhook body (the signature is the caller's to check first).
pub fn normalize(body: &[u8], ids: &IdentityView, source: &str) -> Result<Outcome, Rejected> {
    let doc = parse(body)?;
    let root = Node::root(&doc);
    let mut n = Normalizer::new(ids, source);
    if let Err(e) = event(&mut n, &root) {
        n.errors.push(e);
    }
    n.finish()
}

fn event(n: &mut Normalizer, root: &Node) -> Result<(), IngestError> {
    if !root.is_object() {
        return Err(root.err(format!("expected a webhook object, found {}", crate::json::kind(root.v))));
    }
    let name = root.req_text("event")?;
    let (kind, time_field) = match name {
        "meeting.participant_joined" | "webinar.participant_joined" => (ActivityKind::LiveJoin, "join_time"),
        "meeting.participant_left" | "webinar.participant_left" => (ActivityKind::LiveLeave, "leave_time"),
        _ => {
            n.out.ignore(name);
            return Ok(());
        }
    };
    let object = root.req("payload")?.req("object")?;
    let uuid = object.req_text("uuid")?;
    let meeting = object.req("id")?.id()?;
    let p = object.req("participant")?;
    let time = p.req(time_field)?;
    let at = time.time()?;
    let key = match (p.opt_text("customer_key")?, p.opt_id("registrant_id")?, p.opt_text("email")?) {
        (Some(k), _, _) => k.to_string(),
        (None, Some(r), _) => r,
        (None, None, Some(e)) => e.to_string(),
        (None, None, None) => {
            n.out.ignore(format!("{name} (no customer_key, registrant_id or email)"));
            return Ok(());
        }
    };
    let who = match p.opt_id("participant_uuid")? {
        Some(u) => u,
        None => p.opt_id("user_id")?.unwrap_or_else(|| key.clone()),
    };
    let event_id = derived_id("zoom", &[name, uuid, &who, time.str()?]);
    let mut d = Draft::new(event_id, kind, at, key);
    d.live_session_id = Some(uuid.to_string());
    d.section_key = Some(meeting.clone());
    d.attr("meeting_id", meeting);
    if kind == ActivityKind::LiveLeave {
        if let Some(r) = p.opt_text("leave_reason")? {
            d.attr("leave_reason", r);
        }
    }
    n.emit(&root.place, name, d);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap_or_default()
    }

    #[test]
    fn signature_round_trips_and_refuses_tampering() {
        let body = br#"{"event":"meeting.participant_joined"}"#;
        let sig = signature(b"secret", "1739977500", body);
        // Computed independently, with Python's hmac module.
        assert_eq!(sig, "v0=12da92698b48fa2eb578225a2cee910691b08eea77f113c0b1c04e85944a290c");
        assert_eq!(verify_signature(b"secret", "1739977500", &sig, body, at(1_739_977_500)), Ok(()));
        assert!(matches!(
            verify_signature(b"secret", "1739977500", &sig, b"{\"event\":\"x\"}", at(1_739_977_500)),
            Err(IngestError::BadSignature { .. })
        ));
        assert!(matches!(
            verify_signature(b"other", "1739977500", &sig, body, at(1_739_977_500)),
            Err(IngestError::BadSignature { .. })
        ));
        assert!(matches!(
            verify_signature(b"secret", "1739977500", "v0=zz", body, at(1_739_977_500)),
            Err(IngestError::BadSignature { .. })
        ));
        assert!(matches!(
            verify_signature(b"secret", "soon", &sig, body, at(1_739_977_500)),
            Err(IngestError::BadSignature { .. })
        ));
        // 300 s either way is accepted, 301 is not.
        assert_eq!(verify_signature(b"secret", "1739977500", &sig, body, at(1_739_977_800)), Ok(()));
        assert_eq!(verify_signature(b"secret", "1739977500", &sig, body, at(1_739_977_200)), Ok(()));
        assert_eq!(
            verify_signature(b"secret", "1739977500", &sig, body, at(1_739_977_801)),
            Err(IngestError::StaleTimestamp { timestamp: 1_739_977_500, now: 1_739_977_801, skew_seconds: 301, max: 300 })
        );
        assert!(matches!(
            verify_signature(b"secret", "-9223372036854775808", &sig, body, at(1)),
            Err(IngestError::StaleTimestamp { .. })
        ));
    }

    #[test]
    fn url_validation_answers_with_the_hmac_of_the_token() {
        let r = url_validation_response(
            br#"{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}"#,
            b"secret",
        )
        .unwrap()
        .unwrap();
        assert_eq!(r["plainToken"], "qgg8vlvZRS6UYooatFL8Aw");
        // Computed independently, with Python's hmac module.
        assert_eq!(r["encryptedToken"], "72cef096bfd47c0b8664df30d07721641e4abd7e885ba432204260db477a9a3e");
        assert_eq!(url_validation_response(br#"{"event":"meeting.participant_joined"}"#, b"s").unwrap(), None);
        assert!(url_validation_response(br#"{"event":"endpoint.url_validation","payload":{}}"#, b"s").is_err());
    }
}
