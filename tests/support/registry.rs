//! A schema registry for the run: the one in ROLLCALL_TEST_REGISTRY (its
//! Confluent API's URL), or Apicurio Registry started here with
//! scripts/registry.sh and stopped when dropped.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::repo;

pub struct SchemaRegistry {
    pub url: String,
    run_dir: Option<PathBuf>,
}

impl SchemaRegistry {
    pub fn get() -> Result<SchemaRegistry, String> {
        if let Ok(u) = std::env::var("ROLLCALL_TEST_REGISTRY") {
            if !u.trim().is_empty() {
                return Ok(SchemaRegistry { url: u.trim().to_string(), run_dir: None });
            }
        }
        let run_dir = std::env::temp_dir().join(format!("rollcall-{}-registry-{}", env!("CARGO_CRATE_NAME"), std::process::id()));
        eprintln!("starting a schema registry with scripts/registry.sh (run dir {})", run_dir.display());
        let out = Command::new("bash")
            .arg(repo().join("scripts/registry.sh"))
            .arg("start")
            .env("ROLLCALL_REGISTRY_RUN", &run_dir)
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("scripts/registry.sh: {e}"))?;
        // Whatever happened, stop what may have started.
        let registry = SchemaRegistry {
            url: String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_string(),
            run_dir: Some(run_dir),
        };
        if !out.status.success() || !registry.url.starts_with("http") {
            return Err("scripts/registry.sh start failed".into());
        }
        Ok(registry)
    }
}

impl Drop for SchemaRegistry {
    fn drop(&mut self) {
        if let Some(d) = &self.run_dir {
            let _ = Command::new("bash")
                .arg(repo().join("scripts/registry.sh"))
                .arg("stop")
                .env("ROLLCALL_REGISTRY_RUN", d)
                .stderr(Stdio::null())
                .status();
        }
    }
}
