//! The PostgreSQL sink (`rollcall sink postgres`) against a real Apache
//! Kafka broker and a real PostgreSQL: a processed district lands in the
//! tables; SIGKILLs at seeded points mid-work lose and double nothing;
//! out-of-order versions never regress a row; a bad record is kept aside
//! and the sink goes on; SIGTERM stops it within 2 s with its metrics right.
//!
//! Uses ROLLCALL_TEST_BROKERS and ROLLCALL_TEST_DATABASE_URL when set;
//! otherwise starts a broker with scripts/kafka.sh and a cluster with
//! scripts/postgres.sh, and stops them at the end. Without a database the
//! tests fail. Each test gets a database of its own (CREATE DATABASE).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use rollcall_kafka::replay::read_outputs;
use rollcall_kafka::topics::create_topics;
use rollcall_kafka::wire::Topics;
use rollcall_model::avro::AvroRecord;
use rollcall_model::{Determination, Finality, OutreachTrigger, Scope, Status};

use crate::support;
use crate::support::harness::{Area, Need};
use crate::support::pg::*;
use crate::support::*;

impl Pg {
    fn determinations(&self, table: &str) -> Result<Vec<Determination>, String> {
        let rows = self.query(&format!(
            "SELECT determination_id, student_id, school_id, scope, date, section_id, policy, status, code, attendance_type,
                    minutes, contacts, category, rule, evidence, version, finality, decided_at,
                    evidence_detail, looked_for, seen FROM {table}"
        ))?;
        rows.iter()
            .map(|r| {
                let parse_err = |e: rollcall_model::UnknownSymbol| e.to_string();
                Ok(Determination {
                    determination_id: r.get(0),
                    student_id: r.get(1),
                    school_id: r.get(2),
                    scope: r.get::<_, String>(3).parse().map_err(parse_err)?,
                    date: r.get::<_, NaiveDate>(4),
                    section_id: r.get(5),
                    policy: r.get(6),
                    status: r.get::<_, String>(7).parse().map_err(parse_err)?,
                    code: r.get(8),
                    attendance_type: r.get::<_, Option<String>>(9).map(|s| s.parse()).transpose().map_err(parse_err)?,
                    minutes: r.get(10),
                    contacts: r.get(11),
                    category: r.get(12),
                    rule: r.get(13),
                    evidence: r.get(14),
                    version: r.get(15),
                    finality: r.get::<_, String>(16).parse().map_err(parse_err)?,
                    decided_at: r.get::<_, DateTime<Utc>>(17),
                    evidence_detail: serde_json::from_value(r.get(18)).map_err(|e| format!("evidence_detail: {e}"))?,
                    looked_for: r.get(19),
                    seen: serde_json::from_value(r.get(20)).map_err(|e| format!("seen: {e}"))?,
                })
            })
            .collect()
    }

    fn outreach(&self) -> Result<Vec<OutreachTrigger>, String> {
        let rows = self.query(
            "SELECT trigger_id, student_id, school_id, kind, recipient_role, staff_id, section_id, window_start, window_end,
                    reason, evidence, policy, created_at FROM outreach_triggers",
        )?;
        rows.iter()
            .map(|r| {
                let parse_err = |e: rollcall_model::UnknownSymbol| e.to_string();
                Ok(OutreachTrigger {
                    trigger_id: r.get(0),
                    student_id: r.get(1),
                    school_id: r.get(2),
                    kind: r.get::<_, String>(3).parse().map_err(parse_err)?,
                    recipient_role: r.get::<_, String>(4).parse().map_err(parse_err)?,
                    staff_id: r.get(5),
                    section_id: r.get(6),
                    window_start: r.get(7),
                    window_end: r.get(8),
                    reason: r.get(9),
                    evidence: r.get(10),
                    policy: r.get(11),
                    created_at: r.get(12),
                })
            })
            .collect()
    }
}

fn json<T: serde::Serialize>(v: &[T]) -> Vec<String> {
    let mut out: Vec<String> = v.iter().map(|x| serde_json::to_string(x).unwrap_or_default()).collect();
    out.sort();
    out
}

fn compare(expected: &[String], got: &[String], what: &str) -> TestResult {
    if expected == got {
        return Ok(());
    }
    let e: std::collections::BTreeSet<_> = expected.iter().collect();
    let g: std::collections::BTreeSet<_> = got.iter().collect();
    let lost: Vec<_> = e.difference(&g).take(2).collect();
    let extra: Vec<_> = g.difference(&e).take(2).collect();
    Err(format!(
        "{what}: {} rows, expected {}; {} doubled; lost e.g. {lost:?}; extra e.g. {extra:?}",
        got.len(),
        expected.len(),
        got.len() - g.len()
    ))
}

/// What the topics hold: every determination version, the latest per key, the triggers.
struct Expected {
    versions: Vec<String>,
    latest: Vec<String>,
    outreach: Vec<String>,
}

