//! The runner of tests/main.rs: every integration test in one binary, so
//! that RocksDB and librdkafka are linked once.
//!
//! Each area (a module of tests/main.rs) registers its tests with their
//! names and what they need. A service — a broker, PostgreSQL, a schema
//! registry, the `prometheus` binary — is set up only when a selected test
//! needs it, once for the whole run, and torn down at the end. A service
//! that cannot be had fails every test that needed it.
//!
//! The tests that need nothing run first, on a small thread pool as libtest
//! ran them; the others run one at a time, area by area, each area within
//! its time limit. A test fails by returning an error or by panicking (the
//! former libtest tests assert); either way its message is printed.
//!
//! `main -- FILTER...` runs the tests whose `area::name` contains one of the
//! filters, `--exact` asks for equality, `--skip FILTER` leaves tests out,
//! `--list` lists them. Other libtest flags cargo may pass (`--nocapture`,
//! `--test-threads N`, ...) are accepted and ignored. The last line is
//! `N passed, M failed`, which scripts/test.sh counts; a skipped test
//! (tests/support/skip.rs) returns as passed and is recorded there.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::pg::Database;
use super::registry::SchemaRegistry;
use super::secure::SecureBroker;
use super::{Broker, TestResult};

/// A service a test needs, set up by the runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// A Kafka broker: ROLLCALL_TEST_BROKERS, or one started with scripts/kafka.sh.
    Broker,
    /// PostgreSQL: ROLLCALL_TEST_DATABASE_URL, or a cluster started with scripts/postgres.sh.
    Database,
    /// A schema registry: ROLLCALL_TEST_REGISTRY, or Apicurio started with scripts/registry.sh.
    Registry,
    /// The `prometheus` binary on PATH (scripts/setup.sh installs it).
    Prometheus,
    /// A broker with a SASL_SSL listener: one started with
    /// `ROLLCALL_KAFKA_SECURE=1 scripts/kafka.sh` (tests/support/secure.rs).
    SecureBroker,
}

/// What the services give the tests: the broker's address, the database,
/// the registry's URL, the `prometheus` binary. The runner keeps the
/// services themselves and stops them at the end; these are handles.
#[derive(Default)]
pub struct Env {
    broker: Option<Broker>,
    database: Option<Database>,
    registry: Option<String>,
    prometheus: Option<PathBuf>,
    secure_broker: Option<SecureBroker>,
}

impl Env {
    /// The broker's address.
    pub fn broker(&self) -> &str {
        &self.broker.as_ref().expect("the test did not declare that it needs a broker").address
    }

    /// The broker, as a handle that stops nothing when dropped.
    pub fn broker_handle(&self) -> Broker {
        self.broker.as_ref().expect("the test did not declare that it needs a broker").handle()
    }

    pub fn database(&self) -> &Database {
        self.database.as_ref().expect("the test did not declare that it needs PostgreSQL")
    }

    /// The database, as a handle that stops nothing when dropped.
    pub fn database_handle(&self) -> Database {
        self.database().handle()
    }

    /// The registry's Confluent API URL.
    pub fn registry(&self) -> &str {
        self.registry.as_deref().expect("the test did not declare that it needs a schema registry")
    }

    pub fn prometheus(&self) -> &Path {
        self.prometheus.as_deref().expect("the test did not declare that it needs prometheus")
    }

    /// The broker with a SASL_SSL listener.
    pub fn secure_broker(&self) -> &SecureBroker {
        self.secure_broker.as_ref().expect("the test did not declare that it needs a secure broker")
    }
}

/// One test: its name in its area, what it needs, its body.
pub struct Test {
    pub name: &'static str,
    pub needs: &'static [Need],
    pub run: fn(&Env) -> TestResult,
}

/// One area: a module of tests/main.rs.
pub struct Area {
    pub name: &'static str,
    pub tests: Vec<Test>,
    /// How long the area's service tests may take together; past it, the
    /// running test and the rest of the area fail.
    pub limit: Duration,
    /// Run before the area's first selected test.
    pub before: fn(),
    /// Run after its last one, given how many failed.
    pub after: fn(usize),
    /// Run when the area outlives its limit (to kill what it started).
    pub on_timeout: fn(),
}

