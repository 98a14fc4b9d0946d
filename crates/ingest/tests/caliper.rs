//! Caliper 1.1 and 1.2 fixtures (tests/fixtures/caliper/), each normalized
//! to whole expected events.

mod common;

use common::*;
use rollcall_ingest::{caliper, IdType, Identity, IdentityKey, IngestError, Resolution};
use serde_json::json;

fn run(name: &str) -> rollcall_ingest::Outcome {
    ok(caliper::normalize(&fixture(&format!("caliper/{name}")), &ids(), "caliper"))
}

#[test]
fn assessment_submitted_from_the_spec_example() {
    let o = run("assessment-submitted.json");
    assert_eq!(
        o.events,
        vec![ev(json!({
            "event_id": "urn:uuid:dad88464-0c20-4a19-a1ba-ddf2f9c3ff33", "source": "caliper",
            "student_id": "S2001", "school_id": "lincoln-ms", "section_id": "alg-1-02",
            "kind": "SUBMISSION", "occurred_at": "2025-02-19T15:25:30Z",
            "attributes": { "object_id": "https://lms.example.edu/sections/1/assess/1", "ed_app": "https://lms.example.edu",
                            "session_id": "https://lms.example.edu/sessions/1f6442a4", "roles": "Learner" }
        }))]
    );
    assert!(o.waiting.is_empty() && o.ignored.is_empty());
}

#[test]
fn session_logged_in_with_edapp_as_a_string() {
    let o = run("session-logged-in.json");
    assert_eq!(
        o.events,
        vec![ev(json!({
            "event_id": "urn:uuid:fcd495d0-3740-4298-9bec-1154571dc211", "source": "caliper",
            "student_id": "S2001", "school_id": "lincoln-ms", "kind": "LOGIN", "occurred_at": "2016-11-15T10:15:00Z",
            "attributes": { "object_id": "https://example.edu", "ed_app": "https://example.edu",
                            "session_id": "https://example.edu/sessions/1f6442a4" }
        }))]
    );
}

#[test]
fn logged_out_and_timed_out_with_the_student_from_the_session() {
    let o = run("session-logged-out-timed-out.json");
    assert_eq!(
        o.events,
        vec![
            ev(json!({
                "event_id": "urn:uuid:a438f8ac-1da3-4d48-8c86-94a1b387e0f6", "source": "caliper",
                "student_id": "S2001", "school_id": "lincoln-ms", "kind": "LOGOUT", "occurred_at": "2016-11-15T11:05:00Z",
                "attributes": { "object_id": "https://example.edu", "ed_app": "https://example.edu",
                                "session_id": "https://example.edu/sessions/1f6442a4" }
            })),
            ev(json!({
                "event_id": "urn:uuid:4e61cf6c-ffbe-45bc-893f-afaa8f16bb6c", "source": "caliper",
                "student_id": "S2001", "school_id": "lincoln-ms", "kind": "LOGOUT", "occurred_at": "2016-11-15T11:15:00Z",
                "attributes": { "object_id": "https://example.edu/sessions/7d6b88adf746f0692e2e873308b78c60fb13a864",
                                "ed_app": "https://example.edu", "reason": "timeout", "actor_id": "https://example.edu" }
            })),
        ]
    );
}

