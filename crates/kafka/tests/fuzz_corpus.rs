//! The fuzz targets' checks (`rollcall_kafka::fuzzing`) on their seed inputs
//! and saved crash inputs under `fuzz/`, on the stable toolchain.

use rollcall_model::fuzzing::check_corpus;

#[test]
fn processor_config_corpus() {
    let n = check_corpus("processor_config", rollcall_kafka::fuzzing::processor_config);
    assert!(n >= 3, "the example file, one with an environment, one of a trial group");
    // A refused file is not a pass by accident: the check says so.
    assert!(!rollcall_kafka::fuzzing::processor_config(b"groop = \"g\"\n"));
    assert!(!rollcall_kafka::fuzzing::processor_config(&[0xff, 0xfe]));
}

#[test]
fn changelog_record_corpus() {
    let n = check_corpus("changelog_record", rollcall_kafka::fuzzing::changelog_record);
    assert!(n >= 4, "positions, refused records, the changelog position and a tombstone");
    assert!(!rollcall_kafka::fuzzing::changelog_record(&[1, 0, 1, 250]), "table 250 is unknown");
    assert!(!rollcall_kafka::fuzzing::changelog_record(&[1, 0, 9, 1]), "a key longer than the record");
}
