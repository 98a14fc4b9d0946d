//! The engine: applies world records and events to state, fires closes and
//! timers from an explicit clock, versions determinations and raises outreach.
//!
//! This file owns the engine's state and its life cycle (open, flush, stage,
//! commit, reload) and the types a runtime sees: settings, outputs,
//! rejections, errors and counters. The data path has one file per phase:
//!
//! - `ingest`: calendars, roster records, events and absence reports come in;
//! - `dedup`: whether an event id was applied already;
//! - `parking`: events that wait for their student's roster record or their school's calendar;
//! - `records`: the roster, day and emitted records, cached in front of the store;
//! - `closes`: when a window closes, and until when it may still change;
//! - `clock`: moving the clock, which fires school closes and per-student timers;
//! - `emit`: evaluating the windows records touched, and versioning what they decide;
//! - `outreach`: school-year counts, week closes and the triggers they raise;
//! - `purge`: dropping the state that can no longer change;
//! - `gauges`: read-only counts for a runtime's metrics.

mod clock;
mod closes;
mod dedup;
mod emit;
#[cfg(test)]
mod fixtures;
mod forget;
mod gauges;
mod ingest;
mod memo;
mod outreach;
mod parking;
mod purge;
mod records;
mod retire;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rollcall_model::avro::AvroRecord;
use rollcall_model::{DeadLetterKind, Determination, OutreachTrigger, SchoolCalendar, StudentRecord};
use rollcall_policy::Policy;

use crate::cache::{FxHashMap, RecordCache};
use crate::codec::{self, CodecError};
use crate::kv::{KvStore, StoreError, Table};
use crate::school::{FinalizeKey, School, SchoolAction};
use crate::state::{DayRecord, Emitted};

use self::dedup::SeenIds;
pub use self::forget::Forgotten;
pub use self::gauges::OpenWindows;
pub use self::memo::Evaluation;
use self::memo::{Memo, Touch};
use self::records::{DayKey, EmittedKey, Names};

/// Settings of the engine itself (policies carry the attendance rules).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Events further than this from the clock, either way, are refused as absurd.
    pub max_clock_skew_days: i64,
    /// Cap on decoded roster records kept in memory.
    pub roster_cache_entries: usize,
    /// Cap on decoded day and emitted records kept in memory between batches.
    pub record_cache_entries: usize,
    /// How long an event for a student with no roster record yet waits for
    /// one before it is refused (zero: refused at once).
    pub unknown_student_wait: Duration,
    /// Likewise for an event whose school has no calendar yet.
    pub unknown_school_wait: Duration,
    /// Drop a school year's day windows, emitted versions and absence
    /// marks once it is past its correction horizon (see `retire`).
    pub retire_closed_years: bool,
    /// Which touched windows are evaluated (see [`Evaluation`]).
    pub evaluation: Evaluation,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_clock_skew_days: 400,
            roster_cache_entries: 200_000,
            record_cache_entries: 400_000,
            // A nightly roster sync, missed once, is caught by the next.
            unknown_student_wait: Duration::days(3),
            unknown_school_wait: Duration::days(1),
            retire_closed_years: true,
            evaluation: Evaluation::Incremental,
        }
    }
}

/// Something the engine emits.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Determination(Determination),
    Outreach(OutreachTrigger),
    /// An event refused after it waited (or when it was released and
    /// refused for another reason): the runtime dead-letters it.
    Refused(Box<Refusal>),
    /// A student was erased ([`Engine::forget_student`]): the runtime
    /// removes their determinations from its outputs (tombstones on the
    /// compacted topic).
    Forgotten(Forgotten),
}

/// A refused event that the engine held, with why.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub event: rollcall_model::ActivityEvent,
    pub rejection: Rejection,
    /// The engine clock when it was refused.
    pub at: DateTime<Utc>,
}

/// A refused record: the kind and a message a person can act on. The
/// runtime dead-letters it with this kind; the engine refuses only with the
/// kinds that are not wire checks (`UNKNOWN_STUDENT` … `TOO_LATE`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct Rejection {
    pub kind: DeadLetterKind,
    pub message: String,
}

fn reject(kind: DeadLetterKind, message: impl Into<String>) -> ApplyError {
    ApplyError::Rejected(Rejection { kind, message: message.into() })
}

