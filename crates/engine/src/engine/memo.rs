//! Incremental evaluation: a window is evaluated again only when something
//! it reads has changed since it was last evaluated.
//!
//! Each evaluation at a flush leaves a small running state per window (a
//! [`Memo`]): for a day, the kinds of fact that could still change what it
//! decided (`eval::reads::still_read`: the kinds its rule reads at all,
//! narrowed by the student's mode and by what was found, since a decision
//! that rests on the first fact of a kind cannot be moved by a later one);
//! for a week of weekly contacts, each class with the days it already has
//! a contact on. An input marks the windows it touches, and says whether
//! it could change them by that state. A window marked only by facts that
//! cannot is skipped at the flush when all of this holds, because
//! evaluating it would then decide exactly what the last evaluation
//! decided, against the same emitted versions, and emit nothing:
//!
//! - this process evaluated it since the last change of the world it is
//!   decided in (calendars, policies, roster records, erasures, purges and
//!   retirements move a generation number that every memo carries);
//! - the clock is before every instant at which one of its outcomes could
//!   become FINAL, and before the window's close (after which a hardship
//!   report is no longer asked about): the two things that time alone
//!   changes in an evaluation.
//!
//! Anything else (a restart, a rolled-back batch, a memo dropped for size)
//! makes the window evaluated, which is always correct. The reference path
//! ([`Evaluation::Reference`]) evaluates every touched window; the
//! differential tests hold both to the same outputs.

use chrono::{DateTime, NaiveDate, Utc};
use rollcall_model::{ActivityKind, Direction, StudentRecord};
use rollcall_policy::Rule;

use crate::eval::reads::{self, Kinds};
use crate::kv::KvStore;
use crate::school::School;

use super::Engine;

/// How the engine decides which touched windows to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Evaluation {
    /// Skip a window when nothing it reads has changed.
    #[default]
    Incremental,
    /// Evaluate every window an input touched: the simple path the
    /// incremental one is tested against.
    Reference,
}

/// A touched window: (student number, date or Monday, is week, whether
/// its rule reads what touched it).
pub(super) type Touch = (u32, NaiveDate, bool, bool);

/// What a flush's evaluation of a window left: the world generation it was
/// decided in, and what could still change it.
#[derive(Debug, Clone)]
pub(super) struct Memo {
    world: u64,
    /// UTC micros: from then on the window is evaluated whatever touches it.
    until: i64,
    /// A day: the kinds of fact that could still change it.
    reads: Kinds,
    /// A week: the class a fact with no section counts for (the homeroom),
    /// and each class counted with its days that have a contact already.
    week: Option<Box<(Option<String>, Vec<WeekSection>)>>,
}

/// A class's WEEK outcome as the engine keeps it between evaluations.
#[derive(Debug, Clone)]
pub(super) struct WeekSection {
    pub section: String,
    pub contacts: u32,
    /// Bit 0: Monday.
    pub days: u8,
}

impl<S: KvStore> Engine<S> {
    /// Something every window may read changed: no memo holds any more.
    pub(super) fn world_changed(&mut self) {
        self.world += 1;
    }

    /// Whether evaluating the window now would decide and do what its last
    /// evaluation did (see the module's comment).
    pub(super) fn unchanged_since_evaluated(&self, touch: Touch, at: DateTime<Utc>) -> bool {
        // The reference path keeps no memos (`remember`), so it skips nothing.
        let (no, date, week, reads) = touch;
        if reads {
            return false;
        }
        self.evaluated.get(&(no, date, week)).is_some_and(|m| m.world == self.world && at.timestamp_micros() < m.until)
    }

    /// The first instant at which time alone changes what evaluating the
    /// window does: an outcome of it may become FINAL, or (a day) it closes.
    fn until(&self, school: &School, student: &StudentRecord, date: NaiveDate, week: bool) -> i64 {
        let f = &school.policy.finalize;
        let t = if week {
            self.finalize_instant(school, date, f.week.into())
        } else {
            [f.in_person_day, f.offline_day, f.remote_day]
                .into_iter()
                .map(|k| self.finalize_instant(school, date, k.into()))
                .fold(self.closes_at(school, student, date), DateTime::min)
        };
        t.timestamp_micros()
    }

    /// Whether a fact of `kind` could change the student's day window of
    /// `date`: its rule reads the kind, and the window's last evaluation
    /// (if it still holds) left the kind among those that could change it.
    /// What a window decided only narrows as facts come (a first fact
    /// found stays first), so a kind ruled out then stays out.
    pub(super) fn day_still_reads(&self, no: u32, date: NaiveDate, rule: &Rule, kind: ActivityKind) -> bool {
        if !reads::day_reads(rule, kind) {
            return false;
        }
        match self.evaluated.get(&(no, date, false)) {
            Some(m) if m.world == self.world => m.reads & reads::bit(kind) != 0,
            _ => true,
        }
    }

    /// Whether a fact of this kind and direction, for `section` on `date`,
    /// could change the student's WEEK outcomes of the week of `monday`:
    /// the rule counts it, and it is the first contact of its class on
    /// that day (a class with a contact that day already, or that the
    /// week does not count, is not changed by another).
    pub(super) fn week_still_reads(
        &self,
        no: u32,
        monday: NaiveDate,
        rule: &Rule,
        fact: (ActivityKind, Option<Direction>, Option<&str>, NaiveDate),
    ) -> bool {
        let (kind, direction, section, date) = fact;
        if !reads::week_reads(rule, kind, direction) {
            return false;
        }
        let memo = match self.evaluated.get(&(no, monday, true)) {
            Some(m) if m.world == self.world => m,
            _ => return true,
        };
        let Some(week) = memo.week.as_deref() else { return true };
        let (homeroom, sections) = week;
        let Some(class) = section.or(homeroom.as_deref()) else { return false };
        let day = (date - monday).num_days();
        match sections.iter().find(|w| w.section == class) {
            Some(w) => !(0..7).contains(&day) || w.days & (1 << day) == 0,
            None => false,
        }
    }

    pub(super) fn note_evaluated(
        &mut self,
        no: u32,
        date: NaiveDate,
        school: &School,
        student: &StudentRecord,
        still_reads: Kinds,
    ) {
        self.remember((no, date, false), school, student, still_reads, None);
    }

    pub(super) fn note_week_evaluated(
        &mut self,
        no: u32,
        monday: NaiveDate,
        school: &School,
        student: &StudentRecord,
        sections: Vec<WeekSection>,
    ) {
        let week = Some(Box::new((student.homeroom_section_id.clone(), sections)));
        self.remember((no, monday, true), school, student, Kinds::MAX, week);
    }

    /// The one place memos are made: none on the reference path.
    fn remember(
        &mut self,
        key: (u32, NaiveDate, bool),
        school: &School,
        student: &StudentRecord,
        reads: Kinds,
        week: Option<Box<(Option<String>, Vec<WeekSection>)>>,
    ) {
        if self.config.evaluation == Evaluation::Reference {
            return;
        }
        let until = self.until(school, student, key.1, key.2);
        if self.evaluated.len() >= self.config.record_cache_entries {
            self.evaluated.clear();
        }
        self.evaluated.insert(key, Memo { world: self.world, until, reads, week });
    }
}