impl Area {
    pub fn new(name: &'static str, limit: Duration, tests: Vec<Test>) -> Area {
        Area { name, tests, limit, before: || {}, after: |_| {}, on_timeout: || {} }
    }

    /// An area of tests that need nothing (they run on the pool, with no limit).
    pub fn plain(name: &'static str, tests: Vec<Test>) -> Area {
        Area::new(name, Duration::MAX, tests)
    }
}

/// Tests that need nothing and panic on failure (the former libtest
/// tests): `plain_tests![a, b]` registers `fn a()` and `fn b()`.
macro_rules! plain_tests {
    ($($f:ident),* $(,)?) => {
        vec![$($crate::support::harness::Test {
            name: stringify!($f),
            needs: &[],
            run: |_| {
                $f();
                Ok(())
            },
        }),*]
    };
}

/// Tests that need services: `service_tests![[Need::Broker], |e| (e.broker()); a, b]`
/// registers `fn a(&str) -> TestResult` and `b`, each called with the
/// arguments given after `|e|`.
macro_rules! service_tests {
    ($needs:expr, |$e:ident| $args:tt; $($f:ident),* $(,)?) => {
        vec![$($crate::support::harness::Test {
            name: stringify!($f),
            needs: &$needs,
            run: |$e| $f $args,
        }),*]
    };
}

/// The command line: filters, `--exact`, `--skip`, `--list`, `--ignored`.
#[derive(Default)]
struct Args {
    filters: Vec<String>,
    skip: Vec<String>,
    exact: bool,
    list: bool,
    /// `--ignored`: only ignored tests, and none is.
    ignored_only: bool,
}

impl Args {
    fn parse(args: impl Iterator<Item = String>) -> Args {
        // libtest's flags that take a value as the next argument.
        const WITH_VALUE: &[&str] = &["--test-threads", "--skip", "--logfile", "--format", "--color", "--shuffle-seed", "-Z"];
        let mut a = Args::default();
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with('-') => (f.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            if !flag.starts_with('-') {
                a.filters.push(arg);
                continue;
            }
            let value = if inline.is_some() {
                inline
            } else if WITH_VALUE.contains(&flag.as_str()) {
                args.next()
            } else {
                None
            };
            match flag.as_str() {
                "--exact" => a.exact = true,
                "--list" => a.list = true,
                "--ignored" => a.ignored_only = true,
                "--skip" => a.skip.extend(value),
                _ => {}
            }
        }
        a
    }

    fn selects(&self, full: &str) -> bool {
        let hit = |f: &String| if self.exact { full == f } else { full.contains(f.as_str()) };
        !self.ignored_only && (self.filters.is_empty() || self.filters.iter().any(hit)) && !self.skip.iter().any(hit)
    }
}

/// The services set up so far (or why one could not be), stopped when dropped.
#[derive(Default)]
struct Services {
    broker: Option<Result<Broker, String>>,
    database: Option<Result<Database, String>>,
    registry: Option<Result<SchemaRegistry, String>>,
    prometheus: Option<Result<PathBuf, String>>,
    secure_broker: Option<Result<SecureBroker, String>>,
}

