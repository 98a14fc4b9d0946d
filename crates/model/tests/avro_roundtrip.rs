//! Avro and canonical-JSON round trips for every record, schema/enum
//! agreement, interoperability with apache-avro's own codec, and decoding of
//! bad input (errors that say what is wrong, never panics).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::PathBuf;

use apache_avro::types::Value;
use chrono::{DateTime, NaiveDate, Utc};
use rollcall_model::avro::{single_object_fingerprint, AvroError, AvroRecord};
use rollcall_model::*;
use serde::{de::DeserializeOwned, Serialize};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn t(s: &str) -> LocalTime {
    s.parse().unwrap()
}

// ---------------------------------------------------------------------------
// Fixtures: each record fully populated and minimal.

fn activity_full() -> ActivityEvent {
    ActivityEvent {
        event_id: "ev-1".into(),
        source: "canvas".into(),
        student_id: "s1".into(),
        school_id: "sch".into(),
        section_id: Some("math-7".into()),
        staff_id: Some("t9".into()),
        kind: ActivityKind::Message,
        direction: Some(Direction::FromGuardian),
        // Microsecond precision: the most Avro timestamp-micros carries.
        occurred_at: at("2020-10-06T14:03:07.123456Z"),
        assigned_date: Some(day("2020-10-05")),
        live_session_id: Some("zoom-42".into()),
        duration_seconds: Some(-7),
        attributes: BTreeMap::from([
            ("course".into(), "Algebra".into()),
            ("ip".into(), "10.0.0.1".into()),
            ("ünïcode".into(), "✓".into()),
        ]),
        received_at: Some(at("2020-10-06T14:05:00.000001Z")),
    }
}

fn activity_min() -> ActivityEvent {
    ActivityEvent {
        event_id: String::new(),
        source: "door".into(),
        student_id: "s".into(),
        school_id: "x".into(),
        section_id: None,
        staff_id: None,
        kind: ActivityKind::OfflineWorkReturned,
        direction: None,
        occurred_at: at("1969-12-31T23:59:59.999999Z"),
        assigned_date: None,
        live_session_id: None,
        duration_seconds: None,
        attributes: BTreeMap::new(),
        received_at: None,
    }
}

fn student_full() -> StudentRecord {
    StudentRecord {
        student_id: "s1".into(),
        school_id: "sch".into(),
        grade_level: GradeLevel::Pk4,
        homeroom_section_id: Some("hr-1".into()),
        homeroom_staff_id: Some("t1".into()),
        groups: vec!["ELL".into(), "FRL".into()],
        enrollments: vec![
            Enrollment {
                section_id: "math-7".into(),
                staff_id: "t2".into(),
                course_type: CourseType::Live,
                specials: false,
                dual_enrollment: true,
                meetings: vec![
                    Meeting { weekdays: vec![Weekday::Mon, Weekday::Wed, Weekday::Fri], start: t("08:30"), end: t("09:20") },
                    Meeting { weekdays: vec![Weekday::Sun], start: t("23:00"), end: t("24:00") },
                ],
            },
            Enrollment {
                section_id: "art".into(),
                staff_id: "t3".into(),
                course_type: CourseType::AsyncOnly,
                specials: true,
                dual_enrollment: false,
                meetings: vec![],
            },
        ],
        modes: vec![
            ModeSpan {
                from: day("2020-09-01"),
                to: day("2021-06-15"),
                weekdays: vec![Weekday::Tue, Weekday::Thu],
                mode: Mode::InPerson,
            },
            ModeSpan {
                from: day("1900-01-01"),
                to: day("2100-12-31"),
                weekdays: vec![Weekday::Sat],
                mode: Mode::LearningPackets,
            },
        ],
    }
}

fn student_min() -> StudentRecord {
    StudentRecord::new("s", "x", GradeLevel::G12)
}

fn calendar_full() -> SchoolCalendar {
    SchoolCalendar {
        school_id: "sch".into(),
        timezone: "America/Chicago".into(),
        policy: "instruction-partners".into(),
        days: vec![
            CalendarDay {
                date: day("2020-10-05"),
                instructional: true,
                day_type: DayType::Full,
                start: t("08:00"),
                end: t("15:00"),
            },
            CalendarDay {
                date: day("2020-10-07"),
                instructional: true,
                day_type: DayType::Async,
                start: t("08:00"),
                end: t("12:30"),
            },
            CalendarDay {
                date: day("2020-10-09"),
                instructional: false,
                day_type: DayType::EarlyRelease,
                start: t("00:00"),
                end: t("00:00"),
            },
        ],
    }
}

fn calendar_min() -> SchoolCalendar {
    SchoolCalendar { school_id: "x".into(), timezone: "UTC".into(), policy: "mmsd".into(), days: vec![] }
}

fn absence_full() -> AbsenceReport {
    AbsenceReport {
        report_id: "r1".into(),
        student_id: "s1".into(),
        date: day("2020-10-06"),
        reported_at: at("2020-10-06T06:15:00Z"),
        reason: AbsenceReason::Other,
        reporter: Reporter::Staff,
    }
}

fn absence_min() -> AbsenceReport {
    AbsenceReport {
        report_id: String::new(),
        student_id: String::new(),
        date: day("1970-01-01"),
        reported_at: at("1970-01-01T00:00:00Z"),
        reason: AbsenceReason::Illness,
        reporter: Reporter::Guardian,
    }
}

