//! Per-test databases cloned from a migrated template.

use std::str::FromStr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aim_connect::DatabaseSettings;
use aim_local_pg::{Attached, ClusterOptions, LocalCluster};
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use tokio::sync::OnceCell;
use url::Url;

use super::proxy::{FaultProxy, Upstream};
use crate::migrate::MIGRATOR;

/// Serialises template creation and stale-database cleanup across test processes.
const TEMPLATE_LOCK_KEY: i64 = 0x0041_494d_7465_7374; // "AIMtest"
const PREFIX: &str = "aim_test_";

/// The server every test of this process uses: its maintenance URL and the template's name.
/// Only plain data lives here, since each `#[tokio::test]` has its own runtime and a pool must
/// not outlive the runtime that made it.
struct Server {
    admin_url: Url,
    template: String,
}

static SERVER: OnceCell<Server> = OnceCell::const_new();
/// A throwaway cluster this process started or adopted; never dropped, so it keeps running for
/// the next test process.
static CLUSTER: OnceLock<LocalCluster> = OnceLock::new();
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh, migrated database that belongs to one test.
pub struct TestDatabase {
    name: String,
    url: Url,
}

impl TestDatabase {
    /// Clones the migrated template into a new database named after this process and a
    /// counter.
    pub async fn create() -> Self {
        let server = SERVER.get_or_init(Server::init).await;
        Self::create_from(server, Some(&server.template)).await
    }

    /// A new database with no schema at all, for testing the migrations themselves.
    pub async fn create_empty() -> Self {
        let server = SERVER.get_or_init(Server::init).await;
        Self::create_from(server, None).await
    }

