//! The fuzz target's check (`rollcall_sim::fuzzing`) on its seed inputs and
//! saved crash inputs under `fuzz/`, on the stable toolchain.

#[test]
fn sim_file_corpus() {
    rollcall_model::fuzzing::check_corpus("sim_file", rollcall_sim::fuzzing::sim_file);
}