/// A failure inside the engine: the store, or state that does not decode.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{table:?} entry {key}: {source}")]
    Corrupt { table: Table, key: String, source: CodecError },
    #[error("{table:?} entry {key}: {message}")]
    CorruptRecord { table: Table, key: String, message: String },
}

/// The result of applying one record that was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Bad input: dead-letter it and go on.
    #[error(transparent)]
    Rejected(Rejection),
    /// The engine cannot go on.
    #[error(transparent)]
    Fatal(#[from] EngineError),
}

/// What happened to an accepted record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Accepted,
    /// Already seen (same event or report id): nothing changes.
    Duplicate,
    /// Its student or school is not known yet: it waits (see `parking`).
    Parked,
}

/// Counters a runtime exports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub events: u64,
    pub duplicates: u64,
    pub reports: u64,
    /// Events that arrived after their window was final (within the horizon).
    pub late_events: u64,
    pub determinations: u64,
    pub corrections: u64,
    pub outreach: u64,
    pub timers_fired: u64,
    /// Events parked to wait for a roster record or a calendar, released
    /// when it came, and refused when their wait ran out.
    pub parked: u64,
    pub released: u64,
    pub expired: u64,
    /// Touched windows evaluated at a flush, and those skipped because
    /// nothing they read had changed.
    pub windows_evaluated: u64,
    pub windows_skipped: u64,
}

const META_CLOCK: &[u8] = b"clock";

/// The attendance engine over a key-value store.
pub struct Engine<S: KvStore> {
    store: S,
    config: EngineConfig,
    policies: FxHashMap<String, Arc<Policy>>,
    schools: FxHashMap<String, Arc<School>>,
    /// Future school closes: (instant micros, school id, action).
    schedule: BTreeSet<(i64, String, SchoolAction)>,
    clock: Option<DateTime<Utc>>,
    /// What record times are judged against while `clock` has not been
    /// set (see [`Engine::judge_times_at`]).
    checks_at: Option<DateTime<Utc>>,
    names: Names,
    /// Roster records by student number.
    roster: FxHashMap<u32, Arc<StudentRecord>>,
    /// Decoded day windows and last emitted versions; changes reach the
    /// store at `flush` and `stage`.
    days: RecordCache<DayKey, DayRecord>,
    emitted: RecordCache<EmittedKey, Emitted>,
    /// Close instants already computed: (school, date, rule) → instant, and
    /// (school, date) → end of the correction horizon. Cleared when a
    /// calendar is (re)loaded.
    finalize_memo: RefCell<FxHashMap<(usize, NaiveDate, FinalizeKey), DateTime<Utc>>>,
    horizon_memo: RefCell<FxHashMap<(usize, NaiveDate), DateTime<Utc>>>,
    /// The keys of the pending per-student timers, in due order: a copy of
    /// the `Timer` table, read once (deleted timers leave tombstones at the
    /// front of the table, which made every scan for the next one slow).
    /// `None` until read; forgotten at `reload`.
    timers: Option<BTreeSet<Vec<u8>>>,
    /// Per student, the hash of every event id applied and kept, with the
    /// local date under which its day record holds it (see `SeenIds`).
    /// Loaded per student from the day records by one range read; forgotten
    /// at `reload`, and when too large at a write-back.
    seen: FxHashMap<u32, SeenIds>,
    seen_count: usize,
    /// Windows touched since the last flush; evaluated in the order of the
    /// student ids.
    dirty: Vec<Touch>,
    /// The world generation at each window's last evaluation by a flush,
    /// and the current one (see `memo`).
    evaluated: FxHashMap<(u32, NaiveDate, bool), Memo>,
    world: u64,
    out: Vec<Output>,
    stats: EngineStats,
}