    async fn create_from(server: &Server, template: Option<&str>) -> Self {
        let name = format!(
            "{PREFIX}{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = connect(&server.admin_url).await;
        let mut attempt = 0;
        loop {
            // template0 is PostgreSQL's pristine template: no schema, nothing in `public`.
            let template = template.unwrap_or("template0");
            let created = sqlx::query(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
                .execute(&mut admin)
                .await;
            match created {
                Ok(_) => break,
                // "source database is being accessed by other users": a concurrent clone or a
                // late disconnect from the template; it clears within moments.
                Err(e) if attempt < 50 && e.to_string().contains("being accessed") => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("creating test database {name}: {e}"),
            }
        }
        let _ = admin.close().await;
        let mut url = server.admin_url.clone();
        url.set_path(&name);
        Self { name, url }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The database's URL, as the service's configuration would hold it.
    pub fn url(&self) -> SecretString {
        SecretString::from(self.url.to_string())
    }

    /// The database's settings, as the service's configuration would hold them.
    pub fn settings(&self) -> DatabaseSettings {
        DatabaseSettings::from_url(self.url.as_str()).expect("test URL parses")
    }

    /// This database's settings, reached through `proxy`.
    pub fn settings_via(&self, proxy: &FaultProxy) -> DatabaseSettings {
        DatabaseSettings {
            host: aim_connect::Host::Tcp("127.0.0.1".to_owned()),
            port: proxy.addr().port(),
            ..self.settings()
        }
    }

    /// Starts a proxy in front of this database's server.
    pub async fn proxy(&self) -> FaultProxy {
        let options = PgConnectOptions::from_str(self.url.as_str()).expect("test URL parses");
        let upstream = match options.get_socket() {
            Some(dir) => Upstream::Unix(dir.join(format!(".s.PGSQL.{}", options.get_port()))),
            None => Upstream::Tcp(format!("{}:{}", options.get_host(), options.get_port())),
        };
        FaultProxy::start(upstream).await
    }
}

impl Server {
    async fn init() -> Self {
        let admin_url = find_server().await;
        let mut admin = connect(&admin_url).await;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(TEMPLATE_LOCK_KEY)
            .execute(&mut admin)
            .await
            .expect("taking the template lock");
        drop_stale_databases(&mut admin).await;
        let template = format!("{PREFIX}tpl_{}", migrations_digest());
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&template)
                .fetch_one(&mut admin)
                .await
                .expect("looking up the template");
        if !exists {
            build_template(&mut admin, &admin_url, &template).await;
        }
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(TEMPLATE_LOCK_KEY)
            .execute(&mut admin)
            .await
            .expect("releasing the template lock");
        let _ = admin.close().await;
        Self {
            admin_url,
            template,
        }
    }
}

/// Migrates under a temporary name and renames at the end, so a crash halfway never leaves a
/// half-migrated template that later runs would trust.
async fn build_template(admin: &mut PgConnection, admin_url: &Url, template: &str) {
    let building = format!("{template}_building");
    for sql in [
        format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"),
        format!("CREATE DATABASE {building}"),
    ] {
        sqlx::query(&sql)
            .execute(&mut *admin)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let mut url = admin_url.clone();
    url.set_path(&building);
    let mut conn = connect(&url).await;
    MIGRATOR
        .run(&mut conn)
        .await
        .expect("migrating the template database");
    conn.close().await.expect("closing the template connection");
    let rename = format!("ALTER DATABASE {building} RENAME TO {template}");
    sqlx::query(&rename)
        .execute(&mut *admin)
        .await
        .unwrap_or_else(|e| panic!("{rename}: {e}"));
}

/// Drops the databases of test processes that have exited; the rest belong to tests still
/// running in another process.
async fn drop_stale_databases(admin: &mut PgConnection) {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE starts_with(datname, $1)")
            .bind(PREFIX)
            .fetch_all(&mut *admin)
            .await
            .expect("listing test databases");
    for name in names {
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        // Signal 0 only asks whether the process exists; EPERM means it does.
        let gone = matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
            Err(nix::errno::Errno::ESRCH)
        );
        if gone {
            let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            if let Err(e) = sqlx::query(&sql).execute(&mut *admin).await {
                eprintln!("could not drop stale test database {name}: {e}");
            }
        }
    }
}

/// Digest of every migration's version and checksum: a new or changed migration gets a new
/// template.
fn migrations_digest() -> String {
    let mut hasher = Sha256::new();
    for m in MIGRATOR.iter() {
        hasher.update(m.version.to_le_bytes());
        hasher.update(&*m.checksum);
    }
    hex::encode(hasher.finalize())[..12].to_owned()
}

async fn find_server() -> Url {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return Url::parse(&url).expect("DATABASE_URL is not a valid URL");
    }
    // AIM_TEST_PG_ADDR moves the probe, so the throwaway-cluster path can be exercised on a
    // machine that does have a server on 5432.
    let addr = std::env::var("AIM_TEST_PG_ADDR").unwrap_or_else(|_| "127.0.0.1:5432".into());
    let local = Url::parse(&format!("postgres://postgres@{addr}/postgres"))
        .expect("AIM_TEST_PG_ADDR is host:port");
    let reachable = tokio::time::timeout(Duration::from_secs(3), async {
        PgConnectOptions::from_str(local.as_str())
            .expect("static URL")
            .connect()
            .await
    })
    .await;
    if let Ok(Ok(conn)) = reachable {
        let _ = conn.close().await;
        return local;
    }
    eprintln!("no DATABASE_URL and no server on 127.0.0.1:5432: starting a throwaway cluster");
    let options = ClusterOptions {
        data_dir: std::env::temp_dir().join(format!("aim-test-pg-{}", nix::unistd::geteuid())),
        tcp_port: None,
        database: "postgres".into(),
        path_var: std::env::var_os("PATH"),
        niceness: None,
    };
    let url = match LocalCluster::attach(&options)
        .await
        .unwrap_or_else(|e| panic!("starting a throwaway PostgreSQL cluster: {e}"))
    {
        Attached::Owner(cluster) => {
            let url = cluster.url().to_owned();
            let _ = CLUSTER.set(*cluster);
            url
        }
        Attached::Guest { url } => url,
    };
    Url::parse(&url).expect("cluster URL parses")
}

async fn connect(url: &Url) -> PgConnection {
    let mut last = None;
    // A freshly started or adopted server may still be opening up.
    for _ in 0..50 {
        match PgConnectOptions::from_str(url.as_str())
            .expect("URL parses")
            .connect()
            .await
        {
            Ok(conn) => return conn,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "connecting to {}: {}",
        url.path(),
        last.map(|e| e.to_string()).unwrap_or_default()
    );
}
