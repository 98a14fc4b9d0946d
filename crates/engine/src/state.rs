//! The engine's state records, their key layouts and their encodings.
//!
//! Keys begin with the student id so that one student's days, emitted
//! determinations and year sit next to each other and a range scan reads a
//! week or a month of them; dates in keys are big-endian day numbers so that
//! key order is time order.

use chrono::NaiveDate;
use rollcall_model::{AbsenceReason, ActivityKind, Direction, Finality, Reporter, Scope, Status};

use crate::codec::{self, CodecError, Dec, Enc};

const SEP: u8 = 0;

/// One activity event as the engine keeps it in a day window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub event_id: String,
    pub kind: ActivityKind,
    pub direction: Option<Direction>,
    pub section: Option<String>,
    pub staff: Option<String>,
    /// UTC microseconds.
    pub at: i64,
    /// The event's school-local date.
    pub local_date: NaiveDate,
    pub assigned: Option<NaiveDate>,
    pub session: Option<String>,
    pub duration_s: Option<i64>,
    /// The system that reported it, for a person asking why (records
    /// written before it was kept have none).
    pub source: Option<String>,
}

/// An absence report as kept in a day window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFact {
    pub report_id: String,
    pub reason: AbsenceReason,
    pub reporter: Reporter,
}

/// The reporter rides in the top bit of the reason's byte: records written
/// before it was kept decode as a guardian's report.
const STAFF_REPORTER: u8 = 0x80;

/// Everything known about one student on one school-local date: the events
/// that happened that day, the submissions assigned for it (stored under the
/// assigned date too), and the absence reports for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayRecord {
    pub facts: Vec<Fact>,
    pub reports: Vec<ReportFact>,
}

impl DayRecord {
    pub fn has_event(&self, event_id: &str) -> bool {
        self.facts.iter().any(|f| f.event_id == event_id)
    }

