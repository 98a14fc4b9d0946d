//! The engine's state records, their key layouts and their encodings.
//!
//! Keys begin with the student id so that one student's days, emitted
//! determinations and year sit next to each other and a range scan reads a
//! week or a month of them; dates in keys are big-endian day numbers so that
//! key order is time order.

use chrono::NaiveDate;
use rollcall_model::{AbsenceReason, ActivityKind, Direction, Finality, Scope, Status};

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
}

/// An absence report as kept in a day window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFact {
    pub report_id: String,
    pub reason: AbsenceReason,
}

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

    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::new();
        e.uvar(self.facts.len() as u64);
        for f in &self.facts {
            // One flags byte says which optional parts follow.
            let flags = f.direction.is_some() as u8
                | (f.section.is_some() as u8) << 1
                | (f.staff.is_some() as u8) << 2
                | (f.assigned.is_some() as u8) << 3
                | (f.session.is_some() as u8) << 4
                | (f.duration_s.is_some() as u8) << 5;
            e.str(&f.event_id).u8(f.kind.index()).u8(flags).ivar(f.at).date(f.local_date);
            if let Some(d) = f.direction {
                e.u8(d.index());
            }
            if let Some(s) = &f.section {
                e.str(s);
            }
            if let Some(s) = &f.staff {
                e.str(s);
            }
            if let Some(d) = f.assigned {
                e.date(d);
            }
            if let Some(s) = &f.session {
                e.str(s);
            }
            if let Some(d) = f.duration_s {
                e.ivar(d);
            }
        }
        e.uvar(self.reports.len() as u64);
        for r in &self.reports {
            e.str(&r.report_id).u8(r.reason.index());
        }
        e.buf
    }

    pub fn decode(b: &[u8]) -> Result<DayRecord, CodecError> {
        let bad = |what| CodecError { pos: 0, what };
        let mut d = Dec::new(b);
        let n = d.uvar()? as usize;
        let mut facts = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            let event_id = d.str()?;
            let kind = ActivityKind::from_index(d.u8()?).ok_or_else(|| bad("activity kind"))?;
            let flags = d.u8()?;
            let at = d.ivar()?;
            let local_date = d.date()?;
            let direction = if flags & 1 != 0 {
                Some(Direction::from_index(d.u8()?).ok_or_else(|| bad("direction"))?)
            } else {
                None
            };
            let section = if flags & 2 != 0 { Some(d.str()?) } else { None };
            let staff = if flags & 4 != 0 { Some(d.str()?) } else { None };
            let assigned = if flags & 8 != 0 { Some(d.date()?) } else { None };
            let session = if flags & 16 != 0 { Some(d.str()?) } else { None };
            let duration_s = if flags & 32 != 0 { Some(d.ivar()?) } else { None };
            facts.push(Fact { event_id, kind, direction, section, staff, at, local_date, assigned, session, duration_s });
        }
        let n = d.uvar()? as usize;
        let mut reports = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            let report_id = d.str()?;
            let reason = AbsenceReason::from_index(d.u8()?).ok_or_else(|| bad("absence reason"))?;
            reports.push(ReportFact { report_id, reason });
        }
        Ok(DayRecord { facts, reports })
    }
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
}

impl TimerAction {
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::new();
        match self {
            TimerAction::BlockEnded { date, section } => e.u8(1).date(*date).str(section),
        };
        e.buf
    }

    pub fn decode(b: &[u8]) -> Result<TimerAction, CodecError> {
        let mut d = Dec::new(b);
        match d.u8()? {
            1 => Ok(TimerAction::BlockEnded { date: d.date()?, section: d.str()? }),
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
                },
            ],
            reports: vec![ReportFact { report_id: "r".into(), reason: AbsenceReason::Covid }],
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
}
