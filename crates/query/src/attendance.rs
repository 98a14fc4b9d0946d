//! A student's attendance over a range of dates: the latest version of each
//! determination, as an SIS or a student's month page reads it.

use chrono::NaiveDate;
use serde::Serialize;
use tokio_postgres::Client;

use crate::QueryError;

/// One determination's latest version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttendanceDay {
    pub date: NaiveDate,
    pub scope: String,
    pub section_id: Option<String>,
    pub policy: String,
    pub status: String,
    pub code: String,
    pub attendance_type: Option<String>,
    pub minutes: Option<i64>,
    pub contacts: Option<i32>,
    pub category: Option<String>,
    pub rule: String,
    pub version: i32,
    pub finality: String,
}

/// The student's determinations dated `from..=to` (a WEEK is dated by its
/// Monday), in date order, the DAY before its periods.
pub async fn attendance(
    client: &Client,
    student: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<AttendanceDay>, QueryError> {
    let rows = client
        .query(
            "SELECT date, scope, section_id, policy, status, code, attendance_type, minutes, contacts, category, rule,
                    version, finality
               FROM determinations
              WHERE student_id = $1 AND date BETWEEN $2 AND $3
              ORDER BY date, CASE scope WHEN 'DAY' THEN 0 WHEN 'SECTION' THEN 1 ELSE 2 END, section_key",
            &[&student, &from, &to],
        )
        .await
        .map_err(QueryError::db("reading the student's determinations"))?;
    if rows.is_empty() && !crate::student_known(client, student).await? {
        return Err(QueryError::UnknownStudent(student.into()));
    }
    Ok(rows
        .iter()
        .map(|r| AttendanceDay {
            date: r.get(0),
            scope: r.get(1),
            section_id: r.get(2),
            policy: r.get(3),
            status: r.get(4),
            code: r.get(5),
            attendance_type: r.get(6),
            minutes: r.get(7),
            contacts: r.get(8),
            category: r.get(9),
            rule: r.get(10),
            version: r.get(11),
            finality: r.get(12),
        })
        .collect())
}
