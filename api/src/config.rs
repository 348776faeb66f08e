//! Configuration: documented defaults, then an optional TOML file, then
//! environment variables (names fixed by the contract).

use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// `COUNTERSIGN_LISTEN`: address and port to serve on.
    pub listen: String,
    /// `DATABASE_URL`: `postgres://…` or `sqlite://…`; default a SQLite file here.
    pub database_url: String,
    /// `REDIS_URL`: unset means in-process replacements.
    pub redis_url: Option<String>,
    /// `SMTP_URL`: unset means mails are written to `mail_dir`.
    pub smtp_url: Option<String>,
    /// `COUNTERSIGN_MAIL_DIR`.
    pub mail_dir: PathBuf,
    /// `COUNTERSIGN_MAIL_FROM`: the sender of every mail.
    pub mail_from: String,
    /// `COUNTERSIGN_MAIL_MAX_ATTEMPTS`: failed attempts after which a mail is given up.
    pub mail_max_attempts: u32,
    /// `COUNTERSIGN_PUBLIC_URL`: base of links in e-mails; default `http://` + listen.
    pub public_url: Option<String>,
    /// `COUNTERSIGN_OPERATOR_KEY`: unset on SQLite means generated at first start and printed once.
    pub operator_key: Option<String>,
    /// `COUNTERSIGN_JWT_SECRET`: HS256 secret (≥ 32 bytes).
    pub jwt_secret: Option<String>,
    /// `COUNTERSIGN_JWT_PRIVATE_KEY_FILE`: Ed25519 or RSA PKCS#8 PEM, instead of the secret.
    pub jwt_private_key_file: Option<PathBuf>,
    /// `COUNTERSIGN_HISTORY_SIGNING_KEY_FILE`: Ed25519 key that signs history chain heads.
    pub history_signing_key_file: Option<PathBuf>,
    /// `COUNTERSIGN_DB_MAX_CONNECTIONS`: PostgreSQL pool size.
    pub db_max_connections: u32,
    /// `COUNTERSIGN_JOB_MAX_ATTEMPTS`: attempts before a retryable job failure is final.
    pub job_max_attempts: u32,
    /// `COUNTERSIGN_DEMO`: on an empty SQLite database, create the demo tenant.
    pub demo: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            database_url: "sqlite://countersign.db".into(),
            redis_url: None,
            smtp_url: None,
            mail_dir: "mail".into(),
            mail_from: "Countersign <noreply@countersign.invalid>".into(),
            mail_max_attempts: 20,
            public_url: None,
            operator_key: None,
            jwt_secret: None,
            jwt_private_key_file: None,
            history_signing_key_file: None,
            db_max_connections: 16,
            job_max_attempts: 5,
            demo: true,
        }
    }
}

impl Config {
    /// Defaults ← `file` (TOML, optional) ← environment.
    pub fn load(file: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        let config: Config = figment
            .merge(Env::prefixed("COUNTERSIGN_"))
            .merge(Env::raw().only(&["DATABASE_URL", "REDIS_URL", "SMTP_URL"]))
            .extract()?;
        Ok(config)
    }

    pub fn is_embedded(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }

    /// Where generated keys are kept in embedded mode: beside the database file.
    pub fn data_dir(&self) -> PathBuf {
        let path = self
            .database_url
            .trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:");
        let path = path.split('?').next().unwrap_or_default();
        std::path::Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), PathBuf::from)
    }
}
