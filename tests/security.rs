//! Kafka over TLS with SASL/SCRAM-SHA-512: a broker with a SASL_SSL listener
//! beside its plaintext one (`ROLLCALL_KAFKA_SECURE=1 scripts/kafka.sh`,
//! started by the runner in a run dir of its own and stopped at the end).
//!
//! - A simulated district goes through the SASL_SSL listener alone (topics,
//!   records, `rollcall run`), and the processor decides it exactly as it
//!   does over plaintext.
//! - A wrong password and a CA that did not sign the broker's certificate
//!   stop `rollcall run` within seconds, with one message that names what
//!   failed, not a stream of retries; so do `rollcall gateway` and
//!   `rollcall sink postgres`, which check the brokers at start the same way.
//! - The password is never printed: not on stdout or stderr (at the default
//!   log level and at debug), not in `--help`, the example config or
//!   /metrics, not in the errors of a broken connection.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rollcall_kafka::replay::read_outputs;
use rollcall_kafka::topics::create_topics;
use rollcall_kafka::wire::Topics;

use crate::support::harness::{Area, Need};
use crate::support::secure::SecureBroker;
use crate::support::*;

/// What a finished command did.
struct Ran {
    ok: bool,
    code: String,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Ran {
    fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs `rollcall ARGS` with `env` on top of this process's environment
/// (less any ROLLCALL_KAFKA__ setting of its own); killed after `limit`.
fn rollcall(args: &[&str], env: &[(String, String)], limit: Duration) -> Result<Ran, String> {
    let mut cmd = Command::new(bin());
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    clean_env(&mut cmd);
    if !env.iter().any(|(k, _)| k == "ROLLCALL_LOG") {
        cmd.env_remove("ROLLCALL_LOG");
    }
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("{}: {e}", bin()))?;
    let readers =
        [child.stdout.take().map(|o| Box::new(o) as Box<dyn Read + Send>), child.stderr.take().map(|e| Box::new(e) as _)].map(
            |r| {
                std::thread::spawn(move || {
                    let mut s = String::new();
                    if let Some(mut r) = r {
                        let _ = r.read_to_string(&mut s);
                    }
                    s
                })
            },
        );
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break st;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("rollcall {} did not finish within {} s", args.join(" "), limit.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = started.elapsed();
    let [out, err] = readers.map(|r| r.join().unwrap_or_default());
    Ok(Ran { ok: status.success(), code: status.to_string(), stdout: out, stderr: err, took })
}

fn with(env: &[(String, String)], more: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = env.iter().filter(|(k, _)| !more.iter().any(|(m, _)| m == k)).cloned().collect();
    v.extend(more.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    v
}

fn without(env: &[(String, String)], key: &str) -> Vec<(String, String)> {
    env.iter().filter(|(k, _)| k != key).cloned().collect()
}

/// A CA of its own in `dir` (openssl), which signed nothing the broker has;
/// its certificate file's path.
fn another_ca(dir: &Path) -> Result<String, String> {
    let ca = dir.join("other-ca.pem");
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=another CA", "-keyout"])
        .arg(dir.join("other-ca.key"))
        .arg("-out")
        .arg(&ca)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("openssl: {e}"))?;
    ensure(made.success(), || format!("openssl could not make a CA: {made}"))?;
    Ok(ca.display().to_string())
}

fn never_says(text: &str, secret: &str, what: &str) -> TestResult {
    ensure(!secret.is_empty() && !text.contains(secret), || format!("{what} shows the password:\n{text}"))
}

/// A replay run of the processor over `prefix` on `brokers`, to the end.
fn replay_args<'a>(brokers: &'a str, prefix: &'a str, group: &'a str, until: &'a str, state: &'a Path) -> Vec<&'a str> {
    let state = state.to_str().unwrap_or_default();
    vec![
        "run",
        "--brokers",
        brokers,
        "--clock",
        "replay",
        "--exit-when-idle",
        "--until",
        until,
        "--topic-prefix",
        prefix,
        "--group",
        group,
        "--instance-id",
        "p",
        "--metrics-addr",
        "off",
        "--state-dir",
        state,
    ]
}

