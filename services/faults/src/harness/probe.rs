//! The latency probe: a process of its own (`aim-faults probe`) that sends one request at a time
//! beside the load, so its latencies are not the load driver's own waits.

use anyhow::{Context, bail, ensure};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::harness::http::{http_client, numbered_call};

/// Where the probe's request ids start, far above the load's, so the oracle accounts for both.
pub(crate) const PROBE_FIRST_ID: u64 = 1 << 40;

/// What the probe saw.
#[derive(Default)]
pub(crate) struct Probed {
    /// (seconds since the load started, latency) of each of the route's answers.
    pub(crate) samples: Vec<(f64, Duration)>,
    /// Ids of the requests that got an HTTP answer.
    pub(crate) answered: Vec<u64>,
    pub(crate) sent: u64,
    /// Requests not answered with the route's 400, or not at all.
    pub(crate) failures: u64,
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
pub(crate) async fn probe_main() -> anyhow::Result<()> {
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
pub(crate) fn start_probe(
    uri: &str,
    key: &str,
    duration: Duration,
) -> anyhow::Result<tokio::process::Child> {
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
pub(crate) fn parse_probe(output: &[u8], offset: f64) -> anyhow::Result<Probed> {
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