impl Expected {
    fn read(b: &str, topics: &Topics) -> Result<Expected, String> {
        let out = read_outputs(b, topics).map_err(|e| e.to_string())?;
        let mut latest: BTreeMap<String, Determination> = BTreeMap::new();
        for d in &out.determinations {
            let k = d.key();
            if latest.get(&k).is_none_or(|l| l.version < d.version) {
                latest.insert(k, d.clone());
            }
        }
        let latest: Vec<Determination> = latest.into_values().collect();
        Ok(Expected { versions: json(&out.determinations), latest: json(&latest), outreach: json(&out.outreach) })
    }

    fn rows(&self) -> i64 {
        (self.versions.len() + self.outreach.len()) as i64
    }

    /// The tables equal the topics: latest versions, full history, triggers.
    fn check(&self, pg: &Pg) -> TestResult {
        compare(&self.versions, &json(&pg.determinations("determination_versions")?), "determination_versions")?;
        compare(&self.latest, &json(&pg.determinations("determinations")?), "determinations")?;
        compare(&self.outreach, &json(&pg.outreach()?), "outreach_triggers")
    }
}

fn log_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::var("ROLLCALL_TEST_LOG_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| std::env::temp_dir().join(format!("rollcall-sink-test-logs-{}", std::process::id())));
        let _ = std::fs::create_dir_all(&d);
        d
    })
}

/// The `rollcall` binary, copied once at the start: the tests start it
/// dozens of times over minutes, and a build elsewhere into the same target
/// directory must not swap it in the middle.
fn rollcall() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // A hard link keeps the file as built (a rebuild writes a new file);
        // a copy where links cannot be made.
        let copy = log_dir().join("rollcall");
        let _ = std::fs::remove_file(&copy);
        match std::fs::hard_link(bin(), &copy).or_else(|_| std::fs::copy(bin(), &copy).map(|_| ())) {
            Ok(()) => copy,
            Err(_) => PathBuf::from(bin()),
        }
    })
}

static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Starts `rollcall sink postgres`; its log goes to a file (returned).
fn spawn_sink(b: &str, prefix: &str, url: &str, extra: &[&str]) -> Result<(Child, PathBuf), String> {
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let log = log_dir().join(format!("{prefix}sink-{n:03}.log"));
    let file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let child = Command::new(rollcall())
        .args(["sink", "postgres", "--brokers", b, "--database-url", url, "--topic-prefix", prefix])
        .args(["--group", &format!("{prefix}sink")])
        .args(extra)
        .env("ROLLCALL_LOG", std::env::var("ROLLCALL_TEST_LOG").unwrap_or_else(|_| "warn".into()))
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .map_err(|e| e.to_string())?;
    Ok((child, log))
}

/// A district produced and run through the processor once, shared by the
/// tests that read it (each into its own database).
struct District {
    prefix: String,
    expected: Expected,
}

fn processed_district(b: &str) -> Result<&'static District, String> {
    static D: OnceLock<Result<District, String>> = OnceLock::new();
    D.get_or_init(|| {
        let s = district(1000, 5, 21);
        let started = Instant::now();
        let prefix = pipeline::process(b, &s, "district")?;
        let topics = Topics::with_prefix(&prefix);
        let expected = Expected::read(b, &topics)?;
        eprintln!(
            "  district: {} events -> {} determination versions ({} keys), {} triggers in {:.1} s",
            s.events.len(),
            expected.versions.len(),
            expected.latest.len(),
            expected.outreach.len(),
            started.elapsed().as_secs_f64()
        );
        ensure(expected.versions.len() > expected.latest.len() && !expected.outreach.is_empty(), || {
            "the district has no later versions or no outreach: nothing to check".into()
        })?;
        Ok(District { prefix, expected })
    })
    .as_ref()
    .map_err(|e| e.clone())
}

/// A simulated district through the processor and the sink: the tables
/// equal the topics (latest versions, full history, triggers).
fn district_flows_into_postgres(b: &str, db: &Database) -> TestResult {
    let d = processed_district(b)?;
    let url = db.fresh("district")?;
    pipeline::sink_to_end(b, &d.prefix, &url)?;
    let pg = Pg::connect(&url)?;
    d.expected.check(&pg)?;
    // The positions stored are the ends of the partitions: a second run
    // reads nothing and changes nothing.
    let said = pipeline::sink_to_end(b, &d.prefix, &url)?;
    ensure(said.lines().any(|l| l.starts_with("sink: 0 records")), || format!("a second run read records again: {said}"))?;
    d.expected.check(&pg)?;
    let migrations = pg.query("SELECT version FROM schema_migrations")?;
    ensure(migrations.len() == rollcall_sink::migrate::MIGRATIONS.len(), || format!("{} migrations recorded", migrations.len()))
}

/// One writer, and more writers than the topics have partitions to share
/// evenly, leave the same tables: the topics' (the default, two, is what
/// the other tests run).
fn any_number_of_writers_writes_the_same_tables(b: &str, db: &Database) -> TestResult {
    let d = processed_district(b)?;
    for writers in ["1", "4"] {
        let url = db.fresh(&format!("writers{writers}"))?;
        let (mut child, log) = spawn_sink(b, &d.prefix, &url, &["--exit-when-idle", "--writers", writers])?;
        let status = child.wait().map_err(|e| e.to_string())?;
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        ensure(status.success(), || format!("the sink with {writers} writers exited with {status}: {said}"))?;
        d.expected.check(&Pg::connect(&url)?).map_err(|e| format!("{writers} writers: {e}"))?;
    }
    Ok(())
}

