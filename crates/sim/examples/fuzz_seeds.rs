//! Writes the seed inputs of the fuzz targets under `fuzz/corpus/`: valid
//! encodings of a small simulated district's records, one of each output
//! record, and a small simulation file. The policy and scenario seeds are
//! copies of the shipped presets and scenario files (see scripts/fuzz.sh).
//!
//! cargo run -p rollcall-sim --example fuzz_seeds -- fuzz/corpus

use std::path::{Path, PathBuf};

use rollcall_model::avro::AvroRecord;
use rollcall_model::{ActivityEvent, ActivityKind, DeadLetter, Determination, OutreachTrigger};
use rollcall_sim::file::{write_entries, Entry, FileMeta};
use rollcall_sim::SimConfig;
use serde_json::json;

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("creating the corpus directory");
    std::fs::write(dir.join(name), bytes).expect("writing a seed");
}

/// The seeds of one record: its datum, behind the `avro_datum` target's
/// type byte, and its single-object encoding.
fn seed<T: AvroRecord>(root: &Path, tag: u8, name: &str, r: &T) {
    let mut datum = vec![tag];
    datum.extend(r.to_avro_datum().expect("a generated record encodes"));
    write(&root.join("avro_datum"), &format!("{name}.bin"), &datum);
    write(&root.join("single_object"), &format!("{name}.bin"), &r.to_single_object().expect("a generated record encodes"));
}

fn main() {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "fuzz/corpus".into()));
    let cfg = SimConfig { students: 10, days: 2, ..SimConfig::default() };
    let world = rollcall_sim::generate(&cfg);

    // Two calendars, cut to the simulated days, to keep the seeds small.
    let calendars: Vec<_> = world
        .calendars
        .iter()
        .take(2)
        .map(|c| {
            let mut c = c.clone();
            c.days.retain(|d| d.date >= cfg.start && d.date < cfg.start + chrono::Days::new(cfg.days as u64));
            c
        })
        .collect();
    for (i, c) in calendars.iter().enumerate() {
        seed(&root, 2, &format!("calendar-{i}"), c);
    }
    for (i, s) in world.roster.iter().take(5).enumerate() {
        seed(&root, 1, &format!("student-{i}"), s);
    }
    for (i, r) in world.absence_reports.iter().take(2).enumerate() {
        seed(&root, 3, &format!("report-{i}"), r);
    }
    // One event of each kind the simulation makes.
    let mut kinds = Vec::new();
    for e in &world.events {
        if !kinds.contains(&e.event.kind) {
            kinds.push(e.event.kind);
            seed(&root, 0, &format!("event-{}", e.event.kind.as_str().to_lowercase()), &e.event);
        }
    }
    // The kinds a small district does not make, shaped from its first event
    // with the fields each kind carries; the last one also has the gateway's
    // `received_at`, so that the field's set branch is seeded too.
    let first = &world.events[0].event;
    for kind in ActivityKind::ALL.iter().filter(|k| !kinds.contains(k)) {
        let mut e = ActivityEvent { kind: *kind, received_at: Some(first.occurred_at), ..first.clone() };
        match kind {
            ActivityKind::RecordingView => e.duration_seconds = Some(1_260),
            ActivityKind::TwoWayContact => e.staff_id = Some("st1".into()),
            ActivityKind::OfflineWorkReturned => e.assigned_date = Some(cfg.start),
            _ => {}
        }
        seed(&root, 0, &format!("event-{}", kind.as_str().to_lowercase()), &e);
    }
    let determination: Determination = serde_json::from_value(json!({
        "determination_id": "d1", "student_id": "s1", "school_id": "x", "scope": "SECTION", "date": "2020-10-05",
        "section_id": "math-7", "policy": "cms", "status": "PRESENT_REMOTE", "code": "1R", "attendance_type": "VIRTUAL",
        "minutes": 190, "contacts": 2, "category": "PARTIAL", "rule": "half_day.live", "evidence": ["e1", "e2"],
        "version": 2, "finality": "FINAL", "decided_at": "2020-10-06T04:00:00.000001Z"
    }))
    .expect("a valid determination");
    seed(&root, 4, "determination", &determination);
    let trigger: OutreachTrigger = serde_json::from_value(json!({
        "trigger_id": "t1", "student_id": "s1", "school_id": "x", "kind": "LOW_CONTACT", "recipient_role": "TEACHER",
        "staff_id": "st1", "section_id": "math-7", "window_start": "2020-10-05", "window_end": "2020-10-18",
        "reason": "2 contacts in 2 weeks", "evidence": ["e1"], "policy": "nmped", "created_at": "2020-10-19T22:00:00Z"
    }))
    .expect("a valid outreach trigger");
    seed(&root, 5, "outreach", &trigger);
    let dead: DeadLetter = serde_json::from_value(json!({
        "topic": "lms.activity.v1", "partition": 3, "offset": 1234, "key": "s1", "value": "wwEAAAAAAAAAAA==",
        "error_kind": "SCHEMA_INVALID", "message": "cannot decode Avro datum", "failed_at": "2020-10-06T14:00:00Z"
    }))
    .expect("a valid dead letter");
    seed(&root, 6, "dead-letter", &dead);

    // A small simulation file: the two calendars, three students, some
    // reports and events.
    let mut entries: Vec<Entry> = calendars.into_iter().map(Entry::Calendar).collect();
    entries.extend(world.roster.iter().take(3).cloned().map(Entry::Student));
    entries.extend(world.absence_reports.iter().take(2).map(|r| Entry::Report { report: r.clone(), arrives_at: r.reported_at }));
    entries.extend(world.events.iter().take(12).map(|e| Entry::Event { event: e.event.clone(), arrives_at: e.arrives_at }));
    let meta = FileMeta { start: cfg.start, days: cfg.days, students: cfg.students, seed: cfg.seed, end: world.end };
    let mut file = Vec::new();
    write_entries(&meta, &entries, &mut file).expect("writing a simulation file");
    write(&root.join("sim_file"), "small.avro", &file);
    let mut empty = Vec::new();
    write_entries(&meta, &[], &mut empty).expect("writing a simulation file");
    write(&root.join("sim_file"), "empty.avro", &empty);
}
