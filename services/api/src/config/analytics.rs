//! Recording API calls: whether, and how the pipeline is sized.

use std::path::Path;
use std::time::Duration;

use aim_pipeline::PipelineConfig;

use super::vars::{ConfigError, Vars};

#[derive(Debug, Clone)]
pub struct AnalyticsConfig {
    /// `AIM_ANALYTICS_ENABLED`: record API calls; off only to measure the layer's cost.
    pub enabled: bool,
    /// The pipeline's sizing: `AIM_ANALYTICS_QUEUE_CAPACITY`, `AIM_ANALYTICS_WRITERS`,
    /// `AIM_ANALYTICS_BATCH_MAX`, `AIM_ANALYTICS_FLUSH_MS`, `AIM_ANALYTICS_SPOOL_DIR`
    /// (`$AIM_DATA_DIR/spool`), `AIM_ANALYTICS_SPOOL_MAX_BYTES`, `AIM_ANALYTICS_SPOOL_MAX_AGE_S`,
    /// `AIM_ANALYTICS_NICE`.
    pub pipeline: PipelineConfig,
}

impl AnalyticsConfig {
    pub const DEFAULT_QUEUE_CAPACITY: usize = 65_536;
    pub const DEFAULT_WRITERS: usize = 2;
    pub const DEFAULT_BATCH_MAX: usize = aim_pipeline::DEFAULT_BATCH_MAX;
    pub const DEFAULT_FLUSH_MS: u64 = 200;
    pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 1024 * 1024 * 1024;
    pub const DEFAULT_SPOOL_MAX_AGE_S: u64 = 7 * 24 * 3_600;
    pub const DEFAULT_NICE: u8 = 10;
    pub const DEFAULT_DEAD_LETTER_MAX_BYTES: u64 = 1024 * 1024 * 1024;

    pub(super) fn read(vars: &Vars<'_>, data_dir: &Path) -> Result<Self, ConfigError> {
        Ok(Self {
            enabled: vars.flag("AIM_ANALYTICS_ENABLED", true)?,
            pipeline: PipelineConfig {
                queue_capacity: vars
                    .positive("AIM_ANALYTICS_QUEUE_CAPACITY", Self::DEFAULT_QUEUE_CAPACITY)?,
                writers: vars.positive("AIM_ANALYTICS_WRITERS", Self::DEFAULT_WRITERS)?,
                batch_max: vars.positive("AIM_ANALYTICS_BATCH_MAX", Self::DEFAULT_BATCH_MAX)?,
                flush_after: vars.millis("AIM_ANALYTICS_FLUSH_MS", Self::DEFAULT_FLUSH_MS)?,
                spool_dir: vars
                    .get("AIM_ANALYTICS_SPOOL_DIR")
                    .map_or_else(|| data_dir.join("spool"), Into::into),
                spool_max_bytes: vars.positive(
                    "AIM_ANALYTICS_SPOOL_MAX_BYTES",
                    Self::DEFAULT_SPOOL_MAX_BYTES,
                )?,
                spool_max_age: Duration::from_secs(vars.positive(
                    "AIM_ANALYTICS_SPOOL_MAX_AGE_S",
                    Self::DEFAULT_SPOOL_MAX_AGE_S,
                )?),
                dead_letter_dir: vars
                    .get("AIM_ANALYTICS_DEAD_LETTER_DIR")
                    .map_or_else(|| data_dir.join("dead-letter"), Into::into),
                dead_letter_max_bytes: vars.positive(
                    "AIM_ANALYTICS_DEAD_LETTER_MAX_BYTES",
                    Self::DEFAULT_DEAD_LETTER_MAX_BYTES,
                )?,
                rollups: true,
                nice: vars.nice("AIM_ANALYTICS_NICE", Self::DEFAULT_NICE)?,
            },
        })
    }
}