/// SIGKILL at seeded points drawn from the sink's committed progress, so
/// that every kill lands mid-work; afterwards the tables equal the topics.
fn kill_nine_loses_and_doubles_nothing(b: &str, db: &Database) -> TestResult {
    let d = processed_district(b)?;
    let url = db.fresh("kill")?;
    let pg = Pg::connect(&url)?;
    let total = d.expected.rows();
    let progress = |pg: &Pg| -> Result<i64, String> { Ok(pg.count("determination_versions")? + pg.count("outreach_triggers")?) };
    let mut x: u64 = 0x514b_1d77_0000_0001;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    const KILLS: i64 = 20;
    let (mut mid_work, mut kills) = (0, 0);
    for i in 0..KILLS {
        let before = progress(&pg)?;
        if before >= total {
            break;
        }
        // Small batches make many transactions: kills land between and inside them.
        let (mut child, log) =
            spawn_sink(b, &d.prefix, &url, &["--batch-max-records", "150", "--batch-max-ms", "50", "--metrics-addr", "off"])?;
        let share = (total - before) / (KILLS - i + 1);
        let target = before + 1 + (share / 2 + (next() % (share.max(1) as u64)) as i64);
        let started = Instant::now();
        let mut alive = true;
        loop {
            if child.try_wait().map_err(|e| e.to_string())?.is_some() {
                alive = false;
                break;
            }
            if progress(&pg)? >= target || started.elapsed() > Duration::from_secs(60) {
                break;
            }
            std::thread::sleep(Duration::from_millis(3));
        }
        let _ = child.kill();
        let _ = child.wait();
        kills += 1;
        let after = progress(&pg)?;
        let landed = alive && after < total;
        if landed {
            mid_work += 1;
        }
        eprintln!(
            "  kill {:>2}: target {target}, rows {before} -> {after} of {total}{}",
            i + 1,
            if landed { " (mid-work)" } else { " (not mid-work)" }
        );
        // Without --exit-when-idle the sink never exits by itself.
        ensure(alive, || format!("a sink exited before its kill: {}", std::fs::read_to_string(&log).unwrap_or_default()))?;
    }
    pipeline::sink_to_end(b, &d.prefix, &url)?;
    d.expected.check(&pg)?;
    ensure(mid_work >= 10, || format!("only {mid_work} of {kills} kills landed mid-work; need 10"))
}

fn determination(student: &str, version: i32, code: &str, finality: Finality) -> Determination {
    let date = NaiveDate::from_ymd_opt(2020, 10, 6).unwrap_or_default();
    let key = rollcall_model::determination_key(student, Scope::Day, date, None);
    Determination {
        determination_id: format!("{key}#{version}"),
        student_id: student.into(),
        school_id: "ooo-school".into(),
        scope: Scope::Day,
        date,
        section_id: None,
        policy: "mmsd".into(),
        status: if code == "P" { Status::Present } else { Status::AbsentUnexcused },
        code: code.into(),
        attendance_type: None,
        minutes: Some(10 * version as i64),
        contacts: None,
        category: None,
        rule: format!("version {version}"),
        evidence: vec![format!("e{version}")],
        version,
        finality,
        decided_at: DateTime::from_timestamp(1_601_900_000 + version as i64 * 60, 0).unwrap_or_default(),
        evidence_detail: vec![],
        looked_for: if code == "P" { vec![] } else { vec![format!("looked for at version {version}")] },
        seen: vec![],
    }
}

fn produce_determinations(b: &str, topics: &Topics, ds: &[&Determination]) -> TestResult {
    let p = rollcall_kafka::replay::producer(b).map_err(|e| e.to_string())?;
    for d in ds {
        let v = d.to_single_object().map_err(|e| e.to_string())?;
        rollcall_kafka::replay::send(&p, &topics.determinations, &d.key(), &v, d.decided_at).map_err(|e| e.to_string())?;
    }
    rdkafka::producer::Producer::flush(&p, Duration::from_secs(30)).map_err(|e| e.to_string())
}

fn row_version(pg: &Pg, student: &str) -> Result<(i32, String), String> {
    let rows = pg.query(&format!("SELECT version, code FROM determinations WHERE student_id = '{student}'"))?;
    ensure(rows.len() == 1, || format!("{} rows for {student}", rows.len()))?;
    Ok((rows[0].get(0), rows[0].get(1)))
}

