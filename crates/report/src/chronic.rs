//! `chronic-absence`: students by Attendance Works tier (docs/reports.md):
//! satisfactory under 5 % of school days absent, at risk 5 to under 10 %,
//! moderate chronic 10 to under 20 %, severe chronic 20 % or more. School
//! days are the DAY determinations other than EXEMPT; absent days those
//! ABSENT_EXCUSED or ABSENT_UNEXCUSED. The trend counts each tier as of the
//! end of each week, cumulative from the span's first day.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate};

use crate::rows::Data;
use crate::{Cell, Chart, ChartKind, Kind, Params, Report, Section, Series, Table};

pub const TIERS: [&str; 4] = ["satisfactory", "at risk", "moderate chronic", "severe chronic"];

/// The tier of `absent` days out of `days` (None without days); compared
/// in integers so that exactly 5 % is at risk.
pub fn tier(absent: i64, days: i64) -> Option<usize> {
    if days == 0 {
        return None;
    }
    let pct100 = absent * 100;
    Some(if pct100 < 5 * days {
        0
    } else if pct100 < 10 * days {
        1
    } else if pct100 < 20 * days {
        2
    } else {
        3
    })
}

/// The ends of the weeks of the span (Sundays, the last one cut at `to`).
pub fn week_ends(p: &Params) -> Vec<NaiveDate> {
    p.weeks().into_iter().map(|w| (w + Duration::days(6)).min(p.to)).collect()
}

pub fn build(p: &Params, data: &Data) -> Report {
    let mut r = Report::new(Kind::ChronicAbsence, "Chronic absence by tier (Attendance Works)", p);
    let ends = week_ends(p);
    // Per student: (date, absent) of each counted day.
    let mut per: BTreeMap<&str, Vec<(NaiveDate, bool)>> = BTreeMap::new();
    for d in data.days.iter().filter(|d| p.contains(d.date) && d.counts()) {
        per.entry(d.student_id.as_str()).or_default().push((d.date, d.is_absent()));
    }
    let mut columns: Vec<String> = ["student", "days", "absent", "absent_percent", "tier"].map(String::from).to_vec();
    columns.extend(ends.iter().map(|e| format!("tier_{e}")));
    let cols: Vec<&str> = columns.iter().map(String::as_str).collect();
    let mut students = Table::new("students", "Students", &cols);
    let mut trend_counts = vec![[0i64; 4]; ends.len()];
    let mut final_counts = [0i64; 4];
    for (student, days) in &per {
        let n = days.len() as i64;
        let absent = days.iter().filter(|(_, a)| *a).count() as i64;
        let Some(t) = tier(absent, n) else { continue };
        final_counts[t] += 1;
        let mut cells = vec![
            Cell::text(*student),
            Cell::Int(n),
            Cell::Int(absent),
            Cell::Percent(100.0 * absent as f64 / n as f64),
            Cell::text(TIERS[t]),
        ];
        for (i, end) in ends.iter().enumerate() {
            let upto: Vec<_> = days.iter().filter(|(d, _)| d <= end).collect();
            let a = upto.iter().filter(|(_, x)| *x).count() as i64;
            match tier(a, upto.len() as i64) {
                Some(t) => {
                    trend_counts[i][t] += 1;
                    cells.push(Cell::text(TIERS[t]));
                }
                None => cells.push(Cell::text("")),
            }
        }
        students.push(*student, cells);
    }
    let mut summary = Table::new("tiers", "Students per tier", &["tier", "students"]);
    for (i, name) in TIERS.iter().enumerate() {
        summary.push(*name, vec![Cell::text(*name), Cell::Int(final_counts[i])]);
    }
    let mut trend =
        Table::new("trend", "Students per tier as of each week's end", &["week_end", TIERS[0], TIERS[1], TIERS[2], TIERS[3]]);
    for (i, end) in ends.iter().enumerate() {
        let mut cells = vec![Cell::text(end.to_string())];
        cells.extend(trend_counts[i].iter().map(|c| Cell::Int(*c)));
        trend.push(end.to_string(), cells);
    }
    let chart = Chart {
        title: "Students per tier, week by week".into(),
        kind: ChartKind::StackedBar,
        labels: ends.iter().map(|e| format!("to {}", e.format("%m-%d"))).collect(),
        series: TIERS
            .iter()
            .enumerate()
            .map(|(t, name)| Series { name: name.to_string(), values: trend_counts.iter().map(|c| c[t] as f64).collect() })
            .collect(),
        unit: "students".into(),
        y_max: None,
    };
    let tiers_chart = Chart {
        title: "Students per tier".into(),
        kind: ChartKind::Bar,
        labels: TIERS.iter().map(|t| t.to_string()).collect(),
        series: vec![Series { name: "students".into(), values: final_counts.iter().map(|c| *c as f64).collect() }],
        unit: "students".into(),
        y_max: None,
    };
    r.sections.push(Section {
        title: format!("{} students with school days", per.len()),
        note: Some(
            "Absent share of the school days (DAY determinations other than EXEMPT) from the first day of the span.".into(),
        ),
        charts: vec![tiers_chart],
        tables: vec![summary],
    });
    r.sections.push(Section { title: "Trend".into(), note: None, charts: vec![chart], tables: vec![trend] });
    r.flat = students.clone();
    r.sections.push(Section { title: "Students".into(), note: None, charts: Vec::new(), tables: vec![students] });
    r
}
