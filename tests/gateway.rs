//! `rollcall gateway` over real HTTP against a real Apache Kafka broker:
//! every route puts exactly the events its payload normalizes to on the
//! activity topic; refusals (a wrong token, a bad or stale Zoom signature,
//! an oversized, malformed or unsupported body) are answered with their
//! status and put nothing on the topic; an event naming someone the
//! mapping does not know waits, and is released when the mapping arrives or
//! dead-lettered after the wait (and replayed from there); a burst from 50
//! concurrent clients leaves every acknowledged event on the topic exactly
//! once; a broker that stops answering gives 503s and loses no
//! acknowledged event.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support;
use crate::support::harness::{Area, Need};
use crate::support::*;
use rollcall_ingest::{Format, IdentityView};
use rollcall_kafka::topics::create_topics;
use rollcall_kafka::wire::Topics;
use rollcall_model::avro::AvroRecord;
use rollcall_model::ActivityEvent;

const TOKEN: &str = "gateway-test-token-0123456789";
const ZOOM_SECRET: &str = "zoom-secret-token-0123456789";

fn fixture(rel: &str) -> PathBuf {
    repo().join("crates/ingest/tests/fixtures").join(rel)
}

/// A gateway process on a free port, killed when dropped.
struct Gateway {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_gateway(broker: &str, prefix: &str, extra: &str) -> Result<Gateway, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (token, secret) = (dir.path().join("token"), dir.path().join("zoom-secret"));
    std::fs::write(&token, TOKEN).map_err(|e| e.to_string())?;
    std::fs::write(&secret, ZOOM_SECRET).map_err(|e| e.to_string())?;
    let t = token.display();
    let config = format!(
        "listen = \"127.0.0.1:0\"\n{extra}\n\
         [[source]]\nformat = \"caliper\"\ntoken_file = \"{t}\"\n\
         [[source]]\nformat = \"xapi\"\nroute = \"/v1/xapi/statements\"\ntoken_file = \"{t}\"\n\
         [[source]]\nformat = \"canvas\"\ntoken_file = \"{t}\"\n\
         [[source]]\nformat = \"zoom\"\nsecret_file = \"{}\"\n\
         [[source]]\nformat = \"native\"\nroute = \"/v1/events\"\ntoken_file = \"{t}\"\n\
         [[source]]\nname = \"contacts\"\nformat = \"native\"\nroute = \"/v1/contacts.csv\"\ntoken_file = \"{t}\"\n",
        secret.display()
    );
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, config).map_err(|e| e.to_string())?;
    let mut child = Command::new(bin())
        .args(["gateway", "--brokers", broker, "--topic-prefix", prefix, "--config"])
        .arg(&file)
        .arg("--identities")
        .arg(fixture("identities.csv"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    let mut out = child.stdout.take().ok_or("no stdout")?;
    let mut byte = [0u8; 1];
    while !line.ends_with('\n') {
        if out.read(&mut byte).map_err(|e| e.to_string())? == 0 {
            return Err(format!("the gateway ended before listening: {:?}", child.wait()));
        }
        line.push(byte[0] as char);
    }
    let addr = line.trim().strip_prefix("listening on ").ok_or_else(|| format!("unexpected first line `{line}`"))?.to_string();
    let gw = Gateway { child, addr, _dir: dir };
    // Ready once the identities topic is read to its end: before that an
    // event of a mapped student would wait (and be released a moment later).
    let started = Instant::now();
    loop {
        match support::http::get(&gw.addr, "/readyz", &[]) {
            Ok(a) if a.status == 200 => return Ok(gw),
            other if started.elapsed() > Duration::from_secs(30) => {
                return Err(format!("the gateway was not ready within 30 s: {:?}", other.map(|a| (a.status, a.body))))
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// One HTTP/1.1 POST: (status, body).
fn post(addr: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> Result<(u16, String), String> {
    let a = support::http::request(addr, "POST", path, headers, body)?;
    Ok((a.status, a.body))
}

fn bearer() -> Vec<(&'static str, String)> {
    vec![("Authorization", format!("Bearer {TOKEN}"))]
}

fn zoom_headers(body: &[u8], at: i64) -> Vec<(&'static str, String)> {
    let ts = at.to_string();
    vec![
        ("x-zm-request-timestamp", ts.clone()),
        ("x-zm-signature", rollcall_ingest::zoom::signature(ZOOM_SECRET.as_bytes(), &ts, body)),
    ]
}

/// Every event on the activity topic, by event id, with how often it is there.
fn on_topic(b: &str, topics: &Topics) -> Result<BTreeMap<String, (usize, ActivityEvent)>, String> {
    let mut seen: BTreeMap<String, (usize, ActivityEvent)> = BTreeMap::new();
    rollcall_kafka::replay::read_topic(b, &topics.activity, |v, _| {
        let e = ActivityEvent::from_single_object(v)
            .map_err(|source| rollcall_kafka::KafkaError::Record { what: "an activity event".into(), source })?;
        seen.entry(e.event_id.clone()).or_insert((0, e)).0 += 1;
        Ok(())
    })
    .map_err(|e| format!("{e:#}"))?;
    Ok(seen)
}

fn fresh_topics(b: &str, name: &str) -> Result<(String, Topics), String> {
    let prefix = unique(name);
    let topics = Topics::with_prefix(&prefix);
    create_topics(b, &topics, 3, 1).map_err(|e| format!("{e:#}"))?;
    Ok((prefix, topics))
}

fn every_route_puts_its_events_on_the_topic(b: &str) -> TestResult {
    let (prefix, topics) = fresh_topics(b, "gw-routes")?;
    let gw = start_gateway(b, &prefix, "")?;
    let ids = IdentityView::from_csv(&std::fs::read(fixture("identities.csv")).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let posted_from = chrono::DateTime::from_timestamp_micros(chrono::Utc::now().timestamp_micros()).unwrap_or_default();
    let now = posted_from.timestamp();
    let cases: [(&str, &str, Format, Option<&str>); 6] = [
        ("/v1/caliper", "caliper/session-logged-in.json", Format::Caliper, None),
        ("/v1/xapi/statements", "xapi/batch.json", Format::Xapi, None),
        ("/v1/canvas", "canvas/submission-created.json", Format::Canvas, None),
        ("/v1/zoom", "zoom/participant-joined.json", Format::Zoom, None),
        ("/v1/events", "native/events.json", Format::Native, None),
        ("/v1/contacts.csv", "native/contacts.csv", Format::Native, Some("contacts")),
    ];
    let mut want: BTreeMap<String, ActivityEvent> = BTreeMap::new();
    for (route, file, format, csv_source) in cases {
        let body = std::fs::read(fixture(file)).map_err(|e| format!("{file}: {e}"))?;
        let expected = match csv_source {
            Some(s) => rollcall_ingest::native::csv(&body, s),
            None if format == Format::Native => rollcall_ingest::native::json(&body),
            None => rollcall_ingest::normalize(format, &body, &ids, None),
        }
        .map_err(|r| format!("{file}: {r}"))?;
        ensure(!expected.events.is_empty(), || format!("{file} gives no events; pick another fixture"))?;
        let headers = if format == Format::Zoom { zoom_headers(&body, now) } else { bearer() };
        let (status, answer) = post(&gw.addr, route, &headers, &body)?;
        ensure(status == 200, || format!("{route}: {status} {answer}"))?;
        ensure(answer.contains(&format!("\"accepted\":{}", expected.events.len())), || format!("{route}: {answer}"))?;
        for e in expected.events {
            want.insert(e.event_id.clone(), e);
        }
    }
    let got = on_topic(b, &topics)?;
    let twice: Vec<_> = got.iter().filter(|(_, (n, _))| *n != 1).map(|(k, _)| k).collect();
    ensure(twice.is_empty(), || format!("on the topic more than once: {twice:?}"))?;
    let mut got: BTreeMap<String, ActivityEvent> = got.into_iter().map(|(k, (_, e))| (k, e)).collect();
    // The gateway stamps each event with when it took it (schema version 2).
    let posted_to = chrono::Utc::now();
    for (id, e) in got.iter_mut() {
        let at = e.received_at.take();
        ensure(at.is_some_and(|t| t >= posted_from && t <= posted_to), || {
            format!("{id}: received_at {at:?}, posted between {posted_from} and {posted_to}")
        })?;
    }
    ensure(got == want, || {
        format!(
            "{} events on the topic, {} expected; e.g. {:?}",
            got.len(),
            want.len(),
            want.keys().find(|k| got.get(*k) != want.get(*k))
        )
    })
}

fn refusals_have_their_status_and_produce_nothing(b: &str) -> TestResult {
    let (prefix, topics) = fresh_topics(b, "gw-refusals")?;
    let gw = start_gateway(b, &prefix, "max_body_bytes = 65536")?;
    let now = chrono::Utc::now().timestamp();
    let read = |f: &str| std::fs::read(fixture(f)).map_err(|e| format!("{f}: {e}"));
    let caliper = read("caliper/session-logged-in.json")?;
    let zoom = read("zoom/participant-joined.json")?;
    let wrong = vec![("Authorization", "Bearer not-the-token-at-all-000".to_string())];
    let mut bad_zoom = zoom_headers(&zoom, now);
    bad_zoom[1].1 = rollcall_ingest::zoom::signature(b"another-secret-entirely", &now.to_string(), &zoom);
    let cases: Vec<(&str, &str, Vec<(&str, String)>, Vec<u8>, u16, &str)> = vec![
        ("no token", "/v1/caliper", vec![], caliper.clone(), 401, "Bearer"),
        ("a wrong token", "/v1/caliper", wrong, caliper.clone(), 401, "not this source's"),
        ("a bad signature", "/v1/zoom", bad_zoom, zoom.clone(), 401, "x-zm-signature"),
        ("a stale signature", "/v1/zoom", zoom_headers(&zoom, now - 3600), zoom.clone(), 401, "x-zm-request-timestamp"),
        ("an oversized body", "/v1/caliper", bearer(), vec![b' '; 100_000], 413, "limit"),
        ("malformed JSON", "/v1/caliper", bearer(), b"{\"data\": [".to_vec(), 400, "not JSON"),
        ("a bad place", "/v1/caliper", bearer(), read("caliper/bad-places.json")?, 400, "data["),
        ("Caliper 1.0", "/v1/caliper", bearer(), read("caliper/v1p0-refused.json")?, 422, "not supported"),
    ];
    for (what, route, headers, body, want, says) in cases {
        let (status, answer) = post(&gw.addr, route, &headers, &body)?;
        ensure(status == want && answer.contains(says), || {
            format!("{what}: {status} {answer}, expected {want} saying `{says}`")
        })?;
    }
    let validation = read("zoom/url-validation.json")?;
    let (status, answer) = post(&gw.addr, "/v1/zoom", &zoom_headers(&validation, now), &validation)?;
    ensure(status == 200 && answer.contains("encryptedToken"), || format!("url validation: {status} {answer}"))?;
    let got = on_topic(b, &topics)?;
    ensure(got.is_empty(), || format!("{} events produced by refused requests", got.len()))
}

fn native_batch(client: usize, request: usize, n: usize) -> Vec<u8> {
    let events: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"event_id":"burst-{client}-{request}-{i}","source":"door","student_id":"S{:04}","school_id":"lincoln-ms","kind":"CHECK_IN","occurred_at":"2025-02-19T13:52:10Z"}}"#,
                client * 7 + i
            )
        })
        .collect();
    format!("[{}]", events.join(",")).into_bytes()
}

/// The rows that `caliper/unknown-person-and-class.json` lacks.
const LATE_ROWS: &str = "source,type,external_id,id,school_id\n\
     caliper,student,https://lms.example.edu/users/999999,S3001,lincoln-ms\n\
     caliper,section,https://lms.example.edu/sections/9,alg-9,lincoln-ms\n";

fn import_identities(b: &str, prefix: &str, rows: &str) -> TestResult {
    import_identities_rows(b, prefix, rows, 2)
}

fn import_identities_rows(b: &str, prefix: &str, rows: &str, n: usize) -> TestResult {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = dir.path().join("late.csv");
    std::fs::write(&file, rows).map_err(|e| e.to_string())?;
    let out = Command::new(bin())
        .args(["identities", "import", "--brokers", b, "--topic-prefix", prefix])
        .arg(&file)
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure(out.status.success() && stdout.contains(&format!("imported {n} identities")), || {
        format!("identities import: {stdout}{}", String::from_utf8_lossy(&out.stderr))
    })
}

/// Polls the activity topic until `n` events are on it (at most 60 s).
fn wait_for_events(b: &str, topics: &Topics, n: usize) -> Result<BTreeMap<String, (usize, ActivityEvent)>, String> {
    let started = Instant::now();
    loop {
        let got = on_topic(b, topics)?;
        if got.len() >= n || started.elapsed() > Duration::from_secs(60) {
            return Ok(got);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The two waiting events of the fixture, released: the unknown student and
/// the unknown section now mapped, the known student as before.
fn check_released(got: &BTreeMap<String, (usize, ActivityEvent)>) -> TestResult {
    ensure(got.len() == 2 && got.values().all(|(n, _)| *n == 1), || format!("expected 2 events once each, got {got:?}"))?;
    let by_student: BTreeMap<&str, &ActivityEvent> = got.values().map(|(_, e)| (e.student_id.as_str(), e)).collect();
    for student in ["S3001", "S2001"] {
        let e = by_student.get(student).ok_or_else(|| format!("no event of {student}: {by_student:?}"))?;
        ensure(e.school_id == "lincoln-ms" && e.section_id.as_deref() == Some("alg-9") && e.source == "caliper", || {
            format!("{student}: {e:?}")
        })?;
    }
    Ok(())
}

fn post_unknown(gw: &Gateway) -> TestResult {
    let body = std::fs::read(fixture("caliper/unknown-person-and-class.json")).map_err(|e| e.to_string())?;
    let (status, answer) = post(&gw.addr, "/v1/caliper", &bearer(), &body)?;
    ensure(status == 200 && answer.contains("\"accepted\":0") && answer.contains("\"waiting\":2"), || {
        format!("unknown identities: {status} {answer}")
    })
}

/// An event naming a student and a class the mapping does not know is
/// accepted (it is durable on the waiting topic), produces nothing while
/// unknown, and is released with the SIS ids once the rows are imported.
fn unknown_identities_wait_and_are_released_when_mapped(b: &str) -> TestResult {
    let (prefix, topics) = fresh_topics(b, "gw-wait")?;
    let gw = start_gateway(b, &prefix, "")?;
    post_unknown(&gw)?;
    std::thread::sleep(Duration::from_secs(3));
    let early = on_topic(b, &topics)?;
    ensure(early.is_empty(), || format!("{} events produced before their mapping: {early:?}", early.len()))?;
    let metrics = support::http::request(&gw.addr, "GET", "/metrics", &[], b"")?.body;
    ensure(metrics.contains("rollcall_gateway_identities_waiting 2"), || {
        format!("metrics: {}", metrics.lines().filter(|l| l.contains("waiting")).collect::<Vec<_>>().join("\n"))
    })?;
    import_identities(b, &prefix, LATE_ROWS)?;
    check_released(&wait_for_events(b, &topics, 2)?)?;
    std::thread::sleep(Duration::from_secs(2));
    let metrics = support::http::request(&gw.addr, "GET", "/metrics", &[], b"")?.body;
    ensure(
        metrics.contains("rollcall_gateway_released_total 2") && metrics.contains("rollcall_gateway_identities_waiting 0"),
        || {
            format!(
                "metrics after the release: {}",
                metrics.lines().filter(|l| l.contains("rollcall_gateway_")).collect::<Vec<_>>().join("\n")
            )
        },
    )
}

/// Dead letters on the topic, as (error kind, message).
fn letters(b: &str, topics: &Topics) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    rollcall_kafka::replay::read_topic(b, &topics.dlq, |v, _| {
        let d = rollcall_model::DeadLetter::from_single_object(v)
            .map_err(|source| rollcall_kafka::KafkaError::Record { what: "a dead letter".into(), source })?;
        out.push((d.error_kind, d.message));
        Ok(())
    })
    .map_err(|e| format!("{e:#}"))?;
    Ok(out)
}

/// After the wait the events are dead-lettered UNKNOWN_IDENTITY naming what
/// was missing; once the rows are imported, `rollcall dlq replay` puts them
/// back and they are released.
fn unknown_identities_are_dead_lettered_after_the_wait_and_replayed(b: &str) -> TestResult {
    let (prefix, topics) = fresh_topics(b, "gw-unknown")?;
    let gw = start_gateway(b, &prefix, "identity_wait_seconds = 2")?;
    post_unknown(&gw)?;
    let started = Instant::now();
    let mut dead = letters(b, &topics)?;
    while dead.len() < 2 && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(500));
        dead = letters(b, &topics)?;
    }
    ensure(dead.len() == 2 && dead.iter().all(|(k, _)| k == "UNKNOWN_IDENTITY"), || format!("dead letters: {dead:?}"))?;
    ensure(
        dead.iter().any(|(_, m)| m.contains("caliper student `https://lms.example.edu/users/999999`"))
            && dead.iter().all(|(_, m)| m.contains("caliper section `https://lms.example.edu/sections/9`")),
        || format!("the letters do not name what was missing: {dead:?}"),
    )?;
    ensure(on_topic(b, &topics)?.is_empty(), || "events produced without their mapping".into())?;
    import_identities(b, &prefix, LATE_ROWS)?;
    let out = Command::new(bin())
        .args(["dlq", "replay", "--brokers", b, "--topic-prefix", &prefix, "--kind", "UNKNOWN_IDENTITY"])
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure(out.status.success() && stdout.contains("2  to"), || {
        format!("dlq replay: {stdout}{}", String::from_utf8_lossy(&out.stderr))
    })?;
    check_released(&wait_for_events(b, &topics, 2)?)
}

/// A school on the daily-engagement policy and five grade-7 students, as the
/// SIS would have produced them before the week (stamped 2025-02-16).
fn e2e_world(b: &str, topics: &Topics) -> TestResult {
    let days: Vec<serde_json::Value> = ["2025-02-17", "2025-02-18", "2025-02-19", "2025-02-20", "2025-02-21"]
        .iter()
        .map(|d| serde_json::json!({ "date": d, "instructional": true, "day_type": "FULL", "start": "08:00", "end": "15:00" }))
        .collect();
    let calendar: rollcall_model::SchoolCalendar = serde_json::from_value(serde_json::json!({
        "school_id": "e2e-ms", "timezone": "America/Chicago", "policy": "daily-engagement", "days": days
    }))
    .map_err(|e| e.to_string())?;
    let at = chrono::DateTime::parse_from_rfc3339("2025-02-16T00:00:00Z").map_err(|e| e.to_string())?.with_timezone(&chrono::Utc);
    let p = rollcall_kafka::replay::producer(b).map_err(|e| format!("{e:#}"))?;
    let send = |topic: &str, key: &str, value: Vec<u8>| {
        rollcall_kafka::replay::send(&p, topic, key, &value, at).map_err(|e| format!("{e:#}"))
    };
    send(&topics.calendar, "e2e-ms", calendar.to_single_object().map_err(|e| e.to_string())?)?;
    for s in E2E_STUDENTS {
        let r = rollcall_model::StudentRecord::new(s, "e2e-ms", rollcall_model::GradeLevel::G7);
        send(&topics.roster, s, r.to_single_object().map_err(|e| e.to_string())?)?;
    }
    rdkafka::producer::Producer::flush(&p, Duration::from_secs(30)).map_err(|e| e.to_string())
}

const E2E_STUDENTS: [&str; 5] = ["E-CAL", "E-XAPI", "E-CAN", "E-ZOOM", "E-NONE"];

/// One payload per platform format, each the only activity of one student
/// on Wednesday 2025-02-19, in that platform's own form and ids.
fn e2e_payloads() -> Vec<(&'static str, Format, serde_json::Value)> {
    use serde_json::json;
    vec![
        (
            "/v1/caliper",
            Format::Caliper,
            json!({
                "sensor": "https://lms.example.edu/sensor", "sendTime": "2025-02-19T15:00:05.000Z",
                "dataVersion": "http://purl.imsglobal.org/ctx/caliper/v1p2",
                "data": [{
                    "@context": "http://purl.imsglobal.org/ctx/caliper/v1p2", "id": "urn:uuid:7d4b9a52-0e43-4f0c-9c55-3e2f1b6a0e01",
                    "type": "AssessmentEvent", "profile": "AssessmentProfile", "action": "Submitted",
                    "actor": { "id": "https://lms.example.edu/users/e2e-cal", "type": "Person" },
                    "object": { "id": "https://lms.example.edu/sections/7/assess/3", "type": "Assessment", "name": "Quiz Three" },
                    "eventTime": "2025-02-19T15:00:00.000Z"
                }]
            }),
        ),
        (
            "/v1/xapi/statements",
            Format::Xapi,
            json!({
                "id": "6690e6c9-3ef0-4ed3-8b37-7f3964730bee",
                "actor": { "objectType": "Agent", "account": { "homePage": "https://lrs.example.org", "name": "e2e-xapi" } },
                "verb": { "id": "http://activitystrea.ms/schema/1.0/submit", "display": { "en-US": "submitted" } },
                "object": { "id": "https://lms.example.org/assignments/42", "objectType": "Activity" },
                "timestamp": "2025-02-19T10:30:00-06:00"
            }),
        ),
        (
            "/v1/canvas",
            Format::Canvas,
            json!({
                "metadata": {
                    "event_name": "asset_accessed", "event_time": "2025-02-19T16:45:00.000Z", "producer": "canvas",
                    "user_id": "21070000000077777", "user_sis_id": "E2E-CAN", "context_type": "Course",
                    "context_id": "21070000000000777", "request_id": "0b8c1a9e-5a53-4a0e-8f2e-6f1b2c3d4e5f"
                },
                "body": { "asset_name": "Week 6: linear equations", "asset_type": "wiki_page", "asset_id": "21070000000770001",
                          "category": "wiki", "role": "StudentEnrollment", "level": "participate" }
            }),
        ),
        (
            "/v1/zoom",
            Format::Zoom,
            json!({
                "event": "meeting.participant_joined", "event_ts": 1739977200000i64,
                "payload": { "account_id": "AAAAAABBBB", "object": {
                    "id": "99911122233", "uuid": "e2eAAAiAAAAAiAiAiiAii==", "host_id": "x1yCzABCDEfg23HiJKl4mN",
                    "topic": "Homeroom 7", "type": 8, "start_time": "2025-02-19T15:00:00Z",
                    "participant": { "user_id": "16778241", "user_name": "E2E Zoom", "id": "e2eZoomParticipant",
                        "join_time": "2025-02-19T15:00:30Z", "customer_key": "e2e-zoom-key" }
                }}
            }),
        ),
    ]
}

/// One payload of each platform format, posted to the gateway (the Zoom one
/// before its student is mapped, so it waits and is released), ends up as
/// the student's PRESENT determination for the day on
/// `attendance.determinations.v1` once the processor has run; the student
/// with no activity is absent.
fn each_format_ends_up_as_a_determination(b: &str) -> TestResult {
    let (prefix, topics) = fresh_topics(b, "gw-e2e")?;
    e2e_world(b, &topics)?;
    import_identities_rows(
        b,
        &prefix,
        "source,type,external_id,id,school_id\n\
         caliper,student,https://lms.example.edu/users/e2e-cal,E-CAL,e2e-ms\n\
         xapi,student,e2e-xapi,E-XAPI,e2e-ms\n\
         canvas,student,E2E-CAN,E-CAN,e2e-ms\n\
         canvas,section,21070000000000777,hr-7,e2e-ms\n",
        4,
    )?;
    let gw = start_gateway(b, &prefix, "")?;
    let now = chrono::Utc::now().timestamp();
    for (route, format, payload) in e2e_payloads() {
        let body = serde_json::to_vec(&payload).map_err(|e| e.to_string())?;
        let headers = if format == Format::Zoom { zoom_headers(&body, now) } else { bearer() };
        let (status, answer) = post(&gw.addr, route, &headers, &body)?;
        let want = if format == Format::Zoom { "\"waiting\":1" } else { "\"accepted\":1" };
        ensure(status == 200 && answer.contains(want), || format!("{route}: {status} {answer}"))?;
    }
    import_identities_rows(
        b,
        &prefix,
        "source,type,external_id,id,school_id\n\
         zoom,student,e2e-zoom-key,E-ZOOM,e2e-ms\n\
         zoom,section,99911122233,hr-7,e2e-ms\n",
        2,
    )?;
    let events = wait_for_events(b, &topics, 4)?;
    ensure(events.len() == 4, || format!("{} events on the activity topic, 4 expected: {events:?}", events.len()))?;
    let state = tempfile::tempdir().map_err(|e| e.to_string())?;
    let status = Command::new(bin())
        .args(["run", "--brokers", b, "--clock", "replay", "--exit-when-idle", "--instance-id", "p"])
        .args(["--until", "2025-02-22T12:00:00Z", "--topic-prefix", &prefix, "--group", &format!("{prefix}g")])
        .args(["--metrics-addr", "off"])
        .arg("--state-dir")
        .arg(state.path())
        .env("ROLLCALL_LOG", "error")
        .stdout(Stdio::null())
        .status()
        .map_err(|e| e.to_string())?;
    ensure(status.success(), || format!("rollcall run exited with {status}"))?;
    let mut decided: BTreeMap<String, (String, String, Vec<String>)> = BTreeMap::new();
    rollcall_kafka::replay::read_topic(b, &topics.determinations, |v, _| {
        let d = rollcall_model::Determination::from_single_object(v)
            .map_err(|source| rollcall_kafka::KafkaError::Record { what: "a determination".into(), source })?;
        if d.date.to_string() == "2025-02-19" && d.scope == rollcall_model::Scope::Day {
            decided.insert(d.student_id.clone(), (d.status.to_string(), d.finality.to_string(), d.evidence.clone()));
        }
        Ok(())
    })
    .map_err(|e| format!("{e:#}"))?;
    for (student, want) in
        [("E-CAL", "PRESENT"), ("E-XAPI", "PRESENT"), ("E-CAN", "PRESENT"), ("E-ZOOM", "PRESENT"), ("E-NONE", "ABSENT_UNEXCUSED")]
    {
        let got = decided.get(student).ok_or_else(|| format!("no DAY determination of {student} for 2025-02-19: {decided:?}"))?;
        ensure(got.0 == want && got.1 == "FINAL", || format!("{student}: {got:?}, expected {want} FINAL"))?;
        let by_event = events.values().find(|(_, e)| e.student_id == student);
        if let Some((_, e)) = by_event {
            ensure(got.2.contains(&e.event_id), || {
                format!("{student}: the evidence {:?} does not name event {}", got.2, e.event_id)
            })?;
        }
    }
    Ok(())
}

/// 50 clients at once; every event of every 200 is on the topic exactly
/// once, and nothing else is.
fn a_burst_lands_exactly_once(b: &str) -> TestResult {
    let (prefix, topics) = fresh_topics(b, "gw-burst")?;
    let gw = start_gateway(b, &prefix, "")?;
    let addr = gw.addr.clone();
    let started = Instant::now();
    let acked: Vec<Result<Vec<String>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|c| {
                let addr = addr.clone();
                s.spawn(move || -> Result<Vec<String>, String> {
                    let mut ids = Vec::new();
                    for r in 0..10 {
                        let body = native_batch(c, r, 10);
                        let (status, answer) = post(&addr, "/v1/events", &bearer(), &body)?;
                        if status != 200 {
                            return Err(format!("client {c} request {r}: {status} {answer}"));
                        }
                        ids.extend((0..10).map(|i| format!("burst-{c}-{r}-{i}")));
                    }
                    Ok(ids)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("a client panicked".into()))).collect()
    });
    let mut want = std::collections::BTreeSet::new();
    for a in acked {
        want.extend(a?);
    }
    let took = started.elapsed();
    let got = on_topic(b, &topics)?;
    let twice = got.values().filter(|(n, _)| *n != 1).count();
    ensure(twice == 0, || format!("{twice} events on the topic more than once"))?;
    let ids: std::collections::BTreeSet<String> = got.into_keys().collect();
    ensure(ids == want, || format!("{} acknowledged, {} on the topic", want.len(), ids.len()))?;
    eprintln!("  {} events in 500 requests from 50 clients in {:.1} s", want.len(), took.as_secs_f64());
    Ok(())
}

/// A broker of its own, stopped (SIGSTOP) in the middle of a stream of
/// requests: those Kafka does not acknowledge in time are answered 503,
/// and every event of a 200 is on the topic once the broker is back.
fn a_stopped_broker_gives_503_and_loses_nothing(_: &str) -> TestResult {
    let run = std::env::temp_dir().join(format!("rollcall-gateway-pause-{}", std::process::id()));
    let kafka =
        |what: &str| Command::new("bash").arg(repo().join("scripts/kafka.sh")).arg(what).env("ROLLCALL_KAFKA_RUN", &run).output();
    let out = kafka("start").map_err(|e| e.to_string())?;
    ensure(out.status.success(), || "scripts/kafka.sh start failed".into())?;
    let own = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_string();
    let result = (|| -> TestResult {
        let (prefix, topics) = fresh_topics(&own, "gw-pause")?;
        let gw = start_gateway(&own, &prefix, "produce_timeout_ms = 3000")?;
        let (mut acked, mut unavailable) = (Vec::new(), 0);
        for r in 0..30 {
            if r == 10 {
                ensure(kafka("pause").map_err(|e| e.to_string())?.status.success(), || "kafka.sh pause failed".into())?;
            }
            if r == 14 {
                ensure(kafka("resume").map_err(|e| e.to_string())?.status.success(), || "kafka.sh resume failed".into())?;
            }
            let (status, answer) = post(&gw.addr, "/v1/events", &bearer(), &native_batch(0, r, 5))?;
            match status {
                200 => acked.extend((0..5).map(|i| format!("burst-0-{r}-{i}"))),
                503 => unavailable += 1,
                other => return Err(format!("request {r}: {other} {answer}")),
            }
        }
        ensure(unavailable > 0, || "no request was answered 503 while the broker was stopped".into())?;
        let got = on_topic(&own, &topics)?;
        let lost: Vec<_> = acked.iter().filter(|id| got.get(*id).map(|(n, _)| *n) != Some(1)).take(3).collect();
        ensure(lost.is_empty(), || format!("acknowledged but not on the topic exactly once: {lost:?}"))?;
        eprintln!("  {} events acknowledged, {unavailable} requests answered 503", acked.len());
        Ok(())
    })();
    let _ = kafka("resume");
    let _ = kafka("stop");
    result
}

pub fn area() -> Area {
    let tests = service_tests![[Need::Broker], |e| (e.broker());
        every_route_puts_its_events_on_the_topic,
        refusals_have_their_status_and_produce_nothing,
        unknown_identities_wait_and_are_released_when_mapped,
        unknown_identities_are_dead_lettered_after_the_wait_and_replayed,
        each_format_ends_up_as_a_determination,
        a_burst_lands_exactly_once,
        a_stopped_broker_gives_503_and_loses_nothing,
    ];
    Area::new("gateway", Duration::from_secs(900), tests)
}
