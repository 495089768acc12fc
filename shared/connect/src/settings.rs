//! Typed database settings: where the server is, who we are, and how the connection is
//! secured. Read once (from a URL or from separate values) and turned into both drivers'
//! options, so the app pool and the writers always connect the same way.

use std::fmt;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgSslMode};

use crate::client::{Tls, TokioPostgres};
use crate::error::SettingsError;
use crate::ssl_mode::SslMode;
use crate::tls::{self, TlsError};

pub const DEFAULT_PORT: u16 = 5432;
pub const DEFAULT_USER: &str = "postgres";
pub const DEFAULT_HOST: &str = "localhost";
/// What the server sees in `pg_stat_activity.application_name`.
pub const APPLICATION_NAME: &str = "aim";

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A host name or an IP address (IPv6 without brackets).
    Tcp(String),
    /// The folder holding the server's Unix socket (`.s.PGSQL.<port>`). TLS is never used on
    /// a socket, as in libpq.
    Socket(PathBuf),
}

/// Everything needed to reach the database. The password is a `SecretString`: `Debug` and
/// `Display` never show it.
#[derive(Clone)]
pub struct DatabaseSettings {
    pub host: Host,
    pub port: u16,
    pub user: String,
    pub password: Option<SecretString>,
    pub database: String,
    pub ssl_mode: SslMode,
    /// PEM file of extra trusted roots (libpq's `sslrootcert`), added to the system's.
    pub ssl_root_cert: Option<PathBuf>,
    pub application_name: String,
}

impl DatabaseSettings {
    /// A server at `host` with every other setting at its default.
    pub fn new(host: Host) -> Self {
        Self {
            host,
            port: DEFAULT_PORT,
            user: DEFAULT_USER.to_owned(),
            password: None,
            database: DEFAULT_USER.to_owned(),
            ssl_mode: SslMode::default(),
            ssl_root_cert: None,
            application_name: APPLICATION_NAME.to_owned(),
        }
    }