/// v2 then v1 of a key (in one batch, and across runs): the row keeps v2;
/// the history has both. A record that is not Avro is kept aside and the
/// records after it are written.
fn out_of_order_versions_never_regress(b: &str, db: &Database) -> TestResult {
    let prefix = unique("ooo");
    let topics = Topics::with_prefix(&prefix);
    create_topics(b, &topics, 2, 1).map_err(|e| e.to_string())?;
    let url = db.fresh("ooo")?;
    let pg = Pg::connect(&url)?;
    // One batch: a's v2 before its v1; b's v3 alone.
    let (a1, a2) = (determination("ooo-a", 1, "P", Finality::Provisional), determination("ooo-a", 2, "AU", Finality::Final));
    let (b1, b3) = (determination("ooo-b", 1, "P", Finality::Provisional), determination("ooo-b", 3, "AU", Finality::Correction));
    produce_determinations(b, &topics, &[&a2, &a1, &b3])?;
    // Not Avro, on b's key (its partition), before b's old version.
    let p = rollcall_kafka::replay::producer(b).map_err(|e| e.to_string())?;
    rollcall_kafka::replay::send(&p, &topics.determinations, &b1.key(), b"{\"not\": \"avro\"}", Utc::now())
        .map_err(|e| e.to_string())?;
    rdkafka::producer::Producer::flush(&p, Duration::from_secs(30)).map_err(|e| e.to_string())?;
    pipeline::sink_to_end(b, &prefix, &url)?;
    ensure(row_version(&pg, "ooo-a")? == (2, "AU".into()), || {
        format!("a: {:?} after v2 then v1 in one batch", row_version(&pg, "ooo-a"))
    })?;
    ensure(row_version(&pg, "ooo-b")? == (3, "AU".into()), || format!("b: {:?}", row_version(&pg, "ooo-b")))?;
    // A later run, a later batch: b's v1 arrives after its v3.
    produce_determinations(b, &topics, &[&b1])?;
    pipeline::sink_to_end(b, &prefix, &url)?;
    ensure(row_version(&pg, "ooo-b")? == (3, "AU".into()), || {
        format!("b: {:?} after v1 in a later batch", row_version(&pg, "ooo-b"))
    })?;
    let history = json(&pg.determinations("determination_versions")?);
    compare(&json(&[a1, a2, b1, b3]), &history, "determination_versions")?;
    let dead = pg.query("SELECT topic, partition, \"offset\", error_kind, value FROM sink_dead_letters")?;
    ensure(dead.len() == 1, || format!("{} dead letters, expected 1", dead.len()))?;
    let (topic, kind, value): (String, String, Vec<u8>) = (dead[0].get(0), dead[0].get(3), dead[0].get(4));
    ensure(topic == topics.determinations && kind == "NOT_AVRO" && value == b"{\"not\": \"avro\"}", || {
        format!("dead letter {topic} {kind} {:?}", String::from_utf8_lossy(&value))
    })
}

/// A determination key tombstoned on the topic (`rollcall forget` erased
/// its student) takes its rows out of `determinations` and
/// `determination_versions`; the other students' rows stay, and the
/// tombstones are not dead letters.
fn tombstoned_keys_leave_the_tables(b: &str, db: &Database) -> TestResult {
    let prefix = unique("erase");
    let topics = Topics::with_prefix(&prefix);
    create_topics(b, &topics, 2, 1).map_err(|e| e.to_string())?;
    let url = db.fresh("erase")?;
    let pg = Pg::connect(&url)?;
    let (a1, a2) = (determination("erase-a", 1, "P", Finality::Provisional), determination("erase-a", 2, "AU", Finality::Final));
    let k1 = determination("erase-k", 1, "P", Finality::Final);
    produce_determinations(b, &topics, &[&a1, &a2, &k1])?;
    pipeline::sink_to_end(b, &prefix, &url)?;
    let rows = |student: &str| -> Result<(i64, i64), String> {
        let n = |table: &str| -> Result<i64, String> {
            Ok(pg.query(&format!("SELECT count(*) FROM {table} WHERE student_id = '{student}'"))?[0].get(0))
        };
        Ok((n("determinations")?, n("determination_versions")?))
    };
    ensure(rows("erase-a")? == (1, 2) && rows("erase-k")? == (1, 1), || {
        format!("before: {:?} {:?}", rows("erase-a"), rows("erase-k"))
    })?;
    let p = rollcall_kafka::replay::producer(b).map_err(|e| e.to_string())?;
    let key = a1.key();
    let tombstone = rdkafka::producer::BaseRecord::<str, [u8]>::to(&topics.determinations).key(key.as_str());
    p.send(tombstone).map_err(|(e, _)| e.to_string())?;
    rdkafka::producer::Producer::flush(&p, Duration::from_secs(30)).map_err(|e| e.to_string())?;
    pipeline::sink_to_end(b, &prefix, &url)?;
    ensure(rows("erase-a")? == (0, 0), || format!("the erased key's rows: {:?}", rows("erase-a")))?;
    ensure(rows("erase-k")? == (1, 1), || format!("the other student's rows: {:?}", rows("erase-k")))?;
    ensure(pg.count("sink_dead_letters")? == 0, || "a tombstone was dead-lettered".into())
}

