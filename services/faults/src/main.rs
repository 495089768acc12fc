//! Fault suites for `aim serve`, each against a private PostgreSQL cluster the suite starts
//! itself, under load at 80% of the rate the machine sustains (measured first):
//!
//! ```sh
//! cargo build --release -p aim-api -p aim-faults
//! target/release/aim-faults restart   # PostgreSQL restarted 10 times in 60 s
//! target/release/aim-faults sigterm   # SIGTERM under load
//! target/release/aim-faults kill9     # kill -9 20 times, restarted each time
//! target/release/aim-faults slowdb    # tables locked for 10 s, then writes delayed, under load
//! target/release/aim-faults spoolfull # a 2 MiB spool while the database is down for 15 s
//! target/release/aim-faults replicas  # three replicas on one database, the load spread
//! target/release/aim-faults corruptspool # a damaged spool replayed after a restart
//! ```
//!
//! The oracle is exact: every request carries a unique `x-request-id`; the driver keeps the ids
//! of the requests that got an answer; afterwards the set difference against
//! `api_calls.request_id` gives the lost and the duplicated calls, and the drop counters must
//! account for every lost one. Loopback only; every loop is bounded in time.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aim_local_pg::{ClusterOptions, LocalCluster, ShutdownMode};
use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

const EMAIL: &str = "faults@example.test";
const PASSWORD: &str = "fault-suite-password";
const JWT_SECRET: &str = "fault-suite-secret-of-at-least-32-bytes";

type Http = Client<HttpConnector, Full<Bytes>>;

/// One `aim serve` process on fixed ports and a fixed data folder, so a restart is the same
/// service with the same spool.
struct Service {
    binary: PathBuf,
    data_dir: PathBuf,
    database_url: String,
    port: u16,
    metrics_port: u16,
    child: Option<tokio::process::Child>,
    log: PathBuf,
    /// Extra settings a suite needs (a small spool, say).
    env: Vec<(String, String)>,
}

impl Service {
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the process and waits until it answers `/health/ready`; returns how long it took.
    async fn start(&mut self, http: &Http) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = tokio::process::Command::new(&self.binary)
            .arg("serve")
            .env("DATABASE_URL", &self.database_url)
            .env("JWT_SECRET", JWT_SECRET)
            .env("AIM_DATA_DIR", &self.data_dir)
            .env("AIM_LISTEN", format!("127.0.0.1:{}", self.port))
            .env(
                "AIM_METRICS_LISTEN",
                format!("127.0.0.1:{}", self.metrics_port),
            )
            .env("AIM_ADMIN_EMAIL", EMAIL)
            .env("AIM_ADMIN_PASSWORD", PASSWORD)
            .env("AIM_AGENT_RATE_LIMIT_PER_S", "0")
            .env("AIM_LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok((200, _)) =
                get(http, &format!("{}/health/ready", self.base()), None, None).await
            {
                return Ok(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log
            .lines()
            .take(12)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        bail!(
            "aim did not become ready within 60 s; the end of its log:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }

    fn pid(&self) -> Option<i32> {
        self.child
            .as_ref()
            .and_then(tokio::process::Child::id)
            .and_then(|id| i32::try_from(id).ok())
    }

    fn signal(&self, signal: nix::sys::signal::Signal) -> anyhow::Result<()> {
        let pid = self.pid().context("the service is not running")?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal)?;
        Ok(())
    }

    async fn wait(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let mut child = self.child.take().context("the service is not running")?;
        Ok(tokio::time::timeout(Duration::from_secs(30), child.wait()).await??)
    }

    /// Peak resident memory of the running process, from `/proc`.
    fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }
}

fn http_client() -> Http {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build_http()
}

async fn get(
    http: &Http,
    uri: &str,
    headers: Option<&[(&str, &str)]>,
    body: Option<String>,
) -> anyhow::Result<(u16, Bytes)> {
    let mut request = http::Request::builder()
        .method(if body.is_some() { "POST" } else { "GET" })
        .uri(uri);
    for (name, value) in headers.unwrap_or_default() {
        request = request.header(*name, *value);
    }
    let request = match body {
        Some(body) => request
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?,
        None => request.body(Full::new(Bytes::new()))?,
    };
    let response = tokio::time::timeout(Duration::from_secs(10), http.request(request)).await??;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((status, bytes))
}

/// A `GET` with the agent's `authorization` and `x-request-id: fault-<n>`, the id the oracle
/// looks for; returns the answer and how long it took.
async fn numbered_call(
    http: &Http,
    uri: &str,
    authorization: &str,
    n: u64,
) -> (anyhow::Result<(u16, Bytes)>, Duration) {
    let id = format!("fault-{n}");
    let sent = Instant::now();
    let answer = get(
        http,
        uri,
        Some(&[("authorization", authorization), ("x-request-id", &id)]),
        None,
    )
    .await;
    (answer, sent.elapsed())
}

fn json(bytes: &Bytes) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::from_slice(bytes)?)
}

