//! libpq's `sslmode`: parsed once, read by the settings (sqlx's mode) and the TLS verifiers.

use crate::error::SettingsError;

/// libpq's `sslmode`, with libpq's meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// TLS when the server offers it, plain otherwise; the certificate is not checked.
    #[default]
    Prefer,
    /// TLS or nothing; the certificate is not checked (unless a root certificate is given,
    /// which makes it `verify-ca`, as in libpq).
    Require,
    /// TLS, and the server's certificate must chain to a trusted root; its host name is not
    /// checked.
    VerifyCa,
    /// TLS, a trusted chain, and a certificate issued for the host we connect to.
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

impl std::str::FromStr for SslMode {
    type Err = SettingsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "disable" => Ok(Self::Disable),
            "prefer" => Ok(Self::Prefer),
            "require" => Ok(Self::Require),
            "verify-ca" => Ok(Self::VerifyCa),
            "verify-full" => Ok(Self::VerifyFull),
            other => Err(SettingsError::SslMode(other.to_owned())),
        }
    }
}
