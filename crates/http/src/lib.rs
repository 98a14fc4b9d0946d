//! The HTTP endpoint of a long-running rollcall process (the processor, the
//! sinks, and the gateway and query service as they come): `/metrics` in
//! Prometheus' text format, `/healthz` (the process answers) and `/readyz`
//! (it is doing its work: partitions assigned, database reachable), on
//! axum, so that a process adds its own routes to the same server.
//!
//! The processor's loop is synchronous, so the server runs on a small tokio
//! runtime of its own thread and is stopped by dropping its handle. Binding
//! happens before `start` returns: an address in use is an error at start,
//! not a log line later.
//!
//! Every server can speak HTTPS instead (`tls`: a certificate chain and its
//! key, checked at start); plain HTTP is the default.

pub mod tls;

pub use tls::{HttpTlsConfig, Tls, TlsError};

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// What a process shows on its endpoint.
pub trait Observed: Send + Sync + 'static {
    /// The metrics, in Prometheus' text exposition format 0.0.4.
    fn render(&self) -> Vec<u8>;
    /// Ready, or why not (said on `/readyz` with a 503).
    fn readiness(&self) -> Result<(), String>;
}

const TEXT: &str = "text/plain; charset=utf-8";
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The routes every process has, for a process to merge its own into.
pub fn routes(observed: Arc<dyn Observed>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { text(StatusCode::OK, "ok\n".into()) }))
        .route("/readyz", get(readyz))
        .fallback(|| async { text(StatusCode::NOT_FOUND, "not found: try /metrics, /healthz or /readyz\n".into()) })
        .with_state(observed)
}

fn text(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, TEXT)], body).into_response()
}

async fn metrics(State(o): State<Arc<dyn Observed>>) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, PROMETHEUS)], Body::from(o.render())).into_response()
}

async fn readyz(State(o): State<Arc<dyn Observed>>) -> Response {
    match o.readiness() {
        Ok(()) => text(StatusCode::OK, "ready\n".into()),
        Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")),
    }
}

/// Equal without revealing, by timing, how much of a guess was right: for
/// comparing a presented token with the configured ones.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A running server; dropping it stops it.
pub struct HttpServer {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpServer {
    /// Serves `router` on `addr` (port 0 picks a free port) until dropped.
    pub fn start(addr: &str, router: Router) -> std::io::Result<HttpServer> {
        HttpServer::start_with(addr, router, None)
    }

    /// As [`HttpServer::start`], over TLS when `tls` is given.
    pub fn start_with(addr: &str, router: Router, tls: Option<Tls>) -> std::io::Result<HttpServer> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let listener = {
            let _g = rt.enter();
            tokio::net::TcpListener::from_std(std_listener)?
        };
        let thread = std::thread::Builder::new().name("http".into()).spawn(move || {
            rt.block_on(async move {
                let served = tls::serve(listener, router, tls, async {
                    let _ = rx.await;
                });
                if let Err(e) = served.await {
                    tracing::warn!(error = %e, "the HTTP endpoint stopped");
                }
            })
        })?;
        Ok(HttpServer { addr, shutdown: Some(tx), thread: Some(thread) })
    }

    /// Serves the common routes of `observed`.
    pub fn observe(addr: &str, observed: Arc<dyn Observed>) -> std::io::Result<HttpServer> {
        HttpServer::start(addr, routes(observed))
    }

    /// Serves the common routes of `observed`, over TLS when `tls` is given.
    pub fn observe_with(addr: &str, observed: Arc<dyn Observed>, tls: Option<Tls>) -> std::io::Result<HttpServer> {
        HttpServer::start_with(addr, routes(observed), tls)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::Mutex;

    use super::*;

    struct Fake(Mutex<Result<(), String>>);

    impl Observed for Fake {
        fn render(&self) -> Vec<u8> {
            b"# TYPE up gauge\nup 1\n".to_vec()
        }
        fn readiness(&self) -> Result<(), String> {
            self.0.lock().map(|g| g.clone()).unwrap_or_else(|_| Err("poisoned".into()))
        }
    }

    fn request(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        write!(c, "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        (status, head.to_ascii_lowercase(), body.to_string())
    }

    #[test]
    fn serves_metrics_health_and_readiness_and_says_what_is_not_there() {
        let fake = Arc::new(Fake(Mutex::new(Err("waiting for the partition assignment".into()))));
        let server = HttpServer::observe("127.0.0.1:0", fake.clone()).unwrap();
        let a = server.local_addr();
        let (s, head, body) = request(a, "GET", "/metrics");
        assert_eq!((s, body.as_str()), (200, "# TYPE up gauge\nup 1\n"));
        assert!(head.contains("content-type: text/plain; version=0.0.4"), "{head}");
        assert_eq!(request(a, "GET", "/healthz").0, 200);
        let (s, _, body) = request(a, "GET", "/readyz");
        assert_eq!((s, body.as_str()), (503, "not ready: waiting for the partition assignment\n"));
        *fake.0.lock().unwrap() = Ok(());
        assert_eq!(request(a, "GET", "/readyz").0, 200);
        let (s, _, body) = request(a, "GET", "/nothing");
        assert!(s == 404 && body.contains("/metrics"), "{s} {body}");
        assert_eq!(request(a, "POST", "/metrics").0, 405);
        let (s, _, body) = request(a, "HEAD", "/metrics");
        assert_eq!((s, body.as_str()), (200, ""));
    }

    #[test]
    fn an_address_in_use_is_an_error_at_start_and_a_dropped_server_lets_go() {
        let fake = Arc::new(Fake(Mutex::new(Ok(()))));
        let first = HttpServer::observe("127.0.0.1:0", fake.clone()).unwrap();
        let addr = first.local_addr().to_string();
        assert!(HttpServer::observe(&addr, fake.clone()).is_err());
        drop(first);
        let again = HttpServer::observe(&addr, fake).expect("the port is free once the server is dropped");
        assert_eq!(again.local_addr().to_string(), addr);
    }
}
