//! `data-team-weekly`: Instruction Partners' weekly data-team review
//! (docs/policies/instruction-partners.md, rule 6): per priority group
//! (the roster's groups, and all students), week and student, how many
//! days fell in each DAY category, the week's category, and whether a
//! SOCIAL_WORKER trigger is due that week; a chart per group.
//!
//! A week's days roll up into one row per student: the week's category is
//! the category held on the most days; on a tie, the less present one wins
//! (ABSENT, then MORNING_ONLY, then PARTIAL, then ALL_DAY), so that a
//! student is not reported better than the days show.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;

use crate::rows::Data;
use crate::{monday, yes, Cell, Chart, ChartKind, Kind, Params, Report, Section, Series, Table};

pub const COLUMNS: [&str; 9] =
    ["group", "week", "student", "all_day", "morning_only", "partial", "absent", "week_category", "social_worker"];
/// The categories, most present first.
pub const CATEGORIES: [&str; 4] = ["ALL_DAY", "MORNING_ONLY", "PARTIAL", "ABSENT"];
/// The name of the group of every student.
pub const ALL_STUDENTS: &str = "all students";

/// The week's category from the day counts, in [`CATEGORIES`] order.
pub fn week_category(counts: &[i64; 4]) -> &'static str {
    // Ties go to the less present category: scan from ABSENT back.
    let mut best = 3;
    for i in (0..4).rev() {
        if counts[i] > counts[best] {
            best = i;
        }
    }
    CATEGORIES[best]
}

pub fn build(p: &Params, data: &Data) -> Report {
    let mut r = Report::new(Kind::DataTeamWeekly, "Weekly data-team review (Instruction Partners)", p);
    let mut counts: BTreeMap<(&str, NaiveDate), [i64; 4]> = BTreeMap::new();
    for d in data.days.iter().filter(|d| p.contains(d.date)) {
        let Some(i) = d.category.as_deref().and_then(|c| CATEGORIES.iter().position(|x| *x == c)) else { continue };
        counts.entry((d.student_id.as_str(), monday(d.date))).or_insert([0; 4])[i] += 1;
    }
    let social: BTreeSet<(&str, NaiveDate)> = data
        .triggers
        .iter()
        .filter(|t| t.kind == "SOCIAL_WORKER" && p.weeks().contains(&monday(t.window_end)))
        .map(|t| (t.student_id.as_str(), monday(t.window_end)))
        .collect();
    let mut groups: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for s in &data.students {
        for g in &s.groups {
            groups.entry(g.as_str()).or_default().insert(s.student_id.as_str());
        }
    }
    let everyone: BTreeSet<&str> = counts.keys().map(|(s, _)| *s).collect();
    let mut all: Vec<(&str, BTreeSet<&str>)> = vec![(ALL_STUDENTS, everyone)];
    all.extend(groups);
    r.flat = Table::new("students", "Students per group and week", &COLUMNS);
    let weeks = p.weeks();
    for (group, members) in all {
        let mut t = Table::new(&format!("group-{group}"), &format!("Group {group}"), &COLUMNS);
        let mut per_week = vec![[0f64; 4]; weeks.len()];
        for (wi, week) in weeks.iter().enumerate() {
            for student in &members {
                let Some(c) = counts.get(&(*student, *week)) else { continue };
                let cat = week_category(c);
                per_week[wi][CATEGORIES.iter().position(|x| *x == cat).unwrap_or(0)] += 1.0;
                t.push(
                    format!("{group}|{week}|{student}"),
                    vec![
                        Cell::text(group),
                        Cell::text(week.to_string()),
                        Cell::text(*student),
                        Cell::Int(c[0]),
                        Cell::Int(c[1]),
                        Cell::Int(c[2]),
                        Cell::Int(c[3]),
                        Cell::text(cat),
                        yes(social.contains(&(*student, *week))),
                    ],
                );
            }
        }
        let chart = Chart {
            title: format!("{group}: students by the week's category"),
            kind: ChartKind::StackedBar,
            labels: weeks.iter().map(|w| format!("week of {}", w.format("%m-%d"))).collect(),
            series: CATEGORIES
                .iter()
                .enumerate()
                .map(|(i, c)| Series { name: c.to_string(), values: per_week.iter().map(|w| w[i]).collect() })
                .collect(),
            unit: "students".into(),
            y_max: None,
        };
        let due = t.rows.iter().filter(|row| row.cells[8] == Cell::text("yes")).count();
        r.flat.rows.extend(t.rows.iter().cloned());
        r.sections.push(Section {
            title: format!("{group}: {} students, {due} due for social-worker outreach", members.len()),
            note: None,
            charts: vec![chart],
            tables: vec![t],
        });
    }
    r
}
