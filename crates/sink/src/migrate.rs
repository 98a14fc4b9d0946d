//! The schema ships with the program: SQL files under `migrations/`,
//! applied in order on start, each once, recorded in `schema_migrations`.
//! A plain runner rather than a migration framework: a handful of files and
//! one table are all the sink needs, and it keeps the dependencies to
//! tokio-postgres.

use tokio_postgres::Client;

use crate::SinkError;

/// One migration: its version (the `V<n>__` of the file name), its name and its SQL.
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order. A new one is appended, never edited: a
/// database that applied the old text would not see the change.
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "tables", sql: include_str!("../migrations/V1__tables.sql") },
    Migration { version: 2, name: "edfi", sql: include_str!("../migrations/V2__edfi.sql") },
    Migration { version: 3, name: "explain_and_roster", sql: include_str!("../migrations/V3__explain_and_roster.sql") },
];

/// Brings the database's schema to the newest migration. Concurrent
/// callers (two sinks starting at once) are serialized by a lock on
/// `schema_migrations`, so each migration runs once. Returns the versions applied.
pub async fn migrate(client: &mut Client) -> Result<Vec<u32>, SinkError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version integer PRIMARY KEY,
                 name text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .map_err(SinkError::db("creating schema_migrations"))?;
    let tx = client.transaction().await.map_err(SinkError::db("beginning the migration transaction"))?;
    tx.batch_execute("LOCK TABLE schema_migrations IN EXCLUSIVE MODE")
        .await
        .map_err(SinkError::db("locking schema_migrations"))?;
    let row = tx
        .query_one("SELECT coalesce(max(version), 0) FROM schema_migrations", &[])
        .await
        .map_err(SinkError::db("reading schema_migrations"))?;
    let current: i32 = row.get(0);
    let known = MIGRATIONS.last().map(|m| m.version).unwrap_or(0);
    if current > known as i32 {
        return Err(SinkError::SchemaTooNew { found: current, known });
    }
    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| m.version as i32 > current) {
        tx.batch_execute(m.sql).await.map_err(|source| SinkError::Migration { version: m.version, name: m.name, source })?;
        tx.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", &[&(m.version as i32), &m.name])
            .await
            .map_err(|source| SinkError::Migration { version: m.version, name: m.name, source })?;
        applied.push(m.version);
    }
    tx.commit().await.map_err(SinkError::db("committing the migrations"))?;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_increasing_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "{}", m.name);
            assert!(!m.sql.trim().is_empty());
        }
    }
}
