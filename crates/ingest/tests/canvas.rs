//! Canvas Live Events fixtures (tests/fixtures/canvas/), in the Canvas form
//! and the Caliper 1.1 form, each normalized to whole expected events. The
//! derived event ids were computed apart from the crate (SHA-256 of the
//! length-prefixed fields, in Python), so a change of the derivation, which
//! would make every re-delivered event look new, fails here.

mod common;

use common::*;
use rollcall_ingest::{canvas, IdType, IdentityKey};
use serde_json::json;

fn run(name: &str) -> rollcall_ingest::Outcome {
    ok(canvas::normalize(&fixture(&format!("canvas/{name}")), &ids(), "canvas"))
}

#[test]
fn submission_created_from_the_docs_example_takes_the_student_from_the_body() {
    let o = run("submission-created.json");
    assert_eq!(
        o.events,
        vec![ev(json!({
            "event_id": "canvas:6dc82599ea846f1c734206bebcda4ae9", "source": "canvas",
            "student_id": "S2002", "school_id": "lincoln-ms", "kind": "SUBMISSION", "occurred_at": "2019-11-01T19:11:21.419Z",
            "attributes": { "assignment_id": "21070000001234012", "submission_type": "online_text_entry" }
        }))]
    );
}

#[test]
fn logged_in_by_sis_id() {
    let o = run("logged-in.json");
    assert_eq!(
        o.events,
        vec![ev(json!({
            "event_id": "canvas:57e00d285acc88c37b62480dfbe5ee02", "source": "canvas",
            "student_id": "S2001", "school_id": "lincoln-ms", "kind": "LOGIN", "occurred_at": "2025-02-19T13:58:02.123Z",
            "attributes": { "context_role": "StudentEnrollment" }
        }))]
    );
}

#[test]
fn messages_from_students_count_and_staff_messages_name_no_student() {
    let o = run("messages.json");
    assert_eq!(
        o.events,
        vec![
            ev(json!({
                "event_id": "canvas:577ad29a88929583de7a70542c5327a4", "source": "canvas",
                "student_id": "S2002", "school_id": "lincoln-ms", "section_id": "alg-1-02",
                "kind": "MESSAGE", "direction": "FROM_STUDENT", "occurred_at": "2025-02-19T15:58:00Z",
                "attributes": { "context_role": "StudentEnrollment" }
            })),
            ev(json!({
                "event_id": "canvas:8337854ff3325525c477bbf199cb2aee", "source": "canvas",
                "student_id": "S2002", "school_id": "lincoln-ms",
                "kind": "MESSAGE", "direction": "FROM_STUDENT", "occurred_at": "2025-02-19T16:05:00Z",
                "attributes": { "conversation_id": "21070000000220001" }
            })),
        ]
    );
    assert_eq!(
        ignored(&o),
        vec![
            ("conversation_message_created by staff (no student named)", 1),
            ("discussion_entry_created by TeacherEnrollment (no student named)", 1),
        ]
    );
}

#[test]
fn asset_accessed_is_content_access_with_the_asset() {
    let o = run("asset-accessed.json");
    assert_eq!(
        o.events,
        vec![
            ev(json!({
                "event_id": "canvas:190ebcf6f5d3cad7473a6cb4ecda1d83", "source": "canvas",
                "student_id": "S2001", "school_id": "lincoln-ms", "section_id": "alg-1-02",
                "kind": "CONTENT_ACCESS", "occurred_at": "2025-02-19T14:05:00Z",
                "attributes": { "asset_type": "wiki_page", "asset_id": "21070000000770001", "context_role": "StudentEnrollment" }
            })),
            ev(json!({
                "event_id": "canvas:b2f1ef6df2ba4f2d0ad6fed4c567718e", "source": "canvas",
                "student_id": "S2001", "school_id": "lincoln-ms", "section_id": "alg-1-02",
                "kind": "CONTENT_ACCESS", "occurred_at": "2025-02-19T14:06:00Z",
                "attributes": { "asset_type": "course", "asset_id": "21070000000000565", "asset_subtype": "quizzes" }
            })),
        ]
    );
}

