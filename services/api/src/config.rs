//! The service's configuration, read from the environment once at start-up and grouped by
//! concern: [`HttpConfig`], [`DatabaseConfig`], [`AuthConfig`], [`AnalyticsConfig`],
//! [`MaintenanceConfig`], each default beside its field in its group's file. Nothing else in the
//! service reads environment variables. Every variable and its default is listed in
//! `docs/configuration.md`; a bad value stops start-up with the variable's name in the message.

mod analytics;
mod auth;
mod database;
mod environment;
mod http;
mod maintenance;
mod vars;
mod webhooks;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

pub use analytics::AnalyticsConfig;
pub use auth::AuthConfig;
pub use database::DatabaseConfig;
pub use environment::{Environment, LogFormat};
pub use http::HttpConfig;
pub use maintenance::MaintenanceConfig;
pub use vars::ConfigError;
use vars::Vars;
pub use webhooks::WebhookConfig;

/// Everything the service is told by its environment. Secrets are `SecretString`, whose `Debug`
/// prints a placeholder, so the struct can be logged whole.
#[derive(Debug, Clone)]
pub struct Config {
    /// `AIM_ENVIRONMENT`: `development` by default.
    pub environment: Environment,
    /// `AIM_DATA_DIR`: the private cluster, the generated JWT secret, the spool.
    pub data_dir: PathBuf,
    /// `AIM_LOG_FORMAT`: `pretty` by default.
    pub log_format: LogFormat,
    /// `RUST_LOG`: a tracing filter such as `info,aim_api=debug`.
    pub log_filter: String,
    /// `AIM_SHUTDOWN_GRACE_MS`: one deadline for the whole shutdown.
    pub shutdown_grace: Duration,
    pub http: HttpConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub analytics: AnalyticsConfig,
    pub maintenance: MaintenanceConfig,
    pub webhooks: WebhookConfig,
}

impl Config {
    pub const DEFAULT_DATA_DIR: &str = "./.aim";
    pub const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 10_000;
    /// sqlx reports server notices ("relation already exists, skipping") at INFO; they are noise.
    pub const DEFAULT_LOG_FILTER: &str = "info,sqlx::postgres::notice=warn";

    /// Reads the process environment.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first bad variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let mut config = Self::from_vars(&vars)?;
        config.database.path_var = std::env::var_os("PATH");
        Ok(config)
    }

    /// Reads the given variables; the environment is never consulted, so tests can call it.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first bad variable.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let vars = Vars(vars);
        let environment = vars.or("AIM_ENVIRONMENT", Environment::Development)?;
        let data_dir = PathBuf::from(vars.get("AIM_DATA_DIR").unwrap_or(Self::DEFAULT_DATA_DIR));
        Ok(Self {
            log_format: vars.or("AIM_LOG_FORMAT", LogFormat::Pretty)?,
            log_filter: vars
                .get("RUST_LOG")
                .unwrap_or(Self::DEFAULT_LOG_FILTER)
                .to_owned(),
            shutdown_grace: Duration::from_millis(
                vars.or("AIM_SHUTDOWN_GRACE_MS", Self::DEFAULT_SHUTDOWN_GRACE_MS)?,
            ),
            http: HttpConfig::read(&vars)?,
            database: DatabaseConfig::read(&vars)?,
            auth: AuthConfig::read(&vars, environment)?,
            analytics: AnalyticsConfig::read(&vars, &data_dir)?,
            maintenance: MaintenanceConfig::read(&vars)?,
            webhooks: WebhookConfig::read(&vars, environment)?,
            environment,
            data_dir,
        })
    }
}

#[cfg(test)]
mod tests;
