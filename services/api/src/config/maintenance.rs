//! The maintenance task (on one replica) and how long data is kept.

use std::time::Duration;

use super::vars::{ConfigError, Vars};

#[derive(Debug, Clone)]
pub struct MaintenanceConfig {
    /// `AIM_MAINTENANCE_INTERVAL_S`: how often the maintenance task runs (on one replica).
    pub interval: Duration,
    /// `AIM_RETENTION_DAYS`: days of raw `api_calls` kept.
    pub retention_days: u64,
    /// `AIM_ROLLUP_RETENTION_DAYS`: days of rollups kept.
    pub rollup_retention_days: u64,
    /// `AIM_TRUST_RECOMPUTE_INTERVAL_S`: how often the maintenance leader recomputes every
    /// agent's trust score (one agent is also recomputed after each of its verifications).
    pub trust_interval: Duration,
}

impl MaintenanceConfig {
    pub const DEFAULT_INTERVAL_S: u64 = 300;
    pub const DEFAULT_RETENTION_DAYS: u64 = 90;
    pub const DEFAULT_ROLLUP_RETENTION_DAYS: u64 = 730;
    pub const DEFAULT_TRUST_INTERVAL_S: u64 = 300;

    pub(super) fn read(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            interval: vars.seconds("AIM_MAINTENANCE_INTERVAL_S", Self::DEFAULT_INTERVAL_S)?,
            retention_days: vars.positive("AIM_RETENTION_DAYS", Self::DEFAULT_RETENTION_DAYS)?,
            rollup_retention_days: vars.positive(
                "AIM_ROLLUP_RETENTION_DAYS",
                Self::DEFAULT_ROLLUP_RETENTION_DAYS,
            )?,
            trust_interval: vars.seconds(
                "AIM_TRUST_RECOMPUTE_INTERVAL_S",
                Self::DEFAULT_TRUST_INTERVAL_S,
            )?,
        })
    }
}