fn determination_full() -> Determination {
    Determination {
        determination_id: "d1".into(),
        student_id: "s1".into(),
        school_id: "sch".into(),
        scope: Scope::Week,
        date: day("2020-10-05"),
        section_id: Some("math-7".into()),
        policy: "nmped".into(),
        status: Status::Contacts,
        code: "C23".into(),
        attendance_type: Some(AttendanceType::Virtual),
        minutes: Some(i64::MAX),
        contacts: Some(3),
        category: Some("PARTIAL".into()),
        rule: "contacts on 3 dates".into(),
        evidence: vec!["ev-1".into(), "ev-2".into()],
        version: 2,
        finality: Finality::Correction,
        decided_at: at("2020-10-12T21:00:00.000001Z"),
        evidence_detail: vec![
            EvidenceDetail {
                id: "ev-1".into(),
                kind: "LIVE_JOIN".into(),
                occurred_at: Some(at("2020-10-06T14:05:00Z")),
                local_time: Some("2020-10-06 08:05".into()),
                source: Some("zoom".into()),
                section_id: Some("math-7".into()),
                staff_id: Some("t-1".into()),
                detail: Some("52 minutes".into()),
            },
            EvidenceDetail {
                id: "r-1".into(),
                kind: "ABSENCE_REPORT".into(),
                occurred_at: None,
                local_time: None,
                source: None,
                section_id: None,
                staff_id: None,
                detail: None,
            },
        ],
        looked_for: vec!["a live session".into(), "a submission".into()],
        seen: vec![SeenActivity {
            kind: "CONTENT_VIEW".into(),
            section_id: None,
            count: 3,
            first_local_time: "2020-10-06 09:12".into(),
            why_not: "not counted".into(),
        }],
    }
}

fn determination_min() -> Determination {
    Determination {
        determination_id: "d".into(),
        student_id: "s".into(),
        school_id: "x".into(),
        scope: Scope::Day,
        date: day("2020-10-06"),
        section_id: None,
        policy: "mmsd".into(),
        status: Status::AbsentUnexcused,
        code: "AU".into(),
        attendance_type: None,
        minutes: None,
        contacts: None,
        category: None,
        rule: "no evidence".into(),
        evidence: vec![],
        version: 1,
        finality: Finality::Provisional,
        decided_at: at("2020-10-07T05:00:00Z"),
        evidence_detail: vec![],
        looked_for: vec![],
        seen: vec![],
    }
}

fn outreach_full() -> OutreachTrigger {
    OutreachTrigger {
        trigger_id: "tr-1".into(),
        student_id: "s1".into(),
        school_id: "sch".into(),
        kind: OutreachKind::LowContact,
        recipient_role: RecipientRole::AttendanceTeam,
        staff_id: Some("t2".into()),
        section_id: Some("math-7".into()),
        window_start: day("2020-09-28"),
        window_end: day("2020-10-11"),
        reason: "4 contacts in two weeks".into(),
        evidence: vec!["d1".into(), "d2".into()],
        policy: "nmped".into(),
        created_at: at("2020-10-12T21:00:00Z"),
    }
}

fn outreach_min() -> OutreachTrigger {
    OutreachTrigger {
        trigger_id: "tr".into(),
        student_id: "s".into(),
        school_id: "x".into(),
        kind: OutreachKind::TruancyReferral,
        recipient_role: RecipientRole::AttendanceOfficer,
        staff_id: None,
        section_id: None,
        window_start: day("2020-10-06"),
        window_end: day("2020-10-06"),
        reason: String::new(),
        evidence: vec![],
        policy: "mississippi".into(),
        created_at: at("2020-10-06T23:00:00Z"),
    }
}

fn dead_letter_full() -> DeadLetter {
    DeadLetter {
        topic: "lms.activity.v1".into(),
        partition: Some(11),
        offset: Some(1 << 40),
        key: Some("s1".into()),
        value: (0..=255u8).collect(),
        error_kind: rollcall_model::DeadLetterKind::NotAvro.to_string(),
        message: "bad bytes".into(),
        failed_at: at("2020-10-06T12:00:00Z"),
    }
}

fn dead_letter_min() -> DeadLetter {
    DeadLetter {
        topic: "t".into(),
        partition: None,
        offset: None,
        key: None,
        value: vec![],
        error_kind: rollcall_model::DeadLetterKind::MissingKey.to_string(),
        message: String::new(),
        failed_at: at("2020-10-06T12:00:00Z"),
    }
}

// ---------------------------------------------------------------------------
// Round trips.

