//! A private PostgreSQL cluster that loads `pg_stat_statements`, so a test can collect the text
//! of every statement the service sends (normalised: constants become `$n`) and check rules a
//! distributed database imposes on them (docs/scaling.md, "Citus"). The shared server does not
//! load the extension, and loading it needs a restart, hence a cluster of the test's own.

use std::time::Duration;

use aim_connect::DatabaseSettings;
use aim_local_pg::{LocalCluster, ShutdownMode};
use sqlx::{ConnectOptions, Connection};

use crate::MIGRATOR;

/// The database the service uses in this cluster (migrated).
pub const STATEMENTS_DATABASE: &str = "aim";

/// The running cluster; dropping it stops it.
pub struct StatementsCluster {
    cluster: LocalCluster,
    _dir: tempfile::TempDir,
}

impl StatementsCluster {
    /// Starts the cluster with `pg_stat_statements` loaded, creates and migrates the database,
    /// then forgets every statement seen so far (the migrations').
    pub async fn start() -> Self {
        let (cluster, dir) = super::private_cluster("aim-statements-", None).await;
        let admin = DatabaseSettings::from_url(&cluster.admin_url()).expect("admin URL");
        let mut conn = admin.sqlx_options().connect().await.expect("admin");
        for sql in [
            "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'".to_owned(),
            format!("CREATE DATABASE {STATEMENTS_DATABASE}"),
        ] {
            sqlx::query(&sql)
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        conn.close().await.expect("close");
        cluster
            .restart(ShutdownMode::Fast, Duration::ZERO)
            .await
            .expect("restart with pg_stat_statements");
        let this = Self { cluster, _dir: dir };
        let mut conn = this
            .settings()
            .sqlx_options()
            .connect()
            .await
            .expect("connect");
        MIGRATOR.run(&mut conn).await.expect("migrations");
        for sql in [
            "CREATE EXTENSION pg_stat_statements",
            "SELECT pg_stat_statements_reset()",
        ] {
            sqlx::query(sql)
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        conn.close().await.expect("close");
        this
    }

    /// The superuser over the socket, in the service's database.
    pub fn settings(&self) -> DatabaseSettings {
        DatabaseSettings::from_url(&self.cluster.admin_url())
            .expect("admin URL")
            .with_database(STATEMENTS_DATABASE)
    }

    /// Every distinct statement sent to the service's database since the migrations.
    pub async fn statements(&self) -> Vec<String> {
        let mut conn = self
            .settings()
            .sqlx_options()
            .connect()
            .await
            .expect("connect");
        let texts = sqlx::query_scalar(
            "SELECT query FROM pg_stat_statements \
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             ORDER BY query",
        )
        .fetch_all(&mut conn)
        .await
        .expect("pg_stat_statements");
        conn.close().await.expect("close");
        texts
    }
}