    /// The facts share one table of strings (sections, staff, sessions and
    /// the text before an event id's number), so each repeats as a small
    /// index. An id ending in a number is stored as its prefix and the
    /// difference from the previous such id; instants as the difference from
    /// the previous fact's, in whole seconds when they are; the local date
    /// only when it changes. Two bytes of kinds and flags per fact:
    ///
    /// - `head`: kind (bits 0–3), direction + 1 (bits 4–5), instant delta
    ///   in whole seconds (bit 6), local date follows (bit 7);
    /// - `flags`: section, staff, assigned date, session, duration (bits
    ///   0–4), id as prefix and number (bit 5), source (bit 6).
    pub fn encode(&self) -> Vec<u8> {
        fn index<'a>(s: &'a str, strings: &mut Vec<&'a str>) -> u64 {
            match strings.iter().position(|x| *x == s) {
                Some(i) => i as u64,
                None => {
                    strings.push(s);
                    (strings.len() - 1) as u64
                }
            }
        }
        let mut strings: Vec<&str> = Vec::new();
        // First pass: the string table.
        let mut refs: Vec<u64> = Vec::with_capacity(self.facts.len() * 2);
        for f in &self.facts {
            if let Some((prefix, _)) = split_id(&f.event_id) {
                refs.push(index(prefix, &mut strings));
            }
            for s in [&f.section, &f.staff, &f.session, &f.source].into_iter().flatten() {
                refs.push(index(s, &mut strings));
            }
        }
        let mut e = Enc { buf: Vec::with_capacity(16 + self.facts.len() * 12) };
        e.uvar(strings.len() as u64);
        for s in &strings {
            e.str(s);
        }
        e.uvar(self.facts.len() as u64);
        let mut refs = refs.into_iter();
        let (mut prev_num, mut prev_at, mut prev_date) = (0i64, 0i64, None);
        for f in &self.facts {
            let id = split_id(&f.event_id);
            let delta = f.at.wrapping_sub(prev_at);
            let secs = delta % 1_000_000 == 0;
            let head = f.kind.index()
                | f.direction.map_or(0, |d| d.index() + 1) << 4
                | (secs as u8) << 6
                | ((prev_date != Some(f.local_date)) as u8) << 7;
            let flags = f.section.is_some() as u8
                | (f.staff.is_some() as u8) << 1
                | (f.assigned.is_some() as u8) << 2
                | (f.session.is_some() as u8) << 3
                | (f.duration_s.is_some() as u8) << 4
                | (id.is_some() as u8) << 5
                | (f.source.is_some() as u8) << 6;
            e.u8(head).u8(flags);
            match id {
                Some((_, n)) => {
                    e.uvar(refs.next().unwrap_or_default()).ivar(n.wrapping_sub(prev_num));
                    prev_num = n;
                }
                None => {
                    e.str(&f.event_id);
                }
            }
            e.ivar(if secs { delta / 1_000_000 } else { delta });
            prev_at = f.at;
            if prev_date != Some(f.local_date) {
                e.date(f.local_date);
                prev_date = Some(f.local_date);
            }
            if let Some(a) = f.assigned {
                e.ivar(codec::day_number(a) as i64 - codec::day_number(f.local_date) as i64);
            }
            for s in [&f.section, &f.staff, &f.session] {
                if s.is_some() {
                    e.uvar(refs.next().unwrap_or_default());
                }
            }
            if let Some(d) = f.duration_s {
                e.ivar(d);
            }
            if f.source.is_some() {
                e.uvar(refs.next().unwrap_or_default());
            }
        }
        e.uvar(self.reports.len() as u64);
        for r in &self.reports {
            let by = if r.reporter == Reporter::Staff { STAFF_REPORTER } else { 0 };
            e.str(&r.report_id).u8(r.reason.index() | by);
        }
        e.buf
    }

    pub fn decode(b: &[u8]) -> Result<DayRecord, CodecError> {
        let bad = |what| CodecError { pos: 0, what };
        let mut d = Dec::new(b);
        let n = d.uvar()? as usize;
        let mut strings = Vec::with_capacity(n.min(256));
        for _ in 0..n {
            strings.push(d.str()?);
        }
        let string = |d: &mut Dec| -> Result<&String, CodecError> {
            let i = d.uvar()? as usize;
            strings.get(i).ok_or_else(|| bad("string index"))
        };
        let n = d.uvar()? as usize;
        let mut facts = Vec::with_capacity(n.min(1024));
        let (mut prev_num, mut prev_at, mut prev_date) = (0i64, 0i64, None);
        for _ in 0..n {
            let head = d.u8()?;
            let flags = d.u8()?;
            let kind = ActivityKind::from_index(head & 15).ok_or_else(|| bad("activity kind"))?;
            let direction = match (head >> 4) & 3 {
                0 => None,
                i => Some(Direction::from_index(i - 1).ok_or_else(|| bad("direction"))?),
            };
            let event_id = if flags & 32 != 0 {
                let prefix = string(&mut d)?;
                let num = prev_num.wrapping_add(d.ivar()?);
                prev_num = num;
                let mut id = String::with_capacity(prefix.len() + 8);
                id.push_str(prefix);
                id.push_str(&num.to_string());
                id
            } else {
                d.str()?
            };
            let delta = d.ivar()?;
            let at = prev_at.wrapping_add(if head & 64 != 0 { delta.wrapping_mul(1_000_000) } else { delta });
            prev_at = at;
            let local_date = match (head & 128 != 0, prev_date) {
                (true, _) => d.date()?,
                (false, Some(p)) => p,
                (false, None) => return Err(bad("local date missing")),
            };
            prev_date = Some(local_date);
            let assigned = if flags & 4 != 0 {
                let off = d.ivar()?;
                let n = (codec::day_number(local_date) as i64).checked_add(off).and_then(|n| i32::try_from(n).ok());
                Some(n.and_then(codec::date_from_number).ok_or_else(|| bad("assigned date"))?)
            } else {
                None
            };
            let section = if flags & 1 != 0 { Some(string(&mut d)?.clone()) } else { None };
            let staff = if flags & 2 != 0 { Some(string(&mut d)?.clone()) } else { None };
            let session = if flags & 8 != 0 { Some(string(&mut d)?.clone()) } else { None };
            let duration_s = if flags & 16 != 0 { Some(d.ivar()?) } else { None };
            let source = if flags & 64 != 0 { Some(string(&mut d)?.clone()) } else { None };
            facts.push(Fact { event_id, kind, direction, section, staff, at, local_date, assigned, session, duration_s, source });
        }
        let n = d.uvar()? as usize;
        let mut reports = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            let report_id = d.str()?;
            let b = d.u8()?;
            let reason = AbsenceReason::from_index(b & !STAFF_REPORTER).ok_or_else(|| bad("absence reason"))?;
            let reporter = if b & STAFF_REPORTER != 0 { Reporter::Staff } else { Reporter::Guardian };
            reports.push(ReportFact { report_id, reason, reporter });
        }
        Ok(DayRecord { facts, reports })
    }
}