/// The COPY path (with its fallback) and the staged path, over the same
/// batches — versions out of order in a batch and across batches, one
/// record twice in a batch, a record already stored — leave identical
/// tables, and the right ones; exactly the batches holding a duplicate went
/// through the fallback.
fn copy_and_staged_paths_agree(_b: &str, db: &Database) -> TestResult {
    use rollcall_sink::db::{write_batch, write_batch_via, Batch, VersionsPath};
    let d = |student: &str, version: i32| {
        determination(student, version, if version % 2 == 0 { "AU" } else { "P" }, Finality::Provisional)
    };
    let batches: Vec<(Vec<Determination>, bool)> = vec![
        // a's v2 before its v1.
        (vec![d("p-a", 2), d("p-a", 1), d("p-b", 1), d("p-c", 3)], false),
        // b's v3 before v2; d's v1 twice.
        (vec![d("p-b", 3), d("p-b", 2), d("p-c", 1), d("p-d", 1), d("p-d", 1)], true),
        // a's v2 again: stored by the first batch.
        (vec![d("p-e", 1), d("p-a", 2)], true),
        (vec![d("p-a", 4), d("p-c", 2), d("p-e", 2)], false),
        // A stored version first, then many rows: the server refuses the
        // COPY while the sink is still sending it.
        (std::iter::once(d("p-b", 1)).chain((0..20_000).map(|i| d(&format!("p-bulk-{i}"), 1))).collect(), true),
    ];
    let mut tables = Vec::new();
    for path in [VersionsPath::Copy, VersionsPath::Staged] {
        let url = db.fresh(if path == VersionsPath::Copy { "copy" } else { "staged" })?;
        let mut pg = Pg::connect(&url)?;
        let Pg { rt, client } = &mut pg;
        rt.block_on(async {
            rollcall_sink::migrate::migrate(client).await?;
            rollcall_sink::db::prepare_session(client).await?;
            for (i, (ds, duplicate)) in batches.iter().enumerate() {
                let batch = Batch {
                    determinations: ds.clone(),
                    next_offsets: [(("t".to_string(), 0), 5 * (i as i64 + 1))].into_iter().collect(),
                    records: ds.len(),
                    ..Batch::default()
                };
                let w = match path {
                    VersionsPath::Copy => write_batch(client, &batch).await?,
                    VersionsPath::Staged => write_batch_via(client, &batch, VersionsPath::Staged).await?,
                };
                if path == VersionsPath::Copy && w.staged != *duplicate {
                    return Err(format!("batch {i}: staged {} (a duplicate: {duplicate})", w.staged).into());
                }
            }
            Ok::<_, Box<dyn std::error::Error>>(())
        })
        .map_err(|e| format!("{path:?}: {e}"))?;
        let offsets: Vec<String> = pg
            .query("SELECT topic, partition, next_offset FROM sink_offsets")?
            .iter()
            .map(|r| format!("{}[{}]={}", r.get::<_, String>(0), r.get::<_, i32>(1), r.get::<_, i64>(2)))
            .collect();
        tables.push((json(&pg.determinations("determination_versions")?), json(&pg.determinations("determinations")?), offsets));
    }
    let all: Vec<&Determination> = batches.iter().flat_map(|(ds, _)| ds).collect();
    let mut seen = std::collections::HashSet::new();
    let versions: Vec<Determination> = all.into_iter().filter(|x| seen.insert(x.determination_id.clone())).cloned().collect();
    let mut latest = vec![d("p-a", 4), d("p-b", 3), d("p-c", 3), d("p-d", 1), d("p-e", 2)];
    latest.extend((0..20_000).map(|i| d(&format!("p-bulk-{i}"), 1)));
    for (path, (v, l, o)) in ["copy", "staged"].iter().zip(&tables) {
        compare(&json(&versions), v, &format!("{path}: determination_versions"))?;
        compare(&json(&latest), l, &format!("{path}: determinations"))?;
        ensure(o == &vec!["t[0]=25".to_string()], || format!("{path}: sink_offsets {o:?}"))?;
    }
    ensure(tables[0] == tables[1], || "the two paths' tables differ".into())
}

/// A running sink answers /metrics with what it wrote, and SIGTERM stops it within 2 s.
fn metrics_and_sigterm(b: &str, db: &Database) -> TestResult {
    let d = processed_district(b)?;
    let url = db.fresh("term")?;
    let pg = Pg::connect(&url)?;
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let (mut child, log) = spawn_sink(b, &d.prefix, &url, &["--metrics-addr", &addr])?;
    let started = Instant::now();
    let total = d.expected.rows();
    let result = (|| -> TestResult {
        while pg.count("determination_versions")? + pg.count("outreach_triggers")? < total {
            ensure(started.elapsed() < Duration::from_secs(120), || "the sink did not write the district within 120 s".into())?;
            ensure(child.try_wait().map_err(|e| e.to_string())?.is_none(), || "the sink exited".into())?;
            std::thread::sleep(Duration::from_millis(100));
        }
        let body = http_get(&addr, "/metrics")?;
        let value = |series: &str| -> Option<f64> {
            body.lines().find(|l| l.starts_with(series)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
        };
        let versions = value("rollcall_sink_rows_written_total{table=\"determination_versions\"}");
        ensure(versions == Some(d.expected.versions.len() as f64), || {
            format!("rows_written for determination_versions: {versions:?}")
        })?;
        // The partitions' ends are asked of the broker beside the work (about
        // a second for the topics): the lag appears then, at most 1 once all
        // is written (the processor's last commit marker takes an offset the
        // sink never reads as a record).
        let asked = Instant::now();
        let body = loop {
            let body = http_get(&addr, "/metrics")?;
            let lags: Vec<&str> = body.lines().filter(|l| l.starts_with("rollcall_sink_lag_records{")).collect();
            // Determinations, outreach and the roster have 3 partitions, the calendars 1.
            if lags.len() == 10 && lags.iter().all(|l| l.ends_with(" 0") || l.ends_with(" 1")) {
                break body;
            }
            ensure(asked.elapsed() < Duration::from_secs(15), || {
                format!("the lag of 10 partitions (3 topics × 3 and the calendars' 1) is not all 0 or 1: {lags:?}")
            })?;
            std::thread::sleep(Duration::from_millis(200));
        };
        for name in rollcall_sink::metrics::METRIC_NAMES {
            ensure(body.contains(&format!("# TYPE {name}")), || format!("{name} not exported"))?;
        }
        ensure(http_get(&addr, "/readyz")?.contains("ready"), || "not ready".into())?;
        let term = Instant::now();
        let st = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().map_err(|e| e.to_string())?;
        ensure(st.success(), || "kill -TERM failed".into())?;
        let status = loop {
            if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
                break s;
            }
            ensure(term.elapsed() < Duration::from_secs(2), || "the sink did not stop within 2 s of SIGTERM".into())?;
            std::thread::sleep(Duration::from_millis(20));
        };
        ensure(status.success(), || format!("after SIGTERM the sink exited with {status}"))
    })();
    let _ = child.kill();
    let _ = child.wait();
    result.map_err(|e| format!("{e} (log: {})", log.display()))
}

