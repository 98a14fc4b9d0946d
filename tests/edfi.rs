//! `rollcall sink edfi` against a fake Ed-Fi ODS/API written here (a small
//! HTTP/1.1 server on 127.0.0.1:0 that plays the API's documented
//! behaviour: client-credentials tokens that expire, POST as an upsert on the
//! natural key — 201 with a Location for a new one, 200 for an existing one
//! —, DELETE by id 204, GET by natural key, problem-details 400s, 500s and
//! 429s with Retry-After) and a real PostgreSQL (tests/support/pg.rs): the
//! determinations are rows put straight into the sink's `determinations`
//! table, so no broker is needed.
//!
//! Uses ROLLCALL_TEST_DATABASE_URL when set; otherwise starts a cluster
//! with scripts/postgres.sh. Without a database the tests fail.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::harness::{Area, Need};
use crate::support::pg::*;
use crate::support::*;

const CLIENT_ID: &str = "rollcall-test";
const SECRET: &str = "s3cret-never-shown";
const PRESENT: &str = "uri://ed-fi.org/AttendanceEventCategoryDescriptor#In Attendance";
const UNEXCUSED: &str = "uri://ed-fi.org/AttendanceEventCategoryDescriptor#Unexcused Absence";

/// What the fake answers instead of accepting, for a student's next POSTs.
#[derive(Debug, Clone, Copy)]
enum Fault {
    Status(u16),
    TooMany { retry_after: u64 },
}

#[derive(Default)]
struct State {
    /// Token → requests it may still serve (then it has "expired": 401).
    tokens: HashMap<String, usize>,
    uses_per_token: usize,
    token_fetches: usize,
    next_id: u64,
    /// (resource, natural key) → (id, document).
    store: BTreeMap<(String, String), (String, Value)>,
    /// Accepted POSTs per natural key and document.
    accepted: HashMap<(String, String), usize>,
    /// Every request: method, path (no query), student (POSTs), status.
    log: Vec<(String, String, String, u16)>,
    faults: HashMap<String, VecDeque<Fault>>,
    /// Students whose documents are refused with a problem-details 400.
    refuse: HashSet<String>,
    /// Answering a POST takes this long (after it is stored).
    delay: Duration,
}

struct Fake {
    addr: String,
    state: Arc<Mutex<State>>,
}

impl Fake {
    fn start() -> Result<Fake, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?.to_string();
        let state = Arc::new(Mutex::new(State { uses_per_token: usize::MAX, ..State::default() }));
        let s = state.clone();
        let a = addr.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let s = s.clone();
                let a = a.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &s, &a);
                });
            }
        });
        Ok(Fake { addr, state })
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g)
    }

    /// Resource requests (not the token's) with this method and answer.
    fn count(&self, method: &str, status: u16) -> usize {
        self.with(|s| s.log.iter().filter(|(m, p, _, st)| m == method && p.starts_with("/data/") && *st == status).count())
    }

    fn posts_of(&self, student: &str) -> Vec<u16> {
        self.with(|s| s.log.iter().filter(|(m, _, st, _)| m == "POST" && st == student).map(|l| l.3).collect())
    }
}

