//! A simulated district as one Avro object container file.
//!
//! `rollcall simulate --out FILE` writes it and `rollcall bench` replays it,
//! with no broker in between. Every entry is a `SimulationEntry`
//! (`schemas/simulation_entry.avsc`): first the calendars, then the roster,
//! then absence reports and activity events merged in arrival order, each
//! with its arrival instant. The schema in the file's header is complete on
//! its own (the record schemas of `schemas/` are inlined into the union), so
//! any Avro reader can open the file.

use std::io::{Read, Write};

use apache_avro::types::Value;
use apache_avro::{Codec, Reader, Schema, Writer};
use chrono::{DateTime, NaiveDate, Utc};
use rollcall_model::avro::AvroRecord;
use rollcall_model::{AbsenceReport, ActivityEvent, SchoolCalendar, StudentRecord};

use crate::{SimConfig, Simulation};

const ENTRY_SCHEMA: &str = include_str!("../../../schemas/simulation_entry.avsc");
const MEMBERS: [(&str, &str); 4] = [
    ("org.rollcall.v1.SchoolCalendar", include_str!("../../../schemas/school_calendar.avsc")),
    ("org.rollcall.v1.StudentRecord", include_str!("../../../schemas/student_record.avsc")),
    ("org.rollcall.v1.AbsenceReport", include_str!("../../../schemas/absence_report.avsc")),
    ("org.rollcall.v1.ActivityEvent", include_str!("../../../schemas/activity_event.avsc")),
];
const CALENDAR: u32 = 0;
const STUDENT: u32 = 1;
const REPORT: u32 = 2;
const EVENT: u32 = 3;

/// Why a simulation file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("Avro: {0}")]
    Avro(#[from] apache_avro::Error),
    #[error("{0}")]
    Record(#[from] rollcall_model::avro::AvroError),
    #[error("not a rollcall simulation file: {0}")]
    Format(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The `SimulationEntry` schema with the record schemas inlined.
pub fn entry_schema() -> Schema {
    let mut v: serde_json::Value = serde_json::from_str(ENTRY_SCHEMA).expect("schemas/simulation_entry.avsc is JSON");
    let union = v["fields"][1]["type"].as_array_mut().expect("the record field is a union");
    for member in union.iter_mut() {
        let name = member.as_str().expect("union members are names").to_string();
        let text = MEMBERS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t).expect("a known record schema");
        *member = serde_json::from_str(text).expect("record schemas are JSON");
    }
    Schema::parse(&v).expect("schemas/simulation_entry.avsc is a valid Avro schema")
}

/// One entry of a simulation file.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Calendar(SchoolCalendar),
    Student(StudentRecord),
    Report { report: AbsenceReport, arrives_at: DateTime<Utc> },
    Event { event: ActivityEvent, arrives_at: DateTime<Utc> },
}

/// What the file's metadata says about the simulation.
#[derive(Debug, Clone, PartialEq)]
pub struct FileMeta {
    pub start: NaiveDate,
    pub days: u32,
    pub students: usize,
    pub seed: u64,
    /// Advance the clock here after the last entry: every window is final.
    pub end: DateTime<Utc>,
}

/// Counts of what was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    pub calendars: usize,
    pub students: usize,
    pub reports: usize,
    pub events: usize,
}

fn entry(arrives_at: Option<DateTime<Utc>>, member: u32, record: Value) -> Value {
    let at = match arrives_at {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(t) => Value::Union(1, Box::new(Value::TimestampMicros(t.timestamp_micros()))),
    };
    Value::Record(vec![("arrives_at".into(), at), ("record".into(), Value::Union(member, Box::new(record)))])
}