const MINUTE: Duration = Duration::from_secs(60);

/// Topics and a simulated district produced over SASL_SSL, then decided
/// by `rollcall run` over SASL_SSL; gives the prefix and the replay's end.
fn district_over_sasl_ssl(sb: &SecureBroker, name: &str, students: &str, days: &str) -> Result<(String, String), String> {
    let password = sb.password()?;
    let env = sb.client_env();
    let prefix = unique(name);
    let topics = rollcall(
        &["topics", "create", "--brokers", &sb.secure, "--topic-prefix", &prefix, "--partitions", "3"],
        &env,
        2 * MINUTE,
    )?;
    ensure(topics.ok, || format!("topics create over SASL_SSL: {}\n{}", topics.code, topics.all()))?;
    let sim = rollcall(
        &["simulate", "--brokers", &sb.secure, "--topic-prefix", &prefix, "--students", students, "--days", days, "--seed", "7"],
        &env,
        2 * MINUTE,
    )?;
    ensure(sim.ok, || format!("simulate over SASL_SSL: {}\n{}", sim.code, sim.all()))?;
    let until = sim
        .stdout
        .split_whitespace()
        .skip_while(|w| *w != "--until")
        .nth(1)
        .ok_or_else(|| format!("simulate did not say the replay's end: {}", sim.stdout))?
        .to_string();
    let state = tempfile::tempdir().map_err(|e| e.to_string())?;
    let group = format!("{prefix}g");
    let run = rollcall(
        &replay_args(&sb.secure, &prefix, &group, &until, state.path()),
        &with(&env, &[("ROLLCALL_LOG", "info")]),
        3 * MINUTE,
    )?;
    ensure(run.ok, || format!("rollcall run over SASL_SSL: {}\n{}", run.code, run.all()))?;
    never_says(&run.all(), &password, "rollcall run over SASL_SSL")?;
    never_says(&sim.all(), &password, "rollcall simulate")?;
    Ok((prefix, until))
}

/// Topics, a simulated district and `rollcall run`, all over SASL_SSL; the
/// same inputs decided again over plaintext (outputs behind another
/// prefix) give the same determinations and outreach.
fn a_district_over_sasl_ssl_is_decided_as_over_plaintext(sb: &SecureBroker) -> TestResult {
    let (prefix, until) = district_over_sasl_ssl(sb, "tls", "60", "5")?;

    // The same inputs over plaintext, outputs behind another prefix.
    let other = unique("plain");
    let reference_topics = Topics::with_prefix(&prefix).with_outputs_behind(&other);
    create_topics(&sb.plain, &reference_topics, 3, 1).map_err(|e| format!("{e:#}"))?;
    let state2 = tempfile::tempdir().map_err(|e| e.to_string())?;
    let group2 = format!("{other}g");
    let mut args = replay_args(&sb.plain, &prefix, &group2, &until, state2.path());
    args.extend(["--output-prefix", other.as_str()]);
    let plain = rollcall(&args, &[], 3 * MINUTE)?;
    ensure(plain.ok, || format!("rollcall run over plaintext: {}\n{}", plain.code, plain.all()))?;

    let secure_out = output_records(&sb.plain, &Topics::with_prefix(&prefix))?;
    let plain_out = output_records(&sb.plain, &reference_topics)?;
    eprintln!("  {} determinations and outreach records over SASL_SSL, {} over plaintext", secure_out.len(), plain_out.len());
    ensure(!secure_out.is_empty(), || "the district decided nothing over SASL_SSL".into())?;
    ensure(secure_out == plain_out, || {
        let first = secure_out.iter().zip(&plain_out).find(|(a, b)| a != b);
        format!(
            "SASL_SSL and plaintext decided differently ({} vs {} records), first difference: {first:?}",
            secure_out.len(),
            plain_out.len()
        )
    })
}

