//! Which PostgreSQL the service uses: `DATABASE_URL` when given, otherwise the private cluster
//! under `$AIM_DATA_DIR`, which this process owns (starts and stops) or, for one-off commands
//! beside a running `aim serve`, visits as a guest.

use aim_connect::DatabaseSettings;
use aim_local_pg::{Attached, ClusterOptions, LocalCluster};
use anyhow::Context;

use crate::config::{Config, DatabaseConfig};

pub(crate) enum Database {
    External(DatabaseSettings),
    /// The private cluster, started or adopted by this process, stopped by [`Database::close`].
    Owned {
        cluster: Box<LocalCluster>,
        settings: DatabaseSettings,
    },
    /// The private cluster of another `aim` process on the same data folder.
    Guest(DatabaseSettings),
}

impl Database {
    /// For `aim serve`: a data folder owned by another process is an error.
    pub async fn open_owned(config: &Config) -> anyhow::Result<Self> {
        match &config.database.external {
            Some(settings) => Ok(Self::External(settings.clone())),
            None => {
                let cluster = LocalCluster::start(&cluster_options(config))
                    .await
                    .context("starting the private PostgreSQL cluster")?;
                Self::owned(Box::new(cluster)).await
            }
        }
    }

    /// For one-off commands: use the running cluster of an `aim serve` when there is one.
    pub async fn open_shared(config: &Config) -> anyhow::Result<Self> {
        match &config.database.external {
            Some(settings) => Ok(Self::External(settings.clone())),
            None => match LocalCluster::attach(&cluster_options(config))
                .await
                .context("starting the private PostgreSQL cluster")?
            {
                Attached::Owner(cluster) => Self::owned(cluster).await,
                Attached::Guest { url } => Ok(Self::Guest(cluster_settings(&url)?)),
            },
        }
    }

    async fn owned(cluster: Box<LocalCluster>) -> anyhow::Result<Self> {
        let admin = cluster_settings(&cluster.admin_url())?;
        if let Err(e) =
            aim_store::create_database_if_missing(&admin, DatabaseConfig::LOCAL_DATABASE).await
        {
            let _ = cluster.stop().await;
            return Err(e).context("creating the service's database in the private cluster");
        }
        let url = cluster.url().to_owned();
        match cluster.tcp_port() {
            Some(port) => tracing::info!(
                url = %url,
                tcp = %format!("postgres://postgres@127.0.0.1:{port}/{}", DatabaseConfig::LOCAL_DATABASE),
                pgdata = %cluster.pgdata().display(),
                "private PostgreSQL cluster ready"
            ),
            None => tracing::info!(
                url = %url,
                pgdata = %cluster.pgdata().display(),
                "private PostgreSQL cluster ready (psql \"<url>\" connects to it)"
            ),
        }
        Ok(Self::Owned {
            settings: cluster_settings(&url)?,
            cluster,
        })
    }

    pub fn settings(&self) -> &DatabaseSettings {
        match self {
            Self::External(settings) | Self::Guest(settings) | Self::Owned { settings, .. } => {
                settings
            }
        }
    }

    /// The app pool, waiting up to `AIM_DB_CONNECT_WAIT_MS` for a server that is still coming
    /// up; a TLS or authentication failure ends the wait at once.
    ///
    /// # Errors
    /// The connection's error, naming the server (never the password).
    pub async fn pool(&self, config: &Config) -> anyhow::Result<aim_store::PgPool> {
        aim_store::connect(
            self.settings(),
            &config.database.pool_settings(),
            config.database.connect_wait,
        )
        .await
        .with_context(|| format!("connecting to the database at {}", self.settings()))
    }

    /// One tokio-postgres connection with the same settings, for the command-line tools.
    ///
    /// # Errors
    /// As [`Database::pool`].
    pub async fn client(&self) -> anyhow::Result<tokio_postgres::Client> {
        self.settings()
            .tokio_postgres()
            .context("setting up TLS for the database connection")?
            .connect()
            .await
            .with_context(|| format!("connecting to the database at {}", self.settings()))
    }

    /// Stops the private cluster when this process owns it.
    pub async fn close(self) -> anyhow::Result<()> {
        if let Self::Owned { cluster, .. } = self {
            cluster
                .stop()
                .await
                .context("stopping the private PostgreSQL cluster")?;
            tracing::info!("private PostgreSQL cluster stopped");
        }
        Ok(())
    }
}

/// The private cluster's own URLs are ours and always parse; a failure is a bug worth a clear
/// message rather than a panic.
fn cluster_settings(url: &str) -> anyhow::Result<DatabaseSettings> {
    DatabaseSettings::from_url(url).context("reading the private cluster's URL")
}

fn cluster_options(config: &Config) -> ClusterOptions {
    ClusterOptions {
        data_dir: config.data_dir.clone(),
        tcp_port: config.database.local_pg_port,
        database: DatabaseConfig::LOCAL_DATABASE.to_owned(),
        path_var: config.database.path_var.clone(),
        niceness: None,
    }
}
