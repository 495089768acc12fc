//! The service's configuration, read from the environment once at start-up. Nothing else in
//! the service reads environment variables. Every variable and its default is listed in
//! `docs/configuration.md`; a bad value stops start-up with the variable's name in the message.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use aim_connect::{DatabaseSettings, Host, SslMode};
use secrecy::{ExposeSecret, SecretString};

pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";
pub const DEFAULT_DATA_DIR: &str = "./.aim";
pub const DEFAULT_AUTO_MIGRATE: bool = true;
pub const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 10_000;
/// sqlx reports server notices ("relation already exists, skipping") at INFO; they are noise.
pub const DEFAULT_LOG_FILTER: &str = "info,sqlx::postgres::notice=warn";
pub const DEFAULT_DB_MAX_CONNECTIONS: u32 = 20;
pub const DEFAULT_DB_ACQUIRE_TIMEOUT_MS: u64 = 3_000;
pub const DEFAULT_DB_CONNECT_WAIT_MS: u64 = 30_000;
pub const DEFAULT_ORG_NAME: &str = "Default";
pub const DEFAULT_POSTGRES_PORT: u16 = aim_connect::DEFAULT_PORT;
pub const DEFAULT_POSTGRES_USER: &str = aim_connect::DEFAULT_USER;
pub const DEFAULT_POSTGRES_DB: &str = LOCAL_DATABASE;
/// libpq's default: TLS when the server offers it, unverified. Managed servers want
/// `verify-full` (or `verify-ca`), set explicitly.
pub const DEFAULT_POSTGRES_SSL_MODE: SslMode = SslMode::Prefer;
pub const DEFAULT_ACCESS_TOKEN_TTL_S: u64 = 3_600;
pub const DEFAULT_REFRESH_TOKEN_TTL_S: u64 = 30 * 24 * 3_600;
pub const DEFAULT_API_KEY_CACHE_TTL_S: u64 = 30;
pub const DEFAULT_AGENT_RATE_LIMIT_PER_S: u32 = 100;
pub const DEFAULT_LOGIN_RATE_LIMIT_PER_EMAIL_PER_MIN: u32 = 10;
pub const DEFAULT_LOGIN_RATE_LIMIT_PER_IP_PER_MIN: u32 = 30;
pub const DEFAULT_ANALYTICS_QUEUE_CAPACITY: usize = 65_536;
pub const DEFAULT_ANALYTICS_WRITERS: usize = 2;
pub const DEFAULT_ANALYTICS_BATCH_MAX: usize = aim_pipeline::DEFAULT_BATCH_MAX;
pub const DEFAULT_ANALYTICS_FLUSH_MS: u64 = 200;
pub const DEFAULT_ANALYTICS_SPOOL_MAX_BYTES: u64 = 1024 * 1024 * 1024;
pub const DEFAULT_ANALYTICS_SPOOL_MAX_AGE_S: u64 = 7 * 24 * 3_600;
pub const DEFAULT_ANALYTICS_NICE: u8 = 10;
pub const DEFAULT_MAINTENANCE_INTERVAL_S: u64 = 300;
pub const DEFAULT_RETENTION_DAYS: u64 = 90;
pub const DEFAULT_ROLLUP_RETENTION_DAYS: u64 = 730;
/// The database the private cluster serves.
pub const LOCAL_DATABASE: &str = "aim";
/// HS256 keys shorter than the hash output weaken the signature.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// Where the service runs; production refuses the conveniences of development.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Test,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Test => "test",
            Self::Production => "production",
        }
    }
}

impl FromStr for Environment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "development" => Ok(Self::Development),
            "test" => Ok(Self::Test),
            "production" => Ok(Self::Production),
            _ => Err("expected development, test or production".into()),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable, for a terminal.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pretty" => Ok(Self::Pretty),
            "json" => Ok(Self::Json),
            _ => Err("expected pretty or json".into()),
        }
    }
}

