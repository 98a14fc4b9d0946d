//! A test that cannot run here says so where the suite's closing summary
//! counts it: the runner has no "skipped" outcome, so a skipped test returns
//! as passed, and this record is what tells the two apart.
//!
//! scripts/test.sh points ROLLCALL_SKIPS at a file; each skip appends a
//! line `TEST<tab>WHY` to it, and the closing summary subtracts those tests
//! from the passed count and names them. Run outside scripts/test.sh, a
//! skip is only printed.

use std::io::Write;

/// Records that `test` did not run, and why.
pub fn skip(test: &str, why: &str) {
    eprintln!("SKIPPED {test}: {why}");
    let Some(path) = std::env::var_os("ROLLCALL_SKIPS") else { return };
    let line = format!("{test}\t{}\n", why.replace(['\t', '\n'], " "));
    let written =
        std::fs::OpenOptions::new().create(true).append(true).open(&path).and_then(|mut f| f.write_all(line.as_bytes()));
    // A skip that cannot be recorded would pass unseen: fail instead.
    if let Err(e) = written {
        panic!("{test} was skipped ({why}) and the skip could not be recorded in {}: {e}", path.to_string_lossy());
    }
}
