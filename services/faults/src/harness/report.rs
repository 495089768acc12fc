//! The figures a suite prints: latency percentiles per route, samples written for plots, memory,
//! pass marks.

use anyhow::Context;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::harness::load::Observed;

/// With `AIM_FAULTS_SAMPLES=<file>`, writes every answer of the no-database route (`sample`:
/// seconds since the load started, latency in microseconds), of the database route (`db<status>`)
/// and the fault windows as CSV, so a p99 can be
/// taken apart afterwards: which moments of a fault cost the latency.
pub(crate) fn write_samples(
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
pub(crate) struct RouteLatency {
    pub(crate) probe: (Duration, Duration),
    pub(crate) load: (Duration, Duration),
    /// The probe's answers before and during the faults.
    pub(crate) probe_answers: (usize, usize),
    pub(crate) probe_failures: u64,
}

impl RouteLatency {
    pub(crate) fn of(observed: &Observed, windows: &[(f64, f64)]) -> Self {
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
    pub(crate) fn met(&self) -> bool {
        self.probe_failures == 0
            && self.probe_answers.0 >= 100
            && self.probe_answers.1 >= 100
            && p99_ratio(self.probe.0, self.probe.1) <= 1.2
    }

    pub(crate) fn lines(&self, during: &str) -> Vec<(&'static str, String)> {
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

/// The p99 during a fault over the p99 before it.
pub(crate) fn p99_ratio(baseline: Duration, during: Duration) -> f64 {
    during.as_secs_f64() / baseline.as_secs_f64().max(1e-9)
}

/// How long the queue and spool took to empty, or why they did not.
pub(crate) fn drain_text(drain: &anyhow::Result<Duration>) -> String {
    drain
        .as_ref()
        .map_or_else(ToString::to_string, |d| format!("after {d:?}"))
}

/// The memory target of every suite: peak RSS of `aim` at most this many MiB.
pub(crate) const MAX_RSS_MIB: f64 = 256.0;

pub(crate) fn rss_ok(kib: Option<u64>) -> bool {
    kib.is_some_and(|k| k as f64 / 1024.0 <= MAX_RSS_MIB)
}

pub(crate) fn mib(kib: Option<u64>) -> String {
    kib.map_or("unknown".into(), |k| {
        format!("{:.1} MiB", k as f64 / 1024.0)
    })
}

pub(crate) fn p99(latencies: impl Iterator<Item = Duration>) -> Duration {
    let mut all: Vec<Duration> = latencies.collect();
    if all.is_empty() {
        return Duration::ZERO;
    }
    all.sort();
    all[(all.len() * 99).div_ceil(100).clamp(1, all.len()) - 1]
}

pub(crate) fn mark(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT MET" }
}
