//! HTTPS for every endpoint rollcall serves: a certificate chain and its
//! private key, both PEM files, read and checked at start (rustls, with the
//! ring provider), and a listener that completes each TLS handshake off the
//! accept loop, so that a slow or plain-HTTP client holds up nobody else.
//!
//! The settings are the same wherever they appear: `tls_cert_file` and
//! `tls_key_file` (an `[http]` section of a config file; the environment
//! variables `ROLLCALL_HTTP__TLS_CERT_FILE` and `ROLLCALL_HTTP__TLS_KEY_FILE`;
//! the flags `--tls-cert-file` and `--tls-key-file`). Both empty: plain HTTP.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// The environment variable of the certificate chain file.
pub const CERT_VAR: &str = "ROLLCALL_HTTP__TLS_CERT_FILE";
/// The environment variable of the private key file.
pub const KEY_VAR: &str = "ROLLCALL_HTTP__TLS_KEY_FILE";
/// The keys of an `[http]` section.
pub const KEYS: &[&str] = &["tls_cert_file", "tls_key_file"];

/// How long a client has to complete the TLS handshake.
pub const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

/// Why HTTPS could not be set up; names the setting and the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{setting} `{file}`: {message}")]
    File { setting: &'static str, file: String, message: String },
    #[error("{setting}: {message}")]
    Setting { setting: &'static str, message: String },
}

/// The `[http]` settings: where the certificate chain and its key are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpTlsConfig {
    /// PEM file: the server's certificate first, then the intermediates
    /// (empty, with `tls_key_file` empty: plain HTTP).
    pub tls_cert_file: String,
    /// PEM file: the private key of the certificate (PKCS#8, PKCS#1 or SEC1; unencrypted).
    pub tls_key_file: String,
}

/// What each key of `[http]` is for, for example files.
pub fn key_doc(key: &str) -> &'static str {
    match key {
        "tls_cert_file" => "HTTPS: the server's PEM certificate chain (its certificate first, then the intermediates);\n# with tls_key_file. Both empty: plain HTTP.",
        "tls_key_file" => "HTTPS: the PEM private key of tls_cert_file (unencrypted).",
        _ => "",
    }
}

impl HttpTlsConfig {
    /// Overrides each setting whose environment variable is set.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) {
        if let Some(c) = get(CERT_VAR) {
            self.tls_cert_file = c;
        }
        if let Some(k) = get(KEY_VAR) {
            self.tls_key_file = k;
        }
    }

    /// Whether HTTPS is asked for.
    pub fn enabled(&self) -> bool {
        !self.tls_cert_file.is_empty() || !self.tls_key_file.is_empty()
    }

    /// Reads and checks the files: `None` for plain HTTP.
    pub fn load(&self) -> Result<Option<Tls>, TlsError> {
        match (self.tls_cert_file.is_empty(), self.tls_key_file.is_empty()) {
            (true, true) => Ok(None),
            (false, true) => Err(TlsError::Setting {
                setting: "tls_key_file",
                message: format!("tls_cert_file is `{}` but no key file is given", self.tls_cert_file),
            }),
            (true, false) => Err(TlsError::Setting {
                setting: "tls_cert_file",
                message: format!("tls_key_file is `{}` but no certificate file is given", self.tls_key_file),
            }),
            (false, false) => Tls::from_files(Path::new(&self.tls_cert_file), Path::new(&self.tls_key_file)).map(Some),
        }
    }

    /// `http` or `https`, for the address a process prints.
    pub fn scheme(&self) -> &'static str {
        if self.enabled() {
            "https"
        } else {
            "http"
        }
    }
}

/// A checked server configuration: what a listener needs to speak TLS.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

impl Tls {
    /// Reads the chain and the key (PEM) and checks that the key is the
    /// certificate's.
    pub fn from_files(cert_file: &Path, key_file: &Path) -> Result<Tls, TlsError> {
        let cert_name = cert_file.display().to_string();
        let key_name = key_file.display().to_string();
        let cert_err = |message: String| TlsError::File { setting: "tls_cert_file", file: cert_name.clone(), message };
        let key_err = |message: String| TlsError::File { setting: "tls_key_file", file: key_name.clone(), message };
        let cert_bytes = std::fs::read(cert_file).map_err(|e| cert_err(format!("cannot read it: {e}")))?;
        let chain = CertificateDer::pem_slice_iter(&cert_bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| cert_err(format!("not a PEM file: {e}")))?;
        if chain.is_empty() {
            return Err(cert_err("not a PEM certificate file (no block starting `-----BEGIN CERTIFICATE`)".into()));
        }
        let key_bytes = std::fs::read(key_file).map_err(|e| key_err(format!("cannot read it: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| match e {
            rustls_pki_types::pem::Error::NoItemsFound => key_err(
                "not a PEM private key file (no block starting `-----BEGIN PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`)"
                    .into(),
            ),
            e => key_err(format!("not a PEM private key: {e}")),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setting { setting: "tls_cert_file", message: e.to_string() })?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| match e {
                rustls::Error::InconsistentKeys(_) => {
                    key_err(format!("the key does not match the certificate in tls_cert_file `{cert_name}`"))
                }
                e => key_err(format!("cannot be used with tls_cert_file `{cert_name}`: {e}")),
            })?;
        let mut config = config;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls { acceptor: TlsAcceptor::from(Arc::new(config)) })
    }
}

