//! "Why was this student marked absent?" end to end: a school's week
//! through the real broker, the processor and the sink into a real
//! PostgreSQL, then `rollcall explain` and `rollcall serve` asked about a
//! present day (live-session evidence), an absence (what the rule looked
//! for, and the activity it saw and did not count), a correction (two
//! versions) and a period (section) determination; the JSON and the pages
//! behind their tokens; and the pages in headless Chromium.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use rollcall_scenario::Scenario;
use serde_json::{json, Value};

use crate::support::harness::{Area, Need};
use crate::support::http::{get, request};
use crate::support::pg::*;
use crate::support::*;

const SCHOOL: &str = "mmsd-explain";
const TOKEN: &str = "explain-test-token-0123456789";

fn enrollment(section: &str, staff: &str, start: &str, end: &str) -> Value {
    json!({"section_id": section, "staff_id": staff, "course_type": "LIVE", "specials": false, "dual_enrollment": false,
           "meetings": [{"weekdays": ["MON", "TUE", "WED", "THU", "FRI"], "start": start, "end": end}]})
}

fn event(id: &str, student: &str, kind: &str, section: &str, at: &str, source: &str) -> Value {
    json!({"event_id": id, "source": source, "student_id": student, "school_id": SCHOOL, "section_id": section,
           "kind": kind, "occurred_at": at})
}

/// Monday Oct 5 and Tuesday Oct 6, 2020, in Chicago (UTC−5): a present
/// student (a live session at 08:05), an absent one who only viewed
/// content, one whose live session arrived after the day was final (a
/// correction), and a grade-7 student decided per period.
fn scenario() -> Result<Scenario, String> {
    let homeroom = |id: &str| {
        json!({"student_id": id, "school_id": SCHOOL, "grade_level": "2", "homeroom_section_id": "hr-1",
               "homeroom_staff_id": "t-hr1", "groups": ["ELL"], "enrollments": [enrollment("hr-1", "t-hr1", "08:00", "14:30")]})
    };
    let mut late = event("e-c1", "s-corrected", "LIVE_JOIN", "hr-1", "2020-10-05T15:00:00Z", "zoom");
    late["arrives_at"] = json!("2020-10-06T15:00:00Z");
    let mut live = event("e-p1", "s-present", "LIVE_JOIN", "hr-1", "2020-10-05T13:05:00Z", "zoom");
    live["live_session_id"] = json!("m-100");
    let doc = json!({
        "name": "explain",
        "policy": "mmsd",
        "calendars": [{"school_id": SCHOOL, "timezone": "America/Chicago", "policy": "mmsd", "days": [
            {"date": "2020-10-05", "instructional": true, "day_type": "FULL", "start": "08:00", "end": "14:30"},
            {"date": "2020-10-06", "instructional": true, "day_type": "FULL", "start": "08:00", "end": "14:30"}]}],
        "roster": [homeroom("s-present"), homeroom("s-absent"), homeroom("s-corrected"),
            {"student_id": "s-section", "school_id": SCHOOL, "grade_level": "7", "groups": [],
             "enrollments": [enrollment("math-7", "t-math", "08:00", "09:00"), enrollment("sci-7", "t-sci", "09:10", "10:10")]}],
        "absence_reports": [],
        "events": [
            live,
            event("e-a1", "s-absent", "CONTENT_ACCESS", "hr-1", "2020-10-05T14:12:00Z", "canvas"),
            event("e-a2", "s-absent", "CONTENT_ACCESS", "hr-1", "2020-10-05T15:00:00Z", "canvas"),
            event("e-a3", "s-absent", "CONTENT_ACCESS", "hr-1", "2020-10-05T16:00:00Z", "canvas"),
            late,
            event("e-s1", "s-section", "LIVE_JOIN", "math-7", "2020-10-05T13:02:00Z", "zoom"),
            event("e-s2", "s-section", "CONTENT_ACCESS", "sci-7", "2020-10-05T14:20:00Z", "canvas"),
            event("e-s3", "s-section", "CONTENT_ACCESS", "sci-7", "2020-10-05T14:40:00Z", "canvas")
        ],
        "now": "2020-10-08T12:00:00Z",
        "expect": {"determinations": []}
    });
    Scenario::parse(&doc.to_string(), "explain.json", None).map_err(|e| e.to_string())
}

/// The scenario through the pipeline once, into a database of its own.
fn database(c: &Ctx) -> Result<&'static String, String> {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    URL.get_or_init(|| {
        let prefix = pipeline::process(&c.broker.address, &scenario()?, "explain")?;
        let url = c.db.fresh("explain")?;
        pipeline::sink_to_end(&c.broker.address, &prefix, &url)?;
        Ok(url)
    })
    .as_ref()
    .map_err(|e| e.clone())
}

