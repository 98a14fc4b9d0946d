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