/// The shape of the two Ed-Fi resources (standards.md §5, the DS 4.0–5.2
/// XSD): which fields may appear, which must, and what each must hold.
fn edfi_shape_errors(resource: &str, doc: &serde_json::Value) -> Vec<String> {
    use serde_json::Value;
    let mut errs = Vec::new();
    let Some(obj) = doc.as_object() else { return vec!["not an object".into()] };
    let (allowed, required): (&[&str], &[&str]) = match resource {
        "studentSchoolAttendanceEvents" => (
            &[
                "studentReference",
                "schoolReference",
                "sessionReference",
                "eventDate",
                "attendanceEventCategoryDescriptor",
                "attendanceEventReason",
                "educationalEnvironmentDescriptor",
                "eventDuration",
                "schoolAttendanceDuration",
                "arrivalTime",
                "departureTime",
            ],
            &["studentReference", "schoolReference", "sessionReference", "eventDate", "attendanceEventCategoryDescriptor"],
        ),
        "studentSectionAttendanceEvents" => (
            &[
                "studentReference",
                "sectionReference",
                "eventDate",
                "attendanceEventCategoryDescriptor",
                "attendanceEventReason",
                "educationalEnvironmentDescriptor",
                "eventDuration",
                "sectionAttendanceDuration",
                "arrivalTime",
                "departureTime",
                "classPeriods",
            ],
            &["studentReference", "sectionReference", "eventDate", "attendanceEventCategoryDescriptor"],
        ),
        other => return vec![format!("unknown resource {other}")],
    };
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            errs.push(format!("field {k} is not in the resource"));
        }
    }
    for k in required {
        if !obj.contains_key(*k) {
            errs.push(format!("required field {k} missing"));
        }
    }
    let text = |v: &Value, max: usize| v.as_str().is_some_and(|s| !s.trim().is_empty() && s.chars().count() <= max);
    let int = |v: &Value, lo: i64, hi: i64| v.as_i64().is_some_and(|n| (lo..=hi).contains(&n));
    if !text(&doc["studentReference"]["studentUniqueId"], 32) {
        errs.push(format!("studentReference.studentUniqueId: {}", doc["studentReference"]));
    }
    let school_year = |v: &Value| int(v, 1900, 2100);
    if resource == "studentSchoolAttendanceEvents" {
        let school = &doc["schoolReference"]["schoolId"];
        let session = &doc["sessionReference"];
        if !int(school, 1, i32::MAX as i64) {
            errs.push(format!("schoolReference.schoolId: {school}"));
        }
        if session["schoolId"] != *school || !school_year(&session["schoolYear"]) || !text(&session["sessionName"], 60) {
            errs.push(format!("sessionReference incomplete or not the school's: {session}"));
        }
    } else {
        let s = &doc["sectionReference"];
        if !text(&s["localCourseCode"], 60)
            || !int(&s["schoolId"], 1, i32::MAX as i64)
            || !school_year(&s["schoolYear"])
            || !text(&s["sectionIdentifier"], 255)
            || !text(&s["sessionName"], 60)
        {
            errs.push(format!("sectionReference incomplete: {s}"));
        }
    }
    let date_ok = doc["eventDate"].as_str().is_some_and(|d| d.len() == 10 && d.parse::<NaiveDate>().is_ok());
    if !date_ok {
        errs.push(format!("eventDate: {}", doc["eventDate"]));
    }
    // uri://authority/…/Namespace#Code Value, the code as-is (spaces kept).
    let descriptor = |v: &Value, ns: &str| -> bool {
        let Some(u) = v.as_str() else { return false };
        let Some((path, code)) = u.strip_prefix("uri://").and_then(|r| r.split_once('#')) else { return false };
        let well_formed = path.rsplit_once('/').is_some_and(|(auth, n)| !auth.is_empty() && !auth.contains(' ') && n == ns)
            && !code.is_empty()
            && code.trim() == code;
        // Ed-Fi's own namespace has a fixed list of codes.
        let known = ns != "AttendanceEventCategoryDescriptor"
            || !path.starts_with("ed-fi.org/")
            || ["In Attendance", "Excused Absence", "Unexcused Absence", "Tardy", "Early departure", "Partial", "Present"]
                .contains(&code);
        well_formed && known
    };
    if !descriptor(&doc["attendanceEventCategoryDescriptor"], "AttendanceEventCategoryDescriptor") {
        errs.push(format!("attendanceEventCategoryDescriptor: {}", doc["attendanceEventCategoryDescriptor"]));
    }
    if let Some(e) = obj.get("educationalEnvironmentDescriptor") {
        if !descriptor(e, "EducationalEnvironmentDescriptor") {
            errs.push(format!("educationalEnvironmentDescriptor: {e}"));
        }
    }
    for f in ["schoolAttendanceDuration", "sectionAttendanceDuration"] {
        if let Some(v) = obj.get(f) {
            if !int(v, 0, 1440) {
                errs.push(format!("{f}: {v} is not 0–1440 minutes"));
            }
        }
    }
    if let Some(v) = obj.get("eventDuration") {
        if !v.as_f64().is_some_and(|x| (0.0..=1.0).contains(&x)) {
            errs.push(format!("eventDuration: {v} is not a fraction of a day"));
        }
    }
    if let Some(v) = obj.get("attendanceEventReason") {
        if v.as_str().is_none_or(|s| s.chars().count() > 255) {
            errs.push("attendanceEventReason: not text of at most 255 characters".into());
        }
    }
    errs
}

