//! A school as the engine sees it: calendar, time zone, policy, and the
//! instants at which its windows close.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use rollcall_model::{CalendarDay, LocalTime, SchoolCalendar};
use rollcall_policy::{FinalizeAt, Policy, Rule};

use crate::cache::FxHashMap;

/// What happens to a school's students at one of its close instants.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SchoolAction {
    /// Finalize the day windows of `date` whose finalization rule is one of `rules`.
    CloseDays { date: NaiveDate, rules: Vec<FinalizeKey> },
    /// The school day starts: the engine sets each student's timers of the
    /// day (instruction-partners: the end of the morning session).
    DayStarts { date: NaiveDate },
    /// Close the Monday–Sunday week starting `monday`.
    CloseWeek { monday: NaiveDate },
    /// The school year `school_year` (July to June, named by the year it
    /// starts in), whose last instructional date is `last`, is past its
    /// correction horizon: nothing of it can change any more, and its
    /// windows and absence marks may leave the store.
    RetireYear { school_year: i32, last: NaiveDate },
}

/// A comparable stand-in for [`FinalizeAt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FinalizeKey {
    DayEnd(u8),
    SchoolDayEnd,
    WeekEnd,
    NextWeek(u8, u16),
}

impl From<FinalizeAt> for FinalizeKey {
    fn from(f: FinalizeAt) -> Self {
        match f {
            FinalizeAt::DayEnd { plus_days } => FinalizeKey::DayEnd(plus_days),
            FinalizeAt::SchoolDayEnd => FinalizeKey::SchoolDayEnd,
            FinalizeAt::WeekEnd => FinalizeKey::WeekEnd,
            FinalizeAt::NextWeek { weekday, time } => FinalizeKey::NextWeek(weekday.index(), time.0),
        }
    }
}

/// A loaded school.
#[derive(Debug)]
pub struct School {
    pub calendar: SchoolCalendar,
    pub tz: Tz,
    pub policy: Arc<Policy>,
    days: BTreeMap<NaiveDate, CalendarDay>,
    /// Per calendar date whose UTC offset holds all day (every date without
    /// a DST change), its local midnight in UTC microseconds: a wall-clock
    /// time of the date is then one addition, and an instant's local date a
    /// comparison, instead of a time-zone lookup. Every event and every
    /// evaluation converts times (the school day's, the meetings').
    midnights: FxHashMap<NaiveDate, i64>,
}

const MINUTES_PER_DAY: i64 = 24 * 60;
const MICROS_PER_MINUTE: i64 = 60_000_000;

fn local(date: NaiveDate, minutes: i64) -> NaiveDateTime {
    NaiveDateTime::new(date, chrono::NaiveTime::MIN) + Duration::minutes(minutes)
}

/// The school year a date belongs to, July to June, named by the calendar
/// year it starts in (2020 for 2020-09-01 and for 2021-05-01).
pub fn school_year_of(d: NaiveDate) -> i32 {
    if d.month() >= 7 {
        d.year()
    } else {
        d.year() - 1
    }
}

/// Monday of the week containing `d`.
pub fn monday_of(d: NaiveDate) -> NaiveDate {
    d - Duration::days(d.weekday().num_days_from_monday() as i64)
}

impl School {
    pub fn new(calendar: SchoolCalendar, tz: Tz, policy: Arc<Policy>) -> School {
        let days: BTreeMap<NaiveDate, CalendarDay> = calendar.days.iter().map(|d| (d.date, d.clone())).collect();
        let offset = |date: NaiveDate, minutes: i64| match tz.from_local_datetime(&local(date, minutes)) {
            LocalResult::Single(t) => Some(t.offset().fix().local_minus_utc() as i64),
            _ => None,
        };
        let midnights = days
            .keys()
            .filter_map(|d| match (offset(*d, 0), offset(*d, MINUTES_PER_DAY - 1)) {
                (Some(a), Some(b)) if a == b => Some((*d, (local(*d, 0).and_utc().timestamp() - a) * 1_000_000)),
                _ => None,
            })
            .collect();
        School { calendar, tz, policy, days, midnights }
    }

    /// The calendar entry of an instructional date.
    pub fn instructional(&self, date: NaiveDate) -> Option<&CalendarDay> {
        self.days.get(&date).filter(|d| d.instructional)
    }

    pub fn instructional_days(&self, from: NaiveDate, to: NaiveDate) -> impl Iterator<Item = &CalendarDay> {
        self.days.range(from..=to).map(|(_, d)| d).filter(|d| d.instructional)
    }

    pub fn week_has_instruction(&self, monday: NaiveDate) -> bool {
        self.instructional_days(monday, monday + Duration::days(6)).next().is_some()
    }