/// The fake's own natural key: resource, student, school or section, session, date, category.
fn fake_key(resource: &str, doc: &Value) -> String {
    let r = if resource.starts_with("studentSection") { &doc["sectionReference"] } else { &doc["sessionReference"] };
    format!(
        "{resource}|{}|{}|{}|{}|{}|{}|{}|{}",
        doc["studentReference"]["studentUniqueId"].as_str().unwrap_or(""),
        r["schoolId"],
        r["schoolYear"],
        r["sessionName"].as_str().unwrap_or(""),
        r["localCourseCode"].as_str().unwrap_or(""),
        r["sectionIdentifier"].as_str().unwrap_or(""),
        doc["eventDate"].as_str().unwrap_or(""),
        doc["attendanceEventCategoryDescriptor"].as_str().unwrap_or("")
    )
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match h {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn respond(conn: &mut TcpStream, status: u16, headers: &[(&str, String)], body: &str) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        _ => "Error",
    };
    let mut head = format!("HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())?;
    conn.write_all(body.as_bytes())?;
    conn.flush()
}

fn serve(mut conn: TcpStream, state: &Mutex<State>, addr: &str) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    let body = String::from_utf8_lossy(&body).into_owned();
    let (path, query) =
        target.split_once('?').map(|(p, q)| (p.to_string(), q.to_string())).unwrap_or((target.clone(), String::new()));
    let auth = headers.get("authorization").cloned().unwrap_or_default();
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
    let log = |student: &str, status: u16| lock().log.push((method.clone(), path.clone(), student.to_string(), status));

    if path == "/oauth/token" {
        let ok = method == "POST"
            && auth == rollcall_sink::edfi_api::basic_credentials(CLIENT_ID, SECRET)
            && body.contains("grant_type=client_credentials");
        if !ok {
            log("", 401);
            return respond(&mut conn, 401, &[], r#"{"error":"invalid_client"}"#);
        }
        let token = {
            let mut s = lock();
            s.token_fetches += 1;
            let t = format!("tok-{}", s.token_fetches);
            let uses = s.uses_per_token;
            s.tokens.insert(t.clone(), uses);
            t
        };
        log("", 200);
        return respond(
            &mut conn,
            200,
            &[("Content-Type", "application/json".into())],
            &json!({"access_token": token, "expires_in": 1800, "token_type": "bearer"}).to_string(),
        );
    }
    // Every resource request needs a live token.
    let live = {
        let mut s = lock();
        match auth.strip_prefix("Bearer ").and_then(|t| s.tokens.get_mut(t)) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    };
    if !live {
        log("", 401);
        return respond(&mut conn, 401, &[("WWW-Authenticate", "Bearer".into())], "");
    }
    let Some(rest) = path.strip_prefix("/data/v3/ed-fi/") else {
        log("", 404);
        return respond(&mut conn, 404, &[], "");
    };
    let (resource, id) =
        rest.split_once('/').map(|(r, i)| (r.to_string(), Some(i.to_string()))).unwrap_or((rest.to_string(), None));
    match (method.as_str(), id) {
        ("POST", None) => {
            let doc: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let student = doc["studentReference"]["studentUniqueId"].as_str().unwrap_or("").to_string();
            let fault = lock().faults.get_mut(&student).and_then(|q| q.pop_front());
            match fault {
                Some(Fault::Status(st)) => {
                    log(&student, st);
                    return respond(&mut conn, st, &[], r#"{"title":"Internal Server Error"}"#);
                }
                Some(Fault::TooMany { retry_after }) => {
                    log(&student, 429);
                    return respond(&mut conn, 429, &[("Retry-After", retry_after.to_string())], "");
                }
                None => {}
            }
            if lock().refuse.contains(&student) {
                log(&student, 400);
                let problem = json!({
                    "type": "urn:ed-fi:api:bad-request:data-validation-failed",
                    "title": "Data Validation Failed",
                    "status": 400,
                    "correlationId": "c-1",
                    "detail": "Data validation failed. See 'validationErrors' for details.",
                    "validationErrors": {"$.studentReference": [format!("Student '{student}' is not enrolled in the school.")]},
                    "errors": [format!("StudentSchoolAssociation of '{student}' not found")]
                });
                return respond(&mut conn, 400, &[("Content-Type", "application/problem+json".into())], &problem.to_string());
            }
            let key = fake_key(&resource, &doc);
            let (status, id, delay) = {
                let mut s = lock();
                *s.accepted.entry((key.clone(), doc.to_string())).or_default() += 1;
                let existing = s.store.get(&(resource.clone(), key.clone())).map(|(id, _)| id.clone());
                let (status, id) = match existing {
                    Some(id) => (200, id),
                    None => {
                        s.next_id += 1;
                        (201, format!("id{:05}", s.next_id))
                    }
                };
                s.store.insert((resource.clone(), key), (id.clone(), doc));
                (status, id, s.delay)
            };
            // Stored, then slow to answer: a client killed now has been heard.
            std::thread::sleep(delay);
            log(&student, status);
            let location = format!("http://{addr}/data/v3/ed-fi/{resource}/{id}");
            respond(&mut conn, status, &[("Location", location)], "")
        }
        ("DELETE", Some(id)) => {
            let gone = {
                let mut s = lock();
                let k = s.store.iter().find(|(_, (i, _))| *i == id).map(|(k, _)| k.clone());
                k.map(|k| s.store.remove(&k)).is_some()
            };
            let status = if gone { 204 } else { 404 };
            log("", status);
            respond(&mut conn, status, &[], "")
        }
        ("GET", None) => {
            let params: HashMap<String, String> =
                query.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (decode(k), decode(v))).collect();
            let found: Vec<Value> = lock()
                .store
                .iter()
                .filter(|((r, _), (_, doc))| {
                    *r == resource && {
                        let mut d = doc.clone();
                        for f in ["studentReference", "schoolReference", "sessionReference", "sectionReference"] {
                            if let Some(o) = doc[f].as_object() {
                                for (k, v) in o {
                                    d[k] = v.clone();
                                }
                            }
                        }
                        params.iter().all(|(k, v)| match &d[k] {
                            Value::String(s) => s == v,
                            other => other.to_string().as_str() == v.as_str(),
                        })
                    }
                })
                .map(|(_, (id, doc))| {
                    let mut d = doc.clone();
                    d["id"] = json!(id);
                    d["_etag"] = json!("5250549399134949370");
                    d
                })
                .collect();
            log("", 200);
            respond(&mut conn, 200, &[("Content-Type", "application/json".into())], &Value::Array(found).to_string())
        }
        _ => {
            log("", 405);
            respond(&mut conn, 405, &[], "")
        }
    }
}

/// A fresh database with the sink's tables.
fn database(db: &Database, name: &str) -> Result<(String, Pg), String> {
    let url = db.fresh(name)?;
    let mut pg = Pg::connect(&url)?;
    let Pg { rt, client } = &mut pg;
    rt.block_on(rollcall_sink::migrate::migrate(client)).map_err(|e| e.to_string())?;
    Ok((url, pg))
}

/// One determination row (DAY unless a section is given), as the sink writes it.
#[allow(clippy::too_many_arguments)]
fn put(
    pg: &Pg,
    student: &str,
    section: Option<&str>,
    status: &str,
    code: &str,
    version: i32,
    finality: &str,
    minutes: i64,
) -> TestResult {
    let scope = if section.is_some() { "SECTION" } else { "DAY" };
    let id = format!("{student}|{scope}|2020-10-06|{}#{version}", section.unwrap_or(""));
    let section = section.map(|s| format!("'{s}'")).unwrap_or("NULL".into());
    pg.exec(&format!(
        "INSERT INTO determinations (determination_id, student_id, school_id, scope, date, section_id, policy, status, code,
                                     attendance_type, minutes, contacts, category, rule, evidence, version, finality, decided_at)
         VALUES ('{id}', '{student}', '255901001', '{scope}', DATE '2020-10-06', {section}, 'mmsd', '{status}', '{code}',
                 'IN_PERSON', {minutes}, NULL, NULL, 'present in class', '{{}}', {version}, '{finality}', now())
         ON CONFLICT (student_id, scope, date, section_key) DO UPDATE SET determination_id = excluded.determination_id,
           status = excluded.status, code = excluded.code, minutes = excluded.minutes, version = excluded.version,
           finality = excluded.finality"
    ))
}

