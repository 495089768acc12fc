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

/// A private cluster under a new folder of the system's temporary folder (open to the
/// `postgres` user when run as root), optionally also on `127.0.0.1:<tcp_port>`; the folder
/// lives as long as the returned guard.
pub(crate) async fn private_cluster(
    prefix: &str,
    tcp_port: Option<u16>,
) -> (aim_local_pg::LocalCluster, tempfile::TempDir) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(std::env::temp_dir())
        .expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let cluster = aim_local_pg::LocalCluster::start(&aim_local_pg::ClusterOptions {
        data_dir: dir.path().join("pg-data"),
        tcp_port,
        database: "postgres".into(),
        path_var: std::env::var_os("PATH"),
        niceness: None,
    })
    .await
    .expect("a private cluster");
    (cluster, dir)
}
