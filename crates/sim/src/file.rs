//! A simulated district as one Avro object container file.
//!
//! `rollcall simulate --out FILE` writes it and `rollcall bench` replays it,
//! with no broker in between. Every entry is a `SimulationEntry`
//! (`schemas/simulation_entry.avsc`): first the calendars, then the roster,
//! then absence reports and activity events merged in arrival order, each
//! with its arrival instant. The schema in the file's header is complete on
//! its own (the record schemas of `schemas/` are inlined into the union), so
//! any Avro reader can open the file.

use std::collections::HashMap;
use std::io::{Read, Write};

use apache_avro::types::Value;
use apache_avro::{Codec, Schema, Writer};
use chrono::{DateTime, NaiveDate, Utc};
use rollcall_model::avro::{parsing_canonical_form, AvroRecord};
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

impl From<apache_avro::Error> for FileError {
    fn from(e: apache_avro::Error) -> Self {
        FileError::Avro(Box::new(e))
    }
}

/// Why a simulation file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Boxed: apache-avro's error is large, and every result of this
    /// module would carry its size.
    #[error("Avro: {0}")]
    Avro(#[source] Box<apache_avro::Error>),
    #[error("{0}")]
    Record(#[from] rollcall_model::avro::AvroError),
    #[error("not a rollcall simulation file: {0}")]
    Format(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The `SimulationEntry` schema with the record schemas inlined, as JSON.
fn entry_schema_json() -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(ENTRY_SCHEMA).expect("schemas/simulation_entry.avsc is JSON");
    let union = v["fields"][1]["type"].as_array_mut().expect("the record field is a union");
    for member in union.iter_mut() {
        let name = member.as_str().expect("union members are names").to_string();
        let text = MEMBERS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t).expect("a known record schema");
        *member = serde_json::from_str(text).expect("record schemas are JSON");
    }
    v
}

/// The `SimulationEntry` schema with the record schemas inlined.
pub fn entry_schema() -> Schema {
    Schema::parse(&entry_schema_json()).expect("schemas/simulation_entry.avsc is a valid Avro schema")
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

fn add_metadata<W: Write>(w: &mut Writer<'_, W>, meta: &FileMeta) -> Result<(), FileError> {
    w.add_user_metadata("rollcall.start".into(), meta.start.to_string())?;
    w.add_user_metadata("rollcall.days".into(), meta.days.to_string())?;
    w.add_user_metadata("rollcall.students".into(), meta.students.to_string())?;
    w.add_user_metadata("rollcall.seed".into(), meta.seed.to_string())?;
    w.add_user_metadata("rollcall.end".into(), meta.end.to_rfc3339())?;
    Ok(())
}

fn entry_value(e: &Entry) -> Value {
    match e {
        Entry::Calendar(c) => entry(None, CALENDAR, c.to_avro_value()),
        Entry::Student(s) => entry(None, STUDENT, s.to_avro_value()),
        Entry::Report { report, arrives_at } => entry(Some(*arrives_at), REPORT, report.to_avro_value()),
        Entry::Event { event, arrives_at } => entry(Some(*arrives_at), EVENT, event.to_avro_value()),
    }
}

/// Streams the simulation of `cfg` into `out` (about one day of events is
/// held in memory at a time). `progress` is called with the entries written.
pub fn write_simulation<W: Write>(cfg: &SimConfig, out: W, mut progress: impl FnMut(&Written)) -> Result<Written, FileError> {
    let schema = entry_schema();
    let sim = Simulation::new(cfg);
    let mut w = Writer::with_codec(&schema, out, Codec::Null);
    let meta = FileMeta { start: cfg.start, days: cfg.days, students: cfg.students, seed: cfg.seed, end: sim.end() };
    add_metadata(&mut w, &meta)?;
    let mut n = Written::default();
    for e in entries(&sim) {
        match &e {
            Entry::Calendar(_) => n.calendars += 1,
            Entry::Student(_) => n.students += 1,
            Entry::Report { .. } => n.reports += 1,
            Entry::Event { .. } => {
                n.events += 1;
                if n.events % 10_000 == 0 {
                    progress(&n);
                }
            }
        }
        w.append_value_ref(&entry_value(&e))?;
    }
    w.flush()?;
    w.into_inner()?.flush()?;
    progress(&n);
    Ok(n)
}

/// Writes a simulation file of the given entries, in the given order.
pub fn write_entries<'a, W: Write>(
    meta: &FileMeta,
    entries: impl IntoIterator<Item = &'a Entry>,
    out: W,
) -> Result<(), FileError> {
    let schema = entry_schema();
    let mut w = Writer::with_codec(&schema, out, Codec::Null);
    add_metadata(&mut w, meta)?;
    for e in entries {
        w.append_value_ref(&entry_value(e))?;
    }
    w.flush()?;
    w.into_inner()?.flush()?;
    Ok(())
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

/// The first bytes of an Avro object container file.
const MAGIC: [u8; 4] = *b"Obj\x01";
/// The longest metadata value or block a reader accepts (a file of this
/// crate has blocks of about 64 KiB).
const MAX_BLOCK_BYTES: u64 = 1 << 30;

fn format_error(message: impl Into<String>) -> FileError {
    FileError::Format(message.into())
}

/// A zig-zag varint, one byte at a time from `next` (`None` at the end of
/// the input).
fn read_varint(mut next: impl FnMut() -> Result<Option<u8>, FileError>, what: &str) -> Result<i64, FileError> {
    let mut acc: u64 = 0;
    for i in 0..10 {
        let b = next()?.ok_or_else(|| format_error(format!("the file ends in the middle of {what}")))?;
        if i == 9 && b > 1 {
            break;
        }
        acc |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((acc >> 1) as i64 ^ -((acc & 1) as i64));
        }
    }
    Err(format_error(format!("{what} overflows 64 bits")))
}

fn next_byte<R: Read>(input: &mut R) -> Result<Option<u8>, FileError> {
    let mut b = [0u8; 1];
    loop {
        return match input.read(&mut b) {
            Ok(0) => Ok(None),
            Ok(_) => Ok(Some(b[0])),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => Err(e.into()),
        };
    }
}

/// Exactly `len` bytes, allocated as they arrive rather than from the
/// length the file claims.
fn read_exact_vec<R: Read>(input: &mut R, len: i64, what: &str) -> Result<Vec<u8>, FileError> {
    let len = u64::try_from(len).map_err(|_| format_error(format!("{what} has a negative length {len}")))?;
    if len > MAX_BLOCK_BYTES {
        return Err(format_error(format!("{what} claims {len} bytes, more than the {MAX_BLOCK_BYTES} a reader accepts")));
    }
    let mut buf = Vec::new();
    input.by_ref().take(len).read_to_end(&mut buf)?;
    if buf.len() as u64 != len {
        return Err(format_error(format!("the file ends in the middle of {what} ({} of {len} bytes)", buf.len())));
    }
    Ok(buf)
}

fn slice_byte(input: &mut &[u8]) -> Result<Option<u8>, FileError> {
    Ok(input.split_first().map(|(&b, rest)| {
        *input = rest;
        b
    }))
}

/// The file's metadata map: blocks of string keys and bytes values.
fn read_metadata<R: Read>(input: &mut R) -> Result<HashMap<String, Vec<u8>>, FileError> {
    let mut md = HashMap::new();
    loop {
        let count = read_varint(|| next_byte(input), "the metadata's block count")?;
        if count == 0 {
            return Ok(md);
        }
        if count < 0 {
            read_varint(|| next_byte(input), "the metadata's block size")?;
        }
        for _ in 0..count.unsigned_abs() {
            let len = read_varint(|| next_byte(input), "a metadata key's length")?;
            let key = String::from_utf8(read_exact_vec(input, len, "a metadata key")?)
                .map_err(|_| format_error("a metadata key is not UTF-8"))?;
            let len = read_varint(|| next_byte(input), "a metadata value's length")?;
            let value = read_exact_vec(input, len, &format!("metadata `{key}`"))?;
            if md.insert(key.clone(), value).is_some() {
                return Err(format_error(format!("metadata `{key}` appears twice")));
            }
        }
    }
}

/// The Avro schema in a file's header must be the `SimulationEntry` schema
/// (compared in Parsing Canonical Form), as the entries are decoded with it.
fn check_schema(text: &[u8]) -> Result<(), FileError> {
    let theirs: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| format_error(format!("metadata `avro.schema` is not JSON: {e}")))?;
    if parsing_canonical_form(&theirs, None) != parsing_canonical_form(&entry_schema_json(), None) {
        return Err(format_error("the file's schema is not the SimulationEntry schema of schemas/simulation_entry.avsc"));
    }
    Ok(())
}