fn secret_file() -> Result<tempfile::NamedTempFile, String> {
    let mut f = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    writeln!(f, "{SECRET}").map_err(|e| e.to_string())?;
    Ok(f)
}

fn sink_cmd(url: &str, fake: &Fake, secret: &std::path::Path, extra: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(["sink", "edfi", "--database-url", url, "--base-url", &fake.url(), "--client-id", CLIENT_ID])
        .arg("--client-secret-file")
        .arg(secret)
        .args(["--retry-base-ms", "50", "--retry-max-ms", "400", "--timeout-seconds", "10"])
        .args(if extra.contains(&"--max-attempts") { &[][..] } else { &["--max-attempts", "5"][..] })
        .args(extra)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    c
}

/// Runs `rollcall sink edfi --once` to its end; its stderr.
fn run_once(url: &str, fake: &Fake, extra: &[&str]) -> Result<String, String> {
    let secret = secret_file()?;
    let out = sink_cmd(url, fake, secret.path(), &[&["--once"], extra].concat()).output().map_err(|e| e.to_string())?;
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    ensure(!said.contains(SECRET), || format!("the secret was printed: {said}"))?;
    ensure(out.status.success(), || format!("sink edfi exited with {}: {said}", out.status))?;
    Ok(said)
}

fn one(pg: &Pg, sql: &str) -> Result<i64, String> {
    pg.query(sql)?.first().map(|r| r.get::<_, i64>(0)).ok_or_else(|| format!("{sql}: no row"))
}

