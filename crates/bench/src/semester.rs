//! `rollcall bench semester`: whether the state stops growing once the
//! correction horizon purges as the weeks close. A simulated district is
//! streamed through the engine on RocksDB a day at a time (nothing of it is
//! held in memory but the roster and the reports), and the state is
//! measured once every school has had each `--at` number of school days,
//! and at the end. Each measurement commits, compacts every table, and reads
//! the files on disk, RocksDB's memory and the process's resident memory.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use rollcall_engine::{Engine, EngineConfig};
use rollcall_sim::file::{self, Entry};
use rollcall_sim::{SimConfig, Simulation};
use rollcall_store::{RocksStore, StoreConfig};

use crate::engine::{apply_timed, read_state};
use crate::progress::bar;

#[derive(clap::Args)]
pub struct SemesterArgs {
    /// Students in the simulated district.
    #[arg(long, default_value_t = 10_000)]
    students: usize,
    /// Calendar days from Monday 2020-10-05 (130 hold 90 school days in every school).
    #[arg(long, default_value_t = 130)]
    days: u32,
    /// Measure the state once every school has had this many school days
    /// (comma-separated; and always at the end).
    #[arg(long, value_delimiter = ',', default_values_t = [30, 45, 60])]
    at: Vec<usize>,
    /// The simulation seed: the same seed, the same district.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Inputs between commits of the engine's state (the processor's batch).
    #[arg(long, default_value_t = 20_000)]
    commit_every: usize,
}

