//! Writing one batch: its determinations, outreach, dead letters and the
//! Kafka positions after it, in ONE database transaction. Rows go in with
//! binary COPY (into `determination_versions` itself, into temporary tables
//! for the rest), then one `INSERT … SELECT … ON CONFLICT` per table: a few
//! statements per batch, whatever its size.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use chrono::{DateTime, Utc};
use rollcall_model::{Determination, OutreachTrigger, SchoolCalendar, Scope, StudentRecord};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{Json, ToSql, Type};
use tokio_postgres::Client;

use crate::SinkError;

/// A record the sink could not use, kept with its origin.
#[derive(Debug, Clone)]
pub struct BadRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: Option<Vec<u8>>,
    pub error_kind: &'static str,
    pub message: String,
    pub failed_at: DateTime<Utc>,
}

/// A roster record: a student as the SIS has them now, or gone (a tombstone).
#[derive(Debug, Clone)]
pub enum Roster {
    Student(Box<StudentRecord>),
    Gone(String),
}

/// What one transaction writes.
#[derive(Debug, Default)]
pub struct Batch {
    pub determinations: Vec<Determination>,
    pub outreach: Vec<OutreachTrigger>,
    /// In topic order: the last record of a student wins.
    pub roster: Vec<Roster>,
    pub calendars: Vec<SchoolCalendar>,
    /// Determination keys tombstoned on the topic (`rollcall forget`): their
    /// rows leave `determinations` and `determination_versions`.
    pub erased: Vec<(String, Scope, NaiveDate, Option<String>)>,
    pub bad: Vec<BadRecord>,
    /// (topic, partition) → the offset after the last record of the batch.
    pub next_offsets: BTreeMap<(String, i32), i64>,
    /// Kafka records in the batch (good and bad).
    pub records: usize,
    /// Kafka records in the batch per topic.
    pub topic_counts: BTreeMap<String, u64>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }
}

/// Rows changed per table by one committed batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Rows inserted or replaced in `determinations` (a version older than
    /// the row's is not written).
    pub determinations: u64,
    pub determination_versions: u64,
    pub outreach_triggers: u64,
    pub sink_dead_letters: u64,
    /// Rows removed from `determinations` and `determination_versions` for
    /// tombstoned keys.
    pub erased: u64,
    /// Students added, changed or removed.
    pub students: u64,
    /// The batch held a version already stored and went through
    /// [`VersionsPath::Staged`] after its COPY failed.
    pub staged: bool,
}

const DET_COLUMNS: &str = "determination_id, student_id, school_id, scope, date, section_id, policy, status, code, \
     attendance_type, minutes, contacts, category, rule, evidence, version, finality, decided_at, \
     evidence_detail, looked_for, seen";
const DET_TYPES: &[Type] = &[
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::DATE,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::INT4,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT_ARRAY,
    Type::INT4,
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::JSONB,
    Type::TEXT_ARRAY,
    Type::JSONB,
];
const OUT_COLUMNS: &str = "trigger_id, student_id, school_id, kind, recipient_role, staff_id, section_id, \
     window_start, window_end, reason, evidence, policy, created_at";
const OUT_TYPES: &[Type] = &[
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::DATE,
    Type::DATE,
    Type::TEXT,
    Type::TEXT_ARRAY,
    Type::TEXT,
    Type::TIMESTAMPTZ,
];

