//! Zoom webhook fixtures (tests/fixtures/zoom/), the URL validation answer
//! and the signature check over the raw body. Event ids and signatures were
//! computed apart from the crate (Python's hashlib and hmac).

mod common;

use chrono::{DateTime, Utc};
use common::*;
use rollcall_ingest::{zoom, IdType, IdentityKey, IngestError};
use serde_json::json;

fn run(name: &str) -> rollcall_ingest::Outcome {
    ok(zoom::normalize(&fixture(&format!("zoom/{name}")), &ids(), "zoom"))
}

fn at(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(s, 0).unwrap()
}

#[test]
fn participant_joined_by_customer_key() {
    let o = run("participant-joined.json");
    assert_eq!(
        o.events,
        vec![ev(json!({
            "event_id": "zoom:810cb82a0b41b65d34c37a03ea4a678d", "source": "zoom",
            "student_id": "S2001", "school_id": "lincoln-ms", "section_id": "alg-1-02",
            "kind": "LIVE_JOIN", "occurred_at": "2025-02-19T14:00:41Z", "live_session_id": "4444AAAiAAAAAiAiAiiAii==",
            "attributes": { "meeting_id": "85746065432" }
        }))]
    );
}

#[test]
fn participant_left_by_email_with_a_numeric_meeting_id_and_an_offset() {
    let o = run("participant-left.json");
    assert_eq!(
        o.events,
        vec![ev(json!({
            "event_id": "zoom:33cc3f6f556c9d71c788b7a4e0e08af1", "source": "zoom",
            "student_id": "S2002", "school_id": "lincoln-ms", "section_id": "alg-1-02",
            "kind": "LIVE_LEAVE", "occurred_at": "2025-02-19T14:49:58Z", "live_session_id": "4444AAAiAAAAAiAiAiiAii==",
            "attributes": { "meeting_id": "85746065432", "leave_reason": "left the meeting. Reason : left the meeting" }
        }))]
    );
}

#[test]
fn guests_hosts_and_other_events_are_counted_not_refused() {
    let o = run("guest-and-host.json");
    assert!(o.events.is_empty() && o.waiting.is_empty());
    assert_eq!(ignored(&o), vec![("meeting.participant_joined (no customer_key, registrant_id or email)", 1)]);
    let o = run("host-joined.json");
    assert!(o.events.is_empty() && o.waiting.is_empty());
    assert_eq!(ignored(&o), vec![("meeting.participant_joined by staff", 1)]);
    assert_eq!(ignored(&run("meeting-started.json")), vec![("meeting.started", 1)]);
    assert_eq!(ignored(&run("url-validation.json")), vec![("endpoint.url_validation", 1)]);
}

#[test]
fn an_unknown_participant_and_meeting_wait_for_identity() {
    let o = run("unknown-meeting.json");
    let key = |kind, id: &str| IdentityKey { source: "zoom".into(), kind, external_id: id.into() };
    assert_eq!(o.waiting.len(), 1);
    assert_eq!(o.waiting[0].place, "(the document)");
    assert_eq!(o.waiting[0].unknown, vec![key(IdType::Student, "zyx987-registrant"), key(IdType::Section, "91234567890")]);
    assert_eq!(
        o.waiting[0].event,
        ev(json!({
            "event_id": "zoom:05259a49d696848a2cbe877f9df10fba", "source": "zoom",
            "student_id": "zyx987-registrant", "school_id": "", "section_id": "91234567890",
            "kind": "LIVE_JOIN", "occurred_at": "2025-02-19T15:00:00Z", "live_session_id": "7777BBBjBBBBBjBjBjjBjj==",
            "attributes": { "meeting_id": "91234567890" }
        }))
    );
}

#[test]
fn url_validation_answers_with_the_hmac_of_the_plain_token() {
    let r = zoom::url_validation_response(&fixture("zoom/url-validation.json"), b"secret").unwrap();
    assert_eq!(
        r,
        Some(json!({ "plainToken": "qgg8vlvZRS6UYooatFL8Aw",
                     "encryptedToken": "72cef096bfd47c0b8664df30d07721641e4abd7e885ba432204260db477a9a3e" }))
    );
    assert_eq!(zoom::url_validation_response(&fixture("zoom/participant-joined.json"), b"secret").unwrap(), None);
}

const SECRET: &[u8] = b"zoom-secret-token";
const SIGNATURE: &str = "v0=c8a56bbaa22f04ec7aa563be589e3df3f38442d48624a35b6b5efcc6c9997b3e";

#[test]
fn the_signature_is_checked_over_the_raw_body() {
    let body = fixture("zoom/participant-joined.json");
    assert_eq!(zoom::signature(SECRET, "1739973642", &body), SIGNATURE);
    assert_eq!(zoom::verify_signature(SECRET, "1739973642", SIGNATURE, &body, at(1_739_973_650)), Ok(()));
    // The same JSON re-serialised (as a JSON.stringify of a parsed body
    // would be) is not what Zoom signed.
    let reserialised = serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(&body).unwrap()).unwrap();
    let e = zoom::verify_signature(SECRET, "1739973642", SIGNATURE, &reserialised, at(1_739_973_650)).unwrap_err();
    assert_eq!(e.to_string(), "x-zm-signature: does not match the body and timestamp");
    assert_eq!(e.http_status(), 401);
    // Another secret, another timestamp, a malformed header.
    assert!(matches!(
        zoom::verify_signature(b"other", "1739973642", SIGNATURE, &body, at(1_739_973_650)),
        Err(IngestError::BadSignature { .. })
    ));
    assert!(matches!(
        zoom::verify_signature(SECRET, "1739973643", SIGNATURE, &body, at(1_739_973_650)),
        Err(IngestError::BadSignature { .. })
    ));
    assert!(matches!(
        zoom::verify_signature(SECRET, "1739973642", &SIGNATURE[3..], &body, at(1_739_973_650)),
        Err(IngestError::BadSignature { .. })
    ));
}

#[test]
fn a_stale_timestamp_is_refused_before_the_signature() {
    let body = fixture("zoom/participant-joined.json");
    let e = zoom::verify_signature(SECRET, "1739973642", SIGNATURE, &body, at(1_739_973_642 + 301)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "x-zm-request-timestamp: 1739973642 is 301 s away from now (1739973943); at most 300 s is accepted"
    );
    assert_eq!(e.http_status(), 401);
    // From the future too (a clock ahead of ours by more than the tolerance).
    assert!(matches!(
        zoom::verify_signature(SECRET, "1739973642", SIGNATURE, &body, at(1_739_973_642 - 301)),
        Err(IngestError::StaleTimestamp { skew_seconds: -301, .. })
    ));
    // An event_ts in milliseconds sent as the header is stale, not accepted.
    assert!(matches!(
        zoom::verify_signature(SECRET, "1739973641000", SIGNATURE, &body, at(1_739_973_650)),
        Err(IngestError::StaleTimestamp { .. })
    ));
}

#[test]
fn errors_name_their_place() {
    let e = errors(zoom::normalize(
        br#"{"event":"meeting.participant_left","payload":{"object":{"uuid":"u","id":1.5,"participant":{}}}}"#,
        &ids(),
        "zoom",
    ));
    assert_eq!(e, vec!["payload.object.id: expected a string or an integer, found a number"]);
    let e = errors(zoom::normalize(
        br#"{"event":"meeting.participant_left","payload":{"object":{"uuid":"u","id":"1","participant":{"email":"a@b"}}}}"#,
        &ids(),
        "zoom",
    ));
    assert_eq!(e, vec!["payload.object.participant.leave_time: missing"]);
}
