//! The engine: applies world records and events to state, fires closes and
//! timers from an explicit clock, versions determinations and raises outreach.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use rollcall_model::avro::AvroRecord;
use rollcall_model::{
    AbsenceReport, ActivityEvent, ActivityKind, Determination, Finality, OutreachKind, OutreachTrigger, RecipientRole,
    SchoolCalendar, Scope, Status, StudentRecord,
};
use rollcall_policy::{ContactThreshold, Policy, Rule};

use crate::cache::{FxHashMap, FxHashSet, RecordCache};
use crate::codec::{self, CodecError};
use crate::eval::{self, BlockAttendance, DayInput, Outcome};
use crate::kv::{KvStore, StoreError, Table};
use crate::school::{monday_of, FinalizeKey, School, SchoolAction};
use crate::state::{self, DayMark, DayRecord, Emitted, Fact, ReportFact, TimerAction, YearRecord};

/// Settings of the engine itself (policies carry the attendance rules).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Events further than this from the clock, either way, are refused as absurd.
    pub max_clock_skew_days: i64,
    /// Cap on decoded roster records kept in memory.
    pub roster_cache_entries: usize,
    /// Cap on decoded day and emitted records kept in memory between batches.
    pub record_cache_entries: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { max_clock_skew_days: 400, roster_cache_entries: 200_000, record_cache_entries: 400_000 }
    }
}

/// Something the engine emits.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Determination(Determination),
    Outreach(OutreachTrigger),
}

/// Why a record was refused. The runtime dead-letters it with this kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectKind {
    UnknownStudent,
    UnknownSchool,
    SchoolMismatch,
    UnknownPolicy,
    InvalidRecord,
    TimestampOutOfRange,
    TooLate,
}

impl RejectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectKind::UnknownStudent => "UNKNOWN_STUDENT",
            RejectKind::UnknownSchool => "UNKNOWN_SCHOOL",
            RejectKind::SchoolMismatch => "SCHOOL_MISMATCH",
            RejectKind::UnknownPolicy => "UNKNOWN_POLICY",
            RejectKind::InvalidRecord => "INVALID_RECORD",
            RejectKind::TimestampOutOfRange => "TIMESTAMP_OUT_OF_RANGE",
            RejectKind::TooLate => "TOO_LATE",
        }
    }
}

/// A refused record: the kind and a message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", kind.as_str())]
pub struct Rejection {
    pub kind: RejectKind,
    pub message: String,
}

fn reject(kind: RejectKind, message: impl Into<String>) -> ApplyError {
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
}

const META_CLOCK: &[u8] = b"clock";

/// Bound on the event-id hashes kept in memory (12 bytes and some each).
const SEEN_IDS_CAP: usize = 4_000_000;

/// The event ids of one student, by hash: the local date of the event
/// (whose day record holds it), and for the rare hash shared by ids of
/// different dates, the other dates.
#[derive(Default)]
struct SeenIds {
    first: FxHashMap<u64, NaiveDate>,
    more: Vec<(u64, NaiveDate)>,
}

impl SeenIds {
    /// Returns whether an entry was added.
    fn note(&mut self, hash: u64, date: NaiveDate) -> bool {
        match self.first.entry(hash) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(date);
                true
            }
            std::collections::hash_map::Entry::Occupied(o) => {
                if *o.get() == date || self.more.contains(&(hash, date)) {
                    false
                } else {
                    self.more.push((hash, date));
                    true
                }
            }
        }
    }
}

/// Engine-local numbers for the student and section ids the engine has
/// met, so that the caches' keys are a few integers: hashing and comparing
/// them costs no string work, and a lookup builds no byte key. The numbers
/// never reach the store or the outputs, and differ between processes.
#[derive(Default)]
struct Names {
    numbers: FxHashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Names {
    fn number(&mut self, name: &str) -> u32 {
        if let Some(n) = self.numbers.get(name) {
            return *n;
        }
        let n = self.names.len() as u32;
        self.names.push(name.into());
        self.numbers.insert(name.into(), n);
        n
    }
    fn get(&self, name: &str) -> Option<u32> {
        self.numbers.get(name).copied()
    }
    fn name(&self, n: u32) -> &str {
        &self.names[n as usize]
    }
}

/// A student's day record in the cache (`state::day_key` in the store).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct DayKey {
    student: u32,
    date: NaiveDate,
}

/// An emitted version in the cache (`state::emitted_key` in the store).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct EmittedKey {
    student: u32,
    date: NaiveDate,
    scope: Scope,
    /// The section's number, or `NO_SECTION`.
    section: u32,
}

const NO_SECTION: u32 = u32::MAX;