    /// Parses a `postgres://` (or `postgresql://`) URL. Query parameters override the URL's
    /// parts as in libpq (`?host=/run/postgresql` selects a socket folder); a parameter this
    /// service would not honour is an error rather than silently ignored.
    ///
    /// # Errors
    /// [`SettingsError`] saying which part is wrong, never quoting the URL itself.
    pub fn from_url(text: &str) -> Result<Self, SettingsError> {
        let url = url::Url::parse(text).map_err(|e| SettingsError::Url(e.to_string()))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(SettingsError::Url(format!(
                "scheme {:?} is not postgres",
                url.scheme()
            )));
        }
        let host = match url.host() {
            Some(url::Host::Domain(name)) if !name.is_empty() => Some(name.to_owned()),
            Some(url::Host::Ipv4(ip)) => Some(ip.to_string()),
            Some(url::Host::Ipv6(ip)) => Some(ip.to_string()),
            _ => None,
        };
        let mut settings = Self::new(Host::Tcp(host.unwrap_or_else(|| DEFAULT_HOST.to_owned())));
        if let Some(port) = url.port() {
            settings.port = port;
        }
        if !url.username().is_empty() {
            settings.user = decode(url.username(), "the user name")?;
        }
        if let Some(password) = url.password() {
            settings.password = Some(SecretString::from(decode(password, "the password")?));
        }
        let path = url.path().trim_start_matches('/');
        settings.database = if path.is_empty() {
            settings.user.clone()
        } else {
            decode(path, "the database name")?
        };
        for (key, value) in url.query_pairs() {
            let value = value.into_owned();
            match &*key {
                "host" => settings.host = Host::parse(&value)?,
                "port" => settings.port = parse_port(&value)?,
                "user" => settings.user = value,
                "password" => settings.password = Some(SecretString::from(value)),
                "dbname" => settings.database = value,
                "sslmode" => settings.ssl_mode = value.parse()?,
                "sslrootcert" => settings.ssl_root_cert = Some(PathBuf::from(value)),
                "application_name" => settings.application_name = value,
                other => return Err(SettingsError::Parameter(other.to_owned())),
            }
        }
        Ok(settings)
    }

    /// The mode the connection really uses: never TLS on a Unix socket, and `require` with a
    /// root certificate checks the chain, as libpq does.
    pub fn effective_ssl_mode(&self) -> SslMode {
        match (&self.host, self.ssl_mode) {
            (Host::Socket(_), _) => SslMode::Disable,
            (Host::Tcp(_), SslMode::Require) if self.ssl_root_cert.is_some() => SslMode::VerifyCa,
            (Host::Tcp(_), mode) => mode,
        }
    }

    /// The app pool's options. Every field is set from these settings, so the `PG*` variables
    /// sqlx would otherwise read cannot make the pool differ from the writers (the service
    /// refuses to start when one that cannot be overridden is set).
    pub fn sqlx_options(&self) -> PgConnectOptions {
        let mut options = PgConnectOptions::new_without_pgpass()
            .port(self.port)
            .username(&self.user)
            .database(&self.database)
            .application_name(&self.application_name)
            .ssl_mode(match self.effective_ssl_mode() {
                SslMode::Disable => PgSslMode::Disable,
                SslMode::Prefer => PgSslMode::Prefer,
                SslMode::Require => PgSslMode::Require,
                SslMode::VerifyCa => PgSslMode::VerifyCa,
                SslMode::VerifyFull => PgSslMode::VerifyFull,
            });
        options = match &self.host {
            Host::Tcp(host) => options.host(host),
            Host::Socket(dir) => options.socket(dir),
        };
        if let Some(password) = &self.password {
            options = options.password(password.expose_secret());
        }
        if let Some(root) = &self.ssl_root_cert {
            options = options.ssl_root_cert(root);
        }
        options
    }

    /// The writers' and command-line tools' configuration: tokio-postgres options plus a
    /// rustls connector that verifies as [`Self::effective_ssl_mode`] says.
    ///
    /// # Errors
    /// [`TlsError`] when the root certificates cannot be read.
    pub fn tokio_postgres(&self) -> Result<TokioPostgres, TlsError> {
        let mut config = tokio_postgres::Config::new();
        match &self.host {
            Host::Tcp(host) => config.host(host),
            Host::Socket(dir) => config.host_path(dir),
        };
        config
            .port(self.port)
            .user(&self.user)
            .dbname(&self.database)
            .application_name(&self.application_name)
            .ssl_mode(match self.effective_ssl_mode() {
                SslMode::Disable => tokio_postgres::config::SslMode::Disable,
                SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
                // tokio-postgres only asks for TLS; the connector checks what verify-* adds.
                SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                    tokio_postgres::config::SslMode::Require
                }
            });
        if let Some(password) = &self.password {
            config.password(password.expose_secret());
        }
        let tls = tls::client_config(self.effective_ssl_mode(), self.ssl_root_cert.as_deref())?;
        Ok(TokioPostgres {
            config,
            tls: Tls(tokio_postgres_rustls::MakeRustlsConnect::new(tls)),
        })
    }

    /// The same server and credentials, another database (the maintenance database, say).
    pub fn with_database(&self, database: &str) -> Self {
        Self {
            database: database.to_owned(),
            ..self.clone()
        }
    }
}

impl Host {
    /// A value starting with `/` is a socket folder, anything else a host name or address.
    ///
    /// # Errors
    /// [`SettingsError::NoHost`] for an empty value.
    pub fn parse(value: &str) -> Result<Self, SettingsError> {
        match value {
            "" => Err(SettingsError::NoHost),
            v if v.starts_with('/') => Ok(Self::Socket(PathBuf::from(v))),
            v => Ok(Self::Tcp(
                v.trim_start_matches('[').trim_end_matches(']').to_owned(),
            )),
        }
    }
}

/// # Errors
/// [`SettingsError::Port`] unless `value` is 1 to 65535.
pub fn parse_port(value: &str) -> Result<u16, SettingsError> {
    value
        .parse::<u16>()
        .ok()
        .filter(|port| *port > 0)
        .ok_or_else(|| SettingsError::Port(value.to_owned()))
}

fn decode(text: &str, what: &'static str) -> Result<String, SettingsError> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| SettingsError::Encoding(what))
}