/// A TCP listener whose connections are TLS: handshakes run as tasks of
/// their own; a failed one is logged at debug level and dropped.
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: JoinSet<Option<(TlsStream<TcpStream>, std::net::SocketAddr)>>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, tls: Tls) -> TlsListener {
        TlsListener { tcp, acceptor: tls.acceptor, handshakes: JoinSet::new() }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let acceptor = self.acceptor.clone();
                        self.handshakes.spawn(async move {
                            match tokio::time::timeout(HANDSHAKE_LIMIT, acceptor.accept(stream)).await {
                                Ok(Ok(s)) => Some((s, peer)),
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                    None
                                }
                                Err(_) => {
                                    tracing::debug!(%peer, "TLS handshake timed out");
                                    None
                                }
                            }
                        });
                    }
                    // As axum's own listener does: out of file descriptors
                    // and the like pass; wait a moment.
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(done) = self.handshakes.join_next(), if !self.handshakes.is_empty() => {
                    if let Ok(Some(conn)) = done {
                        return conn;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// Serves `router` on `listener`, over TLS if `tls` is given, until `stop`
/// completes; then lets the requests under way finish.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<Tls>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match tls {
        None => axum::serve(listener, router).with_graceful_shutdown(stop).await,
        Some(tls) => axum::serve(TlsListener::new(listener, tls), router).with_graceful_shutdown(stop).await,
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    fn config(cert: &str, key: &str) -> HttpTlsConfig {
        HttpTlsConfig { tls_cert_file: cert.into(), tls_key_file: key.into() }
    }

    fn error(c: &HttpTlsConfig) -> String {
        c.load().expect_err("refused").to_string()
    }

    #[test]
    fn both_empty_is_plain_http_and_one_without_the_other_is_named() {
        assert!(config("", "").load().expect("plain").is_none());
        assert_eq!(config("", "").scheme(), "http");
        assert!(error(&config("a.pem", "")).starts_with("tls_key_file: tls_cert_file is `a.pem`"));
        assert!(error(&config("", "a.key")).starts_with("tls_cert_file: tls_key_file is `a.key`"));
        let mut c = HttpTlsConfig::default();
        c.apply_env(|k| (k == CERT_VAR).then(|| "from-env.pem".to_string()));
        assert_eq!((c.tls_cert_file.as_str(), c.scheme()), ("from-env.pem", "https"));
    }

    #[test]
    fn missing_and_not_pem_files_are_named_with_their_setting() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let junk = junk.display().to_string();
        let e = error(&config("/nowhere/c.pem", "/nowhere/k.pem"));
        assert!(e.starts_with("tls_cert_file `/nowhere/c.pem`: cannot read it"), "{e}");
        let e = error(&config(&junk, "/nowhere/k.pem"));
        assert!(e.starts_with(&format!("tls_cert_file `{junk}`: not a PEM certificate file")), "{e}");
    }

    /// With openssl (scripts/setup.sh installs it): a certificate and its
    /// key load; a key of another certificate is refused by name.
    #[test]
    fn a_key_that_is_not_the_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let st = Command::new("openssl").args(args).current_dir(dir.path()).output().expect("openssl");
            assert!(st.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&st.stderr));
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "k.pem",
            "-out",
            "c.pem",
        ]);
        run(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "other.pem"]);
        let p = |f: &str| dir.path().join(f).display().to_string();
        assert!(config(&p("c.pem"), &p("k.pem")).load().expect("a matching pair").is_some());
        let e = error(&config(&p("c.pem"), &p("other.pem")));
        assert!(e.contains("the key does not match the certificate"), "{e}");
        assert!(e.starts_with(&format!("tls_key_file `{}`", p("other.pem"))), "{e}");
        let e = error(&config(&p("c.pem"), &p("c.pem")));
        assert!(e.contains("not a PEM private key file"), "{e}");
    }

    /// A TLS server answers a TLS client, and graceful shutdown still ends it.
    #[test]
    fn serves_over_tls_and_stops_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let st = Command::new("openssl").args(args).current_dir(dir.path()).output().expect("openssl");
            assert!(st.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&st.stderr));
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        run(&[&["req", "-x509", "-days", "1", "-subj", "/CN=test CA", "-keyout", "ca.key", "-out", "ca.pem"][..], &ec].concat());
        run(&[&["req", "-subj", "/CN=127.0.0.1", "-keyout", "k.pem", "-out", "c.csr"][..], &ec].concat());
        std::fs::write(dir.path().join("ext"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "c.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "ext",
            "-out",
            "c.pem",
        ]);
        let tls = Tls::from_files(&dir.path().join("c.pem"), &dir.path().join("k.pem")).unwrap();
        let router = axum::Router::new().route("/", axum::routing::get(|| async { "hello\n" }));
        let server = crate::HttpServer::start_with("127.0.0.1:0", router, Some(tls)).unwrap();
        let addr = server.local_addr();
        let mut roots = rustls::RootCertStore::empty();
        let ca = std::fs::read(dir.path().join("ca.pem")).unwrap();
        for c in CertificateDer::pem_slice_iter(&ca) {
            roots.add(c.unwrap()).unwrap();
        }
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(client), name).unwrap();
        let mut sock = std::net::TcpStream::connect(addr).unwrap();
        let mut stream = rustls::Stream::new(&mut conn, &mut sock);
        use std::io::{Read, Write};
        stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 200") && text.ends_with("hello\n"), "{text}");
        let started = std::time::Instant::now();
        drop(server);
        assert!(started.elapsed() < Duration::from_secs(5), "stopping took {:?}", started.elapsed());
    }
}
