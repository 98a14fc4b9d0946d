//! Faults of the machine under the processor (issue #14): its state
//! directory fills up, it runs in a memory cgroup, and its input comes in a
//! burst at ten times the steady rate.
//!
//! Each test compares the processor's committed outputs with an
//! uninterrupted reference run over the same district (tests/kafka.rs).
//! They need root: a tmpfs is mounted for the state directory, a memory
//! cgroup is made for the processor; where that is refused the test records
//! itself as skipped (tests/support/skip.rs). Mounts and cgroups are undone
//! by guards, whatever happens.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rollcall_kafka::topics::create_topics;
use rollcall_kafka::wire::Topics;
use rollcall_scenario::Scenario;

use crate::kafka::{compare, decisions_of, drain, outputs, processor_command, produce_district, scrape, spawn_processor, tail};
use crate::support::harness::{Area, Need};
use crate::support::*;

/// Why this process may not mount or make cgroups, if it may not.
fn not_root() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|l| l.split_whitespace().nth(1));
    match euid {
        Some("0") => None,
        Some(u) => Some(format!("needs root (to mount a tmpfs or make a memory cgroup); running as uid {u}")),
        None => Some("cannot tell the user id from /proc/self/status".into()),
    }
}

/// The bytes a directory takes on its disk (as `du` counts them).
fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            }
            total += m.blocks() * 512;
        }
    }
    total
}

