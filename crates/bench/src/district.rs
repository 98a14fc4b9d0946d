use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use rollcall_sim::file::{self, Entry, SimReader};
use rollcall_sim::{SimConfig, Simulation};

use crate::progress::bar;

/// A district in memory, in file order, and the instant after its last entry.
pub(crate) struct Loaded {
    pub(crate) entries: Vec<Entry>,
    pub(crate) end: DateTime<Utc>,
    pub(crate) source: String,
}

pub(crate) fn simulate(cfg: &SimConfig) -> Loaded {
    eprintln!("simulating {} students over {} days from {} (seed {})", cfg.students, cfg.days, cfg.start, cfg.seed);
    let sim = Simulation::new(cfg);
    let spinner = ProgressBar::new_spinner();
    spinner.set_style(
        ProgressStyle::with_template("{spinner} simulating: {pos} records  {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let mut entries = Vec::new();
    for e in file::entries(&sim) {
        entries.push(e);
        if entries.len() % 8192 == 0 {
            spinner.set_position(entries.len() as u64);
        }
    }
    spinner.finish_and_clear();
    Loaded {
        entries,
        end: sim.end(),
        source: format!("simulated: {} students, {} days, seed {}", cfg.students, cfg.days, cfg.seed),
    }
}

pub(crate) fn load_or_simulate(file: &Option<PathBuf>, cfg: &SimConfig) -> anyhow::Result<Loaded> {
    match file {
        Some(f) => load(f),
        None => Ok(simulate(cfg)),
    }
}

pub(crate) fn load(path: &Path) -> anyhow::Result<Loaded> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = bar(len, "reading");
    let reader = SimReader::new(bar.wrap_read(BufReader::with_capacity(1 << 20, f)))
        .with_context(|| format!("reading {}", path.display()))?;
    let meta = reader.meta().clone();
    let mut entries = Vec::new();
    for e in reader {
        entries.push(e.with_context(|| format!("reading {}", path.display()))?);
    }
    bar.finish_and_clear();
    Ok(Loaded {
        entries,
        end: meta.end,
        source: format!("{} ({} students, {} days, seed {})", path.display(), meta.students, meta.days, meta.seed),
    })
}

/// A simulated district on fresh topics of a broker (`bench restore`, `bench peers`).
#[derive(clap::Args)]
pub struct DistrictOnBroker {
    /// Kafka bootstrap servers, host:port[,host:port...] (the bench makes topics of its own).
    #[arg(long)]
    pub(crate) brokers: String,
    /// Students in the simulated district.
    #[arg(long, default_value_t = 2000)]
    pub(crate) students: usize,
    /// Calendar days from Monday 2020-10-05.
    #[arg(long, default_value_t = 5)]
    pub(crate) days: u32,
    /// The simulation seed: the same seed, the same district.
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    /// Partitions of the keyed topics.
    #[arg(long, default_value_t = 6)]
    pub(crate) partitions: i32,
}

impl DistrictOnBroker {
    pub(crate) fn sim(&self) -> SimConfig {
        SimConfig { students: self.students, days: self.days, seed: self.seed, ..SimConfig::default() }
    }
}
