//! Which PostgreSQL the service uses: `DATABASE_URL` when given, otherwise the private cluster
//! under `$AIM_DATA_DIR`, which this process owns (starts and stops) or, for one-off commands
//! beside a running `aim serve`, visits as a guest.

use aim_local_pg::{Attached, ClusterOptions, LocalCluster};
use anyhow::Context;
use secrecy::SecretString;

use crate::config::{Config, LOCAL_DATABASE};

pub(crate) enum Database {
    External(SecretString),
    /// The private cluster, started or adopted by this process, stopped by [`Database::close`].
    Owned {
        cluster: Box<LocalCluster>,
        url: SecretString,
    },
    /// The private cluster of another `aim` process on the same data folder.
    Guest(SecretString),
}

impl Database {
    /// For `aim serve`: a data folder owned by another process is an error.
    pub async fn open_owned(config: &Config) -> anyhow::Result<Self> {
        match &config.database_url {
            Some(url) => Ok(Self::External(url.clone())),
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
        match &config.database_url {
            Some(url) => Ok(Self::External(url.clone())),
            None => match LocalCluster::attach(&cluster_options(config))
                .await
                .context("starting the private PostgreSQL cluster")?
            {
                Attached::Owner(cluster) => Self::owned(cluster).await,
                Attached::Guest { url } => Ok(Self::Guest(SecretString::from(url))),
            },
        }
    }

    async fn owned(cluster: Box<LocalCluster>) -> anyhow::Result<Self> {
        let admin = SecretString::from(cluster.admin_url());
        if let Err(e) = aim_store::create_database_if_missing(&admin, LOCAL_DATABASE).await {
            let _ = cluster.stop().await;
            return Err(e).context("creating the service's database in the private cluster");
        }
        let url = cluster.url().to_owned();
        match cluster.tcp_port() {
            Some(port) => tracing::info!(
                url = %url,
                tcp = %format!("postgres://postgres@127.0.0.1:{port}/{LOCAL_DATABASE}"),
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
            cluster,
            url: SecretString::from(url),
        })
    }

    pub fn url(&self) -> &SecretString {
        match self {
            Self::External(url) | Self::Guest(url) | Self::Owned { url, .. } => url,
        }
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

fn cluster_options(config: &Config) -> ClusterOptions {
    ClusterOptions {
        data_dir: config.data_dir.clone(),
        tcp_port: config.local_pg_port,
        database: LOCAL_DATABASE.to_owned(),
        path_var: config.path_var.clone(),
        niceness: None,
    }
}
