//! rollcall-report owns the attendance reports the policies ask for
//! (docs/reports.md): what each one counts, read from the tables that
//! `rollcall sink postgres` keeps, and how it is written — as RFC 4180 CSV
//! and as one self-contained HTML page with inline SVG charts.
//!
//! Each report kind is a pure function from rows ([`rows`]) to a
//! [`Report`]: titled sections of tables and charts, and one flat table for
//! the CSV. [`query`] fetches the rows; [`csv`] and [`html`] write a report.
//! The HTML building blocks (page shell, table, charts) are public and
//! independent of any report, for other pages to use.

pub mod chronic;
pub mod csv;
pub mod data_team;
pub mod html;
pub mod mississippi;
pub mod nmped;
pub mod query;
pub mod rows;

use chrono::{Datelike, Duration, NaiveDate};

/// What can go wrong making a report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown report kind `{0}` (kinds: {kinds})", kinds = Kind::NAMES.join(", "))]
    UnknownKind(String),
    #[error("no school `{0}` in the database (neither in schools nor in determinations)")]
    UnknownSchool(String),
    #[error("--from {from} is after --to {to}")]
    BadRange { from: NaiveDate, to: NaiveDate },
    #[error("{what}: {source}")]
    Database {
        what: String,
        #[source]
        source: tokio_postgres::Error,
    },
}

/// The report kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    MississippiMonthly,
    NmpedWeekly,
    DataTeamWeekly,
    ChronicAbsence,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::MississippiMonthly, Kind::NmpedWeekly, Kind::DataTeamWeekly, Kind::ChronicAbsence];
    pub const NAMES: [&'static str; 4] = ["mississippi-monthly", "nmped-weekly", "data-team-weekly", "chronic-absence"];

    pub fn name(self) -> &'static str {
        Kind::NAMES[Kind::ALL.iter().position(|k| *k == self).unwrap_or(0)]
    }
}

impl std::str::FromStr for Kind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Kind, Error> {
        Kind::NAMES.iter().position(|n| *n == s).map(|i| Kind::ALL[i]).ok_or_else(|| Error::UnknownKind(s.to_string()))
    }
}

/// What a report is asked for: one school, a span of dates (both included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    pub school: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Params {
    pub fn new(school: &str, from: NaiveDate, to: NaiveDate) -> Result<Params, Error> {
        if from > to {
            return Err(Error::BadRange { from, to });
        }
        Ok(Params { school: school.to_string(), from, to })
    }

    /// The Mondays of the weeks that hold a day of the span.
    pub fn weeks(&self) -> Vec<NaiveDate> {
        let mut w = monday(self.from);
        let mut out = Vec::new();
        while w <= self.to {
            out.push(w);
            w += Duration::days(7);
        }
        out
    }

    /// The first days of the months that hold a day of the span.
    pub fn months(&self) -> Vec<NaiveDate> {
        let mut m = first_of_month(self.from);
        let mut out = Vec::new();
        while m <= self.to {
            out.push(m);
            m = next_month(m);
        }
        out
    }

    pub fn contains(&self, d: NaiveDate) -> bool {
        self.from <= d && d <= self.to
    }
}

/// The Monday of `d`'s week (weeks run Monday to Sunday).
pub fn monday(d: NaiveDate) -> NaiveDate {
    d - Duration::days(d.weekday().num_days_from_monday() as i64)
}

pub fn first_of_month(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap_or(d)
}

pub fn next_month(d: NaiveDate) -> NaiveDate {
    let (y, m) = if d.month() == 12 { (d.year() + 1, 1) } else { (d.year(), d.month() + 1) };
    NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(d + Duration::days(31))
}

/// One cell of a table.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Int(i64),
    /// A percentage, written with one decimal.
    Percent(f64),
}

impl Cell {
    pub fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into())
    }

    pub fn is_number(&self) -> bool {
        !matches!(self, Cell::Text(_))
    }
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cell::Text(s) => f.write_str(s),
            Cell::Int(n) => write!(f, "{n}"),
            Cell::Percent(p) => write!(f, "{p:.1}"),
        }
    }
}

/// A row: its stable key (the page's `data-row`) and its cells.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub key: String,
    pub cells: Vec<Cell>,
}

/// A table: an id (the page's `data-table`), a caption, column names (the
/// page's `data-col`) and rows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub id: String,
    pub caption: String,
    pub columns: Vec<String>,
    pub rows: Vec<Row>,
}

impl Table {
    pub fn new(id: &str, caption: &str, columns: &[&str]) -> Table {
        Table {
            id: id.to_string(),
            caption: caption.to_string(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, key: impl Into<String>, cells: Vec<Cell>) {
        self.rows.push(Row { key: key.into(), cells });
    }
}

/// How a chart draws its series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartKind {
    /// Bars side by side per label.
    Bar,
    /// Series stacked into one bar per label.
    StackedBar,
    /// One line per series across the labels.
    Line,
}

/// One named series of values, one per label.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub values: Vec<f64>,
}

/// A chart: labels along the x axis, series of values over them.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub title: String,
    pub kind: ChartKind,
    pub labels: Vec<String>,
    pub series: Vec<Series>,
    /// The y axis's unit, e.g. "students" or "%".
    pub unit: String,
    /// A fixed top of the y axis (100 for percentages); else the data's.
    pub y_max: Option<f64>,
}

/// A titled part of a report.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Section {
    pub title: String,
    pub note: Option<String>,
    pub charts: Vec<Chart>,
    pub tables: Vec<Table>,
}