/// Everything the service is told by its environment. Secrets are `SecretString`, whose `Debug`
/// prints a placeholder, so the struct can be logged whole.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL`, or `POSTGRES_HOST` with its companions (`POSTGRES_PORT`,
    /// `POSTGRES_USER`, `POSTGRES_PASSWORD`, `POSTGRES_DB`, `POSTGRES_SSL_MODE`,
    /// `POSTGRES_SSL_ROOT_CERT`); `None` means: run the private cluster under `data_dir`.
    pub database: Option<DatabaseSettings>,
    /// `AIM_LISTEN`: the public API.
    pub listen: SocketAddr,
    /// `AIM_METRICS_LISTEN`: Prometheus `/metrics`, kept off the public listener.
    pub metrics_listen: SocketAddr,
    /// `AIM_ENVIRONMENT`.
    pub environment: Environment,
    /// `JWT_SECRET`; required in production, else generated once and kept in `data_dir`.
    pub jwt_secret: Option<SecretString>,
    /// `AIM_DATA_DIR`: the private cluster, the generated JWT secret, later the spool.
    pub data_dir: PathBuf,
    /// `AIM_LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `RUST_LOG`: a tracing filter such as `info,aim_api=debug`.
    pub log_filter: String,
    /// `AIM_AUTO_MIGRATE`: apply pending migrations at `aim serve` start.
    pub auto_migrate: bool,
    /// `AIM_SHUTDOWN_GRACE_MS`: one deadline for the whole shutdown.
    pub shutdown_grace: Duration,
    /// `AIM_LOCAL_PG_PORT`: also open the private cluster on `127.0.0.1:<port>`.
    pub local_pg_port: Option<u16>,
    /// `AIM_DB_MAX_CONNECTIONS`.
    pub db_max_connections: u32,
    /// `AIM_DB_ACQUIRE_TIMEOUT_MS`: how long a request waits for a connection before it gets
    /// a 503.
    pub db_acquire_timeout: Duration,
    /// `AIM_DB_CONNECT_WAIT_MS`: how long start-up waits for the database to come up.
    pub db_connect_wait: Duration,
    /// `PATH`, searched for the PostgreSQL server binaries.
    pub path_var: Option<std::ffi::OsString>,
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
    /// `AIM_AGENT_RATE_LIMIT_PER_S`: requests per second per agent key; 0 turns it off.
    pub agent_rate_limit_per_s: u32,
    /// `AIM_LOGIN_RATE_LIMIT_PER_EMAIL_PER_MIN`.
    pub login_rate_limit_per_email_per_min: NonZeroU32,
    /// `AIM_LOGIN_RATE_LIMIT_PER_IP_PER_MIN`.
    pub login_rate_limit_per_ip_per_min: NonZeroU32,
    /// `AIM_CORS_ORIGINS`: origins allowed to call the API from a browser; none by default.
    pub cors_origins: Vec<axum::http::HeaderValue>,
    /// `AIM_TRUST_PROXY`: take the client address from `X-Forwarded-For`.
    pub trust_proxy: bool,
    /// `AIM_ANALYTICS_ENABLED`: record API calls; off only to measure the layer's cost.
    pub analytics_enabled: bool,
    /// The pipeline's sizing: `AIM_ANALYTICS_QUEUE_CAPACITY`, `AIM_ANALYTICS_WRITERS`,
    /// `AIM_ANALYTICS_BATCH_MAX`, `AIM_ANALYTICS_FLUSH_MS`, `AIM_ANALYTICS_SPOOL_DIR`
    /// (`$AIM_DATA_DIR/spool`), `AIM_ANALYTICS_SPOOL_MAX_BYTES`, `AIM_ANALYTICS_SPOOL_MAX_AGE_S`,
    /// `AIM_ANALYTICS_NICE`.
    pub pipeline: aim_pipeline::PipelineConfig,
    /// `AIM_MAINTENANCE_INTERVAL_S`: how often the maintenance task runs (on one replica).
    pub maintenance_interval: Duration,
    /// `AIM_RETENTION_DAYS`: days of raw `api_calls` kept.
    pub retention_days: u64,
    /// `AIM_ROLLUP_RETENTION_DAYS`: days of rollups kept.
    pub rollup_retention_days: u64,
}

/// A variable that is missing or malformed; the message names it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}={value:?} is invalid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error("{name} is required: {reason}")]
    Missing {
        name: &'static str,
        reason: &'static str,
    },
    #[error("{first} and {second} are both set: {reason}")]
    Conflict {
        first: &'static str,
        second: &'static str,
        reason: &'static str,
    },
    #[error("{name} is set, but aim does not read it: {reason}")]
    Unread {
        name: &'static str,
        reason: &'static str,
    },
}

