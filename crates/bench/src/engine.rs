use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use rollcall_engine::{ApplyError, Engine, EngineConfig, Evaluation, KvStore, Table};
use rollcall_sim::file::Entry;
use rollcall_sim::SimConfig;
use rollcall_store::{RocksStore, StateFiles, StoreConfig};

use crate::district::{load, simulate, Loaded};
use crate::progress::bar;

#[derive(clap::Args)]
pub struct EngineArgs {
    /// A file written by `rollcall simulate --out FILE`; without it, a district is simulated first.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Students in the simulated district.
    #[arg(long, default_value_t = 2000, conflicts_with = "file")]
    students: usize,
    /// Calendar days from Monday 2020-10-05.
    #[arg(long, default_value_t = 14, conflicts_with = "file")]
    days: u32,
    /// The simulation seed: the same seed, the same district.
    #[arg(long, default_value_t = 42, conflicts_with = "file")]
    seed: u64,
    /// Commit the state store after this many input records: the Kafka
    /// processor's batch (`batch_max_records`, 20,000 by default).
    #[arg(long, default_value_t = 20_000)]
    commit_every: usize,
    /// Keep the RocksDB state here instead of a temporary directory (must be empty).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Which touched windows the engine evaluates: `incremental` skips a
    /// window when nothing its rule reads has changed; `reference`
    /// evaluates every one. Both give the same digest.
    #[arg(long, value_enum, default_value_t = EvaluationArg::Incremental)]
    evaluation: EvaluationArg,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum EvaluationArg {
    Incremental,
    Reference,
}

impl From<EvaluationArg> for Evaluation {
    fn from(e: EvaluationArg) -> Self {
        match e {
            EvaluationArg::Incremental => Evaluation::Incremental,
            EvaluationArg::Reference => Evaluation::Reference,
        }
    }
}

#[derive(clap::Args)]
pub struct StateArgs {
    /// Students in the simulated district.
    #[arg(long, default_value_t = 1000)]
    students: usize,
    /// Calendar days from Monday 2020-10-05 (four weeks: about a month of school days).
    #[arg(long, default_value_t = 28)]
    days: u32,
    /// The simulation seed: the same seed, the same district.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Commit the state store after this many input records.
    #[arg(long, default_value_t = 5000)]
    commit_every: usize,
}

/// What a replay did.
pub(crate) struct Replayed {
    /// Activity events and absence reports given to the engine (duplicates and refusals included).
    pub(crate) inputs: u64,
    pub(crate) refused: u64,
    pub(crate) outputs: u64,
    /// Every output's Avro datum, in emission order, folded into one hash
    /// (not timed): a faster engine must give the same digest.
    pub(crate) digest: u64,
    pub(crate) elapsed: Duration,
}

/// Folds a batch of outputs into `digest`; returns how long that took.
pub(crate) fn fold_outputs(digest: &mut u64, outputs: Vec<rollcall_engine::Output>) -> anyhow::Result<Duration> {
    use rollcall_model::avro::AvroRecord;
    let t = Instant::now();
    for o in outputs {
        let bytes = match &o {
            rollcall_engine::Output::Determination(d) => d.to_avro_datum()?,
            rollcall_engine::Output::Outreach(t) => t.to_avro_datum()?,
            // Refused events are outputs too: the digest must see them.
            rollcall_engine::Output::Refused(r) => r.event.to_avro_datum()?,
            rollcall_engine::Output::Forgotten(f) => f.determination_keys.join("\n").into_bytes(),
        };
        *digest = xxhash_rust::xxh3::xxh3_64_with_seed(&bytes, *digest);
    }
    Ok(t.elapsed())
}

/// Loads the world (untimed), then applies every report and event in order,
/// advancing the clock to each arrival, and finally to `end` (timed).
pub(crate) fn replay<S: KvStore>(engine: &mut Engine<S>, data: &Loaded, commit_every: usize) -> anyhow::Result<Replayed> {
    let mut timed_from = 0;
    for (i, e) in data.entries.iter().enumerate() {
        match e {
            Entry::Calendar(c) => {
                engine.load_calendar(c.clone()).map_err(|e| anyhow::anyhow!("calendar {}: {e}", c.school_id))?
            }
            Entry::Student(s) => {
                engine.upsert_student(s.clone()).map_err(|e| anyhow::anyhow!("student {}: {e}", s.student_id))?
            }
            _ => {
                timed_from = i;
                break;
            }
        }
        timed_from = i + 1;
    }
    engine.commit()?;
    let timed = &data.entries[timed_from..];
    let bar = bar(timed.len() as u64, "engine");
    let mut r = Replayed { inputs: 0, refused: 0, outputs: 0, digest: 0, elapsed: Duration::ZERO };
    let mut untimed = Duration::ZERO;
    let started = Instant::now();
    for (i, e) in timed.iter().enumerate() {
        r.inputs += 1;
        if !apply_timed(engine, e)? {
            r.refused += 1;
        }
        if (i + 1) % commit_every.max(1) == 0 {
            let outputs = engine.take_outputs();
            r.outputs += outputs.len() as u64;
            untimed += fold_outputs(&mut r.digest, outputs)?;
            engine.commit()?;
            bar.set_position(i as u64 + 1);
        }
    }
    engine.advance(data.end)?;
    engine.flush()?;
    let outputs = engine.take_outputs();
    r.outputs += outputs.len() as u64;
    untimed += fold_outputs(&mut r.digest, outputs)?;
    engine.commit()?;
    r.elapsed = started.elapsed().saturating_sub(untimed);
    bar.finish_and_clear();
    Ok(r)
}

/// Applies a report or an event at its arrival instant (the clock advanced
/// to it first); whether the engine took it (`false`: refused). A calendar
/// or roster record here is out of order.
pub(crate) fn apply_timed<S: KvStore>(engine: &mut Engine<S>, e: &Entry) -> anyhow::Result<bool> {
    let applied = match e {
        Entry::Event { event, arrives_at } => {
            engine.advance(*arrives_at)?;
            engine.apply_event(event).map(|_| ())
        }
        Entry::Report { report, arrives_at } => {
            engine.advance(*arrives_at)?;
            engine.apply_report(report).map(|_| ())
        }
        Entry::Calendar(_) | Entry::Student(_) => anyhow::bail!("a calendar or roster record after the first event"),
    };
    match applied {
        Ok(()) => Ok(true),
        Err(ApplyError::Rejected(_)) => Ok(false),
        Err(ApplyError::Fatal(e)) => Err(e.into()),
    }
}

/// RocksDB's memory as the run left it, then the state on disk once every
/// table is compacted (`bench state`, `bench semester`).
pub(crate) struct StateReading {
    pub block_cache: u64,
    pub pinned: u64,
    pub memtables: u64,
    pub table_readers: u64,
    pub files: StateFiles,
    /// SST bytes of each table that has any.
    pub by_table: Vec<(&'static str, u64)>,
}

pub(crate) fn read_state(store: &RocksStore) -> anyhow::Result<StateReading> {
    let block_cache = store.table_property(Table::Day, "rocksdb.block-cache-usage").unwrap_or(0);
    let pinned = store.table_property(Table::Day, "rocksdb.block-cache-pinned-usage").unwrap_or(0);
    let memtables = store.property_sum("rocksdb.cur-size-all-mem-tables");
    let table_readers = store.property_sum("rocksdb.estimate-table-readers-mem");
    store.compact()?;
    let files = store.state_files()?;
    let by_table = Table::ALL
        .iter()
        .map(|t| (t.name(), store.table_property(*t, "rocksdb.total-sst-files-size").unwrap_or(0)))
        .filter(|(_, b)| *b > 0)
        .collect();
    Ok(StateReading { block_cache, pinned, memtables, table_readers, files, by_table })
}

pub(crate) fn temp_or(dir: &Option<PathBuf>) -> anyhow::Result<(Option<tempfile::TempDir>, PathBuf)> {
    Ok(match dir {
        Some(d) => (None, d.clone()),
        None => {
            let t = tempfile::tempdir().context("creating a temporary state directory")?;
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    })
}

pub(crate) fn engine(args: EngineArgs) -> anyhow::Result<ExitCode> {
    let data = match &args.file {
        Some(f) => load(f)?,
        None => simulate(&SimConfig { students: args.students, days: args.days, seed: args.seed, ..SimConfig::default() }),
    };
    let (_tmp, dir) = temp_or(&args.state_dir)?;
    let store = RocksStore::open(&dir, &StoreConfig::default())?;
    let config = EngineConfig { evaluation: args.evaluation.into(), ..EngineConfig::default() };
    let mut engine = Engine::open(store, config)?;
    let r = replay(&mut engine, &data, args.commit_every)?;
    let stats = engine.stats().clone();
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    println!("input: {}", data.source);
    println!(
        "{} inputs ({} events applied, {} duplicates, {} reports, {} refused) in {:.3} s, one thread, RocksDB state, commit every {}",
        r.inputs, stats.events, stats.duplicates, stats.reports, r.refused, secs, args.commit_every
    );
    println!(
        "{} outputs ({} determinations, {} outreach), digest {:016x}",
        r.outputs, stats.determinations, stats.outreach, r.digest
    );
    println!(
        "windows touched: {} evaluated, {} skipped ({:.1} %: nothing their rule reads had changed)",
        stats.windows_evaluated,
        stats.windows_skipped,
        100.0 * stats.windows_skipped as f64 / (stats.windows_evaluated + stats.windows_skipped).max(1) as f64
    );
    println!("engine: {:.0} events/s", r.inputs as f64 / secs);
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
}

pub(crate) fn state(args: StateArgs) -> anyhow::Result<ExitCode> {
    let cfg = SimConfig { students: args.students, days: args.days, seed: args.seed, ..SimConfig::default() };
    let data = simulate(&cfg);
    // Student-days: each student's school's instructional days in the span.
    let mut school_days = std::collections::HashMap::new();
    let mut student_days = 0u64;
    for e in &data.entries {
        match e {
            Entry::Calendar(c) => {
                school_days.insert(c.school_id.clone(), c.days.iter().filter(|d| d.instructional).count() as u64);
            }
            Entry::Student(s) => student_days += school_days.get(&s.school_id).copied().unwrap_or(0),
            _ => break,
        }
    }
    let store_cfg = StoreConfig::default();
    let tmp = tempfile::tempdir().context("creating a temporary state directory")?;
    let store = RocksStore::open(tmp.path(), &store_cfg)?;
    let mut engine = Engine::open(store, EngineConfig::default())?;
    let r = replay(&mut engine, &data, args.commit_every)?;
    let store = engine.into_store();
    let StateReading { block_cache, pinned, memtables, table_readers: readers, files, by_table } = read_state(&store)?;
    println!("input: {} ({} inputs in {:.2} s)", data.source, r.inputs, r.elapsed.as_secs_f64());
    println!(
        "memory caps: block cache {} (shared by every table), write buffers {} x {} per table x {} tables = {}",
        mib(store_cfg.block_cache_bytes as u64),
        mib(store_cfg.write_buffer_bytes as u64),
        store_cfg.max_write_buffers,
        Table::ALL.len(),
        mib(store_cfg.write_buffer_bytes as u64 * store_cfg.max_write_buffers as u64 * Table::ALL.len() as u64)
    );
    println!(
        "memory measured after the run: block cache {} ({} pinned), memtables {}, table readers {}",
        mib(block_cache),
        mib(pinned),
        mib(memtables),
        mib(readers)
    );
    let per_table: Vec<String> = by_table.iter().map(|(t, b)| format!("{t} {b}")).collect();
    println!("after compaction: SST bytes by table: {}", per_table.join(", "));
    println!(
        "state on disk: {} bytes ({} SST + {} WAL) for {} students x school days = {} student-days",
        files.sst + files.wal,
        files.sst,
        files.wal,
        args.students,
        student_days
    );
    let per = (files.sst + files.wal) as f64 / student_days.max(1) as f64;
    println!("state: {per:.0} bytes per student-day");
    Ok(ExitCode::SUCCESS)
}
