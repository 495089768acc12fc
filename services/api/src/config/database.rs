//! Which PostgreSQL, how the service connects to it, and the private cluster it runs without one.

use std::path::PathBuf;
use std::time::Duration;

use aim_connect::{DatabaseSettings, Host, SslMode};
use secrecy::SecretString;

use super::vars::{ConfigError, Vars};

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// `DATABASE_URL`, or `POSTGRES_HOST` with its companions (`POSTGRES_PORT`,
    /// `POSTGRES_USER`, `POSTGRES_PASSWORD`, `POSTGRES_DB`, `POSTGRES_SSL_MODE`,
    /// `POSTGRES_SSL_ROOT_CERT`); `None` means: run the private cluster under the data folder.
    pub external: Option<DatabaseSettings>,
    /// `AIM_DB_MAX_CONNECTIONS`: the request pool's size.
    pub max_connections: u32,
    /// `AIM_DB_ACQUIRE_TIMEOUT_MS`: how long a request waits for a connection before it gets
    /// a 503.
    pub acquire_timeout: Duration,
    /// `AIM_DB_CONNECT_WAIT_MS`: how long start-up waits for the database to come up.
    pub connect_wait: Duration,
    /// `AIM_AUTO_MIGRATE`: apply pending migrations at `aim serve` start.
    pub auto_migrate: bool,
    /// `AIM_LOCAL_PG_PORT`: also open the private cluster on `127.0.0.1:<port>`.
    pub local_pg_port: Option<u16>,
    /// `PATH`, searched for the PostgreSQL server binaries.
    pub path_var: Option<std::ffi::OsString>,
}

impl DatabaseConfig {
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 20;
    pub const DEFAULT_ACQUIRE_TIMEOUT_MS: u64 = 3_000;
    pub const DEFAULT_CONNECT_WAIT_MS: u64 = 30_000;
    pub const DEFAULT_AUTO_MIGRATE: bool = true;
    /// The database the private cluster serves.
    pub const LOCAL_DATABASE: &str = "aim";
    pub const DEFAULT_POSTGRES_USER: &str = aim_connect::DEFAULT_USER;
    pub const DEFAULT_POSTGRES_DB: &str = Self::LOCAL_DATABASE;
    /// libpq's default: TLS when the server offers it, unverified. Managed servers want
    /// `verify-full` (or `verify-ca`), set explicitly.
    pub const DEFAULT_POSTGRES_SSL_MODE: SslMode = SslMode::Prefer;

    pub(super) fn read(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            external: external(vars)?,
            max_connections: vars
                .positive("AIM_DB_MAX_CONNECTIONS", Self::DEFAULT_MAX_CONNECTIONS)?,
            acquire_timeout: vars.millis(
                "AIM_DB_ACQUIRE_TIMEOUT_MS",
                Self::DEFAULT_ACQUIRE_TIMEOUT_MS,
            )?,
            connect_wait: Duration::from_millis(
                vars.or("AIM_DB_CONNECT_WAIT_MS", Self::DEFAULT_CONNECT_WAIT_MS)?,
            ),
            auto_migrate: vars.flag("AIM_AUTO_MIGRATE", Self::DEFAULT_AUTO_MIGRATE)?,
            local_pg_port: vars.optional("AIM_LOCAL_PG_PORT")?,
            path_var: None,
        })
    }

    pub fn pool_settings(&self) -> aim_store::PoolSettings {
        aim_store::PoolSettings {
            max_connections: self.max_connections,
            acquire_timeout: self.acquire_timeout,
        }
    }
}

/// The separate settings of the deployment guide, each beside `DATABASE_URL`'s form.
pub(super) const POSTGRES_PARTS: [&str; 7] = [
    "POSTGRES_HOST",
    "POSTGRES_PORT",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "POSTGRES_DB",
    "POSTGRES_SSL_MODE",
    "POSTGRES_SSL_ROOT_CERT",
];

/// libpq variables the app pool's driver (sqlx) would act on but the writers' would not, so the
/// two could connect differently; they are refused instead of half-honoured.
pub(super) const UNREAD_PG_VARIABLES: [&str; 4] =
    ["PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY", "PGOPTIONS"];

/// `DATABASE_URL`, or `POSTGRES_HOST` and its companions, or neither (the private cluster).
fn external(vars: &Vars<'_>) -> Result<Option<DatabaseSettings>, ConfigError> {
    let get = |name: &str| vars.get(name);
    let unread = |name: &'static str| ConfigError::Unread {
        name,
        reason: "set the database with DATABASE_URL or the POSTGRES_* variables \
                 (docs/configuration.md)",
    };
    if let Some(name) = UNREAD_PG_VARIABLES
        .into_iter()
        .find(|name| get(name).is_some())
    {
        return Err(unread(name));
    }
    let parts_given = POSTGRES_PARTS.into_iter().find(|name| get(name).is_some());
    let settings = match (get("DATABASE_URL"), parts_given) {
        (Some(_), Some(part)) => {
            return Err(ConfigError::Conflict {
                first: "DATABASE_URL",
                second: part,
                reason: "configure the database with one form or the other",
            });
        }
        (Some(url), None) => DatabaseSettings::from_url(url).map_err(|e| ConfigError::Invalid {
            name: "DATABASE_URL",
            value: "<redacted>".into(),
            reason: e.to_string(),
        })?,
        (None, None) => return Ok(None),
        (None, Some(_)) => {
            let Some(host) = get("POSTGRES_HOST") else {
                return Err(ConfigError::Missing {
                    name: "POSTGRES_HOST",
                    reason: "a POSTGRES_* variable is set; POSTGRES_HOST selects the external server",
                });
            };
            let invalid = |name: &'static str, value: &str, reason: String| ConfigError::Invalid {
                name,
                value: value.to_owned(),
                reason,
            };
            let mut settings = DatabaseSettings::new(
                Host::parse(host).map_err(|e| invalid("POSTGRES_HOST", host, e.to_string()))?,
            );
            if let Some(port) = get("POSTGRES_PORT") {
                settings.port = aim_connect::parse_port(port)
                    .map_err(|e| invalid("POSTGRES_PORT", port, e.to_string()))?;
            }
            settings.user = get("POSTGRES_USER")
                .unwrap_or(DatabaseConfig::DEFAULT_POSTGRES_USER)
                .to_owned();
            settings.password = get("POSTGRES_PASSWORD").map(|p| SecretString::from(p.to_owned()));
            settings.database = get("POSTGRES_DB")
                .unwrap_or(DatabaseConfig::DEFAULT_POSTGRES_DB)
                .to_owned();
            settings.ssl_mode = match get("POSTGRES_SSL_MODE") {
                Some(mode) => mode.parse().map_err(|e: aim_connect::SettingsError| {
                    invalid("POSTGRES_SSL_MODE", mode, e.to_string())
                })?,
                None => DatabaseConfig::DEFAULT_POSTGRES_SSL_MODE,
            };
            settings.ssl_root_cert = get("POSTGRES_SSL_ROOT_CERT").map(PathBuf::from);
            settings
        }
    };
    if settings.password.is_none() && get("PGPASSWORD").is_some() {
        return Err(unread("PGPASSWORD"));
    }
    Ok(Some(settings))
}