/// The state at one point of the run.
struct Measured {
    label: String,
    /// School days behind the point, fewest and most over the schools.
    school_days: (usize, usize),
    sst: u64,
    wal: u64,
    by_table: Vec<(&'static str, u64)>,
    block_cache: u64,
    memtables: u64,
    table_readers: u64,
    rss: u64,
}

pub fn semester(a: SemesterArgs) -> anyhow::Result<ExitCode> {
    let cfg = SimConfig { students: a.students, days: a.days, seed: a.seed, ..SimConfig::default() };
    eprintln!("simulating {} students over {} days from {} (seed {})", cfg.students, cfg.days, cfg.start, cfg.seed);
    let sim = Simulation::new(&cfg);
    let school_dates: Vec<Vec<NaiveDate>> =
        sim.calendars().iter().map(|c| c.days.iter().filter(|d| d.instructional).map(|d| d.date).collect()).collect();
    let fewest = school_dates.iter().map(Vec::len).min().unwrap_or(0);
    let mut at = a.at.clone();
    at.sort_unstable();
    at.dedup();
    anyhow::ensure!(
        at.first().is_some_and(|n| *n >= 1) && at.last().is_some_and(|n| *n < fewest),
        "--at {at:?}: every school needs more school days than each of these, and the fewest here is {fewest} (give more --days)"
    );
    // Each point: the day after the last school's n-th school day.
    let point_at = |n: usize| {
        let date = school_dates.iter().filter_map(|d| d.get(n - 1)).max().copied().unwrap_or(cfg.start);
        utc_midnight(date + Duration::days(1))
    };
    let mut pending: std::collections::VecDeque<(usize, DateTime<Utc>)> = at.iter().map(|n| (*n, point_at(*n))).collect();
    let days_before = |t: DateTime<Utc>| -> (usize, usize) {
        let n = school_dates.iter().map(|d| d.iter().filter(|x| utc_midnight(**x + Duration::days(1)) <= t).count());
        (n.clone().min().unwrap_or(0), n.max().unwrap_or(0))
    };

    let store_cfg = StoreConfig::default();
    let tmp = tempfile::tempdir().context("creating a temporary state directory")?;
    let store = RocksStore::open(tmp.path(), &store_cfg)?;
    let mut engine = Engine::open(store, EngineConfig::default())?;
    let bar = bar(0, "semester");
    let started = Instant::now();
    let (mut inputs, mut refused) = (0u64, 0u64);
    let mut points = Vec::new();
    for e in file::entries(&sim) {
        match e {
            Entry::Calendar(c) => {
                let id = c.school_id.clone();
                engine.load_calendar(c).map_err(|e| anyhow::anyhow!("calendar {id}: {e}"))?
            }
            Entry::Student(s) => {
                let id = s.student_id.clone();
                engine.upsert_student(s).map_err(|e| anyhow::anyhow!("student {id}: {e}"))?
            }
            e => {
                let arrives_at = match &e {
                    Entry::Event { arrives_at, .. } | Entry::Report { arrives_at, .. } => *arrives_at,
                    Entry::Calendar(_) | Entry::Student(_) => anyhow::bail!("a calendar or roster record after the first event"),
                };
                while let Some((n, t)) = pending.front().copied().filter(|(_, t)| arrives_at >= *t) {
                    pending.pop_front();
                    engine.advance(t)?;
                    engine.take_outputs();
                    engine.commit()?;
                    points.push(measure(&engine, format!("after {n} school days"), days_before(t))?);
                }
                if !apply_timed(&mut engine, &e)? {
                    refused += 1;
                }
                inputs += 1;
            }
        }
        if inputs > 0 && inputs.is_multiple_of(a.commit_every.max(1) as u64) {
            engine.take_outputs();
            engine.commit()?;
            bar.set_position(inputs);
        }
    }
    engine.advance(sim.end())?;
    engine.flush()?;
    engine.take_outputs();
    engine.commit()?;
    bar.finish_and_clear();
    anyhow::ensure!(pending.is_empty(), "the run ended before its points at {pending:?}");
    points.push(measure(&engine, "at the end".into(), days_before(sim.end()))?);
    println!(
        "input: simulated: {} students, {} days, seed {}; {inputs} inputs ({refused} refused) in {:.1} s",
        a.students,
        a.days,
        a.seed,
        started.elapsed().as_secs_f64()
    );
    println!();
    println!("| point | school days | state on disk | SST | WAL | block cache | memtables | table readers | resident memory |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for p in &points {
        let days = if p.school_days.0 == p.school_days.1 {
            p.school_days.0.to_string()
        } else {
            format!("{}–{}", p.school_days.0, p.school_days.1)
        };
        println!(
            "| {} | {days} | {} | {} | {} | {} | {} | {} | {} |",
            p.label,
            p.sst + p.wal,
            p.sst,
            p.wal,
            p.block_cache,
            p.memtables,
            p.table_readers,
            p.rss
        );
    }
    println!();
    for p in &points {
        let tables: Vec<String> = p.by_table.iter().map(|(t, b)| format!("{t} {b}")).collect();
        println!("SST bytes by table, {}: {}", p.label, tables.join(", "));
    }
    let (first, last) = (&points[0], &points[points.len() - 1]);
    let disk_ratio = (last.sst + last.wal) as f64 / (first.sst + first.wal).max(1) as f64;
    let memory = |p: &Measured| p.block_cache + p.memtables + p.table_readers;
    let memory_ratio = memory(last) as f64 / memory(first).max(1) as f64;
    println!(
        "semester: state on disk {} bytes at the end, {} after {} school days (ratio {disk_ratio:.2}); RocksDB memory ratio {memory_ratio:.2}",
        last.sst + last.wal,
        first.sst + first.wal,
        at[0]
    );
    Ok(ExitCode::SUCCESS)
}

fn utc_midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_hms_opt(0, 0, 0).map_or(DateTime::<Utc>::MIN_UTC, |t| t.and_utc())
}

/// Compacts every table and reads the state's size and memory.
fn measure(engine: &Engine<RocksStore>, label: String, school_days: (usize, usize)) -> anyhow::Result<Measured> {
    let r = read_state(engine.store())?;
    Ok(Measured {
        label,
        school_days,
        sst: r.files.sst,
        wal: r.files.wal,
        by_table: r.by_table,
        block_cache: r.block_cache,
        memtables: r.memtables,
        table_readers: r.table_readers,
        rss: resident_bytes(),
    })
}

/// This process's resident memory (VmRSS; Linux, zero elsewhere).
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()))
        })
        .map_or(0, |kb| kb * 1024)
}