/// The attendance engine over a key-value store.
pub struct Engine<S: KvStore> {
    store: S,
    config: EngineConfig,
    policies: FxHashMap<String, Arc<Policy>>,
    schools: FxHashMap<String, Arc<School>>,
    /// Future school closes: (instant micros, school id, action).
    schedule: BTreeSet<(i64, String, SchoolAction)>,
    clock: Option<DateTime<Utc>>,
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
    /// Windows touched since the last flush: (student number, date or
    /// Monday, is week); evaluated in the order of the student ids.
    dirty: Vec<(u32, NaiveDate, bool)>,
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
    }

    /// Outputs emitted since the last call.
    pub fn take_outputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
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

    fn policy(&self, name: &str) -> Option<Arc<Policy>> {
        self.policies.get(name).cloned().or_else(|| Policy::preset(name).map(Arc::new))
    }

    fn install_school(&mut self, cal: SchoolCalendar) -> Result<(), Rejection> {
        let bad = |kind, message: String| Rejection { kind, message };
        if cal.school_id.is_empty() {
            return Err(bad(RejectKind::InvalidRecord, "calendar: school_id is empty".into()));
        }
        let tz = Tz::from_str(&cal.timezone).map_err(|_| {
            bad(
                RejectKind::InvalidRecord,
                format!("calendar of school `{}`: timezone `{}` is not an IANA time zone name", cal.school_id, cal.timezone),
            )
        })?;
        let policy = self.policy(&cal.policy).ok_or_else(|| {
            bad(
                RejectKind::UnknownPolicy,
                format!(
                    "calendar of school `{}`: policy `{}` is neither a preset ({}) nor a registered policy",
                    cal.school_id,
                    cal.policy,
                    rollcall_policy::PRESET_IDS.join(", ")
                ),
            )
        })?;
        let mut seen = BTreeSet::new();
        for (i, d) in cal.days.iter().enumerate() {
            if !seen.insert(d.date) {
                return Err(bad(
                    RejectKind::InvalidRecord,
                    format!("calendar of school `{}`: days[{i}]: date {} is listed twice", cal.school_id, d.date),
                ));
            }
            if d.instructional && d.end <= d.start {
                return Err(bad(
                    RejectKind::InvalidRecord,
                    format!(
                        "calendar of school `{}`: days[{i}] ({}): an instructional day needs start before end, got {}–{}",
                        cal.school_id, d.date, d.start, d.end
                    ),
                ));
            }
        }
        let id = cal.school_id.clone();
        let school = Arc::new(School::new(cal, tz, policy));
        self.schedule.retain(|(_, s, _)| *s != id);
        let after = self.clock.map(|c| c.timestamp_micros()).unwrap_or(i64::MIN);
        for (at, action) in school.close_schedule() {
            let at = at.timestamp_micros();
            if at > after {
                self.schedule.insert((at, id.clone(), action));
            }
        }
        self.schools.insert(id, school);
        self.finalize_memo.get_mut().clear();
        self.horizon_memo.get_mut().clear();
        Ok(())
    }

    /// Loads (or replaces) a school calendar.
    pub fn load_calendar(&mut self, cal: SchoolCalendar) -> Result<(), ApplyError> {
        let bytes = cal.to_avro_datum().map_err(|e| reject(RejectKind::InvalidRecord, e.to_string()))?;
        let key = cal.school_id.clone();
        self.install_school(cal).map_err(ApplyError::Rejected)?;
        self.store.put(Table::Calendar, key.as_bytes(), &bytes).map_err(EngineError::from)?;
        Ok(())
    }

    /// Loads (or replaces) a student's roster record.
    pub fn upsert_student(&mut self, rec: StudentRecord) -> Result<(), ApplyError> {
        if rec.student_id.is_empty() || rec.student_id.contains('\0') {
            return Err(reject(RejectKind::InvalidRecord, "roster record: student_id is empty or contains NUL"));
        }
        if rec.school_id.is_empty() {
            return Err(reject(RejectKind::InvalidRecord, format!("roster record: school_id is empty")));
        }
        for (i, e) in rec.enrollments.iter().enumerate() {
            for (j, m) in e.meetings.iter().enumerate() {
                if m.end <= m.start {
                    return Err(reject(
                        RejectKind::InvalidRecord,
                        format!("roster record: enrollments[{i}].meetings[{j}]: start {} is not before end {}", m.start, m.end),
                    ));
                }
            }
        }
        if let Some(old) = self.student(&rec.student_id)? {
            if old.school_id != rec.school_id {
                self.store
                    .delete(Table::SchoolStudents, &state::school_student_key(&old.school_id, &old.student_id))
                    .map_err(EngineError::from)?;
            }
        }
        let bytes = rec.to_avro_datum().map_err(|e| reject(RejectKind::InvalidRecord, e.to_string()))?;
        let store = &mut self.store;
        store.put(Table::Roster, rec.student_id.as_bytes(), &bytes).map_err(EngineError::from)?;
        store
            .put(Table::SchoolStudents, &state::school_student_key(&rec.school_id, &rec.student_id), &[])
            .map_err(EngineError::from)?;
        if self.roster.len() >= self.config.roster_cache_entries {
            self.roster.clear();
        }
        let no = self.names.number(&rec.student_id);
        self.roster.insert(no, Arc::new(rec));
        Ok(())
    }

    fn student(&mut self, id: &str) -> Result<Option<Arc<StudentRecord>>, EngineError> {
        Ok(self.student_no(id)?.map(|(_, s)| s))
    }

    /// A student's roster record and number.
    fn student_no(&mut self, id: &str) -> Result<Option<(u32, Arc<StudentRecord>)>, EngineError> {
        if let Some(no) = self.names.get(id) {
            if let Some(s) = self.roster.get(&no) {
                return Ok(Some((no, s.clone())));
            }
        }
        let Some(bytes) = self.store.get(Table::Roster, id.as_bytes())? else { return Ok(None) };
        let rec = StudentRecord::from_avro_datum(&bytes).map_err(|e| EngineError::CorruptRecord {
            table: Table::Roster,
            key: id.to_string(),
            message: e.to_string(),
        })?;
        let rec = Arc::new(rec);
        if self.roster.len() >= self.config.roster_cache_entries {
            self.roster.clear();
        }
        let no = self.names.number(id);
        self.roster.insert(no, rec.clone());
        Ok(Some((no, rec)))
    }

    /// The roster record of a student number.
    fn student_by_no(&mut self, no: u32) -> Result<Option<Arc<StudentRecord>>, EngineError> {
        if let Some(s) = self.roster.get(&no) {
            return Ok(Some(s.clone()));
        }
        let id = self.names.name(no).to_string();
        self.student(&id)
    }

    fn now_or(&self, fallback: DateTime<Utc>) -> DateTime<Utc> {
        self.clock.unwrap_or(fallback)
    }

    /// Makes sure the day record under `key` is in the cache.
    fn cache_day(&mut self, key: DayKey) -> Result<(), EngineError> {
        if self.days.get(&key).is_some() {
            return Ok(());
        }
        let store_key = state::day_key(self.names.name(key.student), key.date);
        let value = self.store.get(Table::Day, &store_key)?.map(|b| decode_stored(Table::Day, &store_key, &b, DayRecord::decode));
        self.days.insert_clean(key, value.transpose()?.map(Arc::new));
        Ok(())
    }

    /// A student's day record, if there is one.
    fn day_record(&mut self, student: u32, date: NaiveDate) -> Result<Option<Arc<DayRecord>>, EngineError> {
        let key = DayKey { student, date };
        self.cache_day(key)?;
        Ok(self.days.get(&key).flatten().cloned())
    }

    fn load_day(&mut self, student: u32, date: NaiveDate) -> Result<Arc<DayRecord>, EngineError> {
        Ok(self.day_record(student, date)?.unwrap_or_default())
    }

    /// A student's day record to change; created empty when there is none.
    fn day_mut(&mut self, student: u32, date: NaiveDate) -> Result<&mut DayRecord, EngineError> {
        let key = DayKey { student, date };
        self.cache_day(key)?;
        Ok(self.days.modify(&key).expect("cached just now"))
    }

    /// Writes changed day and emitted records to the store's buffer, and
    /// bounds the caches.
    fn write_back(&mut self) -> Result<(), EngineError> {
        let store = &mut self.store;
        let names = &self.names;
        self.days.write_back(|k, v| {
            let key = state::day_key(names.name(k.student), k.date);
            match v {
                Some(v) => store.put(Table::Day, &key, &v.encode()),
                None => store.delete(Table::Day, &key),
            }
        })?;
        self.emitted.write_back(|k, v| {
            let section = (k.section != NO_SECTION).then(|| names.name(k.section));
            let key = state::emitted_key(names.name(k.student), k.date, k.scope, section);
            match v {
                Some(v) => store.put(Table::Emitted, &key, &v.encode()),
                None => store.delete(Table::Emitted, &key),
            }
        })?;
        if self.days.len() + self.emitted.len() > self.config.record_cache_entries {
            self.days.clear();
            self.emitted.clear();
        }
        // Here, where every changed record is in the store (see `load_seen`).
        if self.seen_count > SEEN_IDS_CAP {
            self.seen.clear();
            self.seen_count = 0;
        }
        Ok(())
    }

    /// The last instant at which a window of `date` may still change: its
    /// latest finalization plus the correction horizon.
    fn correctable_until(&self, school: &School, date: NaiveDate) -> DateTime<Utc> {
        let key = (school as *const School as usize, date);
        if let Some(t) = self.horizon_memo.borrow().get(&key) {
            return *t;
        }
        let t = self.compute_correctable_until(school, date);
        self.horizon_memo.borrow_mut().insert(key, t);
        t
    }

    /// When a window of `date` closed by `rule` becomes final.
    fn finalize_instant(&self, school: &School, date: NaiveDate, rule: FinalizeKey) -> DateTime<Utc> {
        let key = (school as *const School as usize, date, rule);
        if let Some(t) = self.finalize_memo.borrow().get(&key) {
            return *t;
        }
        let t = school.finalize_instant(date, rule);
        self.finalize_memo.borrow_mut().insert(key, t);
        t
    }

    fn compute_correctable_until(&self, school: &School, date: NaiveDate) -> DateTime<Utc> {
        let f = &school.policy.finalize;
        let last = [f.in_person_day, f.remote_day, f.offline_day, f.week]
            .into_iter()
            .map(|r| school.finalize_instant(date, FinalizeKey::from(r)))
            .max()
            .unwrap_or_else(|| school.start_of(date));
        last + Duration::days(school.policy.correction_horizon_days as i64)
    }

    /// `what` names the record in a refusal; it is only built for one.
    fn check_time(&self, school: &School, at: DateTime<Utc>, what: &dyn Fn() -> String) -> Result<NaiveDate, ApplyError> {
        let date = school.local_date(at);
        if let Some(now) = self.clock {
            let skew = Duration::days(self.config.max_clock_skew_days);
            if at > now + skew || at < now - skew {
                return Err(reject(
                    RejectKind::TimestampOutOfRange,
                    format!("{} {at} is more than {} days from the processing clock {now}", what(), self.config.max_clock_skew_days),
                ));
            }
            if now > self.correctable_until(school, date) {
                return Err(reject(
                    RejectKind::TooLate,
                    format!(
                        "{} is for {date}, whose windows were final and past the {}-day correction horizon at {now}",
                        what(),
                        school.policy.correction_horizon_days
                    ),
                ));
            }
        }
        Ok(date)
    }

    fn resolve(
        &mut self,
        student_id: &str,
        school_id: &str,
        what: &dyn Fn() -> String,
    ) -> Result<(u32, Arc<StudentRecord>, Arc<School>), ApplyError> {
        let (no, student) = self
            .student_no(student_id)?
            .ok_or_else(|| reject(RejectKind::UnknownStudent, format!("{}: student `{student_id}` is not on the roster", what())))?;
        if !school_id.is_empty() && school_id != student.school_id {
            return Err(reject(
                RejectKind::SchoolMismatch,
                format!("{}: school `{school_id}` but the roster has student `{student_id}` at `{}`", what(), student.school_id),
            ));
        }
        let school = self.schools.get(&student.school_id).cloned().ok_or_else(|| {
            reject(RejectKind::UnknownSchool, format!("{}: no calendar for school `{}`", what(), student.school_id))
        })?;
        Ok((no, student, school))
    }

    /// Applies one activity event.
    pub fn apply_event(&mut self, ev: &ActivityEvent) -> Result<Applied, ApplyError> {
        let what = || format!("event `{}`", ev.event_id);
        if ev.event_id.is_empty() {
            return Err(reject(RejectKind::InvalidRecord, "event: event_id is empty"));
        }
        let (no, student, school) = self.resolve(&ev.student_id, &ev.school_id, &what)?;
        let date = self.check_time(&school, ev.occurred_at, &|| format!("{} occurred_at", what()))?;
        let at = self.now_or(ev.occurred_at);
        let hash = xxhash_rust::xxh3::xxh3_64(ev.event_id.as_bytes());
        if self.seen_before(no, hash, &ev.event_id)? {
            self.stats.duplicates += 1;
            return Ok(Applied::Duplicate);
        }
        if self.seen.get_mut(&no).expect("loaded by seen_before").note(hash, date) {
            self.seen_count += 1;
        }
        let fact = Fact {
            event_id: ev.event_id.clone(),
            kind: ev.kind,
            direction: ev.direction,
            section: ev.section_id.clone(),
            staff: ev.staff_id.clone(),
            at: ev.occurred_at.timestamp_micros(),
            local_date: date,
            assigned: ev.assigned_date,
            session: ev.live_session_id.clone(),
            duration_s: ev.duration_seconds,
        };
        let assigned = ev
            .assigned_date
            .filter(|a| *a != date)
            .filter(|_| matches!(ev.kind, ActivityKind::Submission | ActivityKind::OfflineWorkReturned))
            // Work for a day beyond the horizon still counts as activity on the day it was done.
            .filter(|a| self.clock.map(|now| now <= self.correctable_until(&school, *a)).unwrap_or(true));
        match assigned {
            None => self.day_mut(no, date)?.facts.push(fact),
            Some(a) => {
                self.day_mut(no, date)?.facts.push(fact.clone());
                let arec = self.day_mut(no, a)?;
                if !arec.has_event(&ev.event_id) {
                    arec.facts.push(fact);
                }
            }
        }
        self.stats.events += 1;
        if at > self.closes_at(&school, &student, date) {
            self.stats.late_events += 1;
        }
        // Evaluated at the next flush, once for everything that arrived together.
        self.dirty.push((no, date, false));
        if let Some(a) = assigned {
            self.dirty.push((no, a, false));
        }
        if matches!(school.policy.rule, Rule::WeeklyContacts(_)) {
            self.dirty.push((no, monday_of(date), true));
        }
        if eval::reads_next_day(&school.policy) && matches!(ev.kind, ActivityKind::Message | ActivityKind::TwoWayContact) {
            if let Some(prev) = date.pred_opt() {
                self.dirty.push((no, prev, false));
            }
        }
        Ok(Applied::Accepted)
    }

    /// Whether the student's day records hold this event id already: the
    /// record of the date its hash points to (one record, usually cached)
    /// is searched for the id itself, so a hash collision is never taken
    /// for a duplicate.
    fn seen_before(&mut self, no: u32, hash: u64, event_id: &str) -> Result<bool, EngineError> {
        if !self.seen.contains_key(&no) {
            self.load_seen(no)?;
        }
        let seen = &self.seen[&no];
        let Some(first) = seen.first.get(&hash).copied() else { return Ok(false) };
        let more: Vec<NaiveDate> = seen.more.iter().filter(|(h, _)| *h == hash).map(|(_, d)| *d).collect();
        for date in std::iter::once(first).chain(more) {
            let key = DayKey { student: no, date };
            self.cache_day(key)?;
            if self.days.get(&key).flatten().is_some_and(|r| r.has_event(event_id)) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Reads a student's day records (into the cache as well) to learn the
    /// event ids they hold. Every record changed since the last write-back
    /// that holds facts was changed by an event of a student whose ids were
    /// in memory already, so the store has all of this student's facts.
    fn load_seen(&mut self, no: u32) -> Result<(), EngineError> {
        let prefix = state::student_prefix(self.names.name(no));
        let mut seen = SeenIds::default();
        for (k, v) in self.store.range(Table::Day, &prefix, &state::prefix_end(&prefix), usize::MAX)? {
            let Some(date) = codec::date_from_key(&k[prefix.len()..]) else {
                return Err(EngineError::CorruptRecord {
                    table: Table::Day,
                    key: String::from_utf8_lossy(&k).into_owned(),
                    message: "the key does not end in a date".into(),
                });
            };
            let key = DayKey { student: no, date };
            let rec = match self.days.get(&key) {
                Some(Some(r)) => r.clone(),
                Some(None) => continue,
                None => {
                    let rec = Arc::new(decode_stored(Table::Day, &k, &v, DayRecord::decode)?);
                    self.days.insert_clean(key, Some(rec.clone()));
                    rec
                }
            };
            for f in &rec.facts {
                seen.note(xxhash_rust::xxh3::xxh3_64(f.event_id.as_bytes()), f.local_date);
            }
        }
        self.seen_count += seen.first.len() + seen.more.len();
        self.seen.insert(no, seen);
        Ok(())
    }

    /// Applies one absence report.
    pub fn apply_report(&mut self, r: &AbsenceReport) -> Result<Applied, ApplyError> {
        let what = || format!("absence report `{}`", r.report_id);
        if r.report_id.is_empty() {
            return Err(reject(RejectKind::InvalidRecord, "absence report: report_id is empty"));
        }
        let (no, _, school) = self.resolve(&r.student_id, "", &what)?;
        let noon = school.instant(r.date, 12 * 60);
        self.check_time(&school, noon, &|| format!("{} date", what()))?;
        let key = DayKey { student: no, date: r.date };
        self.cache_day(key)?;
        if self.days.get(&key).flatten().is_some_and(|rec| rec.reports.iter().any(|x| x.report_id == r.report_id)) {
            self.stats.duplicates += 1;
            return Ok(Applied::Duplicate);
        }
        self.day_mut(no, r.date)?.reports.push(ReportFact {
            report_id: r.report_id.clone(),
            reason: r.reason,
            reporter: r.reporter,
        });
        self.stats.reports += 1;
        self.dirty.push((no, r.date, false));
        Ok(Applied::Accepted)
    }

    /// When the window of `date` closes for this student.
    fn closes_at(&self, school: &School, student: &StudentRecord, date: NaiveDate) -> DateTime<Utc> {
        let f = &school.policy.finalize;
        let mode = student.mode_on(date);
        let rule = if matches!(school.policy.rule, Rule::WeeklyContacts(_)) && mode != rollcall_model::Mode::InPerson {
            f.week
        } else if mode == rollcall_model::Mode::InPerson {
            f.in_person_day
        } else if mode.is_offline() {
            f.offline_day
        } else {
            f.remote_day
        };
        self.finalize_instant(school, date, rule.into())
    }

    /// Evaluates every window that records applied since the last flush
    /// touched, once, and emits what is news; then writes the changed state
    /// records to the store's buffer. `advance` evaluates before it moves
    /// the clock; a runtime flushes at the end of a batch.
    pub fn flush(&mut self) -> Result<(), EngineError> {
        self.evaluate_touched()?;
        self.write_back()
    }

    fn evaluate_touched(&mut self) -> Result<(), EngineError> {
        if self.dirty.is_empty() {
            return Ok(());
        }
        let at = self.clock.unwrap_or_default();
        let mut dirty = std::mem::take(&mut self.dirty);
        // In the order of the ids, as before numbers: outputs must not
        // depend on the order in which this process met its students.
        let names = &self.names;
        dirty.sort_unstable_by(|a, b| (names.name(a.0), a.1, a.2).cmp(&(names.name(b.0), b.1, b.2)));
        dirty.dedup();
        for (no, date, week) in dirty {
            let Some(student) = self.student_by_no(no)? else { continue };
            let Some(school) = self.schools.get(&student.school_id).cloned() else { continue };
            if week {
                self.reevaluate_week(no, &student, &school, date, false, at)?;
            } else {
                self.reevaluate_day(no, &student, &school, date, None, at)?;
            }
        }
        Ok(())
    }

    /// Moves the clock to `now`: evaluates what arrived since the last flush,
    /// then fires every close and timer due by then, in time order. Records
    /// that arrive at one instant are evaluated together, so their order
    /// among themselves cannot matter; a clock that does not move fires nothing.
    pub fn advance(&mut self, now: DateTime<Utc>) -> Result<(), EngineError> {
        if self.clock.is_none() {
            self.clock = Some(now);
        } else if self.clock.map(|c| now <= c).unwrap_or(false) {
            return Ok(());
        }
        self.evaluate_touched()?;
        let now_us = now.timestamp_micros();
        loop {
            let next_school = self.schedule.first().filter(|(at, _, _)| *at <= now_us).cloned();
            let next_timer = self.due_timer(now_us)?;
            let timer_at = next_timer.as_ref().and_then(|(k, _)| codec::i64_from_key(k));
            match (next_school, timer_at) {
                (None, None) => break,
                (Some(s), t) if t.map(|t| s.0 <= t).unwrap_or(true) => {
                    self.schedule.remove(&s);
                    let at = DateTime::from_timestamp_micros(s.0).unwrap_or(now);
                    self.set_clock(at);
                    self.fire_school(&s.1, &s.2, at)?;
                }
                _ => {
                    let Some((key, _)) = next_timer else { break };
                    self.store.delete(Table::Timer, &key)?;
                    self.pending_timers()?.remove(&key);
                    let Some((due, student, action)) = state::parse_timer_key(&key) else {
                        return Err(EngineError::CorruptRecord {
                            table: Table::Timer,
                            key: format!("{key:?}"),
                            message: "timer key does not parse".into(),
                        });
                    };
                    let at = DateTime::from_timestamp_micros(due).unwrap_or(now);
                    self.set_clock(at);
                    self.stats.timers_fired += 1;
                    self.fire_timer(&student, action, at)?;
                }
            }
        }
        self.set_clock(now);
        Ok(())
    }

    /// The pending timer keys (see `timers`).
    fn pending_timers(&mut self) -> Result<&mut BTreeSet<Vec<u8>>, EngineError> {
        if self.timers.is_none() {
            let rows = self.store.range(Table::Timer, &[], &[0xff; 9], usize::MAX)?;
            self.timers = Some(rows.into_iter().map(|(k, _)| k).collect());
        }
        Ok(self.timers.as_mut().expect("read above"))
    }

    /// The earliest timer if it is due by `now_us`.
    fn due_timer(&mut self, now_us: i64) -> Result<Option<(Vec<u8>, Vec<u8>)>, EngineError> {
        let first = self.pending_timers()?.first();
        Ok(first.filter(|k| codec::i64_from_key(k).is_some_and(|d| d <= now_us)).map(|k| (k.clone(), Vec::new())))
    }

    fn set_clock(&mut self, t: DateTime<Utc>) {
        if self.clock.map(|c| t > c).unwrap_or(true) {
            self.clock = Some(t);
        }
    }

    fn school_students(&self, school: &str) -> Result<Vec<String>, EngineError> {
        let prefix = state::student_prefix(school);
        let rows = self.store.range(Table::SchoolStudents, &prefix, &state::prefix_end(&prefix), usize::MAX)?;
        Ok(rows.into_iter().map(|(k, _)| String::from_utf8_lossy(&k[prefix.len()..]).into_owned()).collect())
    }

    fn fire_school(&mut self, school_id: &str, action: &SchoolAction, at: DateTime<Utc>) -> Result<(), EngineError> {
        let Some(school) = self.schools.get(school_id).cloned() else { return Ok(()) };
        if matches!(action, SchoolAction::CloseWeek { .. }) {
            // Closing a week reads emitted versions by range and purges old
            // state by range, in the store: it must hold every change.
            self.write_back()?;
        }
        let mut closed: FxHashSet<u32> = FxHashSet::default();
        for sid in self.school_students(school_id)? {
            let Some((no, student)) = self.student_no(&sid)? else { continue };
            if student.school_id != school_id {
                continue;
            }
            match action {
                SchoolAction::CloseDays { date, rules } => {
                    self.reevaluate_day(no, &student, &school, *date, Some(rules), at)?;
                }
                SchoolAction::DayStarts { date } => self.schedule_morning_check(&student, &school, *date)?,
                SchoolAction::CloseWeek { monday } => {
                    self.close_week(no, &student, &school, *monday, at)?;
                    closed.insert(no);
                }
            }
        }
        if let SchoolAction::CloseWeek { monday } = action {
            // The cached records must not outlive what `purge_before` removed
            // from the store: forget the purged dates of these students.
            let keep_from = purge_horizon(&school, *monday);
            self.days.forget(|k| k.date < keep_from && closed.contains(&k.student));
            self.emitted.forget(|k| k.date < keep_from && closed.contains(&k.student));
        }
        Ok(())
    }

    /// Evaluates a student's day and emits what changed. With `closing`, the
    /// windows closed by one of those rules become FINAL.
    fn reevaluate_day(
        &mut self,
        no: u32,
        student: &StudentRecord,
        school: &School,
        date: NaiveDate,
        closing: Option<&[FinalizeKey]>,
        at: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let Some(day) = school.instructional(date) else { return Ok(()) };
        let record = self.load_day(no, date)?;
        let next = match date.succ_opt() {
            Some(d1) if eval::reads_next_day(&school.policy) => self.day_record(no, d1)?,
            _ => None,
        };
        let input = DayInput { school, day, student, record: &record, next: next.as_deref() };
        if closing.is_none() && at <= self.closes_at(school, student, date) {
            if let Some(r) = input.unverified_hardship() {
                self.ask_to_verify_hardship(student, school, date, r, at)?;
            }
        }
        let outcomes = match &school.policy.rule {
            Rule::Blocks(p) if p.teacher_follow_up && closing.is_none() => {
                let blocks = eval::block_attendance(&input);
                self.schedule_follow_ups(&input, &blocks)?;
                eval::blocks_day(&input, p, &blocks).into_iter().collect()
            }
            _ => eval::evaluate_day(&input),
        };
        let mut all_final = !outcomes.is_empty();
        let mut changed_final = false;
        for o in &outcomes {
            let finalize = closing.map(|rules| rules.contains(&o.closes_by)).unwrap_or(false);
            let (emitted, now_final) = self.emit(no, student, school, o, finalize, at)?;
            all_final &= now_final;
            changed_final |= emitted && now_final;
        }
        if all_final && changed_final {
            self.update_year(student, school, date, &outcomes, at)?;
        }
        Ok(())
    }

    fn reevaluate_week(
        &mut self,
        no: u32,
        student: &StudentRecord,
        school: &School,
        monday: NaiveDate,
        finalize: bool,
        at: DateTime<Utc>,
    ) -> Result<Vec<(String, u32)>, EngineError> {
        let mut records = Vec::with_capacity(7);
        for d in 0..7 {
            let date = monday + Duration::days(d);
            if let Some(rec) = self.day_record(no, date)? {
                records.push((date, rec));
            }
        }
        let days: Vec<(NaiveDate, &DayRecord)> = records.iter().map(|(d, r)| (*d, &**r)).collect();
        let outcomes = eval::evaluate_week(school, student, monday, &days);
        for o in &outcomes {
            self.emit(no, student, school, o, finalize, at)?;
        }
        // (section, contacts): what the low-contact check reads.
        Ok(outcomes.iter().filter_map(|o| Some((o.section?.to_string(), o.contacts.unwrap_or(0) as u32))).collect())
    }

    fn emitted_key(&mut self, student: u32, date: NaiveDate, scope: Scope, section: Option<&str>) -> EmittedKey {
        let section = section.map(|s| self.names.number(s)).unwrap_or(NO_SECTION);
        EmittedKey { student, date, scope, section }
    }

    fn load_emitted(&mut self, key: EmittedKey) -> Result<Option<Arc<Emitted>>, EngineError> {
        if let Some(v) = self.emitted.get(&key) {
            return Ok(v.cloned());
        }
        let section = (key.section != NO_SECTION).then(|| self.names.name(key.section));
        let store_key = state::emitted_key(self.names.name(key.student), key.date, key.scope, section);
        let value = self.store.get(Table::Emitted, &store_key)?.map(|b| decode_stored(Table::Emitted, &store_key, &b, Emitted::decode));
        let value = value.transpose()?.map(Arc::new);
        self.emitted.insert_clean(key, value.clone());
        Ok(value)
    }

    /// Versions and emits an outcome if it is news. Returns (emitted, final).
    fn emit(
        &mut self,
        no: u32,
        student: &StudentRecord,
        school: &School,
        o: &Outcome,
        finalize: bool,
        at: DateTime<Utc>,
    ) -> Result<(bool, bool), EngineError> {
        let key = self.emitted_key(no, o.date, o.scope, o.section);
        let prev = self.load_emitted(key)?;
        let differs = |p: &Emitted| {
            p.status != o.status
                || p.code != o.code
                || p.category.as_deref() != o.category
                || p.minutes != o.minutes
                || p.contacts != o.contacts
        };
        let finality = match &prev {
            Some(p) if p.is_final() => {
                if differs(p) {
                    Finality::Correction
                } else {
                    return Ok((false, true));
                }
            }
            Some(p) => {
                if finalize {
                    Finality::Final
                } else if o.decided() && differs(p) {
                    Finality::Provisional
                } else {
                    return Ok((false, false));
                }
            }
            None => {
                if finalize {
                    Finality::Final
                } else if o.decided() {
                    Finality::Provisional
                } else {
                    return Ok((false, false));
                }
            }
        };
        let version = prev.as_ref().map(|p| p.version).unwrap_or(0) + 1;
        let em = Emitted {
            version,
            status: o.status,
            code: o.code.to_string(),
            category: o.category.map(str::to_string),
            minutes: o.minutes,
            contacts: o.contacts,
            finality,
        };
        self.emitted.set(key, em);
        let det_key = rollcall_model::determination_key(&student.student_id, o.scope, o.date, o.section);
        self.out.push(Output::Determination(Determination {
            determination_id: format!("{det_key}#{version}"),
            student_id: student.student_id.clone(),
            school_id: student.school_id.clone(),
            scope: o.scope,
            date: o.date,
            section_id: o.section.map(str::to_string),
            policy: school.policy.id.clone(),
            status: o.status,
            code: o.code.to_string(),
            attendance_type: o.attendance_type,
            minutes: o.minutes,
            contacts: o.contacts,
            category: o.category.map(str::to_string),
            rule: o.rule.to_string(),
            evidence: o.evidence.iter().map(|e| e.to_string()).collect(),
            version: version as i32,
            finality,
            decided_at: at,
        }));
        self.stats.determinations += 1;
        if finality == Finality::Correction {
            self.stats.corrections += 1;
        }
        Ok((true, finality != Finality::Provisional))
    }

    /// Counts a closed day toward the school year and raises the outreach
    /// that its counts call for.
    fn update_year(
        &mut self,
        student: &StudentRecord,
        school: &School,
        date: NaiveDate,
        outcomes: &[Outcome],
        at: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let day = outcomes.iter().find(|o| o.scope == Scope::Day);
        let mark = match day {
            Some(d) => DayMark { absent: d.status.is_absent(), unexcused: d.status == Status::AbsentUnexcused },
            None => {
                let sections: Vec<&Outcome> = outcomes.iter().filter(|o| o.scope == Scope::Section).collect();
                if sections.is_empty() {
                    return Ok(());
                }
                let absent = sections.iter().all(|o| o.status.is_absent());
                DayMark { absent, unexcused: absent && sections.iter().any(|o| o.status == Status::AbsentUnexcused) }
            }
        };
        let sy = if date.month() >= 7 { date.year() } else { date.year() - 1 };
        let key = state::year_key(&student.student_id, sy);
        let mut year = match self.store.get(Table::Year, &key)? {
            None => YearRecord::default(),
            Some(b) => YearRecord::decode(&b).map_err(|source| EngineError::Corrupt {
                table: Table::Year,
                key: format!("{}/{sy}", student.student_id),
                source,
            })?,
        };
        year.set_mark(date, mark);
        let policy = school.policy.clone();
        let year_start = NaiveDate::from_ymd_opt(sy, 7, 1).unwrap_or(date);
        if let Rule::ByMode(p) = &policy.rule {
            if p.truancy_referral_after > 0 && !year.truancy_referred && year.unexcused() >= p.truancy_referral_after {
                year.truancy_referred = true;
                let evidence = day_keys(student, &year, |m| m.unexcused);
                self.raise(Raise {
                    student,
                    policy: &policy,
                    kind: OutreachKind::TruancyReferral,
                    role: RecipientRole::AttendanceOfficer,
                    staff: None,
                    section: None,
                    window: (year_start, date),
                    reason: format!(
                        "{} unexcused absences this school year (referral at {})",
                        year.unexcused(),
                        p.truancy_referral_after
                    ),
                    evidence,
                    discriminator: sy.to_string(),
                    at,
                })?;
            }
        }
        let ca = &policy.chronic_absence;
        if ca.enabled && year.enrolled() >= ca.min_enrolled_days {
            let rate = year.absent() as f64 * 100.0 / year.enrolled() as f64;
            let tier = ca.tiers_percent.iter().filter(|t| rate >= **t).count() as u8;
            if tier > year.tier {
                const TIERS: [&str; 4] = ["satisfactory", "at risk", "moderate chronic absence", "severe chronic absence"];
                let evidence = day_keys(student, &year, |m| m.absent);
                self.raise(Raise {
                    student,
                    policy: &policy,
                    kind: OutreachKind::ChronicAbsence,
                    role: RecipientRole::AttendanceTeam,
                    staff: None,
                    section: None,
                    window: (year.marks.first().map(|m| m.0).unwrap_or(date), date),
                    reason: format!(
                        "{}: absent {} of {} enrolled days ({rate:.1}%)",
                        TIERS[tier as usize],
                        year.absent(),
                        year.enrolled()
                    ),
                    evidence,
                    discriminator: format!("{sy}-tier{tier}-{date}"),
                    at,
                })?;
            }
            year.tier = tier;
        }
        self.store.put(Table::Year, &key, &year.encode())?;
        Ok(())
    }

    fn raise(&mut self, r: Raise) -> Result<(), EngineError> {
        let id_src = format!(
            "{}|{}|{}|{}|{}|{}",
            r.student.student_id,
            r.kind,
            r.section.as_deref().unwrap_or(""),
            r.window.0,
            r.window.1,
            r.discriminator
        );
        let trigger_id = format!("{}-{:016x}", r.kind.as_str().to_ascii_lowercase(), xxhash_rust::xxh3::xxh3_64(id_src.as_bytes()));
        if self.store.get(Table::Trigger, trigger_id.as_bytes())?.is_some() {
            return Ok(());
        }
        self.store.put(Table::Trigger, trigger_id.as_bytes(), &[])?;
        self.stats.outreach += 1;
        self.out.push(Output::Outreach(OutreachTrigger {
            trigger_id,
            student_id: r.student.student_id.clone(),
            school_id: r.student.school_id.clone(),
            kind: r.kind,
            recipient_role: r.role,
            staff_id: r.staff,
            section_id: r.section,
            window_start: r.window.0,
            window_end: r.window.1,
            reason: r.reason,
            evidence: r.evidence,
            policy: r.policy.id.clone(),
            created_at: r.at,
        }));
        Ok(())
    }

    fn schedule_follow_ups(&mut self, input: &DayInput, blocks: &[BlockAttendance]) -> Result<(), EngineError> {
        let Some(first) = blocks.first() else { return Ok(()) };
        if !first.attended {
            return Ok(());
        }
        for b in blocks.iter().skip(1).filter(|b| !b.attended) {
            let due = input.school.micros(input.day.date, b.end.minutes());
            let action = TimerAction::BlockEnded { date: input.day.date, section: b.section.to_string() };
            let key = state::timer_key(due, &input.student.student_id, &action);
            self.store.put(Table::Timer, &key, &[])?;
            if let Some(t) = self.timers.as_mut() {
                t.insert(key);
            }
        }
        Ok(())
    }

    fn fire_timer(&mut self, student_id: &str, action: TimerAction, at: DateTime<Utc>) -> Result<(), EngineError> {
        let Some((no, student)) = self.student_no(student_id)? else { return Ok(()) };
        let Some(school) = self.schools.get(&student.school_id).cloned() else { return Ok(()) };
        match action {
            TimerAction::BlockEnded { date, section } => {
                let Some(day) = school.instructional(date) else { return Ok(()) };
                let record = self.load_day(no, date)?;
                let input = DayInput { school: &school, day, student: &student, record: &record, next: None };
                let blocks = eval::block_attendance(&input);
                let morning = blocks.first().filter(|b| b.attended);
                let missed = blocks.iter().skip(1).find(|b| b.section == section && !b.attended);
                if let (Some(m), Some(b)) = (morning, missed) {
                    let policy = school.policy.clone();
                    self.raise(Raise {
                        student: &student,
                        policy: &policy,
                        kind: OutreachKind::TeacherFollowUp,
                        role: RecipientRole::Teacher,
                        staff: Some(b.staff.to_string()),
                        section: Some(b.section.to_string()),
                        window: (date, date),
                        reason: format!(
                            "present at the morning session ({} {}) but missed {} at {}–{}",
                            m.section, m.start, b.section, b.start, b.end
                        ),
                        evidence: m.evidence.iter().map(|e| e.to_string()).collect(),
                        discriminator: b.start.to_string(),
                        at,
                    })?;
                }
            }
            TimerAction::MorningEnded { date } => {
                let Some(day) = school.instructional(date) else { return Ok(()) };
                let record = self.load_day(no, date)?;
                let input = DayInput { school: &school, day, student: &student, record: &record, next: None };
                let blocks = eval::block_attendance(&input);
                let Some(morning) = blocks.first().filter(|b| !b.attended) else { return Ok(()) };
                let policy = school.policy.clone();
                self.raise(Raise {
                    student: &student,
                    policy: &policy,
                    kind: OutreachKind::FamilyOutreach,
                    role: RecipientRole::AttendanceTeam,
                    staff: None,
                    section: Some(morning.section.to_string()),
                    window: (date, date),
                    reason: format!(
                        "missed the morning session ({} {}–{}): contact the family",
                        morning.section, morning.start, morning.end
                    ),
                    evidence: Vec::new(),
                    discriminator: "morning".into(),
                    at,
                })?;
            }
        }
        Ok(())
    }

    /// instruction-partners: a timer at the end of the student's morning
    /// session of `date`, so that a missed morning reaches the family-outreach
    /// person as soon as it is over, even for a student with no events at all.
    fn schedule_morning_check(&mut self, student: &StudentRecord, school: &School, date: NaiveDate) -> Result<(), EngineError> {
        let Some(day) = school.instructional(date) else { return Ok(()) };
        let record = DayRecord::default();
        let input = DayInput { school, day, student, record: &record, next: None };
        let Some(morning) = eval::block_attendance(&input).into_iter().next() else { return Ok(()) };
        let due = school.micros(date, morning.end.minutes());
        let key = state::timer_key(due, &student.student_id, &TimerAction::MorningEnded { date });
        self.store.put(Table::Timer, &key, &[])?;
        if let Some(t) = self.timers.as_mut() {
            t.insert(key);
        }
        Ok(())
    }

    /// cms: one TEACHER_FOLLOW_UP to the homeroom teacher for a guardian's
    /// hardship report that no teacher has verified yet, while the day is
    /// open, so that the verification can happen within the D+1 window.
    fn ask_to_verify_hardship(
        &mut self,
        student: &StudentRecord,
        school: &School,
        date: NaiveDate,
        report: &ReportFact,
        at: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let policy = school.policy.clone();
        self.raise(Raise {
            student,
            policy: &policy,
            kind: OutreachKind::TeacherFollowUp,
            role: RecipientRole::Teacher,
            staff: student.homeroom_staff_id.clone(),
            section: student.homeroom_section_id.clone(),
            window: (date, date),
            reason: format!(
                "verify the hardship: the family reported {} for {date}; the student counts as present by other \
                 evidence only once a teacher has two-way contact with the student or family on {date} or the next day",
                report.reason
            ),
            evidence: vec![report.report_id.clone()],
            discriminator: "verify-hardship".into(),
            at,
        })
    }

    fn close_week(
        &mut self,
        no: u32,
        student: &StudentRecord,
        school: &School,
        monday: NaiveDate,
        at: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let policy = school.policy.clone();
        match &policy.rule {
            Rule::WeeklyContacts(p) => {
                let outcomes = self.reevaluate_week(no, student, school, monday, true, at)?;
                for threshold in &p.low_contact {
                    for (section, contacts) in &outcomes {
                        self.check_low_contact(no, student, school, &policy, threshold, monday, section, *contacts, at)?;
                    }
                }
            }
            Rule::Blocks(p) if p.social_worker_after_days > 0 => {
                let sid = &student.student_id;
                let start = state::day_key(sid, monday);
                let end = state::day_key(sid, monday + Duration::days(7));
                let mut days = Vec::new();
                for (k, v) in self.store.range(Table::Emitted, &start, &end, usize::MAX)? {
                    let Some((date, Scope::Day, None)) = state::parse_emitted_key(sid, &k) else { continue };
                    let em = Emitted::decode(&v).map_err(|source| EngineError::Corrupt {
                        table: Table::Emitted,
                        key: format!("{sid}/{date}"),
                        source,
                    })?;
                    if em.category.as_ref().map(|c| p.social_worker_categories.contains(c)).unwrap_or(false) {
                        days.push((date, em.category.unwrap_or_default()));
                    }
                }
                if days.len() as u32 >= p.social_worker_after_days {
                    let listed: Vec<String> = days.iter().map(|(d, c)| format!("{d} {c}")).collect();
                    self.raise(Raise {
                        student,
                        policy: &policy,
                        kind: OutreachKind::SocialWorker,
                        role: RecipientRole::SocialWorker,
                        staff: None,
                        section: None,
                        window: (monday, monday + Duration::days(6)),
                        reason: format!("{} days last week missed whole or in part: {}", days.len(), listed.join(", ")),
                        evidence: days
                            .iter()
                            .map(|(d, _)| rollcall_model::determination_key(sid, Scope::Day, *d, None))
                            .collect(),
                        discriminator: String::new(),
                        at,
                    })?;
                }
            }
            _ => {}
        }
        self.purge_before(no, student, school, monday)
    }

    #[allow(clippy::too_many_arguments)]
    fn check_low_contact(
        &mut self,
        no: u32,
        student: &StudentRecord,
        school: &School,
        policy: &Policy,
        threshold: &ContactThreshold,
        week: NaiveDate,
        section: &str,
        contacts: u32,
        at: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let (weeks, max) = (threshold.weeks, threshold.max_contacts);
        let mut total = contacts;
        let mut evidence = vec![format!(
            "{}#contacts={}",
            rollcall_model::determination_key(&student.student_id, Scope::Week, week, Some(section)),
            total
        )];
        for back in 1..weeks {
            let monday = week - Duration::days(7 * back as i64);
            if !school.week_has_instruction(monday) {
                return Ok(());
            }
            let key = self.emitted_key(no, monday, Scope::Week, Some(section));
            let Some(prev) = self.load_emitted(key)? else { return Ok(()) };
            let c = prev.contacts.unwrap_or(0) as u32;
            total += c;
            evidence.push(format!(
                "{}#contacts={c}",
                rollcall_model::determination_key(&student.student_id, Scope::Week, monday, Some(section))
            ));
        }
        if total > max {
            return Ok(());
        }
        let staff = student.enrollment(section).map(|e| e.staff_id.clone());
        let first = week - Duration::days(7 * (weeks as i64 - 1));
        self.raise(Raise {
            student,
            policy,
            kind: OutreachKind::LowContact,
            role: threshold.recipient_role,
            staff,
            section: Some(section.to_string()),
            window: (first, week + Duration::days(6)),
            reason: format!("{total} contact day(s) over {weeks} consecutive weeks (at most {max})"),
            evidence,
            // Thresholds of one length differ by their bound and recipient.
            discriminator: format!("{max}-{}", threshold.recipient_role),
            at,
        })
    }

    /// Drops what can no longer change: day windows, emitted versions and
    /// timers of dates past the correction horizon.
    fn purge_before(&mut self, no: u32, student: &StudentRecord, school: &School, monday: NaiveDate) -> Result<(), EngineError> {
        let keep_from = purge_horizon(school, monday);
        let sid = &student.student_id;
        let start = state::student_prefix(sid);
        let end = state::day_key(sid, keep_from);
        self.store.delete_range(Table::Day, &start, &end)?;
        self.store.delete_range(Table::Emitted, &start, &end)?;
        if let Some(seen) = self.seen.get_mut(&no) {
            let before = seen.first.len() + seen.more.len();
            seen.first.retain(|_, d| *d >= keep_from);
            seen.more.retain(|(_, d)| *d >= keep_from);
            self.seen_count = self.seen_count.saturating_sub(before) + seen.first.len() + seen.more.len();
        }
        Ok(())
    }
}

/// Decodes a record read from the store under `key`; a failure names the
/// table and the key.
fn decode_stored<T>(table: Table, key: &[u8], bytes: &[u8], decode: fn(&[u8]) -> Result<T, CodecError>) -> Result<T, EngineError> {
    decode(bytes).map_err(|source| EngineError::Corrupt { table, key: String::from_utf8_lossy(key).into_owned(), source })
}

/// Closing the week of `monday` drops the state of the dates before this one.
fn purge_horizon(school: &School, monday: NaiveDate) -> NaiveDate {
    monday - Duration::days(school.policy.correction_horizon_days as i64 + 21)
}

/// The DAY determination keys of the year's marked days that match.
fn day_keys(student: &StudentRecord, year: &YearRecord, keep: impl Fn(&DayMark) -> bool) -> Vec<String> {
    year.marks
        .iter()
        .filter(|(_, m)| keep(m))
        .map(|(d, _)| rollcall_model::determination_key(&student.student_id, Scope::Day, *d, None))
        .collect()
}

struct Raise<'a> {
    student: &'a StudentRecord,
    policy: &'a Policy,
    kind: OutreachKind,
    role: RecipientRole,
    staff: Option<String>,
    section: Option<String>,
    window: (NaiveDate, NaiveDate),
    reason: String,
    evidence: Vec<String>,
    /// Distinguishes triggers of one kind and window that are separate events.
    discriminator: String,
    at: DateTime<Utc>,
}