/// Reads a simulation file back, entry by entry.
///
/// The container format is read here rather than with apache-avro's
/// reader, which reserves memory from the counts a file claims (a corrupt
/// header could ask for gigabytes and abort the process); entries are
/// decoded with the model's codec, which never allocates more than the
/// input justifies. Only what [`write_simulation`] writes is accepted: the
/// `SimulationEntry` schema and the `null` codec.
pub struct SimReader<R: Read> {
    input: R,
    meta: FileMeta,
    sync: [u8; 16],
    /// The rest of the current block.
    block: Vec<u8>,
    at: usize,
    /// Entries left in the current block.
    left: u64,
    /// Set at the end of the file or after an error, which ends the reading.
    done: bool,
}

impl<R: Read> SimReader<R> {
    pub fn new(mut input: R) -> Result<Self, FileError> {
        let mut magic = [0u8; 4];
        input.read_exact(&mut magic).map_err(|_| format_error("not an Avro object container file (too short)"))?;
        if magic != MAGIC {
            return Err(format_error("not an Avro object container file (no `Obj 1` marker)"));
        }
        let md = read_metadata(&mut input)?;
        let mut sync = [0u8; 16];
        input.read_exact(&mut sync).map_err(|_| format_error("the file ends in its header's sync marker"))?;
        match md.get("avro.codec").map(Vec::as_slice) {
            None | Some(b"null") => {}
            Some(other) => {
                return Err(format_error(format!(
                    "entries are compressed with codec `{}`; only `null` is read",
                    String::from_utf8_lossy(other)
                )))
            }
        }
        check_schema(md.get("avro.schema").ok_or_else(|| format_error("metadata `avro.schema` missing"))?)?;
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
        Ok(SimReader { input, meta, sync, block: Vec::new(), at: 0, left: 0, done: false })
    }

