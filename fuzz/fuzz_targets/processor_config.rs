//! The processor's settings file and its environment overlay (`ProcessorConfig`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rollcall_kafka::fuzzing::processor_config(data);
});
