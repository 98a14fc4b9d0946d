//! The policy file decoder (`Policy::from_toml`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rollcall_policy::fuzzing::policy_toml(data);
});