fn round_trip<T: AvroRecord + PartialEq + Debug + Serialize + DeserializeOwned>(r: &T) {
    let name = T::SCHEMA_FILE;

    let datum = r.to_avro_datum().unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(&T::from_avro_datum(&datum).unwrap(), r, "{name}: datum");

    let so = r.to_single_object().unwrap();
    assert_eq!(so[..2], [0xC3, 0x01], "{name}");
    assert_eq!(single_object_fingerprint(&so).unwrap(), T::fingerprint(), "{name}");
    assert_eq!(so[10..], datum[..], "{name}: single object = header + datum");
    assert_eq!(&T::from_single_object(&so).unwrap(), r, "{name}: single object");

    assert_eq!(&T::from_avro_datum_generic(&datum).unwrap(), r, "{name}: datum, generic decoder");
    assert_eq!(r.to_avro_datum_generic().unwrap(), datum, "{name}: datum, generic encoder");

    // Deterministic: the same record always gives the same bytes.
    assert_eq!(r.to_avro_datum().unwrap(), datum, "{name}");

    let json = serde_json::to_string(r).unwrap();
    assert_eq!(&serde_json::from_str::<T>(&json).unwrap(), r, "{name}: json {json}");

    // apache-avro reads our bytes as the same value and writes the same
    // value to bytes we read back: the wire format is plain Avro.
    let value = r.to_avro_value();
    let theirs = apache_avro::from_avro_datum(T::schema(), &mut datum.as_slice(), None)
        .unwrap_or_else(|e| panic!("{name}: apache-avro cannot read our datum: {e}"));
    assert_eq!(theirs, value, "{name}: apache-avro decoding");
    let their_bytes =
        apache_avro::to_avro_datum(T::schema(), value).unwrap_or_else(|e| panic!("{name}: apache-avro rejects our value: {e}"));
    assert_eq!(&T::from_avro_datum(&their_bytes).unwrap(), r, "{name}: apache-avro encoding");
}

#[test]
fn every_record_round_trips_full_and_minimal() {
    round_trip(&activity_full());
    round_trip(&activity_min());
    round_trip(&student_full());
    round_trip(&student_min());
    round_trip(&calendar_full());
    round_trip(&calendar_min());
    round_trip(&absence_full());
    round_trip(&absence_min());
    round_trip(&determination_full());
    round_trip(&determination_min());
    round_trip(&outreach_full());
    round_trip(&outreach_min());
    round_trip(&dead_letter_full());
    round_trip(&dead_letter_min());
}

/// The borrowed event writes the owned event's bytes, wherever in a buffer
/// it starts, and says where the student id (the record's key) is in them.
#[test]
fn a_borrowed_event_writes_the_owned_events_bytes() {
    use rollcall_model::avro::ActivityEventRef;
    let mut buf = b"earlier records".to_vec();
    for e in [activity_full(), activity_min()] {
        let start = buf.len();
        let key = ActivityEventRef::of(&e).write_single_object(&mut buf);
        assert_eq!(buf[start..], e.to_single_object().unwrap()[..], "{e:?}");
        assert_eq!(&buf[key.clone()], e.student_id.as_bytes(), "{e:?}");
        assert!(key.start > start + 10 && key.end < buf.len());
        let mut datum = Vec::new();
        ActivityEventRef::of(&e).write_datum(&mut datum);
        assert_eq!(datum, e.to_avro_datum_generic().unwrap(), "{e:?}");
    }
}

#[test]
fn every_grade_level_round_trips() {
    for g in GradeLevel::ALL {
        round_trip(&StudentRecord { grade_level: *g, ..student_min() });
    }
}

#[test]
fn every_record_type_has_its_own_fingerprint() {
    let mut fps = vec![
        ActivityEvent::fingerprint(),
        StudentRecord::fingerprint(),
        SchoolCalendar::fingerprint(),
        AbsenceReport::fingerprint(),
        Determination::fingerprint(),
        OutreachTrigger::fingerprint(),
        DeadLetter::fingerprint(),
        IdentityRecord::fingerprint(),
    ];
    fps.sort();
    fps.dedup();
    assert_eq!(fps.len(), 8);
}

// ---------------------------------------------------------------------------
// Schema files against the Rust types.

fn schema_json(file: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

const SCHEMA_FILES: [&str; 8] = [
    "activity_event.avsc",
    "student_record.avsc",
    "school_calendar.avsc",
    "absence_report.avsc",
    "determination.avsc",
    "outreach_trigger.avsc",
    "dead_letter.avsc",
    "identity_record.avsc",
];

/// Visits every JSON object in a schema document.
fn walk<'a>(v: &'a serde_json::Value, visit: &mut dyn FnMut(&'a serde_json::Map<String, serde_json::Value>)) {
    match v {
        serde_json::Value::Object(m) => {
            visit(m);
            m.values().for_each(|x| walk(x, visit));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, visit)),
        _ => {}
    }
}

fn symbols(v: &serde_json::Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect()
}

