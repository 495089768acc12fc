//! The migrations in `migrations/`, embedded in the binary, a per-migration status report for
//! `aim migrate status`, and the way back down for `aim migrate down`. Every migration is a
//! pair, `VERSION_name.up.sql` and `VERSION_name.down.sql` (a test holds every later one to
//! it).

use std::collections::HashMap;

use sqlx::PgPool;
use sqlx::migrate::{Migrate, Migrator};

use crate::error::StoreError;

/// Every migration of the schema, in order.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// Applies every pending migration; a second run changes nothing.
///
/// # Errors
/// [`StoreError::Migrate`] when a migration fails or an applied one was edited since.
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// The applied migrations newer than `target`, newest first: what [`migrate_down`] would
/// revert. `0` names them all.
///
/// # Errors
/// [`StoreError::UnknownMigration`] when `target` is neither 0 nor a known version; the
/// database error when the ledger cannot be read.
pub async fn newer_than(pool: &PgPool, target: i64) -> Result<Vec<MigrationStatus>, StoreError> {
    if target != 0 && !MIGRATOR.iter().any(|m| m.version == target) {
        return Err(StoreError::UnknownMigration(target));
    }
    Ok(migration_status(pool)
        .await?
        .into_iter()
        .rev()
        .filter(|m| m.version > target && m.state != MigrationState::Pending)
        .collect())
}

/// Reverts every applied migration newer than `target` ([`newer_than`]), newest first, each in
/// its own transaction with its ledger row; `target` itself stays applied. Returns the versions
/// reverted.
///
/// # Errors
/// As [`newer_than`]; [`StoreError::Migrate`] when a down script fails (the ones before it
/// stay reverted).
pub async fn migrate_down(pool: &PgPool, target: i64) -> Result<Vec<i64>, StoreError> {
    let reverted = newer_than(pool, target)
        .await?
        .into_iter()
        .map(|m| m.version)
        .collect();
    MIGRATOR.undo(pool, target).await?;
    Ok(reverted)
}

/// Where one migration stands in a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationState {
    Applied {
        on: chrono::DateTime<chrono::Utc>,
    },
    Pending,
    /// Applied, but the file has changed since: someone edited a landed migration.
    Modified,
}

/// One line of `aim migrate status`.
#[derive(Debug, Clone)]
pub struct MigrationStatus {
    pub version: i64,
    pub description: String,
    pub state: MigrationState,
}

/// The state of every embedded migration, in order.
///
/// # Errors
/// The database error when the ledger cannot be read.
pub async fn migration_status(pool: &PgPool) -> Result<Vec<MigrationStatus>, StoreError> {
    let mut conn = pool.acquire().await?;
    conn.ensure_migrations_table().await?;
    let applied: HashMap<i64, _> = conn
        .list_applied_migrations()
        .await?
        .into_iter()
        .map(|m| (m.version, m.checksum))
        .collect();
    let times: HashMap<i64, chrono::DateTime<chrono::Utc>> =
        sqlx::query_as("SELECT version, installed_on FROM _sqlx_migrations")
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect();
    Ok(MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| {
            let state = match applied.get(&m.version) {
                None => MigrationState::Pending,
                Some(checksum) if *checksum != m.checksum => MigrationState::Modified,
                Some(_) => MigrationState::Applied {
                    on: times.get(&m.version).copied().unwrap_or_default(),
                },
            };
            MigrationStatus {
                version: m.version,
                description: m.description.to_string(),
                state,
            }
        })
        .collect())
}
