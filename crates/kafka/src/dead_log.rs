//! Dead letters in the log: one summary per interval, not one line per
//! record. A producer that sends the wrong schema makes thousands of dead
//! letters a minute; a WARN line each buries everything else. The summary
//! counts them by kind and topic with one example each (its position and
//! message, the student id in it hashed as in every log line); the
//! per-record detail is at debug level, and the records themselves are on
//! the dead-letter topic.
//!
//! It also notices the commonest first-hour mistake: a district replayed
//! from the past under the wall clock, where most records are refused
//! TIMESTAMP_OUT_OF_RANGE. It says so once, with the flag that is probably
//! wanted.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use rollcall_model::{DeadLetter, DeadLetterKind};

/// Records seen before the share of out-of-range ones is judged.
const HINT_AFTER_RECORDS: u64 = 20;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    count: u64,
    example: String,
}

/// Counts dead letters between summaries.
#[derive(Debug)]
pub struct DeadLetterLog {
    interval: Duration,
    since: Instant,
    entries: BTreeMap<(&'static str, String), Entry>,
    records: u64,
    out_of_range: u64,
    hint_given: bool,
}

/// What happened in one interval: `Display` gives the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub total: u64,
    pub seconds: u64,
    /// (kind, topic, count, example), by kind then topic.
    pub lines: Vec<(&'static str, String, u64, String)>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} dead letter(s) in the last {} s:", self.total, self.seconds)?;
        for (kind, topic, count, example) in &self.lines {
            write!(f, " {kind} on {topic}: {count} (e.g. {example});")?;
        }
        Ok(())
    }
}

impl DeadLetterLog {
    pub fn new(interval: Duration) -> DeadLetterLog {
        DeadLetterLog {
            interval,
            since: Instant::now(),
            entries: BTreeMap::new(),
            records: 0,
            out_of_range: 0,
            hint_given: false,
        }
    }

    /// Input records applied (good or not), for the out-of-range share.
    pub fn records(&mut self, n: u64) {
        self.records += n;
    }

    pub fn note(&mut self, kind: DeadLetterKind, d: &DeadLetter) {
        if kind == DeadLetterKind::TimestampOutOfRange {
            self.out_of_range += 1;
        }
        let e = self.entries.entry((kind.as_str(), d.topic.clone())).or_insert_with(|| Entry { count: 0, example: example(d) });
        e.count += 1;
    }

    /// The interval's summary, when the interval is over (or `now` is
    /// forced, at the end of the input or of the run) and there is one.
    pub fn take_due(&mut self, now: Instant, force: bool) -> Option<Summary> {
        let elapsed = now.saturating_duration_since(self.since);
        if self.entries.is_empty() || (!force && elapsed < self.interval) {
            return None;
        }
        self.since = now;
        let lines: Vec<_> = std::mem::take(&mut self.entries).into_iter().map(|((k, t), e)| (k, t, e.count, e.example)).collect();
        Some(Summary { total: lines.iter().map(|l| l.2).sum(), seconds: elapsed.as_secs().max(1), lines })
    }

    /// Once per run: most of what was read is out of the wall clock's
    /// range, which is what a district from the past looks like.
    pub fn take_clock_hint(&mut self) -> Option<String> {
        if self.hint_given || self.records < HINT_AFTER_RECORDS || self.out_of_range * 2 <= self.records {
            return None;
        }
        self.hint_given = true;
        Some(format!(
            "{} of the first {} input records are out of the wall clock's range (TIMESTAMP_OUT_OF_RANGE): they are \
             from the past. To process a replayed or simulated district, run with `--clock replay` (and `--until` \
             the instant to advance to at the end); the wall clock is for live data",
            self.out_of_range, self.records
        ))
    }
}