#[test]
fn the_caliper_form_uses_the_same_keys() {
    let o = run("caliper-variant.json");
    assert_eq!(
        o.events,
        vec![
            ev(json!({
                "event_id": "urn:uuid:8c0a1b2c-3d4e-4f5a-8b6c-7d8e9f0a1b2c", "source": "canvas",
                "student_id": "S2002", "school_id": "lincoln-ms", "kind": "LOGIN", "occurred_at": "2025-02-19T14:00:00Z",
                "attributes": { "object_id": "https://oxana.instructure.com/", "ed_app": "http://oxana.instructure.com/",
                                "session_id": "urn:instructure:canvas:session:ef686f8ed684abf78cbfa1f6a58112b5" }
            })),
            ev(json!({
                "event_id": "urn:uuid:9d1b2c3d-4e5f-4a6b-9c7d-8e9f0a1b2c3d", "source": "canvas",
                "student_id": "S2001", "school_id": "lincoln-ms", "section_id": "alg-1-02",
                "kind": "CONTENT_ACCESS", "occurred_at": "2025-02-19T14:05:00Z",
                "attributes": { "object_id": "urn:instructure:canvas:wikiPage:21070000000770001", "roles": "Learner" }
            })),
        ]
    );
    assert_eq!(ignored(&o), vec![("NavigationEvent.NavigatedTo by a SoftwareApplication", 1)]);
}

#[test]
fn messy_events_numbers_offsets_no_body_unknown_names_and_people() {
    let o = run("messy.json");
    assert_eq!(
        o.events,
        vec![
            ev(json!({
                "event_id": "canvas:80ea331278e27fd66bd7ccda363f150d", "source": "canvas",
                "student_id": "S2002", "school_id": "lincoln-ms", "kind": "LOGOUT", "occurred_at": "2025-02-19T16:30:00.500Z"
            })),
            // A system job's event names its user in the body only.
            ev(json!({
                "event_id": "canvas:281e7b380b298d25abe2901dc15e74c1", "source": "canvas",
                "student_id": "S2002", "school_id": "lincoln-ms", "kind": "CONTENT_ACCESS", "occurred_at": "2025-02-19T16:50:00Z",
                "attributes": { "asset_type": "attachment", "asset_id": "21070000000880001" }
            })),
        ]
    );
    assert_eq!(ignored(&o), vec![("grade_change", 1)]);
    let key = |kind, id: &str| IdentityKey { source: "canvas".into(), kind, external_id: id.into() };
    assert_eq!(o.waiting.len(), 1);
    assert_eq!(o.waiting[0].place, "[2]");
    assert_eq!(o.waiting[0].unknown, vec![key(IdType::Student, "21070000000055555"), key(IdType::Section, "21070000000000999")]);
    assert_eq!(
        o.waiting[0].event,
        ev(json!({
            "event_id": "canvas:b3c467449038a385e3b9cf6c2c4c0214", "source": "canvas",
            "student_id": "21070000000055555", "school_id": "", "section_id": "21070000000000999",
            "kind": "SUBMISSION", "occurred_at": "2025-02-19T16:45:00Z",
            "attributes": { "assignment_id": "21070000001234099", "submission_type": "online_upload" }
        }))
    );
}

#[test]
fn a_redelivered_event_is_a_duplicate_and_another_request_is_not() {
    let body = fixture("canvas/logged-in.json");
    let first = run("logged-in.json").events[0].event_id.clone();
    // Canvas re-sends the same bytes, or the same event re-serialised.
    let reformatted = serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(&body).unwrap()).unwrap();
    assert_eq!(ok(canvas::normalize(&reformatted, &ids(), "canvas")).events[0].event_id, first);
    let other =
        String::from_utf8(body).unwrap().replace("98e1a5b2-4c3d-4e6f-9a1b-2c3d4e5f6a7b", "00000000-4c3d-4e6f-9a1b-2c3d4e5f6a7b");
    assert_ne!(ok(canvas::normalize(other.as_bytes(), &ids(), "canvas")).events[0].event_id, first);
}

#[test]
fn errors_name_their_place() {
    let e = errors(canvas::normalize(
        br#"[{"metadata":{"event_name":"logged_in"}},{"metadata":{"event_name":"logged_in","event_time":"2025-02-19T13:58:02Z"}},{"body":{}},7]"#,
        &ids(),
        "canvas",
    ));
    assert_eq!(
        e,
        vec![
            "[0].metadata.event_time: missing",
            "[1].metadata: no `user_sis_id` or `user_id`, and the body names no user",
            "[2].metadata: missing",
            "[3]: expected a Live Event object with `metadata` and `body`, found a number",
        ]
    );
    let e = errors(canvas::normalize(
        br#"{"metadata":{"event_name":"asset_accessed","event_time":"x","user_id":[1]}}"#,
        &ids(),
        "canvas",
    ));
    assert_eq!(e, vec!["metadata.user_id: expected a string or an integer, found an array"]);
}
