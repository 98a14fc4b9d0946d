//! Which facts a rule reads. A fact of a kind the rule never looks at cannot
//! change what the rule decides, so the engine need not evaluate the window
//! again for it (see `engine::memo`). Each answer follows the evaluator of
//! its rule in `eval.rs` line by line; where a rule reads a kind only in
//! some modes or scopes, the kind counts as read, since a wrong "no" would
//! change a decision and a wrong "yes" costs only an evaluation. The
//! differential tests hold the two paths equal.

use rollcall_model::{ActivityKind, Direction, Mode, Scope};
use rollcall_policy::Rule;

use super::{DayInput, Outcome, Why};

/// A set of activity kinds, one bit per kind.
pub type Kinds = u16;

pub fn bit(kind: ActivityKind) -> Kinds {
    1 << kind.index()
}

fn kinds(of: &[ActivityKind]) -> Kinds {
    of.iter().fold(0, |m, k| m | bit(*k))
}

/// The kinds of [`day_reads`], as a set.
pub fn day_kinds(rule: &Rule) -> Kinds {
    kinds(&ActivityKind::ALL.iter().copied().filter(|k| day_reads(rule, *k)).collect::<Vec<_>>())
}

/// The kinds whose next fact could still change what a day window decided,
/// given the student's mode on the date and what its rule found: fewer than
/// [`day_reads`] when the mode leaves some kinds unread (an in-person day
/// reads only check-ins and check-outs) or when the window is decided in a
/// way a later fact cannot move (its evidence is the first fact of a kind,
/// and a new fact comes after it in the record).
pub fn still_read(input: &DayInput, outcomes: &[Outcome]) -> Kinds {
    use ActivityKind::*;
    let rule = &input.policy().rule;
    let mode = input.mode();
    let present = |o: &Outcome| o.status.is_present();
    let on_site = kinds(&[CheckIn, CheckOut]);
    let live = kinds(&[LiveJoin, LiveLeave]);
    match rule {
        Rule::ByMode(p) => match outcomes {
            [o] if o.status == rollcall_model::Status::Exempt => 0,
            _ if mode == Mode::InPerson => on_site,
            // Found: the first returned work, or the first login and
            // engagement, or the first contact; the minutes stay live ones.
            [o] if present(o) => live,
            _ if mode.is_offline() => live | kinds(&[Submission, OfflineWorkReturned]),
            _ if p.lms => day_kinds(rule) & !on_site,
            _ => live | bit(TwoWayContact),
        },
        Rule::Blocks(_) => {
            if mode == Mode::InPerson {
                on_site
            } else {
                live
            }
        }
        Rule::HalfDay(_) if mode == Mode::InPerson => on_site,
        // Remote, present by live minutes in every period (or the day): only
        // live sessions move the minutes; the day derived from the periods
        // follows them. (A hardship is asked about when its report is
        // evaluated, and reports always are.)
        Rule::HalfDay(_) => {
            let by_minutes = |o: &Outcome| matches!(o.rule, Why::Minutes { on_site: false, .. });
            let derived = |o: &Outcome| matches!(o.rule, Why::Periods { .. } | Why::PeriodsOffSite { .. });
            if outcomes.iter().any(by_minutes) && outcomes.iter().all(|o| by_minutes(o) || derived(o)) {
                live
            } else {
                day_kinds(rule)
            }
        }
        Rule::WeeklyContacts(_) => match outcomes {
            [o] if mode == Mode::InPerson && !present(o) => bit(CheckIn),
            _ => 0,
        },
        Rule::DailyEngagement => match outcomes {
            [o] if present(o) => 0,
            _ => day_kinds(rule),
        },
        // Per outcome: the first live join (of the day, or of the class)
        // decides it for good; a submission does until a live join comes;
        // a day derived from the periods follows them. The window reads
        // what any of its outcomes still reads.
        Rule::AnyEvidence(_) if outcomes.is_empty() => day_kinds(rule),
        Rule::AnyEvidence(_) => outcomes.iter().fold(0, |m, o| {
            m | match (&o.rule, o.scope) {
                (Why::Periods { .. } | Why::PeriodsOffSite { .. }, _) => 0,
                (Why::Text(t), Scope::Day) if present(o) && t.starts_with("(a)") => 0,
                (Why::Text(t), Scope::Day) if present(o) && t.starts_with("(b)") => bit(LiveJoin),
                (Why::Text(t), Scope::Section) if present(o) && t.starts_with("live session of the class") => 0,
                (Why::Text(t), Scope::Section) if present(o) && t.starts_with("task for the class") => bit(LiveJoin),
                _ => day_kinds(rule),
            }
        }),
    }
}

