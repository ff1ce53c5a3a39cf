//! `[runners]`: how the server treats runners that pull work over HTTP (see `runners/`).

use crate::config::{invalid, ConfigError};
use crate::model::Labels;
use serde::Deserialize;

/// Longest lease a config may ask for: a dead runner's items wait at most this long.
pub const LEASE_SECS_MAX: u64 = 3600;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RunnersConfig {
    /// How long a claim holds without a heartbeat before its item goes back to ready.
    pub lease_secs: u64,
    /// Labels of the server's own pool (the local runner): it takes only items whose
    /// `requires` these cover.
    pub local_labels: Vec<String>,
    /// Largest file a runner may upload as an artifact (bytes).
    pub artifact_max_bytes: u64,
}

impl Default for RunnersConfig {
    fn default() -> Self {
        RunnersConfig {
            lease_secs: 30,
            local_labels: Vec::new(),
            artifact_max_bytes: 64 << 20,
        }
    }
}

impl RunnersConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(2..=LEASE_SECS_MAX).contains(&self.lease_secs) {
            return Err(invalid(
                "runners.lease_secs",
                format!(
                    "must be between 2 and {LEASE_SECS_MAX}, got {}",
                    self.lease_secs
                ),
            ));
        }
        Labels::parse(&self.local_labels).map_err(|e| invalid("runners.local_labels", e))?;
        if self.artifact_max_bytes == 0 || self.artifact_max_bytes > 1 << 30 {
            return Err(invalid(
                "runners.artifact_max_bytes",
                "must be between 1 and 1073741824 (1 GiB)",
            ));
        }
        Ok(())
    }

    pub fn local_labels(&self) -> Labels {
        Labels::parse(&self.local_labels).unwrap_or_default()
    }
}

/// What the runner routes need of the config, as app data.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    pub lease_secs: u64,
    pub artifact_max_bytes: u64,
    pub local_labels: Labels,
}

impl RunnerSettings {
    pub fn from_config(config: &RunnersConfig) -> RunnerSettings {
        RunnerSettings {
            lease_secs: config.lease_secs,
            artifact_max_bytes: config.artifact_max_bytes,
            local_labels: config.local_labels(),
        }
    }
}
