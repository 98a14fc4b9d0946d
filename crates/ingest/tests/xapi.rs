//! xAPI fixtures (tests/fixtures/xapi/), each normalized to whole expected
//! events.

mod common;

use common::*;
use rollcall_ingest::{xapi, IdType, IdentityKey, IngestError};
use rollcall_model::ActivityKind;
use serde_json::json;

fn run(name: &str) -> rollcall_ingest::Outcome {
    ok(xapi::normalize(&fixture(&format!("xapi/{name}")), &ids(), &xapi::XapiOptions::new("xapi")))
}

const HOME: &str = "https://lms.example.org";

#[test]
fn attended_with_a_duration_is_a_leave_that_counts_on_its_own() {
    let o = run("attended.json");
    assert_eq!(
        o.events,
        vec![ev(json!({
            "event_id": "6690e6c9-3ef0-4ed3-8b37-7f3964730bee", "source": "xapi",
            "student_id": "S2001", "school_id": "lincoln-ms", "section_id": "alg-1-02",
            "kind": "LIVE_LEAVE", "occurred_at": "2025-02-19T15:05:00Z", "duration_seconds": 3130,
            "live_session_id": "https://lms.example.org/live/alg1-p2/2025-02-19",
            "attributes": { "object_id": "https://lms.example.org/live/alg1-p2/2025-02-19",
                            "registration": "ec531277-b57b-4c15-8d91-d292c5b2b8f7", "account_home_page": HOME }
        }))]
    );
}

#[test]
fn a_batch_of_every_verb() {
    let o = run("batch.json");
    let e = |id: &str, student: &str, kind: &str, at: &str, section: Option<&str>, object: &str, home: bool| {
        let mut attributes = json!({ "object_id": object });
        if home {
            attributes["account_home_page"] = json!(HOME);
        }
        json!({ "event_id": id, "source": "xapi", "student_id": student, "school_id": "lincoln-ms", "section_id": section,
                "kind": kind, "occurred_at": at, "attributes": attributes })
    };
    let sec = Some("alg-1-02");
    let mut recording = e(
        "b3a2c1d0-4444-4a2b-8c3d-4e5f6a7b8c9d",
        "S2001",
        "RECORDING_VIEW",
        "2025-02-19T16:00:00Z",
        sec,
        "https://lms.example.org/recordings/alg1-2025-02-18",
        true,
    );
    recording["duration_seconds"] = json!(321);
    let mut comment = e(
        "b3a2c1d0-7777-4a2b-8c3d-4e5f6a7b8c9d",
        "S2001",
        "MESSAGE",
        "2025-02-19T16:20:00Z",
        sec,
        "https://lms.example.org/sections/ALG-1-02/discussions/4",
        true,
    );
    comment["direction"] = json!("FROM_STUDENT");
    let expected = vec![
        e("b3a2c1d0-1111-4a2b-8c3d-4e5f6a7b8c9d", "S2001", "LOGIN", "2025-02-19T13:59:12.250Z", None, HOME, true),
        // mbox identifies Blake; the section is the parent (no grouping); the offset is converted.
        e(
            "b3a2c1d0-2222-4a2b-8c3d-4e5f6a7b8c9d",
            "S2002",
            "SUBMISSION",
            "2025-02-19T15:10:00Z",
            sec,
            "https://lms.example.org/sections/ALG-1-02/assignments/7",
            false,
        ),
        // The first grouping wins over the parent.
        e(
            "b3a2c1d0-3333-4a2b-8c3d-4e5f6a7b8c9d",
            "S2001",
            "SUBMISSION",
            "2025-02-19T15:20:00Z",
            sec,
            "https://lms.example.org/sections/ALG-1-02/lessons/6",
            true,
        ),
        recording,
        e(
            "b3a2c1d0-5555-4a2b-8c3d-4e5f6a7b8c9d",
            "S2001",
            "CONTENT_ACCESS",
            "2025-02-19T16:10:00Z",
            None,
            "https://lms.example.org/tools/desmos",
            true,
        ),
        e(
            "b3a2c1d0-6666-4a2b-8c3d-4e5f6a7b8c9d",
            "S2001",
            "CONTENT_ACCESS",
            "2025-02-19T16:12:00Z",
            None,
            "https://lms.example.org/sections/ALG-1-02/quiz/3/q/1",
            true,
        ),
        comment,
        // No timestamp: `stored` stands in.
        e("b3a2c1d0-8888-4a2b-8c3d-4e5f6a7b8c9d", "S2001", "LOGOUT", "2025-02-19T16:30:00Z", None, HOME, true),
    ];
    assert_eq!(o.events, expected.into_iter().map(ev).collect::<Vec<_>>());
    assert!(o.waiting.is_empty() && o.ignored.is_empty());
}

