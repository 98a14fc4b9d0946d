//! rollcall's data model: the records of the attendance pipeline (activity,
//! roster, calendars, absence reports, determinations, outreach triggers,
//! dead letters), their canonical JSON form, and their Avro form against the
//! schema files in `schemas/` at the top of the repository.
//!
//! Everything that crosses a process boundary is defined here, so the engine,
//! the state store and the runtimes agree on one set of types.

pub mod avro;
/// Checks of the decoders on arbitrary input, for the fuzz targets and the
/// corpus tests.
#[doc(hidden)]
pub mod fuzzing;
pub mod types;

pub use types::*;

/// An error and its sources, outermost first, joined by `: ` (as anyhow's
/// `{:#}` prints them). Errors here keep their cause as a source rather
/// than in their own message, so this is how a person is shown both.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