/// An agent and its key, created through the API.
async fn provision(http: &Http, base: &str) -> anyhow::Result<(String, String)> {
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

/// What the driver saw.
#[derive(Default)]
struct Observed {
    /// Ids of requests that got an HTTP answer.
    answered: Vec<u64>,
    /// (seconds since the load started, latency) of the no-database route's answers.
    fast_route: Vec<(f64, Duration)>,
    /// (seconds since the load started, latency, status) of the database route's answers.
    db_route: Vec<(f64, Duration, u16)>,
    /// (seconds since the load started, latency) of the probe's answers; see [`probe`].
    probe: Vec<(f64, Duration)>,
    /// The probe's requests answered with another status than the route's 400, or not at all.
    probe_failures: u64,
    /// Ids of the probe's answered requests (also in `answered`).
    probe_answered: HashSet<u64>,
    sent: u64,
}

/// Where the load goes and with which credential.
#[derive(Clone)]
struct Target {
    /// The database route's client; the other route gets one of its own.
    http: Http,
    /// One service's URL, or several replicas' taken in turn.
    bases: Vec<String>,
    agent: String,
    key: String,
}

/// Numbers the load's requests (`x-request-id: fault-<n>`).
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Where the probe's request ids start, far above the load's, so the oracle accounts for both.
const PROBE_FIRST_ID: u64 = 1 << 40;

/// What the probe saw.
#[derive(Default)]
struct Probed {
    /// (seconds since the load started, latency) of each of the route's answers.
    samples: Vec<(f64, Duration)>,
    /// Ids of the requests that got an HTTP answer.
    answered: Vec<u64>,
    sent: u64,
    /// Requests not answered with the route's 400, or not at all.
    failures: u64,
}

/// `aim-faults probe`: the latency of the no-database route as one more client sees it, in a
/// process of its own: one kept-alive connection, one request every 4 ms, for
/// `AIM_PROBE_SECONDS`. The load's own measurements also count the time its requests wait in
/// the driver: its two worker threads hold thousands of tasks when an outage slows the other
/// route, and every `pg_ctl` the driver starts forks its large address space, stalling its
/// threads. The probe's requests wait for nothing but the service (and the machine).
///
/// Prints `s <seconds since it started> <latency µs>` per answer of the route, `a <id>` per
/// answered request, and a last line `n <sent> <failures>`.
async fn probe_main() -> anyhow::Result<()> {
    use std::io::Write as _;
    let var = |name: &str| std::env::var(name).with_context(|| format!("{name} is not set"));
    let uri = var("AIM_PROBE_URI")?;
    let key = var("AIM_PROBE_KEY")?;
    let duration = Duration::from_secs_f64(var("AIM_PROBE_SECONDS")?.parse()?);
    let started = Instant::now();
    let http = http_client();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let (mut sent, mut failures) = (0u64, 0u64);
    while started.elapsed() < duration {
        let n = PROBE_FIRST_ID + sent;
        sent += 1;
        let at = started.elapsed();
        let (answer, latency) = numbered_call(&http, &uri, &key, n).await;
        if answer.is_ok() {
            writeln!(out, "a {n}")?;
        }
        if let Ok((400, _)) = answer {
            writeln!(out, "s {:.6} {}", at.as_secs_f64(), latency.as_micros())?;
        } else {
            failures += 1;
        }
        tokio::time::sleep(Duration::from_millis(4)).await;
    }
    writeln!(out, "n {sent} {failures}")?;
    out.flush()?;
    Ok(())
}

/// Starts the probe process for `duration`.
fn start_probe(uri: &str, key: &str, duration: Duration) -> anyhow::Result<tokio::process::Child> {
    tokio::process::Command::new(std::env::current_exe()?)
        .arg("probe")
        .env("AIM_PROBE_URI", uri)
        .env("AIM_PROBE_KEY", key)
        .env("AIM_PROBE_SECONDS", duration.as_secs_f64().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting the latency probe")
}

/// Reads what the probe printed; its seconds start `offset` after the load's.
fn parse_probe(output: &[u8], offset: f64) -> anyhow::Result<Probed> {
    let mut probed = Probed::default();
    let mut finished = false;
    for line in String::from_utf8_lossy(output).lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        match fields.as_slice() {
            ["s", at, micros] => probed.samples.push((
                offset + at.parse::<f64>()?,
                Duration::from_micros(micros.parse()?),
            )),
            ["a", id] => probed.answered.push(id.parse()?),
            ["n", sent, failures] => {
                probed.sent = sent.parse()?;
                probed.failures = failures.parse()?;
                finished = true;
            }
            _ => bail!("the probe printed {line:?}"),
        }
    }
    ensure!(finished, "the probe stopped before its last line");
    Ok(probed)
}

/// Open-loop load at `rate` requests a second for `duration`: agent-key calls alternating
/// between `GET /api/v1/agents/{id}` (a database read) and a request refused before any query
/// (`GET /api/v1/verifications?limit=0`: authenticated from the key cache, then a 400), whose
/// latency shows what an outage does to a route that needs no database.
///
/// The two routes are two clients, each with its own connection pool, as two agents would be:
/// with one pool, the database route's requests held during an outage take every kept-alive
/// connection, and the other route's latency becomes that of opening new ones.
async fn load(
    target: Target,
    rate: u64,
    duration: Duration,
    observed: Arc<Mutex<Observed>>,
    stop: Arc<AtomicBool>,
) {
    let Target {
        http,
        bases,
        agent,
        key,
    } = target;
    let started = Instant::now();
    let tick = Duration::from_millis(10);
    let per_tick = (rate / 100).max(1);
    let mut ticks = tokio::time::interval(tick);
    let fast_http = http_client();
    let probe_offset = started.elapsed().as_secs_f64();
    // Its output is read as it comes (a full pipe would stop it), and parsed at the end.
    let probe = start_probe(
        &format!("{}/api/v1/verifications?limit=0", bases[0]),
        &format!("Bearer {key}"),
        duration,
    )
    .map(|child| tokio::spawn(child.wait_with_output()));
    let in_flight = Arc::new(tokio::sync::Semaphore::new(2_000));
    while started.elapsed() < duration && !stop.load(Ordering::Relaxed) {
        ticks.tick().await;
        for _ in 0..per_tick {
            let Ok(permit) = Arc::clone(&in_flight).try_acquire_owned() else {
                continue;
            };
            let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
            let fast = n % 2 == 1;
            let http = if fast { &fast_http } else { &http }.clone();
            let observed = Arc::clone(&observed);
            // Both routes reach every replica: request n goes to replica (n / 2) mod count.
            let base = &bases[(n / 2) as usize % bases.len()];
            let uri = if fast {
                format!("{base}/api/v1/verifications?limit=0")
            } else {
                format!("{base}/api/v1/agents/{agent}")
            };
            let key = format!("Bearer {key}");
            tokio::spawn(async move {
                let sent = Instant::now();
                let (answer, latency) = numbered_call(&http, &uri, &key, n).await;
                let mut o = observed
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                o.sent += 1;
                if let Ok((status, _)) = answer {
                    o.answered.push(n);
                    let at = (sent - started).as_secs_f64();
                    if fast {
                        o.fast_route.push((at, latency));
                    } else {
                        o.db_route.push((at, latency, status));
                    }
                }
                drop(permit);
            });
        }
    }
    // A probe that could not run leaves no samples, and the latency target then fails.
    let probed = match probe {
        Ok(output) => match output.await {
            Ok(Ok(output)) if output.status.success() => parse_probe(&output.stdout, probe_offset)
                .unwrap_or_else(|e| {
                    eprintln!("the latency probe's output: {e:#}");
                    Probed::default()
                }),
            Ok(Ok(output)) => {
                eprintln!("the latency probe failed: {}", output.status);
                Probed::default()
            }
            Ok(Err(e)) => {
                eprintln!("the latency probe: {e}");
                Probed::default()
            }
            Err(e) => {
                eprintln!("the latency probe's reader: {e}");
                Probed::default()
            }
        },
        Err(e) => {
            eprintln!("{e:#}");
            Probed::default()
        }
    };
    let mut o = observed
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    o.probe = probed.samples;
    o.probe_failures = probed.failures;
    o.sent += probed.sent;
    o.answered.extend(&probed.answered);
    o.probe_answered = probed.answered.into_iter().collect();
}

/// Closed-loop for `seconds`: the rate this machine sustains on the agent route.
async fn sustained_rate(http: &Http, base: &str, agent: &str, key: &str) -> anyhow::Result<u64> {
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(3);
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (http, done) = (http.clone(), Arc::clone(&done));
        let uri = format!("{base}/api/v1/agents/{agent}");
        let key = format!("Bearer {key}");
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                if get(&http, &uri, Some(&[("authorization", key.as_str())]), None)
                    .await
                    .is_ok()
                {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    Ok(done.load(Ordering::Relaxed) / 3)
}

async fn metric(http: &Http, port: u16, name: &str) -> anyhow::Result<f64> {
    let (_, text) = get(
        http,
        &format!("http://127.0.0.1:{port}/metrics"),
        None,
        None,
    )
    .await?;
    Ok(String::from_utf8_lossy(&text)
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// Waits until nothing is queued, in a writer's hands or spooled, twice in a row half a second
/// apart; returns how long that took.
async fn drained(http: &Http, metrics_port: u16, within: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut quiet = 0;
    while started.elapsed() < within {
        let mut pending = 0.0;
        for name in [
            "aim_analytics_queue_depth",
            "aim_analytics_events_in_flight",
            "aim_analytics_spool_frames",
            "aim_analytics_spool_bytes",
        ] {
            pending += metric(http, metrics_port, name).await.unwrap_or(1.0);
        }
        quiet = if pending == 0.0 { quiet + 1 } else { 0 };
        if quiet == 2 {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!("the queue and spool did not drain within {within:?}")
}

/// The cluster's URLs name the socket folder in a `host` query parameter, as sqlx reads them;
/// tokio-postgres would also try the URL's `localhost`, so the connection is built explicitly.
fn postgres_config(url: &str) -> anyhow::Result<tokio_postgres::Config> {
    let (head, query) = url.split_once('?').context("a socket URL")?;
    let database = head.rsplit('/').next().context("a database")?;
    let mut config = tokio_postgres::Config::new();
    config.user("postgres").dbname(database);
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("host", dir)) => {
                config.host_path(dir.replace("%2F", "/"));
            }
            Some(("port", port)) => {
                config.port(port.parse()?);
            }
            _ => {}
        }
    }
    Ok(config)
}

/// The load's request ids in `api_calls`, each with its number of rows.
async fn stored_ids(database_url: &str) -> anyhow::Result<HashMap<u64, i64>> {
    let (client, connection) = postgres_config(database_url)?
        .connect(tokio_postgres::NoTls)
        .await?;
    tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT request_id, count(*) FROM api_calls WHERE request_id LIKE 'fault-%' GROUP BY 1",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let id: String = r.get(0);
            Some((fault_id(&id)?, r.get(1)))
        })
        .collect())
}