#[test]
fn avro_enum_symbols_are_the_rust_symbols() {
    let rust: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("ActivityKind", ActivityKind::SYMBOLS),
        ("Direction", Direction::SYMBOLS),
        ("CourseType", CourseType::SYMBOLS),
        ("Weekday", Weekday::SYMBOLS),
        ("Mode", Mode::SYMBOLS),
        ("DayType", DayType::SYMBOLS),
        ("AbsenceReason", AbsenceReason::SYMBOLS),
        ("Reporter", Reporter::SYMBOLS),
        ("Scope", Scope::SYMBOLS),
        ("Status", Status::SYMBOLS),
        ("AttendanceType", AttendanceType::SYMBOLS),
        ("Finality", Finality::SYMBOLS),
        ("OutreachKind", OutreachKind::SYMBOLS),
        ("RecipientRole", RecipientRole::SYMBOLS),
        ("IdentityType", IdentityType::SYMBOLS),
    ]);
    let mut seen = BTreeMap::new();
    let mut grade_symbols = None;
    for file in SCHEMA_FILES {
        let doc = schema_json(file);
        walk(&doc, &mut |m| {
            if m.get("type").and_then(|t| t.as_str()) == Some("enum") {
                let name = m["name"].as_str().unwrap().to_owned();
                let expected = rust.get(name.as_str()).unwrap_or_else(|| panic!("{file}: enum {name} has no Rust type"));
                assert_eq!(symbols(&m["symbols"]), expected.to_vec(), "{file}: enum {name}");
                seen.insert(name, file);
            }
            // GradeLevel is a string field; its allowed values are listed
            // alongside because Avro enum symbols cannot start with a digit.
            if let Some(s) = m.get("rollcall.symbols") {
                grade_symbols = Some(symbols(s));
            }
        });
    }
    let missing: Vec<_> = rust.keys().filter(|k| !seen.contains_key(**k)).collect();
    assert!(missing.is_empty(), "enums not in any schema: {missing:?}");
    assert_eq!(grade_symbols.expect("grade_level symbols"), GradeLevel::SYMBOLS.to_vec());
}

#[test]
fn schema_files_follow_the_conventions() {
    for file in SCHEMA_FILES {
        let doc = schema_json(file);
        assert_eq!(doc["namespace"], "org.rollcall.v1", "{file}");
        walk(&doc, &mut |m| {
            let Some(fields) = m.get("fields").and_then(|f| f.as_array()) else {
                return;
            };
            for f in fields {
                let name = f["name"].as_str().unwrap();
                assert!(f.get("doc").and_then(|d| d.as_str()).is_some_and(|d| !d.is_empty()), "{file}: `{name}` has no doc");
                let ty = &f["type"];
                if ty.as_array().is_some_and(|u| u[0] == "null") {
                    assert_eq!(f.get("default"), Some(&serde_json::Value::Null), "{file}: optional `{name}` defaults to null");
                }
                match ty.get("type").and_then(|t| t.as_str()) {
                    Some("array") => assert_eq!(f.get("default"), Some(&serde_json::json!([])), "{file}: `{name}`"),
                    Some("map") => assert_eq!(f.get("default"), Some(&serde_json::json!({})), "{file}: `{name}`"),
                    _ => {}
                }
            }
        });
    }
}

#[test]
fn schema_file_constants_name_existing_files() {
    fn check<T: AvroRecord>() {
        assert!(SCHEMA_FILES.contains(&T::SCHEMA_FILE), "{}", T::SCHEMA_FILE);
        // Parsing is lazy; make sure each schema actually parses.
        let _ = T::schema();
    }
    check::<ActivityEvent>();
    check::<StudentRecord>();
    check::<SchoolCalendar>();
    check::<AbsenceReport>();
    check::<Determination>();
    check::<OutreachTrigger>();
    check::<DeadLetter>();
    check::<IdentityRecord>();
}

#[test]
fn identity_records_round_trip_and_keys_split_back() {
    let r = IdentityRecord {
        source: "caliper".into(),
        kind: IdentityType::Student,
        external_id: "https://lms.example.edu/users/5|54".into(),
        id: "S1".into(),
        school_id: Some("lincoln-ms".into()),
    };
    round_trip(&r);
    round_trip(&IdentityRecord { kind: IdentityType::Section, school_id: None, ..r.clone() });
    assert_eq!(r.key(), "caliper|STUDENT|https://lms.example.edu/users/5|54");
    assert_eq!(
        IdentityRecord::parse_key(&r.key()),
        Some(("caliper".into(), IdentityType::Student, "https://lms.example.edu/users/5|54".into()))
    );
    for bad in ["", "caliper", "caliper|TEACHER|x", "|STUDENT|x", "caliper|STUDENT|"] {
        assert_eq!(IdentityRecord::parse_key(bad), None, "{bad}");
    }
}

// ---------------------------------------------------------------------------
// Errors.

