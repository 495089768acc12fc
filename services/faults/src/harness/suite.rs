//! A suite's set-up (a private cluster, the service, an agent and its key, the sustainable rate)
//! and its end (the oracle's report, `aim rollups verify`, everything stopped).

use aim_local_pg::{ClusterOptions, LocalCluster};
use anyhow::{Context, ensure};
use std::process::Stdio;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::http::{Http, get, http_client, json, metric, metric_labelled};
use crate::harness::load::{Observed, Target, load, sustained_rate};
use crate::harness::oracle::{connect, oracle};
use crate::harness::service::{EMAIL, JWT_SECRET, PASSWORD, Service, free_port};
use aim_pipeline::stats::names;

pub(crate) struct Suite {
    pub(crate) _work: tempfile::TempDir,
    pub(crate) cluster: LocalCluster,
    pub(crate) service: Service,
    pub(crate) http: Http,
    pub(crate) agent: String,
    pub(crate) key: String,
    pub(crate) rate: u64,
}

impl Suite {
    /// The sum of a metric's series on the suite's service.
    pub(crate) async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        metric(&self.http, self.service.metrics_port, name).await
    }

    /// The sum of a metric's series on the suite's service whose labels contain `label`.
    pub(crate) async fn metric_labelled(&self, name: &str, label: &str) -> anyhow::Result<f64> {
        metric_labelled(&self.http, self.service.metrics_port, name, label).await
    }
}

/// The private cluster's CPU priority: `AIM_FAULTS_PG_NICE`, 10 by default, 0 for none.
///
/// On this machine kind the database shares the service's two cores; at a shutdown checkpoint
/// or a crash recovery it takes them for tens of milliseconds, and every process on the machine
/// waits, the service included. Deployed, the database has cores of its own; a lower priority
/// here is the nearest a two-core machine comes to that, so the latency targets measure the
/// service. Set 0 to see the shared-cores figure.
pub(crate) fn pg_niceness() -> anyhow::Result<u8> {
    match std::env::var("AIM_FAULTS_PG_NICE") {
        Err(std::env::VarError::NotPresent) => Ok(10),
        Ok(value) => value
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|n| *n <= 19)
            .with_context(|| format!("AIM_FAULTS_PG_NICE must be 0 to 19, not {value:?}")),
        Err(e) => Err(e).context("AIM_FAULTS_PG_NICE"),
    }
}

pub(crate) async fn suite() -> anyhow::Result<Suite> {
    let binary = std::env::current_exe()?
        .parent()
        .context("executable folder")?
        .join("aim");
    ensure!(
        binary.is_file(),
        "{} is missing: cargo build --release -p aim-api first",
        binary.display()
    );
    let work = tempfile::tempdir()?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755))?;
    }
    let niceness = pg_niceness()?;
    let cluster = LocalCluster::start(&ClusterOptions {
        data_dir: work.path().join("pg"),
        tcp_port: None,
        database: "aim".into(),
        path_var: std::env::var_os("PATH"),
        niceness: (niceness > 0).then_some(niceness),
    })
    .await?;
    println!("PostgreSQL runs at nice {niceness} (AIM_FAULTS_PG_NICE)");
    let admin = connect(&cluster.admin_url()).await?;
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = 'aim'", &[])
        .await?
        .is_some();
    if !exists {
        admin.batch_execute("CREATE DATABASE aim").await?;
    }
    let http = http_client();
    let mut service = Service {
        binary,
        data_dir: work.path().join("aim"),
        database_url: cluster.url().to_owned(),
        port: free_port()?,
        metrics_port: free_port()?,
        child: None,
        log: work.path().join("aim.log"),
        env: Vec::new(),
    };
    service.start(&http).await?;
    let (agent, key) = provision(&http, &service.base()).await?;
    let sustained = sustained_rate(&http, &service.base(), &agent, &key).await?;
    let rate = sustained * 8 / 10;
    println!("sustained {sustained} requests/s on this machine; loading at 80%: {rate}/s");
    Ok(Suite {
        _work: work,
        cluster,
        service,
        http,
        agent,
        key,
        rate,
    })
}

