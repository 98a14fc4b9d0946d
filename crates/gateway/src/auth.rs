//! Who may send: a bearer token per source, compared in constant time, or
//! Zoom's signature over the raw body (checked by `rollcall-ingest`).

use axum::http::HeaderMap;
use rollcall_ingest::IngestError;

use crate::config::Credential;

pub use rollcall_http::constant_time_eq;

/// Why a request is not let in (answered 401).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    NoToken,
    WrongToken,
    Signature(String),
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Denied::NoToken => f.write_str("authorization: expected `Bearer <token>`"),
            Denied::WrongToken => f.write_str("authorization: the token is not this source's"),
            Denied::Signature(s) => f.write_str(s),
        }
    }
}

pub fn check(
    credential: &Credential,
    headers: &HeaderMap,
    body: &[u8],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), Denied> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    match credential {
        Credential::Bearer(token) => {
            let given = header("authorization");
            let given = given.strip_prefix("Bearer ").ok_or(Denied::NoToken)?;
            if constant_time_eq(given.trim().as_bytes(), token) {
                Ok(())
            } else {
                Err(Denied::WrongToken)
            }
        }
        Credential::ZoomSecret(secret) => {
            let (ts, sig) = (header("x-zm-request-timestamp"), header("x-zm-signature"));
            rollcall_ingest::zoom::verify_signature(secret, &ts, &sig, body, now)
                .map_err(|e: IngestError| Denied::Signature(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_signatures() {
        let now = chrono::Utc::now();
        let bearer = Credential::Bearer(b"0123456789abcdef".to_vec());
        let mut h = HeaderMap::new();
        assert_eq!(check(&bearer, &h, b"", now), Err(Denied::NoToken));
        h.insert("authorization", "Bearer 0123456789abcdeX".parse().unwrap());
        assert_eq!(check(&bearer, &h, b"", now), Err(Denied::WrongToken));
        h.insert("authorization", "Bearer 0123456789abcdef".parse().unwrap());
        assert_eq!(check(&bearer, &h, b"", now), Ok(()));
        let zoom = Credential::ZoomSecret(b"zoom-secret-token-1234".to_vec());
        let ts = now.timestamp().to_string();
        let mut h = HeaderMap::new();
        h.insert("x-zm-request-timestamp", ts.parse().unwrap());
        h.insert("x-zm-signature", rollcall_ingest::zoom::signature(b"zoom-secret-token-1234", &ts, b"{}").parse().unwrap());
        assert_eq!(check(&zoom, &h, b"{}", now), Ok(()));
        assert!(matches!(check(&zoom, &h, b"{ }", now), Err(Denied::Signature(_))), "another body");
        assert!(!constant_time_eq(b"abc", b"abcd") && constant_time_eq(b"", b""));
    }
}
