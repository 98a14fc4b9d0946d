//! HTTPS on the endpoints rollcall serves (rustls), with a throwaway CA and
//! a certificate for 127.0.0.1 made here with `openssl`; curl, trusting that
//! CA alone, is the client.
//!
//! - The processor serves /metrics and /healthz over HTTPS
//!   (`ROLLCALL_HTTP__TLS_*`); a plain-HTTP request to that port gets no answer.
//! - The gateway, its `[http]` section in its config file, takes a request
//!   over HTTPS and its events land on the topic.
//! - `rollcall serve` with `--tls-cert-file` and `--tls-key-file` answers
//!   on an https:// address, behind its token as over HTTP.
//! - A certificate or key that cannot be used (missing, not PEM, a key
//!   that is not the certificate's, one without the other) stops
//!   `rollcall run`, `rollcall serve`, `rollcall sink postgres` and
//!   `rollcall gateway` at start, naming the setting and the file.
//! - `rollcall demo` on its own mock cluster ignores `ROLLCALL_KAFKA__*`
//!   (the cluster is plaintext) and says so.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rollcall_kafka::topics::create_topics;
use rollcall_kafka::wire::Topics;

use crate::support::harness::{Area, Need};
use crate::support::*;

/// A test CA, a server certificate for 127.0.0.1 it signed, and a key of
/// another certificate.
struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
    fn cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }
    fn key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
    fn other_key(&self) -> PathBuf {
        self.dir.path().join("other.key")
    }
    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("ROLLCALL_HTTP__TLS_CERT_FILE".into(), self.cert().display().to_string()),
            ("ROLLCALL_HTTP__TLS_KEY_FILE".into(), self.key().display().to_string()),
        ]
    }
}

fn openssl(dir: &Path, args: &[&str]) -> TestResult {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("openssl (scripts/setup.sh installs it): {e}"))?;
    ensure(out.status.success(), || format!("openssl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr)))
}

fn make_certs() -> Result<Certs, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let d = dir.path();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=rollcall test CA", "-keyout", "ca.key", "-out", "ca.pem"];
    ca.extend(ec);
    openssl(d, &ca)?;
    let mut csr = vec!["req", "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr"];
    csr.extend(ec);
    openssl(d, &csr)?;
    std::fs::write(d.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
        .map_err(|e| e.to_string())?;
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ],
    )?;
    openssl(d, &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "other.key"])?;
    Ok(Certs { dir })
}

