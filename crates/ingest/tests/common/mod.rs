//! Shared by the per-format tests: fixtures, the identity view they are
//! written against, and expected events written as JSON.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rollcall_ingest::{IdentityView, Outcome, Rejected};
use rollcall_model::ActivityEvent;

pub fn fixture_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}

pub fn fixture(rel: &str) -> Vec<u8> {
    let p = fixture_path(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `tests/fixtures/identities.csv`, which must be the fuzz targets' view too.
pub fn ids() -> IdentityView {
    IdentityView::from_csv(&fixture("identities.csv")).unwrap_or_else(|e| panic!("identities.csv: {e}"))
}

/// An expected event, from its canonical JSON (absent optional fields are null or empty).
pub fn ev(v: serde_json::Value) -> ActivityEvent {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("expected event {v}: {e}"))
}

pub fn ok(r: Result<Outcome, Rejected>) -> Outcome {
    r.unwrap_or_else(|e| panic!("refused:\n{e}"))
}

pub fn errors(r: Result<Outcome, Rejected>) -> Vec<String> {
    match r {
        Ok(o) => panic!("accepted: {o:?}"),
        Err(e) => e.errors.iter().map(|e| e.to_string()).collect(),
    }
}

pub fn ignored(o: &Outcome) -> Vec<(&str, u64)> {
    o.ignored.iter().map(|(k, v)| (k.as_str(), *v)).collect()
}