#[test]
fn messages_take_their_direction_from_the_membership_roles() {
    let o = run("message-posted.json");
    assert_eq!(
        o.events,
        vec![
            ev(json!({
                "event_id": "urn:uuid:0d015a85-abf5-49ee-abb1-46dbd57fe64e", "source": "caliper",
                "student_id": "S2001", "school_id": "lincoln-ms", "section_id": "alg-1-02",
                "kind": "MESSAGE", "direction": "FROM_STUDENT", "occurred_at": "2025-02-19T15:58:00Z",
                "attributes": { "object_id": "https://lms.example.edu/sections/1/forums/2/topics/1/messages/2",
                                "ed_app": "https://lms.example.edu", "session_id": "https://lms.example.edu/sessions/1f6442a4",
                                "roles": "Learner" }
            })),
            // The instructor's reply is a message to the student it replies to.
            ev(json!({
                "event_id": "urn:uuid:aed54386-a3fb-45ff-90f9-f35e5e06e5a2", "source": "caliper",
                "student_id": "S2001", "school_id": "lincoln-ms", "section_id": "alg-1-02", "staff_id": "T-17",
                "kind": "MESSAGE", "direction": "FROM_STAFF", "occurred_at": "2025-02-19T16:00:00Z",
                "attributes": { "object_id": "https://lms.example.edu/sections/1/forums/2/topics/1/messages/3", "roles": "Instructor" }
            })),
        ]
    );
    assert_eq!(ignored(&o), vec![("MessageEvent.MarkedAsRead", 1), ("MessageEvent.Posted by staff (no student named)", 1)]);
}

#[test]
fn a_started_ended_pair_on_a_recording_is_one_view_with_its_own_duration() {
    let o = run("media-started-ended.json");
    assert_eq!(
        o.events,
        vec![
            // 16:20:00 to 17:02:30, whatever the video's own `duration` says.
            ev(json!({
                "event_id": "urn:uuid:ab5c3e1a-7d0e-4b21-9c52-f6a3e1d2c0b9", "source": "caliper",
                "student_id": "S2001", "school_id": "lincoln-ms", "section_id": "alg-1-02",
                "kind": "RECORDING_VIEW", "occurred_at": "2025-02-19T17:02:30Z", "duration_seconds": 2550,
                "attributes": { "object_id": "https://lms.example.edu/videos/1225", "started_at": "2025-02-19T16:20:00.000Z" }
            })),
            // An image is content, not a recording of instruction.
            ev(json!({
                "event_id": "urn:uuid:c3d4e5f6-0718-4293-a4b5-c6d7e8f90a1b", "source": "caliper",
                "student_id": "S2001", "school_id": "lincoln-ms", "kind": "CONTENT_ACCESS", "occurred_at": "2025-02-19T17:05:00Z",
                "attributes": { "object_id": "https://lms.example.edu/images/diagram-3" }
            })),
        ]
    );
    assert_eq!(ignored(&o), vec![("MediaEvent.Paused", 1)]);
}

#[test]
fn an_unpaired_media_event_has_no_duration() {
    let body = String::from_utf8(fixture("caliper/media-started-ended.json")).unwrap();
    // Only the Ended of the pair arrives in this request.
    let mut doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    let data = doc["data"].as_array_mut().unwrap();
    data.remove(0);
    let o = ok(caliper::normalize(doc.to_string().as_bytes(), &ids(), "caliper"));
    assert_eq!(o.events[0].kind, rollcall_model::ActivityKind::RecordingView);
    assert_eq!(o.events[0].duration_seconds, None);
    assert!(!o.events[0].attributes.contains_key("started_at"));
}

#[test]
fn navigation_view_and_tool_use_are_content_access() {
    let o = run("content-access.json");
    let expect = |id: &str, at: &str, section: Option<&str>, object: &str, ed_app: bool| {
        let mut attributes = json!({ "object_id": object });
        if ed_app {
            attributes["ed_app"] = json!("https://lms.example.edu");
        }
        ev(json!({ "event_id": id, "source": "caliper", "student_id": "S2001", "school_id": "lincoln-ms",
                   "section_id": section, "kind": "CONTENT_ACCESS", "occurred_at": at, "attributes": attributes }))
    };
    assert_eq!(
        o.events,
        vec![
            expect(
                "urn:uuid:ff9ec22a-fc59-4ae1-ae8d-2c9463ee2f8f",
                "2025-02-19T14:05:00Z",
                Some("alg-1-02"),
                "https://lms.example.edu/sections/1/pages/2",
                true
            ),
            expect(
                "urn:uuid:cd088ca7-c044-405c-bb41-0b2a8506f907",
                "2025-02-19T14:07:00Z",
                Some("alg-1-02"),
                "https://lms.example.edu/etexts/201",
                false
            ),
            expect(
                "urn:uuid:7e10e4f3-a0d8-4430-95bd-783ffae4d916",
                "2025-02-19T14:09:00Z",
                None,
                "https://lms.example.edu/tools/graphing",
                false
            ),
        ]
    );
}