/// New documents are created (201), an unchanged one is not sent again, a
/// changed one under the same natural key is posted again (200); PROVISIONAL
/// rows wait; the state table holds each key's resource id, per API.
fn posts_updates_and_leaves_unchanged_alone(db: &Database) -> TestResult {
    let (url, pg) = database(db, "edfi_post")?;
    let fake = Fake::start()?;
    for s in ["s1", "s2", "s3"] {
        put(&pg, s, None, "PRESENT", "P", 2, "FINAL", 390)?;
    }
    put(&pg, "s1", Some("math-7"), "PRESENT", "P", 2, "FINAL", 50)?;
    put(&pg, "s4", None, "PRESENT", "P", 1, "PROVISIONAL", 390)?;
    run_once(&url, &fake, &[])?;
    ensure(fake.count("POST", 201) == 4, || format!("201s: {}", fake.count("POST", 201)))?;
    ensure(fake.posts_of("s4").is_empty(), || "a PROVISIONAL row was posted".into())?;
    ensure(fake.with(|s| s.store.keys().any(|(r, _)| r == "studentSectionAttendanceEvents")), || "no section event".into())?;
    let ids = pg.query("SELECT resource_id FROM edfi_posted WHERE state = 'posted' AND resource_id LIKE 'id%'")?;
    ensure(ids.len() == 4, || format!("{} posted rows with ids", ids.len()))?;

    run_once(&url, &fake, &[])?;
    ensure(fake.count("POST", 201) + fake.count("POST", 200) == 4, || {
        format!("unchanged documents were sent again: {:?}", fake.with(|s| s.log.clone()))
    })?;

    put(&pg, "s2", None, "PRESENT", "P", 3, "CORRECTION", 200)?;
    let said = run_once(&url, &fake, &[])?;
    ensure(fake.posts_of("s2") == vec![201, 200], || format!("s2's POSTs: {:?}; {said}", fake.posts_of("s2")))?;
    let minutes = fake.with(|s| {
        s.store
            .values()
            .find(|(_, d)| d["studentReference"]["studentUniqueId"] == "s2")
            .map(|(_, d)| d["schoolAttendanceDuration"].clone())
    });
    ensure(minutes == Some(json!(200)), || format!("s2's stored minutes: {minutes:?}"))?;
    ensure(fake.count("DELETE", 204) == 0, || "a DELETE without a category change".into())?;
    // Another API (another base URL) has been sent nothing yet: it gets every document.
    let other = Fake::start()?;
    run_once(&url, &other, &[])?;
    ensure(other.count("POST", 201) == 4, || format!("the second API got {} documents of 4", other.count("POST", 201)))?;
    ensure(fake.count("POST", 201) + fake.count("POST", 200) == 5, || "the first API was sent something again".into())
}

