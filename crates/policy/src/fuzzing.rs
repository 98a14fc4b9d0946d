//! The check of the policy file decoder on arbitrary bytes, shared by the
//! fuzz target under `fuzz/` and the corpus test in `tests/fuzz_corpus.rs`.

use crate::Policy;

/// [`Policy::from_toml`] must not panic on any text. A policy it accepts
/// must come back unchanged from its own TOML form, which must itself be
/// accepted.
/// Returns whether the input was a valid policy.
pub fn policy_toml(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let Ok(policy) = Policy::from_toml(text, "<fuzz>") else {
        return false;
    };
    let written = toml::to_string(&policy).unwrap_or_else(|e| panic!("an accepted policy does not serialize: {e}\n{policy:?}"));
    let back = Policy::from_toml(&written, "<fuzz, written back>")
        .unwrap_or_else(|e| panic!("an accepted policy, written back, is refused: {e}\n{written}"));
    assert_eq!(back, policy, "a policy changed on its way through TOML:\n{written}");
    true
}