#[test]
fn messy_entities_as_strings_extra_fields_offsets_and_unknown_actions() {
    let o = run("messy-strings-offsets.json");
    assert_eq!(
        o.events,
        vec![
            ev(json!({
                "event_id": "urn:uuid:3a9c2f7e-5b4d-4e1a-8c6f-0d2b9e7a1c53", "source": "caliper",
                "student_id": "S2001", "school_id": "lincoln-ms", "section_id": "alg-1-02",
                "kind": "SUBMISSION", "occurred_at": "2025-02-19T15:25:30.500Z",
                "attributes": { "object_id": "https://lms.example.edu/sections/1/assign/7" }
            })),
            ev(json!({
                "event_id": "urn:uuid:51b0a9e2-2c6e-4f0b-9d3a-7e8c1f2a4b6d", "source": "caliper",
                "student_id": "S2001", "school_id": "lincoln-ms", "kind": "LOGIN", "occurred_at": "2025-02-19T15:30:00Z",
                "attributes": { "object_id": "https://lms.example.edu" }
            })),
            ev(json!({
                "event_id": "urn:uuid:0e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b", "source": "caliper",
                "student_id": "S2001", "school_id": "lincoln-ms", "kind": "LOGIN", "occurred_at": "2025-02-19T15:30:00Z",
                "attributes": { "object_id": "https://lms.example.edu" }
            })),
        ]
    );
    assert_eq!(
        ignored(&o),
        vec![
            ("AnnotationEvent.Bookmarked", 1),
            ("NavigationEvent.NavigatedTo by a SoftwareApplication", 1),
            ("entity Person", 1)
        ]
    );
}

#[test]
fn unknown_people_and_classes_wait_for_identity_and_staff_activity_is_not_attendance() {
    let o = run("unknown-person-and-class.json");
    assert!(o.events.is_empty());
    let key = |kind, id: &str| IdentityKey { source: "caliper".into(), kind, external_id: id.into() };
    assert_eq!(o.waiting.len(), 2);
    assert_eq!(o.waiting[0].place, "data[0]");
    assert_eq!(
        o.waiting[0].unknown,
        vec![
            key(IdType::Student, "https://lms.example.edu/users/999999"),
            key(IdType::Section, "https://lms.example.edu/sections/9")
        ]
    );
    assert_eq!(
        o.waiting[0].event,
        ev(json!({
            "event_id": "urn:uuid:1b2c3d4e-5f60-4718-92a3-b4c5d6e7f809", "source": "caliper",
            "student_id": "https://lms.example.edu/users/999999", "school_id": "",
            "section_id": "https://lms.example.edu/sections/9",
            "kind": "SUBMISSION", "occurred_at": "2025-02-19T15:25:00Z",
            "attributes": { "object_id": "https://lms.example.edu/sections/9/assign/1" }
        }))
    );
    assert_eq!(o.waiting[1].unknown, vec![key(IdType::Section, "https://lms.example.edu/sections/9")]);
    // A waiting event keeps every key as the platform sent it, the known
    // ones too, so that it is resolved whole against a later view.
    assert_eq!(o.waiting[1].event.student_id, "https://lms.example.edu/users/554433");
    assert_eq!(o.waiting[1].event.school_id, "");
    let mut later = ids();
    later.insert(
        "caliper",
        IdType::Section,
        "https://lms.example.edu/sections/9",
        Identity { id: "alg-9".into(), school_id: String::new() },
    );
    match rollcall_ingest::resolve(&o.waiting[1].event, &later) {
        Resolution::Ready(e) => {
            assert_eq!((e.student_id.as_str(), e.school_id.as_str()), ("S2001", "lincoln-ms"));
            assert_eq!(e.section_id.as_deref(), Some("alg-9"));
            assert_eq!(e.event_id, o.waiting[1].event.event_id);
        }
        other => panic!("expected the event to resolve, got {other:?}"),
    }
    assert_eq!(
        rollcall_ingest::resolve(&o.waiting[0].event, &later),
        Resolution::Waiting(vec![key(IdType::Student, "https://lms.example.edu/users/999999")])
    );
    let staff =
        rollcall_model::ActivityEvent { student_id: "https://lms.example.edu/users/112233".into(), ..o.waiting[0].event.clone() };
    assert_eq!(rollcall_ingest::resolve(&staff, &later), Resolution::Staff);
    assert_eq!(ignored(&o), vec![("SessionEvent.LoggedIn by staff", 1)]);
}