fn explain(url: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(bin()).arg("explain").args(args).args(["--database-url", url]).output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure(out.status.success(), || format!("rollcall explain {args:?} failed: {err}"))?;
    Ok(text)
}

fn contains(text: &str, what: &[&str]) -> TestResult {
    let missing: Vec<&&str> = what.iter().filter(|w| !text.contains(**w)).collect();
    ensure(missing.is_empty(), || format!("missing {missing:?} in:\n{text}"))
}

fn cli_explains_a_present_day(c: &Ctx) -> TestResult {
    let url = database(c)?;
    let text = explain(url, &["s-present", "2020-10-05"])?;
    contains(
        &text,
        &[
            "DAY: PRESENT (code P",
            "Rule (mmsd): (a) live session on the day",
            "LIVE_JOIN, 2020-10-05 08:05, from zoom, section hr-1, teacher t-hr1, session m-100 (e-p1)",
            "times in America/Chicago",
        ],
    )?;
    ensure(!text.contains("Looked for"), || format!("a present day lists what was looked for:\n{text}"))
}

fn cli_explains_an_absence(c: &Ctx) -> TestResult {
    let url = database(c)?;
    let text = explain(url, &["s-absent", "2020-10-05"])?;
    contains(
        &text,
        &[
            "DAY: ABSENT_UNEXCUSED",
            "Looked for and did not find:",
            "- a live session on Mon Oct 5",
            "- a submission of work assigned for Mon Oct 5, made by the end of",
            "- two-way communication with the homeroom teacher (t-hr1) on Mon Oct 5",
            "3 × CONTENT_ACCESS in hr-1, first at 2020-10-05 09:12: the mmsd policy does not count content views as attendance",
        ],
    )
}

fn cli_explains_a_correction(c: &Ctx) -> TestResult {
    let url = database(c)?;
    let text = explain(url, &["s-corrected", "2020-10-05"])?;
    contains(
        &text,
        &[
            "DAY: PRESENT (code P",
            "correction version 2",
            "History:",
            "v1 final",
            "first decided: AU (ABSENT_UNEXCUSED)",
            "v2 correction",
            "status ABSENT_UNEXCUSED → PRESENT",
            "finality FINAL → CORRECTION",
            "LIVE_JOIN, 2020-10-05 10:00, from zoom",
        ],
    )
}

fn cli_explains_a_period(c: &Ctx) -> TestResult {
    let url = database(c)?;
    let text = explain(url, &["s-section", "2020-10-05", "--section", "sci-7"])?;
    contains(
        &text,
        &[
            "SECTION sci-7: ABSENT_UNEXCUSED",
            "- a live session of sci-7 on Mon Oct 5",
            "- two-way communication with the class teacher (t-sci) on Mon Oct 5",
            "2 × CONTENT_ACCESS in sci-7, first at 2020-10-05 09:20",
        ],
    )?;
    ensure(!text.contains("math-7"), || format!("--section sci-7 shows another section:\n{text}"))?;
    let both = explain(url, &["s-section", "2020-10-05"])?;
    contains(&both, &["SECTION math-7: PRESENT", "SECTION sci-7: ABSENT_UNEXCUSED", "teacher t-math"])?;
    // A student nobody knows, and a day with nothing decided, are said as such.
    let out = Command::new(bin())
        .args(["explain", "s-nobody", "2020-10-05", "--database-url", url])
        .output()
        .map_err(|e| e.to_string())?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure(!out.status.success() && err.contains("student s-nobody is not known"), || format!("unknown student: {err}"))?;
    let out = Command::new(bin())
        .args(["explain", "s-present", "2020-10-10", "--database-url", url])
        .output()
        .map_err(|e| e.to_string())?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure(!out.status.success() && err.contains("no determination for student s-present on 2020-10-10"), || {
        format!("a Saturday: {err}")
    })
}

/// `rollcall serve` on a free port, with the test's token.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(url: &str) -> Result<Server, String> {
    let mut child = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", url])
        .env("ROLLCALL_SERVE_TOKENS", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).map_err(|e| e.to_string())?;
    let addr = line.trim().strip_prefix("listening on http://").ok_or_else(|| format!("unexpected first line `{line}`"))?;
    Ok(Server { addr: addr.to_string(), child })
}

fn bearer() -> Vec<(&'static str, String)> {
    vec![("Authorization", format!("Bearer {TOKEN}"))]
}

fn json_at(addr: &str, path: &str) -> Result<Value, String> {
    let a = get(addr, path, &bearer())?;
    ensure(a.status == 200, || format!("GET {path}: {} {}", a.status, a.body))?;
    serde_json::from_str(&a.body).map_err(|e| format!("GET {path}: {e}: {}", a.body))
}

