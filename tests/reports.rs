//! `rollcall report` against a simulated district run through a real
//! broker, the processor and `rollcall sink postgres` into a throwaway
//! PostgreSQL: each report's cells, worked out here from the records read
//! back from Kafka (not by the report code), equal the CSV's and the HTML's
//! cell by cell; each HTML report opens in headless Chromium with no
//! console error and nothing fetched, shows a number the database agrees
//! with, and leaves a PNG screenshot; bad arguments give clear errors.
//!
//! Uses ROLLCALL_TEST_BROKERS and ROLLCALL_TEST_DATABASE_URL when set;
//! otherwise starts a broker with scripts/kafka.sh and a cluster with
//! scripts/postgres.sh, and stops them at the end. Chromium: Debian's
//! `chromium` (scripts/setup.sh); without it the browser test fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use chrono::{Datelike, NaiveDate};
use rollcall_kafka::replay::read_outputs;
use rollcall_kafka::wire::Topics;
use rollcall_model::{AttendanceType, Determination, OutreachKind, OutreachTrigger, Scope, Status};

use crate::support;
use crate::support::browser::{Browser, OpenOptions};
use crate::support::harness::{Area, Need};
use crate::support::pg::*;
use crate::support::*;

const FROM: &str = "2020-10-05";
const TO: &str = "2020-10-16";

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_default()
}

fn monday(d: NaiveDate) -> NaiveDate {
    d - chrono::Duration::days(d.weekday().num_days_from_monday() as i64)
}

/// The simulated district, processed and sunk once for every test.
struct District {
    url: String,
    /// The latest version of each determination, as read back from Kafka.
    latest: Vec<Determination>,
    outreach: Vec<OutreachTrigger>,
    /// student → priority groups, from the simulated roster.
    groups: BTreeMap<String, Vec<String>>,
    dir: tempfile::TempDir,
}

struct Ctx {
    broker: Broker,
    db: Database,
}

/// One district for the whole run, made by the first test that asks.
static DISTRICT: OnceLock<Result<District, String>> = OnceLock::new();

impl Ctx {
    fn district(&self) -> Result<&'static District, String> {
        DISTRICT.get_or_init(|| prepare(&self.broker.address, &self.db)).as_ref().map_err(|e| e.clone())
    }
}

