//! The plain-text form of an explanation, as `rollcall explain` prints it:
//! what a principal reads out to a family on the phone.

use std::fmt::Write;

use crate::explain::{Explained, Explanation};

/// The explanation as text, one block per determination.
pub fn render(e: &Explanation) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Student {} on {} — school {} (times in {})",
        e.student_id,
        e.date.format("%a %Y-%m-%d"),
        e.school_id,
        e.timezone
    );
    for d in &e.determinations {
        out.push('\n');
        determination(&mut out, d);
    }
    out
}

fn what(d: &Explained) -> String {
    match (d.scope.as_str(), &d.section_id) {
        ("WEEK", Some(s)) => format!("WEEK of {} in {s}", d.date),
        ("WEEK", None) => format!("WEEK of {}", d.date),
        (scope, Some(s)) => format!("{scope} {s}"),
        (scope, None) => scope.to_string(),
    }
}

fn determination(out: &mut String, d: &Explained) {
    let c = &d.current;
    let mut facts = vec![format!("code {}", c.code)];
    if let Some(t) = &c.attendance_type {
        facts.push(t.to_lowercase().replace('_', " "));
    }
    if let Some(m) = c.minutes {
        facts.push(format!("{m} minutes"));
    }
    if let Some(n) = c.contacts {
        facts.push(format!("{n} contact day(s)"));
    }
    let _ = writeln!(
        out,
        "{}: {} ({}), {} version {} decided {}",
        what(d),
        c.status,
        facts.join(", "),
        c.finality.to_lowercase(),
        c.version,
        c.decided_local
    );
    let _ = writeln!(out, "  Rule ({}): {}", d.policy, c.rule);
    if !d.evidence.is_empty() {
        let _ = writeln!(out, "  Evidence:");
        for e in &d.evidence {
            let mut cols = vec![e.kind.clone()];
            cols.extend(e.local_time.clone());
            cols.extend(e.source.as_ref().map(|s| format!("from {s}")));
            cols.extend(e.section_id.as_ref().map(|s| format!("section {s}")));
            cols.extend(e.staff_id.as_ref().map(|s| format!("teacher {s}")));
            cols.extend(e.detail.clone());
            let _ = writeln!(out, "    - {} ({})", cols.join(", "), e.id);
        }
    }
    if !d.looked_for.is_empty() {
        let _ = writeln!(out, "  Looked for and did not find:");
        for l in &d.looked_for {
            let _ = writeln!(out, "    - {l}");
        }
    }
    if !d.seen.is_empty() {
        let _ = writeln!(out, "  Seen, and not counted:");
        for s in &d.seen {
            let section = s.section_id.as_ref().map(|s| format!(" in {s}")).unwrap_or_default();
            let _ = writeln!(out, "    - {} × {}{section}, first at {}: {}", s.count, s.kind, s.first_local_time, s.why_not);
        }
    } else if !d.looked_for.is_empty() {
        let _ = writeln!(out, "  Seen: no activity in the window.");
    }
    if d.history.len() > 1 {
        let _ = writeln!(out, "  History:");
        for v in &d.history {
            let _ = writeln!(
                out,
                "    v{} {} {} {}: {}",
                v.version,
                v.finality.to_lowercase(),
                v.decided_local,
                v.code,
                v.changes.join("; ")
            );
        }
    }
}