/// A report: what the page shows (sections) and what the CSV holds (one flat table).
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub kind: Kind,
    pub title: String,
    pub parameters: Vec<(String, String)>,
    pub sections: Vec<Section>,
    /// Every detail row of the sections' tables in one table with the same
    /// row keys: the CSV form (docs/reports.md).
    pub flat: Table,
}

impl Report {
    fn new(kind: Kind, title: &str, p: &Params) -> Report {
        Report {
            kind,
            title: title.to_string(),
            parameters: vec![
                ("school".into(), p.school.clone()),
                ("from".into(), p.from.to_string()),
                ("to".into(), p.to.to_string()),
            ],
            sections: Vec::new(),
            flat: Table::default(),
        }
    }
}

/// Builds the report of `kind` from its rows.
pub fn build(kind: Kind, p: &Params, data: &rows::Data) -> Report {
    match kind {
        Kind::MississippiMonthly => mississippi::build(p, data),
        Kind::NmpedWeekly => nmped::build(p, data),
        Kind::DataTeamWeekly => data_team::build(p, data),
        Kind::ChronicAbsence => chronic::build(p, data),
    }
}

/// "yes" or "" for a flag column.
pub(crate) fn yes(b: bool) -> Cell {
    Cell::text(if b { "yes" } else { "" })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("a date")
    }

    #[test]
    fn tiers_at_their_boundaries() {
        use chronic::tier;
        assert_eq!(tier(0, 0), None);
        assert_eq!(tier(4, 100), Some(0));
        assert_eq!(tier(5, 100), Some(1), "exactly 5 % is at risk");
        assert_eq!(tier(9, 100), Some(1));
        assert_eq!(tier(1, 10), Some(2), "exactly 10 % is moderate");
        assert_eq!(tier(19, 100), Some(2));
        assert_eq!(tier(1, 5), Some(3), "exactly 20 % is severe");
    }

    #[test]
    fn a_week_rolls_up_to_its_most_frequent_category_ties_to_the_less_present() {
        use data_team::week_category;
        assert_eq!(week_category(&[5, 0, 0, 0]), "ALL_DAY");
        assert_eq!(week_category(&[3, 2, 0, 0]), "ALL_DAY");
        assert_eq!(week_category(&[2, 2, 1, 0]), "MORNING_ONLY");
        assert_eq!(week_category(&[1, 1, 1, 1]), "ABSENT");
        assert_eq!(week_category(&[0, 0, 0, 0]), "ABSENT");
    }

    #[test]
    fn spans_give_their_weeks_and_months() {
        let p = Params::new("s", d("2020-10-28"), d("2020-11-03")).expect("in order");
        assert_eq!(p.weeks(), vec![d("2020-10-26"), d("2020-11-02")]);
        assert_eq!(p.months(), vec![d("2020-10-01"), d("2020-11-01")]);
        assert!(matches!(Params::new("s", d("2020-10-02"), d("2020-10-01")), Err(Error::BadRange { .. })));
        assert!("nope".parse::<Kind>().is_err());
        for k in Kind::ALL {
            assert_eq!(k.name().parse::<Kind>().ok(), Some(k));
        }
    }

    #[test]
    fn pages_escape_and_key_their_cells() {
        let mut t = Table::new("t<1>", "c", &["a&b"]);
        t.push("k\"1", vec![Cell::text("<script>")]);
        let h = html::table(&t);
        assert!(h.contains("data-table=\"t&lt;1&gt;\""));
        assert!(h.contains("data-row=\"k&quot;1\" data-col=\"a&amp;b\">&lt;script&gt;</td>"), "{h}");
        let page = html::page("x", &h);
        assert!(page.starts_with("<!DOCTYPE html>") && !page.contains("<script") && !page.contains("src="));
    }

    #[test]
    fn mississippi_counts_types_and_totals() {
        use rows::{Data, DayRow, TriggerRow};
        let day = |s: &str, date: &str, status: &str, t: Option<&str>| DayRow {
            student_id: s.into(),
            date: d(date),
            status: status.into(),
            attendance_type: t.map(String::from),
            minutes: Some(300),
            category: None,
        };
        let data = Data {
            days: vec![
                day("a", "2020-10-05", "PRESENT", Some("IN_PERSON")),
                day("a", "2020-10-06", "PRESENT_REMOTE", None),
                day("b", "2020-10-05", "ABSENT_UNEXCUSED", None),
                day("b", "2020-10-06", "EXEMPT", None),
            ],
            triggers: vec![TriggerRow {
                student_id: "b".into(),
                kind: "TRUANCY_REFERRAL".into(),
                section_id: None,
                window_start: d("2020-10-05"),
                window_end: d("2020-10-06"),
                reason: "r".into(),
            }],
            ..Data::default()
        };
        let r = mississippi::build(&Params::new("s", d("2020-10-01"), d("2020-10-31")).expect("in order"), &data);
        let total = r.flat.rows.iter().find(|r| r.key == "2020-10|total").expect("a totals row");
        let cells: Vec<String> = total.cells.iter().map(|c| c.to_string()).collect();
        assert_eq!(cells, ["2020-10", "Total", "1", "1", "0", "1", "1200", "1"]);
        let rate = &r.sections[0].charts[0].series[0].values;
        assert_eq!(rate, &vec![50.0, 100.0], "EXEMPT is not counted in the rate");
    }
}
