//! A school's day as its attendance office reads it: every student's DAY
//! code, and the outreach raised that day; and the schools there are.

use chrono::NaiveDate;
use serde::Serialize;
use tokio_postgres::Client;

use crate::QueryError;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SchoolDay {
    pub school_id: String,
    pub date: NaiveDate,
    pub timezone: String,
    pub students: Vec<StudentDay>,
    pub outreach: Vec<Outreach>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StudentDay {
    pub student_id: String,
    pub status: String,
    pub code: String,
    pub attendance_type: Option<String>,
    pub minutes: Option<i64>,
    pub category: Option<String>,
    pub finality: String,
    pub rule: String,
}

/// An outreach trigger raised on the day (in the school's time zone).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outreach {
    pub student_id: String,
    pub kind: String,
    pub recipient_role: String,
    pub staff_id: Option<String>,
    pub reason: String,
}

/// A school the database knows, with the last date it has a determination for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct School {
    pub school_id: String,
    pub policy: String,
    pub timezone: String,
    pub last_date: Option<NaiveDate>,
}

/// Every school: from the calendars, and any school only determinations name.
pub async fn schools(client: &Client) -> Result<Vec<School>, QueryError> {
    let rows = client
        .query(
            "WITH ids AS (SELECT school_id FROM schools UNION SELECT DISTINCT school_id FROM determinations)
             SELECT ids.school_id, coalesce(s.policy, ''), coalesce(s.timezone, 'UTC'),
                    (SELECT max(date) FROM determinations d WHERE d.school_id = ids.school_id AND d.scope = 'DAY')
               FROM ids LEFT JOIN schools s USING (school_id) ORDER BY ids.school_id",
            &[],
        )
        .await
        .map_err(QueryError::db("listing the schools"))?;
    Ok(rows.iter().map(|r| School { school_id: r.get(0), policy: r.get(1), timezone: r.get(2), last_date: r.get(3) }).collect())
}

/// The school's DAY determinations on `date`, absences first, and the
/// outreach raised that day.
pub async fn school_day(client: &Client, school: &str, date: NaiveDate) -> Result<SchoolDay, QueryError> {
    let known = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM schools WHERE school_id = $1)
                 OR EXISTS (SELECT 1 FROM determinations WHERE school_id = $1)",
            &[&school],
        )
        .await
        .map_err(QueryError::db("looking the school up"))?;
    if !known.get::<_, bool>(0) {
        return Err(QueryError::UnknownSchool(school.into()));
    }
    let (timezone, _) = crate::explain::school_zone(client, school).await?;
    let rows = client
        .query(
            "SELECT student_id, status, code, attendance_type, minutes, category, finality, rule
               FROM determinations WHERE school_id = $1 AND date = $2 AND scope = 'DAY'
              ORDER BY CASE WHEN status LIKE 'ABSENT%' THEN 0 ELSE 1 END, student_id",
            &[&school, &date],
        )
        .await
        .map_err(QueryError::db("reading the school's day"))?;
    let students = rows
        .iter()
        .map(|r| StudentDay {
            student_id: r.get(0),
            status: r.get(1),
            code: r.get(2),
            attendance_type: r.get(3),
            minutes: r.get(4),
            category: r.get(5),
            finality: r.get(6),
            rule: r.get(7),
        })
        .collect();
    let rows = client
        .query(
            "SELECT student_id, kind, recipient_role, staff_id, reason FROM outreach_triggers
              WHERE school_id = $1 AND (created_at AT TIME ZONE $3)::date = $2
              ORDER BY kind, student_id",
            &[&school, &date, &timezone],
        )
        .await
        .map_err(QueryError::db("reading the outreach raised on the day"))?;
    let outreach = rows
        .iter()
        .map(|r| Outreach {
            student_id: r.get(0),
            kind: r.get(1),
            recipient_role: r.get(2),
            staff_id: r.get(3),
            reason: r.get(4),
        })
        .collect();
    Ok(SchoolDay { school_id: school.into(), date, timezone, students, outreach })
}
