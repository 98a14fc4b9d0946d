//! How rollcall's Kafka clients reach a secured cluster: TLS (with a CA file
//! of its own, and a client certificate for mutual TLS) and SASL (SCRAM or
//! PLAIN). One [`KafkaSecurity`] is read at start (a config file's `[kafka]`
//! section, then `ROLLCALL_KAFKA__*` environment variables), checked with
//! [`KafkaSecurity::resolve`], and [`install`]ed; every client rollcall
//! creates starts from [`client_config`], which applies it.
//!
//! The password never comes from the config file: from `sasl_password_file`
//! or the environment variable [`PASSWORD_VAR`]. It is kept in a [`Secret`],
//! whose `Debug` and `Display` print `<redacted>`.

use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// The environment variable a SASL password may come from (when
/// `sasl_password_file` is empty).
pub const PASSWORD_VAR: &str = "ROLLCALL_KAFKA__SASL_PASSWORD";

/// How the clients talk to the brokers (Kafka's `security.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityProtocol {
    /// No TLS, no authentication.
    #[default]
    Plaintext,
    /// TLS, no SASL (a client certificate may authenticate).
    Ssl,
    /// SASL without TLS: the password crosses the network in the clear with PLAIN.
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// librdkafka's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(self, SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl)
    }
}

/// The SASL mechanism (Kafka's `sasl.mechanism`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SaslMechanism {
    #[default]
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "PLAIN")]
    Plain,
}

impl SaslMechanism {
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::Plain => "PLAIN",
        }
    }
}

impl fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A password: printed as `<redacted>`, however it is printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// The password itself, for the client configuration only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The security settings of every Kafka client: the `[kafka]` section of
/// the processor's and the gateway's config files, and `ROLLCALL_KAFKA__*`
/// for every command. Empty strings mean "not set".
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSecurity {
    /// `plaintext` (the default), `ssl`, `sasl_plaintext` or `sasl_ssl`.
    pub security_protocol: SecurityProtocol,
    /// PEM file of the CA certificates that sign the brokers' certificates
    /// (empty: the system's CA store).
    pub ssl_ca_file: String,
    /// PEM client certificate, for brokers that authenticate clients by
    /// certificate (mutual TLS); with `ssl_key_file`.
    pub ssl_certificate_file: String,
    /// PEM private key of `ssl_certificate_file` (unencrypted).
    pub ssl_key_file: String,
    /// `SCRAM-SHA-512` (the default), `SCRAM-SHA-256` or `PLAIN`.
    pub sasl_mechanism: SaslMechanism,
    /// The SASL user.
    pub sasl_username: String,
    /// A file holding the SASL password (one line; a final newline is not
    /// part of it). Empty: the environment variable ROLLCALL_KAFKA__SASL_PASSWORD.
    pub sasl_password_file: String,
    /// The password, once [`KafkaSecurity::resolve`] has read it.
    #[serde(skip)]
    pub sasl_password: Option<Secret>,
}

impl fmt::Debug for KafkaSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSecurity")
            .field("security_protocol", &self.security_protocol)
            .field("ssl_ca_file", &self.ssl_ca_file)
            .field("ssl_certificate_file", &self.ssl_certificate_file)
            .field("ssl_key_file", &self.ssl_key_file)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("sasl_username", &self.sasl_username)
            .field("sasl_password_file", &self.sasl_password_file)
            .field("sasl_password", &self.sasl_password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The section's keys, in the order of the example file.
pub const KEYS: &[&str] = &[
    "security_protocol",
    "ssl_ca_file",
    "ssl_certificate_file",
    "ssl_key_file",
    "sasl_mechanism",
    "sasl_username",
    "sasl_password_file",
];

/// What each key is for, in the example file.
pub fn key_doc(key: &str) -> &'static str {
    match key {
        "security_protocol" => "How every Kafka client talks to the brokers: \"plaintext\", \"ssl\", \"sasl_plaintext\" or \"sasl_ssl\".",
        "ssl_ca_file" => "PEM file of the CA that signed the brokers' certificates (empty: the system's CA store).",
        "ssl_certificate_file" => "Mutual TLS: this client's PEM certificate (with ssl_key_file; empty: none).",
        "ssl_key_file" => "Mutual TLS: the PEM private key of ssl_certificate_file (unencrypted).",
        "sasl_mechanism" => "\"SCRAM-SHA-512\", \"SCRAM-SHA-256\" or \"PLAIN\".",
        "sasl_username" => "The SASL user (sasl_plaintext, sasl_ssl).",
        "sasl_password_file" => "A file holding the SASL password; never put the password itself here (empty:\n# the environment variable ROLLCALL_KAFKA__SASL_PASSWORD).",
        _ => "",
    }
}