fn prepare(b: &str, db: &Database) -> Result<District, String> {
    let started = Instant::now();
    let s = district(250, 12, 13);
    let prefix = pipeline::process(b, &s, "reports")?;
    let topics = Topics::with_prefix(&prefix);
    let url = db.fresh("reports")?;
    pipeline::sink_to_end(b, &prefix, &url)?;
    let outputs = read_outputs(b, &topics).map_err(|e| e.to_string())?;
    let mut latest: BTreeMap<String, Determination> = BTreeMap::new();
    for d in outputs.determinations {
        if latest.get(&d.key()).is_none_or(|l| l.version < d.version) {
            latest.insert(d.key(), d);
        }
    }
    // The sink keeps the roster and the calendars beside the determinations.
    let pg = Pg::connect(&url)?;
    let (students, schools) = (pg.count("students")?, pg.count("schools")?);
    ensure(students == s.roster.len() as i64 && schools == s.calendars.len() as i64, || {
        format!("the sink kept {students} students and {schools} schools of {} and {}", s.roster.len(), s.calendars.len())
    })?;
    let groups = s.roster.iter().map(|st| (st.student_id.clone(), st.groups.clone())).collect();
    eprintln!(
        "  district: {} events -> {} determinations, {} triggers in {:.1} s",
        s.events.len(),
        latest.len(),
        outputs.outreach.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(District {
        url,
        latest: latest.into_values().collect(),
        outreach: outputs.outreach,
        groups,
        dir: tempfile::tempdir().map_err(|e| e.to_string())?,
    })
}

/// `rollcall report …`: (success, stdout, stderr).
fn report(args: &[&str]) -> Result<(bool, String, String), String> {
    let out = Command::new(bin()).arg("report").args(args).output().map_err(|e| e.to_string())?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// The report's CSV and its HTML file.
fn make(d: &District, kind: &str, school: &str) -> Result<(String, PathBuf), String> {
    let base = ["--database-url", &d.url, "--school", school, "--from", FROM, "--to", TO];
    let (ok, csv, err) = report(&[&[kind][..], &base, &["--format", "csv"]].concat())?;
    ensure(ok, || format!("report {kind} --format csv failed: {err}"))?;
    ensure(err.contains("DAY determinations") || err.contains("WEEK determinations"), || {
        format!("no progress on stderr: {err}")
    })?;
    let html = d.dir.path().join(format!("{kind}-{school}.html"));
    let path = html.to_string_lossy().into_owned();
    let (ok, out, err) = report(&[&[kind][..], &base, &["--format", "html", "--out", &path]].concat())?;
    ensure(ok && out.is_empty(), || format!("report {kind} --format html --out failed or wrote to stdout: {err}"))?;
    Ok((csv, html))
}

/// The expected rows of a report: per row, the table of the page it is
/// in, its key (`data-row`) and its cells in column order.
struct Expected {
    columns: Vec<String>,
    rows: Vec<(String, String, Vec<String>)>,
}

/// The CSV's records keyed by `key` (a function of a record's cells).
fn parse_csv(text: &str) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    let mut r = csv::ReaderBuilder::new().has_headers(true).from_reader(text.as_bytes());
    let header = r.headers().map_err(|e| e.to_string())?.iter().map(str::to_string).collect();
    let mut rows = Vec::new();
    for rec in r.records() {
        rows.push(rec.map_err(|e| format!("the CSV is not RFC 4180: {e}"))?.iter().map(str::to_string).collect());
    }
    ensure(text.contains("\r\n"), || "the CSV's lines do not end in CRLF".into())?;
    Ok((header, rows))
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&#39;", "'").replace("&amp;", "&")
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
    let len = tag[start..].find('"')?;
    Some(unescape(&tag[start..start + len]))
}

/// Every data cell of the page: (table, row, column) → text.
fn parse_html(html: &str) -> BTreeMap<(String, String, String), String> {
    let mut cells = BTreeMap::new();
    let mut table = String::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i..];
        let Some(end) = rest.find('>') else { break };
        let tag = &rest[..end];
        if tag.starts_with("<table") {
            table = attr(tag, "data-table").unwrap_or_default();
        } else if tag.starts_with("<td") {
            let text_end = rest[end..].find("</td>").map(|j| end + j).unwrap_or(end + 1);
            if let (Some(row), Some(col)) = (attr(tag, "data-row"), attr(tag, "data-col")) {
                cells.insert((table.clone(), row, col), unescape(&rest[end + 1..text_end]));
            }
        }
        rest = &rest[end..];
    }
    cells
}

/// The CSV and the page hold exactly the expected rows, cell by cell.
fn compare(kind: &str, e: &Expected, csv_text: &str, html: &Path, key: impl Fn(&[String]) -> String) -> TestResult {
    ensure(e.rows.len() > 5, || format!("{kind}: only {} expected rows: nothing to compare", e.rows.len()))?;
    let (header, records) = parse_csv(csv_text)?;
    ensure(header == e.columns, || format!("{kind}: CSV header {header:?}, expected {:?}", e.columns))?;
    let got: BTreeMap<String, Vec<String>> = records.iter().map(|r| (key(r), r.clone())).collect();
    ensure(got.len() == records.len(), || format!("{kind}: {} CSV records with {} distinct keys", records.len(), got.len()))?;
    let want: BTreeMap<String, Vec<String>> = e.rows.iter().map(|(_, k, c)| (k.clone(), c.clone())).collect();
    if got != want {
        let missing: Vec<_> = want.iter().filter(|(k, v)| got.get(*k) != Some(v)).take(3).collect();
        let extra: Vec<_> = got.iter().filter(|(k, v)| want.get(*k) != Some(v)).take(3).collect();
        return Err(format!(
            "{kind}: CSV has {} rows, expected {}; expected but not found e.g. {missing:?}; found instead e.g. {extra:?}",
            got.len(),
            want.len()
        ));
    }
    let page = std::fs::read_to_string(html).map_err(|e| e.to_string())?;
    let cells = parse_html(&page);
    let tables: BTreeSet<&String> = e.rows.iter().map(|(t, _, _)| t).collect();
    let in_tables = cells.keys().filter(|(t, _, _)| tables.contains(t)).count();
    ensure(in_tables == e.rows.len() * e.columns.len(), || {
        format!("{kind}: the page's tables hold {in_tables} cells, expected {}", e.rows.len() * e.columns.len())
    })?;
    for (table, row, values) in &e.rows {
        for (col, v) in e.columns.iter().zip(values) {
            let got = cells.get(&(table.clone(), row.clone(), col.clone()));
            ensure(got == Some(v), || format!("{kind}: page cell {table}/{row}/{col} is {got:?}, expected {v:?}"))?;
        }
    }
    Ok(())
}

