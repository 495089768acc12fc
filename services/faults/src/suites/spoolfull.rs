//! `aim-faults spoolfull`: a 2 MiB spool while the database is down for 15 s.

use aim_local_pg::ShutdownMode;
use std::time::Duration;

use crate::harness::http::{drained, get};
use crate::harness::report::{drain_text, mark, mib};
use crate::harness::suite::{Suite, finish, finish_suite, report, start_load};
use aim_pipeline::stats::names;

pub(crate) const SUMMARY: &str = "a 2 MiB spool while the database is down for 15 s";

/// The spool at its cap while the database is down: drops are counted as `spool_full`, nothing
/// crashes, and once the database is back the spool is replayed and new calls are written.
pub(crate) async fn run(mut s: Suite) -> anyhow::Result<bool> {
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
    let full = s
        .metric_labelled(names::EVENTS_DROPPED_TOTAL, "reason=\"spool_full\"")
        .await?;
    let dropped = s.metric(names::EVENTS_DROPPED_TOTAL).await?;
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