#[test]
fn messy_statements() {
    let o = run("messy.json");
    assert_eq!(
        o.events,
        vec![ev(json!({
            "event_id": "C0FFEE00-3333-4A2B-8C3D-4E5F6A7B8C9D", "source": "xapi", "student_id": "S2001", "school_id": "lincoln-ms",
            "kind": "LIVE_JOIN", "occurred_at": "2025-02-19T14:00:00Z",
            "live_session_id": "https://lms.example.org/live/alg1-p2/2025-02-19",
            "attributes": { "object_id": "https://lms.example.org/live/alg1-p2/2025-02-19", "account_home_page": HOME }
        }))]
    );
    assert_eq!(
        ignored(&o),
        vec![
            ("http://adlnet.gov/expapi/verbs/commented by staff", 1),
            ("http://adlnet.gov/expapi/verbs/voided", 1),
            ("http://id.tincanapi.com/verb/viewed", 1),
        ]
    );
    // A statement without an id gets a stable one; its person and class wait.
    assert_eq!(o.waiting.len(), 1);
    let w = &o.waiting[0];
    assert_eq!(w.place, "[3]");
    let key = |kind, id: &str| IdentityKey { source: "xapi".into(), kind, external_id: id.into() };
    assert_eq!(w.unknown, vec![key(IdType::Student, "S9999"), key(IdType::Section, "https://lms.example.org/sections/GEO-2-01")]);
    assert!(w.event.event_id.starts_with("xapi:") && w.event.event_id.len() == 37, "{}", w.event.event_id);
    assert_eq!(run("messy.json").waiting[0].event.event_id, w.event.event_id);
}

#[test]
fn a_source_table_maps_other_verbs() {
    let mut options = xapi::XapiOptions::new("xapi");
    options.verbs.insert("http://id.tincanapi.com/verb/viewed".into(), ActivityKind::ContentAccess);
    options.verbs.insert(xapi::ANSWERED.into(), ActivityKind::Submission);
    let o = ok(xapi::normalize(&fixture("xapi/messy.json"), &ids(), &options));
    assert_eq!(
        o.events[0],
        ev(json!({
            "event_id": "C0FFEE00-1111-4A2B-8C3D-4E5F6A7B8C9D", "source": "xapi", "student_id": "S2001", "school_id": "lincoln-ms",
            "kind": "CONTENT_ACCESS", "occurred_at": "2025-02-19T09:00:00Z",
            "attributes": { "object_id": "https://lms.example.org/sections/ALG-1-02/pages/1", "account_home_page": HOME }
        }))
    );
    let o = ok(xapi::normalize(&fixture("xapi/batch.json"), &ids(), &options));
    assert_eq!(o.events[5].kind, ActivityKind::Submission);
}

#[test]
fn a_batch_repeating_an_id_is_refused_whole() {
    let r = xapi::normalize(&fixture("xapi/duplicate-id.json"), &ids(), &xapi::XapiOptions::new("xapi"));
    let e = r.clone().unwrap_err();
    assert_eq!(e.http_status(), 400);
    assert!(matches!(&e.errors[..], [IngestError::DuplicateId { .. }]));
    assert_eq!(errors(r), vec!["[1].id: id `6690E6C9-3EF0-4ED3-8B37-7F3964730BEE` is repeated in the same batch (first at [0])"]);
}

#[test]
fn errors_name_their_place() {
    let r = xapi::normalize(&fixture("xapi/bad-places.json"), &ids(), &xapi::XapiOptions::new("xapi"));
    assert_eq!(
        errors(r),
        vec![
            "[0].actor: no `account.name` or `mbox` to identify the person (mbox_sha1sum, openid and groups are not read)",
            "[1].result.duration: `52 minutes` is not an ISO 8601 duration",
            "[2].timestamp: `2025-02-19T13:59:00` is not an RFC 3339 date and time with an offset: premature end of input",
        ]
    );
    let e = errors(xapi::normalize(
        br#"{"actor":{"mbox":"mailto:a@b"},"verb":{},"object":{}}"#,
        &ids(),
        &xapi::XapiOptions::new("xapi"),
    ));
    assert_eq!(e, vec!["verb.id: missing"]);
    let e = errors(xapi::normalize(b"[1]", &ids(), &xapi::XapiOptions::new("xapi")));
    assert_eq!(e, vec!["[0]: expected a statement object, found a number"]);
}