/// An event id ending in a decimal number, split into the text before the
/// number and the number, when the number spells back exactly (no leading
/// zero, at most 18 digits).
fn split_id(id: &str) -> Option<(&str, i64)> {
    let digits = id.bytes().rev().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 18 {
        return None;
    }
    let (prefix, num) = id.split_at(id.len() - digits);
    if num.len() > 1 && num.starts_with('0') {
        return None;
    }
    Some((prefix, num.parse().ok()?))
}

/// The last record emitted for a determination key: enough to decide whether
/// a new evaluation is a change, and which version comes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emitted {
    pub version: u32,
    pub status: Status,
    pub code: String,
    pub category: Option<String>,
    pub minutes: Option<i64>,
    pub contacts: Option<i32>,
    pub finality: Finality,
}

impl Emitted {
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::new();
        e.uvar(self.version as u64)
            .u8(self.status.index())
            .str(&self.code)
            .opt_str(self.category.as_deref())
            .u8(self.finality.index());
        match self.minutes {
            Some(m) => e.u8(1).ivar(m),
            None => e.u8(0),
        };
        match self.contacts {
            Some(c) => e.u8(1).ivar(c as i64),
            None => e.u8(0),
        };
        e.buf
    }

    pub fn decode(b: &[u8]) -> Result<Emitted, CodecError> {
        let bad = |what| CodecError { pos: 0, what };
        let mut d = Dec::new(b);
        let version = d.uvar()? as u32;
        let status = Status::from_index(d.u8()?).ok_or_else(|| bad("status"))?;
        let code = d.str()?;
        let category = d.opt_str()?;
        let finality = Finality::from_index(d.u8()?).ok_or_else(|| bad("finality"))?;
        let minutes = if d.u8()? != 0 { Some(d.ivar()?) } else { None };
        let contacts = if d.u8()? != 0 { Some(d.ivar()? as i32) } else { None };
        Ok(Emitted { version, status, code, category, minutes, contacts, finality })
    }

    pub fn is_final(&self) -> bool {
        self.finality != Finality::Provisional
    }
}

/// A closed day as the year's counters see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayMark {
    pub absent: bool,
    pub unexcused: bool,
}

/// A student's school year: one mark per closed instructional day, and the
/// outreach state that must not repeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct YearRecord {
    pub marks: Vec<(NaiveDate, DayMark)>,
    /// Current Attendance Works tier (0 satisfactory … 3 severe chronic).
    pub tier: u8,
    pub truancy_referred: bool,
}

impl YearRecord {
    pub fn set_mark(&mut self, date: NaiveDate, mark: DayMark) {
        match self.marks.binary_search_by_key(&date, |(d, _)| *d) {
            Ok(i) => self.marks[i].1 = mark,
            Err(i) => self.marks.insert(i, (date, mark)),
        }
    }