impl Services {
    /// Sets up what is needed and not set up yet; gives why a need cannot be had.
    fn ensure(&mut self, needs: &[Need]) -> Result<(), String> {
        for need in needs {
            let r: Result<(), String> = match need {
                Need::Broker => {
                    self.broker.get_or_insert_with(|| Broker::get().map_err(|e| format!("no broker: {e}"))).as_ref().map(|_| ())
                }
                Need::Database => self
                    .database
                    .get_or_insert_with(|| Database::get().map_err(|e| format!("no database: {e}")))
                    .as_ref()
                    .map(|_| ()),
                Need::Registry => self
                    .registry
                    .get_or_insert_with(|| SchemaRegistry::get().map_err(|e| format!("no schema registry: {e}")))
                    .as_ref()
                    .map(|_| ()),
                Need::Prometheus => self
                    .prometheus
                    .get_or_insert_with(|| {
                        super::on_path("prometheus").ok_or_else(|| {
                            "the `prometheus` binary is not on PATH (scripts/setup.sh installs Debian's `prometheus` package)"
                                .to_string()
                        })
                    })
                    .as_ref()
                    .map(|_| ()),
                Need::SecureBroker => self
                    .secure_broker
                    .get_or_insert_with(|| SecureBroker::get().map_err(|e| format!("no SASL_SSL broker: {e}")))
                    .as_ref()
                    .map(|_| ()),
            }
            .map_err(|e| e.clone());
            r?;
        }
        Ok(())
    }

    fn env(&self) -> Env {
        Env {
            broker: self.broker.as_ref().and_then(|r| r.as_ref().ok()).map(Broker::handle),
            database: self.database.as_ref().and_then(|r| r.as_ref().ok()).map(Database::handle),
            registry: self.registry.as_ref().and_then(|r| r.as_ref().ok()).map(|r| r.url.clone()),
            prometheus: self.prometheus.as_ref().and_then(|r| r.as_ref().ok()).cloned(),
            secure_broker: self.secure_broker.as_ref().and_then(|r| r.as_ref().ok()).map(SecureBroker::handle),
        }
    }

    /// Stops them in the reverse order of a typical setup (the registry
    /// stores its schemas in the broker).
    fn stop(self) {
        let Services { broker, database, registry, prometheus, secure_broker } = self;
        drop(secure_broker);
        drop(registry);
        drop(database);
        drop(broker);
        drop(prometheus);
    }
}

/// Counts and prints outcomes.
#[derive(Default)]
struct Tally {
    passed: usize,
    failed: Vec<String>,
}

impl Tally {
    fn record(&mut self, full: &str, took: Duration, outcome: &TestResult) {
        match outcome {
            Ok(()) => {
                println!("test {full} ... ok ({:.0} s)", took.as_secs_f64());
                self.passed += 1;
            }
            Err(e) => {
                println!("test {full} ... FAILED ({:.0} s)\n{e}", took.as_secs_f64());
                self.failed.push(full.to_string());
            }
        }
    }
}

/// What a panic said.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "the test panicked (with a payload that is not a string)".to_string()
    }
}

/// Runs a test's body, a panic being a failure with its message.
fn run_caught(run: fn(&Env) -> TestResult, env: &Env) -> TestResult {
    match catch_unwind(AssertUnwindSafe(|| run(env))) {
        Ok(r) => r,
        Err(p) => Err(format!("panicked: {}", panic_message(p.as_ref()))),
    }
}

/// The former libtest tests ran on threads of their own with 2 MiB stacks
/// and the harness = false ones on the main thread (8 MiB): every test gets
/// the larger one.
const STACK: usize = 8 << 20;

