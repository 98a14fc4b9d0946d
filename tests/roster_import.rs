//! `rollcall roster import` and `rollcall calendar import`, the real binary
//! against a real Apache Kafka broker: a small district's OneRoster export
//! (1.1 and 1.2) puts exactly its StudentRecords on the roster topic and
//! its identities on the identities topic; an export with bad rows names
//! each by file and line and puts nothing anywhere, and with
//! --skip-bad-rows puts the good rows; calendars likewise.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use crate::support::harness::{Area, Need};
use crate::support::*;
use rollcall_kafka::topics::create_topics;
use rollcall_kafka::wire::Topics;
use rollcall_kafka::KafkaError;
use rollcall_model::avro::AvroRecord;
use rollcall_model::{IdentityRecord, SchoolCalendar, StudentRecord};

fn fixture(rel: &str) -> PathBuf {
    repo().join("crates/ingest/tests/fixtures/oneroster").join(rel)
}

fn fresh_topics(b: &str, name: &str) -> Result<(String, Topics), String> {
    let prefix = unique(name);
    let topics = Topics::with_prefix(&prefix);
    create_topics(b, &topics, 3, 1).map_err(|e| format!("{e:#}"))?;
    Ok((prefix, topics))
}

fn rollcall(args: &[&str]) -> Result<Output, String> {
    Command::new(bin()).args(args).output().map_err(|e| e.to_string())
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every record of a topic, decoded.
fn on_topic<T: AvroRecord>(b: &str, topic: &str) -> Result<Vec<T>, String> {
    let mut out = Vec::new();
    rollcall_kafka::replay::read_topic(b, topic, |v, _| {
        out.push(T::from_single_object(v).map_err(|source| KafkaError::Record { what: topic.to_string(), source })?);
        Ok(())
    })
    .map_err(|e| format!("{e:#}"))?;
    Ok(out)
}

fn students_on(b: &str, topics: &Topics) -> Result<BTreeMap<String, StudentRecord>, String> {
    let all: Vec<StudentRecord> = on_topic(b, &topics.roster)?;
    let n = all.len();
    let by_id: BTreeMap<String, StudentRecord> = all.into_iter().map(|s| (s.student_id.clone(), s)).collect();
    ensure(by_id.len() == n, || format!("{n} records for {} students", by_id.len()))?;
    Ok(by_id)
}

fn identities_on(b: &str, topics: &Topics) -> Result<Vec<IdentityRecord>, String> {
    let mut all: Vec<IdentityRecord> = on_topic(b, &topics.identities)?;
    all.sort_by_key(IdentityRecord::key);
    Ok(all)
}

fn expected_students() -> Result<BTreeMap<String, StudentRecord>, String> {
    let text = std::fs::read_to_string(fixture("expected-students.jsonl")).map_err(|e| e.to_string())?;
    text.lines()
        .map(|l| serde_json::from_str::<StudentRecord>(l).map(|s| (s.student_id.clone(), s)).map_err(|e| e.to_string()))
        .collect()
}

fn expected_identities() -> Result<Vec<IdentityRecord>, String> {
    let bytes = std::fs::read(fixture("expected-identities.csv")).map_err(|e| e.to_string())?;
    let mut all = rollcall_ingest::identity::records_from_csv(&bytes).map_err(|e| e.to_string())?;
    all.sort_by_key(IdentityRecord::key);
    Ok(all)
}

fn import_args<'a>(b: &'a str, prefix: &'a str, export: &'a str, companion: &'a str, modes: &'a str) -> Vec<&'a str> {
    vec![
        "roster",
        "import",
        "--oneroster",
        export,
        "--companion",
        companion,
        "--modes",
        modes,
        "--source",
        "canvas",
        "--source",
        "zoom",
        "--as-of",
        "2026-02-02",
        "--brokers",
        b,
        "--topic-prefix",
        prefix,
    ]
}