    pub fn enrolled(&self) -> u32 {
        self.marks.len() as u32
    }
    pub fn absent(&self) -> u32 {
        self.marks.iter().filter(|(_, m)| m.absent).count() as u32
    }
    pub fn unexcused(&self) -> u32 {
        self.marks.iter().filter(|(_, m)| m.unexcused).count() as u32
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::new();
        e.u8(self.tier).u8(self.truancy_referred as u8).uvar(self.marks.len() as u64);
        // Dates ascend, so deltas are small.
        let mut prev = 0i32;
        for (d, m) in &self.marks {
            let n = codec::day_number(*d);
            e.uvar((n - prev) as u64).u8(m.absent as u8 | (m.unexcused as u8) << 1);
            prev = n;
        }
        e.buf
    }

    pub fn decode(b: &[u8]) -> Result<YearRecord, CodecError> {
        let mut d = Dec::new(b);
        let tier = d.u8()?;
        let truancy_referred = d.u8()? != 0;
        let n = d.uvar()? as usize;
        let mut marks = Vec::with_capacity(n.min(400));
        let mut prev = 0i32;
        for _ in 0..n {
            prev = prev.wrapping_add(d.uvar()? as i32);
            let date = codec::date_from_number(prev).ok_or(CodecError { pos: 0, what: "year mark date" })?;
            let f = d.u8()?;
            marks.push((date, DayMark { absent: f & 1 != 0, unexcused: f & 2 != 0 }));
        }
        Ok(YearRecord { marks, tier, truancy_referred })
    }
}

/// What a per-student timer does when it fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimerAction {
    /// instruction-partners: check whether the block of `section` on `date` was missed.
    BlockEnded { date: NaiveDate, section: String },
    /// instruction-partners: check whether the morning session of `date` was missed.
    MorningEnded { date: NaiveDate },
    /// The wait of a parked event is over.
    ParkExpires { event_id: String },
}

impl TimerAction {
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::new();
        match self {
            TimerAction::BlockEnded { date, section } => e.u8(1).date(*date).str(section),
            TimerAction::MorningEnded { date } => e.u8(2).date(*date),
            TimerAction::ParkExpires { event_id } => e.u8(3).str(event_id),
        };
        e.buf
    }

    pub fn decode(b: &[u8]) -> Result<TimerAction, CodecError> {
        let mut d = Dec::new(b);
        match d.u8()? {
            1 => Ok(TimerAction::BlockEnded { date: d.date()?, section: d.str()? }),
            2 => Ok(TimerAction::MorningEnded { date: d.date()? }),
            3 => Ok(TimerAction::ParkExpires { event_id: d.str()? }),
            _ => Err(CodecError { pos: 0, what: "timer action" }),
        }
    }
}

// ---- keys ----

pub fn student_prefix(student: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(student.len() + 8);
    k.extend_from_slice(student.as_bytes());
    k.push(SEP);
    k
}

/// The first key after every key that starts with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    while let Some(last) = k.pop() {
        if last < 0xff {
            k.push(last + 1);
            return k;
        }
    }
    vec![0xff; prefix.len() + 1]
}

pub fn day_key(student: &str, date: NaiveDate) -> Vec<u8> {
    let mut k = student_prefix(student);
    k.extend_from_slice(&codec::key_date(date));
    k
}

pub fn emitted_key(student: &str, date: NaiveDate, scope: Scope, section: Option<&str>) -> Vec<u8> {
    let mut k = day_key(student, date);
    k.push(scope.index());
    if let Some(s) = section {
        k.extend_from_slice(s.as_bytes());
    }
    k
}

/// Splits an emitted key back into (date, scope, section).
pub fn parse_emitted_key(student: &str, key: &[u8]) -> Option<(NaiveDate, Scope, Option<String>)> {
    let rest = key.get(student.len() + 1..)?;
    let date = codec::date_from_key(rest)?;
    let scope = Scope::from_index(*rest.get(4)?)?;
    let section = &rest[5..];
    let section = if section.is_empty() { None } else { Some(String::from_utf8(section.to_vec()).ok()?) };
    Some((date, scope, section))
}

