//! The load driver: requests at a fixed rate, each with a unique `x-request-id` the oracle
//! later looks for, and what the driver saw (sent, answered, latencies).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::http::{Http, get, http_client, numbered_call};
use crate::harness::probe::{Probed, parse_probe, start_probe};

/// What the driver saw.
#[derive(Default)]
pub(crate) struct Observed {
    /// Ids of requests that got an HTTP answer.
    pub(crate) answered: Vec<u64>,
    /// (seconds since the load started, latency) of the no-database route's answers.
    pub(crate) fast_route: Vec<(f64, Duration)>,
    /// (seconds since the load started, latency, status) of the database route's answers.
    pub(crate) db_route: Vec<(f64, Duration, u16)>,
    /// (seconds since the load started, latency) of the probe's answers; see [`probe`].
    pub(crate) probe: Vec<(f64, Duration)>,
    /// The probe's requests answered with another status than the route's 400, or not at all.
    pub(crate) probe_failures: u64,
    /// Ids of the probe's answered requests (also in `answered`).
    pub(crate) probe_answered: HashSet<u64>,
    pub(crate) sent: u64,
}

/// Where the load goes and with which credential.
#[derive(Clone)]
pub(crate) struct Target {
    /// The database route's client; the other route gets one of its own.
    pub(crate) http: Http,
    /// One service's URL, or several replicas' taken in turn.
    pub(crate) bases: Vec<String>,
    pub(crate) agent: String,
    pub(crate) key: String,
}

/// Numbers the load's requests (`x-request-id: fault-<n>`).
pub(crate) static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Open-loop load at `rate` requests a second for `duration`: agent-key calls alternating
/// between `GET /api/v1/agents/{id}` (a database read) and a request refused before any query
/// (`GET /api/v1/verifications?limit=0`: authenticated from the key cache, then a 400), whose
/// latency shows what an outage does to a route that needs no database.
///
/// The two routes are two clients, each with its own connection pool, as two agents would be:
/// with one pool, the database route's requests held during an outage take every kept-alive
/// connection, and the other route's latency becomes that of opening new ones.
pub(crate) async fn load(
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
pub(crate) async fn sustained_rate(
    http: &Http,
    base: &str,
    agent: &str,
    key: &str,
) -> anyhow::Result<u64> {
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
