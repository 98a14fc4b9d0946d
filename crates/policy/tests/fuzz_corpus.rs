//! The fuzz target's check (`rollcall_policy::fuzzing`) on its seed inputs
//! and saved crash inputs under `fuzz/`, on the stable toolchain.

#[test]
fn policy_toml_corpus() {
    let n = rollcall_model::fuzzing::check_corpus("policy_toml", rollcall_policy::fuzzing::policy_toml);
    assert!(n >= rollcall_policy::PRESET_IDS.len(), "a seed for each preset");
}
