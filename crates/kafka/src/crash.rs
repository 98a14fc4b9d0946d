//! Named crash points in the processor's protocol, for the tests that
//! kill it at an exact step rather than at a random instant.
//!
//! Compiled in only with the `crash-points` feature (scripts/test.sh builds
//! the suite with it; a release built without it has none of this code).
//! `ROLLCALL_CRASH_POINT=NAME:N[,NAME:N...]` makes the process send itself
//! SIGKILL (kill -9: no destructor runs, no buffer is flushed, the broker
//! and RocksDB see what they would see of a killed process) the N-th time
//! it reaches the point NAME. The points:
//!
//! | name | where |
//! |---|---|
//! | `produced` | a batch's outputs and changelog records are produced in the open transaction, which is not committed |
//! | `committed` | the transaction is committed, the local RocksDB write of the batch has not happened |
//! | `restoring` | a changelog record was applied to a task's store during a restore (counted per record), before the restore commits |
//! | `rebalancing` | a rebalance has closed the partitions that moved away and rolled back the others, and not yet opened the new ones |

/// The crash points, as named in `ROLLCALL_CRASH_POINT`.
pub const POINTS: [&str; 4] = ["produced", "committed", "restoring", "rebalancing"];

#[cfg(feature = "crash-points")]
mod armed {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    /// Point name → (times reached so far, the time that aborts).
    fn armed() -> &'static HashMap<&'static str, (AtomicU64, u64)> {
        static ARMED: OnceLock<HashMap<&'static str, (AtomicU64, u64)>> = OnceLock::new();
        ARMED.get_or_init(|| {
            let spec = std::env::var("ROLLCALL_CRASH_POINT").unwrap_or_default();
            let (armed, problems) = super::parse(&spec);
            // A misspelt point would make a test pass without crashing.
            assert!(problems.is_empty(), "ROLLCALL_CRASH_POINT={spec}: {}", problems.join("; "));
            armed.into_iter().map(|(name, n)| (name, (AtomicU64::new(0), n))).collect()
        })
    }

    pub fn reached(name: &'static str) {
        if let Some((count, at)) = armed().get(name) {
            if count.fetch_add(1, Ordering::SeqCst) + 1 == *at {
                eprintln!("crash point {name} reached (time {at}): SIGKILL");
                // SAFETY: kill(2) on our own pid; SIGKILL cannot be caught, so it does not return.
                unsafe {
                    libc::kill(libc::getpid(), libc::SIGKILL);
                }
                // Not reached; should the signal be refused, end as abruptly.
                std::process::abort();
            }
        }
    }
}

/// Kills the process here if `ROLLCALL_CRASH_POINT` arms `name` for this time.
#[inline(always)]
pub fn reached(name: &'static str) {
    debug_assert!(POINTS.contains(&name), "unknown crash point {name}");
    #[cfg(feature = "crash-points")]
    armed::reached(name);
}

/// Whether this build has the crash points.
pub const COMPILED_IN: bool = cfg!(feature = "crash-points");

/// `NAME:N[,NAME:N...]` into (point, N ≥ 1) pairs, and what is wrong with the rest.
pub fn parse(spec: &str) -> (Vec<(&'static str, u64)>, Vec<String>) {
    let (mut armed, mut problems) = (Vec::new(), Vec::new());
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((name, n)) = item.split_once(':') else {
            problems.push(format!("`{item}`: expected NAME:N"));
            continue;
        };
        let Some(point) = POINTS.iter().find(|p| **p == name) else {
            problems.push(format!("`{name}` is not a crash point (the points: {})", POINTS.join(", ")));
            continue;
        };
        match n.parse::<u64>() {
            Ok(n) if n >= 1 => armed.push((*point, n)),
            _ => problems.push(format!("`{item}`: N must be a whole number from 1")),
        }
    }
    (armed, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_read_and_mistakes_named() {
        assert_eq!(parse("produced:3, restoring:1000").0, vec![("produced", 3), ("restoring", 1000)]);
        assert_eq!(parse("").0, vec![]);
        let (armed, problems) = parse("produce:1,committed:0,rebalancing,committed:2");
        assert_eq!(armed, vec![("committed", 2)]);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("not a crash point"), "{problems:?}");
        assert!(problems[1].contains("whole number"), "{problems:?}");
        assert!(problems[2].contains("NAME:N"), "{problems:?}");
    }
}
