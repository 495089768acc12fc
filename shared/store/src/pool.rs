//! Connection pools. Start-up waits for the database for a bounded time (compose starts both
//! together); after that the pool reconnects by itself and probes answer "unavailable" instead
//! of failing.

use std::time::Duration;

use aim_connect::DatabaseSettings;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

use crate::error::StoreError;

/// How big the pool is and how long a request may wait for a connection before the database
/// counts as unavailable.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 20,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

fn options(database: &DatabaseSettings) -> PgConnectOptions {
    database
        .sqlx_options()
        // Statement logging at INFO would put every query of every request in the log.
        .log_statements(tracing::log::LevelFilter::Debug)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1))
}

fn pool_options(settings: &PoolSettings) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        // A connection that sat idle across a database restart is found dead here, not by a
        // request.
        .test_before_acquire(true)
}

/// A pool that connects on first use, so a service can start (and report itself degraded)
/// while the database is down.
///
pub fn connect_lazy(database: &DatabaseSettings, settings: &PoolSettings) -> PgPool {
    pool_options(settings).connect_lazy_with(options(database))
}

/// Connects, retrying while the database is unreachable for at most `wait`.
///
/// # Errors
/// The last connection error once `wait` has passed; any error that retrying cannot fix (TLS
/// refused or unverifiable, authentication, unknown database) at once.
pub async fn connect(
    database: &DatabaseSettings,
    settings: &PoolSettings,
    wait: Duration,
) -> Result<PgPool, StoreError> {
    let options = options(database);
    let deadline = tokio::time::Instant::now() + wait;
    let mut delay = Duration::from_millis(100);
    loop {
        match pool_options(settings).connect_with(options.clone()).await {
            Ok(pool) => return Ok(pool),
            Err(e)
                if crate::error::is_unavailable(&e)
                    && tokio::time::Instant::now() + delay < deadline =>
            {
                tracing::warn!(error = %e, retry_in = ?delay, "database not reachable yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Creates `name` on the server `admin` points at, when it does not exist yet.
///
/// # Errors
/// The server's error.
pub async fn create_database_if_missing(
    admin: &DatabaseSettings,
    name: &str,
) -> Result<(), StoreError> {
    let mut conn = options(admin).connect().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        // Identifiers cannot be bound as parameters; quote_ident makes the name safe.
        let quoted: String = sqlx::query_scalar("SELECT quote_ident($1)")
            .bind(name)
            .fetch_one(&mut conn)
            .await?;
        sqlx::query(&format!("CREATE DATABASE {quoted}"))
            .execute(&mut conn)
            .await?;
        tracing::info!(database = name, "created database");
    }
    Ok(())
}

/// One round trip, bounded by `timeout`: what readiness and status report.
///
/// # Errors
/// [`StoreError::Timeout`] or the database error; both are "unavailable" to callers.
pub async fn ping(pool: &PgPool, timeout: Duration) -> Result<(), StoreError> {
    tokio::time::timeout(timeout, sqlx::query("SELECT 1").execute(pool))
        .await
        .map_err(|_| StoreError::Timeout(timeout))??;
    Ok(())
}

/// Whether a new connection can be made and answers, bounded by `timeout`; the pool is not
/// used, so the answer is about the database, not about a pool whose connections are all busy
/// or were cut by a restart.
///
/// # Errors
/// [`StoreError::Timeout`] or the connection's error.
pub async fn reachable(pool: &PgPool, timeout: Duration) -> Result<(), StoreError> {
    let options = pool.connect_options();
    let attempt = async {
        let mut conn = PgConnection::connect_with(&options).await?;
        conn.ping().await?;
        conn.close().await
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| StoreError::Timeout(timeout))??;
    Ok(())
}
