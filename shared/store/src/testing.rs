//! Test support (feature `testing`): a real PostgreSQL database per test, a proxy that can
//! pause or cut the connection to it, a private cluster that requires TLS, and one that records
//! every statement it runs.
//!
//! The server is found the way the project's contract says: `DATABASE_URL` when set, else the
//! server on `127.0.0.1:5432` as `postgres`, else a throwaway cluster started from the installed
//! binaries under the system's temporary folder (left running for the next test process, which
//! adopts it). A template database is migrated once per set of migrations and each test gets a
//! clone of it, which takes a fraction of running the migrations.
//!
//! This is test code: failures panic with a message saying what to fix.

mod database;
mod proxy;
mod statements;
mod tls;

pub use database::TestDatabase;
pub use proxy::{FaultProxy, Upstream};
pub use statements::{STATEMENTS_DATABASE, StatementsCluster};
pub use tls::{PlainTcp, TLS_DATABASE, TLS_USER, TlsCluster};