/// `host:port/database as user (sslmode=…)`: what logs and error messages may show.
impl fmt::Display for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Tcp(host) if host.contains(':') => write!(f, "[{host}]:{}", self.port)?,
            Host::Tcp(host) => write!(f, "{host}:{}", self.port)?,
            Host::Socket(dir) => write!(f, "{} (socket, port {})", dir.display(), self.port)?,
        }
        write!(
            f,
            "/{} as {} (sslmode={})",
            self.database,
            self.user,
            self.effective_ssl_mode().as_str()
        )
    }
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("database", &self.database)
            .field("ssl_mode", &self.ssl_mode)
            .field("ssl_root_cert", &self.ssl_root_cert)
            .field("application_name", &self.application_name)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_url_sets_every_field() {
        let s = DatabaseSettings::from_url(
            "postgres://aim%40corp:p%40ss%2Fw+rd@db.example.com:6432/aim_prod\
             ?sslmode=verify-full&sslrootcert=/etc/ca.pem",
        )
        .expect("valid");
        assert_eq!(s.host, Host::Tcp("db.example.com".into()));
        assert_eq!(s.port, 6432);
        assert_eq!(s.user, "aim@corp");
        assert_eq!(
            s.password.as_ref().map(|p| p.expose_secret().to_owned()),
            Some("p@ss/w+rd".to_owned())
        );
        assert_eq!(s.database, "aim_prod");
        assert_eq!(s.ssl_mode, SslMode::VerifyFull);
        assert_eq!(s.ssl_root_cert, Some(PathBuf::from("/etc/ca.pem")));
    }

    #[test]
    fn defaults_follow_libpq() {
        let s = DatabaseSettings::from_url("postgres://").expect("valid");
        assert_eq!(s.host, Host::Tcp(DEFAULT_HOST.into()));
        assert_eq!(s.port, DEFAULT_PORT);
        assert_eq!(s.user, DEFAULT_USER);
        assert_eq!(s.database, DEFAULT_USER);
        assert_eq!(s.ssl_mode, SslMode::Prefer);
        let named = DatabaseSettings::from_url("postgres://alice@h").expect("valid");
        assert_eq!(named.database, "alice", "the database defaults to the user");
    }

    #[test]
    fn a_host_parameter_selects_a_socket_folder_without_tls() {
        let s = DatabaseSettings::from_url(
            "postgres://postgres@localhost/aim?host=%2Fsrv%2Faim%2Frun&port=5433&sslmode=require",
        )
        .expect("valid");
        assert_eq!(s.host, Host::Socket(PathBuf::from("/srv/aim/run")));
        assert_eq!(s.port, 5433);
        assert_eq!(s.effective_ssl_mode(), SslMode::Disable);
    }

    #[test]
    fn ipv6_hosts_lose_their_brackets() {
        let s = DatabaseSettings::from_url("postgres://u@[::1]:5432/d").expect("valid");
        assert_eq!(s.host, Host::Tcp("::1".into()));
        assert_eq!(s.to_string(), "[::1]:5432/d as u (sslmode=prefer)");
    }

    #[test]
    fn require_with_a_root_certificate_checks_the_chain() {
        let s = DatabaseSettings::from_url("postgres://h/d?sslmode=require&sslrootcert=/ca.pem")
            .expect("valid");
        assert_eq!(s.effective_ssl_mode(), SslMode::VerifyCa);
    }

    #[test]
    fn bad_urls_are_refused_without_quoting_the_password() {
        for (url, expect) in [
            ("mysql://u:hunter2@h/d", "scheme"),
            ("postgres://u:hunter2@h/d?sslmode=verify", "sslmode"),
            (
                "postgres://u:hunter2@h/d?connect_timeout=3",
                "connect_timeout",
            ),
            ("postgres://u:hunter2@h/d?port=0", "port"),
            ("not a url hunter2", "not a PostgreSQL URL"),
        ] {
            let err = DatabaseSettings::from_url(url).expect_err(url).to_string();
            assert!(err.contains(expect), "{url}: {err}");
            assert!(!err.contains("hunter2"), "{url}: {err}");
        }
    }

    #[test]
    fn display_and_debug_hide_the_password() {
        let s = DatabaseSettings::from_url("postgres://u:hunter2@h/d").expect("valid");
        assert!(!s.to_string().contains("hunter2"));
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn both_drivers_get_the_same_server_and_credentials() {
        let s =
            DatabaseSettings::from_url("postgres://u:pw@db.internal:6543/app?sslmode=verify-ca")
                .expect("valid");
        let sqlx = s.sqlx_options();
        assert_eq!(sqlx.get_host(), "db.internal");
        assert_eq!(sqlx.get_port(), 6543);
        assert_eq!(sqlx.get_username(), "u");
        assert_eq!(sqlx.get_database(), Some("app"));
        assert!(matches!(sqlx.get_ssl_mode(), PgSslMode::VerifyCa));
        crate::tls::install_crypto_provider();
        let pg = s.tokio_postgres().expect("system roots load");
        assert_eq!(
            pg.config.get_hosts(),
            &[tokio_postgres::config::Host::Tcp("db.internal".into())]
        );
        assert_eq!(pg.config.get_ports(), &[6543]);
        assert_eq!(pg.config.get_user(), Some("u"));
        assert_eq!(pg.config.get_password(), Some(&b"pw"[..]));
        assert_eq!(pg.config.get_dbname(), Some("app"));
        assert_eq!(
            pg.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
    }
}