/// At most this many lines: the policies in force (five presets), then one error.
const FEW_LINES: usize = 8;

fn refused_run(sb: &SecureBroker, env: &[(String, String)]) -> Result<Ran, String> {
    let state = tempfile::tempdir().map_err(|e| e.to_string())?;
    let prefix = unique("refused");
    let state_dir = state.path().display().to_string();
    // broker_wait_seconds = 120: an unreachable broker would be tried that
    // long; a refusal must not be.
    let env = with(env, &[("ROLLCALL_BROKER_WAIT_SECONDS", "120")]);
    rollcall(
        &["run", "--brokers", &sb.secure, "--topic-prefix", &prefix, "--metrics-addr", "off", "--state-dir", &state_dir],
        &env,
        Duration::from_secs(60),
    )
}

/// A wrong password: `rollcall run` exits within seconds, saying that
/// authentication failed for the user with SCRAM-SHA-512, in a few lines,
/// and never shows the password (at the default log level and at debug).
fn a_wrong_password_fails_at_once(sb: &SecureBroker) -> TestResult {
    let wrong = "Wr0ng-pa55word-7f3a9c";
    let env = with(&without(&sb.client_env(), "ROLLCALL_KAFKA__SASL_PASSWORD_FILE"), &[("ROLLCALL_KAFKA__SASL_PASSWORD", wrong)]);
    let r = refused_run(sb, &env)?;
    eprintln!("  wrong password: exit {} after {:.1} s: {}", r.code, r.took.as_secs_f64(), r.stderr.trim());
    ensure(!r.ok, || format!("rollcall run with a wrong password succeeded:\n{}", r.all()))?;
    ensure(r.took < Duration::from_secs(30), || format!("it took {:?} to give up", r.took))?;
    let want = format!("authentication failed for user `{}` with SCRAM-SHA-512", sb.user);
    ensure(r.stderr.contains(&want), || format!("the message does not say `{want}`:\n{}", r.stderr))?;
    let lines = r.all().lines().filter(|l| !l.trim().is_empty()).count();
    ensure(lines <= FEW_LINES, || format!("{lines} lines, a retry storm?\n{}", r.all()))?;
    never_says(&r.all(), wrong, "a run with a wrong password")?;
    let debug = refused_run(sb, &with(&env, &[("ROLLCALL_LOG", "debug")]))?;
    ensure(!debug.ok, || "with ROLLCALL_LOG=debug it succeeded".into())?;
    never_says(&debug.all(), wrong, "a run with a wrong password at ROLLCALL_LOG=debug")?;
    // The right password for a user that does not exist: refused too, the
    // password (from its file) unsaid.
    let right = sb.password()?;
    let r = refused_run(sb, &with(&sb.client_env(), &[("ROLLCALL_KAFKA__SASL_USERNAME", "nobody"), ("ROLLCALL_LOG", "debug")]))?;
    ensure(!r.ok && r.stderr.contains("user `nobody`"), || format!("an unknown user:\n{}", r.all()))?;
    never_says(&r.all(), &right, "a run as an unknown user")
}

/// A CA file that did not sign the broker's certificate: `rollcall run`
/// exits within seconds, saying the certificate is not trusted by that
/// file, in a few lines.
fn an_untrusted_certificate_fails_at_once(sb: &SecureBroker) -> TestResult {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let ca_text = another_ca(dir.path())?;
    let r = refused_run(sb, &with(&sb.client_env(), &[("ROLLCALL_KAFKA__SSL_CA_FILE", &ca_text)]))?;
    eprintln!("  untrusted CA: exit {} after {:.1} s: {}", r.code, r.took.as_secs_f64(), r.stderr.trim());
    ensure(!r.ok, || format!("rollcall run trusting another CA succeeded:\n{}", r.all()))?;
    ensure(r.took < Duration::from_secs(30), || format!("it took {:?} to give up", r.took))?;
    let want = format!("the broker's certificate is not trusted by CA file `{ca_text}`");
    ensure(r.stderr.contains(&want), || format!("the message does not say `{want}`:\n{}", r.stderr))?;
    let lines = r.all().lines().filter(|l| !l.trim().is_empty()).count();
    ensure(lines <= FEW_LINES, || format!("{lines} lines, a retry storm?\n{}", r.all()))?;
    never_says(&r.all(), &sb.password()?, "a run with an untrusted certificate")
}

