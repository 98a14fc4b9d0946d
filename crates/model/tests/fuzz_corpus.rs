//! The fuzz targets' checks (`rollcall_model::fuzzing`) on their seed inputs
//! and saved crash inputs under `fuzz/`, on the stable toolchain: valid
//! encodings decode and round-trip, and no saved input panics.

use rollcall_model::fuzzing::{avro_datum, check_corpus, single_object};

#[test]
fn avro_datum_corpus() {
    assert!(check_corpus("avro_datum", avro_datum) >= 7, "a seed for each record type");
}

#[test]
fn single_object_corpus() {
    assert!(check_corpus("single_object", single_object) >= 7, "a seed for each record type");
}

/// The event seeds hold every activity kind, in both encodings, so that
/// the fuzzer starts from each kind's shape.
#[test]
fn the_event_seeds_hold_every_activity_kind() {
    use rollcall_model::avro::AvroRecord;
    use rollcall_model::{ActivityEvent, ActivityKind};
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for kind in ActivityKind::ALL {
        let name = format!("event-{}.bin", kind.as_str().to_ascii_lowercase());
        let datum = std::fs::read(corpus.join("avro_datum").join(&name)).unwrap_or_else(|e| panic!("avro_datum/{name}: {e}"));
        assert_eq!(datum.first().map(|b| b % 7), Some(0), "avro_datum/{name}: the first byte must select ActivityEvent");
        let e = ActivityEvent::from_avro_datum(&datum[1..]).unwrap_or_else(|e| panic!("avro_datum/{name}: {e}"));
        assert_eq!(e.kind, *kind, "avro_datum/{name}");
        let single =
            std::fs::read(corpus.join("single_object").join(&name)).unwrap_or_else(|e| panic!("single_object/{name}: {e}"));
        let e = ActivityEvent::from_single_object(&single).unwrap_or_else(|e| panic!("single_object/{name}: {e}"));
        assert_eq!(e.kind, *kind, "single_object/{name}");
    }
}