/// Whether a file is there, readable, and holds a PEM block of one of `kinds`.
fn check_pem(field: &'static str, file: &str, kinds: &[&str]) -> Result<(), ConfigError> {
    let invalid = |message: String| ConfigError::Invalid { field, message };
    let path = Path::new(file);
    let bytes = std::fs::read(path).map_err(|e| invalid(format!("cannot read `{file}`: {e}")))?;
    let text = String::from_utf8_lossy(&bytes);
    if !kinds.iter().any(|k| text.contains(&format!("-----BEGIN {k}"))) {
        return Err(invalid(format!(
            "`{file}` is not a PEM file with a {} (a block starting `-----BEGIN {}`)",
            kinds[0].trim_end_matches('-'),
            kinds[0]
        )));
    }
    Ok(())
}

impl KafkaSecurity {
    /// Overlays the `ROLLCALL_KAFKA__<KEY>` variables that are set.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let mut doc =
            toml::Table::try_from(&*self).map_err(|e| ConfigError::Invalid { field: "kafka", message: e.to_string() })?;
        for key in KEYS {
            let var = crate::config::env_var(Some("kafka"), key);
            let Some(text) = get(&var) else { continue };
            doc.insert(key.to_string(), toml::Value::String(text.clone()));
            let parsed = KafkaSecurity::deserialize(toml::Value::Table(doc.clone()))
                .map_err(|e| ConfigError::Env { var: var.clone(), message: format!("`{text}`: {}", e.message()) })?;
            let password = self.sasl_password.take();
            *self = KafkaSecurity { sasl_password: password, ..parsed };
        }
        Ok(())
    }

    /// The settings from the environment alone: commands without a config file.
    pub fn from_env() -> Result<KafkaSecurity, ConfigError> {
        let mut s = KafkaSecurity::default();
        s.apply_env(|k| std::env::var(k).ok())?;
        Ok(s)
    }

    /// Checks the settings and reads the password (from `sasl_password_file`,
    /// else from `password_env`, the value of [`PASSWORD_VAR`]): what is
    /// wrong is named by its setting, and never shows the password.
    pub fn resolve(mut self, password_env: Option<String>) -> Result<KafkaSecurity, ConfigError> {
        let invalid = |field, message: String| Err(ConfigError::Invalid { field, message });
        let proto = self.security_protocol;
        let p = proto.as_str();
        if !proto.uses_tls() {
            for (field, value) in [
                ("kafka.ssl_ca_file", &self.ssl_ca_file),
                ("kafka.ssl_certificate_file", &self.ssl_certificate_file),
                ("kafka.ssl_key_file", &self.ssl_key_file),
            ] {
                if !value.is_empty() {
                    return invalid(field, format!("set, but security_protocol = \"{p}\" uses no TLS (use ssl or sasl_ssl)"));
                }
            }
        }
        if !proto.uses_sasl() {
            for (field, value) in
                [("kafka.sasl_username", &self.sasl_username), ("kafka.sasl_password_file", &self.sasl_password_file)]
            {
                if !value.is_empty() {
                    return invalid(
                        field,
                        format!("set, but security_protocol = \"{p}\" uses no SASL (use sasl_plaintext or sasl_ssl)"),
                    );
                }
            }
        }
        if proto.uses_tls() {
            if !self.ssl_ca_file.is_empty() {
                check_pem("kafka.ssl_ca_file", &self.ssl_ca_file, &["CERTIFICATE-----"])?;
            }
            match (self.ssl_certificate_file.is_empty(), self.ssl_key_file.is_empty()) {
                (true, true) => {}
                (false, true) => return invalid("kafka.ssl_key_file", "ssl_certificate_file needs its private key".into()),
                (true, false) => return invalid("kafka.ssl_certificate_file", "ssl_key_file needs its certificate".into()),
                (false, false) => {
                    check_pem("kafka.ssl_certificate_file", &self.ssl_certificate_file, &["CERTIFICATE-----"])?;
                    check_pem(
                        "kafka.ssl_key_file",
                        &self.ssl_key_file,
                        &["PRIVATE KEY-----", "RSA PRIVATE KEY-----", "EC PRIVATE KEY-----"],
                    )?;
                }
            }
        }
        if proto.uses_sasl() {
            if self.sasl_username.trim().is_empty() {
                return invalid("kafka.sasl_username", format!("security_protocol = \"{p}\" needs the SASL user"));
            }
            let password = if !self.sasl_password_file.is_empty() {
                let f = &self.sasl_password_file;
                let text = std::fs::read_to_string(f).map_err(|e| ConfigError::Invalid {
                    field: "kafka.sasl_password_file",
                    message: format!("cannot read `{f}`: {e}"),
                })?;
                let line = text.strip_suffix('\n').unwrap_or(&text);
                let line = line.strip_suffix('\r').unwrap_or(line);
                if line.is_empty() {
                    return invalid("kafka.sasl_password_file", format!("`{f}` is empty"));
                }
                line.to_string()
            } else {
                match password_env.filter(|p| !p.is_empty()) {
                    Some(p) => p,
                    None => {
                        return invalid(
                            "kafka.sasl_password_file",
                            format!("security_protocol = \"{p}\" needs a password: set sasl_password_file or {PASSWORD_VAR}"),
                        )
                    }
                }
            };
            self.sasl_password = Some(Secret(password));
        }
        Ok(self)
    }

    /// Sets these settings on a client's configuration.
    pub fn apply(&self, c: &mut ClientConfig) {
        let proto = self.security_protocol;
        if proto == SecurityProtocol::Plaintext {
            return;
        }
        c.set("security.protocol", proto.as_str());
        if proto.uses_tls() {
            if !self.ssl_ca_file.is_empty() {
                c.set("ssl.ca.location", &self.ssl_ca_file);
            }
            if !self.ssl_certificate_file.is_empty() {
                c.set("ssl.certificate.location", &self.ssl_certificate_file);
                c.set("ssl.key.location", &self.ssl_key_file);
            }
        }
        if proto.uses_sasl() {
            c.set("sasl.mechanisms", self.sasl_mechanism.as_str());
            c.set("sasl.username", &self.sasl_username);
            if let Some(p) = &self.sasl_password {
                c.set("sasl.password", p.expose());
            }
        }
    }

    /// A sentence for a failed authentication: who, how, and what to check.
    pub fn describe_auth(&self) -> String {
        format!(
            "authentication failed for user `{}` with {}; check kafka.sasl_username and the password \
             (kafka.sasl_password_file or {PASSWORD_VAR})",
            self.sasl_username, self.sasl_mechanism
        )
    }

    /// A sentence for a failed TLS handshake.
    pub fn describe_tls(&self, untrusted: bool) -> String {
        let ca = if self.ssl_ca_file.is_empty() {
            "the system's CA store (kafka.ssl_ca_file is not set)".to_string()
        } else {
            format!("CA file `{}` (kafka.ssl_ca_file)", self.ssl_ca_file)
        };
        if untrusted {
            format!("the broker's certificate is not trusted by {ca}")
        } else {
            format!("the TLS handshake with the broker failed (trusting {ca}); check that the address is its TLS listener")
        }
    }
}

