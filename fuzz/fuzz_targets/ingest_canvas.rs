//! The canvas reader of rollcall-ingest on arbitrary bytes: never panics, and
//! whatever it accepts is deterministic and round-trips as canonical JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rollcall_ingest::fuzzing::canvas(data);
});
