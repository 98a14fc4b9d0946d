use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use rollcall_kafka::ProcessorConfig;
use rollcall_sim::SimConfig;

use crate::broker::{bare_consume, create_topics, processor_config, produce, produce_with, rate, ratio, run_processor, unique};
use crate::district::load_or_simulate;

#[derive(clap::Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, host:port[,host:port...] (the bench makes topics of its own).
    #[arg(long)]
    brokers: String,
    /// A file written by `rollcall simulate --out FILE`; without it, a district is simulated first.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Students in the simulated district.
    #[arg(long, default_value_t = 2000, conflicts_with = "file")]
    students: usize,
    /// Calendar days from Monday 2020-10-05.
    #[arg(long, default_value_t = 5, conflicts_with = "file")]
    days: u32,
    /// The simulation seed: the same seed, the same district.
    #[arg(long, default_value_t = 42, conflicts_with = "file")]
    seed: u64,
    /// Partitions of the keyed topics.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// `confluent`: also run the district Confluent-framed in and out
    /// (through --registry-url), beside the single-object run.
    #[arg(long, default_value = "single-object")]
    value_format: String,
    /// The schema registry's Confluent API, for --value-format confluent.
    #[arg(long, env = "ROLLCALL_REGISTRY_URL")]
    registry_url: Option<String>,
}

pub fn kafka(a: KafkaArgs) -> anyhow::Result<ExitCode> {
    let confluent = match a.value_format.as_str() {
        "single-object" => None,
        "confluent" => Some(
            a.registry_url
                .clone()
                .filter(|u| !u.trim().is_empty())
                .context("--value-format confluent needs --registry-url (scripts/registry.sh start prints one)")?,
        ),
        other => anyhow::bail!("--value-format: `{other}` is neither single-object nor confluent"),
    };
    let data =
        load_or_simulate(&a.file, &SimConfig { students: a.students, days: a.days, seed: a.seed, ..SimConfig::default() })?;
    let prefix = unique("kafka");
    let topics = create_topics(&a.brokers, &prefix, a.partitions)?;
    let keyed = produce(&a.brokers, &topics, &data, None)?;
    println!("input: {}; {keyed} records on the roster, report and activity topics", data.source);

    let (n, bytes, secs) = bare_consume(&a.brokers, &[&topics.activity, &topics.roster, &topics.reports])?;
    let bare = rate(n, secs);
    println!(
        "bare consumer (read_committed, fetch.wait.max.ms 100): {n} records ({bytes} bytes) in {secs:.3} s = {bare:.0} records/s"
    );

    let state = tempfile::tempdir().context("creating a state directory")?;
    let cfg = processor_config(&a.brokers, &prefix, "proc", state.path().to_path_buf(), Some(data.end));
    let proc_rate = bench_processor(cfg, keyed, n, bare, a.partitions, "processor")?;
    let Some(url) = confluent else {
        println!(
            "kafka: processor {proc_rate:.0} records/s, bare consumer {bare:.0} records/s, ratio {}",
            ratio(proc_rate / bare.max(1e-9))
        );
        return Ok(ExitCode::SUCCESS);
    };

    // The same district again, Confluent-framed in and out, through the registry.
    let prefix = unique("kafka-confluent");
    let topics = create_topics(&a.brokers, &prefix, a.partitions)?;
    let format = rollcall_kafka::replay::Format::confluent(&url);
    let codec = format.input_codec(&topics)?;
    let keyed_cf = produce_with(&a.brokers, &topics, &data, None, &codec)?;
    anyhow::ensure!(keyed_cf == keyed, "{keyed_cf} Confluent-framed records produced, {keyed} single-object");
    let (n_cf, bytes_cf, _) = bare_consume(&a.brokers, &[&topics.activity, &topics.roster, &topics.reports])?;
    println!("confluent inputs: {n_cf} records ({bytes_cf} bytes; single-object {bytes} bytes)");
    let state = tempfile::tempdir().context("creating a state directory")?;
    let mut cfg = processor_config(&a.brokers, &prefix, "proc", state.path().to_path_buf(), Some(data.end));
    cfg.value_format = rollcall_registry::ValueFormat::Confluent;
    cfg.registry_url = url;
    let cf_rate = bench_processor(cfg, keyed_cf, n_cf, bare, a.partitions, "processor, confluent")?;
    println!(
        "kafka: processor {proc_rate:.0} records/s single-object, {cf_rate:.0} records/s confluent (ratio {}), bare consumer {bare:.0} records/s",
        ratio(cf_rate / proc_rate.max(1e-9))
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs one processor over the bench's topics and prints what it did; its rate.
pub(crate) fn bench_processor(
    cfg: ProcessorConfig,
    keyed: u64,
    n: u64,
    bare: f64,
    partitions: i32,
    what: &str,
) -> anyhow::Result<f64> {
    let format = cfg.value_format;
    let r = run_processor(cfg, keyed, what)?;
    let wall = r.wall.as_secs_f64();
    let proc_rate = rate(r.stats.records, wall);
    println!(
        "{what} (exactly-once, replay clock, one instance, {partitions} partitions, {format}): {} records in {wall:.3} s from start to exit, {} transactions, {} determinations, {} outreach, {} dead letters",
        r.stats.records, r.stats.transactions, r.stats.determinations, r.stats.outreach, r.stats.dead_letters
    );
    if let Some(t) = r.watched.ready {
        let steady = rate(r.stats.records, (r.wall - t).as_secs_f64());
        println!(
            "  start-up (group join, partitions assigned and opened) {:.3} s; from then to exit: {steady:.0} records/s, ratio {}",
            t.as_secs_f64(),
            ratio(steady / bare.max(1e-9))
        );
    }
    if let Some((t, at)) = r.watched.first_commit {
        println!("  first transaction with input records committed at {:.3} s, holding {at} records", t.as_secs_f64());
    }
    anyhow::ensure!(r.stats.records == n, "the processor consumed {} records, the bare consumer {n}", r.stats.records);
    Ok(proc_rate)
}