pub fn year_key(student: &str, school_year: i32) -> Vec<u8> {
    let mut k = student_prefix(student);
    k.extend_from_slice(&school_year.to_be_bytes());
    k
}

pub fn school_student_key(school: &str, student: &str) -> Vec<u8> {
    let mut k = student_prefix(school);
    k.extend_from_slice(student.as_bytes());
    k
}

pub fn timer_key(due: i64, student: &str, action: &TimerAction) -> Vec<u8> {
    let mut k = codec::key_i64(due).to_vec();
    k.extend_from_slice(student.as_bytes());
    k.push(SEP);
    k.extend_from_slice(&action.encode());
    k
}

pub fn parse_timer_key(key: &[u8]) -> Option<(i64, String, TimerAction)> {
    let due = codec::i64_from_key(key)?;
    let rest = key.get(8..)?;
    let sep = rest.iter().position(|b| *b == SEP)?;
    let student = String::from_utf8(rest[..sep].to_vec()).ok()?;
    let action = TimerAction::decode(&rest[sep + 1..]).ok()?;
    Some((due, student, action))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn day_record_round_trips_ids_instants_and_dates() {
        let fact = |id: &str, at: i64, date: &str| Fact {
            event_id: id.into(),
            kind: ActivityKind::OfflineWorkReturned,
            direction: Some(Direction::FromStudent),
            section: Some("sec-1".into()),
            staff: None,
            at,
            local_date: d(date),
            assigned: Some(d("2020-09-28")),
            session: Some("sec-1".into()),
            duration_s: None,
            source: Some("canvas".into()),
        };
        let ids = ["ev-10", "ev-9", "ev-007", "0", "x", "", "12345678901234567890", "ev-0", "a1b2", "ev-5", "é9"];
        let ats =
            [i64::MIN, 0, 1_000_000, 1_000_001, i64::MAX, -3_000_000, 1_601_900_000_000_000, 1_601_900_000_000_000, 7, 8, 9];
        let dates = [
            "2020-10-05",
            "2020-10-05",
            "2020-10-06",
            "1969-12-31",
            "2020-10-05",
            "2020-10-05",
            "2021-01-01",
            "2021-01-01",
            "2020-10-05",
            "2020-10-05",
            "2020-10-04",
        ];
        let r = DayRecord {
            facts: ids.iter().zip(ats).zip(dates).map(|((id, at), date)| fact(id, at, date)).collect(),
            reports: vec![],
        };
        assert_eq!(DayRecord::decode(&r.encode()).unwrap(), r);
        assert_eq!(DayRecord::decode(&DayRecord::default().encode()).unwrap(), DayRecord::default());
    }

    #[test]
    fn day_record_round_trips() {
        let r = DayRecord {
            facts: vec![
                Fact {
                    event_id: "e1".into(),
                    kind: ActivityKind::Message,
                    direction: Some(Direction::FromStaff),
                    section: Some("math".into()),
                    staff: Some("t1".into()),
                    at: 1_601_900_000_000_000,
                    local_date: d("2020-10-05"),
                    assigned: Some(d("2020-10-04")),
                    session: Some("live-1".into()),
                    duration_s: Some(-3),
                    source: Some("zoom".into()),
                },
                Fact {
                    event_id: "e2".into(),
                    kind: ActivityKind::Login,
                    direction: None,
                    section: None,
                    staff: None,
                    at: 5,
                    local_date: d("2020-10-05"),
                    assigned: None,
                    session: None,
                    duration_s: None,
                    source: None,
                },
            ],
            reports: vec![
                ReportFact { report_id: "r".into(), reason: AbsenceReason::Covid, reporter: Reporter::Guardian },
                ReportFact { report_id: "r2".into(), reason: AbsenceReason::Hardship, reporter: Reporter::Staff },
            ],
        };
        assert_eq!(DayRecord::decode(&r.encode()).unwrap(), r);
    }

    #[test]
    fn emitted_and_year_round_trip() {
        let e = Emitted {
            version: 3,
            status: Status::Contacts,
            code: "C23".into(),
            category: None,
            minutes: Some(42),
            contacts: Some(2),
            finality: Finality::Correction,
        };
        assert_eq!(Emitted::decode(&e.encode()).unwrap(), e);
        let mut y = YearRecord::default();
        y.set_mark(d("2020-10-06"), DayMark { absent: true, unexcused: false });
        y.set_mark(d("2020-10-05"), DayMark { absent: true, unexcused: true });
        y.set_mark(d("2020-10-06"), DayMark { absent: false, unexcused: false });
        y.tier = 2;
        assert_eq!(YearRecord::decode(&y.encode()).unwrap(), y);
        assert_eq!((y.enrolled(), y.absent(), y.unexcused()), (2, 1, 1));
    }

    #[test]
    fn keys_parse_back() {
        let k = emitted_key("s1", d("2020-10-05"), Scope::Section, Some("math-7"));
        assert_eq!(parse_emitted_key("s1", &k), Some((d("2020-10-05"), Scope::Section, Some("math-7".into()))));
        let a = TimerAction::BlockEnded { date: d("2020-10-05"), section: "sci".into() };
        let k = timer_key(-7, "s9", &a);
        assert_eq!(parse_timer_key(&k), Some((-7, "s9".into(), a)));
        assert!(day_key("s1", d("2020-10-05")) < day_key("s1", d("2020-10-06")));
        assert!(day_key("s1", d("2020-10-06")) < prefix_end(&student_prefix("s1")));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn fact() -> impl Strategy<Value = Fact> {
            let id = prop_oneof![
                (0u64..2_000_000).prop_map(|n| format!("ev-{n}")),
                "[a-z0-9-]{0,12}",
                "[0-9]{1,22}",
                Just("ev-007".to_string()),
            ];
            let name = prop_oneof![Just("sec-1".to_string()), Just("sec-2".to_string()), "[a-zé]{0,6}"];
            let at = prop_oneof![
                any::<i64>(),
                (1_601_000_000i64..1_602_000_000).prop_map(|s| s * 1_000_000),
                1_601_000_000_000_000i64..1_602_000_000_000_000
            ];
            (
                (id, 0..ActivityKind::ALL.len(), proptest::option::of(0..Direction::ALL.len()), at),
                (-20_000i32..40_000, proptest::option::of(-400i32..400)),
                (proptest::option::of(name.clone()), proptest::option::of(name.clone()), proptest::option::of(name)),
                (
                    proptest::option::of(any::<i64>()),
                    proptest::option::of(prop_oneof![Just("canvas".to_string()), Just("zoom".to_string())]),
                ),
            )
                .prop_map(
                    |((event_id, k, dir, at), (day, assigned), (section, staff, session), (duration_s, source))| {
                        let local_date = codec::date_from_number(day).unwrap();
                        Fact {
                            event_id,
                            kind: ActivityKind::ALL[k],
                            direction: dir.map(|i| Direction::ALL[i]),
                            section,
                            staff,
                            at,
                            local_date,
                            assigned: assigned.map(|a| codec::date_from_number(day + a).unwrap()),
                            session,
                            duration_s,
                            source,
                        }
                    },
                )
        }

        proptest! {
            #[test]
            fn day_records_round_trip(facts in proptest::collection::vec(fact(), 0..40), same_day in any::<bool>()) {
                let mut facts = facts;
                if same_day {
                    let d0 = facts.first().map(|f| f.local_date);
                    for f in &mut facts {
                        f.local_date = d0.unwrap();
                    }
                }
                let r = DayRecord { facts, reports: vec![ReportFact { report_id: "r1".into(), reason: AbsenceReason::ALL[0], reporter: Reporter::Staff }] };
                prop_assert_eq!(DayRecord::decode(&r.encode()).unwrap(), r);
            }
        }
    }
}