/// Streams the simulation of `cfg` into `out` (about one day of events is
/// held in memory at a time). `progress` is called with the entries written.
pub fn write_simulation<W: Write>(
    cfg: &SimConfig,
    out: W,
    mut progress: impl FnMut(&Written),
) -> Result<Written, FileError> {
    let schema = entry_schema();
    let sim = Simulation::new(cfg);
    let mut w = Writer::with_codec(&schema, out, Codec::Null);
    w.add_user_metadata("rollcall.start".into(), cfg.start.to_string())?;
    w.add_user_metadata("rollcall.days".into(), cfg.days.to_string())?;
    w.add_user_metadata("rollcall.students".into(), cfg.students.to_string())?;
    w.add_user_metadata("rollcall.seed".into(), cfg.seed.to_string())?;
    w.add_user_metadata("rollcall.end".into(), sim.end().to_rfc3339())?;
    let mut n = Written::default();
    for e in entries(&sim) {
        let v = match &e {
            Entry::Calendar(c) => {
                n.calendars += 1;
                entry(None, CALENDAR, c.to_avro_value())
            }
            Entry::Student(s) => {
                n.students += 1;
                entry(None, STUDENT, s.to_avro_value())
            }
            Entry::Report { report, arrives_at } => {
                n.reports += 1;
                entry(Some(*arrives_at), REPORT, report.to_avro_value())
            }
            Entry::Event { event, arrives_at } => {
                n.events += 1;
                if n.events % 10_000 == 0 {
                    progress(&n);
                }
                entry(Some(*arrives_at), EVENT, event.to_avro_value())
            }
        };
        w.append_value_ref(&v)?;
    }
    w.flush()?;
    w.into_inner()?.flush()?;
    progress(&n);
    Ok(n)
}

/// The entries of a simulation file, in file order, without the file:
/// calendars, roster, then reports and events merged by arrival (a report
/// goes before the events that arrive at or after it, as the scenario
/// runner applies them). Streams like [`Simulation::events`].
pub fn entries(sim: &Simulation) -> impl Iterator<Item = Entry> + '_ {
    let mut reports: Vec<&AbsenceReport> = sim.absence_reports().iter().collect();
    reports.sort_by_key(|r| r.reported_at);
    let mut reports = reports.into_iter().peekable();
    let mut events = sim.events().peekable();
    let world = sim.calendars().iter().cloned().map(Entry::Calendar).chain(sim.roster().iter().cloned().map(Entry::Student));
    let timed = std::iter::from_fn(move || {
        let report_first = match (reports.peek(), events.peek()) {
            (None, None) => return None,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(r), Some(e)) => r.reported_at <= e.arrives_at,
        };
        if report_first {
            let r = reports.next()?;
            Some(Entry::Report { report: r.clone(), arrives_at: r.reported_at })
        } else {
            let e = events.next()?;
            Some(Entry::Event { event: e.event, arrives_at: e.arrives_at })
        }
    });
    world.chain(timed)
}

/// Reads a simulation file back, entry by entry.
pub struct SimReader<R: Read> {
    reader: Reader<'static, R>,
    meta: FileMeta,
}

impl<R: Read> SimReader<R> {
    pub fn new(input: R) -> Result<Self, FileError> {
        let reader = Reader::new(input)?;
        let md = reader.user_metadata();
        let get = |k: &str| -> Result<String, FileError> {
            md.get(k)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .ok_or_else(|| FileError::Format(format!("metadata `{k}` missing")))
        };
        let bad = |k: &str| FileError::Format(format!("metadata `{k}` does not parse"));
        let meta = FileMeta {
            start: get("rollcall.start")?.parse().map_err(|_| bad("rollcall.start"))?,
            days: get("rollcall.days")?.parse().map_err(|_| bad("rollcall.days"))?,
            students: get("rollcall.students")?.parse().map_err(|_| bad("rollcall.students"))?,
            seed: get("rollcall.seed")?.parse().map_err(|_| bad("rollcall.seed"))?,
            end: DateTime::parse_from_rfc3339(&get("rollcall.end")?).map_err(|_| bad("rollcall.end"))?.with_timezone(&Utc),
        };
        Ok(SimReader { reader, meta })
    }