fn err_text<T: Debug>(r: Result<T, AvroError>) -> String {
    match r {
        Ok(v) => panic!("expected an error, decoded {v:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn truncated_datum_is_an_error_at_every_length() {
    fn check<T: AvroRecord + Debug>(r: &T) {
        let datum = r.to_avro_datum().unwrap();
        for len in 0..datum.len() {
            let e = err_text(T::from_avro_datum(&datum[..len]));
            assert!(e.contains("truncated") || e.contains("ends in the middle"), "{} at {len}: {e}", T::SCHEMA_FILE);
        }
    }
    check(&activity_full());
    check(&activity_min());
    check(&student_full());
    check(&calendar_full());
    check(&absence_full());
    check(&determination_full());
    check(&outreach_full());
    check(&dead_letter_full());
}

#[test]
fn trailing_bytes_are_an_error() {
    let mut datum = absence_full().to_avro_datum().unwrap();
    datum.push(0);
    let e = err_text(AbsenceReport::from_avro_datum(&datum));
    assert!(e.contains("1 unexpected bytes after the end"), "{e}");
}

#[test]
fn wrong_fingerprint_is_an_error_naming_both() {
    let so = absence_full().to_single_object().unwrap();
    let e = Determination::from_single_object(&so).unwrap_err();
    assert_eq!(
        e,
        AvroError::Fingerprint {
            record: "Determination",
            expected: Determination::fingerprint(),
            found: AbsenceReport::fingerprint()
        }
    );
    let text = e.to_string();
    assert!(text.contains("not a Determination") && text.contains(&format!("{:#018x}", AbsenceReport::fingerprint())), "{text}");

    let mut flipped = so.clone();
    flipped[5] ^= 0x40;
    assert!(matches!(AbsenceReport::from_single_object(&flipped), Err(AvroError::Fingerprint { .. })));
}

#[test]
fn bad_header_is_an_error() {
    let so = absence_full().to_single_object().unwrap();
    let mut bad = so.clone();
    bad[0] = 0x4F;
    let e = err_text(AbsenceReport::from_single_object(&bad));
    assert!(e.contains("marker C3 01") && e.contains("4F 01"), "{e}");

    let e = err_text(AbsenceReport::from_single_object(&so[..9]));
    assert!(e.contains("9 bytes") && e.contains("header"), "{e}");
    let e = err_text(AbsenceReport::from_single_object(&[]));
    assert!(e.contains("0 bytes"), "{e}");

    // A raw datum is not a single object.
    let datum = absence_full().to_avro_datum().unwrap();
    assert!(matches!(AbsenceReport::from_single_object(&datum), Err(AvroError::Header(_))));
}

#[test]
fn unknown_enum_index_is_an_error_naming_the_enum() {
    // AbsenceReport ends with its two enums, reason then reporter, each a
    // one-byte zigzag varint.
    let mut datum = absence_full().to_avro_datum().unwrap();
    let n = datum.len();
    datum[n - 2] = 50 << 1;
    let e = err_text(AbsenceReport::from_avro_datum(&datum));
    assert!(e.contains("enum index 50") && e.contains("AbsenceReason") && e.contains("`reason`"), "{e}");

    let mut datum = absence_full().to_avro_datum().unwrap();
    datum[n - 1] = 1; // zigzag -1
    let e = err_text(AbsenceReport::from_avro_datum(&datum));
    assert!(e.contains("enum index -1") && e.contains("Reporter"), "{e}");
}

#[test]
fn out_of_range_union_branch_is_an_error() {
    // DeadLetter starts with topic "t" (2 bytes), then the partition union.
    let mut datum = dead_letter_min().to_avro_datum().unwrap();
    datum[2] = 2 << 1;
    let e = err_text(DeadLetter::from_avro_datum(&datum));
    assert!(e.contains("union branch 2") && e.contains("`partition`"), "{e}");
}

#[test]
fn absurd_lengths_are_errors_not_allocations() {
    // A string length and an array count near the varint maximum.
    let mut datum = Vec::new();
    datum.extend_from_slice(&[0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]);
    let e = err_text(AbsenceReport::from_avro_datum(&datum));
    assert!(e.contains("truncated") && e.contains("`report_id`"), "{e}");

    // StudentRecord: two empty strings, grade "K", two nulls, then `groups`.
    let mut datum = vec![0, 0, 2, b'K', 0, 0];
    datum.extend_from_slice(&[0xFE, 0xFF, 0xFF, 0xFF, 0x0F]);
    let e = err_text(StudentRecord::from_avro_datum(&datum));
    assert!(e.contains("array block claims") && e.contains("`groups`"), "{e}");
}

#[test]
fn unknown_symbol_in_a_value_is_a_field_error() {
    let mut v = activity_full().to_avro_value();
    let Value::Record(fields) = &mut v else { unreachable!() };
    fields.iter_mut().find(|(n, _)| n == "kind").unwrap().1 = Value::Enum(0, "FOO".into());
    let e = ActivityEvent::from_avro_value(v).unwrap_err();
    let text = e.to_string();
    assert!(matches!(&e, AvroError::Field { record: "ActivityEvent", field, .. } if field == "kind"), "{e:?}");
    assert!(text.contains("unknown ActivityKind value `FOO`") && text.contains("LOGIN"), "{text}");
}

#[test]
fn enum_position_must_match_its_symbol() {
    let mut v = absence_full().to_avro_value();
    let Value::Record(fields) = &mut v else { unreachable!() };
    fields.iter_mut().find(|(n, _)| n == "reporter").unwrap().1 = Value::Enum(0, "STAFF".into());
    let e = err_text(AbsenceReport::from_avro_value(v));
    assert!(e.contains("`reporter`") && e.contains("position 0"), "{e}");
}

#[test]
fn invalid_time_of_day_names_the_nested_field() {
    let mut s = student_full();
    s.enrollments[0].meetings[1].start = t("23:00");
    let mut v = s.to_avro_value();
    // Rewrite enrollments[0].meetings[1].start to an invalid HH:MM.
    fn field<'a>(v: &'a mut Value, name: &str) -> &'a mut Value {
        let Value::Record(fields) = v else { panic!("not a record") };
        &mut fields.iter_mut().find(|(n, _)| n == name).unwrap().1
    }
    fn item(v: &mut Value, i: usize) -> &mut Value {
        let Value::Array(items) = v else { panic!("not an array") };
        &mut items[i]
    }
    let meeting = item(field(item(field(&mut v, "enrollments"), 0), "meetings"), 1);
    *field(meeting, "start") = Value::String("25:00".into());
    let e = StudentRecord::from_avro_value(v.clone()).unwrap_err().to_string();
    assert!(e.contains("`enrollments[0].meetings[1].start`") && e.contains("25:00") && e.contains("HH:MM"), "{e}");

    // The same through the binary path: bytes that apache-avro would accept.
    let bytes = apache_avro::to_avro_datum(StudentRecord::schema(), v).unwrap();
    let e = err_text(StudentRecord::from_avro_datum(&bytes));
    assert!(e.contains("meetings[1].start"), "{e}");
}

