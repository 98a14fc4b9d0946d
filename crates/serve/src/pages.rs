//! The pages for people: the schools, a school's day, a student's month (a
//! calendar of codes, each day linking to its explanation), and a
//! determination's explanation.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{Datelike, Duration, NaiveDate};
use rollcall_query::{AttendanceDay, Explanation};

use crate::api::{ExplainQuery, Problem};
use crate::html::{escape, page, status_class};
use crate::AppState;

/// A problem as a page: the same status, the message in words.
struct PageProblem(Problem);

impl IntoResponse for PageProblem {
    fn into_response(self) -> Response {
        let Problem(status, message) = self.0;
        let title = status.canonical_reason().unwrap_or("Problem");
        (status, Html(page(title, &format!("<h1>{title}</h1><p class=\"problem\">{}</p>", escape(&message))))).into_response()
    }
}

impl<E: Into<Problem>> From<E> for PageProblem {
    fn from(e: E) -> PageProblem {
        PageProblem(e.into())
    }
}

type PageResult = Result<Html<String>, PageProblem>;

fn link(href: &str, text: &str) -> String {
    format!("<a href=\"{}\">{}</a>", escape(href), escape(text))
}

/// A path segment with its reserved characters escaped.
fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn index(State(state): State<Arc<AppState>>) -> PageResult {
    let client = state.db.client().await?;
    let schools = rollcall_query::schools(&client).await?;
    let mut body =
        String::from("<h1>Schools</h1><table><tr><th>School</th><th>Policy</th><th>Time zone</th><th>Latest day</th></tr>");
    for s in &schools {
        let day = match s.last_date {
            Some(d) => link(&format!("/schools/{}/days/{d}", seg(&s.school_id)), &d.to_string()),
            None => "<span class=\"muted\">none yet</span>".into(),
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{day}</td></tr>",
            escape(&s.school_id),
            escape(&s.policy),
            escape(&s.timezone)
        );
    }
    body.push_str("</table>");
    if schools.is_empty() {
        body.push_str("<p class=\"muted\">The database holds no school yet: is `rollcall sink postgres` running?</p>");
    }
    Ok(Html(page("Schools", &body)))
}

fn day_of(s: &str) -> Result<NaiveDate, Problem> {
    crate::api::date("date", Some(s))
}

async fn school_day(State(state): State<Arc<AppState>>, Path((school, date)): Path<(String, String)>) -> PageResult {
    let date = day_of(&date)?;
    let client = state.db.client().await?;
    let day = rollcall_query::school_day(&client, &school, date).await?;
    let count = |f: &dyn Fn(&str) -> bool| day.students.iter().filter(|s| f(&s.status)).count();
    let present = count(&|s| s.starts_with("PRESENT"));
    let absent = count(&|s| s.starts_with("ABSENT"));
    let other = day.students.len() - present - absent;
    let nav = format!(
        "{} · {}",
        link(&format!("/schools/{}/days/{}", seg(&school), date - Duration::days(1)), "← previous day"),
        link(&format!("/schools/{}/days/{}", seg(&school), date + Duration::days(1)), "next day →")
    );
    let mut body = format!(
        "<h1>{} on {}</h1><p>{nav}</p><div class=\"tiles\">\
         <div class=\"tile\">Students<b id=\"students\">{}</b></div>\
         <div class=\"tile p\">Present<b id=\"present\">{present}</b></div>\
         <div class=\"tile a\">Absent<b id=\"absent\">{absent}</b></div>\
         <div class=\"tile x\">Other<b id=\"other\">{other}</b></div>\
         <div class=\"tile\">Outreach raised<b id=\"outreach\">{}</b></div></div>",
        escape(&school),
        date.format("%A %Y-%m-%d"),
        day.students.len(),
        day.outreach.len()
    );
    let first = date.with_day(1).unwrap_or(date);
    let reports: Vec<String> = rollcall_report::Kind::NAMES
        .iter()
        .map(|k| link(&format!("/reports/{k}?school={}&from={first}&to={date}", seg(&school)), k))
        .collect();
    let _ = write!(body, "<p>Reports for the month so far: {}</p>", reports.join(" · "));
    if !day.outreach.is_empty() {
        body.push_str("<h2>Outreach raised</h2><table><tr><th>Student</th><th>Kind</th><th>For</th><th>Reason</th></tr>");
        for o in &day.outreach {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                link(&format!("/students/{}/months/{}", seg(&o.student_id), date.format("%Y-%m")), &o.student_id),
                escape(&o.kind),
                escape(&o.recipient_role),
                escape(&o.reason)
            );
        }
        body.push_str("</table>");
    }
    body.push_str(
        "<h2>Every student</h2><table id=\"day\"><tr><th>Student</th><th>Code</th><th>Status</th><th>Type</th>\
         <th>Minutes</th><th>Finality</th><th>Why</th></tr>",
    );
    for s in &day.students {
        let _ = write!(
            body,
            "<tr><td>{}</td><td class=\"{}\"><b>{}</b></td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
            link(&format!("/students/{}/months/{}", seg(&s.student_id), date.format("%Y-%m")), &s.student_id),
            status_class(&s.status),
            link(&format!("/students/{}/explain/{date}", seg(&s.student_id)), &s.code),
            escape(&s.status),
            escape(s.attendance_type.as_deref().unwrap_or("")),
            s.minutes.map(|m| m.to_string()).unwrap_or_default(),
            escape(&s.finality),
            escape(&s.rule)
        );
    }
    body.push_str("</table>");
    if day.students.is_empty() {
        body.push_str("<p class=\"muted\">No determination on this date: not a school day, or not decided yet.</p>");
    }
    Ok(Html(page(&format!("{school} {date}"), &body)))
}

