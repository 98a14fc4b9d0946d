//! `nmped-weekly`: New Mexico's Monday entry sheet per class
//! (docs/policies/nmped.md): per class, week and student the week's code
//! (C1, C23, C45, CNC) from the class's WEEK determination, and whether
//! the student reached the two-week low-contact threshold in that class
//! that week (a LOW_CONTACT trigger whose window ends in the week); the
//! codes' distribution per class as a chart.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Duration;

use crate::rows::Data;
use crate::{yes, Cell, Chart, ChartKind, Kind, Params, Report, Section, Series, Table};

pub const COLUMNS: [&str; 6] = ["section", "week", "student", "code", "contacts", "low_contact"];
pub const CODES: [&str; 4] = ["C1", "C23", "C45", "CNC"];

pub fn build(p: &Params, data: &Data) -> Report {
    let mut r = Report::new(Kind::NmpedWeekly, "Monday entry sheet per class (NMPED)", p);
    let weeks: BTreeSet<_> = p.weeks().into_iter().collect();
    let low: Vec<_> = data.triggers.iter().filter(|t| t.kind == "LOW_CONTACT").collect();
    let low_in = |student: &str, section: &str, week: chrono::NaiveDate| {
        low.iter().any(|t| {
            t.student_id == student
                && t.section_id.as_deref() == Some(section)
                && t.window_end >= week
                && t.window_end <= week + Duration::days(6)
        })
    };
    let mut by_section: BTreeMap<&str, Vec<&crate::rows::WeekRow>> = BTreeMap::new();
    for w in data.weeks.iter().filter(|w| weeks.contains(&w.week)) {
        by_section.entry(w.section_id.as_str()).or_default().push(w);
    }
    r.flat = Table::new("entries", "Entries", &COLUMNS);
    let mut chart = Chart {
        title: "Codes per class".into(),
        kind: ChartKind::StackedBar,
        labels: Vec::new(),
        series: CODES.iter().map(|c| Series { name: c.to_string(), values: Vec::new() }).collect(),
        unit: "student-weeks".into(),
        y_max: None,
    };
    let mut sections = Vec::new();
    for (section, mut rows) in by_section {
        rows.sort_by(|a, b| (a.week, &a.student_id).cmp(&(b.week, &b.student_id)));
        let mut t = Table::new(&format!("section-{section}"), &format!("Class {section}"), &COLUMNS);
        for w in &rows {
            let week = w.week.to_string();
            t.push(
                format!("{section}|{week}|{}", w.student_id),
                vec![
                    Cell::text(section),
                    Cell::text(&week),
                    Cell::text(&w.student_id),
                    Cell::text(&w.code),
                    w.contacts.map(|c| Cell::Int(c as i64)).unwrap_or(Cell::text("")),
                    yes(low_in(&w.student_id, section, w.week)),
                ],
            );
        }
        chart.labels.push(section.to_string());
        for (i, code) in CODES.iter().enumerate() {
            chart.series[i].values.push(rows.iter().filter(|w| w.code == *code).count() as f64);
        }
        r.flat.rows.extend(t.rows.iter().cloned());
        sections.push(Section { title: format!("Class {section}"), note: None, charts: Vec::new(), tables: vec![t] });
    }
    let mut threshold =
        Table::new("low-contact", "At the two-week low-contact threshold", &["section", "student", "window", "reason"]);
    for t in low.iter().filter(|t| weeks.contains(&crate::monday(t.window_end))) {
        let section = t.section_id.clone().unwrap_or_default();
        threshold.push(
            format!("{section}|{}|{}", t.student_id, t.window_start),
            vec![
                Cell::text(&section),
                Cell::text(&t.student_id),
                Cell::text(format!("{} to {}", t.window_start, t.window_end)),
                Cell::text(&t.reason),
            ],
        );
    }
    r.sections.push(Section {
        title: "Codes per class".into(),
        note: Some(
            "C1: one contact, C23: two or three, C45: four or more, CNC: none; from each class's WEEK determinations.".into(),
        ),
        charts: vec![chart],
        tables: Vec::new(),
    });
    r.sections.push(Section {
        title: format!(
            "Low contact: {} students, {} class windows",
            threshold.rows.iter().map(|r| r.cells[1].to_string()).collect::<BTreeSet<_>>().len(),
            threshold.rows.len()
        ),
        note: Some("LOW_CONTACT triggers: two consecutive weeks of five contacts or fewer in a class.".into()),
        charts: Vec::new(),
        tables: vec![threshold],
    });
    r.sections.extend(sections);
    r
}