fn in_span(d: NaiveDate) -> bool {
    day(FROM) <= d && d <= day(TO)
}

fn days_of<'a>(d: &'a District, school: &'a str) -> impl Iterator<Item = &'a Determination> + 'a {
    d.latest.iter().filter(move |x| x.school_id == school && x.scope == Scope::Day && in_span(x.date))
}

fn mississippi_expected(d: &District, school: &str) -> Expected {
    // (month, student) → [in person, virtual, excused, unexcused, minutes, referrals]
    let mut per: BTreeMap<(String, String), [i64; 6]> = BTreeMap::new();
    for x in days_of(d, school) {
        let c = per.entry((x.date.format("%Y-%m").to_string(), x.student_id.clone())).or_default();
        let present = matches!(x.status, Status::Present | Status::PresentRemote);
        let virtual_ = match x.attendance_type {
            Some(t) => t == AttendanceType::Virtual,
            None => x.status == Status::PresentRemote,
        };
        if present && virtual_ {
            c[1] += 1;
        } else if present {
            c[0] += 1;
        } else if x.status == Status::AbsentExcused {
            c[2] += 1;
        } else if x.status == Status::AbsentUnexcused {
            c[3] += 1;
        }
        c[4] += x.minutes.unwrap_or(0);
    }
    for t in
        d.outreach.iter().filter(|t| t.school_id == school && t.kind == OutreachKind::TruancyReferral && in_span(t.window_end))
    {
        per.entry((t.window_end.format("%Y-%m").to_string(), t.student_id.clone())).or_default()[5] += 1;
    }
    let mut rows = Vec::new();
    let months: BTreeSet<String> = per.keys().map(|(m, _)| m.clone()).collect();
    for m in months {
        let mut total = [0i64; 6];
        for ((_, student), c) in per.iter().filter(|((mm, _), _)| *mm == m) {
            let mut cells = vec![m.clone(), student.clone()];
            cells.extend(c.iter().map(|n| n.to_string()));
            rows.push((format!("month-{m}"), format!("{m}|{student}"), cells));
            for i in 0..6 {
                total[i] += c[i];
            }
        }
        let mut cells = vec![m.clone(), "Total".to_string()];
        cells.extend(total.iter().map(|n| n.to_string()));
        rows.push((format!("month-{m}"), format!("{m}|total"), cells));
    }
    let columns = [
        "month",
        "student",
        "present_in_person",
        "present_virtual",
        "absent_excused",
        "absent_unexcused",
        "instructional_minutes",
        "truancy_referrals",
    ];
    Expected { columns: columns.map(String::from).to_vec(), rows }
}

fn nmped_expected(d: &District, school: &str) -> Expected {
    let mut rows = Vec::new();
    for x in d.latest.iter().filter(|x| x.school_id == school && x.scope == Scope::Week) {
        let Some(section) = &x.section_id else { continue };
        if x.date < monday(day(FROM)) || x.date > day(TO) {
            continue;
        }
        let low = d.outreach.iter().any(|t| {
            t.kind == OutreachKind::LowContact
                && t.student_id == x.student_id
                && t.section_id.as_ref() == Some(section)
                && monday(t.window_end) == x.date
        });
        rows.push((
            format!("section-{section}"),
            format!("{section}|{}|{}", x.date, x.student_id),
            vec![
                section.clone(),
                x.date.to_string(),
                x.student_id.clone(),
                x.code.clone(),
                x.contacts.map(|c| c.to_string()).unwrap_or_default(),
                if low { "yes".into() } else { String::new() },
            ],
        ));
    }
    let columns = ["section", "week", "student", "code", "contacts", "low_contact"];
    Expected { columns: columns.map(String::from).to_vec(), rows }
}