fn fault_id(request_id: &str) -> Option<u64> {
    request_id.strip_prefix("fault-")?.parse().ok()
}

/// The oracle: which answered ids have no row, and which have more than one.
async fn oracle(database_url: &str, answered: &[u64]) -> anyhow::Result<(u64, u64, u64)> {
    let stored = stored_ids(database_url).await?;
    let answered: HashSet<u64> = answered.iter().copied().collect();
    let lost = answered
        .iter()
        .filter(|id| !stored.contains_key(id))
        .count() as u64;
    let duplicated = stored.values().filter(|n| **n > 1).count() as u64;
    Ok((lost, duplicated, stored.len() as u64))
}

/// With `AIM_FAULTS_SAMPLES=<file>`, writes every answer of the no-database route (`sample`:
/// seconds since the load started, latency in microseconds), of the database route (`db<status>`)
/// and the fault windows as CSV, so a p99 can be
/// taken apart afterwards: which moments of a fault cost the latency.
fn write_samples(
    observed: &Observed,
    load_started: Instant,
    windows: &[(f64, f64)],
) -> anyhow::Result<()> {
    use std::fmt::Write as _;
    let Some(path) = std::env::var_os("AIM_FAULTS_SAMPLES") else {
        return Ok(());
    };
    let mut csv = String::from("kind,seconds,value\n");
    // Wall-clock time of second 0, to line the samples up with other records (PostgreSQL's
    // log, a system monitor).
    let epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    writeln!(
        csv,
        "epoch,{:.4},0",
        (epoch - load_started.elapsed()).as_secs_f64()
    )?;
    for (from, to) in windows {
        writeln!(csv, "window,{from:.4},{to:.4}")?;
    }
    for (t, latency) in &observed.fast_route {
        writeln!(csv, "sample,{t:.4},{}", latency.as_micros())?;
    }
    for (t, latency) in &observed.probe {
        writeln!(csv, "probe,{t:.4},{}", latency.as_micros())?;
    }
    for (t, latency, status) in &observed.db_route {
        writeln!(csv, "db{status},{t:.4},{}", latency.as_micros())?;
    }
    std::fs::write(&path, csv)
        .with_context(|| format!("writing {}", PathBuf::from(&path).display()))?;
    println!("samples written to {}", PathBuf::from(&path).display());
    Ok(())
}