/// Whether the rule's DAY or SECTION outcomes of a date read a fact of this
/// kind in that date's day record (facts of the date, or work assigned to it).
pub fn day_reads(rule: &Rule, kind: ActivityKind) -> bool {
    use ActivityKind::*;
    match rule {
        // (a) a live join, (b) a submission for the day, (c) two-way
        // communication: a contact, or messages both ways.
        Rule::AnyEvidence(_) => matches!(kind, LiveJoin | Submission | TwoWayContact | Message),
        // On site minutes, returned work, login and engagement, a contact,
        // and the live or on-site minutes every outcome carries.
        Rule::ByMode(_) => kind != Logout,
        // Minutes on site or live; the asynchronous course's and the
        // hardship's engagement; submissions, recordings, two-way contact.
        Rule::HalfDay(_) => !matches!(kind, Login | Logout),
        // Block attendance: on-site or live intervals, nothing else (an
        // absence reads the reports, which always count).
        Rule::Blocks(_) => matches!(kind, CheckIn | CheckOut | LiveJoin | LiveLeave),
        // In person a check-in decides the day; remote days are weekly.
        Rule::WeeklyContacts(_) => kind == CheckIn,
        Rule::DailyEngagement => kind.is_engagement_kind(),
    }
}

/// Whether the rule's WEEK outcomes read a fact of this kind and direction.
pub fn week_reads(rule: &Rule, kind: ActivityKind, direction: Option<Direction>) -> bool {
    match rule {
        Rule::WeeklyContacts(p) => p.is_indicator(kind, direction),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use rollcall_policy::{Policy, PRESET_IDS};

    use super::*;

    const KINDS: &[ActivityKind] = ActivityKind::ALL;

    /// Every preset reads the kinds its evaluator decides by; presence
    /// evidence is never skipped.
    #[test]
    fn every_rule_reads_what_decides_it() {
        for id in PRESET_IDS {
            let p = Policy::preset(id).expect("a preset");
            let read: Vec<ActivityKind> = KINDS.iter().copied().filter(|k| day_reads(&p.rule, *k)).collect();
            assert!(!read.is_empty(), "{id} reads nothing");
            match &p.rule {
                Rule::Blocks(_) => {
                    assert_eq!(
                        read,
                        [ActivityKind::LiveJoin, ActivityKind::LiveLeave, ActivityKind::CheckIn, ActivityKind::CheckOut]
                    )
                }
                Rule::WeeklyContacts(_) => {
                    assert_eq!(read, [ActivityKind::CheckIn]);
                    assert!(week_reads(&p.rule, ActivityKind::Login, None));
                    assert!(!week_reads(&p.rule, ActivityKind::Message, Some(Direction::FromStaff)));
                }
                _ => assert!(read.contains(&ActivityKind::LiveJoin) || read.contains(&ActivityKind::Submission)),
            }
            if !matches!(p.rule, Rule::WeeklyContacts(_)) {
                assert!(KINDS.iter().all(|k| !week_reads(&p.rule, *k, None)), "{id} has no weeks");
            }
        }
        assert!(!day_reads(&Rule::DailyEngagement, ActivityKind::Login));
        assert!(day_reads(&Rule::DailyEngagement, ActivityKind::ContentAccess));
    }
}
