//! What each student does on each day, before any event is written.
//!
//! A day plan is a pure function of (seed, student, date): the absence
//! reports are generated from it up front, the day's events from it during
//! the day's round, and the next evening's late homework from it again a
//! round later, all without carrying state between them.

use chrono::{Datelike, NaiveDate};
use rollcall_model::{AbsenceReason, Mode, Reporter};

use crate::district::{Behaviour, Profile, CMS_OAK};
use crate::rng::{Rng, Stream};

/// How much of the school day the student shows up for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Presence {
    /// Every block.
    Full,
    /// The blocks that start before noon, then gone.
    Morning,
    /// Some blocks, at least one missed.
    Partial,
    /// No live class; a recording or some work later in the day.
    Sparse,
    /// Nothing at all.
    Off,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Report {
    pub reason: AbsenceReason,
    pub reporter: Reporter,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct DayPlan {
    pub presence: Presence,
    pub report: Option<Report>,
    /// The day's work is handed in the next evening instead of the same day.
    pub late_work: bool,
}

impl DayPlan {
    const OFF: DayPlan = DayPlan { presence: Presence::Off, report: None, late_work: false };
}

/// Reasons for ordinary reported absences, weighted as a school office sees them.
const EXCUSES: [(AbsenceReason, u32); 7] = [
    (AbsenceReason::Illness, 60),
    (AbsenceReason::Medical, 18),
    (AbsenceReason::Quarantine, 8),
    (AbsenceReason::Covid, 5),
    (AbsenceReason::Religious, 4),
    (AbsenceReason::Bereavement, 3),
    (AbsenceReason::Other, 2),
];

/// The plan for an instructional day. `day` counts calendar days from the
/// start of the span (it drives the disengaging students' decline).
pub(crate) fn day_plan(seed: u64, student: usize, profile: &Profile, date: NaiveDate, day: u32, mode: Mode) -> DayPlan {
    let mut rng = Rng::derive(seed, Stream::DayPlan, student as u64, day as u64);
    let attend = |presence| DayPlan { presence, report: None, late_work: false };
    let behaviour = profile.behaviour;
    if behaviour == Behaviour::Absent {
        return DayPlan::OFF;
    }
    if behaviour == Behaviour::SickSometimes && in_sick_spell(seed, student, date) {
        let report = rng.chance(0.85).then(|| Report { reason: AbsenceReason::Illness, reporter: reporter(&mut rng) });
        return DayPlan { presence: Presence::Off, report, late_work: false };
    }
    // Everyone misses the odd day; most families call it in.
    if rng.chance(0.02) {
        let report = rng
            .chance(0.7)
            .then(|| Report { reason: EXCUSES[rng.weighted(&EXCUSES.map(|(_, w)| w))].0, reporter: reporter(&mut rng) });
        return DayPlan { presence: Presence::Off, report, late_work: false };
    }
    let r = rng.unit();
    match behaviour {
        Behaviour::Engaged | Behaviour::SickSometimes => attend(if r < 0.93 {
            Presence::Full
        } else if r < 0.98 {
            Presence::Partial
        } else {
            Presence::Morning
        }),
        Behaviour::MorningOnly => attend(if r < 0.75 {
            Presence::Morning
        } else if r < 0.9 {
            Presence::Full
        } else {
            Presence::Off
        }),
        Behaviour::Disengaging => {
            // Linear decline, floored: a student who is slipping away still
            // turns up now and then.
            let p = (0.95 - 0.035 * day as f64).max(0.08);
            if r >= p {
                DayPlan::OFF
            } else {
                attend(*rng.pick(&[Presence::Full, Presence::Partial, Presence::Partial, Presence::Morning]))
            }
        }
        Behaviour::Hardship => {
            let remote = !matches!(mode, Mode::InPerson);
            if remote && r < 0.5 {
                // At cms-oak the family's hardship is on record, which is
                // what lets the policy credit the catch-up work.
                let report = (profile.school == CMS_OAK).then(|| Report {
                    reason: if rng.chance(0.6) { AbsenceReason::Connectivity } else { AbsenceReason::Hardship },
                    reporter: reporter(&mut rng),
                });
                DayPlan { presence: Presence::Sparse, report, late_work: false }
            } else {
                attend(if r < 0.8 { Presence::Partial } else { Presence::Full })
            }
        }
        Behaviour::LateSubmitter => DayPlan {
            presence: if r < 0.85 { Presence::Full } else { Presence::Partial },
            report: None,
            late_work: rng.chance(0.8),
        },
        Behaviour::Absent => DayPlan::OFF,
    }
}

fn reporter(rng: &mut Rng) -> Reporter {
    if rng.chance(0.8) {
        Reporter::Guardian
    } else {
        Reporter::Staff
    }
}

/// Illness comes in spells of one to three school days, at most one spell a
/// week, starting in about one week in three.
fn in_sick_spell(seed: u64, student: usize, date: NaiveDate) -> bool {
    let week = date.num_days_from_ce().div_euclid(7) as u64;
    let mut rng = Rng::derive(seed, Stream::SickSpell, student as u64, week);
    if !rng.chance(0.35) {
        return false;
    }
    let first = rng.range(0, 4);
    let len = rng.range(1, 3);
    let wd = date.weekday().num_days_from_monday();
    first <= wd && wd < first + len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_pure() {
        let p = Profile { school: 2, behaviour: Behaviour::Hardship };
        let d = NaiveDate::from_ymd_opt(2020, 10, 6).unwrap();
        for s in 0..50 {
            let a = day_plan(9, s, &p, d, 1, Mode::SyncOnline);
            let b = day_plan(9, s, &p, d, 1, Mode::SyncOnline);
            assert_eq!(a.presence, b.presence);
            assert_eq!(a.report.map(|r| r.reason), b.report.map(|r| r.reason));
        }
    }

    #[test]
    fn disengaging_students_fade() {
        let p = Profile { school: 0, behaviour: Behaviour::Disengaging };
        let d = NaiveDate::from_ymd_opt(2020, 10, 6).unwrap();
        let present = |day| (0..2000).filter(|s| day_plan(1, *s, &p, d, day, Mode::SyncOnline).presence != Presence::Off).count();
        let (early, late) = (present(0), present(25));
        assert!(early > 1700 && late < 300, "early {early}, late {late}");
    }
}