/// Where the record was and why it was refused, without the student id.
fn example(d: &DeadLetter) -> String {
    let at = match (d.partition, d.offset) {
        (Some(p), Some(o)) => format!("[{p}]@{o}"),
        _ => "after waiting".to_string(),
    };
    let mut message = d.message.clone();
    if let Some(k) = d.key.as_deref().filter(|k| !k.is_empty()) {
        message = message.replace(k, &crate::redact::student(k).to_string());
    }
    format!("{at}: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn letter(topic: &str, offset: i64, key: &str, message: &str) -> DeadLetter {
        DeadLetter {
            topic: topic.into(),
            partition: Some(0),
            offset: Some(offset),
            key: Some(key.into()),
            value: Vec::new(),
            error_kind: String::new(),
            message: message.into(),
            failed_at: chrono::Utc.with_ymd_and_hms(2020, 10, 5, 0, 0, 0).unwrap(),
        }
    }

    #[test]
    fn one_summary_per_interval_by_kind_and_topic_with_one_example() {
        use DeadLetterKind::*;
        let t0 = Instant::now();
        let mut log = DeadLetterLog::new(Duration::from_secs(10));
        for i in 0..3 {
            log.note(UnknownSchool, &letter("lms.activity.v1", i, "s-7", "no calendar for school `oak`"));
        }
        log.note(NotAvro, &letter("sis.roster.v1", 9, "s-8", "not Avro"));
        assert_eq!(log.take_due(t0 + Duration::from_secs(5), false), None, "the interval is not over");
        let s = log.take_due(t0 + Duration::from_secs(11), false).expect("a summary");
        assert_eq!(s.total, 4);
        let kinds: Vec<_> = s.lines.iter().map(|l| (l.0, l.1.as_str(), l.2)).collect();
        assert_eq!(kinds, [("NOT_AVRO", "sis.roster.v1", 1), ("UNKNOWN_SCHOOL", "lms.activity.v1", 3)]);
        assert_eq!(s.lines[1].3, "[0]@0: no calendar for school `oak`", "the first one is the example");
        let line = s.to_string();
        assert!(line.starts_with("4 dead letter(s) in the last "), "{line}");
        assert!(line.contains("UNKNOWN_SCHOOL on lms.activity.v1: 3 (e.g. [0]@0: no calendar"), "{line}");
        assert_eq!(log.take_due(t0 + Duration::from_secs(30), true), None, "nothing new, nothing to say");
    }

    #[test]
    fn the_student_id_in_an_example_is_hashed() {
        let mut log = DeadLetterLog::new(Duration::ZERO);
        log.note(DeadLetterKind::UnknownStudent, &letter("lms.activity.v1", 1, "s-000123", "no roster record for `s-000123`"));
        let line = log.take_due(Instant::now(), true).expect("a summary").to_string();
        assert!(!line.contains("000123"), "{line}");
        assert!(line.contains(&crate::redact::student("s-000123").to_string()), "{line}");
    }

    #[test]
    fn the_clock_hint_comes_once_when_most_records_are_out_of_range() {
        let mut log = DeadLetterLog::new(Duration::from_secs(10));
        let oor = letter("lms.activity.v1", 1, "s-1", "out of range");
        log.records(10);
        for _ in 0..10 {
            log.note(DeadLetterKind::TimestampOutOfRange, &oor);
        }
        assert_eq!(log.take_clock_hint(), None, "too few records to judge");
        log.records(30);
        for _ in 0..10 {
            log.note(DeadLetterKind::TimestampOutOfRange, &oor);
        }
        assert_eq!(log.take_clock_hint(), None, "20 of 40 is not most");
        log.records(2);
        for _ in 0..2 {
            log.note(DeadLetterKind::TimestampOutOfRange, &oor);
        }
        let hint = log.take_clock_hint().expect("22 of 42 is most");
        assert!(hint.contains("22 of the first 42") && hint.contains("--clock replay"), "{hint}");
        log.records(100);
        for _ in 0..100 {
            log.note(DeadLetterKind::TimestampOutOfRange, &oor);
        }
        assert_eq!(log.take_clock_hint(), None, "once per run");
    }
}