fn an_export_lands_on_the_topics(b: &str, version: &str) -> TestResult {
    let (prefix, topics) = fresh_topics(b, &format!("roster-{version}"))?;
    let (export, companion, modes) = (
        fixture(version).display().to_string(),
        fixture("sections.csv").display().to_string(),
        fixture("modes.csv").display().to_string(),
    );
    let out = rollcall(&import_args(b, &prefix, &export, &companion, &modes))?;
    let stdout = text(&out.stdout);
    ensure(out.status.success(), || format!("exit {:?}\n{stdout}\n{}", out.status, text(&out.stderr)))?;
    let version_name = if version == "v1p1" { "1.1" } else { "1.2" };
    ensure(stdout.contains(&format!("OneRoster {version_name} bulk export")), || stdout.clone())?;
    let line = |what: &str| stdout.lines().find(|l| l.trim_start().starts_with(what)).unwrap_or_default().to_string();
    ensure(line("students").split_whitespace().nth(1) == Some("6"), || format!("students line: {stdout}"))?;
    ensure(line("identities").split_whitespace().nth(1) == Some("94"), || format!("identities line: {stdout}"))?;
    let students = students_on(b, &topics)?;
    let want = expected_students()?;
    ensure(students == want, || format!("the roster topic holds\n{students:#?}\nnot\n{want:#?}"))?;
    let ids = identities_on(b, &topics)?;
    let want = expected_identities()?;
    ensure(ids == want, || {
        let extra: Vec<_> = ids.iter().filter(|r| !want.contains(r)).collect();
        let missing: Vec<_> = want.iter().filter(|r| !ids.contains(r)).collect();
        format!("identities differ: extra {extra:#?}\nmissing {missing:#?}")
    })?;
    ensure(on_topic::<SchoolCalendar>(b, &topics.calendar)?.is_empty(), || "a roster import wrote calendars".into())
}

fn a_1p1_export_lands_on_the_topics(b: &str) -> TestResult {
    an_export_lands_on_the_topics(b, "v1p1")
}

fn a_1p2_export_lands_on_the_topics(b: &str) -> TestResult {
    an_export_lands_on_the_topics(b, "v1p2")
}

fn bad_rows_import_nothing_unless_skipped(b: &str) -> TestResult {
    let (prefix, topics) = fresh_topics(b, "roster-bad")?;
    let (export, companion, modes) = (
        fixture("bad").display().to_string(),
        fixture("sections.csv").display().to_string(),
        fixture("modes.csv").display().to_string(),
    );
    let args = import_args(b, &prefix, &export, &companion, &modes);
    let out = rollcall(&args)?;
    let stderr = text(&out.stderr);
    ensure(out.status.code() == Some(1), || format!("exit {:?}\n{stderr}", out.status))?;
    let want = [
        "bad/classes.csv:7: column `classType`: `lab` is not one of homeroom, scheduled",
        "bad/enrollments.csv:5: column `classSourcedId`: `cls-alg1-2` is not a class of classes.csv",
        "bad/enrollments.csv:17: column `beginDate`: `2026-1-20` is not a date (YYYY-MM-DD)",
        "bad/users.csv:3: column `grades`: `13` is not a grade rollcall reads (CEDS 01 to 12, KG, PK, TK, IT, PR)",
        "bad/users.csv:6: column `enabledUser`: `yes` is not true or false",
        "bad: 5 bad row(s); nothing was imported (--skip-bad-rows imports the rest)",
    ];
    let lines: Vec<&str> = stderr.lines().collect();
    ensure(lines.len() == want.len(), || format!("stderr:\n{stderr}"))?;
    for (got, want) in lines.iter().zip(want) {
        ensure(got.ends_with(want) && got.starts_with(&export[..export.len() - 3]), || format!("`{got}` is not `…{want}`"))?;
    }
    ensure(students_on(b, &topics)?.is_empty(), || "a refused import wrote students".into())?;
    ensure(identities_on(b, &topics)?.is_empty(), || "a refused import wrote identities".into())?;

    let mut args = args;
    args.push("--skip-bad-rows");
    let out = rollcall(&args)?;
    ensure(out.status.success(), || format!("--skip-bad-rows: exit {:?}\n{}", out.status, text(&out.stderr)))?;
    ensure(text(&out.stderr).lines().count() == 5, || format!("the bad rows are still named:\n{}", text(&out.stderr)))?;
    let students = students_on(b, &topics)?;
    let ids: Vec<&str> = students.keys().map(String::as_str).collect();
    ensure(ids == ["S2001", "S3001", "S3003", "stu-3"], || format!("students {ids:?}"))?;
    let all = expected_students()?;
    for id in ["S2001", "S3001", "stu-3"] {
        ensure(students.get(id) == all.get(id), || format!("{id}: {:#?}", students.get(id)))?;
    }
    // S3003's homeroom row was bad: the science class is left.
    let s3003 = &students["S3003"];
    ensure(s3003.homeroom_section_id.is_none() && s3003.enrollments.len() == 1, || format!("{s3003:#?}"))?;
    let identities = identities_on(b, &topics)?;
    ensure(!identities.iter().any(|r| r.id == "S2002" || r.id == "S3002"), || "identities of a bad student".into())?;
    ensure(identities.iter().any(|r| r.id == "S3003"), || "no identities of a good student".into())
}

