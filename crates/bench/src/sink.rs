use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context;
use rollcall_sink::metrics::SinkMetrics;
use rollcall_sink::postgres::Sink;
use rollcall_sink::{SinkConfig, SinkStats};

use crate::broker::{create_topics, processor_config, produce, run_processor, unique};
use crate::district::{simulate, DistrictOnBroker};

#[derive(clap::Args)]
pub struct BenchSinkArgs {
    #[command(flatten)]
    pub(crate) district: DistrictOnBroker,
    /// A server where the user may CREATE DATABASE: the bench writes into a
    /// database of its own and drops it afterwards.
    #[arg(long, env = "ROLLCALL_DATABASE_URL", hide_env_values = true)]
    pub(crate) database_url: String,
    /// A sink batch (one database transaction) closes after this many records.
    #[arg(long, default_value_t = SinkConfig::default().batch_max_records)]
    pub(crate) batch_max_records: usize,
    /// Database connections the sink writes with side by side (`rollcall sink postgres --writers`).
    #[arg(long, default_value_t = SinkConfig::default().writers)]
    pub(crate) writers: usize,
}

/// The processor's part of `rollcall bench sink`, measured by the caller:
/// its determinations and the seconds it took from start to exit.
pub(crate) struct ProcessorRun {
    pub determinations: u64,
    pub seconds: f64,
}

