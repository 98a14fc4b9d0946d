//! The OneRoster export reader of rollcall-ingest on arbitrary bytes (a
//! bundle of files, or a users.csv in the fixture export): never panics,
//! and whatever it reads is deterministic and round-trips through Avro.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rollcall_ingest::fuzzing::oneroster(data);
});