/// Windows that have begun and not yet closed, counted per student.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenWindows {
    pub day: u64,
    pub week: u64,
}

impl<S: KvStore> Engine<S> {
    /// For each school, the instructional dates and weeks that have begun
    /// by the engine clock and whose close has not fired yet, times the
    /// school's students in this store. Read from the in-memory close
    /// schedule and one scan of the school index, not from window state: a
    /// day already finalized by an earlier rule of its date (in-person days
    /// close before remote ones) still counts until the date's last close.
    pub fn open_windows(&self) -> Result<OpenWindows, EngineError> {
        let Some(now) = self.clock else { return Ok(OpenWindows::default()) };
        // A school-local date is at most a day ahead of the UTC date.
        let latest = now.date_naive() + Duration::days(1);
        let mut days: HashMap<&str, BTreeSet<NaiveDate>> = HashMap::new();
        let mut weeks: HashMap<&str, BTreeSet<NaiveDate>> = HashMap::new();
        for (_, school_id, action) in &self.schedule {
            let (date, into) = match action {
                SchoolAction::CloseDays { date, .. } => (*date, &mut days),
                SchoolAction::CloseWeek { monday } => (*monday, &mut weeks),
                SchoolAction::DayStarts { .. } => continue,
            };
            if date > latest {
                continue;
            }
            let Some(school) = self.schools.get(school_id) else { continue };
            if school.start_of(date) <= now {
                into.entry(school_id.as_str()).or_default().insert(date);
            }
        }
        if days.is_empty() && weeks.is_empty() {
            return Ok(OpenWindows::default());
        }
        let mut students: HashMap<Vec<u8>, u64> = HashMap::new();
        for (k, _) in self.store.range(Table::SchoolStudents, &[], &[0xff], usize::MAX)? {
            if let Some(sep) = k.iter().position(|b| *b == 0) {
                *students.entry(k[..sep].to_vec()).or_default() += 1;
            }
        }
        let count = |m: &HashMap<&str, BTreeSet<NaiveDate>>| -> u64 {
            m.iter().map(|(s, d)| d.len() as u64 * students.get(s.as_bytes()).copied().unwrap_or(0)).sum()
        };
        Ok(OpenWindows { day: count(&days), week: count(&weeks) })
    }

