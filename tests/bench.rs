//! Each `rollcall bench` sub-command and `rollcall simulate --out` run once
//! on a tiny district: the figure is on the last line, in its format, and
//! above zero. Nothing here is timed. The broker benches (kafka, latency,
//! restore, gateway) need ROLLCALL_TEST_BROKERS (scripts/test.sh sets it) and are
//! recorded as skipped without it; `bench peers` also needs
//! ROLLCALL_TEST_PEERS=1 (Maven, Java, a Python venv; scripts/test.sh sets it).

use std::process::Command;

use crate::support::harness::Area;
use crate::support::skip;

fn rollcall(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_rollcall")).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "rollcall {args:?}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// The number in a last line `<prefix>N<suffix>`.
fn figure(stdout: &str, prefix: &str, suffix: &str) -> f64 {
    let last = stdout.lines().last().unwrap_or_default();
    let n = last
        .strip_prefix(prefix)
        .and_then(|r| r.strip_suffix(suffix))
        .unwrap_or_else(|| panic!("last line `{last}` is not `{prefix}N{suffix}`"));
    assert!(n.chars().all(|c| c.is_ascii_digit()), "`{n}` in `{last}` is not a whole number");
    n.parse().unwrap()
}

fn bench_engine_replays_a_simulated_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("district.avro");
    let file = file.to_str().unwrap();
    let out = rollcall(&["simulate", "--students", "30", "--days", "3", "--out", file]);
    assert!(out.contains("events"), "{out}");
    let out = rollcall(&["bench", "engine", "--file", file]);
    assert!(figure(&out, "engine: ", " events/s") > 0.0, "{out}");
    // The reference evaluation gives the same outputs, skipping nothing.
    let reference = rollcall(&["bench", "engine", "--file", file, "--evaluation", "reference"]);
    let digest = |out: &str| out.split("digest ").nth(1).and_then(|s| s.split_whitespace().next()).map(str::to_string);
    assert!(digest(&out).is_some() && digest(&out) == digest(&reference), "{out}\n{reference}");
    let skipped = |out: &str| -> u64 {
        let line = out.lines().find(|l| l.starts_with("windows touched: ")).unwrap_or_else(|| panic!("{out}"));
        let n = line.split(" evaluated, ").nth(1).and_then(|r| r.split(' ').next()).unwrap_or_else(|| panic!("{line}"));
        n.parse().unwrap_or_else(|e| panic!("{line}: {e}"))
    };
    assert!(skipped(&out) > 0, "{out}");
    assert_eq!(skipped(&reference), 0, "{reference}");
    // Without a file, it simulates one first.
    let out = rollcall(&["bench", "engine", "--students", "20", "--days", "2"]);
    assert!(figure(&out, "engine: ", " events/s") > 0.0, "{out}");
}

fn bench_state_reports_bytes_per_student_day() {
    let out = rollcall(&["bench", "state", "--students", "20", "--days", "7"]);
    assert!(out.contains("memory caps: block cache"), "{out}");
    assert!(figure(&out, "state: ", " bytes per student-day") > 0.0, "{out}");
}

/// The broker for the broker benches, or None (and a recorded skip) without one.
fn test_brokers(test: &str) -> Option<String> {
    match std::env::var("ROLLCALL_TEST_BROKERS") {
        Ok(b) if !b.trim().is_empty() => Some(b),
        _ => {
            skip::skip(test, "ROLLCALL_TEST_BROKERS is not set (scripts/test.sh starts a broker and sets it)");
            None
        }
    }
}

/// The numbers of a last line, in order (`0.95x` and `1.2` count; words do not).
fn numbers(line: &str) -> Vec<f64> {
    line.split([' ', ',', '(', ')']).filter_map(|w| w.trim_end_matches('x').parse::<f64>().ok()).collect()
}

fn last_line(stdout: &str) -> &str {
    stdout.lines().last().unwrap_or_default()
}

