//! The agent's TOML configuration (see `agent.example.toml`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use uuid::Uuid;

use crate::client::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub api_url: String,
    pub agent_id: Uuid,
    pub secret_file: PathBuf,
    pub spool_dir: PathBuf,
    /// Long-poll wait for the work list, in seconds (the API caps it at 50).
    #[serde(default = "default_poll_wait")]
    pub poll_wait_secs: u64,
    #[serde(default)]
    pub serial: SerialSettings,
    pub devices: Vec<DeviceConfig>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SerialSettings {
    /// How long to wait for a device's answer before retransmitting.
    pub timeout_ms: u64,
    /// Retransmissions before the line is considered lost and reopened.
    pub retries: u32,
    /// Pause before reopening a lost port.
    pub reconnect_ms: u64,
}

impl Default for SerialSettings {
    fn default() -> Self {
        Self {
            timeout_ms: 500,
            retries: 3,
            reconnect_ms: 1000,
        }
    }
}

impl SerialSettings {
    pub fn link_config(&self) -> crate::link::LinkConfig {
        crate::link::LinkConfig {
            timeout: Duration::from_millis(self.timeout_ms),
            retries: self.retries,
            reconnect_delay: Duration::from_millis(self.reconnect_ms),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    RemoteUnit,
    DeskUnit,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// The remote device's id in Countersign.
    pub id: Uuid,
    pub port: PathBuf,
    #[serde(default = "default_baud")]
    pub baud_rate: u32,
    pub kind: DeviceKind,
}

fn default_poll_wait() -> u64 {
    50
}

fn default_baud() -> u32 {
    115_200
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config =
            toml::from_str(text).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let url = reqwest::Url::parse(&config.api_url)
            .map_err(|e| ConfigError::Invalid(format!("api_url: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::Invalid("api_url must be http or https".into()));
        }
        if config.devices.is_empty() {
            return Err(ConfigError::Invalid(
                "at least one [[devices]] entry is needed".into(),
            ));
        }
        let mut ids: Vec<Uuid> = config.devices.iter().map(|d| d.id).collect();
        ids.sort();
        ids.dedup();
        if ids.len() != config.devices.len() {
            return Err(ConfigError::Invalid("device ids must be unique".into()));
        }
        if config.devices.iter().any(|d| d.baud_rate == 0) {
            return Err(ConfigError::Invalid("baud_rate must be positive".into()));
        }
        Ok(config)
    }

    pub fn read_secret(&self) -> Result<Secret, ConfigError> {
        let text =
            std::fs::read_to_string(&self.secret_file).map_err(|source| ConfigError::Read {
                path: self.secret_file.clone(),
                source,
            })?;
        let secret = text.trim();
        if secret.is_empty() {
            return Err(ConfigError::Invalid("the secret file is empty".into()));
        }
        Ok(Secret::new(secret))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_example_parses() {
        let config = Config::parse(include_str!("../agent.example.toml")).unwrap();
        assert_eq!(config.devices.len(), 2);
        assert_eq!(config.devices[1].kind, DeviceKind::DeskUnit);
    }

    #[test]
    fn refuses_unknown_fields_and_bad_urls() {
        let base = include_str!("../agent.example.toml");
        assert!(Config::parse(&format!("surprise = 1\n{base}")).is_err());
        assert!(Config::parse(&base.replace("https://", "ftp://")).is_err());
    }
}