fn month_of(s: &str) -> Result<NaiveDate, Problem> {
    NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d")
        .map_err(|_| Problem(StatusCode::BAD_REQUEST, format!("month: `{s}` is not a month; give YYYY-MM")))
}

async fn student_month(State(state): State<Arc<AppState>>, Path((student, month)): Path<(String, String)>) -> PageResult {
    let first = month_of(&month)?;
    let next = first.checked_add_months(chrono::Months::new(1)).unwrap_or(first);
    let last = next - Duration::days(1);
    let client = state.db.client().await?;
    let days = rollcall_query::attendance(&client, &student, first, last).await?;
    let day_rows: Vec<&AttendanceDay> = days.iter().filter(|d| d.scope == "DAY").collect();
    let absent = day_rows.iter().filter(|d| d.status.starts_with("ABSENT")).count();
    let present = day_rows.iter().filter(|d| d.status.starts_with("PRESENT")).count();
    let prev = first - Duration::days(1);
    let nav = format!(
        "{} · {}",
        link(&format!("/students/{}/months/{}", seg(&student), prev.format("%Y-%m")), "← previous month"),
        link(&format!("/students/{}/months/{}", seg(&student), next.format("%Y-%m")), "next month →")
    );
    let mut body = format!(
        "<h1>{} in {}</h1><p>{nav}</p><div class=\"tiles\"><div class=\"tile p\">Days present<b id=\"present\">{present}</b></div>\
         <div class=\"tile a\">Days absent<b id=\"absent\">{absent}</b></div></div>\
         <table class=\"cal\"><tr><th>Mon</th><th>Tue</th><th>Wed</th><th>Thu</th><th>Fri</th><th>Sat</th><th>Sun</th></tr><tr>",
        escape(&student),
        first.format("%B %Y")
    );
    for _ in 0..first.weekday().num_days_from_monday() {
        body.push_str("<td></td>");
    }
    let mut d = first;
    while d <= last {
        let mut cell = format!("<span class=\"muted\">{}</span><br>", d.day());
        let here: Vec<&AttendanceDay> = days.iter().filter(|x| x.date == d && x.scope != "WEEK").collect();
        if let Some(day) = here.iter().find(|x| x.scope == "DAY") {
            let _ = write!(
                cell,
                "<a class=\"code {}\" data-date=\"{d}\" href=\"/students/{}/explain/{d}\" title=\"{}\">{}</a>",
                status_class(&day.status),
                seg(&student),
                escape(&day.rule),
                escape(&day.code)
            );
        } else if !here.is_empty() {
            let _ = write!(cell, "<a href=\"/students/{}/explain/{d}\">{} period(s)</a>", seg(&student), here.len());
        }
        let _ = write!(body, "<td>{cell}</td>");
        if d.weekday() == chrono::Weekday::Sun && d != last {
            body.push_str("</tr><tr>");
        }
        d += Duration::days(1);
    }
    body.push_str("</tr></table>");
    let weeks: Vec<&AttendanceDay> = days.iter().filter(|x| x.scope == "WEEK").collect();
    if !weeks.is_empty() {
        body.push_str("<h2>Weekly contacts</h2><table><tr><th>Week of</th><th>Class</th><th>Code</th><th>Contact days</th></tr>");
        for w in weeks {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
                link(&format!("/students/{}/explain/{}", seg(&student), w.date), &w.date.to_string()),
                escape(w.section_id.as_deref().unwrap_or("")),
                escape(&w.code),
                w.contacts.unwrap_or(0)
            );
        }
        body.push_str("</table>");
    }
    Ok(Html(page(&format!("{student} {}", first.format("%Y-%m")), &body)))
}

