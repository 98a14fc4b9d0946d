//! rollcall-serve: `rollcall serve`, explain and the attendance pages over
//! HTTP, read from the tables `rollcall sink postgres` keeps.
//!
//! For an SIS, JSON: `GET /v1/students/{id}/attendance?from=&to=` and
//! `GET /v1/students/{id}/explain?date=[&section=]`. For people, pages: a
//! school's day (codes, absences, outreach raised), a student's month (a
//! calendar of codes, each day linking to its explanation), a
//! determination's explanation, and the reports (`/reports/{kind}?school=
//! &from=&to=[&format=csv]`, what `rollcall report` writes).
//!
//! Every route needs a bearer token (`Authorization: Bearer …`); the pages
//! take it once on `/login` and keep it in a cookie that is HttpOnly and
//! SameSite=Strict. An unknown student or school is a 404 with a message,
//! a bad date a 400.
//!
//! One file per concern: `auth` (tokens and the cookie), `db` (the shared
//! connection), `api` (JSON), `pages` (HTML), `reports`, `html` (the page
//! shell).

pub mod api;
pub mod auth;
pub mod db;
pub mod html;
pub mod pages;
pub mod reports;

use std::sync::Arc;

use axum::Router;

pub use auth::Tokens;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("setting {field}: {message}")]
    Config { field: &'static str, message: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// What the routes share.
pub struct AppState {
    pub db: db::Db,
    pub tokens: Tokens,
}

/// Every route of the service behind the token check, with `/healthz` and
/// the login.
pub fn router(state: Arc<AppState>) -> Router {
    let protected = api::routes().merge(pages::routes()).merge(reports::routes());
    let protected = protected.layer(axum::middleware::from_fn_with_state(state.clone(), auth::require));
    Router::new()
        .merge(auth::routes())
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .merge(protected)
        .fallback(|uri: axum::http::Uri| async move {
            let message = format!("no page at {}", uri.path());
            (axum::http::StatusCode::NOT_FOUND, axum::Json(serde_json::json!({ "error": message })))
        })
        .with_state(state)
}

/// Serves `router` on `listen` (over TLS when `tls` is given) until `stop`
/// completes; `on_listen` is told the address (port 0 picks a free one).
pub async fn serve(
    listen: &str,
    router: Router,
    tls: Option<rollcall_http::Tls>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
    on_listen: impl FnOnce(std::net::SocketAddr),
) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| ServeError::Io { what: format!("listening on {listen}"), source })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Io { what: "the bound address".into(), source })?;
    on_listen(addr);
    rollcall_http::tls::serve(listener, router, tls, stop)
        .await
        .map_err(|source| ServeError::Io { what: "serving".into(), source })
}
