//! A broker with a SASL_SSL listener (SCRAM-SHA-512, a throwaway test CA)
//! beside its plaintext one, started with `ROLLCALL_KAFKA_SECURE=1
//! scripts/kafka.sh start` in a run dir of its own and stopped at the end
//! (tests/security.rs).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::repo;

pub struct SecureBroker {
    /// The plaintext listener (for setting up and reading back).
    pub plain: String,
    /// The SASL_SSL listener.
    pub secure: String,
    /// The CA certificate that signed the broker's.
    pub ca_file: PathBuf,
    pub user: String,
    /// A file holding the user's password.
    pub password_file: PathBuf,
    /// The run dir, kept only by the owner (a handle stops nothing).
    run_dir: Option<PathBuf>,
    /// The run dir, for every handle.
    pub dir: PathBuf,
}

impl SecureBroker {
    pub fn get() -> Result<SecureBroker, String> {
        let run_dir = std::env::temp_dir().join(format!("rollcall-{}-secure-{}", env!("CARGO_CRATE_NAME"), std::process::id()));
        eprintln!("starting a SASL_SSL Kafka broker with scripts/kafka.sh (run dir {})", run_dir.display());
        let out = Command::new("bash")
            .arg(repo().join("scripts/kafka.sh"))
            .arg("start")
            .env("ROLLCALL_KAFKA_RUN", &run_dir)
            .env("ROLLCALL_KAFKA_SECURE", "1")
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("scripts/kafka.sh: {e}"))?;
        let mut broker = SecureBroker {
            plain: String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_string(),
            secure: String::new(),
            ca_file: run_dir.join("tls/ca.pem"),
            user: String::new(),
            password_file: run_dir.join("tls/sasl.password"),
            run_dir: Some(run_dir.clone()),
            dir: run_dir.clone(),
        };
        if !out.status.success() {
            return Err("ROLLCALL_KAFKA_SECURE=1 scripts/kafka.sh start failed".into());
        }
        let read =
            |f: &str| std::fs::read_to_string(run_dir.join(f)).map(|s| s.trim().to_string()).map_err(|e| format!("{f}: {e}"));
        broker.secure = read("secure_bootstrap")?;
        broker.user = read("tls/sasl.user")?;
        Ok(broker)
    }

    /// The user's password, as the broker was given it.
    pub fn password(&self) -> Result<String, String> {
        std::fs::read_to_string(&self.password_file)
            .map(|s| s.trim().to_string())
            .map_err(|e| format!("{}: {e}", self.password_file.display()))
    }

    /// The `ROLLCALL_KAFKA__*` settings of a client of the SASL_SSL listener
    /// (the password from its file).
    pub fn client_env(&self) -> Vec<(String, String)> {
        vec![
            ("ROLLCALL_KAFKA__SECURITY_PROTOCOL".into(), "sasl_ssl".into()),
            ("ROLLCALL_KAFKA__SSL_CA_FILE".into(), self.ca_file.display().to_string()),
            ("ROLLCALL_KAFKA__SASL_USERNAME".into(), self.user.clone()),
            ("ROLLCALL_KAFKA__SASL_PASSWORD_FILE".into(), self.password_file.display().to_string()),
        ]
    }

    /// The same broker, as a handle that stops nothing when dropped.
    pub fn handle(&self) -> SecureBroker {
        SecureBroker {
            plain: self.plain.clone(),
            secure: self.secure.clone(),
            ca_file: self.ca_file.clone(),
            user: self.user.clone(),
            password_file: self.password_file.clone(),
            run_dir: None,
            dir: self.dir.clone(),
        }
    }
}

impl Drop for SecureBroker {
    fn drop(&mut self) {
        if let Some(d) = &self.run_dir {
            let _ = Command::new("bash").arg(repo().join("scripts/kafka.sh")).arg("stop").env("ROLLCALL_KAFKA_RUN", d).status();
        }
    }
}