fn data_team_expected(d: &District, school: &str) -> Expected {
    const CATS: [&str; 4] = ["ALL_DAY", "MORNING_ONLY", "PARTIAL", "ABSENT"];
    let mut counts: BTreeMap<(String, NaiveDate), [i64; 4]> = BTreeMap::new();
    for x in days_of(d, school) {
        if let Some(i) = x.category.as_deref().and_then(|c| CATS.iter().position(|k| *k == c)) {
            counts.entry((x.student_id.clone(), monday(x.date))).or_default()[i] += 1;
        }
    }
    let due = |student: &str, week: NaiveDate| {
        d.outreach.iter().any(|t| {
            t.school_id == school
                && t.kind == OutreachKind::SocialWorker
                && t.student_id == student
                && monday(t.window_end) == week
        })
    };
    let mut groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (student, _) in counts.keys() {
        groups.entry("all students".into()).or_default().insert(student.clone());
        for g in d.groups.get(student).into_iter().flatten() {
            groups.entry(g.clone()).or_default().insert(student.clone());
        }
    }
    let mut rows = Vec::new();
    for (group, members) in &groups {
        for ((student, week), c) in counts.iter().filter(|((s, _), _)| members.contains(s)) {
            // The most days; a tie to the less present category.
            let max = *c.iter().max().unwrap_or(&0);
            let cat = (0..4).rev().find(|i| c[*i] == max).map(|i| CATS[i]).unwrap_or("ABSENT");
            let mut cells = vec![group.clone(), week.to_string(), student.clone()];
            cells.extend(c.iter().map(|n| n.to_string()));
            cells.push(cat.into());
            cells.push(if due(student, *week) { "yes".into() } else { String::new() });
            rows.push((format!("group-{group}"), format!("{group}|{week}|{student}"), cells));
        }
    }
    let columns = ["group", "week", "student", "all_day", "morning_only", "partial", "absent", "week_category", "social_worker"];
    Expected { columns: columns.map(String::from).to_vec(), rows }
}

fn chronic_expected(d: &District, school: &str) -> Expected {
    let tier = |absent: usize, days: usize| -> String {
        let share = absent as f64 / days as f64;
        // The Attendance Works bands, written as shares here.
        if days == 0 {
            String::new()
        } else if absent * 20 < days {
            "satisfactory".into()
        } else if absent * 10 < days {
            "at risk".into()
        } else if share < 0.2 {
            "moderate chronic".into()
        } else {
            "severe chronic".into()
        }
    };
    let ends = [day("2020-10-11"), day("2020-10-16")];
    let mut per: BTreeMap<String, Vec<(NaiveDate, bool)>> = BTreeMap::new();
    for x in days_of(d, school).filter(|x| x.status != Status::Exempt) {
        let absent = matches!(x.status, Status::AbsentExcused | Status::AbsentUnexcused);
        per.entry(x.student_id.clone()).or_default().push((x.date, absent));
    }
    let mut rows = Vec::new();
    for (student, days) in &per {
        let absent = days.iter().filter(|(_, a)| *a).count();
        let mut cells = vec![
            student.clone(),
            days.len().to_string(),
            absent.to_string(),
            format!("{:.1}", 100.0 * absent as f64 / days.len() as f64),
            tier(absent, days.len()),
        ];
        for end in ends {
            let upto: Vec<_> = days.iter().filter(|(d, _)| *d <= end).collect();
            cells.push(tier(upto.iter().filter(|(_, a)| *a).count(), upto.len()));
        }
        rows.push(("students".to_string(), student.clone(), cells));
    }
    let mut columns: Vec<String> = ["student", "days", "absent", "absent_percent", "tier"].map(String::from).to_vec();
    columns.extend(ends.iter().map(|e| format!("tier_{e}")));
    Expected { columns, rows }
}

/// mississippi-monthly for the Mississippi school.
fn mississippi_monthly_cells(c: &Ctx) -> TestResult {
    let d = c.district()?;
    let (csv, html) = make(d, "mississippi-monthly", "ms-pine")?;
    let e = mississippi_expected(d, "ms-pine");
    ensure(e.rows.iter().any(|(_, _, r)| r[3] != "0"), || "no virtual present day: the check sees one type only".into())?;
    compare("mississippi-monthly", &e, &csv, &html, |r| {
        format!("{}|{}", r[0], if r[1] == "Total" { "total" } else { r[1].as_str() })
    })
}

/// nmped-weekly for the New Mexico school.
fn nmped_weekly_cells(c: &Ctx) -> TestResult {
    let d = c.district()?;
    let (csv, html) = make(d, "nmped-weekly", "aps-hill")?;
    let e = nmped_expected(d, "aps-hill");
    let codes: BTreeSet<&str> = e.rows.iter().map(|(_, _, r)| r[3].as_str()).collect();
    ensure(codes.len() >= 2, || format!("only the codes {codes:?}: the check sees too little"))?;
    compare("nmped-weekly", &e, &csv, &html, |r| format!("{}|{}|{}", r[0], r[1], r[2]))
}