    pub fn meta(&self) -> &FileMeta {
        &self.meta
    }

    fn decode(v: Value) -> Result<Entry, FileError> {
        let Value::Record(mut fields) = v else { return Err(FileError::Format("an entry is not a record".into())) };
        if fields.len() != 2 {
            return Err(FileError::Format("an entry does not have two fields".into()));
        }
        let (_, record) = fields.pop().expect("two fields");
        let (_, at) = fields.pop().expect("two fields");
        let at = match at {
            Value::Union(_, b) => match *b {
                Value::Null => None,
                Value::TimestampMicros(us) | Value::Long(us) => DateTime::from_timestamp_micros(us),
                _ => return Err(FileError::Format("arrives_at is not a timestamp".into())),
            },
            _ => return Err(FileError::Format("arrives_at is not a union".into())),
        };
        let Value::Union(member, record) = record else { return Err(FileError::Format("record is not a union".into())) };
        let need_at = || at.ok_or_else(|| FileError::Format("a report or event without arrives_at".into()));
        Ok(match member {
            CALENDAR => Entry::Calendar(SchoolCalendar::from_avro_value(*record)?),
            STUDENT => Entry::Student(StudentRecord::from_avro_value(*record)?),
            REPORT => Entry::Report { report: AbsenceReport::from_avro_value(*record)?, arrives_at: need_at()? },
            EVENT => Entry::Event { event: ActivityEvent::from_avro_value(*record)?, arrives_at: need_at()? },
            other => return Err(FileError::Format(format!("union member {other} is unknown"))),
        })
    }
}

impl<R: Read> Iterator for SimReader<R> {
    type Item = Result<Entry, FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        let v = self.reader.next()?;
        Some(v.map_err(FileError::from).and_then(Self::decode))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_simulation_file_reads_back_as_the_world() {
        let cfg = SimConfig { students: 25, days: 3, ..SimConfig::default() };
        let mut buf = Vec::new();
        let n = write_simulation(&cfg, &mut buf, |_| {}).unwrap();
        let world = crate::generate(&cfg);
        assert_eq!(n.events, world.events.len());
        let r = SimReader::new(buf.as_slice()).unwrap();
        assert_eq!(r.meta().end, world.end);
        assert_eq!(r.meta().students, 25);
        let entries: Vec<Entry> = r.map(Result::unwrap).collect();
        let cals: Vec<_> = entries.iter().filter_map(|e| if let Entry::Calendar(c) = e { Some(c.clone()) } else { None }).collect();
        assert_eq!(cals, world.calendars);
        let roster: Vec<_> = entries.iter().filter_map(|e| if let Entry::Student(s) = e { Some(s.clone()) } else { None }).collect();
        assert_eq!(roster, world.roster);
        let events: Vec<_> = entries
            .iter()
            .filter_map(|e| if let Entry::Event { event, arrives_at } = e { Some((event.clone(), *arrives_at)) } else { None })
            .collect();
        let expected: Vec<_> = world.events.iter().map(|e| (e.event.clone(), e.arrives_at)).collect();
        assert_eq!(events, expected);
        let mut reports: Vec<_> = entries.iter().filter_map(|e| if let Entry::Report { report, .. } = e { Some(report.clone()) } else { None }).collect();
        let mut want = world.absence_reports.clone();
        reports.sort_by(|a, b| a.report_id.cmp(&b.report_id));
        want.sort_by(|a, b| a.report_id.cmp(&b.report_id));
        assert_eq!(reports, want);
        // Arrival order holds across reports and events.
        let times: Vec<_> = entries
            .iter()
            .filter_map(|e| match e {
                Entry::Report { arrives_at, .. } | Entry::Event { arrives_at, .. } => Some(*arrives_at),
                _ => None,
            })
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
    }
}