/// Runs the areas' selected tests; the process's exit code.
pub fn main(areas: Vec<Area>) -> ExitCode {
    let args = Args::parse(std::env::args().skip(1));
    let selected: Vec<(&Area, Vec<&Test>)> = areas
        .iter()
        .map(|a| (a, a.tests.iter().filter(|t| args.selects(&format!("{}::{}", a.name, t.name))).collect::<Vec<_>>()))
        .filter(|(_, ts)| !ts.is_empty())
        .collect();
    let count: usize = selected.iter().map(|(_, ts)| ts.len()).sum();
    if args.list {
        for (a, ts) in &selected {
            for t in ts {
                println!("{}::{}: test", a.name, t.name);
            }
        }
        println!();
        println!("{count} tests, 0 benchmarks");
        return ExitCode::SUCCESS;
    }
    println!();
    println!("running {count} tests");
    let mut tally = Tally::default();

    // The tests that need nothing, on a pool as libtest ran them.
    let plain: Vec<(String, &Test)> = selected
        .iter()
        .flat_map(|(a, ts)| ts.iter().filter(|t| t.needs.is_empty()).map(move |t| (format!("{}::{}", a.name, t.name), *t)))
        .collect();
    run_pool(plain, &mut tally);

    // The others one at a time, area by area.
    let mut services = Services::default();
    for (area, ts) in &selected {
        let ts: Vec<&Test> = ts.iter().filter(|t| !t.needs.is_empty()).copied().collect();
        if !ts.is_empty() {
            run_area(area, ts, &mut services, &mut tally);
        }
    }
    services.stop();

    if !tally.failed.is_empty() {
        println!();
        println!("failures:");
        for f in &tally.failed {
            println!("    {f}");
        }
    }
    println!();
    println!("{} passed, {} failed", tally.passed, tally.failed.len());
    if tally.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs tests that need no service on available_parallelism threads, each
/// on a thread named after it (a panic message says whose it is).
fn run_pool(tests: Vec<(String, &Test)>, tally: &mut Tally) {
    if tests.is_empty() {
        return;
    }
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(tests.len());
    let queue = Mutex::new(tests.into_iter().collect::<VecDeque<_>>());
    let tally = Mutex::new(tally);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let Some((full, t)) = queue.lock().unwrap().pop_front() else { break };
                let run = t.run;
                let started = Instant::now();
                let outcome = std::thread::Builder::new()
                    .name(full.clone())
                    .stack_size(STACK)
                    .spawn_scoped(s, move || run_caught(run, &Env::default()))
                    .map_err(|e| format!("could not start a thread for the test: {e}"))
                    .and_then(|h| h.join().unwrap_or_else(|p| Err(format!("panicked: {}", panic_message(p.as_ref())))));
                tally.lock().unwrap().record(&full, started.elapsed(), &outcome);
            });
        }
    });
}

/// Runs an area's service tests one at a time on a thread of their own,
/// within the area's limit: the services they need first (a need that
/// cannot be had fails the tests that needed it), then each test.
fn run_area(area: &Area, tests: Vec<&Test>, services: &mut Services, tally: &mut Tally) {
    let mut runnable = Vec::new();
    for t in tests {
        let full = format!("{}::{}", area.name, t.name);
        match services.ensure(t.needs) {
            Ok(()) => runnable.push((full, t.run)),
            Err(e) => tally.record(&full, Duration::ZERO, &Err(e)),
        }
    }
    if runnable.is_empty() {
        return;
    }
    let env = Arc::new(services.env());
    let names: Vec<String> = runnable.iter().map(|(n, _)| n.clone()).collect();
    let (tx, rx) = mpsc::channel::<(usize, Duration, TestResult)>();
    let (before, after) = (area.before, area.after);
    let worker = std::thread::Builder::new().name(area.name.to_string()).stack_size(STACK).spawn(move || {
        before();
        let mut failed = 0;
        for (i, (full, run)) in runnable.into_iter().enumerate() {
            eprintln!("test {full} ...");
            let started = Instant::now();
            let outcome = run_caught(run, &env);
            failed += usize::from(outcome.is_err());
            if tx.send((i, started.elapsed(), outcome)).is_err() {
                return;
            }
        }
        after(failed);
    });
    let worker = match worker {
        Ok(h) => h,
        Err(e) => {
            for n in &names {
                tally.record(n, Duration::ZERO, &Err(format!("could not start the area's thread: {e}")));
            }
            return;
        }
    };
    let deadline = Instant::now() + area.limit;
    let mut done = 0;
    while done < names.len() {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((i, took, outcome)) => {
                tally.record(&names[i], took, &outcome);
                done += 1;
            }
            Err(_) => {
                println!("the {} tests did not finish within {} minutes", area.name, area.limit.as_secs() / 60);
                (area.on_timeout)();
                for n in &names[done..] {
                    tally.record(n, Duration::ZERO, &Err(format!("not finished within the {} tests' limit", area.name)));
                }
                return;
            }
        }
    }
    // The area's closing step (`after`) runs before the next area starts.
    let _ = worker.join();
}
