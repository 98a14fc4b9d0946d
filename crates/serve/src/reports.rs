//! The reports (`rollcall_report`) over HTTP: `GET /reports/{kind}?school=
//! &from=&to=[&format=csv]`, the same page or CSV that `rollcall report`
//! writes, and an index of the kinds for a school.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rollcall_report::{Error, Kind, Params};
use serde::Deserialize;

use crate::api::{date, Problem};
use crate::AppState;

#[derive(Deserialize)]
struct ReportQuery {
    school: Option<String>,
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
}

impl From<Error> for Problem {
    fn from(e: Error) -> Problem {
        let status = match e {
            Error::UnknownKind(_) | Error::UnknownSchool(_) => StatusCode::NOT_FOUND,
            Error::BadRange { .. } => StatusCode::BAD_REQUEST,
            Error::Database { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Problem(status, e.to_string())
    }
}

async fn report(
    State(state): State<Arc<AppState>>,
    Path(kind): Path<String>,
    Query(q): Query<ReportQuery>,
) -> Result<Response, Problem> {
    let kind: Kind = kind.parse()?;
    let school = q.school.filter(|s| !s.is_empty()).ok_or_else(|| Problem(StatusCode::BAD_REQUEST, "school: missing".into()))?;
    let params = Params::new(&school, date("from", q.from.as_deref())?, date("to", q.to.as_deref())?)?;
    let client = state.db.client().await?;
    let data = rollcall_report::query::fetch(&client, kind, &params, |line| tracing::debug!(progress = line, "report")).await?;
    let r = rollcall_report::build(kind, &params, &data);
    Ok(match q.format.as_deref() {
        Some("csv") => ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], rollcall_report::csv::report(&r)).into_response(),
        None | Some("html") => Html(rollcall_report::html::report(&r)).into_response(),
        Some(other) => return Err(Problem(StatusCode::BAD_REQUEST, format!("format: `{other}` is not csv or html"))),
    })
}

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/reports/{kind}", get(report))
}
