//! Events in arrival order, one simulated day at a time.
//!
//! The district is simulated in rounds, one local date per round. A round
//! writes every student's events for its date and then releases, sorted,
//! every event that arrives before the earliest local midnight ending that
//! date in any school (the *watermark*). Nothing a later round writes can
//! arrive before that watermark, because later rounds only write events
//! that occur on later local dates; what arrives after it (late deliveries,
//! the last minutes of the evening in western zones) waits in `pending`.
//! Memory is therefore bounded by about one day of events, which is what
//! lets 100,000 students × 30 days stream to a file or a benchmark.
//!
//! The order released is by (arrives_at, generation sequence): the stable
//! sort of the generation order by arrival.

use std::fmt::Write;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use rollcall_model::{ActivityEvent, Mode, Weekday};

use crate::activity::{blocks_on, Block, DayWriter};
use crate::district::{local_day_base, Behaviour};
use crate::plan::{day_plan, Presence};
use crate::rng::{Rng, Stream};
use crate::{ScheduledEvent, Simulation};

/// An iterator over a simulation's events in arrival order. See
/// [`Simulation::events`].
pub struct EventStream<'a> {
    sim: &'a Simulation,
    /// The next round's offset from the start date; rounds run to
    /// `days` inclusive (the day after the span carries late homework).
    round: u32,
    finished: bool,
    next_id: u64,
    next_seq: u64,
    slots: Vec<Option<ScheduledEvent>>,
    /// (arrival in µs, sequence, slot), sorted; the ready prefix is `order`.
    keys: Vec<(i64, u64, u32)>,
    order: Vec<u32>,
    pos: usize,
    pending: Vec<(u64, ScheduledEvent)>,
    scratch: Vec<ActivityEvent>,
    blocks: Vec<Block>,
}

impl<'a> EventStream<'a> {
    pub(crate) fn new(sim: &'a Simulation) -> Self {
        EventStream {
            sim,
            round: 0,
            finished: false,
            next_id: 1,
            next_seq: 0,
            slots: Vec::new(),
            keys: Vec::new(),
            order: Vec::new(),
            pos: 0,
            pending: Vec::new(),
            scratch: Vec::new(),
            blocks: Vec::new(),
        }
    }

    /// Runs the next round and leaves its releasable events in `order`.
    fn fill(&mut self) {
        self.slots.clear();
        self.keys.clear();
        self.order.clear();
        self.pos = 0;
        for (seq, ev) in std::mem::take(&mut self.pending) {
            self.keys.push((ev.arrives_at.timestamp_micros(), seq, self.slots.len() as u32));
            self.slots.push(Some(ev));
        }
        let watermark = if self.round <= self.sim.cfg.days {
            let date = self.sim.cfg.start + Duration::days(self.round as i64);
            self.write_round(self.round, date);
            self.round += 1;
            let next = date + Duration::days(1);
            self.sim.schools.iter().map(|s| local_day_base(s.tz, next).timestamp_micros()).min().unwrap_or(i64::MAX)
        } else {
            self.finished = true;
            i64::MAX
        };
        self.keys.sort_unstable();
        let ready = self.keys.partition_point(|k| k.0 < watermark);
        for &(_, seq, slot) in &self.keys[ready..] {
            let ev = self.slots[slot as usize].take().expect("each slot is taken once");
            self.pending.push((seq, ev));
        }
        self.order.extend(self.keys[..ready].iter().map(|k| k.2));
    }