/// `rollcall bench sink`, once the processor has filled the topics under
/// `prefix`: the sink over them into a database of its own, then a bare
/// binary COPY of the same determinations into a fresh table with the
/// shape of `determination_versions` (its primary key and index; the
/// target's baseline), and one into a table without keys or indexes, in the
/// same database; the rates side by side.
pub(crate) fn bench_after_processor(a: &BenchSinkArgs, prefix: &str, proc_run: ProcessorRun) -> anyhow::Result<ExitCode> {
    let topics = rollcall_kafka::wire::Topics::with_prefix(prefix);
    let stamp = chrono::Utc::now().timestamp_millis();
    let db = format!("rollcall_bench_{stamp}");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let connect = |url: String| {
        rt.block_on(async move {
            let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
            let task = tokio::spawn(async move {
                let _ = conn.await;
            });
            anyhow::Ok((c, task))
        })
    };
    let admin = |sql: String| -> anyhow::Result<()> {
        let (c, task) = connect(a.database_url.clone())?;
        rt.block_on(c.batch_execute(&sql))?;
        drop(c);
        let _ = rt.block_on(task);
        Ok(())
    };
    admin(format!("CREATE DATABASE {db}"))?;
    let url = {
        let mut cfg: tokio_postgres::Config = a.database_url.parse()?;
        cfg.dbname(&db);
        config_url(&cfg)
    };
    let metrics = Arc::new(SinkMetrics::new());
    let measured = (|| -> anyhow::Result<(SinkStats, f64, usize, f64, f64)> {
        let cfg = SinkConfig {
            brokers: a.district.brokers.clone(),
            database_url: url.clone(),
            topic_prefix: prefix.to_string(),
            group: format!("bench-sink-{stamp}"),
            batch_max_records: a.batch_max_records,
            writers: a.writers,
            exit_when_idle: true,
            ..SinkConfig::default()
        };
        // Each timed part starts with no dirty buffers left by the one
        // before (best effort: CHECKPOINT needs a superuser or pg_checkpoint).
        let _ = admin("CHECKPOINT".into());
        let started = std::time::Instant::now();
        let st = Sink::new(cfg, Arc::new(AtomicBool::new(false)), metrics.clone())?.run()?;
        let sink_secs = started.elapsed().as_secs_f64();
        // The same rows, decoded beforehand, by one bare COPY (and its
        // commit) into a fresh table: once with determination_versions'
        // shape (its primary key and index), once with no key or index.
        let rows = rollcall_kafka::replay::read_outputs(&a.district.brokers, &topics)?.determinations;
        let (mut c, task) = connect(url.clone())?;
        let (keyed_secs, bare_secs) = rt.block_on(async {
            c.batch_execute(
                "CREATE TABLE copy_keyed (LIKE determination_versions INCLUDING ALL);
                 CREATE TABLE copy_bare (LIKE determination_versions INCLUDING DEFAULTS);",
            )
            .await?;
            let mut secs = Vec::new();
            for table in ["copy_keyed", "copy_bare"] {
                c.batch_execute("CHECKPOINT").await.ok();
                let started = std::time::Instant::now();
                let tx = c.transaction().await?;
                rollcall_sink::db::copy_determinations(&tx, table, &rows).await?;
                tx.commit().await?;
                secs.push(started.elapsed().as_secs_f64());
            }
            anyhow::Ok((secs[0], secs[1]))
        })?;
        drop(c);
        let _ = rt.block_on(task);
        Ok((st, sink_secs, rows.len(), keyed_secs, bare_secs))
    })();
    let dropped = admin(format!("DROP DATABASE {db}"));
    let (st, sink_secs, rows, keyed_secs, bare_secs) = measured?;
    dropped?;
    anyhow::ensure!(
        st.determination_versions == proc_run.determinations && rows as u64 == proc_run.determinations,
        "the processor made {} determinations, the sink wrote {} versions, the topic holds {rows}",
        proc_run.determinations,
        st.determination_versions
    );
    let rate = |n: u64, s: f64| n as f64 / s.max(1e-9);
    let (proc_rate, sink_rate, keyed_rate, bare_rate) = (
        rate(proc_run.determinations, proc_run.seconds),
        rate(st.determination_versions, sink_secs),
        rate(rows as u64, keyed_secs),
        rate(rows as u64, bare_secs),
    );
    let in_db = metrics.batch_seconds.get_sample_sum();
    println!(
        "{rows} determinations ({} sink records with outreach, {} batch transactions over {} writers); its writers spent {in_db:.3} s (summed) of its {sink_secs:.3} s in batch transactions ({:.0} determinations/s while writing, per writer)",
        st.records,
        st.batches,
        a.writers,
        rate(st.determination_versions, in_db)
    );
    println!("{:<50} {:>16} {:>10} {:>16}", "", "determinations/s", "seconds", "ratio to COPY");
    for (what, r, s) in [
        ("processor (its output, start to exit)", proc_rate, proc_run.seconds),
        ("sink postgres (start to exit)", sink_rate, sink_secs),
        ("bare binary COPY + commit (versions' keys)", keyed_rate, keyed_secs),
        ("bare binary COPY + commit (no keys)", bare_rate, bare_secs),
    ] {
        println!("{what:<50} {r:>16.0} {s:>10.3} {:>16.2}", r / keyed_rate.max(1e-9));
    }
    println!(
        "sink: {sink_rate:.0} determinations/s, bare COPY {keyed_rate:.0}/s (ratio {:.2}, target >= 0.5), processor {proc_rate:.0}/s (sink/processor {:.2}, target > 1); bare COPY with no keys {bare_rate:.0}/s (ratio {:.2})",
        sink_rate / keyed_rate.max(1e-9),
        sink_rate / proc_rate.max(1e-9),
        sink_rate / bare_rate.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}

/// A key=value connection string of a parsed configuration (its password included).
pub(crate) fn config_url(cfg: &tokio_postgres::Config) -> String {
    let q = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
    let mut parts = Vec::new();
    for h in cfg.get_hosts() {
        if let tokio_postgres::config::Host::Tcp(h) = h {
            parts.push(format!("host={}", q(h)));
        }
    }
    if let Some(p) = cfg.get_ports().first() {
        parts.push(format!("port={p}"));
    }
    if let Some(u) = cfg.get_user() {
        parts.push(format!("user={}", q(u)));
    }
    if let Some(pw) = cfg.get_password() {
        parts.push(format!("password={}", q(&String::from_utf8_lossy(pw))));
    }
    if let Some(d) = cfg.get_dbname() {
        parts.push(format!("dbname={}", q(d)));
    }
    parts.join(" ")
}

/// `rollcall bench sink`: a simulated district through the processor (its
/// determinations per second, start to exit), then the sink over the
/// processor's output topics and a bare COPY of the same rows
/// (crate::sink::bench_after_processor).
pub fn sink(a: crate::sink::BenchSinkArgs) -> anyhow::Result<ExitCode> {
    let data = simulate(&a.district.sim());
    let prefix = unique("sink");
    let topics = create_topics(&a.district.brokers, &prefix, a.district.partitions)?;
    let keyed = produce(&a.district.brokers, &topics, &data, None)?;
    println!("input: {}; {keyed} records on the roster, report and activity topics", data.source);
    let state = tempfile::tempdir().context("creating a state directory")?;
    let cfg = processor_config(&a.district.brokers, &prefix, "proc", state.path().to_path_buf(), Some(data.end));
    let r = run_processor(cfg, keyed, "processor")?;
    println!(
        "processor: {} records in {:.3} s, {} determinations, {} outreach",
        r.stats.records,
        r.wall.as_secs_f64(),
        r.stats.determinations,
        r.stats.outreach
    );
    let run = crate::sink::ProcessorRun { determinations: r.stats.determinations, seconds: r.wall.as_secs_f64() };
    crate::sink::bench_after_processor(&a, &prefix, run)
}