#[test]
fn unknown_grade_level_is_an_error() {
    let mut v = student_min().to_avro_value();
    let Value::Record(fields) = &mut v else { unreachable!() };
    fields.iter_mut().find(|(n, _)| n == "grade_level").unwrap().1 = Value::String("13".into());
    let e = err_text(StudentRecord::from_avro_value(v));
    assert!(e.contains("`grade_level`") && e.contains("unknown GradeLevel value `13`"), "{e}");
}

#[test]
fn wrong_types_and_missing_or_extra_fields_are_errors() {
    let base = || {
        let Value::Record(fields) = determination_full().to_avro_value() else { unreachable!() };
        fields
    };

    let mut f = base();
    f.retain(|(n, _)| n != "rule");
    let e = err_text(Determination::from_avro_value(Value::Record(f)));
    assert_eq!(e, "field `rule` of Determination: missing");

    let mut f = base();
    f.iter_mut().find(|(n, _)| n == "version").unwrap().1 = Value::Long(2);
    let e = err_text(Determination::from_avro_value(Value::Record(f)));
    assert!(e.contains("`version`") && e.contains("expected int, found long 2"), "{e}");

    let mut f = base();
    f.iter_mut().find(|(n, _)| n == "decided_at").unwrap().1 = Value::Long(0);
    let e = err_text(Determination::from_avro_value(Value::Record(f)));
    assert!(e.contains("`decided_at`") && e.contains("timestamp-micros"), "{e}");

    // An optional field must be a ["null", T] union, not a bare value.
    let mut f = base();
    f.iter_mut().find(|(n, _)| n == "section_id").unwrap().1 = Value::String("x".into());
    let e = err_text(Determination::from_avro_value(Value::Record(f)));
    assert!(e.contains("`section_id`") && e.contains("union"), "{e}");

    let mut f = base();
    f.iter_mut().find(|(n, _)| n == "minutes").unwrap().1 = Value::Union(1, Box::new(Value::String("5".into())));
    let e = err_text(Determination::from_avro_value(Value::Record(f)));
    assert!(e.contains("`minutes`") && e.contains("expected long"), "{e}");

    let mut f = base();
    f.push(("extra".into(), Value::Null));
    let e = err_text(Determination::from_avro_value(Value::Record(f)));
    assert!(e.contains("`extra`") && e.contains("no such field"), "{e}");

    let e = err_text(Determination::from_avro_value(Value::Null));
    assert!(e.contains("Determination") && e.contains("expected a record, found null"), "{e}");

    let mut f = base();
    f.iter_mut().find(|(n, _)| n == "date").unwrap().1 = Value::Date(i32::MAX);
    let e = err_text(Determination::from_avro_value(Value::Record(f)));
    assert!(e.contains("`date`") && e.contains("out of range"), "{e}");
}

#[test]
fn invalid_utf8_and_bad_booleans_are_errors() {
    let mut datum = absence_min().to_avro_datum().unwrap();
    // report_id "" -> a one-byte string holding 0xFF.
    datum.splice(0..1, [2, 0xFF]);
    let e = err_text(AbsenceReport::from_avro_datum(&datum));
    assert!(e.contains("UTF-8") && e.contains("`report_id`"), "{e}");

    // SchoolCalendar "x","UTC","mmsd", one day whose `instructional` byte is 7.
    let cal = SchoolCalendar {
        days: vec![CalendarDay {
            date: day("1970-01-01"),
            instructional: true,
            day_type: DayType::Full,
            start: t("08:00"),
            end: t("09:00"),
        }],
        ..calendar_min()
    };
    let mut datum = cal.to_avro_datum().unwrap();
    let pos = 2 + 4 + 5 + 1 + 1; // three strings, block count, date 0
    assert_eq!(datum[pos], 1);
    datum[pos] = 7;
    let e = err_text(SchoolCalendar::from_avro_datum(&datum));
    assert!(e.contains("boolean byte is 7") && e.contains("`days[0].instructional`"), "{e}");
}