/// The gateway and the sink check the brokers at start as the processor
/// does: a wrong password or a CA that did not sign the broker's
/// certificate ends each within seconds, with the processor's message, not
/// a stream of retries.
fn the_gateway_and_the_sink_fail_at_once_on_refusals(sb: &SecureBroker) -> TestResult {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let ca_text = another_ca(dir.path())?;
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\n\n[[source]]\nformat = \"native\"\ntoken_env = \"GATEWAY_TOKEN\"\n")
        .map_err(|e| e.to_string())?;
    let config = config.display().to_string();
    let prefix = unique("refused-svc");
    let wrong = "Wr0ng-pa55word-5e1b2d";
    let cases = [
        (
            "a wrong password",
            with(&without(&sb.client_env(), "ROLLCALL_KAFKA__SASL_PASSWORD_FILE"), &[("ROLLCALL_KAFKA__SASL_PASSWORD", wrong)]),
            format!("authentication failed for user `{}` with SCRAM-SHA-512", sb.user),
        ),
        (
            "an untrusted CA",
            with(&sb.client_env(), &[("ROLLCALL_KAFKA__SSL_CA_FILE", &ca_text)]),
            format!("the broker's certificate is not trusted by CA file `{ca_text}`"),
        ),
    ];
    let commands: [(&str, Vec<&str>); 2] = [
        ("gateway", vec!["gateway", "--brokers", &sb.secure, "--topic-prefix", &prefix, "--config", &config]),
        (
            "sink postgres",
            vec![
                "sink",
                "postgres",
                "--brokers",
                &sb.secure,
                "--topic-prefix",
                &prefix,
                "--database-url",
                "postgres://nobody@127.0.0.1:1/none",
                "--metrics-addr",
                "off",
            ],
        ),
    ];
    for (name, args) in &commands {
        for (what, env, want) in &cases {
            // An unreachable broker would be tried for two minutes; a refusal must not be.
            let env = with(env, &[("ROLLCALL_BROKER_WAIT_SECONDS", "120"), ("GATEWAY_TOKEN", "gateway-token-0123456789abcdef")]);
            let r = rollcall(args, &env, MINUTE)?;
            eprintln!("  {name}, {what}: exit {} after {:.1} s: {}", r.code, r.took.as_secs_f64(), r.stderr.trim());
            ensure(!r.ok, || format!("rollcall {name} with {what} succeeded:\n{}", r.all()))?;
            ensure(r.took < Duration::from_secs(30), || format!("rollcall {name} took {:?} to give up on {what}", r.took))?;
            ensure(r.stderr.contains(want.as_str()), || {
                format!("rollcall {name}: the message does not say `{want}`:\n{}", r.stderr)
            })?;
            let lines = r.all().lines().filter(|l| !l.trim().is_empty()).count();
            ensure(lines <= FEW_LINES, || format!("rollcall {name}: {lines} lines, a retry storm?\n{}", r.all()))?;
            never_says(&r.all(), wrong, &format!("rollcall {name}"))?;
            never_says(&r.all(), &sb.password()?, &format!("rollcall {name}"))?;
        }
    }
    Ok(())
}