impl<S: KvStore> Engine<S> {
    /// Opens an engine over `store`, reloading calendars and the clock kept there.
    pub fn open(store: S, config: EngineConfig) -> Result<Self, EngineError> {
        let mut e = Engine {
            store,
            config,
            policies: FxHashMap::default(),
            schools: FxHashMap::default(),
            schedule: BTreeSet::new(),
            clock: None,
            checks_at: None,
            names: Names::default(),
            roster: FxHashMap::default(),
            days: RecordCache::default(),
            emitted: RecordCache::default(),
            finalize_memo: RefCell::default(),
            horizon_memo: RefCell::default(),
            timers: None,
            seen: FxHashMap::default(),
            seen_count: 0,
            dirty: Vec::new(),
            evaluated: FxHashMap::default(),
            world: 0,
            out: Vec::new(),
            stats: EngineStats::default(),
        };
        if let Some(b) = e.store.get(Table::Meta, META_CLOCK)? {
            let micros = codec::i64_from_key(&b).ok_or_else(|| EngineError::CorruptRecord {
                table: Table::Meta,
                key: "clock".into(),
                message: "not 8 bytes".into(),
            })?;
            e.clock = DateTime::from_timestamp_micros(micros);
        }
        for (k, v) in e.store.range(Table::Calendar, &[], &[0xff], usize::MAX)? {
            let key = String::from_utf8_lossy(&k).to_string();
            let cal = SchoolCalendar::from_avro_datum(&v).map_err(|err| EngineError::CorruptRecord {
                table: Table::Calendar,
                key: key.clone(),
                message: err.to_string(),
            })?;
            // A calendar whose policy is not registered yet is loaded again by the runtime.
            let _ = e.install_school(cal);
        }
        Ok(e)
    }

    /// The store. Changed day and emitted records reach it at `flush`,
    /// `stage` and `commit`; read it after one of those.
    pub fn store(&self) -> &S {
        &self.store
    }
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }
    pub fn into_store(self) -> S {
        self.store
    }
    pub fn clock(&self) -> Option<DateTime<Utc>> {
        self.clock
    }
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }
    pub fn school(&self, id: &str) -> Option<&Arc<School>> {
        self.schools.get(id)
    }

    /// Makes a custom policy available to calendars by its id.
    pub fn register_policy(&mut self, policy: Policy) {
        self.policies.insert(policy.id.clone(), Arc::new(policy));
        self.world_changed();
    }

    fn policy(&self, name: &str) -> Option<Arc<Policy>> {
        self.policies.get(name).cloned().or_else(|| Policy::preset(name).map(Arc::new))
    }

    /// Outputs emitted since the last call.
    pub fn take_outputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }

    /// Evaluates every window that records applied since the last flush
    /// touched, once, and emits what is news; then writes the changed state
    /// records to the store's buffer. `advance` evaluates before it moves
    /// the clock; a runtime flushes at the end of a batch.
    pub fn flush(&mut self) -> Result<(), EngineError> {
        self.evaluate_touched()?;
        self.write_back()
    }

    /// Persists the clock and every buffered state change.
    pub fn commit(&mut self) -> Result<(), EngineError> {
        self.stage()?;
        self.store.commit()?;
        Ok(())
    }

    /// Writes the clock into the store's buffer without committing, so a
    /// runtime can copy the whole batch of writes elsewhere first.
    pub fn stage(&mut self) -> Result<(), EngineError> {
        self.write_back()?;
        if let Some(c) = self.clock {
            self.store.put(Table::Meta, META_CLOCK, &codec::key_i64(c.timestamp_micros()))?;
        }
        Ok(())
    }

    /// Forgets outputs and in-memory caches after the store was rolled back
    /// (an aborted transaction): state is re-read from the store.
    pub fn reload(&mut self) -> Result<(), EngineError> {
        self.out.clear();
        self.dirty.clear();
        self.evaluated.clear();
        self.world_changed();
        self.roster.clear();
        self.days.clear();
        self.emitted.clear();
        self.seen.clear();
        self.seen_count = 0;
        self.timers = None;
        self.clock = None;
        if let Some(b) = self.store.get(Table::Meta, META_CLOCK)? {
            self.clock = codec::i64_from_key(&b).and_then(DateTime::from_timestamp_micros);
        }
        let after = self.clock.map(|c| c.timestamp_micros()).unwrap_or(i64::MIN);
        let schools: Vec<Arc<School>> = self.schools.values().cloned().collect();
        self.schedule.clear();
        for school in schools {
            for (at, action) in school.close_schedule() {
                let at = at.timestamp_micros();
                if at > after {
                    self.schedule.insert((at, school.calendar.school_id.clone(), action));
                }
            }
        }
        Ok(())
    }
}