    /// Schools whose calendar makes the local date of `at` instructional.
    pub fn schools_in_session(&self, at: DateTime<Utc>) -> usize {
        self.schools.values().filter(|s| s.instructional(s.local_date(at)).is_some()).count()
    }
}

#[cfg(test)]
mod open_window_tests {
    use super::*;
    use crate::kv::MemStore;
    use rollcall_model::{ActivityEvent, CalendarDay, DayType, GradeLevel};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// An mmsd school in Chicago in session Monday and Tuesday 2020-10-05/06,
    /// 08:00–15:00, with these third graders.
    fn chicago_school(students: &[&str]) -> Engine<MemStore> {
        let mut e = Engine::open(MemStore::default(), EngineConfig::default()).unwrap();
        let day = |d: &str| CalendarDay {
            date: d.parse().unwrap(),
            instructional: true,
            day_type: DayType::Full,
            start: "08:00".parse().unwrap(),
            end: "15:00".parse().unwrap(),
        };
        e.load_calendar(SchoolCalendar {
            school_id: "sch".into(),
            timezone: "America/Chicago".into(),
            policy: "mmsd".into(),
            days: vec![day("2020-10-05"), day("2020-10-06")],
        })
        .unwrap();
        for id in students {
            e.upsert_student(StudentRecord::new(*id, "sch", GradeLevel::G3)).unwrap();
        }
        e
    }

