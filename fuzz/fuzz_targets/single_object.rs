//! The single-object decoder the processor applies to every input record: header, fingerprint, datum.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rollcall_model::fuzzing::single_object(data);
});
