//! rollcall-sim: a deterministic generator of a realistic school district.
//!
//! It owns the synthetic world that `rollcall demo` shows and the benchmarks
//! replay: five schools (one per policy preset, each in its own time zone),
//! their calendars, a roster with grade-appropriate schedules, hybrid modes
//! and priority groups, families' absence reports, and a stream of learning
//! platform activity with the behaviours attendance policies exist to tell
//! apart (engaged, gone by noon, slipping away, in hardship, handing work in
//! late, sometimes sick, never there), delivered with the duplicates and late
//! arrivals of real connectors.
//!
//! The same [`SimConfig`] always gives the same [`World`], on every platform
//! and version: randomness comes from a SplitMix64 generator inside this
//! crate, with an independent stream per student and day.
//!
//! [`generate`] builds a whole world in memory, about 420 bytes an event
//! (the event struct and its strings). For large runs (100,000 students × 30
//! days is some 47 million events, about 20 GB that way), [`Simulation::events`]
//! streams the same events in the same order while holding about one day of
//! them (about 1.2 GB at that size).

mod activity;
mod district;
pub mod file;
/// The check of the file reader on arbitrary input, for the fuzz target and
/// the corpus test.
#[doc(hidden)]
pub mod fuzzing;
mod plan;
mod rng;
mod stream;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use rollcall_model::{AbsenceReason, AbsenceReport, ActivityEvent, DayType, SchoolCalendar, StudentRecord};
use serde::Serialize;
use serde_json::{json, Value};

use district::{local_day_base, Profile, School};
use rng::{Rng, Stream};

pub use stream::EventStream;

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Students in the district, split round-robin across the five schools.
    pub students: usize,
    /// First simulated date; a Monday, so that weeks are whole.
    pub start: NaiveDate,
    /// Calendar days covered, from `start`.
    pub days: u32,
    pub seed: u64,
    /// Share of events delivered twice (same event_id, a little later).
    pub duplicate_rate: f64,
    /// Share of events delivered two to three days late, after their day is final.
    pub late_rate: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            students: 300,
            start: NaiveDate::from_ymd_opt(2020, 10, 5).expect("valid date"),
            days: 7,
            seed: 42,
            duplicate_rate: 0.01,
            late_rate: 0.005,
        }
    }
}

/// An event and the moment it reaches the pipeline (processing time).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScheduledEvent {
    /// Serialized inline, so a scheduled event is a scenario event: the
    /// activity fields plus `arrives_at`.
    #[serde(flatten)]
    pub event: ActivityEvent,
    pub arrives_at: DateTime<Utc>,
}

/// A generated district.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct World {
    pub calendars: Vec<SchoolCalendar>,
    pub roster: Vec<StudentRecord>,
    pub absence_reports: Vec<AbsenceReport>,
    /// Sorted by `arrives_at`; events arriving at the same instant keep
    /// their generation order.
    pub events: Vec<ScheduledEvent>,
    /// A time after every window of the simulated span is final (the
    /// Tuesday after the last simulated week, 12:00 UTC: past nmped's Monday
    /// 16:00 entry deadline in every zone) and after every arrival.
    pub end: DateTime<Utc>,
}

/// Generates a whole district in memory.
pub fn generate(cfg: &SimConfig) -> World {
    let sim = Simulation::new(cfg);
    let events = sim.events().collect();
    World { calendars: sim.calendars, roster: sim.roster, absence_reports: sim.absence_reports, events, end: sim.end }
}

impl World {
    /// The world as a scenario (docs/scenarios.md), with empty expectations:
    /// `rollcall scenario run` prints what the engine makes of it.
    pub fn to_scenario_json(&self, name: &str, policy: &str) -> Value {
        json!({
            "name": name,
            "policy": policy,
            "calendars": self.calendars,
            "roster": self.roster,
            "absence_reports": self.absence_reports,
            "events": self.events,
            "now": self.end,
            "expect": { "determinations": [], "outreach": [], "no_other_outreach": false },
        })
    }
}

/// What the round loop needs to know about a school's instructional day.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DayInfo {
    /// No live classes (MMSD's asynchronous Wednesdays).
    pub async_day: bool,
    /// The school's last instructional day of its week within the span:
    /// learning packets come back then.
    pub pickup: bool,
}

/// A district whose calendars, roster and absence reports are built, ready
/// to stream its events.
pub struct Simulation {
    cfg: SimConfig,
    schools: Vec<School>,
    calendars: Vec<SchoolCalendar>,
    roster: Vec<StudentRecord>,
    profiles: Vec<Profile>,
    absence_reports: Vec<AbsenceReport>,
    /// Per school, per day offset: the instructional days.
    days: Vec<Vec<Option<DayInfo>>>,
    end: DateTime<Utc>,
}