/// An agent and its key, created through the API.
pub(crate) async fn provision(http: &Http, base: &str) -> anyhow::Result<(String, String)> {
    let body = serde_json::json!({ "email": EMAIL, "password": PASSWORD }).to_string();
    let (status, login) = get(http, &format!("{base}/api/v1/auth/login"), None, Some(body)).await?;
    ensure!(status == 200, "login: {status}");
    let token = format!(
        "Bearer {}",
        json(&login)?["token"].as_str().context("token")?
    );
    let auth = [("authorization", token.as_str())];
    let (status, agent) = get(
        http,
        &format!("{base}/api/v1/agents"),
        Some(&auth),
        Some(r#"{"name":"fault-suite"}"#.into()),
    )
    .await?;
    ensure!(status == 201, "create agent: {status}");
    let agent = json(&agent)?["id"].as_str().context("agent id")?.to_owned();
    let (status, key) = get(
        http,
        &format!("{base}/api/v1/agents/{agent}/api-keys"),
        Some(&auth),
        Some("{}".into()),
    )
    .await?;
    ensure!(status == 201, "create key: {status}");
    let key = json(&key)?["api_key"].as_str().context("key")?.to_owned();
    Ok((agent, key))
}

pub(crate) type Load = (
    Arc<Mutex<Observed>>,
    Arc<AtomicBool>,
    tokio::task::JoinHandle<()>,
);

pub(crate) fn start_load(s: &Suite, duration: Duration) -> Load {
    start_load_on(s, vec![s.service.base()], duration)
}

pub(crate) fn start_load_on(s: &Suite, bases: Vec<String>, duration: Duration) -> Load {
    let observed = Arc::new(Mutex::new(Observed::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let target = Target {
        http: s.http.clone(),
        bases,
        agent: s.agent.clone(),
        key: s.key.clone(),
    };
    let task = tokio::spawn(load(
        target,
        s.rate,
        duration,
        Arc::clone(&observed),
        Arc::clone(&stop),
    ));
    (observed, stop, task)
}

/// Lets every request in flight finish and takes what the driver saw.
pub(crate) async fn finish(observed: &Arc<Mutex<Observed>>) -> Observed {
    tokio::time::sleep(Duration::from_secs(11)).await;
    std::mem::take(
        &mut *observed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
}

pub(crate) async fn report(
    s: &Suite,
    observed: &Observed,
    extra: &[(&str, String)],
) -> anyhow::Result<(u64, u64)> {
    let (lost, duplicated, rows) = oracle(&s.service.database_url, &observed.answered).await?;
    let dropped = s
        .metric(names::EVENTS_DROPPED_TOTAL)
        .await
        .unwrap_or(f64::NAN);
    println!("requests sent: {}", observed.sent);
    println!("requests answered: {}", observed.answered.len());
    println!("rows with a fault- request id: {rows}");
    println!("lost (answered, no row): {lost}");
    println!("duplicated (more than one row): {duplicated}");
    println!("drops counted by this process since its last start: {dropped}");
    for (name, value) in extra {
        println!("{name}: {value}");
    }
    Ok((lost, duplicated))
}

pub(crate) async fn verify_rollups(s: &Suite) -> anyhow::Result<bool> {
    let today = chrono::Utc::now().date_naive();
    let status = tokio::process::Command::new(&s.service.binary)
        .args(["rollups", "verify", "--from"])
        .arg((today - chrono::Days::new(1)).to_string())
        .arg("--to")
        .arg((today + chrono::Days::new(1)).to_string())
        .env("DATABASE_URL", &s.service.database_url)
        .env("JWT_SECRET", JWT_SECRET)
        .env("AIM_DATA_DIR", s.service.data_dir.join("verify"))
        .stdout(Stdio::piped())
        .output()
        .await?;
    print!(
        "aim rollups verify: {}",
        String::from_utf8_lossy(&status.stdout)
    );
    Ok(status.status.success())
}

/// Every suite's end: `aim rollups verify` over the run's days, then the service and the cluster
/// stopped. Returns whether the rollups were clean.
pub(crate) async fn finish_suite(mut s: Suite) -> anyhow::Result<bool> {
    let clean = verify_rollups(&s).await?;
    s.service.signal(nix::sys::signal::Signal::SIGTERM)?;
    s.service.wait().await?;
    s.cluster.stop().await?;
    Ok(clean)
}
