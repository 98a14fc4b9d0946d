//! The fuzz target's check (`rollcall_scenario::fuzzing`) on its seed
//! inputs and saved crash inputs under `fuzz/`, on the stable toolchain.

#[test]
fn scenario_json_corpus() {
    rollcall_model::fuzzing::check_corpus("scenario_json", rollcall_scenario::fuzzing::scenario_json);
}