/// data-team-weekly for the Instruction Partners school.
fn data_team_weekly_cells(c: &Ctx) -> TestResult {
    let d = c.district()?;
    let (csv, html) = make(d, "data-team-weekly", "ip-elm")?;
    let e = data_team_expected(d, "ip-elm");
    let groups: BTreeSet<&str> = e.rows.iter().map(|(_, _, r)| r[0].as_str()).collect();
    ensure(groups.len() >= 3, || format!("only the groups {groups:?}"))?;
    compare("data-team-weekly", &e, &csv, &html, |r| format!("{}|{}|{}", r[0], r[1], r[2]))
}

/// chronic-absence for two schools of different policies.
fn chronic_absence_cells(c: &Ctx) -> TestResult {
    let d = c.district()?;
    for school in ["mmsd-lincoln", "ms-pine"] {
        let (csv, html) = make(d, "chronic-absence", school)?;
        let e = chronic_expected(d, school);
        let tiers: BTreeSet<&str> = e.rows.iter().map(|(_, _, r)| r[4].as_str()).collect();
        ensure(tiers.len() >= 2, || format!("{school}: only the tiers {tiers:?}"))?;
        compare("chronic-absence", &e, &csv, &html, |r| r[0].clone())?;
    }
    Ok(())
}

/// Each report's page in headless Chromium: no console error, nothing
/// fetched, a number on the rendered page equals the database's (by a
/// query of its own), a screenshot kept.
fn pages_render_in_chromium(c: &Ctx) -> TestResult {
    let d = c.district()?;
    let pg = Pg::connect(&d.url)?;
    let one = |sql: &str| -> Result<i64, String> {
        pg.query(sql)?.first().map(|r| r.get::<_, i64>(0)).ok_or_else(|| format!("{sql}: no row"))
    };
    let span = format!("date BETWEEN '{FROM}' AND '{TO}'");
    let checks: [(&str, &str, &str, String); 4] = [
        (
            "mississippi-monthly",
            "ms-pine",
            "document.querySelector('td[data-row=\"2020-10|total\"][data-col=\"instructional_minutes\"]').textContent",
            format!("SELECT coalesce(sum(minutes), 0)::bigint FROM determinations WHERE school_id = 'ms-pine' AND scope = 'DAY' AND {span}"),
        ),
        (
            "nmped-weekly",
            "aps-hill",
            "[...document.querySelectorAll('td[data-col=\"code\"]')].filter(td => td.textContent === 'CNC').length",
            format!(
                "SELECT count(*) FROM determinations WHERE school_id = 'aps-hill' AND scope = 'WEEK' AND section_id IS NOT NULL
                 AND code = 'CNC' AND date BETWEEN date_trunc('week', '{FROM}'::date) AND '{TO}'"
            ),
        ),
        (
            "data-team-weekly",
            "ip-elm",
            "document.querySelectorAll('table[data-table=\"group-all students\"] tbody tr').length",
            format!(
                "SELECT count(DISTINCT (student_id, date_trunc('week', date))) FROM determinations
                 WHERE school_id = 'ip-elm' AND scope = 'DAY' AND category IS NOT NULL AND {span}"
            ),
        ),
        (
            "chronic-absence",
            "mmsd-lincoln",
            "[...document.querySelectorAll('table[data-table=\"tiers\"] td[data-col=\"students\"]')].reduce((s, td) => s + Number(td.textContent), 0)",
            format!(
                "SELECT count(DISTINCT student_id) FROM determinations
                 WHERE school_id = 'mmsd-lincoln' AND scope = 'DAY' AND status <> 'EXEMPT' AND {span}"
            ),
        ),
    ];
    let browser = Browser::start()?;
    for (kind, school, js, sql) in &checks {
        let (_, html) = make(d, kind, school)?;
        let url = format!("file://{}", html.canonicalize().map_err(|e| e.to_string())?.display());
        let mut page = browser.open(&url, &OpenOptions::default())?;
        let shown = page.eval_number(js)?;
        let want = one(sql)?;
        ensure(want > 0, || format!("{kind}: the database's number is 0: nothing to compare"))?;
        ensure(shown == want as f64, || format!("{kind}: the page shows {shown}, the database has {want} ({sql})"))?;
        let svgs = page.eval_number("document.querySelectorAll('svg rect, svg polyline').length")?;
        ensure(svgs > 0.0, || format!("{kind}: no chart drawn"))?;
        let errors = page.errors()?;
        ensure(errors.is_empty(), || format!("{kind}: the page logged errors: {errors:?}"))?;
        let fetched: Vec<String> = page.requests().into_iter().filter(|u| !u.starts_with("file://")).collect();
        ensure(fetched.is_empty(), || format!("{kind}: the page fetched {fetched:?}"))?;
        let png = page.screenshot(&format!("report-{kind}"))?;
        let bytes = std::fs::read(&png).map_err(|e| e.to_string())?;
        ensure(bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000, || format!("{}: not a screenshot", png.display()))?;
        eprintln!("  {kind}: shows {shown}, screenshot {}", png.display());
    }
    Ok(())
}