    pub fn meta(&self) -> &FileMeta {
        &self.meta
    }

    /// Moves to the next block with entries in it; false at the end of the file.
    fn next_block(&mut self) -> Result<bool, FileError> {
        while self.left == 0 {
            if self.at != self.block.len() {
                return Err(format_error(format!("{} bytes after the last entry of a block", self.block.len() - self.at)));
            }
            let Some(first) = next_byte(&mut self.input)? else { return Ok(false) };
            let mut first = Some(first);
            let input = &mut self.input;
            let count = read_varint(|| first.take().map_or_else(|| next_byte(input), |b| Ok(Some(b))), "a block's count")?;
            let count = u64::try_from(count).map_err(|_| format_error(format!("a block has a negative count {count}")))?;
            let size = read_varint(|| next_byte(&mut self.input), "a block's size")?;
            self.block = read_exact_vec(&mut self.input, size, "a block")?;
            self.at = 0;
            // An entry takes at least three bytes (two union branches and a record).
            if count > self.block.len() as u64 / 3 {
                return Err(format_error(format!("a block of {} bytes claims {count} entries", self.block.len())));
            }
            let mut sync = [0u8; 16];
            self.input.read_exact(&mut sync).map_err(|_| format_error("the file ends in a block's sync marker"))?;
            if sync != self.sync {
                return Err(format_error("a block's sync marker is not the header's (a corrupt file)"));
            }
            self.left = count;
        }
        Ok(true)
    }

    fn read_entry(&mut self) -> Result<Entry, FileError> {
        let mut data = &self.block[self.at..];
        let at = match read_varint(|| slice_byte(&mut data), "an entry's arrives_at")? {
            0 => None,
            1 => {
                let us = read_varint(|| slice_byte(&mut data), "an entry's arrives_at")?;
                Some(
                    DateTime::from_timestamp_micros(us)
                        .ok_or_else(|| format_error(format!("arrives_at {us} µs since the epoch is out of range")))?,
                )
            }
            other => return Err(format_error(format!("arrives_at has union branch {other}, not 0 or 1"))),
        };
        let member = read_varint(|| slice_byte(&mut data), "an entry's record")?;
        let need_at = || at.ok_or_else(|| format_error("a report or event without arrives_at"));
        let entry = match member {
            m if m == CALENDAR as i64 => Entry::Calendar(SchoolCalendar::read_avro_datum(&mut data)?),
            m if m == STUDENT as i64 => Entry::Student(StudentRecord::read_avro_datum(&mut data)?),
            m if m == REPORT as i64 => {
                Entry::Report { report: AbsenceReport::read_avro_datum(&mut data)?, arrives_at: need_at()? }
            }
            m if m == EVENT as i64 => Entry::Event { event: ActivityEvent::read_avro_datum(&mut data)?, arrives_at: need_at()? },
            other => return Err(format_error(format!("union member {other} is unknown"))),
        };
        self.at = self.block.len() - data.len();
        self.left -= 1;
        Ok(entry)
    }
}