impl Config {
    /// Reads the process environment.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first bad variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let mut config = Self::from_vars(&vars)?;
        config.path_var = std::env::var_os("PATH");
        Ok(config)
    }

    /// Reads the given variables; the environment is never consulted, so tests can call it.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first bad variable.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |name: &str| vars.get(name).map(String::as_str).filter(|v| !v.is_empty());
        let environment = parse(get, "AIM_ENVIRONMENT", "development")?;
        let jwt_secret = get("JWT_SECRET").map(|s| SecretString::from(s.to_owned()));
        match &jwt_secret {
            Some(secret) if secret.expose_secret().len() < MIN_JWT_SECRET_BYTES => {
                return Err(ConfigError::Invalid {
                    name: "JWT_SECRET",
                    value: "<redacted>".into(),
                    reason: format!("must be at least {MIN_JWT_SECRET_BYTES} bytes"),
                });
            }
            None if environment == Environment::Production => {
                return Err(ConfigError::Missing {
                    name: "JWT_SECRET",
                    reason: "AIM_ENVIRONMENT=production needs a secret shared by every replica",
                });
            }
            _ => {}
        }
        let admin = match (get("AIM_ADMIN_EMAIL"), get("AIM_ADMIN_PASSWORD")) {
            (Some(email), Some(password)) => {
                Some((email.to_owned(), SecretString::from(password.to_owned())))
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::Missing {
                    name: "AIM_ADMIN_PASSWORD",
                    reason: "AIM_ADMIN_EMAIL is set; give both or neither",
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::Missing {
                    name: "AIM_ADMIN_EMAIL",
                    reason: "AIM_ADMIN_PASSWORD is set; give both or neither",
                });
            }
        };
        let cors_origins = get("AIM_CORS_ORIGINS")
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|o| !o.is_empty())
                    .map(|origin| {
                        let valid = (origin.starts_with("http://")
                            || origin.starts_with("https://"))
                            && !origin.ends_with('/');
                        axum::http::HeaderValue::from_str(origin)
                            .ok()
                            .filter(|_| valid)
                            .ok_or_else(|| ConfigError::Invalid {
                                name: "AIM_CORS_ORIGINS",
                                value: origin.to_owned(),
                                reason: "expected comma-separated origins such as \
                                         https://app.example.com"
                                    .into(),
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        let seconds = |name: &'static str, default: u64| -> Result<Duration, ConfigError> {
            parse_positive(get, name, default).map(Duration::from_secs)
        };
        let data_dir = PathBuf::from(get("AIM_DATA_DIR").unwrap_or(DEFAULT_DATA_DIR));
        let pipeline = aim_pipeline::PipelineConfig {
            queue_capacity: parse_positive(
                get,
                "AIM_ANALYTICS_QUEUE_CAPACITY",
                DEFAULT_ANALYTICS_QUEUE_CAPACITY,
            )?,
            writers: parse_positive(get, "AIM_ANALYTICS_WRITERS", DEFAULT_ANALYTICS_WRITERS)?,
            batch_max: parse_positive(get, "AIM_ANALYTICS_BATCH_MAX", DEFAULT_ANALYTICS_BATCH_MAX)?,
            flush_after: Duration::from_millis(parse_positive(
                get,
                "AIM_ANALYTICS_FLUSH_MS",
                DEFAULT_ANALYTICS_FLUSH_MS,
            )?),
            spool_dir: get("AIM_ANALYTICS_SPOOL_DIR")
                .map_or_else(|| data_dir.join("spool"), PathBuf::from),
            spool_max_bytes: parse_positive(
                get,
                "AIM_ANALYTICS_SPOOL_MAX_BYTES",
                DEFAULT_ANALYTICS_SPOOL_MAX_BYTES,
            )?,
            spool_max_age: seconds(
                "AIM_ANALYTICS_SPOOL_MAX_AGE_S",
                DEFAULT_ANALYTICS_SPOOL_MAX_AGE_S,
            )?,
            rollups: true,
            nice: parse_nice(get, "AIM_ANALYTICS_NICE", DEFAULT_ANALYTICS_NICE)?,
        };
        Ok(Self {
            maintenance_interval: seconds(
                "AIM_MAINTENANCE_INTERVAL_S",
                DEFAULT_MAINTENANCE_INTERVAL_S,
            )?,
            retention_days: parse_positive(get, "AIM_RETENTION_DAYS", DEFAULT_RETENTION_DAYS)?,
            rollup_retention_days: parse_positive(
                get,
                "AIM_ROLLUP_RETENTION_DAYS",
                DEFAULT_ROLLUP_RETENTION_DAYS,
            )?,
            analytics_enabled: parse_bool(get, "AIM_ANALYTICS_ENABLED", true)?,
            pipeline,
            admin,
            org_name: get("AIM_ORG_NAME").unwrap_or(DEFAULT_ORG_NAME).to_owned(),
            access_token_ttl: seconds("AIM_ACCESS_TOKEN_TTL_S", DEFAULT_ACCESS_TOKEN_TTL_S)?,
            refresh_token_ttl: seconds("AIM_REFRESH_TOKEN_TTL_S", DEFAULT_REFRESH_TOKEN_TTL_S)?,
            api_key_cache_ttl: seconds("AIM_API_KEY_CACHE_TTL_S", DEFAULT_API_KEY_CACHE_TTL_S)?,
            agent_rate_limit_per_s: parse(
                get,
                "AIM_AGENT_RATE_LIMIT_PER_S",
                &DEFAULT_AGENT_RATE_LIMIT_PER_S.to_string(),
            )?,
            login_rate_limit_per_email_per_min: parse(
                get,
                "AIM_LOGIN_RATE_LIMIT_PER_EMAIL_PER_MIN",
                &DEFAULT_LOGIN_RATE_LIMIT_PER_EMAIL_PER_MIN.to_string(),
            )?,
            login_rate_limit_per_ip_per_min: parse(
                get,
                "AIM_LOGIN_RATE_LIMIT_PER_IP_PER_MIN",
                &DEFAULT_LOGIN_RATE_LIMIT_PER_IP_PER_MIN.to_string(),
            )?,
            cors_origins,
            trust_proxy: parse_bool(get, "AIM_TRUST_PROXY", false)?,
            database: database_settings(get)?,
            listen: parse(get, "AIM_LISTEN", DEFAULT_LISTEN)?,
            metrics_listen: parse(get, "AIM_METRICS_LISTEN", DEFAULT_METRICS_LISTEN)?,
            environment,
            jwt_secret,
            data_dir,
            log_format: parse(get, "AIM_LOG_FORMAT", "pretty")?,
            log_filter: get("RUST_LOG").unwrap_or(DEFAULT_LOG_FILTER).to_owned(),
            auto_migrate: parse_bool(get, "AIM_AUTO_MIGRATE", DEFAULT_AUTO_MIGRATE)?,
            shutdown_grace: Duration::from_millis(parse(
                get,
                "AIM_SHUTDOWN_GRACE_MS",
                &DEFAULT_SHUTDOWN_GRACE_MS.to_string(),
            )?),
            local_pg_port: get("AIM_LOCAL_PG_PORT")
                .map(|_| parse(get, "AIM_LOCAL_PG_PORT", ""))
                .transpose()?,
            db_max_connections: parse_positive(
                get,
                "AIM_DB_MAX_CONNECTIONS",
                DEFAULT_DB_MAX_CONNECTIONS,
            )?,
            db_acquire_timeout: Duration::from_millis(parse_positive(
                get,
                "AIM_DB_ACQUIRE_TIMEOUT_MS",
                DEFAULT_DB_ACQUIRE_TIMEOUT_MS,
            )?),
            db_connect_wait: Duration::from_millis(parse(
                get,
                "AIM_DB_CONNECT_WAIT_MS",
                &DEFAULT_DB_CONNECT_WAIT_MS.to_string(),
            )?),
            path_var: None,
        })
    }

    pub fn pool_settings(&self) -> aim_store::PoolSettings {
        aim_store::PoolSettings {
            max_connections: self.db_max_connections,
            acquire_timeout: self.db_acquire_timeout,
        }
    }
}

/// The separate settings of the deployment guide, each beside `DATABASE_URL`'s form.
const POSTGRES_PARTS: [&str; 7] = [
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
const UNREAD_PG_VARIABLES: [&str; 4] = ["PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY", "PGOPTIONS"];

/// `DATABASE_URL`, or `POSTGRES_HOST` and its companions, or neither (the private cluster).
fn database_settings<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
) -> Result<Option<DatabaseSettings>, ConfigError> {
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
                .unwrap_or(DEFAULT_POSTGRES_USER)
                .to_owned();
            settings.password = get("POSTGRES_PASSWORD").map(|p| SecretString::from(p.to_owned()));
            settings.database = get("POSTGRES_DB").unwrap_or(DEFAULT_POSTGRES_DB).to_owned();
            settings.ssl_mode = match get("POSTGRES_SSL_MODE") {
                Some(mode) => mode.parse().map_err(|e: aim_connect::SettingsError| {
                    invalid("POSTGRES_SSL_MODE", mode, e.to_string())
                })?,
                None => DEFAULT_POSTGRES_SSL_MODE,
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

fn parse<'a, T>(
    get: impl Fn(&str) -> Option<&'a str>,
    name: &'static str,
    default: &str,
) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let value = get(name).unwrap_or(default);
    value.parse().map_err(|e: T::Err| ConfigError::Invalid {
        name,
        value: value.to_owned(),
        reason: e.to_string(),
    })
}

fn parse_positive<'a, T>(
    get: impl Fn(&str) -> Option<&'a str>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + Default + ToString,
    T::Err: std::fmt::Display,
{
    let value: T = parse(&get, name, &default.to_string())?;
    if value <= T::default() {
        return Err(ConfigError::Invalid {
            name,
            value: value.to_string(),
            reason: "must be greater than zero".into(),
        });
    }
    Ok(value)
}

/// A nice increment: 0 (none) to 19 (the lowest priority there is).
fn parse_nice<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
    name: &'static str,
    default: u8,
) -> Result<u8, ConfigError> {
    let value: u8 = parse(&get, name, &default.to_string())?;
    if value > 19 {
        return Err(ConfigError::Invalid {
            name,
            value: value.to_string(),
            reason: "must be 0 to 19".into(),
        });
    }
    Ok(value)
}

