//! Who may read: a bearer token, compared in constant time with each
//! configured one. The pages take the token once on `/login` and keep it
//! in a cookie (HttpOnly, so no script reads it; SameSite=Strict, so no
//! other site's page sends it).

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Form, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use crate::{html, AppState, ServeError};

/// The cookie the pages keep the token in.
pub const COOKIE: &str = "rollcall_token";

/// The accepted tokens. Debug shows how many, never which.
#[derive(Clone)]
pub struct Tokens(Vec<String>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured)", self.0.len())
    }
}

impl Tokens {
    /// Tokens from a file (one a line; blank lines and `#` comments
    /// skipped) and from a variable's value (comma-separated). At least
    /// one, each at least 16 characters: a short token is guessed.
    pub fn load(file: Option<&Path>, env_value: Option<&str>) -> Result<Tokens, ServeError> {
        let mut tokens: Vec<String> = Vec::new();
        if let Some(f) = file {
            let text = std::fs::read_to_string(f)
                .map_err(|source| ServeError::Io { what: format!("reading the tokens file {}", f.display()), source })?;
            tokens.extend(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from));
        }
        if let Some(v) = env_value {
            tokens.extend(v.split(',').map(str::trim).filter(|t| !t.is_empty()).map(String::from));
        }
        Tokens::new(tokens)
    }

    pub fn new(tokens: Vec<String>) -> Result<Tokens, ServeError> {
        if tokens.is_empty() {
            return Err(ServeError::Config {
                field: "tokens",
                message: "no token configured: give --tokens-file FILE (one a line) or ROLLCALL_SERVE_TOKENS".into(),
            });
        }
        if let Some(i) = tokens.iter().position(|t| t.len() < 16) {
            return Err(ServeError::Config {
                field: "tokens",
                message: format!("token number {} is shorter than 16 characters", i + 1),
            });
        }
        Ok(Tokens(tokens))
    }

    pub fn accepts(&self, given: &str) -> bool {
        // Every token is compared, so the time does not tell which matched.
        self.0.iter().fold(false, |ok, t| rollcall_http::constant_time_eq(given.as_bytes(), t.as_bytes()) | ok)
    }
}

/// The token a request presents: its bearer token, else its cookie.
fn presented(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        return v.strip_prefix("Bearer ").map(|t| t.trim().to_string());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// Lets a request through with a good token. Without one, an API route
/// answers 401 in JSON and a page answers 401 with the login form.
pub async fn require(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let ok = presented(req.headers()).is_some_and(|t| state.tokens.accepts(&t));
    if ok {
        return next.run(req).await;
    }
    let path = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
    if path.starts_with("/v1/") {
        let body = serde_json::json!({"error": "authorization: expected `Bearer <token>` with a configured token"});
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], axum::Json(body)).into_response();
    }
    (StatusCode::UNAUTHORIZED, Html(login_page(&path, None))).into_response()
}

fn login_page(next: &str, problem: Option<&str>) -> String {
    let problem = problem.map(|p| format!("<p class=\"problem\">{}</p>", html::escape(p))).unwrap_or_default();
    html::page(
        "Sign in",
        &format!(
            "<h1>Sign in</h1>{problem}<form method=\"post\" action=\"/login\">\
             <label>Access token <input type=\"password\" name=\"token\" autocomplete=\"current-password\" required></label>\
             <input type=\"hidden\" name=\"next\" value=\"{}\"><button type=\"submit\">Sign in</button></form>",
            html::escape(next)
        ),
    )
}

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    next: Option<String>,
}

/// Only a path of this site: a `next` that names another site would send
/// the person there after signing in.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/",
    }
}

async fn login_form(Query(q): Query<LoginQuery>) -> Html<String> {
    Html(login_page(safe_next(q.next.as_deref()), None))
}

async fn login(State(state): State<Arc<AppState>>, Form(f): Form<LoginForm>) -> Response {
    let next = safe_next(f.next.as_deref());
    if !state.tokens.accepts(f.token.trim()) {
        return (StatusCode::UNAUTHORIZED, Html(login_page(next, Some("That token is not accepted here.")))).into_response();
    }
    let cookie = format!("{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/", f.token.trim());
    (StatusCode::SEE_OTHER, [(header::SET_COOKIE, cookie), (header::LOCATION, next.to_string())]).into_response()
}

async fn logout() -> Response {
    let cookie = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    (StatusCode::SEE_OTHER, [(header::SET_COOKIE, cookie), (header::LOCATION, "/login".to_string())]).into_response()
}

/// `/login` and `/logout`: the only pages without a token.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/login", get(login_form).post(login)).route("/logout", get(logout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_and_never_shown() {
        let t = Tokens::new(vec!["0123456789abcdef".into(), "fedcba9876543210".into()]).unwrap();
        assert!(t.accepts("fedcba9876543210"));
        assert!(!t.accepts("fedcba987654321"));
        assert!(!format!("{t:?}").contains("0123"));
        assert!(Tokens::new(vec![]).unwrap_err().to_string().contains("ROLLCALL_SERVE_TOKENS"));
        assert!(Tokens::new(vec!["short".into()]).unwrap_err().to_string().contains("shorter than 16"));
        let loaded = Tokens::load(None, Some(" 0123456789abcdef , ")).unwrap();
        assert!(loaded.accepts("0123456789abcdef"));
    }

    #[test]
    fn the_token_comes_from_the_header_or_the_cookie() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=b; rollcall_token=xyz; c=d".parse().unwrap());
        assert_eq!(presented(&h).as_deref(), Some("xyz"));
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(presented(&h).as_deref(), Some("abc"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(presented(&h), None);
    }

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/students/s1/months/2020-10")), "/students/s1/months/2020-10");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