async fn explain_page(
    State(state): State<Arc<AppState>>,
    Path((student, date)): Path<(String, String)>,
    Query(q): Query<ExplainQuery>,
) -> PageResult {
    let date = day_of(&date)?;
    let client = state.db.client().await?;
    let e = rollcall_query::explain(&client, &student, date, q.section.as_deref().filter(|s| !s.is_empty())).await?;
    Ok(Html(page(&format!("{student} {date}"), &explanation(&e))))
}

/// The explanation as a page: one block per determination.
pub fn explanation(e: &Explanation) -> String {
    let mut body = format!(
        "<h1>Why {} was marked as they were on {}</h1><p class=\"muted\">School {}; times in {}. {}</p>",
        escape(&e.student_id),
        e.date.format("%A %Y-%m-%d"),
        escape(&e.school_id),
        escape(&e.timezone),
        link(&format!("/students/{}/months/{}", seg(&e.student_id), e.date.format("%Y-%m")), "The month")
    );
    for d in &e.determinations {
        let c = &d.current;
        let what = match (&d.section_id, d.scope.as_str()) {
            (Some(s), "WEEK") => format!("Week of {} in {s}", d.date),
            (Some(s), _) => format!("Period {s}"),
            (None, _) => "The day".to_string(),
        };
        let _ = write!(
            body,
            "<section class=\"determination\" data-scope=\"{}\"><h2>{}: <span class=\"{}\" data-field=\"code\">{}</span> \
             <span class=\"muted\">({}, {} version {})</span></h2><p data-field=\"rule\"><b>Rule ({}):</b> {}</p>",
            escape(&d.scope),
            escape(&what),
            status_class(&c.status),
            escape(&c.code),
            escape(&c.status),
            escape(&c.finality.to_lowercase()),
            c.version,
            escape(&d.policy),
            escape(&c.rule)
        );
        if !d.evidence.is_empty() {
            body.push_str(
                "<h3>Evidence</h3><table class=\"evidence\"><tr><th>Kind</th><th>When</th><th>Source</th><th>Section</th>\
                 <th>Teacher</th><th>Detail</th></tr>",
            );
            for ev in &d.evidence {
                let cells = [
                    Some(&ev.kind),
                    ev.local_time.as_ref(),
                    ev.source.as_ref(),
                    ev.section_id.as_ref(),
                    ev.staff_id.as_ref(),
                    ev.detail.as_ref(),
                ];
                body.push_str("<tr>");
                for c in cells {
                    let _ = write!(body, "<td>{}</td>", escape(c.map(String::as_str).unwrap_or("")));
                }
                body.push_str("</tr>");
            }
            body.push_str("</table>");
        }
        if !d.looked_for.is_empty() {
            body.push_str("<h3>Looked for and did not find</h3><ul class=\"looked-for\">");
            for l in &d.looked_for {
                let _ = write!(body, "<li>{}</li>", escape(l));
            }
            body.push_str("</ul>");
            if d.seen.is_empty() {
                body.push_str("<p class=\"muted\">No activity at all in the window.</p>");
            }
        }
        if !d.seen.is_empty() {
            body.push_str(
                "<h3>Seen, and not counted</h3><table class=\"seen\"><tr><th>Activity</th><th>How many</th><th>Section</th>\
                 <th>First at</th><th>Why it did not count</th></tr>",
            );
            for s in &d.seen {
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&s.kind),
                    s.count,
                    escape(s.section_id.as_deref().unwrap_or("")),
                    escape(&s.first_local_time),
                    escape(&s.why_not)
                );
            }
            body.push_str("</table>");
        }
        body.push_str("<h3>Versions</h3><table class=\"versions\"><tr><th>Version</th><th>Decided</th><th>Finality</th><th>Code</th><th>What changed</th></tr>");
        for v in &d.history {
            let _ = write!(
                body,
                "<tr><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                v.version,
                escape(&v.decided_local),
                escape(&v.finality),
                escape(&v.code),
                escape(&v.changes.join("; "))
            );
        }
        body.push_str("</table></section>");
    }
    body
}

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(index))
        .route("/schools/{school}/days/{date}", get(school_day))
        .route("/students/{id}/months/{month}", get(student_month))
        .route("/students/{id}/explain/{date}", get(explain_page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(seg("s-1_a.b~"), "s-1_a.b~");
        assert_eq!(seg("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn months_are_checked() {
        assert_eq!(month_of("2020-10").unwrap(), NaiveDate::from_ymd_opt(2020, 10, 1).unwrap());
        assert_eq!(month_of("2020-13").unwrap_err().0, StatusCode::BAD_REQUEST);
    }
}
