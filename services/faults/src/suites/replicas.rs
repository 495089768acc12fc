//! `aim-faults replicas`: three replicas on one database, the load spread.

use aim_local_pg::ShutdownMode;
use std::time::Duration;

use crate::harness::http::{drained, metric};
use crate::harness::report::{mark, mib};
use crate::harness::service::{Service, free_port};
use crate::harness::suite::{Suite, finish, finish_suite, report, start_load_on};
use aim_pipeline::stats::names;

pub(crate) const SUMMARY: &str = "three replicas on one database, the load spread";

/// Three `aim serve` processes on one database, each with its own data folder and spool, the
/// load spread evenly across them; PostgreSQL restarted once in the middle, so every replica
/// spools and replays at the same time.
pub(crate) async fn run(s: Suite) -> anyhow::Result<bool> {
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
    let mut dropped = s.metric(names::EVENTS_DROPPED_TOTAL).await?;
    for replica in &others {
        drains.push(drained(&s.http, replica.metrics_port, Duration::from_secs(60)).await);
        dropped += metric(&s.http, replica.metrics_port, names::EVENTS_DROPPED_TOTAL).await?;
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