impl Simulation {
    pub fn new(cfg: &SimConfig) -> Simulation {
        let schools = district::schools();
        let calendars: Vec<SchoolCalendar> = schools.iter().map(|s| district::calendar(s, cfg)).collect();
        let days = calendars.iter().map(|c| day_table(c, cfg)).collect();
        let (roster, profiles) = district::roster(cfg, &schools);
        let mut sim = Simulation {
            cfg: cfg.clone(),
            schools,
            calendars,
            roster,
            profiles,
            absence_reports: Vec::new(),
            days,
            end: end_of(cfg),
        };
        sim.absence_reports = sim.reports();
        sim
    }

    pub fn calendars(&self) -> &[SchoolCalendar] {
        &self.calendars
    }

    pub fn roster(&self) -> &[StudentRecord] {
        &self.roster
    }

    pub fn absence_reports(&self) -> &[AbsenceReport] {
        &self.absence_reports
    }

    /// See [`World::end`].
    pub fn end(&self) -> DateTime<Utc> {
        self.end
    }

    /// The events of [`generate`], in the same order, produced a day at a time.
    pub fn events(&self) -> EventStream<'_> {
        EventStream::new(self)
    }

    pub(crate) fn day(&self, school: usize, k: u32) -> Option<&DayInfo> {
        self.days[school].get(k as usize).and_then(|d| d.as_ref())
    }

    /// Every reported absence in the span, by date then student.
    fn reports(&self) -> Vec<AbsenceReport> {
        let mut out = Vec::new();
        for k in 0..self.cfg.days {
            let date = self.cfg.start + Duration::days(k as i64);
            for (i, (rec, profile)) in self.roster.iter().zip(&self.profiles).enumerate() {
                if self.day(profile.school, k).is_none() {
                    continue;
                }
                let plan = plan::day_plan(self.cfg.seed, i, profile, date, k, rec.mode_on(date));
                let Some(report) = plan.report else { continue };
                let tz = self.schools[profile.school].tz;
                let mut rng = Rng::derive(self.cfg.seed, Stream::Reports, i as u64, k as u64);
                let (day, from, to) = match report.reason {
                    // Planned absences are called in days ahead.
                    AbsenceReason::Medical | AbsenceReason::Religious if rng.chance(0.6) => {
                        (date - Duration::days(rng.range(1, 5) as i64), 9 * 60, 17 * 60)
                    }
                    // The teacher logs the family's situation during the day.
                    AbsenceReason::Hardship | AbsenceReason::Connectivity => (date, 8 * 60 + 30, 12 * 60),
                    _ if rng.chance(0.25) => (date - Duration::days(1), 18 * 60, 21 * 60 + 30),
                    _ => (date, 6 * 60 + 30, 9 * 60 + 30),
                };
                let minute = rng.range(from, to - 1) as i64;
                let second = rng.range(0, 59) as i64;
                out.push(AbsenceReport {
                    report_id: format!("ar-{}", out.len() + 1),
                    student_id: rec.student_id.clone(),
                    date,
                    reported_at: local_day_base(tz, day) + Duration::seconds(minute * 60 + second),
                    reason: report.reason,
                    reporter: report.reporter,
                });
            }
        }
        out
    }
}

/// The instructional days of a calendar by offset from the start, with the
/// weekly packet pickup marked.
fn day_table(cal: &SchoolCalendar, cfg: &SimConfig) -> Vec<Option<DayInfo>> {
    let mut table = vec![None; cfg.days as usize];
    for d in cal.days.iter().filter(|d| d.instructional) {
        let k = (d.date - cfg.start).num_days();
        if (0..cfg.days as i64).contains(&k) {
            table[k as usize] = Some(DayInfo { async_day: d.day_type == DayType::Async, pickup: false });
        }
    }
    // Walking backwards, the first instructional day seen in each week is its last.
    let mut seen_week = None;
    for k in (0..table.len()).rev() {
        let date = cfg.start + Duration::days(k as i64);
        let week = date.iso_week();
        if let Some(info) = table[k].as_mut() {
            if seen_week != Some(week) {
                info.pickup = true;
                seen_week = Some(week);
            }
        }
    }
    table
}

/// The Tuesday after the last simulated week, 12:00 UTC.
fn end_of(cfg: &SimConfig) -> DateTime<Utc> {
    let last = cfg.start + Duration::days(cfg.days.max(1) as i64 - 1);
    let sunday = last + Duration::days(6 - last.weekday().num_days_from_monday() as i64);
    (sunday + Duration::days(2)).and_hms_opt(12, 0, 0).expect("valid time").and_utc()
}

#[cfg(test)]
mod tests;
