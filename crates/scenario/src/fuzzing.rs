//! The check of the scenario file decoder on arbitrary bytes, shared by the
//! fuzz target under `fuzz/` and the corpus test in `tests/fuzz_corpus.rs`.

use std::fmt::Debug;

use chrono::{DateTime, Timelike, Utc};
use rollcall_model::avro::AvroRecord;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::Scenario;

/// A record's canonical JSON form must read back as the same record.
fn json_round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(x: &T) {
    let text = serde_json::to_string(x).unwrap_or_else(|e| panic!("a parsed record does not serialize: {e}\n{x:?}"));
    let back: T =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("a parsed record, written back, is refused: {e}\n{text}"));
    assert_eq!(&back, x, "a record changed on its way through JSON:\n{text}");
}

/// A record read from a scenario must encode to Avro (as `scenario check
/// --brokers` sends it) and decode to the same record, less the digits
/// below a microsecond that Avro's timestamps do not carry.
fn avro_round_trip<T: AvroRecord + PartialEq + Debug>(x: &T, to_micros: impl Fn(&T) -> T) {
    let bytes = x.to_single_object().unwrap_or_else(|e| panic!("a parsed record does not encode to Avro: {e}\n{x:?}"));
    let back =
        T::from_single_object(&bytes).unwrap_or_else(|e| panic!("a parsed record's Avro form does not decode: {e}\n{x:?}"));
    assert_eq!(back, to_micros(x), "a record changed on its way through Avro");
}

/// The instant without its digits below a microsecond.
fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_nanosecond(t.nanosecond() / 1000 * 1000).expect("fewer nanoseconds are still valid")
}

/// [`Scenario::parse`] must not panic on any text; every record of a
/// scenario it accepts must survive the model's JSON and Avro codecs.
/// Returns whether the input was a valid scenario.
///
/// A scenario's `policy` may name a policy file, which is then read from the
/// working directory: the fuzz target runs in `fuzz/`.
pub fn scenario_json(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let Ok(s) = Scenario::parse(text, "<fuzz>", None) else {
        return false;
    };
    for c in &s.calendars {
        json_round_trip(c);
        avro_round_trip(c, Clone::clone);
    }
    for r in &s.roster {
        json_round_trip(r);
        avro_round_trip(r, Clone::clone);
    }
    for r in &s.absence_reports {
        json_round_trip(r);
        avro_round_trip(r, |r| rollcall_model::AbsenceReport { reported_at: micros(r.reported_at), ..r.clone() });
    }
    for a in &s.events {
        json_round_trip(&a.event);
        avro_round_trip(&a.event, |e| rollcall_model::ActivityEvent { occurred_at: micros(e.occurred_at), ..e.clone() });
    }
    true
}