    #[test]
    fn open_windows_follow_the_close_schedule() {
        let mut e = chicago_school(&["a", "b", "c"]);
        assert_eq!(e.open_windows().unwrap(), OpenWindows::default(), "no clock yet");
        // Sunday before: nothing has begun.
        e.advance(at("2020-10-04T12:00:00Z")).unwrap();
        assert_eq!(e.open_windows().unwrap(), OpenWindows { day: 0, week: 0 });
        assert_eq!(e.schools_in_session(at("2020-10-04T18:00:00Z")), 0);
        // Monday noon in Chicago: Monday's day window and the week are open.
        e.advance(at("2020-10-05T17:00:00Z")).unwrap();
        assert_eq!(e.open_windows().unwrap(), OpenWindows { day: 3, week: 3 });
        assert_eq!(e.schools_in_session(at("2020-10-05T17:00:00Z")), 1);
        // Wednesday: both days closed (mmsd closes at the end of each day), the week is open.
        e.advance(at("2020-10-07T17:00:00Z")).unwrap();
        assert_eq!(e.open_windows().unwrap().day, 0);
        assert_eq!(e.open_windows().unwrap().week, 3);
        assert_eq!(e.schools_in_session(at("2020-10-07T17:00:00Z")), 0);
    }

    #[test]
    fn a_resent_event_is_a_duplicate_after_a_reopen_and_a_reload() {
        let mut e = chicago_school(&["a"]);
        let ev = |id: &str, t: &str| ActivityEvent {
            event_id: id.into(),
            source: "lms".into(),
            student_id: "a".into(),
            school_id: "sch".into(),
            section_id: None,
            staff_id: None,
            kind: ActivityKind::CheckIn,
            direction: None,
            occurred_at: at(t),
            assigned_date: None,
            live_session_id: None,
            duration_seconds: None,
            attributes: Default::default(),
        };
        e.advance(at("2020-10-05T14:00:00Z")).unwrap();
        assert_eq!(e.apply_event(&ev("e1", "2020-10-05T14:00:00Z")).unwrap(), Applied::Accepted);
        e.commit().unwrap();
        // Reopened over the committed store: the id is known, whatever its timestamp.
        let mut e = Engine::open(e.into_store(), EngineConfig::default()).unwrap();
        e.register_policy(Policy::preset("mmsd").unwrap());
        assert_eq!(e.apply_event(&ev("e1", "2020-10-06T14:00:00Z")).unwrap(), Applied::Duplicate);
        assert_eq!(e.apply_event(&ev("e2", "2020-10-05T15:00:00Z")).unwrap(), Applied::Accepted);
        // Never staged: after a reload the store has not seen e2.
        e.reload().unwrap();
        assert_eq!(e.apply_event(&ev("e2", "2020-10-05T15:00:00Z")).unwrap(), Applied::Accepted);
        assert_eq!(e.apply_event(&ev("e2", "2020-10-06T15:00:00Z")).unwrap(), Applied::Duplicate);
        assert_eq!(e.apply_event(&ev("e1", "2020-10-05T14:00:00Z")).unwrap(), Applied::Duplicate);
        assert_eq!(e.stats().duplicates, 3);
    }
}
