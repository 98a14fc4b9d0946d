//! `mississippi-monthly`: the monthly per-school report to the state
//! (docs/policies/mississippi.md): per month and student, present days by
//! attendance type, excused and unexcused absences, instructional minutes
//! reported and truancy referrals raised; a totals row per month; the daily
//! attendance rate as a chart.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::rows::Data;
use crate::{first_of_month, next_month, Cell, Chart, ChartKind, Kind, Params, Report, Section, Series, Table};

pub const COLUMNS: [&str; 8] = [
    "month",
    "student",
    "present_in_person",
    "present_virtual",
    "absent_excused",
    "absent_unexcused",
    "instructional_minutes",
    "truancy_referrals",
];

/// A present day's attendance type: the determination's, else by status
/// (PRESENT_REMOTE is virtual, PRESENT in person).
pub fn is_virtual(attendance_type: Option<&str>, status: &str) -> bool {
    match attendance_type {
        Some(t) => t == "VIRTUAL",
        None => status == "PRESENT_REMOTE",
    }
}

#[derive(Default, Clone, Copy)]
struct Counts {
    in_person: i64,
    virtual_: i64,
    excused: i64,
    unexcused: i64,
    minutes: i64,
    referrals: i64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.in_person += o.in_person;
        self.virtual_ += o.virtual_;
        self.excused += o.excused;
        self.unexcused += o.unexcused;
        self.minutes += o.minutes;
        self.referrals += o.referrals;
    }

    fn cells(&self, month: &str, student: &str) -> Vec<Cell> {
        vec![
            Cell::text(month),
            Cell::text(student),
            Cell::Int(self.in_person),
            Cell::Int(self.virtual_),
            Cell::Int(self.excused),
            Cell::Int(self.unexcused),
            Cell::Int(self.minutes),
            Cell::Int(self.referrals),
        ]
    }
}

fn month_label(d: NaiveDate) -> String {
    d.format("%Y-%m").to_string()
}

pub fn build(p: &Params, data: &Data) -> Report {
    let mut r = Report::new(Kind::MississippiMonthly, "Monthly attendance report (Mississippi)", p);
    let mut per: BTreeMap<(NaiveDate, &str), Counts> = BTreeMap::new();
    // Per date: (present, counted) for the daily rate.
    let mut daily: BTreeMap<NaiveDate, (i64, i64)> = BTreeMap::new();
    for d in data.days.iter().filter(|d| p.contains(d.date)) {
        let c = per.entry((first_of_month(d.date), d.student_id.as_str())).or_default();
        match d.status.as_str() {
            "PRESENT" | "PRESENT_REMOTE" if is_virtual(d.attendance_type.as_deref(), &d.status) => c.virtual_ += 1,
            "PRESENT" | "PRESENT_REMOTE" => c.in_person += 1,
            "ABSENT_EXCUSED" => c.excused += 1,
            "ABSENT_UNEXCUSED" => c.unexcused += 1,
            _ => {}
        }
        c.minutes += d.minutes.unwrap_or(0);
        if d.counts() {
            let e = daily.entry(d.date).or_default();
            e.1 += 1;
            if d.is_present() {
                e.0 += 1;
            }
        }
    }
    for t in data.triggers.iter().filter(|t| t.kind == "TRUANCY_REFERRAL" && p.contains(t.window_end)) {
        per.entry((first_of_month(t.window_end), t.student_id.as_str())).or_default().referrals += 1;
    }
    r.flat = Table::new("students", "Students per month", &COLUMNS);
    let mut month = first_of_month(p.from);
    while month <= p.to {
        let label = month_label(month);
        let mut t = Table::new(&format!("month-{label}"), &format!("Students, {label}"), &COLUMNS);
        let mut total = Counts::default();
        for ((_, student), c) in per.range((month, "")..(next_month(month), "")) {
            t.push(format!("{label}|{student}"), c.cells(&label, student));
            total.add(c);
        }
        t.push(format!("{label}|total"), total.cells(&label, "Total"));
        r.flat.rows.extend(t.rows.iter().cloned());
        r.sections.push(Section {
            title: format!("{label}: {} students", t.rows.len() - 1),
            note: Some("Present days by attendance type, absences, the DAY determinations' minutes, and the truancy referrals whose window ends in the month.".into()),
            charts: Vec::new(),
            tables: vec![t],
        });
        month = next_month(month);
    }
    let mut rate = Table::new("daily-rate", "Daily attendance rate", &["date", "present", "counted", "rate_percent"]);
    for (date, (present, counted)) in &daily {
        let pct = if *counted > 0 { 100.0 * *present as f64 / *counted as f64 } else { 0.0 };
        rate.push(
            date.to_string(),
            vec![Cell::text(date.to_string()), Cell::Int(*present), Cell::Int(*counted), Cell::Percent(pct)],
        );
    }
    let chart = Chart {
        title: "Daily attendance rate".into(),
        kind: ChartKind::Line,
        labels: daily.keys().map(|d| d.format("%m-%d").to_string()).collect(),
        series: vec![Series {
            name: "present %".into(),
            values: daily.values().map(|(p, c)| if *c > 0 { 100.0 * *p as f64 / *c as f64 } else { 0.0 }).collect(),
        }],
        unit: "%".into(),
        y_max: Some(100.0),
    };
    r.sections.insert(
        0,
        Section {
            title: "Daily attendance rate".into(),
            note: Some("Present or present remote among the day's DAY determinations other than EXEMPT.".into()),
            charts: vec![chart],
            tables: vec![rate],
        },
    );
    r
}
