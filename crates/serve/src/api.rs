//! The JSON routes an SIS reads: a student's attendance over dates and the
//! explanation of a date.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::NaiveDate;
use rollcall_query::QueryError;
use serde::Deserialize;

use crate::AppState;

/// An answer that is not the data: its status and what went wrong.
#[derive(Debug)]
pub struct Problem(pub StatusCode, pub String);

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({"error": self.1}))).into_response()
    }
}

impl From<QueryError> for Problem {
    fn from(e: QueryError) -> Problem {
        if e.is_not_found() {
            Problem(StatusCode::NOT_FOUND, e.to_string())
        } else {
            tracing::warn!(error = %e, "a query failed");
            Problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    }
}

impl From<tokio_postgres::Error> for Problem {
    fn from(e: tokio_postgres::Error) -> Problem {
        tracing::warn!(error = %e, "the database is not reachable");
        Problem(StatusCode::SERVICE_UNAVAILABLE, format!("the database is not reachable: {e}"))
    }
}

/// A date parameter, or a 400 naming it.
pub fn date(name: &str, value: Option<&str>) -> Result<NaiveDate, Problem> {
    let v = value.ok_or_else(|| Problem(StatusCode::BAD_REQUEST, format!("{name}: missing; give a date, YYYY-MM-DD")))?;
    v.parse().map_err(|_| Problem(StatusCode::BAD_REQUEST, format!("{name}: `{v}` is not a date; give YYYY-MM-DD")))
}

#[derive(Deserialize)]
struct Range {
    from: Option<String>,
    to: Option<String>,
}

async fn attendance(
    State(state): State<Arc<AppState>>,
    Path(student): Path<String>,
    Query(q): Query<Range>,
) -> Result<Response, Problem> {
    let (from, to) = (date("from", q.from.as_deref())?, date("to", q.to.as_deref())?);
    if from > to {
        return Err(Problem(StatusCode::BAD_REQUEST, format!("from {from} is after to {to}")));
    }
    if (to - from).num_days() > 400 {
        return Err(Problem(StatusCode::BAD_REQUEST, "from..to spans more than 400 days; ask for a school year at most".into()));
    }
    let client = state.db.client().await?;
    let days = rollcall_query::attendance(&client, &student, from, to).await?;
    Ok(Json(serde_json::json!({"student_id": student, "from": from, "to": to, "determinations": days})).into_response())
}

#[derive(Deserialize)]
pub struct ExplainQuery {
    pub date: Option<String>,
    pub section: Option<String>,
}

async fn explain(
    State(state): State<Arc<AppState>>,
    Path(student): Path<String>,
    Query(q): Query<ExplainQuery>,
) -> Result<Response, Problem> {
    let d = date("date", q.date.as_deref())?;
    let client = state.db.client().await?;
    let e = rollcall_query::explain(&client, &student, d, q.section.as_deref().filter(|s| !s.is_empty())).await?;
    Ok(Json(e).into_response())
}

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/v1/students/{id}/attendance", get(attendance)).route("/v1/students/{id}/explain", get(explain))
}
