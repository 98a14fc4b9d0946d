//! The SQL that fetches a report's rows from the sink's tables.

use chrono::{Duration, NaiveDate};
use tokio_postgres::Client;

use crate::rows::{Data, DayRow, StudentRow, TriggerRow, WeekRow};
use crate::{Error, Kind, Params};

fn db(what: &str) -> impl FnOnce(tokio_postgres::Error) -> Error + '_ {
    move |source| Error::Database { what: what.to_string(), source }
}

/// Whether the school is known: in `schools` (the calendars) or, before
/// those are kept, in `determinations`.
pub async fn check_school(client: &Client, school: &str) -> Result<(), Error> {
    let rows = client
        .query(
            "SELECT 1 FROM schools WHERE school_id = $1
             UNION ALL (SELECT 1 FROM determinations WHERE school_id = $1 LIMIT 1)",
            &[&school],
        )
        .await
        .map_err(db("looking the school up"))?;
    if rows.is_empty() {
        return Err(Error::UnknownSchool(school.to_string()));
    }
    Ok(())
}

/// The school's DAY determinations dated from `from` to `to` (both included).
pub async fn days(client: &Client, school: &str, from: NaiveDate, to: NaiveDate) -> Result<Vec<DayRow>, Error> {
    let rows = client
        .query(
            "SELECT student_id, date, status, attendance_type, minutes, category FROM determinations
             WHERE school_id = $1 AND scope = 'DAY' AND date BETWEEN $2 AND $3 ORDER BY date, student_id",
            &[&school, &from, &to],
        )
        .await
        .map_err(db("reading DAY determinations"))?;
    Ok(rows
        .iter()
        .map(|r| DayRow {
            student_id: r.get(0),
            date: r.get(1),
            status: r.get(2),
            attendance_type: r.get(3),
            minutes: r.get(4),
            category: r.get(5),
        })
        .collect())
}

/// The school's class WEEK determinations of the weeks holding a day of the span.
pub async fn weeks(client: &Client, p: &Params) -> Result<Vec<WeekRow>, Error> {
    let first = crate::monday(p.from);
    let rows = client
        .query(
            "SELECT student_id, date, section_id, code, contacts FROM determinations
             WHERE school_id = $1 AND scope = 'WEEK' AND section_id IS NOT NULL AND date BETWEEN $2 AND $3
             ORDER BY section_id, date, student_id",
            &[&p.school, &first, &p.to],
        )
        .await
        .map_err(db("reading WEEK determinations"))?;
    Ok(rows
        .iter()
        .map(|r| WeekRow { student_id: r.get(0), week: r.get(1), section_id: r.get(2), code: r.get(3), contacts: r.get(4) })
        .collect())
}

/// The school's outreach triggers whose window ends in the weeks holding a
/// day of the span (a report picks the kinds and dates it shows).
pub async fn triggers(client: &Client, p: &Params) -> Result<Vec<TriggerRow>, Error> {
    let first = crate::monday(p.from);
    let last = crate::monday(p.to) + Duration::days(6);
    let rows = client
        .query(
            "SELECT student_id, kind, section_id, window_start, window_end, reason FROM outreach_triggers
             WHERE school_id = $1 AND window_end BETWEEN $2 AND $3 ORDER BY window_end, student_id, kind",
            &[&p.school, &first, &last],
        )
        .await
        .map_err(db("reading outreach triggers"))?;
    Ok(rows
        .iter()
        .map(|r| TriggerRow {
            student_id: r.get(0),
            kind: r.get(1),
            section_id: r.get(2),
            window_start: r.get(3),
            window_end: r.get(4),
            reason: r.get(5),
        })
        .collect())
}

/// The school's students and their priority groups.
pub async fn students(client: &Client, school: &str) -> Result<Vec<StudentRow>, Error> {
    let rows = client
        .query("SELECT student_id, groups FROM students WHERE school_id = $1 ORDER BY student_id", &[&school])
        .await
        .map_err(db("reading students"))?;
    Ok(rows.iter().map(|r| StudentRow { student_id: r.get(0), groups: r.get(1) }).collect())
}

/// The rows `kind` reads, fetched month by month; `progress` is told what
/// each step fetched (a large district's report takes a while).
pub async fn fetch(client: &Client, kind: Kind, p: &Params, mut progress: impl FnMut(&str)) -> Result<Data, Error> {
    check_school(client, &p.school).await?;
    let mut data = Data::default();
    let school = &p.school;
    if kind != Kind::NmpedWeekly {
        for month in p.months() {
            let from = month.max(p.from);
            let to = (crate::next_month(month) - Duration::days(1)).min(p.to);
            let days = days(client, school, from, to).await?;
            progress(&format!("{school}: {}: {} DAY determinations", month.format("%Y-%m"), days.len()));
            data.days.extend(days);
        }
    }
    if kind == Kind::NmpedWeekly {
        data.weeks = weeks(client, p).await?;
        progress(&format!("{school}: {} class WEEK determinations", data.weeks.len()));
    }
    if kind != Kind::ChronicAbsence {
        data.triggers = triggers(client, p).await?;
        progress(&format!("{school}: {} outreach triggers", data.triggers.len()));
    }
    if kind == Kind::DataTeamWeekly {
        data.students = students(client, school).await?;
        progress(&format!("{school}: {} students on the roster", data.students.len()));
    }
    Ok(data)
}
