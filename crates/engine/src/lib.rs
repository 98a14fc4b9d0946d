//! The attendance engine: pure and synchronous.
//!
//! Records of the world (calendars, roster, absence reports) and activity
//! events go in, together with an explicit clock; determinations and
//! outreach triggers come out. The engine never reads a clock, never does I/O
//! beyond its [`KvStore`], and knows nothing of Kafka: the scenario runner,
//! the Kafka processor and the benchmarks all drive this one engine.
//!
//! - `eval`: the policies' rules as pure functions of one student's facts.
//! - `engine`: windows, closes and timers, versioning, outreach.
//! - `state`: the state records, their keys and binary encodings.
//! - `school`: calendars, time zones and close instants.
//! - `kv`: the store interface and an in-memory store.

mod cache;
pub mod codec;
pub mod engine;
pub mod eval;
pub mod kv;
/// The behaviour every store must show; run by each store's tests.
#[doc(hidden)]
pub mod kv_conformance;
pub mod school;
pub mod state;

pub use engine::{
    Applied, ApplyError, Engine, EngineConfig, EngineError, EngineStats, Evaluation, Forgotten, OpenWindows, Output, Refusal,
    Rejection,
};
pub use kv::{KvStore, MemStore, StoreError, Table};
/// The kinds a [`Rejection`] has: the one dead-letter vocabulary.
pub use rollcall_model::DeadLetterKind;
