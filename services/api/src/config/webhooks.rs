//! Webhook deliveries: the key their secrets are encrypted with, where they may go, and how
//! they are retried.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::Environment;
use super::vars::{ConfigError, Vars};

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// `AIM_WEBHOOK_ENCRYPTION_KEY`: 64 hex digits (32 bytes), the same on every replica;
    /// webhook secrets are encrypted with it (AES-256-GCM). Required in production; elsewhere
    /// one is generated into the data folder.
    pub encryption_key: Option<SecretString>,
    /// `AIM_WEBHOOK_ALLOW_PRIVATE`: let endpoints resolve to loopback, private and other
    /// internal addresses. Off by default, so a tenant cannot make the service call its own
    /// network.
    pub allow_private: bool,
    /// `AIM_WEBHOOK_TIMEOUT_MS`: one attempt, connection to status.
    pub timeout: Duration,
    /// `AIM_WEBHOOK_POLL_MS`: how often each replica looks for due deliveries.
    pub poll: Duration,
    /// `AIM_WEBHOOK_MAX_ATTEMPTS`: attempts before a delivery is marked failed.
    pub max_attempts: u32,
    /// `AIM_WEBHOOK_RETRY_BASE_MS`: the first retry's wait, doubled per attempt.
    pub retry_base: Duration,
    /// `AIM_WEBHOOK_RETRY_CAP_S`: the longest wait between attempts.
    pub retry_cap: Duration,
    /// `AIM_WEBHOOK_DISABLE_AFTER`: failed attempts in a row, across deliveries, after which
    /// an endpoint is disabled until an admin enables it.
    pub disable_after: u32,
}

impl WebhookConfig {
    pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
    pub const DEFAULT_POLL_MS: u64 = 1_000;
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
    pub const DEFAULT_RETRY_BASE_MS: u64 = 10_000;
    pub const DEFAULT_RETRY_CAP_S: u64 = 3_600;
    pub const DEFAULT_DISABLE_AFTER: u32 = 20;

    pub(super) fn read(vars: &Vars<'_>, environment: Environment) -> Result<Self, ConfigError> {
        let encryption_key = vars
            .get("AIM_WEBHOOK_ENCRYPTION_KEY")
            .map(|k| SecretString::from(k.to_owned()));
        match &encryption_key {
            Some(key) if aim_webhooks::Cipher::from_hex(key.expose_secret()).is_err() => {
                return Err(ConfigError::Invalid {
                    name: "AIM_WEBHOOK_ENCRYPTION_KEY",
                    value: "<redacted>".into(),
                    reason: "must be 64 hex digits (32 bytes), e.g. from `openssl rand -hex 32`"
                        .into(),
                });
            }
            None if environment == Environment::Production => {
                return Err(ConfigError::Missing {
                    name: "AIM_WEBHOOK_ENCRYPTION_KEY",
                    reason: "AIM_ENVIRONMENT=production needs a key shared by every replica",
                });
            }
            _ => {}
        }
        Ok(Self {
            encryption_key,
            allow_private: vars.flag("AIM_WEBHOOK_ALLOW_PRIVATE", false)?,
            timeout: vars.millis("AIM_WEBHOOK_TIMEOUT_MS", Self::DEFAULT_TIMEOUT_MS)?,
            poll: vars.millis("AIM_WEBHOOK_POLL_MS", Self::DEFAULT_POLL_MS)?,
            max_attempts: vars.positive("AIM_WEBHOOK_MAX_ATTEMPTS", Self::DEFAULT_MAX_ATTEMPTS)?,
            retry_base: vars.millis("AIM_WEBHOOK_RETRY_BASE_MS", Self::DEFAULT_RETRY_BASE_MS)?,
            retry_cap: vars.seconds("AIM_WEBHOOK_RETRY_CAP_S", Self::DEFAULT_RETRY_CAP_S)?,
            disable_after: vars
                .positive("AIM_WEBHOOK_DISABLE_AFTER", Self::DEFAULT_DISABLE_AFTER)?,
        })
    }
}
