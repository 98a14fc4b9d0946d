//! The handlers: a POST route per source, and the endpoint every rollcall
//! process has (/metrics, /healthz, /readyz). Each request goes through the
//! same steps: size, authentication, normalization of the whole body,
//! production of every event, the answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use rollcall_ingest::{Encoded, IdentityView, Rejected};
use serde_json::json;

use crate::config::{Credential, GatewayConfig, Source};
use crate::identities::Identities;
use crate::metrics::GatewayMetrics;
use crate::produce::Producer;
use crate::GatewayError;

pub struct AppState {
    pub sources: Vec<Arc<Source>>,
    pub identities: Arc<Identities>,
    pub producer: Producer,
    pub metrics: Arc<GatewayMetrics>,
}

impl AppState {
    pub fn new(cfg: &GatewayConfig) -> Result<Arc<AppState>, GatewayError> {
        let sources = cfg.sources(|v| std::env::var(v).ok())?.into_iter().map(Arc::new).collect();
        let identities = match &cfg.identities_file {
            None => IdentityView::new(),
            Some(f) => {
                let bytes = std::fs::read(f)
                    .map_err(|source| GatewayError::Io { what: format!("identities file {}", f.display()), source })?;
                IdentityView::from_csv(&bytes)
                    .map_err(|r| crate::config::ConfigError::File { file: f.display().to_string(), message: r.to_string() })?
            }
        };
        let topics = rollcall_kafka::wire::Topics::with_prefix(&cfg.topic_prefix);
        let producer =
            Producer::new(&cfg.brokers, topics.activity, topics.waiting, Duration::from_millis(cfg.produce_timeout_ms))?;
        let identities = Identities::new(identities);
        let metrics = Arc::new(GatewayMetrics::new());
        metrics.watch_identities(identities.clone());
        Ok(Arc::new(AppState { sources, identities, producer, metrics }))
    }
}

pub fn router(cfg: &GatewayConfig, state: Arc<AppState>) -> Router {
    let mut r = Router::new();
    for source in &state.sources {
        let (st, src) = (state.clone(), source.clone());
        r = r.route(
            &source.route,
            post(move |headers: HeaderMap, body: Result<Bytes, BytesRejection>| ingest(st, src, headers, body)),
        );
    }
    r.layer(DefaultBodyLimit::max(cfg.max_body_bytes)).merge(rollcall_http::routes(state.metrics.clone()))
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

fn refused(r: &Rejected) -> Response {
    let status = StatusCode::from_u16(r.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    answer(status, json!({ "errors": r.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>() }))
}

async fn ingest(state: Arc<AppState>, source: Arc<Source>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    let started = Instant::now();
    let response = handle(&state, &source, &headers, body).await;
    let m = &state.metrics;
    m.requests.with_label_values(&[&source.route, response.status().as_str()]).inc();
    m.latency.with_label_values(&[&source.route]).observe(started.elapsed().as_secs_f64());
    response
}

async fn handle(state: &AppState, source: &Source, headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    // When the request was taken; each record carries it to the microsecond.
    let received = chrono::Utc::now();
    let body = match body {
        Ok(b) => b,
        Err(e) => return answer(e.status(), json!({ "errors": [e.body_text()] })),
    };
    if let Err(denied) = crate::auth::check(&source.credential, headers, &body, chrono::Utc::now()) {
        return answer(StatusCode::UNAUTHORIZED, json!({ "errors": [denied.to_string()] }));
    }
    if let Credential::ZoomSecret(secret) = &source.credential {
        match rollcall_ingest::zoom::url_validation_response(&body, secret) {
            Ok(Some(v)) => return answer(StatusCode::OK, v),
            Ok(None) => {}
            Err(r) => return refused(&r),
        }
    }
    // Caliper's fast path writes its events straight to Avro; the other
    // formats are normalized, then encoded.
    let encoded = if source.csv {
        rollcall_ingest::native::csv(&body, &source.name).map(|o| Encoded::from_outcome(o, received))
    } else if source.format == rollcall_ingest::Format::Native {
        rollcall_ingest::native::json(&body).map(|o| Encoded::from_outcome(o, received))
    } else {
        rollcall_ingest::encode(source.format, &body, &state.identities.read(), Some(&source.name), received)
    };
    let request = match encoded {
        Ok(e) => e,
        Err(r) => return refused(&r),
    };
    // What names someone the view does not know yet is made durable on the
    // waiting topic in the same request: the platform is answered only once
    // every event is on one topic or the other, and the resolver releases
    // the waiting ones when their mapping arrives.
    if let Err(e) = state.producer.produce_all(&request, chrono::Utc::now()).await {
        state.metrics.set_ready(false);
        tracing::warn!(route = %source.route, error = %e, "events not acknowledged; answered 503");
        return answer(StatusCode::SERVICE_UNAVAILABLE, json!({ "errors": [e.to_string()] }));
    }
    state.metrics.set_ready(true);
    let format = source.format.name();
    // One label lookup per kind in the request, not one per event.
    let mut by_kind: Vec<(rollcall_model::ActivityKind, u64)> = Vec::new();
    for e in &request.events {
        match by_kind.iter_mut().find(|(k, _)| *k == e.kind) {
            Some((_, n)) => *n += 1,
            None => by_kind.push((e.kind, 1)),
        }
    }
    for (kind, n) in by_kind {
        state.metrics.events.with_label_values(&[format, &kind.to_string()]).inc_by(n);
    }
    let Encoded { events, waiting, ignored, .. } = request;
    let n_ignored: u64 = ignored.values().sum();
    if n_ignored > 0 {
        state.metrics.ignored.with_label_values(&[format]).inc_by(n_ignored);
    }
    if !waiting.is_empty() {
        state.metrics.events.with_label_values(&[format, "WAITING_FOR_IDENTITY"]).inc_by(waiting.len() as u64);
    }
    answer(StatusCode::OK, json!({ "accepted": events.len(), "waiting": waiting.len(), "ignored": ignored }))
}
