//! The PostgreSQL the sink's tests use: the given one
//! (ROLLCALL_TEST_DATABASE_URL) or a throwaway cluster started with
//! scripts/postgres.sh and stopped when the run ends; a database of its own
//! per test; a blocking client for the checks.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use chrono::Utc;

use super::repo;

/// The database for the run: the given one, or a cluster started here.
pub struct Database {
    pub url: String,
    run_dir: Option<PathBuf>,
}

impl Database {
    /// The same database, as a handle that stops nothing when dropped.
    pub fn handle(&self) -> Database {
        Database { url: self.url.clone(), run_dir: None }
    }

    pub fn get() -> Result<Database, String> {
        if let Ok(u) = std::env::var("ROLLCALL_TEST_DATABASE_URL") {
            if !u.trim().is_empty() {
                return Ok(Database { url: u.trim().to_string(), run_dir: None });
            }
        }
        let run_dir = std::env::temp_dir().join(format!("rollcall-{}-test-pg-{}", env!("CARGO_CRATE_NAME"), std::process::id()));
        eprintln!("starting PostgreSQL with scripts/postgres.sh (run dir {})", run_dir.display());
        let out = Command::new("bash")
            .arg(repo().join("scripts/postgres.sh"))
            .arg("start")
            .env("ROLLCALL_PG_RUN", &run_dir)
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("scripts/postgres.sh: {e}"))?;
        // Made before the check, so that a half-started cluster is stopped too.
        let mut db = Database { url: String::new(), run_dir: Some(run_dir) };
        if !out.status.success() {
            return Err("scripts/postgres.sh start failed".into());
        }
        db.url = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_string();
        Ok(db)
    }

    /// A new, empty database on the server, and its URL.
    pub fn fresh(&self, name: &str) -> Result<String, String> {
        let db = format!("sink_{}_{}_{}", name, std::process::id(), Utc::now().timestamp_millis());
        Pg::connect(&self.url)?.exec(&format!("CREATE DATABASE {db}"))?;
        Ok(with_dbname(&self.url, &db))
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Some(d) = &self.run_dir {
            let _ = Command::new("bash").arg(repo().join("scripts/postgres.sh")).arg("stop").env("ROLLCALL_PG_RUN", d).status();
        }
    }
}

/// The URL with another database name (URL form or key=value form).
pub fn with_dbname(url: &str, db: &str) -> String {
    if let Some(rest) = url.strip_prefix("postgres://").or_else(|| url.strip_prefix("postgresql://")) {
        let scheme = &url[..url.len() - rest.len()];
        let (main, query) = match rest.split_once('?') {
            Some((m, q)) => (m, format!("?{q}")),
            None => (rest, String::new()),
        };
        let host = main.split('/').next().unwrap_or(main);
        format!("{scheme}{host}/{db}{query}")
    } else {
        format!("{url} dbname={db}")
    }
}

/// A blocking PostgreSQL client for the checks.
pub struct Pg {
    pub rt: tokio::runtime::Runtime,
    pub client: tokio_postgres::Client,
}

impl Pg {
    pub fn connect(url: &str) -> Result<Pg, String> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        let (client, conn) =
            rt.block_on(tokio_postgres::connect(url, tokio_postgres::NoTls)).map_err(|e| format!("connecting to {url}: {e}"))?;
        rt.spawn(async move {
            let _ = conn.await;
        });
        Ok(Pg { rt, client })
    }

    pub fn query(&self, sql: &str) -> Result<Vec<tokio_postgres::Row>, String> {
        self.rt.block_on(self.client.query(sql, &[])).map_err(|e| format!("{sql}: {e}"))
    }

    pub fn exec(&self, sql: &str) -> Result<(), String> {
        self.rt.block_on(self.client.batch_execute(sql)).map_err(|e| format!("{sql}: {e}"))
    }

    pub fn count(&self, table: &str) -> Result<i64, String> {
        // A table the sink has not created yet holds nothing.
        let exists = self.query(&format!("SELECT to_regclass('{table}') IS NOT NULL"))?;
        if !exists.first().map(|r| r.get::<_, bool>(0)).unwrap_or(false) {
            return Ok(0);
        }
        Ok(self.query(&format!("SELECT count(*) FROM {table}"))?.first().map(|r| r.get(0)).unwrap_or(0))
    }
}