/// A correction that changes the category: the old resource is DELETEd by
/// the id of its POST's Location, then the new one POSTed.
fn a_category_change_is_a_delete_then_a_post(db: &Database) -> TestResult {
    let (url, pg) = database(db, "edfi_category")?;
    let fake = Fake::start()?;
    put(&pg, "s1", None, "PRESENT", "P", 2, "FINAL", 390)?;
    put(&pg, "s2", None, "PRESENT", "P", 2, "FINAL", 390)?;
    run_once(&url, &fake, &[])?;
    let old_id: String = pg.query("SELECT resource_id FROM edfi_posted WHERE student_id = 's1'")?[0].get(0);
    let before: String = pg.query("SELECT category FROM edfi_posted WHERE student_id = 's1'")?[0].get(0);
    ensure(before == PRESENT, || format!("edfi_posted category before the change: {before}"))?;
    put(&pg, "s1", None, "ABSENT_UNEXCUSED", "AU", 3, "CORRECTION", 0)?;
    run_once(&url, &fake, &[])?;
    let log = fake.with(|s| s.log.clone());
    let del = log.iter().position(|(m, p, _, st)| m == "DELETE" && p.ends_with(&format!("/{old_id}")) && *st == 204);
    let post = log.iter().rposition(|(m, _, st, code)| m == "POST" && st == "s1" && *code == 201);
    ensure(matches!((del, post), (Some(d), Some(p)) if d < p), || format!("no DELETE of {old_id} before the new POST: {log:?}"))?;
    let cats: Vec<Value> = fake.with(|s| {
        s.store
            .values()
            .filter(|(_, d)| d["studentReference"]["studentUniqueId"] == "s1")
            .map(|(_, d)| d["attendanceEventCategoryDescriptor"].clone())
            .collect()
    });
    ensure(cats == vec![json!(UNEXCUSED)], || format!("s1's records at the API: {cats:?}"))?;
    let cat: String = pg.query("SELECT category FROM edfi_posted WHERE student_id = 's1'")?[0].get(0);
    ensure(cat == UNEXCUSED, || format!("edfi_posted category {cat}"))?;
    ensure(fake.posts_of("s2").len() == 1, || "s2 was sent again".into())?;
    // A determination the mapping no longer places (EXEMPT has no default
    // category): its resource is deleted and the key forgotten.
    let s2_id: String = pg.query("SELECT resource_id FROM edfi_posted WHERE student_id = 's2'")?[0].get(0);
    put(&pg, "s2", None, "EXEMPT", "DE", 3, "CORRECTION", 0)?;
    run_once(&url, &fake, &[])?;
    let gone = fake.with(|s| !s.store.values().any(|(id, _)| *id == s2_id));
    ensure(gone && fake.count("DELETE", 204) == 2, || {
        format!("s2's resource {s2_id} not deleted: {:?}", fake.with(|s| s.log.clone()))
    })?;
    ensure(one(&pg, "SELECT count(*) FROM edfi_posted WHERE student_id = 's2'")? == 0, || "s2 still in edfi_posted".into())
}

