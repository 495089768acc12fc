//! Everything AIM says to PostgreSQL through sqlx: connection pools, the migrations embedded in
//! the binary, the daily partitions of `api_calls`, and health probes. With the `testing`
//! feature it also provides a database per test, cloned from a migrated template, and a TCP
//! proxy that simulates outages. The binary COPY path of the ingest writers lives with the
//! pipeline, not here.

pub mod agents;
pub mod alerts;
pub mod analytics;
pub mod api_keys;
pub mod audit;
pub(crate) mod error;
pub mod maintenance;
pub(crate) mod migrate;
pub mod model;
pub mod partitions;
mod pool;
pub mod sessions;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trust;
pub mod users;
pub mod verifications;
pub mod webhooks;

pub use error::{StoreError, is_unavailable};
pub use migrate::{
    MIGRATOR, MigrationState, MigrationStatus, migrate, migrate_down, migration_status, newer_than,
};
pub use pool::{PoolSettings, connect, connect_lazy, create_database_if_missing, ping, reachable};
pub use sqlx::PgPool;
