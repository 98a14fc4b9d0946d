//! Why a student's determinations on a date are what they are: each
//! determination (the day, its periods, the week that holds the date), its
//! versions with what changed at each, the rule in words, the evidence in
//! detail, and for an absence what the rule looked for and what it saw.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use rollcall_model::{EvidenceDetail, SeenActivity};
use serde::Serialize;
use tokio_postgres::Client;

use crate::QueryError;

/// Everything decided for a student on a date.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub student_id: String,
    pub date: NaiveDate,
    pub school_id: String,
    /// The school's time zone, in which every local time here is given
    /// (`UTC` when the database has no calendar for the school).
    pub timezone: String,
    /// The DAY determination first, then the periods, then the week.
    pub determinations: Vec<Explained>,
}

/// One determination and its history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explained {
    pub scope: String,
    /// The date, or for a WEEK the Monday.
    pub date: NaiveDate,
    pub section_id: Option<String>,
    pub policy: String,
    /// The latest version.
    pub current: VersionView,
    /// Every version, oldest first.
    pub history: Vec<VersionView>,
    pub evidence: Vec<EvidenceDetail>,
    pub looked_for: Vec<String>,
    pub seen: Vec<SeenActivity>,
}

/// One version as a person reads it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionView {
    pub version: i32,
    pub finality: String,
    pub status: String,
    pub code: String,
    pub attendance_type: Option<String>,
    pub minutes: Option<i64>,
    pub contacts: Option<i32>,
    pub category: Option<String>,
    pub rule: String,
    pub evidence_count: usize,
    pub decided_at: DateTime<Utc>,
    /// `decided_at` in the school's time zone, `YYYY-MM-DD HH:MM`.
    pub decided_local: String,
    /// What this version changed from the one before, in words.
    pub changes: Vec<String>,
}

struct Row {
    scope: String,
    date: NaiveDate,
    section_id: Option<String>,
    policy: String,
    school_id: String,
    view: VersionView,
    evidence: Vec<EvidenceDetail>,
    looked_for: Vec<String>,
    seen: Vec<SeenActivity>,
}

const COLUMNS: &str = "scope, date, section_id, policy, school_id, version, finality, status, code, attendance_type, \
     minutes, contacts, category, rule, cardinality(evidence), decided_at, evidence_detail, looked_for, seen";

fn json<T: serde::de::DeserializeOwned>(v: serde_json::Value, what: String) -> Result<T, QueryError> {
    serde_json::from_value(v).map_err(|e| QueryError::Corrupt { what, message: e.to_string() })
}

fn row(r: &tokio_postgres::Row) -> Result<Row, QueryError> {
    let version: i32 = r.get(5);
    let what = |col: &str| format!("determination_versions.{col} of version {version}");
    Ok(Row {
        scope: r.get(0),
        date: r.get(1),
        section_id: r.get(2),
        policy: r.get(3),
        school_id: r.get(4),
        view: VersionView {
            version,
            finality: r.get(6),
            status: r.get(7),
            code: r.get(8),
            attendance_type: r.get(9),
            minutes: r.get(10),
            contacts: r.get(11),
            category: r.get(12),
            rule: r.get(13),
            evidence_count: r.get::<_, i32>(14).max(0) as usize,
            decided_at: r.get(15),
            decided_local: String::new(),
            changes: Vec::new(),
        },
        evidence: json(r.get(16), what("evidence_detail"))?,
        looked_for: r.get(17),
        seen: json(r.get(18), what("seen"))?,
    })
}

/// The school's time zone from its calendar, UTC when there is none.
pub(crate) async fn school_zone(client: &Client, school: &str) -> Result<(String, Tz), QueryError> {
    let row = client
        .query_opt("SELECT timezone FROM schools WHERE school_id = $1", &[&school])
        .await
        .map_err(QueryError::db("reading the school's time zone"))?;
    let name: String = row.map(|r| r.get(0)).unwrap_or_else(|| "UTC".into());
    let tz = name
        .parse::<Tz>()
        .map_err(|e| QueryError::Corrupt { what: format!("schools.timezone of {school}"), message: e.to_string() })?;
    Ok((name, tz))
}

pub(crate) fn local(tz: &Tz, t: DateTime<Utc>) -> String {
    t.with_timezone(tz).format("%Y-%m-%d %H:%M").to_string()
}

