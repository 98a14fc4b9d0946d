//! The gateway takes an event whose identities are unknown, and resolves it
//! later against a newer view. Differential: for every fixture of every
//! platform format, normalizing with an empty view and then resolving each
//! waiting event against the full view gives exactly the events (and the
//! staff actions) that normalizing with the full view gives at once.

mod common;

use common::*;
use rollcall_ingest::{normalize, resolve, Format, IdentityView, Resolution};

#[test]
fn waiting_then_resolved_is_the_same_as_known_at_once() {
    let full = ids();
    let empty = IdentityView::new();
    let mut checked = 0;
    for (dir, format) in
        [("caliper", Format::Caliper), ("xapi", Format::Xapi), ("canvas", Format::Canvas), ("zoom", Format::Zoom)]
    {
        let mut files: Vec<_> = std::fs::read_dir(fixture_path(dir)).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for path in files {
            let body = std::fs::read(&path).unwrap();
            let name = path.display().to_string();
            let (Ok(at_once), Ok(later)) = (normalize(format, &body, &full, None), normalize(format, &body, &empty, None)) else {
                continue;
            };
            assert!(later.events.is_empty(), "{name}: an event resolved against an empty view");
            let mut released = Vec::new();
            let mut staff = 0;
            let mut still = 0;
            for w in &later.waiting {
                match resolve(&w.event, &full) {
                    Resolution::Ready(e) => released.push(*e),
                    Resolution::Staff => staff += 1,
                    Resolution::Waiting(_) => still += 1,
                }
            }
            assert_eq!(released, at_once.events, "{name}: released events differ from those normalized at once");
            assert_eq!(still, at_once.waiting.len(), "{name}: events still waiting");
            // Staff actions are told apart at once where the payload says so
            // (membership roles, Canvas's context_role), else on resolution.
            let by_staff = |o: &rollcall_ingest::Outcome| -> u64 {
                o.ignored.iter().filter(|(k, _)| k.contains(" by staff")).map(|(_, n)| n).sum()
            };
            assert_eq!(staff as u64 + by_staff(&later), by_staff(&at_once), "{name}: staff actions");
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} fixtures were compared");
}
