//! `aim-faults restart`: PostgreSQL restarted 10 times in 60 s.

use aim_local_pg::ShutdownMode;
use std::time::{Duration, Instant};

use crate::harness::http::drained;
use crate::harness::report::{RouteLatency, mark, mib, rss_ok, write_samples};
use crate::harness::suite::{Suite, finish, finish_suite, report, start_load};

pub(crate) const SUMMARY: &str = "PostgreSQL restarted 10 times in 60 s";

pub(crate) async fn run(s: Suite) -> anyhow::Result<bool> {
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
