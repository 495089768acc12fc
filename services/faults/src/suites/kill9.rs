//! `aim-faults kill9`: kill -9 20 times, restarted each time.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::harness::http::drained;
use crate::harness::report::drain_text;
use crate::harness::suite::{Suite, finish, finish_suite, report, start_load};

pub(crate) const SUMMARY: &str = "kill -9 20 times, restarted each time";

pub(crate) async fn run(mut s: Suite) -> anyhow::Result<bool> {
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
