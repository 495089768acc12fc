//! Why database settings cannot be used.

/// A setting that cannot be used. Messages never quote a URL or a password.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("not a PostgreSQL URL ({0}); expected postgres://user:password@host:port/database")]
    Url(String),
    #[error("unsupported URL parameter {0:?} (supported: {SUPPORTED_PARAMETERS})")]
    Parameter(String),
    #[error("sslmode {0:?} is not one of disable, prefer, require, verify-ca, verify-full")]
    SslMode(String),
    #[error("port {0:?} is not a number from 1 to 65535")]
    Port(String),
    #[error("{0} is not valid UTF-8 once percent-decoded")]
    Encoding(&'static str),
    #[error("no host given")]
    NoHost,
}

const SUPPORTED_PARAMETERS: &str =
    "host, port, user, password, dbname, sslmode, sslrootcert, application_name";