fn calendars_land_on_their_topic(b: &str) -> TestResult {
    let (prefix, topics) = fresh_topics(b, "calendar")?;
    let file = fixture("calendar.csv").display().to_string();
    let out = rollcall(&["calendar", "import", &file, "--brokers", b, "--topic-prefix", &prefix])?;
    ensure(out.status.success(), || format!("exit {:?}\n{}", out.status, text(&out.stderr)))?;
    ensure(text(&out.stdout).contains("imported 2 calendar(s), 6 day(s)"), || text(&out.stdout))?;
    let mut got: Vec<SchoolCalendar> = on_topic(b, &topics.calendar)?;
    got.sort_by(|a, b| a.school_id.cmp(&b.school_id));
    let want: Vec<SchoolCalendar> = serde_json::from_value(serde_json::json!([
        {"school_id": "org-lms", "timezone": "America/Chicago", "policy": "mmsd", "days": [
            {"date": "2026-02-02", "instructional": true, "day_type": "FULL", "start": "08:00", "end": "15:00"},
            {"date": "2026-02-03", "instructional": true, "day_type": "EARLY_RELEASE", "start": "08:00", "end": "12:30"},
            {"date": "2026-02-04", "instructional": true, "day_type": "ASYNC", "start": "08:00", "end": "15:00"},
            {"date": "2026-02-16", "instructional": false, "day_type": "FULL", "start": "00:00", "end": "00:00"}]},
        {"school_id": "org-wes", "timezone": "America/Chicago", "policy": "instruction-partners", "days": [
            {"date": "2026-02-02", "instructional": true, "day_type": "FULL", "start": "07:45", "end": "14:30"},
            {"date": "2026-02-03", "instructional": true, "day_type": "FULL", "start": "07:45", "end": "14:30"}]}
    ]))
    .map_err(|e| e.to_string())?;
    ensure(got == want, || format!("the calendar topic holds\n{got:#?}"))?;

    // A file with a bad row: nothing, then the good rows.
    let (prefix, topics) = fresh_topics(b, "calendar-bad")?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let bad = dir.path().join("calendar.csv");
    let body = std::fs::read_to_string(fixture("calendar.csv")).map_err(|e| e.to_string())?
        + "org-wes,America/New_York,instruction-partners,2026-02-04,true,FULL,07:45,14:30\n";
    std::fs::write(&bad, body).map_err(|e| e.to_string())?;
    let bad = bad.display().to_string();
    let out = rollcall(&["calendar", "import", &bad, "--brokers", b, "--topic-prefix", &prefix])?;
    let stderr = text(&out.stderr);
    ensure(out.status.code() == Some(1), || format!("exit {:?}\n{stderr}", out.status))?;
    let first = format!(
        "{bad}:8: column `timezone`: `America/New_York` differs from the school's `America/Chicago` (line 6); a school has one zone"
    );
    ensure(stderr.lines().next() == Some(first.as_str()), || format!("stderr:\n{stderr}"))?;
    ensure(on_topic::<SchoolCalendar>(b, &topics.calendar)?.is_empty(), || "a refused import wrote calendars".into())?;
    let out = rollcall(&["calendar", "import", &bad, "--brokers", b, "--topic-prefix", &prefix, "--skip-bad-rows"])?;
    ensure(out.status.success(), || format!("--skip-bad-rows: exit {:?}\n{}", out.status, text(&out.stderr)))?;
    let mut got: Vec<SchoolCalendar> = on_topic(b, &topics.calendar)?;
    got.sort_by(|a, b| a.school_id.cmp(&b.school_id));
    ensure(got == want, || format!("with --skip-bad-rows the calendar topic holds\n{got:#?}"))
}

/// --dry-run reads and checks without a broker, and prints the records.
fn a_dry_run_needs_no_broker(_: &str) -> TestResult {
    let (export, companion, modes) = (
        fixture("v1p2").display().to_string(),
        fixture("sections.csv").display().to_string(),
        fixture("modes.csv").display().to_string(),
    );
    let mut args = import_args("127.0.0.1:1", "none.", &export, &companion, &modes);
    args.retain(|a| *a != "--brokers" && *a != "127.0.0.1:1");
    args.push("--dry-run");
    let out = rollcall(&args)?;
    ensure(out.status.success(), || format!("exit {:?}\n{}", out.status, text(&out.stderr)))?;
    let stdout = text(&out.stdout);
    let students: BTreeMap<String, StudentRecord> =
        stdout.lines().filter_map(|l| serde_json::from_str::<StudentRecord>(l).ok()).map(|s| (s.student_id.clone(), s)).collect();
    ensure(students == expected_students()?, || format!("dry run printed\n{stdout}"))?;
    let mut ids: Vec<IdentityRecord> = stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    ids.sort_by_key(IdentityRecord::key);
    ensure(ids == expected_identities()?, || format!("dry run printed\n{stdout}"))?;
    ensure(text(&out.stderr).contains("would go to none.sis.roster.v1"), || text(&out.stderr))
}