/// p99s of the no-database route before the first fault (from the load's second second: 9 s,
/// about 2,000 probe answers) and inside the fault `windows` (seconds since the load started): the probe's, which the target applies to, and
/// the load's, reported beside them.
struct RouteLatency {
    probe: (Duration, Duration),
    load: (Duration, Duration),
    /// The probe's answers before and during the faults.
    probe_answers: (usize, usize),
    probe_failures: u64,
}

impl RouteLatency {
    fn of(observed: &Observed, windows: &[(f64, f64)]) -> Self {
        // From the load's second second (its first opens the connections) to the first fault.
        let first_fault = windows.first().map_or(0.0, |w| w.0);
        let before = |t: f64| (1.0..first_fault).contains(&t);
        let during = |t: f64| windows.iter().any(|(a, b)| t >= *a && t <= *b);
        let split = |samples: &[(f64, Duration)]| {
            (
                p99(samples.iter().filter(|(t, _)| before(*t)).map(|(_, l)| *l)),
                p99(samples.iter().filter(|(t, _)| during(*t)).map(|(_, l)| *l)),
            )
        };
        let count = |f: &dyn Fn(f64) -> bool| observed.probe.iter().filter(|(t, _)| f(*t)).count();
        Self {
            probe: split(&observed.probe),
            load: split(&observed.fast_route),
            probe_answers: (count(&before), count(&during)),
            probe_failures: observed.probe_failures,
        }
    }

    /// Within 1.2 × the baseline, on enough answers for a p99 to mean something, and every
    /// probe request answered as the route answers.
    fn met(&self) -> bool {
        self.probe_failures == 0
            && self.probe_answers.0 >= 100
            && self.probe_answers.1 >= 100
            && p99_ratio(self.probe.0, self.probe.1) <= 1.2
    }

    fn lines(&self, during: &str) -> Vec<(&'static str, String)> {
        let (before, after) = self.probe;
        vec![
            (
                "probe: answers before / during the faults",
                format!("{} / {}", self.probe_answers.0, self.probe_answers.1),
            ),
            (
                "probe: requests not answered 400 (must be 0)",
                self.probe_failures.to_string(),
            ),
            (
                "probe: p99 of the no-database route before the faults",
                format!("{before:?}"),
            ),
            (
                "probe: p99 of the no-database route during the faults",
                format!("{after:?} ({during})"),
            ),
            (
                "probe: p99 ratio",
                format!("{:.2}", p99_ratio(before, after)),
            ),
            (
                "load: p99 of the no-database route before / during the faults",
                format!("{:?} / {:?}", self.load.0, self.load.1),
            ),
            (
                "load: p99 ratio",
                format!("{:.2}", p99_ratio(self.load.0, self.load.1)),
            ),
        ]
    }
}

/// A loopback port nothing listens on now.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The p99 during a fault over the p99 before it.
fn p99_ratio(baseline: Duration, during: Duration) -> f64 {
    during.as_secs_f64() / baseline.as_secs_f64().max(1e-9)
}

/// How long the queue and spool took to empty, or why they did not.
fn drain_text(drain: &anyhow::Result<Duration>) -> String {
    drain
        .as_ref()
        .map_or_else(ToString::to_string, |d| format!("after {d:?}"))
}

/// The memory target of every suite: peak RSS of `aim` at most this many MiB.
const MAX_RSS_MIB: f64 = 256.0;

fn rss_ok(kib: Option<u64>) -> bool {
    kib.is_some_and(|k| k as f64 / 1024.0 <= MAX_RSS_MIB)
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("unknown".into(), |k| {
        format!("{:.1} MiB", k as f64 / 1024.0)
    })
}

fn p99(latencies: impl Iterator<Item = Duration>) -> Duration {
    let mut all: Vec<Duration> = latencies.collect();
    if all.is_empty() {
        return Duration::ZERO;
    }
    all.sort();
    all[(all.len() * 99).div_ceil(100).clamp(1, all.len()) - 1]
}

struct Suite {
    _work: tempfile::TempDir,
    cluster: LocalCluster,
    service: Service,
    http: Http,
    agent: String,
    key: String,
    rate: u64,
}