fn export_edfi(url: &str, dir: &Path, name: &str, extra: &[&str]) -> Result<(Vec<serde_json::Value>, String), String> {
    let out = dir.join(format!("{name}.jsonl"));
    let mapping = repo().join("crates/sink/edfi-mapping.example.toml");
    let run = Command::new(rollcall())
        .args(["export", "edfi", "--database-url", url, "--mapping"])
        .arg(&mapping)
        .arg("--out")
        .arg(&out)
        .args(extra)
        .output()
        .map_err(|e| e.to_string())?;
    let said = String::from_utf8_lossy(&run.stderr).into_owned();
    ensure(run.status.success(), || format!("export edfi exited with {}: {said}", run.status))?;
    let text = std::fs::read_to_string(&out).map_err(|e| e.to_string())?;
    let lines = text.lines().map(|l| serde_json::from_str(l).map_err(|e| format!("{e}: {l}"))).collect::<Result<Vec<_>, _>>()?;
    Ok((lines, said))
}

/// `rollcall export edfi` of a processed district: every document has its
/// resource's shape; every final determination is a document or counted as
/// skipped (WEEK counts, unmapped EXEMPT); categories follow the statuses;
/// no two documents share a natural key; --school/--from/--to filter.
fn edfi_export_has_the_resource_shapes(b: &str, db: &Database) -> TestResult {
    let d = processed_district(b)?;
    let url = db.fresh("edfi")?;
    pipeline::sink_to_end(b, &d.prefix, &url)?;
    let pg = Pg::connect(&url)?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (lines, said) = export_edfi(&url, dir.path(), "all", &[])?;
    let finals: BTreeMap<String, (String, String)> = pg
        .query("SELECT determination_id, scope, status FROM determinations WHERE finality <> 'PROVISIONAL'")?
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    let weeks = finals.values().filter(|(scope, _)| scope == "WEEK").count();
    let exempt = finals.values().filter(|(_, status)| status == "EXEMPT").count();
    ensure(weeks > 0, || "the district has no WEEK determinations: the skip is not tested".into())?;
    let mut errors = Vec::new();
    let mut keys = std::collections::BTreeSet::new();
    let mut by_resource: BTreeMap<String, usize> = BTreeMap::new();
    for l in &lines {
        let resource = l["resource"].as_str().unwrap_or_default();
        let id = l["determination_id"].as_str().unwrap_or_default();
        let doc = &l["document"];
        *by_resource.entry(resource.to_string()).or_default() += 1;
        for e in edfi_shape_errors(resource, doc) {
            errors.push(format!("{id}: {e}"));
        }
        let Some((scope, status)) = finals.get(id) else {
            errors.push(format!("{id}: not a final determination in the table"));
            continue;
        };
        let want_resource = if scope == "DAY" { "studentSchoolAttendanceEvents" } else { "studentSectionAttendanceEvents" };
        if resource != want_resource {
            errors.push(format!("{id}: {scope} as {resource}"));
        }
        let category = doc["attendanceEventCategoryDescriptor"].as_str().unwrap_or_default();
        let expected = match status.as_str() {
            "ABSENT_EXCUSED" => Some("#Excused Absence"),
            "ABSENT_UNEXCUSED" => Some("#Unexcused Absence"),
            _ => None,
        };
        if expected.is_some_and(|e| !category.ends_with(e)) {
            errors.push(format!("{id}: {status} as {category}"));
        }
        // Ed-Fi upserts on the natural key: two documents with one key would overwrite each other.
        let key = format!(
            "{resource}|{}|{}|{}|{}|{}",
            doc["studentReference"], doc["schoolReference"], doc["sectionReference"], doc["sessionReference"], doc["eventDate"]
        );
        if !keys.insert(key.clone()) {
            errors.push(format!("{id}: natural key {key} twice"));
        }
    }
    ensure(errors.is_empty(), || {
        format!("{} problems, e.g.:\n  {}", errors.len(), errors.iter().take(8).cloned().collect::<Vec<_>>().join("\n  "))
    })?;
    ensure(lines.len() + weeks + exempt == finals.len(), || {
        format!(
            "{} documents + {weeks} WEEK + {exempt} EXEMPT skipped != {} final determinations; {said}",
            lines.len(),
            finals.len()
        )
    })?;
    ensure(said.contains(&format!("week_not_mapped={weeks}")), || format!("WEEK skips not counted: {said}"))?;
    ensure(by_resource.len() == 2, || format!("expected both resources: {by_resource:?}"))?;
    // Filters: one school, two days.
    let (some, _) =
        export_edfi(&url, dir.path(), "pine", &["--school", "ms-pine", "--from", "2020-10-06", "--to", "2020-10-07"])?;
    let want: i64 = pg
        .query(
            "SELECT count(*) FROM determinations WHERE school_id = 'ms-pine' AND date BETWEEN '2020-10-06' AND '2020-10-07'
               AND finality <> 'PROVISIONAL' AND scope <> 'WEEK' AND status <> 'EXEMPT'",
        )?
        .first()
        .map(|r| r.get(0))
        .unwrap_or(0);
    ensure(want > 0 && some.len() as i64 == want, || format!("--school/--from/--to: {} documents, expected {want}", some.len()))?;
    ensure(
        some.iter().all(|l| {
            let d = l["document"]["eventDate"].as_str().unwrap_or_default();
            l["document"]["schoolReference"]["schoolId"] == 255901002 && ("2020-10-06"..="2020-10-07").contains(&d)
        }),
        || "--school/--from/--to let other documents through".into(),
    )
}

