//! The school calendar CSV reader of rollcall-ingest on arbitrary bytes:
//! never panics, and whatever it reads is deterministic and round-trips
//! through Avro.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rollcall_ingest::fuzzing::calendar_csv(data);
});
