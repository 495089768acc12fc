//! The one place that turns database configuration into connections. The settings are parsed
//! once ([`DatabaseSettings`]) and both drivers are built from them: sqlx for the app pool, and
//! tokio-postgres with a rustls connector for the analytics writers and the command-line tools.
//! Neither driver parses a URL of its own, because they disagree: tokio-postgres refuses
//! `sslmode=verify-ca`/`verify-full` and `sslrootcert`, and sqlx reads `PG*` variables that
//! tokio-postgres ignores.
//!
//! TLS is rustls with ring, installed once per process by [`install_crypto_provider`]; roots
//! are the system's plus an optional CA file. No OpenSSL. What a server's error means to each
//! kind of caller is read in one table, [`sqlstate`].

mod client;
mod error;
mod report;
mod settings;
pub mod sqlstate;
mod ssl_mode;
mod tls;

pub use client::{Tls, TokioPostgres};
pub use error::SettingsError;
pub use report::Causes;
pub use settings::{
    APPLICATION_NAME, DEFAULT_HOST, DEFAULT_PORT, DEFAULT_USER, DatabaseSettings, Host, parse_port,
};
pub use ssl_mode::SslMode;
pub use tls::{TlsError, install_crypto_provider, is_tls_refusal, web_client_config};