/// The private cluster's CPU priority: `AIM_FAULTS_PG_NICE`, 10 by default, 0 for none.
///
/// On this machine kind the database shares the service's two cores; at a shutdown checkpoint
/// or a crash recovery it takes them for tens of milliseconds, and every process on the machine
/// waits, the service included. Deployed, the database has cores of its own; a lower priority
/// here is the nearest a two-core machine comes to that, so the latency targets measure the
/// service. Set 0 to see the shared-cores figure.
fn pg_niceness() -> anyhow::Result<u8> {
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

async fn suite() -> anyhow::Result<Suite> {
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
    let (admin, connection) = postgres_config(&cluster.admin_url())?
        .connect(tokio_postgres::NoTls)
        .await?;
    tokio::spawn(connection);
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

type Load = (
    Arc<Mutex<Observed>>,
    Arc<AtomicBool>,
    tokio::task::JoinHandle<()>,
);

fn start_load(s: &Suite, duration: Duration) -> Load {
    start_load_on(s, vec![s.service.base()], duration)
}

fn start_load_on(s: &Suite, bases: Vec<String>, duration: Duration) -> Load {
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
async fn finish(observed: &Arc<Mutex<Observed>>) -> Observed {
    tokio::time::sleep(Duration::from_secs(11)).await;
    std::mem::take(
        &mut *observed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
}

async fn report(
    s: &Suite,
    observed: &Observed,
    extra: &[(&str, String)],
) -> anyhow::Result<(u64, u64)> {
    let (lost, duplicated, rows) = oracle(&s.service.database_url, &observed.answered).await?;
    let dropped = metric(
        &s.http,
        s.service.metrics_port,
        "aim_analytics_events_dropped_total",
    )
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

async fn verify_rollups(s: &Suite) -> anyhow::Result<bool> {
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
async fn finish_suite(mut s: Suite) -> anyhow::Result<bool> {
    let clean = verify_rollups(&s).await?;
    s.service.signal(nix::sys::signal::Signal::SIGTERM)?;
    s.service.wait().await?;
    s.cluster.stop().await?;
    Ok(clean)
}

async fn restart(s: Suite) -> anyhow::Result<bool> {
    let (observed, _stop, load) = start_load(&s, Duration::from_secs(80));
    tokio::time::sleep(Duration::from_secs(10)).await;
    let mut last_restart = Instant::now();
    let mut outages = Vec::new();
    let load_started = Instant::now() - Duration::from_secs(10);
    for i in 0..10 {
        let mode = if i % 2 == 0 {
            ShutdownMode::Fast
        } else {
            ShutdownMode::Immediate
        };
        let from = load_started.elapsed().as_secs_f64();
        s.cluster.restart(mode, Duration::from_secs(2)).await?;
        outages.push((from, load_started.elapsed().as_secs_f64()));
        last_restart = Instant::now();
        println!(
            "restart {} ({mode:?}) done at {:.1} s",
            i + 1,
            load_started.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_secs(4)).await;
    }
    load.await?;
    let observed = finish(&observed).await;
    let drain = drained(&s.http, s.service.metrics_port, Duration::from_secs(60)).await;
    let since_last = last_restart.elapsed();
    write_samples(&observed, load_started, &outages)?;
    let latency = RouteLatency::of(&observed, &outages);
    let rss = s.service.peak_rss_kib();
    let mut lines = vec![(
        "spool empty",
        match &drain {
            Ok(_) => format!("{:.1} s after the last restart", since_last.as_secs_f64()),
            Err(e) => e.to_string(),
        },
    )];
    lines.extend(latency.lines("while PostgreSQL was stopping, down or starting"));
    lines.push(("peak RSS", mib(rss)));
    let (lost, duplicated) = report(&s, &observed, &lines).await?;
    let clean = finish_suite(s).await?;
    let latency_ok = latency.met();
    let drained_in_time = drain.is_ok() && since_last <= Duration::from_secs(60);
    println!(
        "targets: 0 lost {}, 0 duplicated {}, spool empty within 60 s {}, rollups clean {}, p99 within 1.2× {}, peak RSS ≤ 256 MiB {}",
        mark(lost == 0),
        mark(duplicated == 0),
        mark(drained_in_time),
        mark(clean),
        mark(latency_ok),
        mark(rss_ok(rss))
    );
    Ok(lost == 0 && duplicated == 0 && drained_in_time && clean && latency_ok && rss_ok(rss))
}

fn mark(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT MET" }
}

/// The spool at its cap while the database is down: drops are counted as `spool_full`, nothing
/// crashes, and once the database is back the spool is replayed and new calls are written.
async fn spoolfull(mut s: Suite) -> anyhow::Result<bool> {
    // A 2 MiB spool: a few seconds of this load.
    s.service.signal(nix::sys::signal::Signal::SIGTERM)?;
    s.service.wait().await?;
    s.service.env.push((
        "AIM_ANALYTICS_SPOOL_MAX_BYTES".into(),
        (2 * 1024 * 1024).to_string(),
    ));
    s.service.start(&s.http).await?;
    let (observed, _stop, load) = start_load(&s, Duration::from_secs(30));
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Down for 15 s: the spool fills within a few seconds, then batches are dropped. Ten seconds
    // in, the service must still answer.
    let health = {
        let (http, base) = (s.http.clone(), s.service.base());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            matches!(
                get(&http, &format!("{base}/health"), None, None).await,
                Ok((200, _))
            )
        })
    };
    s.cluster
        .restart(ShutdownMode::Fast, Duration::from_secs(15))
        .await?;
    let alive_during = health.await?;
    load.await?;
    let observed = finish(&observed).await;
    let drain = drained(&s.http, s.service.metrics_port, Duration::from_secs(60)).await;
    let full = metric_labelled(
        &s.http,
        s.service.metrics_port,
        "aim_analytics_events_dropped_total",
        "reason=\"spool_full\"",
    )
    .await?;
    let dropped = metric(
        &s.http,
        s.service.metrics_port,
        "aim_analytics_events_dropped_total",
    )
    .await?;
    let rss = s.service.peak_rss_kib();
    let (lost, duplicated) = report(
        &s,
        &observed,
        &[
            ("dropped as spool_full", format!("{full}")),
            ("alive while the spool was full", alive_during.to_string()),
            (
                "queue and spool empty after the database returned",
                drain_text(&drain),
            ),
            ("peak RSS", mib(rss)),
        ],
    )
    .await?;
    let clean = finish_suite(s).await?;
    // Every lost call must be a counted drop, and they must all be spool_full.
    let accounted = lost as f64 == dropped && dropped == full;
    println!(
        "targets: drops counted as spool_full {}, every lost call counted {}, no crash {}, recovered {}, 0 duplicated {}, rollups clean {}",
        mark(full > 0.0),
        mark(accounted),
        mark(alive_during),
        mark(drain.is_ok()),
        mark(duplicated == 0),
        mark(clean)
    );
    Ok(full > 0.0 && accounted && alive_during && drain.is_ok() && duplicated == 0 && clean)
}

/// The sum of a metric's series whose labels contain `label`.
async fn metric_labelled(http: &Http, port: u16, name: &str, label: &str) -> anyhow::Result<f64> {
    let (_, text) = get(
        http,
        &format!("http://127.0.0.1:{port}/metrics"),
        None,
        None,
    )
    .await?;
    Ok(String::from_utf8_lossy(&text)
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// A slow database: an exclusive lock held on `api_calls` for 10 s (every COPY waits), then one
/// on `agent_activity_metrics` for 10 s (every rollup step waits), under load.
/// Two tables locked for 10 s each, then every write to `api_calls` delayed by 500 ms for 10 s
/// (a statement-level trigger that sleeps, counting the statements it delayed).
async fn slowdb(s: Suite) -> anyhow::Result<bool> {
    let (observed, _stop, load) = start_load(&s, Duration::from_secs(53));
    let load_started = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (locker, connection) = postgres_config(&s.service.database_url)?
        .connect(tokio_postgres::NoTls)
        .await?;
    tokio::spawn(connection);
    let mut windows = Vec::new();
    for table in ["api_calls", "agent_activity_metrics"] {
        let from = load_started.elapsed().as_secs_f64();
        locker
            .batch_execute(&format!(
                "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(10); COMMIT"
            ))
            .await?;
        windows.push((from, load_started.elapsed().as_secs_f64()));
        println!(
            "{table} locked from {from:.1} s to {:.1} s",
            load_started.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let from = load_started.elapsed().as_secs_f64();
    locker
        .batch_execute(
            "CREATE SEQUENCE fault_delayed_writes;
             CREATE FUNCTION fault_delay() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN PERFORM nextval('fault_delayed_writes'); PERFORM pg_sleep(0.5); RETURN NULL; END $$;
             CREATE TRIGGER fault_delay BEFORE INSERT ON api_calls
             FOR EACH STATEMENT EXECUTE FUNCTION fault_delay();",
        )
        .await?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    locker
        .batch_execute("DROP TRIGGER fault_delay ON api_calls; DROP FUNCTION fault_delay();")
        .await?;
    windows.push((from, load_started.elapsed().as_secs_f64()));
    let delayed: i64 = locker
        .query_one(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM fault_delayed_writes",
            &[],
        )
        .await?
        .get(0);
    println!(
        "writes to api_calls delayed 500 ms from {from:.1} s to {:.1} s: {delayed} statements",
        load_started.elapsed().as_secs_f64()
    );
    load.await?;
    let observed = finish(&observed).await;
    let drain = drained(&s.http, s.service.metrics_port, Duration::from_secs(60)).await;
    write_samples(&observed, load_started, &windows)?;
    let latency = RouteLatency::of(&observed, &windows);
    let spooled = metric(
        &s.http,
        s.service.metrics_port,
        "aim_analytics_events_spooled_total",
    )
    .await?;
    let dropped = metric(
        &s.http,
        s.service.metrics_port,
        "aim_analytics_events_dropped_total",
    )
    .await?;
    let spilled = metric(
        &s.http,
        s.service.metrics_port,
        "aim_analytics_events_spilled_total",
    )
    .await?;
    let rss = s.service.peak_rss_kib();
    let mut lines = vec![
        (
            "events spooled while the writers were blocked",
            format!("{spooled}"),
        ),
        (
            "of them, moved off a three-quarters-full queue by the spiller",
            format!("{spilled}"),
        ),
        ("writes delayed 500 ms by the trigger", delayed.to_string()),
        ("queue and spool empty afterwards", drain_text(&drain)),
    ];
    lines.extend(latency.lines("while a lock was held or writes were delayed"));
    lines.push(("peak RSS", mib(rss)));
    let (lost, duplicated) = report(&s, &observed, &lines).await?;
    let clean = finish_suite(s).await?;
    let latency_ok = latency.met();
    println!(
        "targets: nothing lost {}, 0 duplicated {}, no drops {}, writes delayed {}, drained {}, rollups clean {}, p99 within 1.2× {}, peak RSS ≤ 256 MiB {}",
        mark(lost == 0),
        mark(duplicated == 0),
        mark(dropped == 0.0),
        mark(delayed > 0),
        mark(drain.is_ok()),
        mark(clean),
        mark(latency_ok),
        mark(rss_ok(rss))
    );
    Ok(lost == 0
        && duplicated == 0
        && dropped == 0.0
        && delayed > 0
        && drain.is_ok()
        && clean
        && latency_ok
        && rss_ok(rss))
}

async fn sigterm(mut s: Suite) -> anyhow::Result<bool> {
    let (observed, _stop, load) = start_load(&s, Duration::from_secs(12));
    tokio::time::sleep(Duration::from_secs(6)).await;
    let rss = s.service.peak_rss_kib();
    s.service.signal(nix::sys::signal::Signal::SIGTERM)?;
    let exit = s.service.wait().await?;
    load.await?;
    let observed = finish(&observed).await;
    // Restarted only to read the counters and run the oracle against a live service.
    s.service.start(&s.http).await?;
    let (lost, duplicated) = report(
        &s,
        &observed,
        &[("exit status", exit.to_string()), ("peak RSS", mib(rss))],
    )
    .await?;
    let clean = finish_suite(s).await?;
    Ok(lost == 0 && duplicated == 0 && exit.success() && clean)
}

async fn kill9(mut s: Suite) -> anyhow::Result<bool> {
    let (observed, stop, load) = start_load(&s, Duration::from_secs(120));
    let mut restarts = Vec::new();
    let mut peak_rss = 0;
    for i in 0..20u64 {
        // "Random" moments, reproducible: 0.5–2.4 s apart.
        let wait = 500 + (i * 7_919 % 20) * 100;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        peak_rss = peak_rss.max(s.service.peak_rss_kib().unwrap_or(0));
        s.service.signal(nix::sys::signal::Signal::SIGKILL)?;
        s.service.wait().await?;
        restarts.push(s.service.start(&s.http).await?);
    }
    stop.store(true, Ordering::Relaxed);
    load.await?;
    let observed = finish(&observed).await;
    let drain = drained(&s.http, s.service.metrics_port, Duration::from_secs(60)).await;
    let slowest = restarts.iter().max().copied().unwrap_or_default();
    let (_, duplicated) = report(
        &s,
        &observed,
        &[
            ("restarts", restarts.len().to_string()),
            ("slowest restart to ready", format!("{slowest:?}")),
            ("spool empty afterwards", drain_text(&drain)),
            ("peak RSS", format!("{:.1} MiB", peak_rss as f64 / 1024.0)),
        ],
    )
    .await?;
    let clean = finish_suite(s).await?;
    Ok(duplicated == 0 && slowest <= Duration::from_secs(5) && drain.is_ok() && clean)
}

/// Three `aim serve` processes on one database, each with its own data folder and spool, the
/// load spread evenly across them; PostgreSQL restarted once in the middle, so every replica
/// spools and replays at the same time.
async fn replicas(s: Suite) -> anyhow::Result<bool> {
    let mut others = Vec::new();
    for i in 1..=2 {
        let mut replica = Service {
            binary: s.service.binary.clone(),
            data_dir: s.service.data_dir.with_file_name(format!("aim-{i}")),
            database_url: s.service.database_url.clone(),
            port: free_port()?,
            metrics_port: free_port()?,
            child: None,
            log: s.service.log.with_file_name(format!("aim-{i}.log")),
            env: Vec::new(),
        };
        replica.start(&s.http).await?;
        others.push(replica);
    }
    let mut bases = vec![s.service.base()];
    bases.extend(others.iter().map(Service::base));
    let (observed, _stop, load) = start_load_on(&s, bases, Duration::from_secs(30));
    tokio::time::sleep(Duration::from_secs(12)).await;
    s.cluster
        .restart(ShutdownMode::Fast, Duration::from_secs(2))
        .await?;
    println!("PostgreSQL restarted (fast, down 2 s) 12 s into the load");
    load.await?;
    let observed = finish(&observed).await;
    let mut peak_rss = vec![s.service.peak_rss_kib()];
    let mut drains = vec![drained(&s.http, s.service.metrics_port, Duration::from_secs(60)).await];
    let mut dropped = metric(
        &s.http,
        s.service.metrics_port,
        "aim_analytics_events_dropped_total",
    )
    .await?;
    for replica in &others {
        drains.push(drained(&s.http, replica.metrics_port, Duration::from_secs(60)).await);
        dropped += metric(
            &s.http,
            replica.metrics_port,
            "aim_analytics_events_dropped_total",
        )
        .await?;
        peak_rss.push(replica.peak_rss_kib());
    }
    // The load's request n went to replica (n / 2) mod 3; the probe's all went to the first.
    let answered_by = |i: usize| {
        let load = observed
            .answered
            .iter()
            .filter(|n| !observed.probe_answered.contains(n) && (**n / 2) as usize % 3 == i)
            .count();
        load + if i == 0 {
            observed.probe_answered.len()
        } else {
            0
        }
    };
    let (lost, duplicated) = report(
        &s,
        &observed,
        &[
            (
                "answered per replica",
                format!(
                    "{} / {} / {}",
                    answered_by(0),
                    answered_by(1),
                    answered_by(2)
                ),
            ),
            ("drops counted by the three replicas", format!("{dropped}")),
            (
                "queues and spools empty afterwards",
                format!("{}", drains.iter().all(Result::is_ok)),
            ),
            (
                "peak RSS per replica",
                peak_rss
                    .into_iter()
                    .map(mib)
                    .collect::<Vec<_>>()
                    .join(" / "),
            ),
        ],
    )
    .await?;
    for mut replica in others {
        replica.signal(nix::sys::signal::Signal::SIGTERM)?;
        replica.wait().await?;
    }
    let clean = finish_suite(s).await?;
    println!(
        "targets: nothing lost {}, 0 duplicated {}, no drops {}, drained {}, rollups clean {}",
        mark(lost == 0),
        mark(duplicated == 0),
        mark(dropped == 0.0),
        mark(drains.iter().all(Result::is_ok)),
        mark(clean),
    );
    Ok(lost == 0 && duplicated == 0 && dropped == 0.0 && drains.iter().all(Result::is_ok) && clean)
}

/// What [`damage_spool`] did: the request ids in the frames it broke, and how many frames.
struct Damage {
    ids: HashSet<u64>,
    frames: u64,
    segments: usize,
    frames_left_whole: usize,
}

/// A whole frame of a segment: its offset, its length, and the request ids of its calls.
type SpooledFrame = (usize, usize, Vec<u64>);

/// Breaks a stopped service's spool: flips a payload byte of the first segment's second frame
/// (its checksum fails) and cuts the last segment in the middle of its last frame (a torn
/// write). Returns what those frames held, read before breaking them.
fn damage_spool(dir: &std::path::Path) -> anyhow::Result<Damage> {
    use aim_pipeline::spool::frame::{self, Decoded, HEADER_BYTES};
    let mut segments: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let path = e.path();
            let sequence = path
                .file_name()?
                .to_str()?
                .strip_suffix(".seg")?
                .parse()
                .ok()?;
            Some((sequence, path))
        })
        .collect();
    segments.sort();
    let mut frames: Vec<(PathBuf, Vec<SpooledFrame>)> = Vec::new();
    for (_, path) in &segments {
        let bytes = std::fs::read(path)?;
        let mut found = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            match frame::decode(&bytes[at..]) {
                Decoded::Frame { batch, consumed } => {
                    let ids = batch
                        .rows
                        .iter()
                        .filter_map(|r| fault_id(r.request_id.as_deref()?))
                        .collect();
                    found.push((at, consumed, ids));
                    at += consumed;
                }
                Decoded::Corrupt { consumed } => at += consumed,
                Decoded::Torn => break,
            }
        }
        frames.push((path.clone(), found));
    }
    let total: usize = frames.iter().map(|(_, f)| f.len()).sum();
    ensure!(
        total >= 3,
        "the outage left {total} spooled frames; at least 3 are needed"
    );
    let mut ids = HashSet::new();
    let (first, first_frames) = &frames[0];
    let (offset, length, batch) = &first_frames[usize::from(first_frames.len() > 1)];
    let mut bytes = std::fs::read(first)?;
    bytes[offset + HEADER_BYTES + (length - HEADER_BYTES) / 2] ^= 0x5a;
    std::fs::write(first, &bytes)?;
    ids.extend(batch);
    let (last, last_frames) = &frames[frames.len() - 1];
    let (offset, length, batch) = last_frames.last().context("a last frame")?;
    ensure!(
        !(last == first && *offset <= first_frames[1].0),
        "the last frame is the corrupted one"
    );
    let file = std::fs::OpenOptions::new().write(true).open(last)?;
    file.set_len((offset + HEADER_BYTES + (length - HEADER_BYTES) / 2) as u64)?;
    file.sync_all()?;
    ids.extend(batch);
    Ok(Damage {
        ids,
        frames: 2,
        segments: segments.len(),
        frames_left_whole: total - 2,
    })
}

/// Corrupt and truncated spool files: PostgreSQL goes down under load, the service spools, is
/// stopped, and its spool is damaged (a flipped byte in one frame, a torn last frame); then
/// PostgreSQL and the service come back. The damaged frames' events, and only they, are lost;
/// the damaged segments are quarantined and the frames counted as `spool_corrupt`; every other
/// spooled event is replayed, once.
async fn corruptspool(mut s: Suite) -> anyhow::Result<bool> {
    let (observed, stop, load) = start_load(&s, Duration::from_secs(60));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cluster = &s.cluster;
    let service = &mut s.service;
    let outage = cluster.restart(ShutdownMode::Fast, Duration::from_secs(12));
    let stop_and_damage = async {
        // Spooling for about 7 s, then a clean stop: the spool is sealed on the way out.
        tokio::time::sleep(Duration::from_secs(8)).await;
        service.signal(nix::sys::signal::Signal::SIGTERM)?;
        service.wait().await?;
        damage_spool(&service.data_dir.join("spool"))
    };
    let (restarted, damage) = tokio::join!(outage, stop_and_damage);
    restarted?;
    let damage = damage?;
    println!(
        "spool damaged: 2 of {} frames in {} segment(s), holding {} calls",
        damage.frames_left_whole + 2,
        damage.segments,
        damage.ids.len()
    );
    let recovered_in = s.service.start(&s.http).await?;
    tokio::time::sleep(Duration::from_secs(8)).await;
    stop.store(true, Ordering::Relaxed);
    load.await?;
    let observed = finish(&observed).await;
    let drain = drained(&s.http, s.service.metrics_port, Duration::from_secs(60)).await;
    let corrupt = metric_labelled(
        &s.http,
        s.service.metrics_port,
        "aim_analytics_events_dropped_total",
        "spool_corrupt",
    )
    .await?;
    let quarantined = std::fs::read_dir(s.service.data_dir.join("spool/quarantine"))
        .map_or(0, |d| d.filter_map(Result::ok).count());
    let stored = stored_ids(&s.service.database_url).await?;
    let answered: HashSet<u64> = observed.answered.iter().copied().collect();
    let lost: HashSet<u64> = answered
        .iter()
        .filter(|id| !stored.contains_key(id))
        .copied()
        .collect();
    let expected: HashSet<u64> = damage.ids.intersection(&answered).copied().collect();
    let replayed_damaged = damage
        .ids
        .iter()
        .filter(|id| stored.contains_key(id))
        .count();
    let (_, duplicated) = report(
        &s,
        &observed,
        &[
            (
                "restart to ready, with the damaged spool",
                format!("{recovered_in:?}"),
            ),
            (
                "calls in the damaged frames (answered)",
                expected.len().to_string(),
            ),
            (
                "lost calls that were not in a damaged frame",
                lost.difference(&expected).count().to_string(),
            ),
            (
                "damaged frames' calls found in api_calls",
                replayed_damaged.to_string(),
            ),
            ("frames counted as spool_corrupt", format!("{corrupt}")),
            ("segments quarantined", quarantined.to_string()),
            ("queue and spool empty afterwards", drain_text(&drain)),
            ("peak RSS", mib(s.service.peak_rss_kib())),
        ],
    )
    .await?;
    let clean = finish_suite(s).await?;
    let exact = lost == expected && replayed_damaged == 0;
    let counted = corrupt == damage.frames as f64;
    let isolated = quarantined == if damage.segments == 1 { 1 } else { 2 };
    println!(
        "targets: only the damaged frames' calls lost {}, 0 duplicated {}, damaged frames counted {}, damaged segments quarantined {}, drained {}, rollups clean {}",
        mark(exact),
        mark(duplicated == 0),
        mark(counted),
        mark(isolated),
        mark(drain.is_ok()),
        mark(clean),
    );
    Ok(exact && duplicated == 0 && counted && isolated && drain.is_ok() && clean)
}

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    let scenario = std::env::args().nth(1).unwrap_or_default();
    if scenario == "probe" {
        probe_main().await?;
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let run = match scenario.as_str() {
        "restart" | "sigterm" | "kill9" | "slowdb" | "spoolfull" | "replicas" | "corruptspool" => {
            scenario.clone()
        }
        _ => {
            bail!("usage: aim-faults restart|sigterm|kill9|slowdb|spoolfull|replicas|corruptspool")
        }
    };
    println!(
        "== {run} ({})",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    let s = suite().await?;
    let passed = match run.as_str() {
        "restart" => restart(s).await?,
        "sigterm" => sigterm(s).await?,
        "slowdb" => slowdb(s).await?,
        "spoolfull" => spoolfull(s).await?,
        "replicas" => replicas(s).await?,
        "corruptspool" => corruptspool(s).await?,
        _ => kill9(s).await?,
    };
    println!("{}", if passed { "PASSED" } else { "FAILED" });
    Ok(if passed {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}
