//! Student ids in log lines. By default a log field shows a keyed hash of
//! the id, `st:1a2b3c4d`: lines about one student can be correlated, and the
//! id cannot be read from the log or found by hashing a roster without the
//! key. The key is random per process, or set (ROLLCALL_LOG_HASH_KEY) to
//! correlate across restarts and instances. Raw ids only when asked for
//! explicitly (`rollcall --log-student-ids`).

use std::fmt;
use std::sync::OnceLock;

use xxhash_rust::xxh3::{xxh3_64_with_secret, xxh3_64_with_seed};

enum Mode {
    Raw,
    /// An XXH3 secret derived from the key.
    Hashed(Vec<u8>),
}

static MODE: OnceLock<Mode> = OnceLock::new();

fn secret_of(key: &[u8]) -> Vec<u8> {
    // 24 × 8 = 192 bytes, above XXH3's minimum secret size (136).
    (0..24u64).flat_map(|i| xxh3_64_with_seed(key, 0x5eed_0000 + i).to_le_bytes()).collect()
}

fn random_key() -> Vec<u8> {
    use std::hash::{BuildHasher, Hasher};
    let mut key = Vec::new();
    for i in 0..4u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u32(std::process::id());
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
        key.extend_from_slice(&h.finish().to_le_bytes());
    }
    key
}

/// Sets how student ids are logged; call once, before anything logs.
/// Returns false if it was already set (the first setting stays).
pub fn configure(raw_ids: bool, key: Option<&str>) -> bool {
    let mode = if raw_ids {
        Mode::Raw
    } else {
        Mode::Hashed(secret_of(
            key.filter(|k| !k.is_empty()).map(|k| k.as_bytes().to_vec()).unwrap_or_else(random_key).as_slice(),
        ))
    };
    MODE.set(mode).is_ok()
}

fn mode() -> &'static Mode {
    MODE.get_or_init(|| Mode::Hashed(secret_of(&random_key())))
}

/// A student id as a log field: `%redact::student(id)`.
pub struct Student<'a>(&'a [u8]);

impl fmt::Display for Student<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match mode() {
            Mode::Raw => f.write_str(&String::from_utf8_lossy(self.0)),
            Mode::Hashed(secret) => write!(f, "st:{:08x}", (xxh3_64_with_secret(self.0, secret) >> 32) as u32),
        }
    }
}

pub fn student(id: &str) -> Student<'_> {
    Student(id.as_bytes())
}

/// The key of an input record (a student id), or `-` when there is none.
pub fn student_key(key: Option<&[u8]>) -> String {
    match key {
        Some(k) => Student(k).to_string(),
        None => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_by_default_stable_and_keyed() {
        let a = student("s-000123").to_string();
        assert!(a.starts_with("st:") && a.len() == 11 && !a.contains("000123"), "{a}");
        assert_eq!(a, student("s-000123").to_string());
        assert_ne!(a, student("s-000124").to_string());
        assert_eq!(student_key(Some(b"s-000123")), a);
        assert_eq!(student_key(None), "-");
        let (k1, k2) = (secret_of(b"one"), secret_of(b"two"));
        assert_ne!(xxh3_64_with_secret(b"s-1", &k1), xxh3_64_with_secret(b"s-1", &k2));
    }
}