/// What the two imports give is a district the engine runs: no record is
/// refused, every student gets a day, and a student who took part is present.
fn the_imported_district_runs_through_the_engine(_: &str) -> TestResult {
    use rollcall_ingest::oneroster::{self, Companion, Input, Options};
    use rollcall_model::{ActivityEvent, ActivityKind};
    let mut files = BTreeMap::new();
    for name in ["manifest", "orgs", "academicSessions", "courses", "classes", "users", "enrollments", "demographics"] {
        let f = format!("{name}.csv");
        files.insert(f.clone(), std::fs::read(fixture(&format!("v1p1/{f}"))).map_err(|e| e.to_string())?);
    }
    let companion = |f: &str| -> Result<Option<Companion>, String> {
        Ok(Some(Companion { name: f.into(), bytes: std::fs::read(fixture(f)).map_err(|e| e.to_string())? }))
    };
    let input = Input { files, sections: companion("sections.csv")?, modes: companion("modes.csv")? };
    let opts =
        Options { sources: vec!["canvas".into()], as_of: chrono::NaiveDate::from_ymd_opt(2026, 2, 2), ..Options::default() };
    let import = oneroster::import(&input, &opts).map_err(|e| e.to_string())?;
    let calendars = rollcall_ingest::calendar_csv::read(&std::fs::read(fixture("calendar.csv")).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?
        .calendars;
    let at = |t: &str| chrono::DateTime::parse_from_rfc3339(t).map(|t| t.with_timezone(&chrono::Utc)).map_err(|e| e.to_string());
    let mut events = Vec::new();
    for (i, (kind, time, duration)) in [
        (ActivityKind::Login, "2026-02-02T14:55:00Z", None),
        (ActivityKind::LiveJoin, "2026-02-02T15:00:00Z", None),
        (ActivityKind::LiveLeave, "2026-02-02T15:50:00Z", Some(3000)),
        (ActivityKind::Submission, "2026-02-02T16:10:00Z", None),
    ]
    .into_iter()
    .enumerate()
    {
        let event = ActivityEvent {
            event_id: format!("e{i}"),
            source: "canvas".into(),
            student_id: "S2001".into(),
            school_id: "org-lms".into(),
            section_id: Some("cls-alg1-02".into()),
            staff_id: Some("T-17".into()),
            kind,
            direction: None,
            occurred_at: at(time)?,
            assigned_date: None,
            live_session_id: Some("alg1-2026-02-02".into()),
            duration_seconds: duration,
            attributes: BTreeMap::new(),
            received_at: None,
        };
        events.push(rollcall_scenario::Arrival { arrives_at: event.occurred_at, event });
    }
    let scenario = rollcall_scenario::Scenario {
        file: "roster-import".into(),
        name: "imported district".into(),
        policy: "mmsd".into(),
        custom_policy: None,
        calendars,
        roster: import.students,
        absence_reports: vec![],
        events,
        now: at("2026-02-09T12:00:00Z")?,
        expect: Default::default(),
    };
    let (out, _) = rollcall_scenario::run(&scenario, rollcall_engine::MemStore::new()).map_err(|e| e.to_string())?;
    ensure(out.dead_letters.is_empty(), || format!("refused: {:#?}", out.dead_letters))?;
    let latest = out.latest();
    let day = chrono::NaiveDate::from_ymd_opt(2026, 2, 2);
    // Each student is decided on some day of the calendar (stu-3's only
    // class meets on Wednesdays).
    for s in ["S2001", "S2002", "stu-3", "S3001", "S3002", "S3003"] {
        ensure(latest.values().any(|d| d.student_id == s), || {
            let all: Vec<String> = latest.keys().cloned().collect();
            format!("no determination of {s}: {all:#?}")
        })?;
    }
    // Grade 7 under mmsd is decided by class: the algebra class S2001 joined.
    let s2001: Vec<_> = latest.values().filter(|d| d.student_id == "S2001" && Some(d.date) == day).collect();
    ensure(s2001.iter().any(|d| d.section_id.as_deref() == Some("cls-alg1-02") && d.status.is_present()), || {
        format!("S2001 on 2026-02-02: {s2001:#?}")
    })
}

pub fn area() -> Area {
    let tests = service_tests![[Need::Broker], |e| (e.broker());
        a_1p1_export_lands_on_the_topics,
        a_1p2_export_lands_on_the_topics,
        bad_rows_import_nothing_unless_skipped,
        calendars_land_on_their_topic,
        a_dry_run_needs_no_broker,
        the_imported_district_runs_through_the_engine,
    ];
    Area::new("roster_import", Duration::from_secs(600), tests)
}