// ---------------------------------------------------------------------------
// Fuzz-ish: arbitrary bytes never panic.

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Decodes random bytes, and valid encodings with random damage (which get
/// much further into the decoder), as datum and as single object. Whatever
/// decodes must encode again.
fn never_panics<T: AvroRecord>(samples: &[Vec<u8>], rng: &mut XorShift) -> usize {
    let mut decoded = 0;
    let mut try_decode = |bytes: &[u8]| {
        for v in [T::from_avro_datum(bytes), T::from_single_object(bytes)].into_iter().flatten() {
            decoded += 1;
            v.to_avro_datum().unwrap();
        }
    };
    for i in 0..2000 {
        let len = (rng.next() % 96) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if i % 2 == 0 && bytes.len() >= 10 {
            // Give half a valid header so the datum decoder is reached.
            bytes[..2].copy_from_slice(&[0xC3, 0x01]);
            bytes[2..10].copy_from_slice(&T::fingerprint().to_le_bytes());
        }
        try_decode(&bytes);

        let mut damaged = samples[i % samples.len()].clone();
        for _ in 0..1 + rng.next() % 3 {
            let at = (rng.next() as usize) % damaged.len();
            match rng.next() % 3 {
                0 => damaged[at] = rng.next() as u8,
                1 => damaged[at] ^= 1 << (rng.next() % 8),
                _ => damaged.truncate(at.max(1)),
            }
        }
        try_decode(&damaged);
    }
    decoded
}

fn samples<T: AvroRecord>(records: &[T]) -> Vec<Vec<u8>> {
    records.iter().flat_map(|r| [r.to_avro_datum().unwrap(), r.to_single_object().unwrap()]).collect()
}

#[test]
fn decoding_arbitrary_bytes_never_panics() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut decoded = 0;
    decoded += never_panics::<ActivityEvent>(&samples(&[activity_full(), activity_min()]), &mut rng);
    decoded += never_panics::<StudentRecord>(&samples(&[student_full(), student_min()]), &mut rng);
    decoded += never_panics::<SchoolCalendar>(&samples(&[calendar_full(), calendar_min()]), &mut rng);
    decoded += never_panics::<AbsenceReport>(&samples(&[absence_full(), absence_min()]), &mut rng);
    decoded += never_panics::<Determination>(&samples(&[determination_full(), determination_min()]), &mut rng);
    decoded += never_panics::<OutreachTrigger>(&samples(&[outreach_full(), outreach_min()]), &mut rng);
    decoded += never_panics::<DeadLetter>(&samples(&[dead_letter_full(), dead_letter_min()]), &mut rng);
    // Some damage (a flipped bit inside a string, say) still decodes; that
    // the count is non-zero shows the fuzzing reaches past the first field.
    assert!(decoded > 0);
}

/// A schema file's JSON and its field names, in order.
fn schema_fields(text: &str) -> (serde_json::Value, Vec<String>) {
    let schema: serde_json::Value = serde_json::from_str(text).unwrap();
    let fields = schema["fields"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_string()).collect();
    (schema, fields)
}

/// The direct decoder reads `x`'s datum back, and declines anything short
/// of the whole datum or with a byte more (which the generic decoder
/// refuses, saying why).
fn direct_reads_whole_datums_only<T: AvroRecord + PartialEq + Debug + Clone>(x: &T) {
    let datum = x.to_avro_datum().unwrap();
    assert_eq!(T::decode_direct(&datum), Some(x.clone()));
    assert_eq!(T::from_avro_datum_generic(&datum).unwrap(), *x);
    for cut in 0..datum.len() {
        assert_eq!(T::decode_direct(&datum[..cut]), None, "cut at {cut}");
        assert!(T::from_avro_datum(&datum[..cut]).is_err());
    }
    let mut longer = datum.clone();
    longer.push(0);
    assert_eq!(T::decode_direct(&longer), None);
    assert!(T::from_avro_datum(&longer).is_err());
}

#[test]
fn the_direct_event_decoder_reads_the_schema_in_its_order() {
    // activity_event_direct reads the fields and enum symbols in this order.
    let (schema, fields) = schema_fields(include_str!("../../../schemas/activity_event.avsc"));
    assert_eq!(
        fields,
        [
            "event_id",
            "source",
            "student_id",
            "school_id",
            "section_id",
            "staff_id",
            "kind",
            "direction",
            "occurred_at",
            "assigned_date",
            "live_session_id",
            "duration_seconds",
            "attributes",
            "received_at"
        ]
    );
    assert_eq!(symbols(&schema["fields"][6]["type"]["symbols"]), ActivityKind::SYMBOLS);
    assert_eq!(symbols(&schema["fields"][7]["type"][1]["symbols"]), Direction::SYMBOLS);
    for e in [activity_full(), activity_min()] {
        direct_reads_whole_datums_only(&e);
    }
}

