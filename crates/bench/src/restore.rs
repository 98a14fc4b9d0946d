use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::ProgressBar;
use rollcall_kafka::metrics::Metrics;
use rollcall_kafka::Processor;

use crate::broker::{create_topics, high_watermarks, processor_config, produce, rate, run_processor, unique, watch};
use crate::district::{simulate, DistrictOnBroker};
use crate::progress::bar;

pub fn restore(a: DistrictOnBroker) -> anyhow::Result<ExitCode> {
    let data = simulate(&a.sim());
    let prefix = unique("restore");
    let topics = create_topics(&a.brokers, &prefix, a.partitions)?;
    let keyed = produce(&a.brokers, &topics, &data, None)?;
    println!("input: {}; {keyed} input records", data.source);
    let first = tempfile::tempdir().context("creating a state directory")?;
    let fill = processor_config(&a.brokers, &prefix, "fill", first.path().to_path_buf(), Some(data.end));
    let changelog = fill.topics().changelog;
    let r = run_processor(fill, keyed, "filling the changelog")?;
    let highs = high_watermarks(&a.brokers, &[&changelog])?;
    println!(
        "first run: {} records in {:.1} s; changelog {} offsets over {} partitions",
        r.stats.records,
        r.wall.as_secs_f64(),
        highs.values().sum::<i64>(),
        highs.len()
    );
    // The same instance of the same group (the changelog is the group's, and
    // its static member id takes the partitions back at once), started again
    // with an empty state directory: every partition comes from the changelog.
    let empty = tempfile::tempdir().context("creating a state directory")?;
    let expected = highs.values().sum::<i64>().max(0) as u64;
    let cfg = processor_config(&a.brokers, &prefix, "fill", empty.path().to_path_buf(), Some(data.end));
    let metrics = Arc::new(Metrics::new());
    let stop_watch = Arc::new(AtomicBool::new(false));
    let bar = bar(expected, "restoring");
    let started = Instant::now();
    let shown = {
        let (m, bar, stop) = (metrics.clone(), bar.clone(), stop_watch.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                bar.set_position(m.restore_records.get());
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let watcher = watch(metrics.clone(), topics.clone(), ProgressBar::hidden(), stop_watch.clone(), started);
    let result = Processor::with_metrics(cfg, Arc::new(AtomicBool::new(false)), metrics).and_then(|mut p| p.run());
    stop_watch.store(true, Ordering::SeqCst);
    let w = watcher.join().map_err(|_| anyhow::anyhow!("the watcher thread panicked"))?;
    let _ = shown.join();
    bar.finish_and_clear();
    let stats = result.context("the restoring processor")?;
    let (Some(t0), Some(t1)) = (w.restore_began, w.restore_ended) else {
        anyhow::bail!("the restore was not seen (readiness never went from rebalancing to ready)")
    };
    let secs = (t1 - t0).as_secs_f64();
    anyhow::ensure!(stats.restored_records > 0, "nothing was restored");
    println!(
        "second instance, empty state directory: {} state records restored in {secs:.3} s (assignment to ready; {:.1} s from start to exit), {} records consumed after it",
        stats.restored_records,
        started.elapsed().as_secs_f64(),
        stats.records
    );
    println!(
        "restore: {:.0} records/s ({} records, {} partitions)",
        rate(stats.restored_records, secs),
        stats.restored_records,
        highs.len()
    );
    Ok(ExitCode::SUCCESS)
}