    /// The school-local date of an instant.
    pub fn local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        match self.local_minute(at.timestamp_micros()) {
            Some((date, _)) => date,
            None => self.local_date_by_zone(at),
        }
    }

    /// The school-local date and minute of the day of an instant, where
    /// the date's offset is known to hold all day; `None` elsewhere, for the
    /// time-zone lookup.
    pub fn local_minute(&self, micros: i64) -> Option<(NaiveDate, i64)> {
        let utc = DateTime::from_timestamp_micros(micros)?.date_naive();
        // Up to 23:59 local the offset is the date's own; the last minute
        // may meet a change at midnight, so it takes the lookup.
        [utc.pred_opt(), Some(utc), utc.succ_opt()].into_iter().flatten().find_map(|date| {
            let m = *self.midnights.get(&date)?;
            (m <= micros && micros < m + (MINUTES_PER_DAY - 1) * MICROS_PER_MINUTE)
                .then(|| (date, (micros - m) / MICROS_PER_MINUTE))
        })
    }

    fn local_date_by_zone(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.tz).date_naive()
    }

    /// The UTC instant of a local wall-clock time. In a DST gap the clock
    /// jumps forward, so the first instant after the gap is used; in an
    /// overlap, the earlier one.
    pub fn instant(&self, date: NaiveDate, minutes: u32) -> DateTime<Utc> {
        match self.fast_micros(date, minutes).and_then(DateTime::from_timestamp_micros) {
            Some(t) => t,
            None => self.instant_by_zone(date, minutes),
        }
    }

    /// `instant` in UTC microseconds.
    pub fn micros(&self, date: NaiveDate, minutes: u32) -> i64 {
        self.fast_micros(date, minutes).unwrap_or_else(|| self.instant_by_zone(date, minutes).timestamp_micros())
    }

    fn fast_micros(&self, date: NaiveDate, minutes: u32) -> Option<i64> {
        if minutes as i64 >= MINUTES_PER_DAY {
            return None;
        }
        self.midnights.get(&date).map(|m| m + minutes as i64 * MICROS_PER_MINUTE)
    }

    fn instant_by_zone(&self, date: NaiveDate, minutes: u32) -> DateTime<Utc> {
        let base = local(date, minutes as i64);
        for shift in 0..=4 {
            match self.tz.from_local_datetime(&(base + Duration::minutes(30 * shift))) {
                LocalResult::Single(t) => return t.with_timezone(&Utc),
                LocalResult::Ambiguous(a, _) => return a.with_timezone(&Utc),
                LocalResult::None => continue,
            }
        }
        Utc.from_utc_datetime(&base)
    }

    /// Local midnight at the start of `date`.
    pub fn start_of(&self, date: NaiveDate) -> DateTime<Utc> {
        self.instant(date, 0)
    }

    /// The UTC span of a local time range on `date`.
    pub fn span(&self, date: NaiveDate, start: LocalTime, end: LocalTime) -> (i64, i64) {
        (self.micros(date, start.minutes()), self.micros(date, end.minutes()))
    }

    /// When a window of `date` closed by `rule` becomes final.
    pub fn finalize_instant(&self, date: NaiveDate, rule: FinalizeKey) -> DateTime<Utc> {
        match rule {
            FinalizeKey::DayEnd(plus) => self.start_of(date + Duration::days(1 + plus as i64)),
            FinalizeKey::SchoolDayEnd => match self.days.get(&date) {
                Some(d) if d.end.0 > 0 => self.instant(date, d.end.minutes()),
                _ => self.start_of(date + Duration::days(1)),
            },
            FinalizeKey::WeekEnd => self.start_of(monday_of(date) + Duration::days(7)),
            FinalizeKey::NextWeek(weekday, minutes) => {
                self.instant(monday_of(date) + Duration::days(7 + weekday as i64), minutes as u32)
            }
        }
    }

    /// Every close instant of this school, with what to do at it, in time order.
    pub fn close_schedule(&self) -> Vec<(DateTime<Utc>, SchoolAction)> {
        let f = &self.policy.finalize;
        let mut rules: Vec<FinalizeKey> = vec![f.in_person_day.into(), f.remote_day.into(), f.offline_day.into()];
        rules.sort();
        rules.dedup();
        let weekly_rule = matches!(self.policy.rule, Rule::WeeklyContacts(_));
        let mut by_instant: BTreeMap<(DateTime<Utc>, NaiveDate), Vec<FinalizeKey>> = BTreeMap::new();
        let mut weeks = BTreeMap::new();
        for d in self.days.values().filter(|d| d.instructional) {
            for r in &rules {
                by_instant.entry((self.finalize_instant(d.date, *r), d.date)).or_default().push(*r);
            }
            let monday = monday_of(d.date);
            let week_rule = if weekly_rule { f.week.into() } else { FinalizeKey::WeekEnd };
            weeks.insert(monday, self.finalize_instant(monday, week_rule));
        }
        // Each school year's last instructional date, retired once the
        // latest close of that date is past the correction horizon.
        let mut last_of_year: BTreeMap<i32, NaiveDate> = BTreeMap::new();
        for d in self.days.values().filter(|d| d.instructional) {
            let last = last_of_year.entry(school_year_of(d.date)).or_insert(d.date);
            *last = (*last).max(d.date);
        }
        let horizon = Duration::days(self.policy.correction_horizon_days as i64);
        let retire = last_of_year.into_iter().map(|(school_year, last)| {
            let week = self.finalize_instant(monday_of(last), FinalizeKey::WeekEnd);
            let latest = [f.in_person_day, f.remote_day, f.offline_day, f.week]
                .into_iter()
                .map(|r| self.finalize_instant(last, r.into()))
                .fold(week, DateTime::max);
            (latest + horizon, SchoolAction::RetireYear { school_year, last })
        });
        let day_starts = matches!(&self.policy.rule, Rule::Blocks(b) if b.family_outreach);
        let starts = self
            .days
            .values()
            .filter(|d| day_starts && d.instructional)
            .map(|d| (self.start_of(d.date), SchoolAction::DayStarts { date: d.date }));
        let mut out: Vec<(DateTime<Utc>, SchoolAction)> = by_instant
            .into_iter()
            .map(|((at, date), rules)| (at, SchoolAction::CloseDays { date, rules }))
            .chain(weeks.into_iter().map(|(monday, at)| (at, SchoolAction::CloseWeek { monday })))
            .chain(starts)
            .chain(retire)
            .collect();
        // Days close before the week they belong to when both fall at one instant.
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollcall_model::DayType;

    fn school(tz: Tz, policy: &str, dates: &[&str]) -> School {
        let cal = SchoolCalendar {
            school_id: "x".into(),
            timezone: tz.name().into(),
            policy: policy.into(),
            days: dates
                .iter()
                .map(|d| CalendarDay {
                    date: d.parse().unwrap(),
                    instructional: true,
                    day_type: DayType::Full,
                    start: "08:00".parse().unwrap(),
                    end: "15:00".parse().unwrap(),
                })
                .collect(),
        };
        School::new(cal, tz, Arc::new(Policy::preset(policy).unwrap()))
    }

    #[test]
    fn nmped_week_closes_monday_1600_local() {
        let s = school(chrono_tz::America::Denver, "nmped", &["2020-10-05", "2020-10-09"]);
        let sched = s.close_schedule();
        let (at, _) = sched.iter().find(|(_, a)| matches!(a, SchoolAction::CloseWeek { .. })).unwrap();
        assert_eq!(at.to_rfc3339(), "2020-10-12T22:00:00+00:00");
    }

    #[test]
    fn dst_gap_moves_forward() {
        // 2021-03-14 02:30 does not exist in Chicago.
        let s = school(chrono_tz::America::Chicago, "mmsd", &[]);
        let t = s.instant("2021-03-14".parse().unwrap(), 150);
        assert_eq!(t.to_rfc3339(), "2021-03-14T08:00:00+00:00"); // 03:00 CDT
    }

    #[test]
    fn cms_remote_days_close_a_day_later() {
        let s = school(chrono_tz::America::New_York, "cms", &["2020-10-06"]);
        let closes: Vec<_> = s
            .close_schedule()
            .into_iter()
            .filter(|(_, a)| matches!(a, SchoolAction::CloseDays { .. }))
            .map(|(t, _)| t.to_rfc3339())
            .collect();
        assert_eq!(closes, vec!["2020-10-07T04:00:00+00:00", "2020-10-08T04:00:00+00:00"]);
    }

    #[test]
    fn wall_clock_times_and_local_dates_convert_alike_with_and_without_the_kept_midnights() {
        // Every date of a year (DST changes and Lord Howe's half-hour one
        // included), every quarter hour: the offset kept per date must give
        // the instant the zone lookup gives.
        for tz in
            [chrono_tz::America::Chicago, chrono_tz::Europe::London, chrono_tz::Australia::Lord_Howe, chrono_tz::Asia::Kolkata]
        {
            let first: NaiveDate = "2020-01-01".parse().unwrap();
            let dates: Vec<String> = (0..366).map(|i| (first + Duration::days(i)).to_string()).collect();
            let refs: Vec<&str> = dates.iter().map(String::as_str).collect();
            let s = school(tz, "mmsd", &refs);
            assert!(s.midnights.len() >= 360, "{tz}: {} dates with one offset", s.midnights.len());
            for d in &dates {
                let date: NaiveDate = d.parse().unwrap();
                for minutes in (0..24 * 60).step_by(15) {
                    assert_eq!(s.instant(date, minutes), s.instant_by_zone(date, minutes), "{tz} {d} +{minutes} min");
                    assert_eq!(s.micros(date, minutes), s.instant_by_zone(date, minutes).timestamp_micros());
                }
                // Instants every 7 minutes and 13 seconds of the UTC day
                // (every minute of the local clock is met over the year).
                let midnight = date.and_hms_opt(0, 0, 0).unwrap().and_utc();
                for k in 0..200 {
                    let at = midnight + Duration::seconds(k * 433);
                    assert_eq!(s.local_date(at), s.local_date_by_zone(at), "{tz} {at}");
                    let micros = at.timestamp_micros();
                    let shown = crate::eval::explain::local_time(&s, micros);
                    assert_eq!(shown, at.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string(), "{tz} {at}");
                    if let Some((d, m)) = s.local_minute(micros) {
                        let l = at.with_timezone(&tz).naive_local();
                        assert_eq!((d, m), (l.date(), (l.time() - chrono::NaiveTime::MIN).num_minutes()), "{tz} {at}");
                    }
                }
            }
        }
    }
}
