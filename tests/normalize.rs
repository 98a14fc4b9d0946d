//! `rollcall normalize` on the ingest crate's fixtures
//! (crates/ingest/tests/fixtures/): events on stdout as canonical JSON
//! lines, everything else on stderr, errors with their places and a
//! non-zero exit.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::harness::Area;
use rollcall_model::ActivityEvent;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ingest/tests/fixtures").join(rel)
}

fn normalize(args: &[&str], file: &Path, identities: bool) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rollcall"));
    c.arg("normalize").args(args).arg(file);
    if identities {
        c.arg("--identities").arg(fixture("identities.csv"));
    }
    c.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn events(out: &Output) -> Vec<ActivityEvent> {
    text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect()
}

fn prints_canonical_json_lines() {
    let out = normalize(&["--format", "caliper"], &fixture("caliper/assessment-submitted.json"), true);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        concat!(
            r#"{"event_id":"urn:uuid:dad88464-0c20-4a19-a1ba-ddf2f9c3ff33","source":"caliper","student_id":"S2001","#,
            r#""school_id":"lincoln-ms","section_id":"alg-1-02","staff_id":null,"kind":"SUBMISSION","direction":null,"#,
            r#""occurred_at":"2025-02-19T15:25:30Z","assigned_date":null,"live_session_id":null,"duration_seconds":null,"#,
            r#""attributes":{"ed_app":"https://lms.example.edu","object_id":"https://lms.example.edu/sections/1/assess/1","#,
            r#""roles":"Learner","session_id":"https://lms.example.edu/sessions/1f6442a4"}}"#,
            "\n"
        )
    );
    assert!(text(&out.stderr).contains("1 events, 0 waiting for identity, 0 ignored"), "{}", text(&out.stderr));
}

fn every_format_prints_what_the_library_returns() {
    let ids = rollcall_ingest::IdentityView::from_csv(&std::fs::read(fixture("identities.csv")).unwrap()).unwrap();
    for (format, file) in [
        ("caliper", "caliper/message-posted.json"),
        ("xapi", "xapi/batch.json"),
        ("canvas", "canvas/messages.json"),
        ("canvas", "canvas/caliper-variant.json"),
        ("zoom", "zoom/participant-left.json"),
        ("native", "native/events.json"),
        ("native", "native/contacts.csv"),
    ] {
        let out = normalize(&["--format", format], &fixture(file), true);
        assert_eq!(out.status.code(), Some(0), "{file}: {}", text(&out.stderr));
        let f = rollcall_ingest::Format::from_name(format).unwrap();
        let expected = rollcall_ingest::normalize(f, &std::fs::read(fixture(file)).unwrap(), &ids, None).unwrap();
        assert_eq!(events(&out), expected.events, "{file}");
        assert!(!expected.events.is_empty(), "{file}");
    }
}

fn errors_are_printed_with_their_places_and_exit_non_zero() {
    let file = fixture("caliper/bad-places.json");
    let out = normalize(&["--format", "caliper"], &file, true);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "no events from a refused request");
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("{}: data[1].object: expected a string or an object, found a number", file.display())),
        "{err}"
    );
    assert!(err.contains("data[2].eventTime: `19 Feb 2025`"), "{err}");
    assert!(err.contains("refused (2 errors; the gateway would answer 400)"), "{err}");

    let out = normalize(&["--format", "caliper"], &fixture("caliper/v1p0-refused.json"), true);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("data[0].@context: Caliper 1.0 is not supported") && err.contains("would answer 422"), "{err}");

    let out = normalize(&["--format", "xapi"], &fixture("xapi/duplicate-id.json"), true);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("[1].id: id `6690E6C9-3EF0-4ED3-8B37-7F3964730BEE` is repeated in the same batch"));

    let out = normalize(&["--format", "native"], &fixture("native/bad-rows.csv"), false);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("line 4, column `assigned_date`: `19/02/2025` is not a date (YYYY-MM-DD)"));
}

fn unknown_people_wait_and_ignored_actions_are_counted() {
    let out = normalize(&["--format", "caliper"], &fixture("caliper/unknown-person-and-class.json"), true);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    assert!(
        err.contains("data[0]: SUBMISSION waits for identity: unknown caliper student `https://lms.example.edu/users/999999`, caliper section `https://lms.example.edu/sections/9`"),
        "{err}"
    );
    assert!(err.contains("ignored 1 × SessionEvent.LoggedIn by staff"), "{err}");
    assert!(err.contains("0 events, 2 waiting for identity, 1 ignored"), "{err}");

    // Without an identity file nothing is known, and it says so.
    let out = normalize(&["--format", "zoom"], &fixture("zoom/participant-joined.json"), false);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).contains("no --identities file was given"), "{}", text(&out.stderr));
}

fn source_and_verb_options() {
    // Another source name picks other identity rows: none here.
    let out =
        normalize(&["--format", "caliper", "--source", "district-moodle"], &fixture("caliper/session-logged-in.json"), true);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("district-moodle student `https://example.edu/users/554433`"), "{}", text(&out.stderr));

    let out = normalize(&["--format", "native", "--source", "counselors"], &fixture("native/contacts.csv"), false);
    assert!(events(&out).iter().all(|e| e.source == "counselors"));

    let out = normalize(
        &["--format", "xapi", "--xapi-verb", "http://id.tincanapi.com/verb/viewed=CONTENT_ACCESS"],
        &fixture("xapi/messy.json"),
        true,
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(events(&out).len(), 2, "{}", text(&out.stderr));

    let out = normalize(&["--format", "xapi", "--xapi-verb", "x=LOGGED_IN"], &fixture("xapi/messy.json"), true);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown ActivityKind value `LOGGED_IN`"), "{}", text(&out.stderr));
}

fn a_bad_identities_file_names_its_lines() {
    let dir = tempfile::tempdir().unwrap();
    let ids = dir.path().join("ids.csv");
    std::fs::write(&ids, "source,type,external_id,id,school_id\ncaliper,teacher,a,b,c\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .args(["normalize", "--format", "caliper", "--identities"])
        .arg(&ids)
        .arg(fixture("caliper/session-logged-in.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("{}: line 2, column `type`: `teacher` is not one of student, staff, section", ids.display())),
        "{err}"
    );
}

fn reads_standard_input() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .args(["normalize", "--format", "zoom", "--identities"])
        .arg(fixture("identities.csv"))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&std::fs::read(fixture("zoom/participant-joined.json")).unwrap()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let e = events(&out);
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].student_id.as_str(), e[0].kind.as_str()), ("S2001", "LIVE_JOIN"));
}

/// Nothing to set up: these run on the runner's thread pool.
pub fn area() -> Area {
    Area::plain(
        "normalize",
        plain_tests![
            prints_canonical_json_lines,
            every_format_prints_what_the_library_returns,
            errors_are_printed_with_their_places_and_exit_non_zero,
            unknown_people_wait_and_ignored_actions_are_counted,
            source_and_verb_options,
            a_bad_identities_file_names_its_lines,
            reads_standard_input,
        ],
    )
}
