//! A changelog record as a restore reads it: the key codec and the `meta` records (input positions, refused records, changelog position).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rollcall_kafka::fuzzing::changelog_record(data);
});