fn bench_kafka_compares_the_processor_with_a_bare_consumer() {
    let Some(b) = test_brokers("bench_kafka_compares_the_processor_with_a_bare_consumer") else { return };
    let out = rollcall(&["bench", "kafka", "--brokers", &b, "--students", "20", "--days", "2", "--partitions", "2"]);
    let last = last_line(&out);
    assert!(
        last.starts_with("kafka: processor ")
            && last.contains(" records/s, bare consumer ")
            && last.contains(" records/s, ratio "),
        "{out}"
    );
    let n = numbers(last);
    assert!(n.len() == 3 && n.iter().all(|x| *x > 0.0), "{out}");
}

/// A point per `--at`, then the end, each with state on disk; the last line
/// compares the end with the first point.
fn bench_semester_measures_the_state_as_it_goes() {
    let out = rollcall(&["bench", "semester", "--students", "30", "--days", "60", "--at", "10,20"]);
    let last = last_line(&out);
    assert!(
        last.starts_with("semester: state on disk ")
            && last.contains(" bytes at the end, ")
            && last.contains(" after 10 school days (ratio ")
            && last.contains("RocksDB memory ratio "),
        "{out}"
    );
    for (label, days) in [("after 10 school days", Some(10.0)), ("after 20 school days", Some(20.0)), ("at the end", None)] {
        let row =
            out.lines().find(|l| l.starts_with(&format!("| {label} | "))).unwrap_or_else(|| panic!("no row {label}: {out}"));
        let cells: Vec<&str> = row.split('|').map(str::trim).filter(|c| !c.is_empty()).collect();
        if let Some(d) = days {
            // The fewest school days of any school, then (if they differ) the most.
            assert_eq!(cells[1].split('–').next().and_then(|n| n.parse::<f64>().ok()), Some(d), "{row}");
        }
        let disk: u64 = cells[2].parse().unwrap_or_else(|_| panic!("{row}"));
        assert!(disk > 0, "state on disk at {label}: {row}");
    }
}

/// Both groups consume every record exactly once, the pair sharing the
/// partitions between them.
fn bench_scale_runs_one_instance_then_two() {
    let Some(b) = test_brokers("bench_scale_runs_one_instance_then_two") else { return };
    let out = rollcall(&["bench", "scale", "--brokers", &b, "--students", "20", "--days", "2", "--partitions", "4"]);
    let last = last_line(&out);
    assert!(
        last.starts_with("scale: one instance ")
            && last.contains(" records/s, two instances ")
            && last.contains(" records/s, ratio "),
        "{out}"
    );
    let n = numbers(last);
    assert!(n.len() == 3 && n.iter().all(|x| *x > 0.0), "{out}");
    let records = |instances: &str| -> Vec<f64> {
        let row = out.lines().find(|l| l.starts_with(&format!("| {instances} | "))).unwrap_or_else(|| panic!("{out}"));
        row.split('|').map(str::trim).filter(|c| !c.is_empty()).take(2).filter_map(|c| c.parse().ok()).collect()
    };
    let (one, two) = (records("1"), records("2"));
    assert!(one.len() == 2 && one[1] > 0.0 && one[1] == two[1], "the same records in both groups: {out}");
    let split = out.lines().find(|l| l.starts_with("| 2 | ")).and_then(|l| l.split('|').nth(5)).unwrap_or_default();
    let shares: Vec<f64> = split.split('+').filter_map(|x| x.trim().parse().ok()).collect();
    assert!(shares.len() == 2 && shares.iter().sum::<f64>() == two[1], "two instances' shares add up to the records: {out}");
}

fn bench_latency_reports_percentiles() {
    let Some(b) = test_brokers("bench_latency_reports_percentiles") else { return };
    let out = rollcall(&["bench", "latency", "--brokers", &b, "--seconds", "2", "--rate", "20", "--partitions", "2"]);
    let last = last_line(&out);
    assert!(last.starts_with("latency: p50 ") && last.contains(" s, p99 ") && last.ends_with(" determinations"), "{out}");
    let n = numbers(last);
    assert!(n.len() == 3 && n.iter().all(|x| *x > 0.0), "{out}");
    assert_eq!(n[2], 40.0, "every deciding event gives one provisional determination: {out}");
}