/// Settings that cannot work are refused before connecting, by name.
fn bad_settings_are_named_before_connecting(sb: &SecureBroker) -> TestResult {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let not_pem = dir.path().join("ca.txt");
    std::fs::write(&not_pem, "not a certificate").map_err(|e| e.to_string())?;
    let not_pem = not_pem.display().to_string();
    let env = sb.client_env();
    let cases: Vec<(Vec<(String, String)>, &str)> = vec![
        (with(&env, &[("ROLLCALL_KAFKA__SSL_CA_FILE", "/nowhere/ca.pem")]), "kafka.ssl_ca_file: cannot read `/nowhere/ca.pem`"),
        (with(&env, &[("ROLLCALL_KAFKA__SSL_CA_FILE", &not_pem)]), "kafka.ssl_ca_file:"),
        (without(&env, "ROLLCALL_KAFKA__SASL_USERNAME"), "kafka.sasl_username:"),
        (without(&env, "ROLLCALL_KAFKA__SASL_PASSWORD_FILE"), "kafka.sasl_password_file:"),
        (with(&env, &[("ROLLCALL_KAFKA__SECURITY_PROTOCOL", "tls")]), "ROLLCALL_KAFKA__SECURITY_PROTOCOL"),
    ];
    for (env, says) in cases {
        let r = refused_run(sb, &env)?;
        ensure(!r.ok && r.stderr.contains(says), || format!("expected `{says}`:\n{}", r.all()))?;
        ensure(r.took < Duration::from_secs(10), || format!("`{says}` took {:?}", r.took))?;
        // The other commands check the same settings from the environment.
        let t = rollcall(&["topics", "create", "--brokers", &sb.secure, "--topic-prefix", "never."], &env, MINUTE)?;
        ensure(!t.ok && t.stderr.contains(says), || format!("topics create: expected `{says}`:\n{}", t.all()))?;
    }
    Ok(())
}

