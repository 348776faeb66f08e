//! Configuration: documented defaults, then an optional TOML file, then
//! environment variables (names fixed by the contract).

use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::client_address::parse_trusted_proxies;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// `COUNTERSIGN_LISTEN`: address and port to serve on.
    pub listen: String,
    /// `COUNTERSIGN_METRICS_LISTEN`: address and port of `GET /metrics`, a
    /// listener of its own that serves nothing else; empty means none.
    pub metrics_listen: String,
    /// `COUNTERSIGN_METRICS_INTERVAL_SECS`: how often the counts over every
    /// tenant in `/metrics` are computed from the database.
    pub metrics_interval_secs: u64,
    /// `DATABASE_URL`: `postgres://…` or `sqlite://…`; default a SQLite file here.
    pub database_url: String,
    /// `COUNTERSIGN_WORKER_DATABASE_URL`: PostgreSQL as a member of
    /// `countersign_worker`, for background work that spans tenants; unset
    /// means `DATABASE_URL`, whose role must then reach every tenant.
    pub worker_database_url: Option<String>,
    /// `COUNTERSIGN_MIGRATION_DATABASE_URL`: the schema owner, for
    /// `countersign migrate`; unset means `DATABASE_URL`.
    pub migration_database_url: Option<String>,
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
    /// `COUNTERSIGN_HISTORY_RETIRED_KEYS`: public keys that signed history
    /// checkpoints before a key rotation, comma-separated, each the 32 raw
    /// bytes in standard base64 (as `GET /v1/history/signing-keys` shows
    /// them); their checkpoints still verify. Empty: none.
    pub history_retired_keys: String,
    /// `COUNTERSIGN_DB_MAX_CONNECTIONS`: PostgreSQL pool size.
    pub db_max_connections: u32,
    /// `COUNTERSIGN_JOB_MAX_ATTEMPTS`: attempts before a retryable job failure is final.
    pub job_max_attempts: u32,
    /// `COUNTERSIGN_DEMO`: on an empty SQLite database, create the demo tenant.
    pub demo: bool,
    /// `COUNTERSIGN_LOG_FORMAT`: `auto` (JSON lines unless stdout is a terminal), `json` or `text`.
    pub log_format: LogFormat,
    /// `COUNTERSIGN_CORS_ORIGINS`: comma-separated origins of browser frontends
    /// allowed to call the API (`*` for any); empty means no CORS.
    pub cors_origins: String,
    /// `COUNTERSIGN_REQUEST_TIMEOUT_SECS`: longest a request may take before it is
    /// answered 503; agents' long polls are bounded by their own wait instead.
    pub request_timeout_secs: u64,
    /// `COUNTERSIGN_SHUTDOWN_TIMEOUT_SECS`: on SIGTERM, how long requests in flight
    /// may finish; longer than the longest long poll (50 s).
    pub shutdown_timeout_secs: u64,
    /// `COUNTERSIGN_HSTS_MAX_AGE_SECS`: `Strict-Transport-Security` max-age; 0 sends none.
    pub hsts_max_age_secs: u64,
    /// `COUNTERSIGN_TRUSTED_PROXIES`: comma-separated CIDR blocks of the
    /// reverse proxies (load balancer, ingress) whose `X-Forwarded-For` or
    /// `Forwarded` names the client; empty means the TCP peer is the client.
    /// Login throttling counts by that address.
    pub trusted_proxies: String,
}

/// How log lines are written to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON when stdout is not a terminal, text in a terminal.
    Auto,
    Json,
    Text,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            metrics_listen: "127.0.0.1:9090".into(),
            metrics_interval_secs: 30,
            database_url: "sqlite://countersign.db".into(),
            worker_database_url: None,
            migration_database_url: None,
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
            history_retired_keys: String::new(),
            db_max_connections: 16,
            job_max_attempts: 5,
            demo: true,
            log_format: LogFormat::Auto,
            cors_origins: String::new(),
            request_timeout_secs: 30,
            shutdown_timeout_secs: 55,
            hsts_max_age_secs: 0,
            trusted_proxies: String::new(),
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
        config.validate()?;
        Ok(config)
    }

    /// What the environment cannot express in types.
    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.request_timeout_secs >= 1,
            "COUNTERSIGN_REQUEST_TIMEOUT_SECS must be at least 1"
        );
        anyhow::ensure!(
            self.metrics_interval_secs >= 1,
            "COUNTERSIGN_METRICS_INTERVAL_SECS must be at least 1"
        );
        anyhow::ensure!(
            self.metrics_listen.trim() != self.listen.trim() || self.listen.ends_with(":0"),
            "COUNTERSIGN_METRICS_LISTEN must differ from COUNTERSIGN_LISTEN: /metrics is never served on the public port"
        );
        for origin in self.cors_origin_list() {
            anyhow::ensure!(
                origin == "*" || is_origin(&origin),
                "COUNTERSIGN_CORS_ORIGINS: `{origin}` is not an origin like `https://app.example.com`"
            );
        }
        parse_trusted_proxies(&self.trusted_proxies)
            .map_err(|e| anyhow::anyhow!("COUNTERSIGN_TRUSTED_PROXIES: {e}"))?;
        Ok(())
    }

    /// The origins of [`Config::cors_origins`], trimmed, without empty entries.
    pub fn cors_origin_list(&self) -> Vec<String> {
        self.cors_origins
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The metrics listener's address; `None` when there is none.
    pub fn metrics_address(&self) -> Option<&str> {
        Some(self.metrics_listen.trim()).filter(|address| !address.is_empty())
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

/// `scheme://host[:port]`, nothing more, as browsers send in `Origin`.
fn is_origin(origin: &str) -> bool {
    match origin.parse::<actix_web::http::Uri>() {
        Ok(uri) => {
            matches!(uri.scheme_str(), Some("http" | "https"))
                && uri.authority().is_some()
                && uri.path_and_query().is_none_or(|p| p.as_str() == "/")
                && !origin.ends_with('/')
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_have_a_listener_apart_from_the_public_one() {
        let defaults = Config::default();
        assert!(defaults.validate().is_ok());
        assert_eq!(defaults.metrics_address(), Some("127.0.0.1:9090"));
        assert_ne!(defaults.metrics_address(), Some(defaults.listen.as_str()));
        let off = Config {
            metrics_listen: " ".into(),
            ..Config::default()
        };
        assert_eq!(off.metrics_address(), None);
        let shared = Config {
            metrics_listen: "127.0.0.1:8080".into(),
            ..Config::default()
        };
        assert!(shared.validate().is_err(), "/metrics on the public port");
        let never = Config {
            metrics_interval_secs: 0,
            ..Config::default()
        };
        assert!(never.validate().is_err());
    }

    #[test]
    fn cors_origins_are_scheme_host_and_port() {
        assert!(is_origin("https://app.example.com"));
        assert!(is_origin("http://localhost:5173"));
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://a.example/x",
            "ftp://a.example",
        ] {
            assert!(!is_origin(bad), "{bad}");
        }
        let config = Config {
            cors_origins: " https://a.example , ,http://b.example:8080".into(),
            ..Config::default()
        };
        assert_eq!(
            config.cors_origin_list(),
            ["https://a.example", "http://b.example:8080"]
        );
    }
}