/// An unknown school, dates out of order or malformed, an unknown kind:
/// each a failure that says what is wrong.
fn bad_arguments_say_what_is_wrong(c: &Ctx) -> TestResult {
    let d = c.district()?;
    let cases: [(&[&str], &str); 4] = [
        (&["chronic-absence", "--school", "no-such-school", "--from", FROM, "--to", TO], "no school `no-such-school`"),
        (&["chronic-absence", "--school", "ms-pine", "--from", TO, "--to", FROM], "--from 2020-10-16 is after --to 2020-10-05"),
        (&["chronic-absence", "--school", "ms-pine", "--from", "2020-10-32", "--to", TO], "--from `2020-10-32` is not a date"),
        (&["weekly-everything", "--school", "ms-pine", "--from", FROM, "--to", TO], "unknown report kind `weekly-everything`"),
    ];
    for (args, says) in cases {
        let (ok, out, err) = report(&[args, &["--database-url", &d.url]].concat())?;
        ensure(!ok && out.is_empty(), || format!("{args:?} succeeded or wrote: {out}"))?;
        ensure(err.contains(says), || format!("{args:?} said {err:?}, not {says:?}"))?;
    }
    Ok(())
}

/// The harness itself over http://: the cookie and the header given reach
/// the server, and a console error on the page is seen.
fn browser_sends_cookies_and_headers_and_sees_errors(_c: &Ctx) -> TestResult {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let (mut path, mut cookie, mut auth) = (String::new(), String::new(), String::new());
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) && line != "\r\n" {
                let l = line.trim_end();
                if let Some(p) = l.strip_prefix("GET ") {
                    path = p.split(' ').next().unwrap_or("").to_string();
                } else if let Some((k, v)) = l.split_once(": ") {
                    match k.to_ascii_lowercase().as_str() {
                        "cookie" => cookie = v.to_string(),
                        "authorization" => auth = v.to_string(),
                        _ => {}
                    }
                }
                line.clear();
            }
            let body = if path == "/" {
                format!(
                    "<!DOCTYPE html><html><body><p id=\"cookie\">{cookie}</p><p id=\"auth\">{auth}</p>\
                     <script>console.error('boom ' + (6 * 7))</script></body></html>"
                )
            } else {
                String::new()
            };
            let status = if path == "/" { "200 OK" } else { "204 No Content" };
            let _ = write!(
                &stream,
                "HTTP/1.1 {status}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let browser = Browser::start()?;
    let opts = OpenOptions {
        cookies: vec![support::browser::Cookie { name: "session".into(), value: "abc".into() }],
        headers: vec![("Authorization".into(), "Bearer t0k".into())],
    };
    let mut page = browser.open(&format!("http://127.0.0.1:{port}/"), &opts)?;
    let cookie = page.eval_string("document.getElementById('cookie').textContent")?;
    let auth = page.eval_string("document.getElementById('auth').textContent")?;
    ensure(cookie.contains("session=abc"), || format!("the server saw the cookie {cookie:?}"))?;
    ensure(auth == "Bearer t0k", || format!("the server saw Authorization {auth:?}"))?;
    ensure(page.eval_number("6 * 7")? == 42.0, || "evaluation is wrong".into())?;
    let errors = page.errors()?;
    ensure(errors.iter().any(|e| e.contains("boom 42")), || format!("the console error was not seen: {errors:?}"))
}

pub fn area() -> Area {
    let tests = service_tests![[Need::Database, Need::Broker], |e| (&Ctx { broker: e.broker_handle(), db: e.database_handle() });
        mississippi_monthly_cells,
        nmped_weekly_cells,
        data_team_weekly_cells,
        chronic_absence_cells,
        pages_render_in_chromium,
        bad_arguments_say_what_is_wrong,
        browser_sends_cookies_and_headers_and_sees_errors,
    ];
    Area {
        after: |_| {
            if let Some(Ok(d)) = DISTRICT.get() {
                let _ = std::fs::remove_dir_all(d.dir.path());
            }
        },
        ..Area::new("reports", Duration::from_secs(900), tests)
    }
}