impl<R: Read> Iterator for SimReader<R> {
    type Item = Result<Entry, FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let entry = match self.next_block() {
            Ok(true) => self.read_entry(),
            Ok(false) => {
                self.done = true;
                return None;
            }
            Err(e) => Err(e),
        };
        if entry.is_err() {
            self.done = true;
        }
        Some(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small_file() -> Vec<u8> {
        let cfg = SimConfig { students: 5, days: 1, ..SimConfig::default() };
        let mut buf = Vec::new();
        write_simulation(&cfg, &mut buf, |_| {}).unwrap();
        buf
    }

    fn open_err(bytes: &[u8]) -> String {
        match SimReader::new(bytes) {
            Ok(_) => panic!("opened"),
            Err(e) => e.to_string(),
        }
    }

    /// Found by fuzzing (fuzz/regressions/sim_file/): a header whose
    /// metadata map claims some 10^18 entries made apache-avro's reader
    /// reserve memory for all of them up front and abort the process.
    #[test]
    fn absurd_counts_and_lengths_are_errors_not_allocations() {
        let mut huge_count = b"Obj\x01".to_vec();
        huge_count.extend([0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        let e = open_err(&huge_count);
        assert!(e.contains("ends in the middle of a metadata key's length"), "{e}");

        let mut huge_key = b"Obj\x01\x02".to_vec();
        huge_key.extend([0xfe, 0xff, 0xff, 0xff, 0x0f]);
        let e = open_err(&huge_key);
        assert!(e.contains("metadata key") && e.contains("2147483647"), "{e}");

        // A block claiming more entries than its bytes can hold.
        let file = small_file();
        let header_len = {
            let mut input = file.as_slice();
            SimReader::new(&mut input).unwrap();
            file.len() - input.len()
        };
        let mut bad = file[..header_len].to_vec();
        bad.extend([0xfe, 0xff, 0xff, 0xff, 0x0f, 0x06, 0, 0, 0]);
        bad.extend(&file[header_len - 16..header_len]);
        let e = SimReader::new(bad.as_slice()).unwrap().next().unwrap().unwrap_err().to_string();
        assert!(e.contains("a block of 3 bytes claims 2147483647 entries"), "{e}");
    }

    #[test]
    fn truncated_and_foreign_files_are_errors() {
        let file = small_file();
        let total = SimReader::new(file.as_slice()).unwrap().count();
        for cut in [0, 3, 10, 200, file.len() / 2, file.len() - 17, file.len() - 1] {
            let outcome: Result<Vec<Entry>, FileError> = match SimReader::new(&file[..cut]) {
                Ok(r) => r.collect(),
                Err(e) => Err(e),
            };
            assert!(outcome.is_err(), "a file cut at {cut} of {} bytes read as a whole", file.len());
        }
        assert!(total > 5);
        assert!(open_err(b"{\"json\": 1}").contains("no `Obj 1` marker"));
        // Another schema in the header.
        let schema = Schema::parse_str(r#"{"type":"record","name":"R","fields":[{"name":"f","type":"long"}]}"#).unwrap();
        let mut w = Writer::with_codec(&schema, Vec::new(), Codec::Null);
        w.flush().unwrap();
        let e = open_err(&w.into_inner().unwrap());
        assert!(e.contains("not the SimulationEntry schema"), "{e}");
    }

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
        let cals: Vec<_> =
            entries.iter().filter_map(|e| if let Entry::Calendar(c) = e { Some(c.clone()) } else { None }).collect();
        assert_eq!(cals, world.calendars);
        let roster: Vec<_> =
            entries.iter().filter_map(|e| if let Entry::Student(s) = e { Some(s.clone()) } else { None }).collect();
        assert_eq!(roster, world.roster);
        let events: Vec<_> = entries
            .iter()
            .filter_map(|e| if let Entry::Event { event, arrives_at } = e { Some((event.clone(), *arrives_at)) } else { None })
            .collect();
        let expected: Vec<_> = world.events.iter().map(|e| (e.event.clone(), e.arrives_at)).collect();
        assert_eq!(events, expected);
        let mut reports: Vec<_> = entries
            .iter()
            .filter_map(|e| if let Entry::Report { report, .. } = e { Some(report.clone()) } else { None })
            .collect();
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
