//! rollcall's own forms (tests/fixtures/native/): ActivityEvent JSON, one or
//! many, and the CSV of teacher-logged contacts and returned packets.

mod common;

use common::*;
use rollcall_ingest::{native, normalize, Format, IdentityView};
use serde_json::json;

#[test]
fn json_events_pass_through_unchanged() {
    let o = ok(native::normalize(&fixture("native/events.json"), None));
    assert_eq!(
        o.events,
        vec![
            ev(json!({ "event_id": "door-2025-02-19-0001", "source": "door", "student_id": "S2001", "school_id": "lincoln-ms",
                       "kind": "CHECK_IN", "occurred_at": "2025-02-19T13:52:10Z", "attributes": { "door": "north" } })),
            ev(json!({ "event_id": "gc-88123", "source": "google_classroom", "student_id": "S2002", "school_id": "lincoln-ms",
                       "section_id": "alg-1-02", "kind": "SUBMISSION", "occurred_at": "2025-02-19T21:10:00Z",
                       "assigned_date": "2025-02-19" })),
        ]
    );
    let o = ok(native::normalize(&fixture("native/one-event.json"), None));
    assert_eq!(
        o.events,
        vec![ev(json!({ "event_id": "sms-77", "source": "sms_gateway", "student_id": "S2001", "school_id": "lincoln-ms",
                        "staff_id": "T-17", "kind": "MESSAGE", "direction": "FROM_GUARDIAN", "occurred_at": "2025-02-19T18:30:00Z" }))]
    );
}

#[test]
fn json_errors_name_their_place() {
    let e = errors(native::normalize(&fixture("native/bad-event.json"), None));
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("[1].kind: unknown variant `CHECKED_IN`"), "{}", e[0]);
    let e = errors(native::normalize(br#"{"event_id":"","source":"x","student_id":"s","school_id":"","kind":"LOGIN","occurred_at":"2025-02-19T00:00:00Z","colour":"red"}"#, None));
    assert!(e[0].starts_with("colour: unknown field `colour`"), "{}", e[0]);
    let e = errors(native::normalize(
        br#"[{"event_id":"","source":"x","student_id":"s","school_id":"","kind":"LOGIN","occurred_at":"2025-02-19T00:00:00Z"}]"#,
        None,
    ));
    assert_eq!(e, vec!["[0].event_id: empty"]);
}

#[test]
fn the_csv_of_contacts_and_packets() {
    let o = ok(native::normalize(&fixture("native/contacts.csv"), None));
    assert_eq!(
        o.events,
        vec![
            ev(json!({ "event_id": "call-0219-01", "source": "teacher_log", "student_id": "S2001", "school_id": "lincoln-ms",
                       "section_id": "hr-3", "staff_id": "T-17", "kind": "TWO_WAY_CONTACT", "occurred_at": "2025-02-19T16:30:00Z",
                       "attributes": { "method": "phone" } })),
            // No id: one derived from the row, the same on every import.
            ev(json!({ "event_id": "log:bb18c43e6eacd6dc170b9b06de4cd9e5", "source": "teacher_log", "student_id": "S2002",
                       "school_id": "lincoln-ms", "staff_id": "T-17", "kind": "TWO_WAY_CONTACT",
                       "occurred_at": "2025-02-19T17:05:00Z", "attributes": { "method": "home visit, with interpreter" } })),
            ev(json!({ "event_id": "packet-88", "source": "teacher_log", "student_id": "S2002", "school_id": "lincoln-ms",
                       "section_id": "alg-1-02", "kind": "OFFLINE_WORK_RETURNED", "occurred_at": "2025-02-21T15:00:00Z",
                       "assigned_date": "2025-02-19" })),
        ]
    );
    // A configured source names the rows.
    let o = ok(normalize(Format::Native, &fixture("native/contacts.csv"), &IdentityView::new(), Some("counselors")));
    assert!(o.events.iter().all(|e| e.source == "counselors"));
}

#[test]
fn csv_errors_name_line_and_column() {
    let e = errors(native::normalize(&fixture("native/bad-rows.csv"), None));
    assert_eq!(
        e,
        vec![
            "line 2, column `kind`: `PHONE_CALL` is not TWO_WAY_CONTACT or OFFLINE_WORK_RETURNED",
            "line 3, column `staff_id`: empty: a two-way contact is made by a staff member",
            "line 3, column `occurred_at`: `2025-02-19 10:30` is not an RFC 3339 date and time with an offset: premature end of input",
            "line 4, column `student_id`: empty",
            "line 4, column `assigned_date`: `19/02/2025` is not a date (YYYY-MM-DD)",
            "line 5: 4 fields; the header has 9",
        ]
    );
    let e = errors(native::normalize(b"student_id,kind\nS1,TWO_WAY_CONTACT\n", None));
    assert_eq!(
        e,
        vec!["line 1: the header is `student_id,kind`; expected exactly `event_id,kind,student_id,school_id,section_id,staff_id,occurred_at,assigned_date,method`"]
    );
}