/// Without --once it polls; SIGTERM stops it within 2 s, exit status 0.
fn polls_and_stops_on_sigterm(db: &Database) -> TestResult {
    let (url, pg) = database(db, "edfi_term")?;
    let fake = Fake::start()?;
    put(&pg, "s1", None, "PRESENT", "P", 2, "FINAL", 390)?;
    let secret = secret_file()?;
    let mut child = sink_cmd(&url, &fake, secret.path(), &["--poll-seconds", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let wait_for = |what: &str, cond: &dyn Fn() -> Result<bool, String>| -> TestResult {
        let started = Instant::now();
        while !cond()? {
            ensure(started.elapsed() < Duration::from_secs(30), || format!("not within 30 s: {what}"))?;
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    };
    let result = (|| {
        wait_for("the first document", &|| Ok(fake.count("POST", 201) == 1))?;
        // A row that arrives later is picked up by a later pass.
        put(&pg, "s2", None, "PRESENT", "P", 2, "FINAL", 390)?;
        wait_for("the second document", &|| Ok(fake.count("POST", 201) == 2))?;
        let term = Instant::now();
        let st = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().map_err(|e| e.to_string())?;
        ensure(st.success(), || "kill -TERM failed".into())?;
        loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                ensure(status.success(), || format!("after SIGTERM it exited with {status}"))?;
                break;
            }
            ensure(term.elapsed() < Duration::from_secs(2), || "it did not stop within 2 s of SIGTERM".into())?;
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// A token the API stops honouring (401) is fetched again and the request
/// repeated; nothing is lost.
fn an_expired_token_is_fetched_again(db: &Database) -> TestResult {
    let (url, pg) = database(db, "edfi_token")?;
    let fake = Fake::start()?;
    fake.with(|s| s.uses_per_token = 2);
    for i in 0..5 {
        put(&pg, &format!("s{i}"), None, "PRESENT", "P", 2, "FINAL", 390)?;
    }
    run_once(&url, &fake, &[])?;
    let (fetches, unauthorized) = fake.with(|s| (s.token_fetches, s.log.iter().filter(|l| l.3 == 401).count()));
    ensure(fetches >= 3 && unauthorized >= 2, || format!("{fetches} tokens, {unauthorized} 401s"))?;
    ensure(fake.count("POST", 201) == 5, || format!("{} created of 5", fake.count("POST", 201)))?;
    ensure(one(&pg, "SELECT count(*) FROM edfi_posted WHERE state = 'posted'")? == 5, || "not all posted".into())
}

/// A 400 with problem details is recorded with the API's own words in
/// edfi_refusals; the run goes on and ends well; an unchanged refused
/// document is not sent again.
fn refusals_are_recorded_and_the_run_goes_on(db: &Database) -> TestResult {
    let (url, pg) = database(db, "edfi_refusal")?;
    let fake = Fake::start()?;
    fake.with(|s| s.refuse.insert("s2".into()));
    for s in ["s1", "s2", "s3"] {
        put(&pg, s, None, "PRESENT", "P", 2, "FINAL", 390)?;
    }
    run_once(&url, &fake, &[])?;
    ensure(fake.count("POST", 201) == 2, || format!("{} created", fake.count("POST", 201)))?;
    let rows = pg.query("SELECT status, message, body, method, determination_id FROM edfi_refusals")?;
    ensure(rows.len() == 1, || format!("{} refusals", rows.len()))?;
    let (status, message, body): (i32, String, String) = (rows[0].get(0), rows[0].get(1), rows[0].get(2));
    ensure(status == 400, || format!("status {status}"))?;
    ensure(message.contains("Data validation failed") && message.contains("'s2' is not enrolled"), || message.clone())?;
    ensure(body.contains("urn:ed-fi:api:bad-request:data-validation-failed"), || body.clone())?;
    ensure(rows[0].get::<_, String>(4).starts_with("s2|"), || "the refusal names another determination".into())?;
    run_once(&url, &fake, &[])?;
    ensure(fake.posts_of("s2") == vec![400], || format!("s2's POSTs: {:?}", fake.posts_of("s2")))
}

/// 500s and a 429 with Retry-After are retried with backoff until accepted;
/// a 500 that does not go away stops the run with the URL and the status.
fn server_errors_and_429_are_retried(db: &Database) -> TestResult {
    let (url, pg) = database(db, "edfi_retry")?;
    let fake = Fake::start()?;
    fake.with(|s| {
        s.faults.insert("s1".into(), VecDeque::from([Fault::Status(500), Fault::Status(503)]));
        s.faults.insert("s2".into(), VecDeque::from([Fault::TooMany { retry_after: 1 }]));
    });
    for s in ["s1", "s2"] {
        put(&pg, s, None, "PRESENT", "P", 2, "FINAL", 390)?;
    }
    let started = Instant::now();
    run_once(&url, &fake, &[])?;
    let took = started.elapsed();
    ensure(fake.posts_of("s1") == vec![500, 503, 201], || format!("s1: {:?}", fake.posts_of("s1")))?;
    ensure(fake.posts_of("s2") == vec![429, 201], || format!("s2: {:?}", fake.posts_of("s2")))?;
    ensure(took >= Duration::from_secs(1), || format!("Retry-After: 1 not waited for ({took:?})"))?;
    ensure(fake.with(|s| s.accepted.values().all(|n| *n == 1)), || "a document was accepted twice".into())?;

    fake.with(|s| s.faults.insert("s9".into(), VecDeque::from([Fault::Status(500); 10])));
    put(&pg, "s9", None, "PRESENT", "P", 2, "FINAL", 390)?;
    let secret = secret_file()?;
    let out = sink_cmd(&url, &fake, secret.path(), &["--once", "--max-attempts", "3"]).output().map_err(|e| e.to_string())?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure(!out.status.success(), || "a lasting 500 did not stop the run".into())?;
    ensure(err.contains("HTTP 500 after 3 attempts") && err.contains("/data/v3/ed-fi/studentSchoolAttendanceEvents"), || {
        err.to_string()
    })?;
    ensure(fake.posts_of("s9") == vec![500, 500, 500], || format!("s9: {:?}", fake.posts_of("s9")))
}

/// SIGKILL while the API is slow to answer, twice, then a run to the end:
/// every document is at the API and none was posted twice; the pass's
/// position was stored for the restart.
fn sigkill_mid_run_resumes_without_posting_twice(db: &Database) -> TestResult {
    let (url, pg) = database(db, "edfi_kill")?;
    let fake = Fake::start()?;
    fake.with(|s| s.delay = Duration::from_millis(40));
    let n = 120;
    for i in 0..n {
        put(&pg, &format!("k{i:03}"), None, if i % 7 == 0 { "ABSENT_UNEXCUSED" } else { "PRESENT" }, "X", 2, "FINAL", 390)?;
    }
    let secret = secret_file()?;
    let mut cursors = Vec::new();
    for until in [25, 70] {
        let mut child = sink_cmd(&url, &fake, secret.path(), &["--once", "--page", "10"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let started = Instant::now();
        while fake.with(|s| s.accepted.len()) < until {
            if started.elapsed() > Duration::from_secs(60) || child.try_wait().map_err(|e| e.to_string())?.is_some() {
                let _ = child.kill();
                return Err(format!("the sink did not reach {until} documents"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().map_err(|e| e.to_string())?; // SIGKILL
        let _ = child.wait();
        cursors.push(pg.query("SELECT student_id FROM edfi_cursor")?.first().and_then(|r| r.get::<_, Option<String>>(0)));
    }
    ensure(cursors.iter().all(|c| c.is_some()), || format!("no position stored at the kills: {cursors:?}"))?;
    let said = run_once(&url, &fake, &["--page", "10"])?;
    let (docs, accepted, twice) =
        fake.with(|s| (s.store.len(), s.accepted.values().sum::<usize>(), s.accepted.iter().filter(|(_, n)| **n > 1).count()));
    ensure(docs == n, || format!("{docs} documents at the API of {n}; {said}"))?;
    ensure(twice == 0 && accepted == n, || format!("{twice} documents posted more than once, {accepted} POSTs for {n}; {said}"))?;
    ensure(one(&pg, "SELECT count(*) FROM edfi_posted WHERE state = 'posted'")? == n as i64, || {
        "not every key is posted".into()
    })?;
    // Each kill came while a POST was answered slowly: the restart asked the API about it.
    ensure(fake.count("GET", 200) >= 1, || format!("no restart asked the API about a document in flight; {said}"))?;
    Ok(())
}

/// PostgreSQL only: no broker.
pub fn area() -> Area {
    let tests = service_tests![[Need::Database], |e| (e.database());
        posts_updates_and_leaves_unchanged_alone,
        a_category_change_is_a_delete_then_a_post,
        an_expired_token_is_fetched_again,
        refusals_are_recorded_and_the_run_goes_on,
        server_errors_and_429_are_retried,
        sigkill_mid_run_resumes_without_posting_twice,
        polls_and_stops_on_sigterm,
    ];
    Area::new("edfi", Duration::from_secs(600), tests)
}
