//! Every integration test of rollcall in one binary (so that RocksDB and
//! librdkafka are linked once), a module per area, run by
//! tests/support/harness.rs:
//!
//!     cargo test --release -p rollcall-cli --test main              # all
//!     cargo test --release -p rollcall-cli --test main -- gateway:: # one area
//!     cargo test --release -p rollcall-cli --test main -- each_format
//!     cargo test --release -p rollcall-cli --test main -- --list
//!
//! The areas that need nothing run on a thread pool; those that need a
//! broker, PostgreSQL, a schema registry or `prometheus` get them from the
//! runner (the given ones, ROLLCALL_TEST_BROKERS and the like, or ones it
//! starts and stops), one test at a time. The last line is
//! `N passed, M failed`.

#[macro_use]
mod support;

mod bad_input;
mod bench;
mod deploy;
mod edfi;
mod explain;
mod faults;
mod first_hour;
mod gateway;
mod https;
mod kafka;
mod normalize;
mod operations;
mod privacy;
mod registry;
mod reports;
mod roster_import;
mod scenarios;
mod security;
mod sink;

fn main() -> std::process::ExitCode {
    support::harness::main(vec![
        scenarios::area(),
        bad_input::area(),
        bench::area(),
        deploy::area(),
        normalize::area(),
        kafka::area(),
        first_hour::area(),
        operations::area(),
        sink::area(),
        explain::area(),
        edfi::area(),
        gateway::area(),
        roster_import::area(),
        reports::area(),
        registry::area(),
        security::area(),
        privacy::area(),
        https::area(),
        faults::area(),
    ])
}
