//! The store's one error type. Callers map it to HTTP once; `is_unavailable` is what decides
//! between "the database is down, retry" (503) and a genuine fault (500).

/// Errors from talking to PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),

    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),

    #[error("no migration has version {0} (aim migrate status lists them)")]
    UnknownMigration(i64),

    #[error("the database did not answer within {0:?}")]
    Timeout(std::time::Duration),

    /// A unique constraint refused the write; the string says what already exists.
    #[error("{0} already exists")]
    Conflict(&'static str),

    /// A change that would bring a revoked agent back; revocation is terminal.
    #[error("the agent is revoked, and revocation is terminal")]
    AgentRevoked,

    /// A change only an admin may make, refused under the row's lock; says which.
    #[error("{0}")]
    AdminOnly(&'static str),
}

impl StoreError {
    /// No pooled connection came free within the acquire timeout.
    pub fn is_pool_timeout(&self) -> bool {
        matches!(self, Self::Database(sqlx::Error::PoolTimedOut))
    }

    /// True when the database could not be reached or the pool had no connection to give: the
    /// request may succeed later, so it deserves a 503 with `Retry-After`, not a 500.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Timeout(_) => true,
            Self::Database(e) => is_unavailable(e),
            Self::Migrate(_)
            | Self::Conflict(_)
            | Self::AgentRevoked
            | Self::AdminOnly(_)
            | Self::UnknownMigration(_) => false,
        }
    }
}

/// See [`StoreError::is_unavailable`]; exposed for code that holds a bare `sqlx::Error`.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        // sqlx reports a failed TLS handshake as I/O; a refused certificate is not an outage.
        sqlx::Error::Io(e) => !aim_connect::is_tls_refusal(e),
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => true,
        // TLS refused or a certificate that does not verify: a configuration fault that
        // waiting will not fix, so it is reported at once rather than retried.
        sqlx::Error::Tls(_) => false,
        // The connection closed before the server answered the TLS request (a server or a
        // proxy accepting and dropping connections while it goes down): sqlx reads the missing
        // byte as 0 and calls it a protocol error.
        sqlx::Error::Protocol(message) => {
            message.starts_with("unexpected response from SSLRequest: 0x00")
        }
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| aim_connect::sqlstate::is_unavailable(&code)),
        _ => false,
    }
}

/// Turns a unique violation (23505) into [`StoreError::Conflict`] naming `what`.
pub(crate) fn conflict_on_unique(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => {
            StoreError::Conflict(what)
        }
        _ => StoreError::Database(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_closed_before_the_tls_answer_is_an_outage() {
        let closed = sqlx::Error::Protocol("unexpected response from SSLRequest: 0x00".into());
        assert!(is_unavailable(&closed));
        let garbage = sqlx::Error::Protocol("unexpected response from SSLRequest: 0x45".into());
        assert!(
            !is_unavailable(&garbage),
            "a server speaking nonsense is a fault"
        );
        let refused = sqlx::Error::Io(std::io::ErrorKind::ConnectionRefused.into());
        assert!(is_unavailable(&refused));
    }
}
