//! `rollcall bench scale`: what partitioning buys. One simulated district is
//! produced once to topics of `--partitions` partitions; then one processor
//! instance consumes it in a group of its own, and two instances consume it
//! again in a second group, side by side, sharing the partitions.
//!
//! On a small machine that also runs the broker, unpinned instances show
//! nothing: every thread of both floats over the same cores as the broker.
//! So each instance runs on a thread pinned to a core of its own (its
//! librdkafka, RocksDB and apply threads inherit the pin) with one apply
//! thread, the single instance on the first core and the pair on the first
//! two. The broker is not pinned; its share of the machine is reported
//! beside the rates, since on two cores it takes from both instances.
//!
//! The clock of each run is from the instances' start to the moment every
//! input record is committed (the sum of the instances' committed counts
//! reaches the topics' records), so that an instance's shutdown, or the
//! changelog restore of partitions handed over when the other exits, is
//! not counted; the time to the last exit is printed beside it.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rollcall_kafka::metrics::Metrics;
use rollcall_kafka::wire::Topics;
use rollcall_kafka::{Processor, ProcessorConfig};
use rollcall_sim::SimConfig;

use crate::broker::{consumed, create_topics, processor_config, produce, rate, ratio, unique};
use crate::district::load_or_simulate;
use crate::progress::bar;

#[derive(clap::Args)]
pub struct ScaleArgs {
    /// Kafka bootstrap servers, host:port[,host:port...] (the bench makes topics of its own).
    #[arg(long)]
    brokers: String,
    /// A file written by `rollcall simulate --out FILE`; without it, a district is simulated first.
    #[arg(long)]
    file: Option<std::path::PathBuf>,
    /// Students in the simulated district.
    #[arg(long, default_value_t = 4000, conflicts_with = "file")]
    students: usize,
    /// Calendar days from Monday 2020-10-05.
    #[arg(long, default_value_t = 5, conflicts_with = "file")]
    days: u32,
    /// The simulation seed: the same seed, the same district.
    #[arg(long, default_value_t = 42, conflicts_with = "file")]
    seed: u64,
    /// Partitions of the keyed topics, shared by the two instances.
    #[arg(long, default_value_t = 12)]
    partitions: i32,
    /// Pin each instance to a core of its own with one apply thread
    /// (`off`: unpinned, apply threads one per core, as `rollcall run` does).
    #[arg(long, default_value = "on")]
    pin: String,
}

/// What one group's run did.
struct GroupRun {
    instances: usize,
    records: u64,
    /// Each instance's committed input records.
    per_instance: Vec<u64>,
    /// Start to every input record committed.
    to_committed: Duration,
    /// Start to the last instance's exit.
    to_exit: Duration,
    /// CPU seconds of this process (the instances) and of the rest of the
    /// machine (the broker, mostly), over `to_exit`.
    own_cpu: f64,
    rest_cpu: f64,
}

impl GroupRun {
    fn rate(&self) -> f64 {
        rate(self.records, self.to_committed.as_secs_f64())
    }
}

