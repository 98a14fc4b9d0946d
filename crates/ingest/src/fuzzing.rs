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
    // What the gateway produces: the same events, written straight to Avro
    // where the format has a direct path, and each reads back as the event.
    let received = DateTime::from_timestamp(1_739_977_500, 123_456_000).unwrap_or_default();
    let encoded = crate::encode(format, data, &ids, None, received);
    assert_eq!(encoded, first.clone().map(|o| crate::Encoded::from_outcome(o, received)), "{} encodes otherwise", format.name());
    if let (Ok(encoded), Ok(out)) = (&encoded, &first) {
        for (r, e) in encoded.events.iter().zip(&out.events) {
            let back = rollcall_model::ActivityEvent::from_single_object(encoded.payload(r))
                .unwrap_or_else(|err| panic!("an encoded event does not decode: {err}\n{e:?}"));
            assert_eq!(back, rollcall_model::ActivityEvent { received_at: Some(received), ..e.clone() });
            assert_eq!(encoded.key(r), e.student_id.as_bytes());
        }
    }
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

/// The v1p1 fixture export (`tests/fixtures/oneroster/v1p1/`), which an
/// input that is not a bundle is read against as its `users.csv`.
const V1P1: [(&str, &[u8]); 7] = [
    ("manifest.csv", include_bytes!("../tests/fixtures/oneroster/v1p1/manifest.csv")),
    ("orgs.csv", include_bytes!("../tests/fixtures/oneroster/v1p1/orgs.csv")),
    ("academicSessions.csv", include_bytes!("../tests/fixtures/oneroster/v1p1/academicSessions.csv")),
    ("courses.csv", include_bytes!("../tests/fixtures/oneroster/v1p1/courses.csv")),
    ("classes.csv", include_bytes!("../tests/fixtures/oneroster/v1p1/classes.csv")),
    ("enrollments.csv", include_bytes!("../tests/fixtures/oneroster/v1p1/enrollments.csv")),
    ("demographics.csv", include_bytes!("../tests/fixtures/oneroster/v1p1/demographics.csv")),
];

/// The input of the `ingest_oneroster` target as an export. An input that
/// starts with `--- NAME` is a bundle: each line `--- NAME` starts the file
/// NAME (`sections.csv` and `modes.csv` are the companions). Any other
/// input is `users.csv` in the v1p1 fixture export, with its companions.
pub fn oneroster_input(data: &[u8]) -> crate::oneroster::Input {
    use crate::oneroster::{Companion, Input};
    let mut input = Input::default();
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    if data.starts_with(b"--- ") {
        for line in data.split_inclusive(|b| *b == b'\n') {
            match line.strip_prefix(b"--- ") {
                Some(name) => files.push((String::from_utf8_lossy(name).trim().to_string(), Vec::new())),
                None => {
                    if let Some((_, bytes)) = files.last_mut() {
                        bytes.extend_from_slice(line);
                    }
                }
            }
        }
    } else {
        files.extend(V1P1.iter().map(|(n, b)| (n.to_string(), b.to_vec())));
        files.push(("users.csv".into(), data.to_vec()));
        files.push(("sections.csv".into(), include_bytes!("../tests/fixtures/oneroster/sections.csv").to_vec()));
        files.push(("modes.csv".into(), include_bytes!("../tests/fixtures/oneroster/modes.csv").to_vec()));
    }
    for (name, bytes) in files {
        match name.as_str() {
            "sections.csv" => input.sections = Some(Companion { name, bytes }),
            "modes.csv" => input.modes = Some(Companion { name, bytes }),
            _ => {
                input.files.insert(name, bytes);
            }
        }
    }
    input
}

/// The OneRoster reader, on [`oneroster_input`], for two sources, on a
/// date: deterministic, and every record it gives encodes as its topic's
/// Avro and decodes unchanged. Returns whether the export was read (not
/// refused whole), bad rows or not.
pub fn oneroster(data: &[u8]) -> bool {
    use crate::oneroster::{import, Options};
    let input = oneroster_input(data);
    let opts = Options {
        sources: vec!["canvas".into(), "zoom".into()],
        as_of: chrono::NaiveDate::from_ymd_opt(2026, 2, 2),
        ..Options::default()
    };
    let first = import(&input, &opts);
    assert_eq!(first, import(&input, &opts), "the export read two ways");
    match first {
        Ok(i) => {
            for e in &i.errors {
                assert!(!e.file().is_empty() && !e.to_string().is_empty());
            }
            for s in &i.students {
                assert!(!s.student_id.is_empty() && !s.school_id.is_empty(), "{s:?}");
                let bytes = s.to_single_object().unwrap_or_else(|e| panic!("a student does not encode: {e}\n{s:?}"));
                let back = rollcall_model::StudentRecord::from_single_object(&bytes).unwrap_or_else(|e| panic!("{e}\n{s:?}"));
                assert_eq!(&back, s, "a student changed through its Avro form");
            }
            for r in &i.identities {
                let bytes = r.to_single_object().unwrap_or_else(|e| panic!("an identity does not encode: {e}\n{r:?}"));
                let back = rollcall_model::IdentityRecord::from_single_object(&bytes).unwrap_or_else(|e| panic!("{e}\n{r:?}"));
                assert_eq!(&back, r, "an identity changed through its Avro form");
                assert_eq!(rollcall_model::IdentityRecord::parse_key(&r.key()).map(|k| k.2), Some(r.external_id.clone()));
            }
            true
        }
        Err(r) => {
            assert!(!r.errors.is_empty(), "an export refused without saying why");
            false
        }
    }
}

/// The calendar CSV reader: deterministic, and every calendar encodes as
/// its topic's Avro and decodes unchanged. Returns whether the header was
/// right (bad rows or not).
pub fn calendar_csv(data: &[u8]) -> bool {
    let first = crate::calendar_csv::read(data);
    assert_eq!(first, crate::calendar_csv::read(data), "the calendar CSV read two ways");
    match first {
        Ok(c) => {
            for cal in &c.calendars {
                assert!(!cal.days.is_empty());
                let bytes = cal.to_single_object().unwrap_or_else(|e| panic!("a calendar does not encode: {e}\n{cal:?}"));
                let back = rollcall_model::SchoolCalendar::from_single_object(&bytes).unwrap_or_else(|e| panic!("{e}\n{cal:?}"));
                assert_eq!(&back, cal, "a calendar changed through its Avro form");
            }
            true
        }
        Err(r) => {
            assert!(!r.errors.is_empty());
            false
        }
    }
}
