//! Sign-in, tokens, keys and the first admin.

use std::num::NonZeroU32;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::environment::Environment;
use super::vars::{ConfigError, Vars};

#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// `JWT_SECRET`; required in production, else generated once and kept in the data folder.
    pub jwt_secret: Option<SecretString>,
    /// `AIM_ADMIN_EMAIL` and `AIM_ADMIN_PASSWORD`: the first admin, created at start when no
    /// user exists. Both or neither.
    pub admin: Option<(String, SecretString)>,
    /// `AIM_ORG_NAME`: the organization bootstrap creates.
    pub org_name: String,
    /// `AIM_ACCESS_TOKEN_TTL_S`.
    pub access_token_ttl: Duration,
    /// `AIM_REFRESH_TOKEN_TTL_S`.
    pub refresh_token_ttl: Duration,
    /// `AIM_API_KEY_CACHE_TTL_S`: how long a key check is trusted without the database, and so
    /// how long a revocation on another replica takes to apply here.
    pub api_key_cache_ttl: Duration,
    /// `AIM_LOGIN_RATE_LIMIT_PER_EMAIL_PER_MIN`.
    pub login_rate_limit_per_email_per_min: NonZeroU32,
    /// `AIM_LOGIN_RATE_LIMIT_PER_IP_PER_MIN`.
    pub login_rate_limit_per_ip_per_min: NonZeroU32,
}

impl AuthConfig {
    /// HS256 keys shorter than the hash output weaken the signature.
    pub const MIN_JWT_SECRET_BYTES: usize = 32;
    pub const DEFAULT_ORG_NAME: &str = "Default";
    pub const DEFAULT_ACCESS_TOKEN_TTL_S: u64 = 3_600;
    pub const DEFAULT_REFRESH_TOKEN_TTL_S: u64 = 30 * 24 * 3_600;
    pub const DEFAULT_API_KEY_CACHE_TTL_S: u64 = 30;
    /// 10 (written as 1 + 9: a constant `NonZeroU32` cannot be built from a plain 10 without
    /// an `unwrap`).
    pub const DEFAULT_LOGIN_RATE_LIMIT_PER_EMAIL_PER_MIN: NonZeroU32 =
        NonZeroU32::MIN.saturating_add(9);
    /// 30.
    pub const DEFAULT_LOGIN_RATE_LIMIT_PER_IP_PER_MIN: NonZeroU32 =
        NonZeroU32::MIN.saturating_add(29);

    pub(super) fn read(vars: &Vars<'_>, environment: Environment) -> Result<Self, ConfigError> {
        Ok(Self {
            jwt_secret: jwt_secret(vars, environment)?,
            admin: admin(vars)?,
            org_name: vars
                .get("AIM_ORG_NAME")
                .unwrap_or(Self::DEFAULT_ORG_NAME)
                .to_owned(),
            access_token_ttl: vars
                .seconds("AIM_ACCESS_TOKEN_TTL_S", Self::DEFAULT_ACCESS_TOKEN_TTL_S)?,
            refresh_token_ttl: vars
                .seconds("AIM_REFRESH_TOKEN_TTL_S", Self::DEFAULT_REFRESH_TOKEN_TTL_S)?,
            api_key_cache_ttl: vars
                .seconds("AIM_API_KEY_CACHE_TTL_S", Self::DEFAULT_API_KEY_CACHE_TTL_S)?,
            login_rate_limit_per_email_per_min: vars.or(
                "AIM_LOGIN_RATE_LIMIT_PER_EMAIL_PER_MIN",
                Self::DEFAULT_LOGIN_RATE_LIMIT_PER_EMAIL_PER_MIN,
            )?,
            login_rate_limit_per_ip_per_min: vars.or(
                "AIM_LOGIN_RATE_LIMIT_PER_IP_PER_MIN",
                Self::DEFAULT_LOGIN_RATE_LIMIT_PER_IP_PER_MIN,
            )?,
        })
    }
}

fn jwt_secret(
    vars: &Vars<'_>,
    environment: Environment,
) -> Result<Option<SecretString>, ConfigError> {
    let secret = vars
        .get("JWT_SECRET")
        .map(|s| SecretString::from(s.to_owned()));
    match &secret {
        Some(secret) if secret.expose_secret().len() < AuthConfig::MIN_JWT_SECRET_BYTES => {
            Err(ConfigError::Invalid {
                name: "JWT_SECRET",
                value: "<redacted>".into(),
                reason: format!(
                    "must be at least {} bytes",
                    AuthConfig::MIN_JWT_SECRET_BYTES
                ),
            })
        }
        None if environment == Environment::Production => Err(ConfigError::Missing {
            name: "JWT_SECRET",
            reason: "AIM_ENVIRONMENT=production needs a secret shared by every replica",
        }),
        _ => Ok(secret),
    }
}

fn admin(vars: &Vars<'_>) -> Result<Option<(String, SecretString)>, ConfigError> {
    match (vars.get("AIM_ADMIN_EMAIL"), vars.get("AIM_ADMIN_PASSWORD")) {
        (Some(email), Some(password)) => Ok(Some((
            email.to_owned(),
            SecretString::from(password.to_owned()),
        ))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(ConfigError::Missing {
            name: "AIM_ADMIN_PASSWORD",
            reason: "AIM_ADMIN_EMAIL is set; give both or neither",
        }),
        (None, Some(_)) => Err(ConfigError::Missing {
            name: "AIM_ADMIN_EMAIL",
            reason: "AIM_ADMIN_PASSWORD is set; give both or neither",
        }),
    }
}