static INSTALLED: OnceLock<KafkaSecurity> = OnceLock::new();

/// Makes `security` (resolved) the settings of every client made from now
/// on; call once, at start. Returns false if settings were already installed
/// (the first stay).
pub fn install(security: KafkaSecurity) -> bool {
    INSTALLED.set(security).is_ok()
}

/// The installed settings (plaintext if none were).
pub fn installed() -> &'static KafkaSecurity {
    static PLAIN: OnceLock<KafkaSecurity> = OnceLock::new();
    INSTALLED.get().unwrap_or_else(|| PLAIN.get_or_init(KafkaSecurity::default))
}

/// A client configuration for `brokers` with the installed security
/// settings: where every Kafka client of rollcall starts.
pub fn client_config(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    installed().apply(&mut c);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    fn sasl_ssl() -> KafkaSecurity {
        KafkaSecurity { security_protocol: SecurityProtocol::SaslSsl, sasl_username: "rollcall".into(), ..Default::default() }
    }

    #[test]
    fn debug_never_shows_the_password() {
        let s = sasl_ssl().resolve(Some("hunter2-very-secret".into())).unwrap();
        assert_eq!(s.sasl_password.as_ref().map(Secret::expose), Some("hunter2-very-secret"));
        for text in [format!("{s:?}"), format!("{s:#?}"), format!("{:?}", s.sasl_password), format!("{}", Secret::new("x"))] {
            assert!(!text.contains("hunter2"), "{text}");
        }
        assert!(format!("{s:?}").contains("<redacted>"));
        let cfg = crate::ProcessorConfig { kafka: s, ..Default::default() };
        assert!(!format!("{cfg:?}").contains("hunter2"));
        // Serialized (an example or a dump), the password is not there either.
        assert!(!toml::to_string(&cfg).unwrap().contains("hunter2"));
    }

    #[test]
    fn the_password_comes_from_its_file_else_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "from-file\n").unwrap();
        let s = KafkaSecurity { sasl_password_file: f.display().to_string(), ..sasl_ssl() };
        assert_eq!(s.clone().resolve(Some("from-env".into())).unwrap().sasl_password.unwrap().expose(), "from-file");
        assert_eq!(sasl_ssl().resolve(Some("from-env".into())).unwrap().sasl_password.unwrap().expose(), "from-env");
        let e = sasl_ssl().resolve(None).unwrap_err().to_string();
        assert!(e.starts_with("kafka.sasl_password_file:") && e.contains(PASSWORD_VAR), "{e}");
        std::fs::write(&f, "").unwrap();
        assert!(s.resolve(None).unwrap_err().to_string().contains("is empty"));
    }

    #[test]
    fn validation_names_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("ca.txt");
        std::fs::write(&not_pem, "hello").unwrap();
        let pem = dir.path().join("ca.pem");
        std::fs::write(&pem, CERT).unwrap();
        let cases: Vec<(KafkaSecurity, &str, &str)> = vec![
            (KafkaSecurity { sasl_username: String::new(), ..sasl_ssl() }, "kafka.sasl_username:", "SASL user"),
            (KafkaSecurity { ssl_ca_file: "/nowhere/ca.pem".into(), ..sasl_ssl() }, "kafka.ssl_ca_file:", "/nowhere/ca.pem"),
            (KafkaSecurity { ssl_ca_file: not_pem.display().to_string(), ..sasl_ssl() }, "kafka.ssl_ca_file:", "not a PEM"),
            (
                KafkaSecurity { ssl_certificate_file: pem.display().to_string(), ..sasl_ssl() },
                "kafka.ssl_key_file:",
                "private key",
            ),
            (KafkaSecurity { ssl_ca_file: pem.display().to_string(), ..Default::default() }, "kafka.ssl_ca_file:", "uses no TLS"),
            (
                KafkaSecurity { sasl_username: "u".into(), security_protocol: SecurityProtocol::Ssl, ..Default::default() },
                "kafka.sasl_username:",
                "uses no SASL",
            ),
        ];
        for (s, field, says) in cases {
            let e = s.resolve(Some("pw".into())).unwrap_err().to_string();
            assert!(e.starts_with(field) && e.contains(says), "{e}");
            assert!(!e.contains("pw\""), "{e}");
        }
        KafkaSecurity { ssl_ca_file: pem.display().to_string(), ..sasl_ssl() }.resolve(Some("pw".into())).unwrap();
        KafkaSecurity::default().resolve(None).unwrap();
    }

    #[test]
    fn settings_from_the_environment_and_on_the_client() {
        let mut s = KafkaSecurity::default();
        s.apply_env(|k| match k {
            "ROLLCALL_KAFKA__SECURITY_PROTOCOL" => Some("sasl_ssl".into()),
            "ROLLCALL_KAFKA__SASL_USERNAME" => Some("app".into()),
            "ROLLCALL_KAFKA__SASL_MECHANISM" => Some("SCRAM-SHA-256".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            (s.security_protocol, s.sasl_mechanism, s.sasl_username.as_str()),
            (SecurityProtocol::SaslSsl, SaslMechanism::ScramSha256, "app")
        );
        let e = s.apply_env(|k| (k == "ROLLCALL_KAFKA__SECURITY_PROTOCOL").then(|| "tls".into())).unwrap_err().to_string();
        assert!(e.contains("ROLLCALL_KAFKA__SECURITY_PROTOCOL") && e.contains("tls"), "{e}");
        let s = s.resolve(Some("pw".into())).unwrap();
        let mut c = ClientConfig::new();
        s.apply(&mut c);
        assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(c.get("sasl.mechanisms"), Some("SCRAM-SHA-256"));
        assert_eq!(c.get("sasl.username"), Some("app"));
        assert_eq!(c.get("sasl.password"), Some("pw"));
        let mut c = ClientConfig::new();
        KafkaSecurity::default().apply(&mut c);
        assert_eq!(c.get("security.protocol"), None, "plaintext sets nothing: the clients stay as they were");
    }
}
