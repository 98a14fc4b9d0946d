//! `rollcall bench`: the measurements behind the speed targets of
//! docs/targets.md, one module a benchmark. Each sub-command prints what it
//! did and ends with one line holding its figure (`engine: N events/s`,
//! `state: N bytes per student-day`, ...); BENCHMARKS.md records the figures
//! and how they were taken.
//!
//! This crate owns the harness only: it drives the same engine, processor,
//! sink and gateway that `rollcall` runs, on simulated districts, fresh
//! topics and throwaway databases. It is a command's body, so its errors
//! end at the command line (`anyhow`), as the binary's do.
//!
//! - [`engine`]: `bench engine` and `bench state` (the engine on RocksDB, one thread);
//! - [`semester`]: `bench semester` (whether the state stops growing over a semester);
//! - [`broker`]: what the broker benches share (topics, producing a district, a watched processor run);
//! - [`kafka`], [`latency`], [`restore`], [`peers`]: the processor on a broker;
//! - [`scale`]: one instance against two in a group, each pinned to a core;
//! - [`sink`]: `bench sink` (the PostgreSQL sink against a bare COPY);
//! - [`gateway`]: `bench gateway` (the HTTP gateway against a bare producer);
//! - [`district`] and [`progress`]: the simulated input and the progress bars.

use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Replay a simulated district through the engine on one thread, with
    /// RocksDB state in a temporary directory. Last line: `engine: N events/s`.
    Engine(engine::EngineArgs),
    /// Run about a month of a simulated district, compact, and measure the
    /// state on disk per student-day and RocksDB's memory. Last line:
    /// `state: N bytes per student-day`.
    State(engine::StateArgs),
    /// Stream a semester of a simulated district (10,000 students, 90 school
    /// days) through the engine, the correction horizon purging as the weeks
    /// close, and measure the state after `--at` school days and at the end.
    /// Last line: `semester: state on disk N bytes at the end, N after D school
    /// days (ratio R); RocksDB memory ratio R`.
    Semester(semester::SemesterArgs),
    /// Produce a simulated district to fresh topics, read it with a bare
    /// read_committed consumer, then run the exactly-once processor over it.
    /// Last line: `kafka: processor N records/s, bare consumer N records/s, ratio R`.
    Kafka(kafka::KafkaArgs),
    /// One processor instance against two in one group, on the same topics
    /// (12 partitions), each instance pinned to a core of its own with one
    /// apply thread; the broker's share of the machine beside the rates.
    /// Last line: `scale: one instance N records/s, two instances N records/s, ratio R`.
    Scale(scale::ScaleArgs),
    /// The wall-clock processor under a steady stream of deciding events:
    /// from send to the provisional determination being visible
    /// (read_committed). Last line: `latency: p50 S s, p99 S s over N determinations`.
    Latency(latency::LatencyArgs),
    /// Fill the changelog with one processor run, then restore every
    /// partition on an instance with an empty state directory. Last line:
    /// `restore: N records/s (N records, N partitions)`.
    Restore(district::DistrictOnBroker),
    /// rollcall and the peer implementations in bench/peers (Kafka Streams,
    /// Quix Streams, Apache Flink) on the same input topic, under the
    /// daily-engagement policy. Last line: `peers: rollcall N events/s,
    /// kafka-streams N events/s (Rx), quix N events/s (Rx), flink N events/s (Rx)`.
    Peers(peers::PeersArgs),
    /// Run a simulated district through the processor, then write its
    /// determinations into a fresh database with `rollcall sink postgres`'s
    /// code, and the same rows with a bare COPY. Last line: `sink: N
    /// determinations/s, bare COPY N/s (ratio R, …), processor N/s (sink/processor R, …)`.
    Sink(sink::BenchSinkArgs),
    /// A load generator on loopback against a gateway it starts in this
    /// process (a Caliper source, fresh topics): rounds of concurrent
    /// keep-alive clients posting envelopes of 100 events, each followed by a
    /// bare rdkafka producer (acks=all, idempotent) writing the same events,
    /// then single-event requests at a fixed offered rate; fails unless the
    /// topics hold every acknowledged event. Last line: `gateway: batched N
    /// events/s (bare producer N events/s, ratio R), single p50 X ms p99 Y ms
    /// at N requests/s`, the first three the medians of the rounds.
    Gateway(gateway::GatewayBenchArgs),
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Engine(a) => engine::engine(a),
        BenchCommand::State(a) => engine::state(a),
        BenchCommand::Semester(a) => semester::semester(a),
        BenchCommand::Kafka(a) => kafka::kafka(a),
        BenchCommand::Scale(a) => scale::scale(a),
        BenchCommand::Latency(a) => latency::latency(a),
        BenchCommand::Restore(a) => restore::restore(a),
        BenchCommand::Peers(a) => peers::peers(a),
        BenchCommand::Sink(a) => sink::sink(a),
        BenchCommand::Gateway(a) => gateway::gateway(a),
    }
}

pub mod broker;
pub mod district;
pub mod engine;
pub mod gateway;
mod http1;
pub mod kafka;
pub mod latency;
pub mod peers;
pub mod progress;
pub mod restore;
pub mod scale;
pub mod semester;
pub mod sink;