/// The password (from the environment here; from its file in the other
/// tests) is in nothing the processor prints or serves while it runs over
/// SASL_SSL at debug level, while the broker goes away under it and comes
/// back, nor in the help texts and the example config.
fn the_password_is_never_shown(sb: &SecureBroker) -> TestResult {
    let password = sb.password()?;
    let env = with(
        &without(&sb.client_env(), "ROLLCALL_KAFKA__SASL_PASSWORD_FILE"),
        &[("ROLLCALL_KAFKA__SASL_PASSWORD", &password), ("ROLLCALL_LOG", "debug")],
    );
    for args in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["topics", "create", "--help"],
        vec!["simulate", "--help"],
        vec!["sink", "postgres", "--help"],
        vec!["gateway", "--help"],
        vec!["config", "example"],
    ] {
        let r = rollcall(&args, &env, MINUTE)?;
        ensure(r.ok, || format!("rollcall {}: {}\n{}", args.join(" "), r.code, r.all()))?;
        never_says(&r.all(), &password, &format!("rollcall {}", args.join(" ")))?;
    }

    // A processor that runs (wall clock, no inputs) and serves /metrics.
    let prefix = unique("shown");
    create_topics(&sb.plain, &Topics::with_prefix(&prefix), 1, 1).map_err(|e| format!("{e:#}"))?;
    let state = tempfile::tempdir().map_err(|e| e.to_string())?;
    let addr = format!("127.0.0.1:{}", free_port()?);
    let state_dir = state.path().display().to_string();
    let mut cmd = Command::new(bin());
    cmd.args(["run", "--brokers", &sb.secure, "--topic-prefix", &prefix, "--group", &format!("{prefix}g")])
        .args(["--metrics-addr", &addr, "--state-dir", &state_dir])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    clean_env(&mut cmd);
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let readers = [
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(o) = out.as_mut() {
                let _ = o.read_to_string(&mut s);
            }
            s
        }),
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(e) = err.as_mut() {
                let _ = e.read_to_string(&mut s);
            }
            s
        }),
    ];
    let started = Instant::now();
    let mut pages = String::new();
    let mut ready = false;
    while started.elapsed() < Duration::from_secs(90) {
        if let Ok(Some(st)) = child.try_wait() {
            let [o, e] = readers.map(|r| r.join().unwrap_or_default());
            return Err(format!("the processor exited early with {st}:\n{o}\n{e}"));
        }
        if let Ok(a) = http::get(&addr, "/readyz", &[]) {
            if a.status == 200 {
                ready = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    for path in ["/metrics", "/healthz", "/readyz"] {
        if let Ok(a) = http::get(&addr, path, &[]) {
            pages.push_str(&format!("{path} {}\n{}\n", a.status, a.body));
        }
    }
    // The broker goes away under the running processor and comes back on
    // the same ports: what the processor says of the broken connections
    // is searched too.
    let mut broken = String::new();
    if ready {
        for step in ["pause", "resume"] {
            let st = Command::new("bash")
                .arg(repo().join("scripts/kafka.sh"))
                .arg(step)
                .env("ROLLCALL_KAFKA_RUN", &sb.dir)
                .stdout(Stdio::null())
                .status()
                .map_err(|e| format!("kafka.sh {step}: {e}"))?;
            if !st.success() {
                broken = format!("kafka.sh {step} failed: {st}");
                break;
            }
            std::thread::sleep(Duration::from_secs(5));
        }
        let back = Instant::now();
        while broken.is_empty() && back.elapsed() < Duration::from_secs(90) {
            if http::get(&addr, "/readyz", &[]).is_ok_and(|a| a.status == 200) {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        for path in ["/metrics", "/healthz", "/readyz"] {
            if let Ok(a) = http::get(&addr, path, &[]) {
                pages.push_str(&format!("{path} {}\n{}\n", a.status, a.body));
            }
        }
    }
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().map_err(|e| e.to_string())?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let [o, e] = readers.map(|r| r.join().unwrap_or_default());
    ensure(ready, || format!("the processor was not ready over SASL_SSL within 90 s:\n{o}\n{e}\n{pages}"))?;
    ensure(pages.contains("rollcall_"), || format!("/metrics served no rollcall metric:\n{pages}"))?;
    ensure(broken.is_empty(), || broken.clone())?;
    eprintln!(
        "  a processor at debug level over SASL_SSL: {} lines printed, {} bytes of pages",
        (o.clone() + &e).lines().count(),
        pages.len()
    );
    never_says(&o, &password, "the processor's stdout")?;
    never_says(&e, &password, "the processor's stderr at debug level")?;
    never_says(&pages, &password, "/metrics, /healthz or /readyz")
}

/// The sink reads a district's outputs over SASL_SSL into PostgreSQL.
fn the_sink_reads_over_sasl_ssl(sb: &SecureBroker, db: &pg::Database) -> TestResult {
    let (prefix, _) = district_over_sasl_ssl(sb, "tls-sink", "30", "3")?;
    let expected = read_outputs(&sb.plain, &Topics::with_prefix(&prefix)).map_err(|e| format!("{e:#}"))?;
    let url = db.fresh("tls")?;
    let group = format!("{prefix}sink");
    let r = rollcall(
        &[
            "sink",
            "postgres",
            "--brokers",
            &sb.secure,
            "--database-url",
            &url,
            "--topic-prefix",
            &prefix,
            "--group",
            &group,
            "--exit-when-idle",
            "--metrics-addr",
            "off",
        ],
        &with(&sb.client_env(), &[("ROLLCALL_LOG", "info")]),
        3 * MINUTE,
    )?;
    ensure(r.ok, || format!("the sink over SASL_SSL: {}\n{}", r.code, r.all()))?;
    never_says(&r.all(), &sb.password()?, "the sink")?;
    let rows = pg::Pg::connect(&url)?.count("determinations")?;
    eprintln!("  the sink wrote {rows} determinations over SASL_SSL ({} records on the topic)", expected.determinations.len());
    ensure(rows > 0, || format!("the sink wrote no determinations:\n{}", r.all()))
}

/// The gateway, its `[kafka]` section in its config file (the password
/// from a file), puts a request's events on the activity topic over SASL_SSL.
fn the_gateway_produces_over_sasl_ssl(sb: &SecureBroker) -> TestResult {
    const TOKEN: &str = "gateway-tls-token-0123456789";
    let prefix = unique("tls-gw");
    let topics = Topics::with_prefix(&prefix);
    create_topics(&sb.plain, &topics, 3, 1).map_err(|e| format!("{e:#}"))?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let token = dir.path().join("token");
    std::fs::write(&token, TOKEN).map_err(|e| e.to_string())?;
    let config = format!(
        "listen = \"127.0.0.1:0\"\n\n[kafka]\nsecurity_protocol = \"sasl_ssl\"\nssl_ca_file = \"{}\"\n\
         sasl_mechanism = \"SCRAM-SHA-512\"\nsasl_username = \"{}\"\nsasl_password_file = \"{}\"\n\n\
         [[source]]\nformat = \"native\"\nroute = \"/v1/events\"\ntoken_file = \"{}\"\n",
        sb.ca_file.display(),
        sb.user,
        sb.password_file.display(),
        token.display()
    );
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, config).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(bin());
    cmd.args(["gateway", "--brokers", &sb.secure, "--topic-prefix", &prefix, "--config"])
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    clean_env(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let mut err = child.stderr.take();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let mut out = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    let mut byte = [0u8; 1];
    let result = (|| -> TestResult {
        while !line.ends_with('\n') {
            if out.read(&mut byte).map_err(|e| e.to_string())? == 0 {
                return Err("the gateway ended before listening".into());
            }
            line.push(byte[0] as char);
        }
        let addr = line.trim().strip_prefix("listening on ").ok_or_else(|| format!("unexpected first line `{line}`"))?;
        let started = Instant::now();
        while !http::get(addr, "/readyz", &[]).is_ok_and(|a| a.status == 200) {
            ensure(started.elapsed() < Duration::from_secs(60), || "the gateway was not ready within 60 s".into())?;
            std::thread::sleep(Duration::from_millis(200));
        }
        let body = std::fs::read(repo().join("crates/ingest/tests/fixtures/native/events.json")).map_err(|e| e.to_string())?;
        let want = rollcall_ingest::native::json(&body).map_err(|r| format!("{r}"))?.events.len();
        let a = http::request(addr, "POST", "/v1/events", &[("Authorization", format!("Bearer {TOKEN}"))], &body)?;
        ensure(a.status == 200, || format!("POST /v1/events: {} {}", a.status, a.body))?;
        let mut got = 0;
        rollcall_kafka::replay::read_topic(&sb.plain, &topics.activity, |_, _| {
            got += 1;
            Ok(())
        })
        .map_err(|e| format!("{e:#}"))?;
        eprintln!("  the gateway put {got} events on the topic over SASL_SSL ({want} posted)");
        ensure(got == want && want > 0, || format!("{got} events on the topic, {want} posted"))
    })();
    let _ = child.kill();
    let _ = child.wait();
    let said = err_reader.join().unwrap_or_default();
    result.map_err(|e| format!("{e}\n{said}"))?;
    never_says(&said, &sb.password()?, "the gateway")
}

pub fn area() -> Area {
    let tests = service_tests![[Need::SecureBroker], |e| (e.secure_broker());
        a_district_over_sasl_ssl_is_decided_as_over_plaintext,
        a_wrong_password_fails_at_once,
        an_untrusted_certificate_fails_at_once,
        the_gateway_and_the_sink_fail_at_once_on_refusals,
        bad_settings_are_named_before_connecting,
        the_gateway_produces_over_sasl_ssl,
    ];
    let mut tests = tests;
    tests.extend(service_tests![[Need::SecureBroker, Need::Database], |e| (e.secure_broker(), e.database());
        the_sink_reads_over_sasl_ssl,
    ]);
    // Last: it stops the broker for a while.
    tests.extend(service_tests![[Need::SecureBroker], |e| (e.secure_broker());
        the_password_is_never_shown,
    ]);
    Area::new("security", Duration::from_secs(900), tests)
}