/// `curl` with `args`: (exit status ok, stdout, stderr).
fn curl(args: &[&str]) -> Result<(bool, String, String), String> {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "10"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The first line a started command prints (its address); `what` names it
/// in the error when it ends first.
fn first_line(child: &mut Killed, what: &str) -> Result<String, String> {
    let mut out = child.0.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    let mut byte = [0u8; 1];
    while !line.ends_with('\n') {
        if out.read(&mut byte).map_err(|e| e.to_string())? == 0 {
            return Err(format!("{what} ended before listening: {line}"));
        }
        line.push(byte[0] as char);
    }
    Ok(line)
}

/// A plain-HTTP request to an HTTPS port gets no HTTP answer.
fn plain_http_is_refused(addr: &str) -> TestResult {
    let (ok, out, err) = curl(&[&format!("http://{addr}/healthz")])?;
    ensure(!ok, || format!("plain HTTP to the HTTPS port {addr} was answered: {out}"))?;
    eprintln!("  plain HTTP to {addr}: refused ({})", err.trim());
    match http::get(addr, "/healthz", &[]) {
        Ok(a) => Err(format!("a plain-HTTP request to {addr} was answered {}: {}", a.status, a.body)),
        Err(_) => Ok(()),
    }
}

/// `rollcall run` serves /metrics and /healthz over HTTPS; curl trusting
/// the test CA reads them; plain HTTP to the port gets no answer.
fn the_processor_serves_metrics_over_https(broker: &str) -> TestResult {
    let certs = make_certs()?;
    let prefix = unique("https-run");
    create_topics(broker, &Topics::with_prefix(&prefix), 1, 1).map_err(|e| format!("{e:#}"))?;
    let state = tempfile::tempdir().map_err(|e| e.to_string())?;
    let addr = format!("127.0.0.1:{}", free_port()?);
    let mut cmd = Command::new(bin());
    cmd.args(["run", "--brokers", broker, "--topic-prefix", &prefix, "--group", &prefix, "--metrics-addr", &addr])
        .arg("--state-dir")
        .arg(state.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    clean_env(&mut cmd);
    cmd.envs(certs.env());
    let mut child = Killed(cmd.spawn().map_err(|e| e.to_string())?);
    let ca = certs.ca().display().to_string();
    let url = format!("https://{addr}");
    let started = Instant::now();
    loop {
        let (ok, body, err) = curl(&["--cacert", &ca, &format!("{url}/healthz")])?;
        if ok && body == "ok\n" {
            break;
        }
        if let Ok(Some(st)) = child.0.try_wait() {
            return Err(format!("rollcall run ended: {st}"));
        }
        ensure(started.elapsed() < Duration::from_secs(60), || format!("no /healthz over HTTPS within 60 s: {err}"))?;
        std::thread::sleep(Duration::from_millis(200));
    }
    let (ok, metrics, err) = curl(&["--cacert", &ca, &format!("{url}/metrics")])?;
    ensure(ok && metrics.contains("# TYPE"), || format!("/metrics over HTTPS: {err}\n{metrics}"))?;
    eprintln!("  /metrics over HTTPS: {} lines", metrics.lines().count());
    // Without the CA the certificate is not trusted.
    let (ok, _, err) = curl(&[&format!("{url}/healthz")])?;
    ensure(!ok, || "curl trusted the test certificate without its CA".into())?;
    eprintln!("  without the CA: {}", err.lines().next().unwrap_or_default());
    plain_http_is_refused(&addr)
}

/// The gateway, with `[http]` in its config file, takes a request over
/// HTTPS and its events land on the topic.
fn the_gateway_takes_events_over_https(broker: &str) -> TestResult {
    const TOKEN: &str = "gateway-https-token-0123456789";
    let certs = make_certs()?;
    let prefix = unique("https-gw");
    let topics = Topics::with_prefix(&prefix);
    create_topics(broker, &topics, 3, 1).map_err(|e| format!("{e:#}"))?;
    let token = certs.dir.path().join("token");
    std::fs::write(&token, TOKEN).map_err(|e| e.to_string())?;
    let config = format!(
        "listen = \"127.0.0.1:0\"\n\n[http]\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n\n\
         [[source]]\nformat = \"native\"\nroute = \"/v1/events\"\ntoken_file = \"{}\"\n",
        certs.cert().display(),
        certs.key().display(),
        token.display()
    );
    let file = certs.dir.path().join("gateway.toml");
    std::fs::write(&file, config).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(bin());
    cmd.args(["gateway", "--brokers", broker, "--topic-prefix", &prefix, "--config"])
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    clean_env(&mut cmd);
    let mut child = Killed(cmd.spawn().map_err(|e| e.to_string())?);
    let line = first_line(&mut child, "the gateway")?;
    let addr = line.trim().strip_prefix("listening on ").ok_or_else(|| format!("unexpected first line `{line}`"))?.to_string();
    let ca = certs.ca().display().to_string();
    let started = Instant::now();
    loop {
        let (ok, body, err) = curl(&["--cacert", &ca, &format!("https://{addr}/readyz")])?;
        if ok && body.starts_with("ready") {
            break;
        }
        ensure(started.elapsed() < Duration::from_secs(60), || format!("the gateway was not ready within 60 s: {err} {body}"))?;
        std::thread::sleep(Duration::from_millis(200));
    }
    let fixture = repo().join("crates/ingest/tests/fixtures/native/events.json");
    let body = std::fs::read(&fixture).map_err(|e| e.to_string())?;
    let want = rollcall_ingest::native::json(&body).map_err(|r| format!("{r}"))?.events.len();
    let (ok, answer, err) = curl(&[
        "--cacert",
        &ca,
        "--fail-with-body",
        "-H",
        &format!("Authorization: Bearer {TOKEN}"),
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        &format!("@{}", fixture.display()),
        &format!("https://{addr}/v1/events"),
    ])?;
    ensure(ok, || format!("POST /v1/events over HTTPS: {err} {answer}"))?;
    let mut got = 0;
    rollcall_kafka::replay::read_topic(broker, &topics.activity, |_, _| {
        got += 1;
        Ok(())
    })
    .map_err(|e| format!("{e:#}"))?;
    eprintln!("  the gateway put {got} events on the topic from a POST over HTTPS ({want} posted)");
    ensure(got == want && want > 0, || format!("{got} events on the topic, {want} posted"))?;
    plain_http_is_refused(&addr)
}

/// `rollcall serve` with `--tls-cert-file` and `--tls-key-file` prints an
/// https:// address and answers there: /healthz, and a route behind the
/// token (refused without it, as over HTTP).
fn serve_answers_over_https(db: &pg::Database) -> TestResult {
    const TOKEN: &str = "serve-https-token-0123456789";
    let certs = make_certs()?;
    let url = db.fresh("https")?;
    let (cert, key) = (certs.cert().display().to_string(), certs.key().display().to_string());
    let mut cmd = Command::new(bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--database-url", &url, "--tls-cert-file", &cert, "--tls-key-file", &key])
        .env("ROLLCALL_SERVE_TOKENS", TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    clean_env(&mut cmd);
    let mut child = Killed(cmd.spawn().map_err(|e| e.to_string())?);
    let line = first_line(&mut child, "rollcall serve")?;
    let addr =
        line.trim().strip_prefix("listening on https://").ok_or_else(|| format!("unexpected first line `{line}`"))?.to_string();
    let ca = certs.ca().display().to_string();
    let (ok, body, err) = curl(&["--cacert", &ca, &format!("https://{addr}/healthz")])?;
    ensure(ok && body == "ok\n", || format!("/healthz over HTTPS: {err} {body}"))?;
    let page = format!("https://{addr}/v1/students/nobody/attendance");
    let (_, code, err) = curl(&["--cacert", &ca, "-o", "/dev/null", "-w", "%{http_code}", &page])?;
    ensure(code == "401", || format!("without the token over HTTPS: {code} {err}"))?;
    let auth = format!("Authorization: Bearer {TOKEN}");
    let (_, code, err) = curl(&["--cacert", &ca, "-o", "/dev/null", "-w", "%{http_code}", "-H", &auth, &page])?;
    ensure(code != "401" && code != "000", || format!("with the token over HTTPS: {code} {err}"))?;
    eprintln!("  rollcall serve over HTTPS at {addr}: /healthz ok, 401 without the token, {code} with it");
    plain_http_is_refused(&addr)
}

/// What a command said and how it ended, killed after a minute.
fn ran(args: &[&str], env: &[(String, String)]) -> Result<(bool, String, Duration), String> {
    let mut cmd = Command::new(bin());
    cmd.args(args).stdin(Stdio::null());
    clean_env(&mut cmd);
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let started = Instant::now();
    let out = cmd.output().map_err(|e| e.to_string())?;
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), said, started.elapsed()))
}

/// A certificate or key that cannot be used stops each command at start,
/// naming the setting and the file; nothing needs to be reachable.
fn a_bad_certificate_or_key_stops_start_up() {
    let certs = make_certs().expect("the test certificates");
    let d = certs.dir.path();
    let not_pem = d.join("not.pem");
    std::fs::write(&not_pem, "not a certificate\n").expect("writing");
    let (cert, key, other, not_pem) = (
        certs.cert().display().to_string(),
        certs.key().display().to_string(),
        certs.other_key().display().to_string(),
        not_pem.display().to_string(),
    );
    let cases: Vec<(&str, &str, String)> = vec![
        ("/nowhere/server.pem", key.as_str(), "tls_cert_file `/nowhere/server.pem`: cannot read it".into()),
        (cert.as_str(), "/nowhere/server.key", "tls_key_file `/nowhere/server.key`: cannot read it".into()),
        (not_pem.as_str(), key.as_str(), format!("tls_cert_file `{not_pem}`: not a PEM certificate file")),
        (cert.as_str(), not_pem.as_str(), format!("tls_key_file `{not_pem}`: not a PEM private key file")),
        (cert.as_str(), cert.as_str(), format!("tls_key_file `{cert}`: not a PEM private key file")),
        (cert.as_str(), other.as_str(), format!("tls_key_file `{other}`: the key does not match the certificate")),
        (cert.as_str(), "", "tls_key_file: tls_cert_file is".into()),
    ];
    let state = tempfile::tempdir().expect("a state dir");
    let state_dir = state.path().display().to_string();
    let gw_config = d.join("gateway.toml");
    std::fs::write(&gw_config, "listen = \"127.0.0.1:0\"\n\n[[source]]\nformat = \"native\"\ntoken_env = \"NOPE\"\n")
        .expect("writing");
    let gw_config = gw_config.display().to_string();
    // Nothing listens on port 1: a command that got as far as connecting
    // would say so instead.
    let commands: Vec<(&str, Vec<&str>)> = vec![
        ("run", vec!["run", "--brokers", "127.0.0.1:1", "--metrics-addr", "127.0.0.1:0", "--state-dir", &state_dir]),
        ("serve", vec!["serve", "--database-url", "postgres://nobody@127.0.0.1:1/none", "--listen", "127.0.0.1:0"]),
        (
            "sink postgres",
            vec![
                "sink",
                "postgres",
                "--brokers",
                "127.0.0.1:1",
                "--database-url",
                "postgres://nobody@127.0.0.1:1/none",
                "--metrics-addr",
                "127.0.0.1:0",
            ],
        ),
        ("gateway", vec!["gateway", "--brokers", "127.0.0.1:1", "--config", &gw_config]),
    ];
    for (name, args) in &commands {
        for (c, k, says) in &cases {
            let env = vec![
                ("ROLLCALL_HTTP__TLS_CERT_FILE".to_string(), c.to_string()),
                ("ROLLCALL_HTTP__TLS_KEY_FILE".to_string(), k.to_string()),
                ("ROLLCALL_SERVE_TOKENS".to_string(), "a-token-of-twenty-characters-or-more".to_string()),
                ("NOPE".to_string(), "a-token-of-twenty-characters-or-more".to_string()),
            ];
            let (ok, said, took) = ran(args, &env).expect("running rollcall");
            assert!(
                !ok && said.contains(says.as_str()),
                "rollcall {name} with cert `{c}`, key `{k}`: expected `{says}`:\n{said}"
            );
            assert!(took < Duration::from_secs(10), "rollcall {name} took {took:?} to refuse `{says}`");
        }
        eprintln!("  rollcall {name}: each bad certificate or key named at start");
    }
}

/// `rollcall demo` on its own mock cluster ignores `ROLLCALL_KAFKA__*` (its
/// cluster is plaintext) and says so; settings that would not even resolve
/// (SASL without a user) do not stop it.
fn the_demo_ignores_kafka_security_settings() {
    let env = vec![
        ("ROLLCALL_KAFKA__SECURITY_PROTOCOL".to_string(), "sasl_ssl".to_string()),
        ("ROLLCALL_KAFKA__SSL_CA_FILE".to_string(), "/nowhere/ca.pem".to_string()),
    ];
    let (ok, said, took) = ran(&["demo", "--students", "20", "--days", "1"], &env).expect("running rollcall demo");
    assert!(ok, "rollcall demo with ROLLCALL_KAFKA__* set failed:\n{said}");
    assert!(
        said.contains("ROLLCALL_KAFKA__SECURITY_PROTOCOL, ROLLCALL_KAFKA__SSL_CA_FILE ignored")
            && said.contains("mock cluster is always plaintext"),
        "no note that the settings were ignored:\n{said}"
    );
    eprintln!("  rollcall demo ran in {:.1} s with ROLLCALL_KAFKA__* set and ignored", took.as_secs_f64());
    let (ok, said, _) = ran(&["demo", "--students", "20", "--days", "1"], &[]).expect("running rollcall demo");
    assert!(ok && !said.contains("ignored"), "without the variables:\n{said}");
}

pub fn area() -> Area {
    let mut tests = plain_tests![a_bad_certificate_or_key_stops_start_up, the_demo_ignores_kafka_security_settings,];
    tests.extend(service_tests![[Need::Broker], |e| (e.broker());
        the_processor_serves_metrics_over_https,
        the_gateway_takes_events_over_https,
    ]);
    tests.extend(service_tests![[Need::Database], |e| (e.database());
        serve_answers_over_https,
    ]);
    Area::new("https", Duration::from_secs(600), tests)
}
