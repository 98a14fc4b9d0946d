//! The scenario file decoder (`Scenario::parse`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rollcall_scenario::fuzzing::scenario_json(data);
});