/// What changed from `prev` to `v`, in words.
fn changes(prev: Option<&VersionView>, v: &VersionView) -> Vec<String> {
    let Some(p) = prev else { return vec![format!("first decided: {} ({})", v.code, v.status)] };
    let mut out = Vec::new();
    let mut field = |name: &str, a: String, b: String| {
        if a != b {
            out.push(format!("{name} {a} → {b}"));
        }
    };
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "none".into());
    let num = |o: Option<i64>| o.map(|n| n.to_string()).unwrap_or_else(|| "none".into());
    field("status", p.status.clone(), v.status.clone());
    field("code", p.code.clone(), v.code.clone());
    field("category", opt(&p.category), opt(&v.category));
    field("minutes", num(p.minutes), num(v.minutes));
    field("contacts", num(p.contacts.map(i64::from)), num(v.contacts.map(i64::from)));
    field("evidence events", p.evidence_count.to_string(), v.evidence_count.to_string());
    field("finality", p.finality.clone(), v.finality.clone());
    if out.is_empty() {
        out.push("no change in what an SIS stores".into());
    }
    out
}

fn monday_of(d: NaiveDate) -> NaiveDate {
    d - Duration::days(d.weekday().num_days_from_monday() as i64)
}

fn scope_order(scope: &str) -> u8 {
    match scope {
        "DAY" => 0,
        "SECTION" => 1,
        _ => 2,
    }
}

/// Every determination of `student` on `date` (with `section`, only that
/// section's: its period and its week), with their histories.
pub async fn explain(client: &Client, student: &str, date: NaiveDate, section: Option<&str>) -> Result<Explanation, QueryError> {
    let monday = monday_of(date);
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM determination_versions
                  WHERE student_id = $1
                    AND ((scope IN ('DAY', 'SECTION') AND date = $2) OR (scope = 'WEEK' AND date = $3))
                    AND ($4::text IS NULL OR section_id = $4)
                  ORDER BY scope, section_id NULLS FIRST, version"
            ),
            &[&student, &date, &monday, &section],
        )
        .await
        .map_err(QueryError::db("reading the determination's versions"))?;
    if rows.is_empty() {
        return Err(if crate::student_known(client, student).await? {
            QueryError::NoDetermination {
                student: student.into(),
                date,
                section: section.map(|s| format!(" in section {s}")).unwrap_or_default(),
            }
        } else {
            QueryError::UnknownStudent(student.into())
        });
    }
    let rows: Vec<Row> = rows.iter().map(row).collect::<Result<_, _>>()?;
    let school_id = rows[0].school_id.clone();
    let (timezone, tz) = school_zone(client, &school_id).await?;
    let mut determinations: Vec<Explained> = Vec::new();
    for mut r in rows {
        r.view.decided_local = local(&tz, r.view.decided_at);
        let same = determinations.last_mut().filter(|e| e.scope == r.scope && e.section_id == r.section_id && e.date == r.date);
        match same {
            Some(e) => {
                r.view.changes = changes(e.history.last(), &r.view);
                e.history.push(r.view.clone());
                e.current = r.view;
                e.evidence = r.evidence;
                e.looked_for = r.looked_for;
                e.seen = r.seen;
            }
            None => {
                r.view.changes = changes(None, &r.view);
                determinations.push(Explained {
                    scope: r.scope,
                    date: r.date,
                    section_id: r.section_id,
                    policy: r.policy,
                    current: r.view.clone(),
                    history: vec![r.view],
                    evidence: r.evidence,
                    looked_for: r.looked_for,
                    seen: r.seen,
                });
            }
        }
    }
    determinations.sort_by(|a, b| (scope_order(&a.scope), &a.section_id).cmp(&(scope_order(&b.scope), &b.section_id)));
    Ok(Explanation { student_id: student.into(), date, school_id, timezone, determinations })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(version: i32, status: &str, code: &str, finality: &str, evidence: usize) -> VersionView {
        VersionView {
            version,
            finality: finality.into(),
            status: status.into(),
            code: code.into(),
            attendance_type: None,
            minutes: Some(10),
            contacts: None,
            category: None,
            rule: "r".into(),
            evidence_count: evidence,
            decided_at: DateTime::UNIX_EPOCH,
            decided_local: String::new(),
            changes: Vec::new(),
        }
    }

    #[test]
    fn changes_name_each_field_that_moved() {
        let a = view(1, "ABSENT_UNEXCUSED", "A", "FINAL", 0);
        let b = view(2, "PRESENT", "P", "CORRECTION", 1);
        assert_eq!(changes(None, &a), ["first decided: A (ABSENT_UNEXCUSED)"]);
        assert_eq!(
            changes(Some(&a), &b),
            ["status ABSENT_UNEXCUSED → PRESENT", "code A → P", "evidence events 0 → 1", "finality FINAL → CORRECTION"]
        );
        assert_eq!(changes(Some(&a), &a), ["no change in what an SIS stores"]);
    }

    #[test]
    fn a_week_is_found_by_any_of_its_days() {
        let sunday = NaiveDate::from_ymd_opt(2020, 10, 11).unwrap();
        let monday = NaiveDate::from_ymd_opt(2020, 10, 5).unwrap();
        assert_eq!(monday_of(sunday), monday);
        assert_eq!(monday_of(monday), monday);
    }
}