/// Creates this connection's staging tables (temporary: each connection has
/// its own, emptied at every commit or rollback).
///
/// The session commits without waiting for the WAL flush
/// (`synchronous_commit = off`). That loses no row and doubles none: a
/// batch's rows and the Kafka offsets after them are in one transaction, so
/// a server crash that forgets the last commits forgets both, and the next
/// start reads those records again from the older offsets. A committed
/// transaction is never half there; only its durability is delayed (by at
/// most three times `wal_writer_delay`), and what it lost is still in Kafka.
pub async fn prepare_session(client: &Client) -> Result<(), SinkError> {
    client
        .batch_execute(
            "SET synchronous_commit = off;
             CREATE TEMPORARY TABLE IF NOT EXISTS incoming_determinations
                 (LIKE determination_versions INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
             CREATE TEMPORARY TABLE IF NOT EXISTS incoming_outreach
                 (LIKE outreach_triggers INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;",
        )
        .await
        .map_err(SinkError::db("creating the staging tables"))
}

/// The stored positions: (topic, partition) → next offset to read.
pub async fn load_offsets(client: &Client, topics: &[&str]) -> Result<BTreeMap<(String, i32), i64>, SinkError> {
    let names: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
    let rows = client
        .query("SELECT topic, partition, next_offset FROM sink_offsets WHERE topic = ANY($1)", &[&names])
        .await
        .map_err(SinkError::db("reading sink_offsets"))?;
    Ok(rows.iter().map(|r| ((r.get::<_, String>(0), r.get::<_, i32>(1)), r.get::<_, i64>(2))).collect())
}

/// Binary COPY of determinations into `table` (a table with the columns of
/// `determination_versions`), in the caller's transaction. The sink copies
/// into `determination_versions` (or its staging table); `rollcall bench
/// sink` into a bare table, to compare.
pub async fn copy_determinations(
    tx: &tokio_postgres::Transaction<'_>,
    table: &str,
    determinations: impl IntoIterator<Item = &Determination>,
) -> Result<(), SinkError> {
    let sink = tx
        .copy_in(&format!("COPY {table} ({DET_COLUMNS}) FROM STDIN BINARY"))
        .await
        .map_err(SinkError::db("starting COPY of determinations"))?;
    let writer = BinaryCopyInWriter::new(sink, DET_TYPES);
    let mut writer = std::pin::pin!(writer);
    for d in determinations {
        let (scope, status, finality) = (d.scope.as_str(), d.status.as_str(), d.finality.as_str());
        let attendance_type = d.attendance_type.map(|a| a.as_str());
        let (evidence_detail, seen) = (Json(&d.evidence_detail), Json(&d.seen));
        let row: [&(dyn ToSql + Sync); 21] = [
            &d.determination_id,
            &d.student_id,
            &d.school_id,
            &scope,
            &d.date,
            &d.section_id,
            &d.policy,
            &status,
            &d.code,
            &attendance_type,
            &d.minutes,
            &d.contacts,
            &d.category,
            &d.rule,
            &d.evidence,
            &d.version,
            &finality,
            &d.decided_at,
            &evidence_detail,
            &d.looked_for,
            &seen,
        ];
        writer.as_mut().write(&row).await.map_err(SinkError::db(format!("COPY of determination {}", d.determination_id)))?;
    }
    writer.finish().await.map_err(SinkError::db("finishing COPY of determinations"))?;
    Ok(())
}

/// How a batch's determinations reach `determination_versions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionsPath {
    /// One binary COPY straight into `determination_versions`, no staging
    /// and no conflict check. Exactly once makes this safe: a batch's rows
    /// commit with the offsets after them, so no batch is applied twice and
    /// a version already in the table means the topic itself holds it twice
    /// (two producers, two groups writing one topic). Then the COPY fails
    /// with a unique violation, the transaction is rolled back and the
    /// batch goes through [`VersionsPath::Staged`].
    Copy,
    /// COPY into the staging table, then `INSERT … ON CONFLICT DO NOTHING`:
    /// any duplicate, in the batch or in the table, is skipped.
    Staged,
}

/// Writes the batch and its positions in one transaction: by
/// [`VersionsPath::Copy`], or by [`VersionsPath::Staged`] again when the
/// batch holds a version the table already has.
pub async fn write_batch(client: &mut Client, batch: &Batch) -> Result<Written, SinkError> {
    match write_batch_via(client, batch, VersionsPath::Copy).await {
        Err(e) if e.is_unique_violation() => {
            tracing::warn!(error = %e, "a version of the batch is already stored (a duplicate in the topic); writing the batch again, skipping duplicates");
            let mut w = write_batch_via(client, batch, VersionsPath::Staged).await?;
            w.staged = true;
            Ok(w)
        }
        other => other,
    }
}

/// The latest version per key of `determinations`: the highest version, the
/// later record of the batch among equal ones (the same row twice: the
/// processor's `determination_id` is the key and the version).
fn latest_per_key(determinations: &[Determination]) -> Vec<&Determination> {
    let mut latest: HashMap<(&str, &str, chrono::NaiveDate, &str), usize> = HashMap::with_capacity(determinations.len());
    for (i, d) in determinations.iter().enumerate() {
        let key = (d.student_id.as_str(), d.scope.as_str(), d.date, d.section_id.as_deref().unwrap_or(""));
        match latest.entry(key) {
            Entry::Vacant(v) => {
                v.insert(i);
            }
            Entry::Occupied(mut o) => {
                if determinations[*o.get()].version <= d.version {
                    o.insert(i);
                }
            }
        }
    }
    let mut keep: Vec<usize> = latest.into_values().collect();
    keep.sort_unstable();
    keep.into_iter().map(|i| &determinations[i]).collect()
}

/// Writes the batch and its positions in one transaction, its versions by `path`.
pub async fn write_batch_via(client: &mut Client, batch: &Batch, path: VersionsPath) -> Result<Written, SinkError> {
    let tx = client.transaction().await.map_err(SinkError::db("beginning a batch"))?;
    let mut w = Written::default();
    if !batch.determinations.is_empty() {
        // The rows the upsert reads: on the COPY path, the batch's latest
        // version per key, read back by id from the versions just copied
        // (no second COPY, no second parse of the same rows).
        let mut latest_ids: Vec<&str> = Vec::new();
        let latest = match path {
            VersionsPath::Copy => {
                copy_determinations(&tx, "determination_versions", &batch.determinations).await?;
                w.determination_versions = batch.determinations.len() as u64;
                latest_ids = latest_per_key(&batch.determinations).into_iter().map(|d| d.determination_id.as_str()).collect();
                "SELECT {DET_COLUMNS} FROM determination_versions WHERE determination_id = ANY($1::text[])"
            }
            VersionsPath::Staged => {
                copy_determinations(&tx, "incoming_determinations", &batch.determinations).await?;
                w.determination_versions = tx
                    .execute(
                        &format!(
                            "INSERT INTO determination_versions ({DET_COLUMNS}) SELECT {DET_COLUMNS} FROM incoming_determinations
                             ON CONFLICT (determination_id) DO NOTHING"
                        ),
                        &[],
                    )
                    .await
                    .map_err(SinkError::db("inserting determination_versions"))?;
                "SELECT DISTINCT ON (student_id, scope, date, coalesce(section_id, '')) {DET_COLUMNS}
                   FROM incoming_determinations
                  ORDER BY student_id, scope, date, coalesce(section_id, ''), version DESC"
            }
        };
        let latest = latest.replace("{DET_COLUMNS}", DET_COLUMNS);
        let params: Vec<&(dyn ToSql + Sync)> = match path {
            VersionsPath::Copy => vec![&latest_ids],
            VersionsPath::Staged => vec![],
        };
        // One row per key, its highest version of the batch: ON CONFLICT may
        // not touch a row twice in one statement (on the COPY path the ids
        // are one per key already). The WHERE keeps a
        // row from going back to an older version that arrives later.
        w.determinations = tx
            .execute(
                &format!(
                    "INSERT INTO determinations ({DET_COLUMNS})
                     {latest}
                     ON CONFLICT (student_id, scope, date, section_key) DO UPDATE SET
                       determination_id = excluded.determination_id, school_id = excluded.school_id,
                       policy = excluded.policy, status = excluded.status, code = excluded.code,
                       attendance_type = excluded.attendance_type, minutes = excluded.minutes,
                       contacts = excluded.contacts, category = excluded.category, rule = excluded.rule,
                       evidence = excluded.evidence, version = excluded.version,
                       finality = excluded.finality, decided_at = excluded.decided_at,
                       evidence_detail = excluded.evidence_detail, looked_for = excluded.looked_for,
                       seen = excluded.seen
                     WHERE excluded.version > determinations.version"
                ),
                &params,
            )
            .await
            .map_err(SinkError::db("upserting determinations"))?;
    }
    if !batch.erased.is_empty() {
        // After this batch's own rows: a key is tombstoned once its student
        // is erased, and nothing is emitted for it afterwards.
        let mut cols: (Vec<&str>, Vec<&str>, Vec<NaiveDate>, Vec<&str>) = Default::default();
        for (student, scope, date, section) in &batch.erased {
            cols.0.push(student);
            cols.1.push(scope.as_str());
            cols.2.push(*date);
            cols.3.push(section.as_deref().unwrap_or(""));
        }
        for table in ["determinations", "determination_versions"] {
            w.erased += tx
                .execute(
                    &format!(
                        "DELETE FROM {table} t
                          USING unnest($1::text[], $2::text[], $3::date[], $4::text[]) AS e(student_id, scope, date, section_key)
                          WHERE t.student_id = e.student_id AND t.scope = e.scope AND t.date = e.date
                            AND coalesce(t.section_id, '') = e.section_key"
                    ),
                    &[&cols.0, &cols.1, &cols.2, &cols.3],
                )
                .await
                .map_err(SinkError::db(format!("removing the rows of tombstoned keys from {table}")))?;
        }
    }
    if !batch.outreach.is_empty() {
        let sink = tx
            .copy_in(&format!("COPY incoming_outreach ({OUT_COLUMNS}) FROM STDIN BINARY"))
            .await
            .map_err(SinkError::db("starting COPY of outreach"))?;
        let writer = BinaryCopyInWriter::new(sink, OUT_TYPES);
        let mut writer = std::pin::pin!(writer);
        for t in &batch.outreach {
            let (kind, role) = (t.kind.as_str(), t.recipient_role.as_str());
            let row: [&(dyn ToSql + Sync); 13] = [
                &t.trigger_id,
                &t.student_id,
                &t.school_id,
                &kind,
                &role,
                &t.staff_id,
                &t.section_id,
                &t.window_start,
                &t.window_end,
                &t.reason,
                &t.evidence,
                &t.policy,
                &t.created_at,
            ];
            writer.as_mut().write(&row).await.map_err(SinkError::db(format!("COPY of outreach trigger {}", t.trigger_id)))?;
        }
        writer.finish().await.map_err(SinkError::db("finishing COPY of outreach"))?;
        // A trigger is raised once; its id is derived from what raised it.
        w.outreach_triggers = tx
            .execute(
                &format!(
                    "INSERT INTO outreach_triggers ({OUT_COLUMNS})
                     SELECT DISTINCT ON (trigger_id) {OUT_COLUMNS} FROM incoming_outreach ORDER BY trigger_id
                     ON CONFLICT (trigger_id) DO NOTHING"
                ),
                &[],
            )
            .await
            .map_err(SinkError::db("inserting outreach_triggers"))?;
    }
    if !batch.roster.is_empty() {
        w.students = write_roster(&tx, &batch.roster).await?;
    }
    if !batch.calendars.is_empty() {
        write_calendars(&tx, &batch.calendars).await?;
    }
    for b in &batch.bad {
        w.sink_dead_letters += tx
            .execute(
                "INSERT INTO sink_dead_letters (topic, partition, \"offset\", key, value, error_kind, message, failed_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                &[&b.topic, &b.partition, &b.offset, &b.key, &b.value, &b.error_kind, &b.message, &b.failed_at],
            )
            .await
            .map_err(SinkError::db(format!("recording the bad record {}[{}]@{}", b.topic, b.partition, b.offset)))?;
    }
    if !batch.next_offsets.is_empty() {
        let topics: Vec<&str> = batch.next_offsets.keys().map(|(t, _)| t.as_str()).collect();
        let partitions: Vec<i32> = batch.next_offsets.keys().map(|(_, p)| *p).collect();
        let offsets: Vec<i64> = batch.next_offsets.values().copied().collect();
        tx.execute(
            "INSERT INTO sink_offsets (topic, partition, next_offset)
             SELECT * FROM unnest($1::text[], $2::int4[], $3::int8[])
             ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset, updated_at = now()",
            &[&topics, &partitions, &offsets],
        )
        .await
        .map_err(SinkError::db("writing sink_offsets"))?;
    }
    tx.commit().await.map_err(SinkError::db("committing a batch"))?;
    Ok(w)
}

/// The batch's roster records, the last per student: one statement for
/// the students that are there (their rows as one JSON array, so that each
/// keeps its own lists) and one for those that left.
async fn write_roster(tx: &tokio_postgres::Transaction<'_>, roster: &[Roster]) -> Result<u64, SinkError> {
    let mut last: BTreeMap<&str, &Roster> = BTreeMap::new();
    for r in roster {
        let id = match r {
            Roster::Student(s) => s.student_id.as_str(),
            Roster::Gone(id) => id.as_str(),
        };
        last.insert(id, r);
    }
    let mut gone: Vec<&str> = Vec::new();
    let mut rows: Vec<serde_json::Value> = Vec::new();
    for (id, r) in last {
        match r {
            Roster::Gone(_) => gone.push(id),
            Roster::Student(s) => rows.push(serde_json::json!({
                "student_id": s.student_id,
                "school_id": s.school_id,
                "grade_level": s.grade_level.to_string(),
                "homeroom_section_id": s.homeroom_section_id,
                "homeroom_staff_id": s.homeroom_staff_id,
                "groups": s.groups,
                "section_ids": s.enrollments.iter().map(|e| e.section_id.as_str()).collect::<Vec<_>>(),
            })),
        }
    }
    let mut n = 0;
    if !gone.is_empty() {
        n += tx
            .execute("DELETE FROM students WHERE student_id = ANY($1)", &[&gone])
            .await
            .map_err(SinkError::db("removing students who left the roster"))?;
    }
    if !rows.is_empty() {
        n += tx
            .execute(
                "INSERT INTO students (student_id, school_id, grade_level, homeroom_section_id, homeroom_staff_id, groups, section_ids)
                 SELECT student_id, school_id, grade_level, homeroom_section_id, homeroom_staff_id,
                        ARRAY(SELECT jsonb_array_elements_text(groups)), ARRAY(SELECT jsonb_array_elements_text(section_ids))
                   FROM jsonb_to_recordset($1::jsonb) AS x(student_id text, school_id text, grade_level text,
                        homeroom_section_id text, homeroom_staff_id text, groups jsonb, section_ids jsonb)
                 ON CONFLICT (student_id) DO UPDATE SET school_id = excluded.school_id, grade_level = excluded.grade_level,
                   homeroom_section_id = excluded.homeroom_section_id, homeroom_staff_id = excluded.homeroom_staff_id,
                   groups = excluded.groups, section_ids = excluded.section_ids, updated_at = now()",
                &[&serde_json::Value::Array(rows)],
            )
            .await
            .map_err(SinkError::db("writing students"))?;
    }
    Ok(n)
}

/// The batch's calendars, the last per school: the school's row and its
/// days, which replace the days it had.
async fn write_calendars(tx: &tokio_postgres::Transaction<'_>, calendars: &[SchoolCalendar]) -> Result<(), SinkError> {
    let mut last: BTreeMap<&str, &SchoolCalendar> = BTreeMap::new();
    for c in calendars {
        last.insert(&c.school_id, c);
    }
    for c in last.values() {
        tx.execute(
            "INSERT INTO schools (school_id, timezone, policy) VALUES ($1, $2, $3)
             ON CONFLICT (school_id) DO UPDATE SET timezone = excluded.timezone, policy = excluded.policy, updated_at = now()",
            &[&c.school_id, &c.timezone, &c.policy],
        )
        .await
        .map_err(SinkError::db(format!("writing school {}", c.school_id)))?;
        tx.execute("DELETE FROM school_days WHERE school_id = $1", &[&c.school_id])
            .await
            .map_err(SinkError::db(format!("replacing the days of school {}", c.school_id)))?;
        let dates: Vec<chrono::NaiveDate> = c.days.iter().map(|d| d.date).collect();
        let instructional: Vec<bool> = c.days.iter().map(|d| d.instructional).collect();
        let types: Vec<&str> = c.days.iter().map(|d| d.day_type.as_str()).collect();
        let minutes: Vec<i32> = c.days.iter().map(|d| if d.instructional { d.minutes() as i32 } else { 0 }).collect();
        tx.execute(
            "INSERT INTO school_days (school_id, date, instructional, day_type, minutes)
             SELECT $1, * FROM unnest($2::date[], $3::bool[], $4::text[], $5::int4[]) ON CONFLICT DO NOTHING",
            &[&c.school_id, &dates, &instructional, &types, &minutes],
        )
        .await
        .map_err(SinkError::db(format!("writing the days of school {}", c.school_id)))?;
    }
    Ok(())
}
