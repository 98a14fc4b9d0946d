//! The simulation file reader (`SimReader`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rollcall_sim::fuzzing::sim_file(data);
});