#[test]
fn the_direct_determination_decoder_reads_the_schema_in_its_order() {
    // determination_decode reads the fields and enum symbols in this order.
    let (schema, fields) = schema_fields(include_str!("../../../schemas/determination.avsc"));
    assert_eq!(
        fields,
        [
            "determination_id",
            "student_id",
            "school_id",
            "scope",
            "date",
            "section_id",
            "policy",
            "status",
            "code",
            "attendance_type",
            "minutes",
            "contacts",
            "category",
            "rule",
            "evidence",
            "version",
            "finality",
            "decided_at",
            "evidence_detail",
            "looked_for",
            "seen"
        ]
    );
    assert_eq!(symbols(&schema["fields"][3]["type"]["symbols"]), Scope::SYMBOLS);
    assert_eq!(symbols(&schema["fields"][7]["type"]["symbols"]), Status::SYMBOLS);
    assert_eq!(symbols(&schema["fields"][9]["type"][1]["symbols"]), AttendanceType::SYMBOLS);
    assert_eq!(symbols(&schema["fields"][16]["type"]["symbols"]), Finality::SYMBOLS);
    // The nested records' fields, read in this order too.
    let nested = |i: usize| -> Vec<String> {
        schema["fields"][i]["type"]["items"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(nested(18), ["id", "kind", "occurred_at", "local_time", "source", "section_id", "staff_id", "detail"]);
    assert_eq!(nested(20), ["kind", "section_id", "count", "first_local_time", "why_not"]);
    for d in [determination_full(), determination_min()] {
        direct_reads_whole_datums_only(&d);
    }
}

/// A determination written with version 1 of its schema (before the
/// evidence detail) still reads, the added fields empty: records already on
/// a compacted topic outlive the program that wrote them.
#[test]
fn a_determination_of_schema_version_1_still_reads() {
    let v1: serde_json::Value = serde_json::from_str(include_str!("../../../schemas/history/determination.1.avsc")).unwrap();
    let schema = apache_avro::Schema::parse(&v1).unwrap();
    let fingerprint = rollcall_model::avro::rabin_fingerprint(rollcall_model::avro::parsing_canonical_form(&v1, None).as_bytes());
    assert_ne!(fingerprint, Determination::fingerprint());
    let mut d = determination_full();
    d.evidence_detail.clear();
    d.looked_for.clear();
    d.seen.clear();
    // The version-1 datum is today's without its three trailing empty arrays.
    let today = d.to_avro_datum().unwrap();
    let datum = today[..today.len() - 3].to_vec();
    assert!(apache_avro::from_avro_datum(&schema, &mut &datum[..], None).is_ok(), "not a version-1 datum");
    let mut framed = vec![0xC3, 0x01];
    framed.extend_from_slice(&fingerprint.to_le_bytes());
    framed.extend_from_slice(&datum);
    assert_eq!(Determination::from_single_object(&framed).unwrap(), d);
    // A fingerprint of neither version is still refused.
    framed[2] ^= 1;
    assert!(Determination::from_single_object(&framed).is_err());
}

/// An activity event of schema version 1 (before `received_at`) reads as
/// today's with `received_at` empty, beside version-2 events: producers
/// move to a new schema version on their own schedule. A fingerprint of
/// neither version is refused, and the error gives the fingerprint.
#[test]
fn activity_events_of_versions_1_and_2_read_side_by_side() {
    let v1: serde_json::Value = serde_json::from_str(include_str!("../../../schemas/history/activity_event.1.avsc")).unwrap();
    let schema = apache_avro::Schema::parse(&v1).unwrap();
    let fingerprint = rollcall_model::avro::rabin_fingerprint(rollcall_model::avro::parsing_canonical_form(&v1, None).as_bytes());
    assert_ne!(fingerprint, ActivityEvent::fingerprint());
    for mut e in [activity_full(), activity_min()] {
        // Written by apache-avro with the version-1 schema, as a producer
        // that has not upgraded writes it.
        e.received_at = None;
        let mut value = e.to_avro_value();
        if let apache_avro::types::Value::Record(fields) = &mut value {
            fields.retain(|(name, _)| name != "received_at");
        }
        let datum = apache_avro::to_avro_datum(&schema, value).unwrap();
        let mut framed = vec![0xC3, 0x01];
        framed.extend_from_slice(&fingerprint.to_le_bytes());
        framed.extend_from_slice(&datum);
        assert_eq!(ActivityEvent::from_single_object(&framed).unwrap(), e);
        // Version 2 beside it, with the new field set.
        let v2 = ActivityEvent { received_at: Some(at("2020-10-06T15:00:00Z")), ..e.clone() };
        assert_eq!(ActivityEvent::from_single_object(&v2.to_single_object().unwrap()).unwrap(), v2);
        // A fingerprint of neither version.
        framed[4] ^= 0x40;
        let unknown = u64::from_le_bytes(framed[2..10].try_into().unwrap());
        let err = ActivityEvent::from_single_object(&framed).unwrap_err().to_string();
        assert!(err.contains(&format!("{unknown:#018x}")), "{err}");
    }
}

/// A consumer still coded against version 1 of an output schema reads what
/// rollcall writes today: Avro resolution (writer today's schema, reader
/// version 1, here by apache-avro rather than rollcall's own codec) drops
/// the fields added since, which is why every added field has a default
/// and nothing is removed or renamed (docs/schema-evolution.md).
#[test]
fn a_reader_of_version_1_reads_todays_records() {
    fn read_as_v1<T: AvroRecord>(record: &T, v1_text: &str) -> apache_avro::types::Value {
        let writer = T::schema();
        let reader = apache_avro::Schema::parse_str(v1_text).unwrap();
        let datum = record.to_avro_datum().unwrap();
        apache_avro::from_avro_datum(writer, &mut &datum[..], Some(&reader))
            .unwrap_or_else(|e| panic!("{}: a version-1 reader cannot read today's datum: {e}", T::SCHEMA_FILE))
    }
    let field = |v: &apache_avro::types::Value, name: &str| match v {
        apache_avro::types::Value::Record(f) => f.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()),
        _ => None,
    };
    let e = activity_full();
    let old = read_as_v1(&e, include_str!("../../../schemas/history/activity_event.1.avsc"));
    assert_eq!(field(&old, "event_id"), Some(apache_avro::types::Value::String(e.event_id.clone())));
    assert_eq!(field(&old, "received_at"), None);
    let d = determination_full();
    let old = read_as_v1(&d, include_str!("../../../schemas/history/determination.1.avsc"));
    assert_eq!(field(&old, "determination_id"), Some(apache_avro::types::Value::String(d.determination_id.clone())));
    assert_eq!(field(&old, "looked_for"), None);
}