fn http_explains_and_guards(c: &Ctx) -> TestResult {
    let url = database(c)?;
    let s = serve(url)?;
    let present = json_at(&s.addr, "/v1/students/s-present/explain?date=2020-10-05")?;
    let ev = &present["determinations"][0]["evidence"][0];
    ensure(ev["kind"] == "LIVE_JOIN" && ev["local_time"] == "2020-10-05 08:05" && ev["source"] == "zoom", || {
        format!("present evidence: {present}")
    })?;
    let absent = json_at(&s.addr, "/v1/students/s-absent/explain?date=2020-10-05")?;
    let d = &absent["determinations"][0];
    ensure(d["current"]["status"] == "ABSENT_UNEXCUSED" && d["seen"][0]["count"] == 3, || format!("absence: {absent}"))?;
    ensure(d["looked_for"].as_array().is_some_and(|l| l.len() == 4), || format!("looked for: {}", d["looked_for"]))?;
    let corrected = json_at(&s.addr, "/v1/students/s-corrected/explain?date=2020-10-05")?;
    let history = &corrected["determinations"][0]["history"];
    ensure(
        history.as_array().map(Vec::len) == Some(2)
            && history[0]["finality"] == "FINAL"
            && history[1]["finality"] == "CORRECTION",
        || format!("history: {history}"),
    )?;
    let period = json_at(&s.addr, "/v1/students/s-section/explain?date=2020-10-05&section=math-7")?;
    let ds = period["determinations"].as_array().cloned().unwrap_or_default();
    ensure(ds.len() == 1 && ds[0]["scope"] == "SECTION" && ds[0]["evidence"][0]["staff_id"] == "t-math", || {
        format!("period: {period}")
    })?;
    let month = json_at(&s.addr, "/v1/students/s-present/attendance?from=2020-10-01&to=2020-10-31")?;
    let codes: Vec<String> = month["determinations"]
        .as_array()
        .map(|a| a.iter().map(|d| format!("{}={}", d["date"].as_str().unwrap_or(""), d["code"].as_str().unwrap_or(""))).collect())
        .unwrap_or_default();
    ensure(codes == ["2020-10-05=P", "2020-10-06=AU"], || format!("attendance: {codes:?}"))?;
    // Guards: no token, a wrong one, unknown student and school, bad dates.
    let cases: [(&str, Vec<(&str, String)>, u16, &str); 7] = [
        ("/v1/students/s-present/explain?date=2020-10-05", vec![], 401, "Bearer"),
        (
            "/v1/students/s-present/explain?date=2020-10-05",
            vec![("Authorization", "Bearer wrong-token-0123456789".into())],
            401,
            "Bearer",
        ),
        ("/schools/mmsd-explain/days/2020-10-05", vec![], 401, "Sign in"),
        ("/v1/students/s-nobody/explain?date=2020-10-05", bearer(), 404, "s-nobody is not known"),
        ("/schools/no-such-school/days/2020-10-05", bearer(), 404, "school no-such-school is not known"),
        ("/v1/students/s-present/explain?date=2020-13-45", bearer(), 400, "date: `2020-13-45` is not a date"),
        ("/v1/students/s-present/attendance?from=2020-10-09&to=2020-10-01", bearer(), 400, "is after"),
    ];
    for (path, headers, status, says) in cases {
        let a = get(&s.addr, path, &headers)?;
        ensure(a.status == status && a.body.contains(says), || {
            format!("GET {path}: {} {}, expected {status} saying {says}", a.status, a.body)
        })?;
    }
    Ok(())
}

/// The pages take the token once, on /login, and keep it in a cookie
/// that scripts cannot read and other sites cannot send.
fn pages_keep_the_token_in_a_strict_cookie(c: &Ctx) -> TestResult {
    let url = database(c)?;
    let s = serve(url)?;
    let wrong =
        request(&s.addr, "POST", "/login", &[("Content-Type", "application/x-www-form-urlencoded".into())], b"token=nope")?;
    ensure(wrong.status == 401 && wrong.header("set-cookie").is_none(), || format!("a wrong token: {}", wrong.status))?;
    let body = format!("token={TOKEN}&next=%2Fschools%2Fmmsd-explain%2Fdays%2F2020-10-05");
    let ok =
        request(&s.addr, "POST", "/login", &[("Content-Type", "application/x-www-form-urlencoded".into())], body.as_bytes())?;
    let cookie = ok.header("set-cookie").unwrap_or_default().to_string();
    ensure(ok.status == 303 && cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), || {
        format!("login: {} {cookie}", ok.status)
    })?;
    ensure(ok.header("location") == Some("/schools/mmsd-explain/days/2020-10-05"), || {
        format!("login goes to {:?}", ok.header("location"))
    })?;
    let pair = cookie.split(';').next().unwrap_or_default().to_string();
    let page = get(&s.addr, "/schools/mmsd-explain/days/2020-10-05", &[("Cookie", pair)])?;
    ensure(page.status == 200 && page.body.contains("<b id=\"absent\">1</b>"), || {
        format!("the day page: {} {}", page.status, page.body)
    })
}

