//! `aim-faults sigterm`: SIGTERM under load.

use std::time::Duration;

use crate::harness::report::mib;
use crate::harness::suite::{Suite, finish, finish_suite, report, start_load};

pub(crate) const SUMMARY: &str = "SIGTERM under load";

pub(crate) async fn run(mut s: Suite) -> anyhow::Result<bool> {
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