    fn write_round(&mut self, k: u32, date: NaiveDate) {
        let sim = self.sim;
        let seed = sim.cfg.seed;
        let bases: Vec<DateTime<Utc>> = sim.schools.iter().map(|s| local_day_base(s.tz, date)).collect();
        let day_ends: Vec<DateTime<Utc>> = sim.schools.iter().map(|s| local_day_base(s.tz, date + Duration::days(1))).collect();
        let weekday = Weekday::of(date);
        let yesterday = date - Duration::days(1);
        for (i, (rec, profile)) in sim.roster.iter().zip(&sim.profiles).enumerate() {
            let school = &sim.schools[profile.school];
            let mut blocks = std::mem::take(&mut self.blocks);
            let mut out = std::mem::take(&mut self.scratch);
            out.clear();
            let mut w = DayWriter {
                school,
                student: rec,
                date,
                base: bases[profile.school],
                rng: Rng::derive(seed, Stream::DayEvents, i as u64, k as u64),
                out: &mut out,
            };
            match sim.day(profile.school, k) {
                Some(day) => {
                    let mode = rec.mode_on(date);
                    let plan = day_plan(seed, i, profile, date, k, mode);
                    blocks_on(rec, weekday, &mut blocks);
                    let hardship = profile.behaviour == Behaviour::Hardship;
                    match mode {
                        Mode::InPerson => w.in_person_day(&plan, &blocks),
                        m if m.is_offline() => {
                            // A weekly check-in call, midweek.
                            if weekday == Weekday::Wed {
                                w.welfare_call(&blocks, 0.4);
                            }
                        }
                        m => w.online_day(&plan, &blocks, m, day.async_day, hardship),
                    }
                    match plan.presence {
                        Presence::Off if profile.behaviour == Behaviour::Disengaging => w.welfare_call(&blocks, 0.15),
                        Presence::Sparse => w.welfare_call(&blocks, 0.25),
                        _ => {}
                    }
                    if day.pickup {
                        let returned = sim.packets_for_week(i, k);
                        if !returned.is_empty() {
                            w.rng = Rng::derive(seed, Stream::Packets, i as u64, k as u64);
                            w.packets_returned(&returned);
                        }
                    }
                }
                None if k < sim.cfg.days => {
                    let engaged =
                        matches!(profile.behaviour, Behaviour::Engaged | Behaviour::LateSubmitter | Behaviour::SickSometimes);
                    let mut rng = Rng::derive(seed, Stream::Weekend, i as u64, k as u64);
                    if engaged && rng.chance(0.12) {
                        w.rng = rng;
                        w.off_day_browsing();
                    }
                }
                None => {}
            }
            // Yesterday's homework, for the students who hand it in a day late.
            if k >= 1 && sim.day(profile.school, k - 1).is_some() {
                let mode = rec.mode_on(yesterday);
                let plan = day_plan(seed, i, profile, yesterday, k - 1, mode);
                if !mode.is_offline() && plan.late_work && plan.presence != Presence::Off {
                    blocks_on(rec, Weekday::of(yesterday), &mut blocks);
                    let mut lw = DayWriter {
                        school,
                        student: rec,
                        date,
                        base: bases[profile.school],
                        rng: Rng::derive(seed, Stream::LateWork, i as u64, (k - 1) as u64),
                        out: &mut out,
                    };
                    lw.late_work(yesterday, &blocks);
                }
            }
            let mut rng = Rng::derive(seed, Stream::Delivery, i as u64, k as u64);
            for ev in out.drain(..) {
                self.deliver(ev, day_ends[profile.school], &mut rng);
            }
            self.scratch = out;
            self.blocks = blocks;
        }
    }

    /// Gives the event its id and arrival time, and sometimes a duplicate
    /// or a late delivery, as real connectors do.
    fn deliver(&mut self, mut ev: ActivityEvent, day_end: DateTime<Utc>, rng: &mut Rng) {
        let cfg = &self.sim.cfg;
        let end = self.sim.end;
        // Sized up front: `format!` would start small and reallocate, and
        // this runs once per event.
        let mut id = String::with_capacity(24);
        write!(id, "ev-{}", self.next_id).expect("writing to a String cannot fail");
        ev.event_id = id;
        self.next_id += 1;
        let mut arrives = ev.occurred_at + Duration::seconds(rng.range(1, 30) as i64);
        if rng.chance(cfg.late_rate) {
            // Two to three days later: a connector that was down, a teacher
            // who logs on Monday. Never after the world's end, and only when
            // that still leaves it after its day has closed.
            let late = (ev.occurred_at + Duration::hours(48 + rng.range(0, 24) as i64)).min(end - Duration::minutes(1));
            if late > day_end {
                arrives = late;
            }
        }
        let duplicate = rng.chance(cfg.duplicate_rate).then(|| {
            let again = arrives + Duration::seconds(rng.range(5, 600) as i64);
            ScheduledEvent { event: ev.clone(), arrives_at: again.min(end) }
        });
        self.push(ScheduledEvent { event: ev, arrives_at: arrives });
        if let Some(d) = duplicate {
            self.push(d);
        }
    }

    fn push(&mut self, ev: ScheduledEvent) {
        self.keys.push((ev.arrives_at.timestamp_micros(), self.next_seq, self.slots.len() as u32));
        self.next_seq += 1;
        self.slots.push(Some(ev));
    }
}

impl Iterator for EventStream<'_> {
    type Item = ScheduledEvent;

    fn next(&mut self) -> Option<ScheduledEvent> {
        loop {
            if let Some(&slot) = self.order.get(self.pos) {
                self.pos += 1;
                return Some(self.slots[slot as usize].take().expect("each slot is released once"));
            }
            if self.finished {
                return None;
            }
            self.fill();
        }
    }
}

impl Simulation {
    /// The offline days of the week ending on pickup day `k` whose work the
    /// student did and the teacher logs as returned.
    fn packets_for_week(&self, student: usize, k: u32) -> Vec<NaiveDate> {
        let profile = &self.profiles[student];
        let rec = &self.roster[student];
        let date = self.cfg.start + Duration::days(k as i64);
        let monday_offset = k.saturating_sub(date.weekday().num_days_from_monday());
        let mut rng = Rng::derive(self.cfg.seed, Stream::Packets, student as u64, u64::MAX - k as u64);
        (monday_offset..=k)
            .filter(|&d| self.day(profile.school, d).is_some())
            .map(|d| (d, self.cfg.start + Duration::days(d as i64)))
            .filter(|&(d, day)| {
                let mode = rec.mode_on(day);
                mode.is_offline() && day_plan(self.cfg.seed, student, profile, day, d, mode).presence != Presence::Off
            })
            .filter(|_| rng.chance(0.92))
            .map(|(_, day)| day)
            .collect()
    }
}