/// Each page in headless Chromium, signed in by its cookie: it loads with
/// no console error and nothing fetched from elsewhere, a number read from
/// the rendered page equals the database's, and a screenshot is kept.
fn pages_render_in_chromium(c: &Ctx) -> TestResult {
    use crate::support::browser::{Browser, Cookie, OpenOptions};
    let url = database(c)?;
    let s = serve(url)?;
    let pg = Pg::connect(url)?;
    let one = |sql: &str| -> Result<String, String> {
        pg.query(sql)?.first().map(|r| r.get::<_, String>(0)).ok_or_else(|| format!("{sql}: no row"))
    };
    let browser = Browser::start()?;
    let opts = OpenOptions { cookies: vec![Cookie { name: "rollcall_token".into(), value: TOKEN.into() }], ..Default::default() };
    let pages: [(&str, &str, String, String); 5] = [
        (
            "school-day",
            "/schools/mmsd-explain/days/2020-10-05",
            "document.getElementById('absent').textContent".into(),
            one(&format!(
                "SELECT count(*)::text FROM determinations WHERE school_id = '{SCHOOL}' AND date = '2020-10-05' AND scope = 'DAY' AND status LIKE 'ABSENT%'"
            ))?,
        ),
        (
            "student-month",
            "/students/s-present/months/2020-10",
            "document.querySelector('a.code[data-date=\"2020-10-06\"]').textContent".into(),
            one("SELECT code FROM determinations WHERE student_id = 's-present' AND date = '2020-10-06' AND scope = 'DAY'")?,
        ),
        (
            "explain-absence",
            "/students/s-absent/explain/2020-10-05",
            "String(document.querySelectorAll('ul.looked-for li').length)".into(),
            one("SELECT cardinality(looked_for)::text FROM determinations WHERE student_id = 's-absent' AND date = '2020-10-05'")?,
        ),
        (
            "explain-correction",
            "/students/s-corrected/explain/2020-10-05",
            "String(document.querySelectorAll('table.versions tr').length - 1)".into(),
            one("SELECT count(*)::text FROM determination_versions WHERE student_id = 's-corrected' AND date = '2020-10-05'")?,
        ),
        (
            "schools",
            "/",
            "document.querySelector('main table tr:nth-child(2) td').textContent".into(),
            one("SELECT school_id FROM schools ORDER BY school_id LIMIT 1")?,
        ),
    ];
    for (name, path, expression, want) in pages {
        let mut page = browser.open(&format!("http://{}{path}", s.addr), &opts)?;
        let got = page.eval_string(&expression)?;
        ensure(got.trim() == want, || format!("{name}: the page shows `{got}`, the database `{want}`"))?;
        let errors = page.errors()?;
        ensure(errors.is_empty(), || format!("{name}: the page logged errors: {errors:?}"))?;
        let elsewhere: Vec<String> =
            page.requests().into_iter().filter(|u| !u.starts_with(&format!("http://{}", s.addr))).collect();
        ensure(elsewhere.is_empty(), || format!("{name}: the page fetched {elsewhere:?}"))?;
        let png = page.screenshot(&format!("serve-{name}"))?;
        let bytes = std::fs::read(&png).map_err(|e| e.to_string())?;
        ensure(bytes.starts_with(b"\x89PNG") && bytes.len() > 5_000, || format!("{}: not a screenshot", png.display()))?;
    }
    // A report through the service: the page the CLI writes, behind the same cookie.
    let mut page = browser
        .open(&format!("http://{}/reports/chronic-absence?school={SCHOOL}&from=2020-10-05&to=2020-10-06", s.addr), &opts)?;
    let tables = page.eval_number("document.querySelectorAll('table.data').length")?;
    ensure(tables >= 1.0, || "the report page has no table".into())?;
    let errors = page.errors()?;
    ensure(errors.is_empty(), || format!("report: the page logged errors: {errors:?}"))?;
    page.screenshot("serve-report-chronic-absence")?;
    Ok(())
}

/// What every test is given.
struct Ctx {
    broker: Broker,
    db: Database,
}

pub fn area() -> Area {
    let tests = service_tests![[Need::Database, Need::Broker], |e| (&Ctx { broker: e.broker_handle(), db: e.database_handle() });
        cli_explains_a_present_day,
        cli_explains_an_absence,
        cli_explains_a_correction,
        cli_explains_a_period,
        http_explains_and_guards,
        pages_keep_the_token_in_a_strict_cookie,
        pages_render_in_chromium,
    ];
    Area::new("explain", Duration::from_secs(600), tests)
}