pub fn scale(a: ScaleArgs) -> anyhow::Result<ExitCode> {
    let pin = match a.pin.as_str() {
        "on" => true,
        "off" => false,
        other => anyhow::bail!("--pin: `{other}` is neither on nor off"),
    };
    let cores = online_cores();
    let pin = pin && cores >= 2;
    if a.pin == "on" && !pin {
        println!("this machine has {cores} core(s): the instances run unpinned");
    }
    let data =
        load_or_simulate(&a.file, &SimConfig { students: a.students, days: a.days, seed: a.seed, ..SimConfig::default() })?;
    let prefix = unique("scale");
    let topics = create_topics(&a.brokers, &prefix, a.partitions)?;
    let keyed = produce(&a.brokers, &topics, &data, None)?;
    println!("input: {}; {keyed} records on the roster, report and activity topics ({} partitions)", data.source, a.partitions);

    let one = run_group(&a.brokers, &prefix, "one", 1, keyed, data.end, pin)?;
    let two = run_group(&a.brokers, &prefix, "two", 2, keyed, data.end, pin)?;

    let pinning = if pin { "each pinned to a core of its own, one apply thread" } else { "unpinned" };
    println!();
    println!("| instances ({pinning}) | records | s to all committed | records/s | committed by each | s to last exit | CPU s, instances | CPU s, rest of the machine (broker) |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in [&one, &two] {
        let each = r.per_instance.iter().map(u64::to_string).collect::<Vec<_>>().join(" + ");
        println!(
            "| {} | {} | {:.3} | {:.0} | {each} | {:.3} | {:.2} | {:.2} |",
            r.instances,
            r.records,
            r.to_committed.as_secs_f64(),
            r.rate(),
            r.to_exit.as_secs_f64(),
            r.own_cpu,
            r.rest_cpu
        );
    }
    println!();
    println!(
        "scale: one instance {:.0} records/s, two instances {:.0} records/s, ratio {}",
        one.rate(),
        two.rate(),
        ratio(two.rate() / one.rate().max(1e-9))
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs `instances` processors in one new group over the bench's topics,
/// each on a thread of its own, to their exits.
fn run_group(
    brokers: &str,
    prefix: &str,
    group: &str,
    instances: usize,
    keyed: u64,
    end: chrono::DateTime<chrono::Utc>,
    pin: bool,
) -> anyhow::Result<GroupRun> {
    let states: Vec<tempfile::TempDir> =
        (0..instances).map(|_| tempfile::tempdir().context("creating a state directory")).collect::<Result<_, _>>()?;
    let metrics: Vec<Arc<Metrics>> = (0..instances).map(|_| Arc::new(Metrics::new())).collect();
    let what = format!("{instances} instance(s)");
    let progress = bar(keyed, &what);
    let (cpu0, machine0) = (process_cpu_seconds(), machine_busy_seconds());
    let started = Instant::now();
    let handles: Vec<std::thread::JoinHandle<anyhow::Result<()>>> = (0..instances)
        .map(|i| {
            let mut cfg: ProcessorConfig = processor_config(brokers, prefix, group, states[i].path().to_path_buf(), Some(end));
            cfg.instance_id = format!("{group}-{i}");
            if pin {
                cfg.apply_threads = 1;
            }
            let m = metrics[i].clone();
            std::thread::Builder::new()
                .name(format!("instance-{i}"))
                .spawn(move || {
                    if pin {
                        pin_to_core(i)?;
                    }
                    let mut p = Processor::with_metrics(cfg, Arc::new(AtomicBool::new(false)), m)?;
                    p.run()?;
                    Ok(())
                })
                .context("starting an instance's thread")
        })
        .collect::<Result<_, _>>()?;
    // Every input committed: the instances' committed counts add up.
    let topics = &Topics::with_prefix(prefix);
    let mut to_committed = None;
    while handles.iter().any(|h| !h.is_finished()) {
        let n: u64 = metrics.iter().map(|m| consumed(m, topics)).sum();
        progress.set_position(n);
        if to_committed.is_none() && n >= keyed {
            to_committed = Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let to_exit = started.elapsed();
    progress.finish_and_clear();
    for (i, h) in handles.into_iter().enumerate() {
        h.join().map_err(|_| anyhow::anyhow!("instance {i}'s thread panicked"))?.with_context(|| format!("instance {i}"))?;
    }
    let own_cpu = process_cpu_seconds() - cpu0;
    let rest_cpu = (machine_busy_seconds() - machine0 - own_cpu).max(0.0);
    let per_instance: Vec<u64> = metrics.iter().map(|m| consumed(m, topics)).collect();
    let records: u64 = per_instance.iter().sum();
    anyhow::ensure!(
        records == keyed,
        "{group}: the instances committed {records} input records ({per_instance:?}), the topics hold {keyed}"
    );
    Ok(GroupRun { instances, records, per_instance, to_committed: to_committed.unwrap_or(to_exit), to_exit, own_cpu, rest_cpu })
}

/// Pins the calling thread to `core`; the threads it starts inherit it.
fn pin_to_core(core: usize) -> anyhow::Result<()> {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET writes within it
    // for core < CPU_SETSIZE, and sched_setaffinity reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        anyhow::ensure!(core < libc::CPU_SETSIZE as usize, "core {core} is beyond CPU_SETSIZE");
        libc::CPU_SET(core, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error()).with_context(|| format!("pinning an instance to core {core}"));
        }
    }
    Ok(())
}

fn online_cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Clock ticks per second of /proc's CPU times.
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// CPU seconds of this process so far, its exited threads included
/// (/proc/self/stat's utime and stime; Linux, zero elsewhere).
fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // The fields after the command's closing parenthesis: utime and stime are
    // the 12th and 13th of them.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let f: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok());
    match (field(11), field(12)) {
        (Some(u), Some(s)) => (u + s) / ticks_per_second(),
        _ => 0.0,
    }
}

/// CPU seconds every core of the machine has spent busy so far (/proc/stat).
fn machine_busy_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else { return 0.0 };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else { return 0.0 };
    let f: Vec<f64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq: all but idle and iowait
    // (guest time is in user; steal is the hypervisor's, not this machine's).
    let busy: f64 = f.iter().take(7).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, v)| v).sum();
    busy / ticks_per_second()
}