fn parse_bool<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
    name: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match get(name).map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some("false" | "0" | "no" | "off") => Ok(false),
        Some(other) => Err(ConfigError::Invalid {
            name,
            value: other.to_owned(),
            reason: "expected true or false".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_need_no_variables() {
        let config = Config::from_vars(&HashMap::new()).expect("defaults are valid");
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.metrics_listen.to_string(), DEFAULT_METRICS_LISTEN);
        assert_eq!(config.environment, Environment::Development);
        assert!(config.database.is_none());
        assert!(config.auto_migrate);
        assert_eq!(config.log_format, LogFormat::Pretty);
        assert_eq!(config.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(config.shutdown_grace, Duration::from_millis(10_000));
        assert_eq!(config.pipeline.nice, DEFAULT_ANALYTICS_NICE);
    }

    #[test]
    fn production_requires_a_jwt_secret() {
        let err = Config::from_vars(&vars(&[("AIM_ENVIRONMENT", "production")]))
            .expect_err("must refuse");
        assert!(err.to_string().contains("JWT_SECRET"), "{err}");
        let secret = "x".repeat(MIN_JWT_SECRET_BYTES);
        Config::from_vars(&vars(&[
            ("AIM_ENVIRONMENT", "production"),
            ("JWT_SECRET", &secret),
        ]))
        .expect("a long secret is accepted");
    }

    #[test]
    fn short_jwt_secret_is_refused_without_echoing_it() {
        let err = Config::from_vars(&vars(&[("JWT_SECRET", "hunter2")])).expect_err("too short");
        let message = err.to_string();
        assert!(message.contains("JWT_SECRET"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (name, value) in [
            ("AIM_LISTEN", "not-an-address"),
            ("AIM_AUTO_MIGRATE", "maybe"),
            ("AIM_LOG_FORMAT", "xml"),
            ("AIM_SHUTDOWN_GRACE_MS", "-1"),
            ("AIM_ENVIRONMENT", "staging"),
            ("AIM_DB_MAX_CONNECTIONS", "0"),
            ("AIM_LOCAL_PG_PORT", "99999"),
            ("AIM_ANALYTICS_NICE", "20"),
            ("AIM_ANALYTICS_NICE", "-1"),
        ] {
            let err = Config::from_vars(&vars(&[(name, value)])).expect_err(name);
            assert!(err.to_string().contains(name), "{name}: {err}");
        }
    }

    #[test]
    fn the_guide_s_variables_make_the_connection() {
        let config = Config::from_vars(&vars(&[
            ("POSTGRES_HOST", "aim.postgres.database.azure.com"),
            ("POSTGRES_PORT", "6432"),
            ("POSTGRES_USER", "aimadmin"),
            ("POSTGRES_PASSWORD", "s3cret/with@signs"),
            ("POSTGRES_DB", "aim_prod"),
            ("POSTGRES_SSL_MODE", "verify-full"),
            ("POSTGRES_SSL_ROOT_CERT", "/etc/ssl/azure.pem"),
        ]))
        .expect("valid");
        let db = config.database.expect("an external database");
        assert_eq!(db.host, Host::Tcp("aim.postgres.database.azure.com".into()));
        assert_eq!(db.port, 6432);
        assert_eq!(db.user, "aimadmin");
        assert_eq!(
            db.password.as_ref().map(|p| p.expose_secret().to_owned()),
            Some("s3cret/with@signs".to_owned())
        );
        assert_eq!(db.database, "aim_prod");
        assert_eq!(db.ssl_mode, SslMode::VerifyFull);
        assert_eq!(db.ssl_root_cert, Some(PathBuf::from("/etc/ssl/azure.pem")));
    }

    #[test]
    fn the_guide_s_variables_have_defaults() {
        let config = Config::from_vars(&vars(&[("POSTGRES_HOST", "db")])).expect("valid");
        let db = config.database.expect("an external database");
        assert_eq!(db.port, DEFAULT_POSTGRES_PORT);
        assert_eq!(db.user, DEFAULT_POSTGRES_USER);
        assert_eq!(db.database, DEFAULT_POSTGRES_DB);
        assert_eq!(db.ssl_mode, DEFAULT_POSTGRES_SSL_MODE);
        assert!(db.password.is_none());
    }

    #[test]
    fn both_forms_of_database_settings_are_refused_naming_both() {
        for part in POSTGRES_PARTS {
            let err = Config::from_vars(&vars(&[
                ("DATABASE_URL", "postgres://u:topsecretpw@db/aim"),
                (part, "x"),
            ]))
            .expect_err(part)
            .to_string();
            assert!(err.contains("DATABASE_URL") && err.contains(part), "{err}");
            assert!(!err.contains("topsecretpw"), "{err}");
        }
    }

    #[test]
    fn companions_without_a_host_are_refused() {
        let err = Config::from_vars(&vars(&[("POSTGRES_PASSWORD", "topsecretpw")]))
            .expect_err("no host")
            .to_string();
        assert!(err.contains("POSTGRES_HOST"), "{err}");
        assert!(!err.contains("topsecretpw"), "{err}");
    }

    #[test]
    fn bad_database_settings_name_their_variable_without_the_password() {
        for (name, value) in [
            ("POSTGRES_SSL_MODE", "verify"),
            ("POSTGRES_PORT", "0"),
            ("POSTGRES_PORT", "postgres"),
        ] {
            let err = Config::from_vars(&vars(&[("POSTGRES_HOST", "db"), (name, value)]))
                .expect_err(name);
            assert!(err.to_string().contains(name), "{name}: {err}");
        }
        let err = Config::from_vars(&vars(&[(
            "DATABASE_URL",
            "postgres://u:topsecretpw@db/aim?sslmode=maybe",
        )]))
        .expect_err("bad sslmode")
        .to_string();
        assert!(
            err.contains("DATABASE_URL") && err.contains("sslmode"),
            "{err}"
        );
        assert!(!err.contains("topsecretpw"), "{err}");
    }

    #[test]
    fn libpq_variables_the_writers_would_ignore_are_refused() {
        for name in UNREAD_PG_VARIABLES {
            let err = Config::from_vars(&vars(&[(name, "/x")])).expect_err(name);
            assert!(err.to_string().contains(name), "{err}");
        }
        let err = Config::from_vars(&vars(&[("POSTGRES_HOST", "db"), ("PGPASSWORD", "pw")]))
            .expect_err("PGPASSWORD without a password");
        assert!(err.to_string().contains("PGPASSWORD"), "{err}");
        Config::from_vars(&vars(&[
            ("DATABASE_URL", "postgres://u:pw@db/aim"),
            ("PGPASSWORD", "other"),
        ]))
        .expect("a configured password wins over PGPASSWORD in both drivers");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let config = Config::from_vars(&vars(&[
            ("DATABASE_URL", "postgres://u:topsecretpw@db/aim"),
            ("JWT_SECRET", &"s".repeat(40)),
        ]))
        .expect("valid");
        let debug = format!("{config:?}");
        assert!(!debug.contains("topsecretpw"), "{debug}");
        assert!(!debug.contains(&"s".repeat(40)), "{debug}");
    }
}