/// A tmpfs mounted on a fresh directory, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl Tmpfs {
    /// `Err`: the mount was refused (the reason to skip).
    fn mount(bytes: u64) -> Result<Tmpfs, String> {
        let parent = tempfile::tempdir().map_err(|e| e.to_string())?;
        let dir = parent.path().join("state");
        std::fs::create_dir(&dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={}k", bytes.div_ceil(1024)), "tmpfs"])
            .arg(&dir)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount -t tmpfs refused: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Tmpfs { dir, _parent: parent })
    }

    fn resize(&self, bytes: u64) -> TestResult {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={}k", bytes.div_ceil(1024))])
            .arg(&self.dir)
            .output()
            .map_err(|e| format!("mount -o remount: {e}"))?;
        ensure(out.status.success(), || format!("mount -o remount refused: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.dir).status().is_ok_and(|s| s.success());
        if !ok {
            // Still busy (a child not yet reaped): detach it now.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// The district's outputs from an uninterrupted run, and the size of the
/// state directory it left.
fn reference_with_state(b: &str, s: &Scenario, name: &str) -> Result<(Vec<String>, u64), String> {
    let prefix = unique(name);
    let topics = Topics::with_prefix(&prefix);
    create_topics(b, &topics, 6, 1).map_err(|e| format!("{e:#}"))?;
    produce_district(b, &topics, s)?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    run_to_end(b, &prefix, dir.path(), "ref", s, "reference run")?;
    let size = disk_usage(dir.path());
    let outputs = outputs(b, &topics)?;
    eprintln!("  reference: {} events -> {} output records, state dir {} KiB", s.events.len(), outputs.len(), size >> 10);
    Ok((outputs, size))
}

/// A processor run over `state` to the district's end instant, until idle.
fn run_to_end(b: &str, prefix: &str, state: &Path, instance: &str, s: &Scenario, what: &str) -> TestResult {
    let out =
        spawn_processor(b, prefix, state, instance, &s.now.to_rfc3339(), true)?.wait_with_output().map_err(|e| e.to_string())?;
    ensure(out.status.success(), || format!("{what} exited with {}: {}", out.status, tail(&String::from_utf8_lossy(&out.stderr))))
}

/// The district again on fresh topics (6 partitions).
fn district_topics(b: &str, s: &Scenario, name: &str) -> Result<(String, Topics), String> {
    let prefix = unique(name);
    let topics = Topics::with_prefix(&prefix);
    create_topics(b, &topics, 6, 1).map_err(|e| format!("{e:#}"))?;
    produce_district(b, &topics, s)?;
    Ok((prefix, topics))
}

/// Waits up to `limit` for the child; `None` if it was still running (it is then killed).
fn wait_for(child: &mut Child, limit: Duration) -> Result<Option<std::process::ExitStatus>, String> {
    let started = Instant::now();
    loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(Some(st));
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Outputs read part-way: each one is one of the reference's, none twice.
fn consistent_subset(reference: &[String], got: &[String], what: &str) -> TestResult {
    let ref_set: std::collections::BTreeSet<&String> = reference.iter().collect();
    let foreign: Vec<_> = got.iter().filter(|o| !ref_set.contains(o)).take(3).collect();
    let dups: Vec<_> = got.windows(2).filter(|w| w[0] == w[1]).map(|w| &w[0]).take(3).collect();
    ensure(foreign.is_empty() && dups.is_empty(), || {
        format!("{what}: {} records; not in the reference e.g. {foreign:?}; duplicated e.g. {dups:?}", got.len())
    })
}

/// The state directory fills up: the processor stops with a clear error
/// (not a panic, not a hang), what it committed is a consistent part of
/// the reference's outputs, and once the disk has room again a restarted
/// processor on the same state directory finishes with the reference's
/// outputs exactly.
fn state_disk_fills_up(b: &str) -> TestResult {
    const TEST: &str = "state_disk_fills_up";
    if let Some(why) = not_root() {
        skip::skip(TEST, &why);
        return Ok(());
    }
    let s = district(2000, 5, 21);
    let (reference, state_bytes) = reference_with_state(b, &s, "disk-ref")?;
    let (prefix, topics) = district_topics(b, &s, "disk")?;
    let small = state_bytes / 3;
    let fs = match Tmpfs::mount(small) {
        Ok(fs) => fs,
        Err(why) => {
            skip::skip(TEST, &why);
            return Ok(());
        }
    };
    eprintln!("  state dir on a tmpfs of {} KiB (a third of the reference's)", small >> 10);
    let until = s.now.to_rfc3339();
    let mut child = spawn_processor(b, &prefix, &fs.dir, "disk", &until, true)?;
    let log = drain(child.stderr.take());
    let status = wait_for(&mut child, Duration::from_secs(300))?;
    let said = log.join();
    let Some(status) = status else {
        return Err(format!("the processor did not stop within 300 s of a full state directory; it said:\n{}", tail(&said)));
    };
    ensure(!status.success(), || format!("the processor finished on {} KiB: the state fit", small >> 10))?;
    let lower = said.to_lowercase();
    ensure(lower.contains("no space left on device") || lower.contains("enospc"), || {
        format!("exit {status}, but its error does not say the disk is full:\n{}", tail(&said))
    })?;
    ensure(lower.contains("rocksdb") || said.contains(&*fs.dir.to_string_lossy()), || {
        format!("exit {status}, but its error names neither RocksDB nor the state directory:\n{}", tail(&said))
    })?;
    ensure(!said.contains("panicked") && !said.contains("stack backtrace"), || {
        format!("the processor panicked on a full disk:\n{}", tail(&said))
    })?;
    let error_line = said.lines().rfind(|l| l.to_lowercase().contains("space")).unwrap_or_default();
    eprintln!("  exit {status}: {}", error_line.trim());
    let partial = outputs(b, &topics)?;
    consistent_subset(&reference, &partial, "after the disk filled up")?;
    ensure(!partial.is_empty(), || "the disk filled before the first batch was committed: nothing mid-run was tested".into())?;
    eprintln!(
        "  committed before it stopped: {} of {} output records, each one the reference's, none twice",
        partial.len(),
        reference.len()
    );
    let enough = state_bytes * 4 + (64 << 20);
    fs.resize(enough)?;
    eprintln!("  tmpfs grown to {} KiB; the processor started again on the same state dir", enough >> 10);
    let mut again = spawn_processor(b, &prefix, &fs.dir, "disk", &until, true)?;
    let log = drain(again.stderr.take());
    let status = wait_for(&mut again, Duration::from_secs(300))?;
    let said = log.join();
    match status {
        None => return Err(format!("the restarted processor did not finish within 300 s:\n{}", tail(&said))),
        Some(st) => ensure(st.success(), || format!("the restarted processor exited with {st}:\n{}", tail(&said)))?,
    }
    let got = outputs(b, &topics)?;
    compare(&reference, &got, "after the disk was given room again")?;
    eprintln!("  after the restart: {} output records, equal to the reference's", got.len());
    Ok(())
}

/// A memory cgroup (v1 or v2) of its own, removed when dropped.
struct Cgroup {
    dir: PathBuf,
    root: PathBuf,
    v2: bool,
}

impl Cgroup {
    /// `Err`: no memory controller can be had here (the reason to skip).
    fn create(limit: u64) -> Result<Cgroup, String> {
        let v1 = Path::new("/sys/fs/cgroup/memory");
        let v2 = Path::new("/sys/fs/cgroup");
        let (root, is_v2) = if v1.join("memory.limit_in_bytes").is_file() {
            (v1.to_path_buf(), false)
        } else if std::fs::read_to_string(v2.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|w| w == "memory"))
        {
            (v2.to_path_buf(), true)
        } else {
            return Err("no cgroup v1 or v2 memory controller under /sys/fs/cgroup".into());
        };
        let dir = root.join(format!("rollcall-faults-{}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| format!("cannot make a cgroup {}: {e}", dir.display()))?;
        let cg = Cgroup { dir, root, v2: is_v2 };
        let file = if is_v2 { "memory.max" } else { "memory.limit_in_bytes" };
        std::fs::write(cg.dir.join(file), limit.to_string()).map_err(|e| format!("cannot set {file}: {e}"))?;
        Ok(cg)
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.join(file)).unwrap_or_default()
    }

    /// A counter `name N` in a flat-keyed file.
    fn field(&self, file: &str, name: &str) -> Option<u64> {
        self.read(file).lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
    }

    /// The most memory the group's processes used, bytes.
    fn peak(&self) -> Option<u64> {
        self.read(if self.v2 { "memory.peak" } else { "memory.max_usage_in_bytes" }).trim().parse().ok()
    }

    /// Whether the group is out of memory now, and how many of its processes the OOM killer killed.
    fn oom(&self) -> (bool, u64) {
        if self.v2 {
            (false, self.field("memory.events", "oom_kill ").unwrap_or(0))
        } else {
            (
                self.field("memory.oom_control", "under_oom ") == Some(1),
                self.field("memory.oom_control", "oom_kill ").unwrap_or(0),
            )
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Whatever is left in it goes back to the root group, then it goes.
        for pid in self.read("cgroup.procs").lines() {
            let _ = std::fs::write(self.root.join("cgroup.procs"), pid);
        }
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("  could not remove the cgroup {}", self.dir.display());
    }
}

/// The values of every series of the metric `name` in a /metrics text.
fn series<'a>(text: &'a str, name: &'a str) -> impl Iterator<Item = i64> + 'a {
    text.lines()
        .filter(move |l| l.strip_prefix(name).is_some_and(|r| r.starts_with('{') || r.starts_with(' ')))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as i64)
}

/// The largest value of a gauge over its series in a /metrics text.
fn gauge_max(text: &str, name: &str) -> Option<i64> {
    series(text, name).max()
}

/// The processor in a memory cgroup limited well above what its RocksDB
/// caps allow (a 16 MiB block cache, 1 MiB memtables; limit 256 MiB) finishes a district
/// with the reference's outputs, is not OOM-killed, and its block-cache
/// gauge stays within the cap.
fn memory_caps_hold_under_a_limit(b: &str) -> TestResult {
    const TEST: &str = "memory_caps_hold_under_a_limit";
    const CACHE: u64 = 16 << 20;
    const LIMIT: u64 = 256 << 20;
    if let Some(why) = not_root() {
        skip::skip(TEST, &why);
        return Ok(());
    }
    let cg = match Cgroup::create(LIMIT) {
        Ok(cg) => cg,
        Err(why) => {
            skip::skip(TEST, &why);
            return Ok(());
        }
    };
    let s = district(2000, 5, 23);
    let (reference, _) = reference_with_state(b, &s, "mem-ref")?;
    let (prefix, topics) = district_topics(b, &s, "mem")?;
    let state = tempfile::tempdir().map_err(|e| e.to_string())?;
    let metrics_addr = free_addr()?;
    // The processor's command, run by a shell that first joins the cgroup.
    let mut base = processor_command(b, &prefix, state.path(), "mem", &s.now.to_rfc3339(), false)?;
    base.env("ROLLCALL_METRICS_ADDR", &metrics_addr);
    let mut c = Command::new("sh");
    c.arg("-c").arg("echo $$ > \"$0\" && exec \"$@\"").arg(cg.dir.join("cgroup.procs")).arg(base.get_program());
    c.args(base.get_args());
    for (k, v) in base.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    // Small memtables, flushed often: the reads then go through the block cache.
    c.env("ROLLCALL_STORE__BLOCK_CACHE_BYTES", CACHE.to_string())
        .env("ROLLCALL_STORE__WRITE_BUFFER_BYTES", (1 << 20).to_string());
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| e.to_string())?;
    let log = drain(child.stderr.take());
    let started = Instant::now();
    let (mut cache_max, mut scrapes) = (0i64, 0usize);
    let mut last_check = Instant::now() - Duration::from_secs(10);
    let result = loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            let (under, killed) = cg.oom();
            break Err(format!("the processor exited with {st} before finishing (under_oom {under}, oom_kill {killed})"));
        }
        if let Some(text) = scrape(&metrics_addr) {
            if let Some(v) = gauge_max(&text, "rollcall_rocksdb_block_cache_usage_bytes") {
                cache_max = cache_max.max(v);
                scrapes += 1;
            }
        }
        if last_check.elapsed() >= Duration::from_secs(3) {
            last_check = Instant::now();
            let out = outputs(b, &topics)?;
            if out.len() >= reference.len() {
                // One more scrape at the end, after the gauges' next refresh (every 5 s), then the comparison.
                std::thread::sleep(Duration::from_secs(6));
                if let Some(v) = scrape(&metrics_addr).and_then(|t| gauge_max(&t, "rollcall_rocksdb_block_cache_usage_bytes")) {
                    cache_max = cache_max.max(v);
                    scrapes += 1;
                }
                break compare(&reference, &out, "in a memory cgroup");
            }
            if started.elapsed() > Duration::from_secs(400) {
                break Err(format!("not finished within 400 s: {} of {} output records", out.len(), reference.len()));
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let alive = child.try_wait().map_err(|e| e.to_string())?.is_none();
    let (under, killed) = cg.oom();
    let peak = cg.peak();
    let _ = child.kill();
    let _ = child.wait();
    let said = log.join();
    result.map_err(|e| format!("{e}\n{}", tail(&said)))?;
    eprintln!(
        "  limit {} MiB, block cache {} MiB: peak usage {} MiB, block-cache gauge max {:.1} MiB over {scrapes} scrapes, \
         under_oom {}, oom_kill {killed}",
        LIMIT >> 20,
        CACHE >> 20,
        peak.map_or("?".into(), |p| (p >> 20).to_string()),
        cache_max as f64 / (1 << 20) as f64,
        u8::from(under)
    );
    ensure(alive, || "the processor was gone at the end".into())?;
    ensure(!under && killed == 0, || format!("out of memory: under_oom {under}, oom_kill {killed}"))?;
    ensure(scrapes > 0, || "the block-cache gauge was never read from /metrics".into())?;
    ensure(cache_max as u64 <= CACHE, || format!("block-cache gauge {cache_max} above the cap {CACHE}"))?;
    ensure(peak.is_some_and(|p| p <= LIMIT), || format!("peak usage {peak:?} above the limit {LIMIT}"))
}

/// The summed `rollcall_consumer_lag_records` of a /metrics text; `None`
/// before the processor has any.
fn total_lag(text: &str) -> Option<i64> {
    let lags: Vec<i64> = series(text, "rollcall_consumer_lag_records").collect();
    (!lags.is_empty()).then(|| lags.iter().sum())
}

/// What an input run leaves that does not depend on how its input fell into
/// batches over time: the latest decision of every determination key, the
/// outreach raised (without when), the dead letters (without their offsets).
/// A paced input is batched unlike one read all at once, and so has other
/// provisional versions in between and other creation times.
fn settled(b: &str, prefix: &str, topics: &Topics) -> Result<Vec<String>, String> {
    let out = rollcall_kafka::replay::read_outputs(b, topics).map_err(|e| format!("{e:#}"))?;
    let mut v: Vec<String> = decisions_of(&out).into_iter().map(|(k, d)| format!("decision {k}: {d}")).collect();
    for o in out.outreach {
        v.push(format!(
            "outreach {} {} {:?} {:?} {:?} {:?} {}..{}",
            o.trigger_id, o.student_id, o.kind, o.recipient_role, o.staff_id, o.section_id, o.window_start, o.window_end
        ));
    }
    for d in out.dead_letters {
        let source = d.source.strip_prefix(prefix).unwrap_or(&d.source);
        let topic = source.rsplit_once('@').map_or(source, |(t, _)| t);
        v.push(format!("dead letter {topic} {:?} {}", d.event_id, d.error_kind));
    }
    v.sort();
    Ok(v)
}

/// A burst at ten times the steady input rate is absorbed. A long-lived
/// processor (replay clock without an end instant, so that it only follows
/// its input) reads a district whose events are produced at a steady rate
/// R, then at 10 R for 3 s, then at R again; R is a quarter of what the
/// processor reads, so that R is absorbed and 10 R is not. The summed
/// consumer lag, read from /metrics every 200 ms, rises in the burst and
/// falls back near its steady level while the input still comes; a last run
/// with the district's end instant closes it, and what it settled equals
/// the reference's: nothing is lost.
fn burst_is_absorbed(b: &str) -> TestResult {
    use rdkafka::producer::Producer;
    use rollcall_model::avro::AvroRecord;
    let s = district(600, 5, 10);
    let prefix = unique("burst-ref");
    let ref_topics = Topics::with_prefix(&prefix);
    create_topics(b, &ref_topics, 6, 1).map_err(|e| format!("{e:#}"))?;
    // No bad records here: what a record refused for an unknown student
    // becomes depends on the clock when it is read, which a paced input moves.
    rollcall_kafka::replay::produce_scenario(b, &ref_topics, &s).map_err(|e| format!("{e:#}"))?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let started = Instant::now();
    run_to_end(b, &prefix, dir.path(), "ref", &s, "reference run")?;
    let ref_secs = started.elapsed().as_secs_f64();
    let reference = settled(b, &prefix, &ref_topics)?;

    let prefix = unique("burst");
    let topics = Topics::with_prefix(&prefix);
    create_topics(b, &topics, 6, 1).map_err(|e| format!("{e:#}"))?;
    // Calendars and roster at once; the reports and events
    // paced, in the order of their times: the replay clock follows them, and
    // a report of late in the week read first would move it past the
    // events still to come.
    let mut rest = s.clone();
    rest.events.clear();
    rest.absence_reports.clear();
    rollcall_kafka::replay::produce_scenario(b, &topics, &rest).map_err(|e| format!("{e:#}"))?;
    let mut events: Vec<(chrono::DateTime<chrono::Utc>, &str, &str, Vec<u8>)> = Vec::new();
    for r in &s.absence_reports {
        events.push((r.reported_at, &topics.reports, &r.student_id, r.to_single_object().map_err(|e| e.to_string())?));
    }
    for a in &s.events {
        events.push((
            a.arrives_at,
            &topics.activity,
            &a.event.student_id,
            a.event.to_single_object().map_err(|e| e.to_string())?,
        ));
    }
    // Stable: a report before the events of its instant, as a topic's
    // records are merged by the processor.
    events.sort_by_key(|e| e.0);
    let state = tempfile::tempdir().map_err(|e| e.to_string())?;
    let addr = free_addr()?;
    let mut child = processor_command(b, &prefix, state.path(), "burst", "", false)?
        .env("ROLLCALL_METRICS_ADDR", &addr)
        .spawn()
        .map_err(|e| e.to_string())?;
    let log = drain(child.stderr.take());
    let t0 = Instant::now();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (stop, addr) = (stop.clone(), addr.clone());
        std::thread::spawn(move || {
            let mut series = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if let Some(lag) = scrape(&addr).as_deref().and_then(total_lag) {
                    series.push((t0.elapsed().as_secs_f64(), lag));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            series
        })
    };
    let fed = (|| -> Result<(f64, f64, f64), String> {
        // The processor has read the roster and reports before the events start.
        let ready = Instant::now();
        while scrape(&addr).as_deref().and_then(total_lag) != Some(0) {
            ensure(ready.elapsed() < Duration::from_secs(120), || "the processor did not read the roster within 120 s".into())?;
            std::thread::sleep(Duration::from_millis(200));
        }
        let n = events.len();
        let (pre, burst, post) = (8.0, 3.0, 15.0);
        // A quarter of what the reference run read, and no more than lets
        // the phases last as long as said.
        let rate = (n as f64 / ref_secs / 4.0).min(n as f64 / (pre + 10.0 * burst + post));
        let p = rollcall_kafka::replay::producer(b).map_err(|e| format!("{e:#}"))?;
        let start = t0.elapsed().as_secs_f64();
        let due = |t: f64| -> f64 {
            let t = t - start;
            rate * t.min(pre) + 10.0 * rate * (t - pre).clamp(0.0, burst) + rate * (t - pre - burst).max(0.0)
        };
        let mut sent = 0;
        while sent < n {
            let target = (due(t0.elapsed().as_secs_f64()) as usize).min(n);
            for (at, topic, key, value) in &events[sent..target] {
                rollcall_kafka::replay::send(&p, topic, key, value, *at).map_err(|e| format!("{e:#}"))?;
            }
            sent = sent.max(target);
            p.poll(Duration::ZERO);
            std::thread::sleep(Duration::from_millis(20));
        }
        // Every delivery reported (rdkafka's flush counts its time per event
        // served, not on the clock, and gives up early with this many).
        let flushing = Instant::now();
        while p.in_flight_count() > 0 {
            ensure(flushing.elapsed() < Duration::from_secs(60), || {
                format!("{} events not delivered within 60 s", p.in_flight_count())
            })?;
            p.poll(Duration::from_millis(100));
        }
        let produced = t0.elapsed().as_secs_f64();
        eprintln!(
            "  {n} reports and events: R {rate:.0}/s for {pre} s, 10 R for {burst} s, then R (all produced at {:.1} s)",
            produced - start
        );
        let waiting = Instant::now();
        while scrape(&addr).as_deref().and_then(total_lag) != Some(0) {
            ensure(waiting.elapsed() < Duration::from_secs(180), || {
                "the processor did not catch up within 180 s of the input's end".into()
            })?;
            std::thread::sleep(Duration::from_millis(200));
        }
        // A few samples at the caught-up level.
        std::thread::sleep(Duration::from_secs(1));
        Ok((start, start + pre, produced))
    })();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let series = sampler.join().map_err(|_| "the lag sampler panicked".to_string())?;
    let _ = child.kill();
    let _ = child.wait();
    let said = log.join();
    let (start, burst_at, produced) = fed.map_err(|e| format!("{e}\n{}", tail(&said)))?;
    // The district's end, on the same state directory.
    run_to_end(b, &prefix, state.path(), "burst", &s, "the closing run")?;
    let got = settled(b, &prefix, &topics)?;
    eprintln!("  settled: {} (reference {})", got.len(), reference.len());
    let before = series.iter().filter(|(t, _)| (start..burst_at).contains(t)).map(|(_, l)| *l).max().unwrap_or(0);
    let (peak_t, peak) =
        series.iter().filter(|(t, _)| *t >= burst_at).fold((0.0, i64::MIN), |m, &(t, l)| if l > m.1 { (t, l) } else { m });
    let near = (2 * before).max(peak / 10);
    let fell_to = series.iter().filter(|(t, _)| *t > peak_t && *t <= produced).map(|(_, l)| *l).min();
    let shown: Vec<String> =
        series.iter().filter(|(t, _)| *t >= start - 1.0).map(|(t, l)| format!("{:.1}:{l}", t - start)).collect();
    eprintln!("  lag (s:records): {}", shown.join(" "));
    eprintln!(
        "  lag before the burst at most {before}, peak {peak} at {:.1} s, lowest after the peak while producing {fell_to:?} \
         (near the steady level: <= {near})",
        peak_t - start
    );
    compare(&reference, &got, "after the burst (latest decisions, outreach, dead letters)")?;
    ensure(peak > before, || format!("the lag did not rise in the burst: peak {peak}, before it {before}"))?;
    ensure(fell_to.is_some_and(|l| l <= near), || {
        format!("the lag did not fall back near the steady level (<= {near}) while the input still came: lowest {fell_to:?}")
    })
}

/// The fault tests; they share the runner's broker.
pub fn area() -> Area {
    let tests = service_tests![[Need::Broker], |e| (e.broker());
        state_disk_fills_up,
        memory_caps_hold_under_a_limit,
        burst_is_absorbed,
    ];
    Area::new("faults", Duration::from_secs(1_800), tests)
}