/// `rollcall bench sink` on a small district: the processor's output goes
/// through the sink into the bench's own database and through a bare COPY;
/// the three rates are printed, the last line holds them, and the database
/// is dropped afterwards.
fn bench_sink_reports_its_rate(b: &str, db: &Database) -> TestResult {
    let before = Pg::connect(&db.url)?.query("SELECT count(*) FROM pg_database WHERE datname LIKE 'rollcall_bench_%'")?;
    let out = Command::new(rollcall())
        .args(["bench", "sink", "--brokers", b, "--database-url", &db.url, "--students", "40", "--days", "2"])
        .args(["--partitions", "2", "--batch-max-records", "500"])
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure(out.status.success(), || format!("bench sink exited with {}: {}", out.status, String::from_utf8_lossy(&out.stderr)))?;
    let last = stdout.lines().last().unwrap_or_default();
    let number_after = |label: &str| -> Option<f64> {
        let at = last.find(label)? + label.len();
        last[at..].trim_start().split(|c: char| !(c.is_ascii_digit() || c == '.')).next()?.parse().ok()
    };
    let (sink, copy, proc) = (number_after("sink:"), number_after("bare COPY"), number_after("processor"));
    ensure(matches!((sink, copy, proc), (Some(s), Some(c), Some(p)) if s > 0.0 && c > 0.0 && p > 0.0), || {
        format!("last line: {last}")
    })?;
    for row in ["processor (its output", "sink postgres", "bare binary COPY"] {
        ensure(stdout.contains(row), || format!("no `{row}` row: {stdout}"))?;
    }
    let after = Pg::connect(&db.url)?.query("SELECT count(*) FROM pg_database WHERE datname LIKE 'rollcall_bench_%'")?;
    ensure(before[0].get::<_, i64>(0) == after[0].get::<_, i64>(0), || "the bench left its database behind".into())
}

fn http_get(addr: &str, path: &str) -> Result<String, String> {
    Ok(support::http::get(addr, path, &[])?.body)
}

/// What every sink test is given.
pub fn area() -> Area {
    let tests = service_tests![[Need::Database, Need::Broker], |e| (e.broker(), e.database());
        district_flows_into_postgres,
        any_number_of_writers_writes_the_same_tables,
        out_of_order_versions_never_regress,
        tombstoned_keys_leave_the_tables,
        copy_and_staged_paths_agree,
        metrics_and_sigterm,
        edfi_export_has_the_resource_shapes,
        bench_sink_reports_its_rate,
        kill_nine_loses_and_doubles_nothing,
    ];
    Area {
        before: || {
            eprintln!("logs of the sink runs: {}", log_dir().display());
            rollcall();
        },
        after: |failed| {
            // The logs stay for a post-mortem when something failed or they were asked for.
            let _ = std::fs::remove_file(log_dir().join("rollcall"));
            if failed == 0 && std::env::var_os("ROLLCALL_TEST_LOG_DIR").is_none() {
                let _ = std::fs::remove_dir_all(log_dir());
            }
        },
        ..Area::new("sink", Duration::from_secs(1_200), tests)
    }
}
