//! Checks of the normalizers and CSV readers on arbitrary bytes, shared by
//! the fuzz targets under `fuzz/` (`ingest_*`) and the corpus test in
//! `tests/fuzz_corpus.rs`.
//!
//! Each check must not panic on any input. Beyond that, whatever is
//! accepted must be deterministic (the same bytes give the same outcome,
//! which is what makes a re-delivered event a duplicate), every event must
//! have an id and a source, and every event must come back unchanged
//! through its canonical JSON form and its Avro form (`lms.activity.v1`). Each returns whether the input was
//! accepted, so that the corpus test can require its seeds to be valid.

use chrono::DateTime;
use rollcall_model::avro::AvroRecord;

use crate::{normalize, Format, IdType, Identity, IdentityView, Outcome, Rejected};

/// The identity view the fixtures under `tests/fixtures/` are written
/// against (also `tests/fixtures/identities.csv`).
pub fn fixture_identities() -> IdentityView {
    let rows: &[(&str, IdType, &str, &str, &str)] = &[
        ("caliper", IdType::Student, "https://example.edu/users/554433", "S2001", "lincoln-ms"),
        ("caliper", IdType::Student, "https://lms.example.edu/users/554433", "S2001", "lincoln-ms"),
        ("caliper", IdType::Staff, "https://lms.example.edu/users/112233", "T-17", "lincoln-ms"),
        ("caliper", IdType::Section, "https://lms.example.edu/sections/1", "alg-1-02", "lincoln-ms"),
        ("xapi", IdType::Student, "S2001", "S2001", "lincoln-ms"),
        ("xapi", IdType::Student, "mailto:blake@students.example.org", "S2002", "lincoln-ms"),
        ("xapi", IdType::Staff, "T-17", "T-17", "lincoln-ms"),
        ("xapi", IdType::Section, "https://lms.example.org/sections/ALG-1-02", "alg-1-02", "lincoln-ms"),
        ("canvas", IdType::Student, "S2001", "S2001", "lincoln-ms"),
        ("canvas", IdType::Student, "21070000000014012", "S2002", "lincoln-ms"),
        ("canvas", IdType::Staff, "21070000000000017", "T-17", "lincoln-ms"),
        ("canvas", IdType::Section, "21070000000000565", "alg-1-02", "lincoln-ms"),
        ("zoom", IdType::Student, "S2001", "S2001", "lincoln-ms"),
        ("zoom", IdType::Student, "blake@students.example.org", "S2002", "lincoln-ms"),
        ("zoom", IdType::Staff, "t.jones@example.org", "T-17", "lincoln-ms"),
        ("zoom", IdType::Section, "85746065432", "alg-1-02", "lincoln-ms"),
    ];
    let mut v = IdentityView::new();
    for (source, kind, external, id, school) in rows {
        v.insert(source, *kind, external, Identity { id: id.to_string(), school_id: school.to_string() });
    }
    v
}

fn check(format: Format, data: &[u8]) -> bool {
    let ids = fixture_identities();
    let first = normalize(format, data, &ids, None);
    let again = normalize(format, data, &ids, None);
    assert_eq!(first, again, "{} normalized the same bytes two ways", format.name());
    match first {
        Ok(out) => {
            well_formed(&out);
            true
        }
        Err(Rejected { errors }) => {
            assert!(!errors.is_empty(), "{} refused a request without saying why", format.name());
            for e in errors {
                assert!(!e.to_string().is_empty());
            }
            false
        }
    }
}

fn well_formed(out: &Outcome) {
    let events = out.events.iter().chain(out.waiting.iter().map(|w| &w.event));
    for e in events {
        assert!(!e.event_id.is_empty(), "an event without an id: {e:?}");
        assert!(!e.source.is_empty(), "an event without a source: {e:?}");
        let json = serde_json::to_string(e).unwrap_or_else(|err| panic!("an event does not serialize: {err}\n{e:?}"));
        let back: rollcall_model::ActivityEvent =
            serde_json::from_str(&json).unwrap_or_else(|err| panic!("an event's JSON does not read back: {err}\n{json}"));
        assert_eq!(&back, e, "an event changed through its JSON form");
        // What the gateway will produce to `lms.activity.v1`: the event must
        // encode against the topic's schema and decode unchanged.
        let bytes = e.to_single_object().unwrap_or_else(|err| panic!("an event does not encode as Avro: {err}\n{e:?}"));
        let back = rollcall_model::ActivityEvent::from_single_object(&bytes)
            .unwrap_or_else(|err| panic!("an event's Avro does not decode: {err}\n{e:?}"));
        assert_eq!(&back, e, "an event changed through its Avro form");
    }
    for w in &out.waiting {
        assert!(!w.unknown.is_empty(), "waiting for nothing: {w:?}");
    }
}

pub fn caliper(data: &[u8]) -> bool {
    check(Format::Caliper, data)
}

pub fn xapi(data: &[u8]) -> bool {
    check(Format::Xapi, data)
}

pub fn canvas(data: &[u8]) -> bool {
    check(Format::Canvas, data)
}

/// The webhook normalizer, the URL validation answer and the signature
/// check (with the first line of the input as the signature header, the
/// rest as the body).
pub fn zoom(data: &[u8]) -> bool {
    let now = DateTime::from_timestamp(1_739_977_500, 0).unwrap_or_default();
    let _ = crate::zoom::url_validation_response(data, b"secret");
    let (head, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    let head = String::from_utf8_lossy(head);
    let _ = crate::zoom::verify_signature(b"secret", "1739977500", &head, body, now);
    let _ = crate::zoom::verify_signature(b"secret", &head, "v0=00", body, now);
    check(Format::Zoom, data)
}

/// Native JSON and the native CSV (told apart by the first character).
pub fn native(data: &[u8]) -> bool {
    check(Format::Native, data)
}

/// The identity CSV reader.
pub fn identities(data: &[u8]) -> bool {
    match IdentityView::from_csv(data) {
        Ok(v) => {
            let again = IdentityView::from_csv(data).map(|v| v.len());
            assert_eq!(again, Ok(v.len()), "the identity CSV read two ways");
            true
        }
        Err(r) => {
            assert!(!r.errors.is_empty());
            false
        }
    }
}