#[test]
fn caliper_1_0_is_refused_with_its_own_error() {
    let r = caliper::normalize(&fixture("caliper/v1p0-refused.json"), &ids(), "caliper");
    let e = r.clone().unwrap_err();
    assert_eq!(e.http_status(), 422);
    assert!(
        matches!(&e.errors[..], [IngestError::UnsupportedVersion { place, found }] if place == "data[0].@context" && found == "1.0")
    );
    assert_eq!(
        errors(r),
        vec!["data[0].@context: Caliper 1.0 is not supported; send Caliper 1.1 or 1.2 (dataVersion http://purl.imsglobal.org/ctx/caliper/v1p1 or http://purl.imsglobal.org/ctx/caliper/v1p2)"]
    );
    // A 1.0 dataVersion, and one from the future, are both 422.
    for (v, found) in [
        ("http://purl.imsglobal.org/ctx/caliper/v1/Context", "1.0"),
        ("http://purl.imsglobal.org/ctx/caliper/v1p3", "dataVersion `http://purl.imsglobal.org/ctx/caliper/v1p3`"),
    ] {
        let body = json!({ "sensor": "s", "sendTime": "2025-02-19T15:26:01.000Z", "dataVersion": v, "data": [] }).to_string();
        let e = caliper::normalize(body.as_bytes(), &ids(), "caliper").unwrap_err();
        assert_eq!(e.http_status(), 422);
        assert!(matches!(&e.errors[..], [IngestError::UnsupportedVersion { found: f, .. }] if f == found), "{e}");
    }
}

#[test]
fn errors_name_their_place() {
    let r = caliper::normalize(&fixture("caliper/bad-places.json"), &ids(), "caliper");
    assert_eq!(
        errors(r),
        vec![
            "data[1].object: expected a string or an object, found a number".to_string(),
            "data[2].eventTime: `19 Feb 2025` is not an RFC 3339 date and time with an offset: premature end of input"
                .to_string(),
        ]
    );
    let e = errors(caliper::normalize(
        br#"{"dataVersion":"http://purl.imsglobal.org/ctx/caliper/v1p2","data":{}}"#,
        &ids(),
        "caliper",
    ));
    assert_eq!(e, vec!["sensor: missing", "sendTime: missing", "data: expected an array, found an object"]);
    let e = errors(caliper::normalize(b"{\"sensor\":", &ids(), "caliper"));
    assert_eq!(e, vec!["not JSON (line 1, column 10): EOF while parsing a value at line 1 column 10"]);
    let e = errors(caliper::normalize(b"[]", &ids(), "caliper"));
    assert_eq!(e, vec!["(the document): expected a Caliper envelope object, found an array"]);
}

#[test]
fn the_source_names_the_identity_rows() {
    // The same payload from a source the view has no rows for waits.
    let o = ok(caliper::normalize(&fixture("caliper/session-logged-in.json"), &ids(), "district-moodle"));
    assert!(o.events.is_empty());
    assert_eq!(o.waiting[0].event.source, "district-moodle");
    assert_eq!(o.waiting[0].unknown[0].source, "district-moodle");
}