fn bench_restore_reports_records_per_second() {
    let Some(b) = test_brokers("bench_restore_reports_records_per_second") else { return };
    let out = rollcall(&["bench", "restore", "--brokers", &b, "--students", "20", "--days", "2", "--partitions", "2"]);
    let last = last_line(&out);
    assert!(last.starts_with("restore: ") && last.contains(" records/s (") && last.ends_with(" partitions)"), "{out}");
    let n = numbers(last);
    assert!(n.len() == 3 && n.iter().all(|x| *x > 0.0) && n[2] == 2.0, "{out}");
}

/// Needs Maven, Java and Python (a venv): only with ROLLCALL_TEST_PEERS=1,
/// which scripts/test.sh sets.
fn bench_peers_compares_with_kafka_streams_quix_and_flink() {
    const TEST: &str = "bench_peers_compares_with_kafka_streams_quix_and_flink";
    if std::env::var("ROLLCALL_TEST_PEERS").as_deref() != Ok("1") {
        skip::skip(TEST, "ROLLCALL_TEST_PEERS is not 1 (the peers need Maven, Java and a Python venv)");
        return;
    }
    let Some(b) = test_brokers(TEST) else { return };
    let out = rollcall(&["bench", "peers", "--brokers", &b, "--students", "20", "--days", "2", "--partitions", "2"]);
    let last = last_line(&out);
    assert!(
        last.starts_with("peers: rollcall ")
            && last.contains(", kafka-streams ")
            && last.contains(", quix ")
            && last.contains(", flink ")
            && !last.contains("not measured"),
        "{out}"
    );
    let n = numbers(last);
    assert!(n.len() == 7 && n.iter().all(|x| *x > 0.0), "{out}");
}

fn bench_gateway_compares_the_gateway_with_a_bare_producer() {
    let Some(b) = test_brokers("bench_gateway_compares_the_gateway_with_a_bare_producer") else { return };
    let out = rollcall(&[
        "bench",
        "gateway",
        "--brokers",
        &b,
        "--events",
        "500",
        "--batch",
        "50",
        "--connections",
        "4",
        "--rate",
        "50",
        "--seconds",
        "1",
        "--students",
        "20",
        "--partitions",
        "2",
        "--rounds",
        "2",
    ]);
    assert!(
        out.contains("holds 1100 records = 1100 events acknowledged (50 warm-up, 1000 batched, 50 single)")
            // The bare producer's untimed warm-up (as many as the gateway's), then two rounds.
            && out.contains("bare.activity holds 1050"),
        "{out}"
    );
    // A row per round, then their medians.
    for row in ["\n| 1 | ", "\n| 2 | ", "\n| **median** | "] {
        assert!(out.contains(row), "no row {row:?} in {out}");
    }
    // The gateway's normalization on one thread, both ways (which the bench
    // found to write the same bytes, or it would have failed).
    let line = out.lines().find(|l| l.starts_with("normalizing and encoding a request, one thread")).unwrap_or_default();
    assert!(
        line.contains(" µs of CPU per event through owned ActivityEvents, ") && line.contains(" µs written straight to Avro"),
        "{out}"
    );
    let last = last_line(&out);
    assert!(
        last.starts_with("gateway: batched ")
            && last.contains(" events/s (bare producer ")
            && last.contains(" events/s, ratio ")
            && last.contains("), single p50 ")
            && last.contains(" ms p99 ")
            && last.ends_with(" requests/s"),
        "{out}"
    );
    let n = numbers(last);
    assert!(n.len() == 6 && n.iter().all(|x| *x > 0.0), "{out}");
}

/// Nothing to set up: these run on the runner's thread pool.
pub fn area() -> Area {
    Area::plain(
        "bench",
        plain_tests![
            bench_engine_replays_a_simulated_file,
            bench_state_reports_bytes_per_student_day,
            bench_semester_measures_the_state_as_it_goes,
            bench_kafka_compares_the_processor_with_a_bare_consumer,
            bench_scale_runs_one_instance_then_two,
            bench_latency_reports_percentiles,
            bench_restore_reports_records_per_second,
            bench_peers_compares_with_kafka_streams_quix_and_flink,
            bench_gateway_compares_the_gateway_with_a_bare_producer,
        ],
    )
}
