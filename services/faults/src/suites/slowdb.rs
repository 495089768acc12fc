//! `aim-faults slowdb`: tables locked for 10 s, then writes delayed, under load.

use std::time::{Duration, Instant};

use crate::harness::http::drained;
use crate::harness::oracle::connect;
use crate::harness::report::{RouteLatency, drain_text, mark, mib, rss_ok, write_samples};
use crate::harness::suite::{Suite, finish, finish_suite, report, start_load};
use aim_pipeline::stats::names;

pub(crate) const SUMMARY: &str = "tables locked for 10 s, then writes delayed, under load";

/// A slow database: an exclusive lock held on `api_calls` for 10 s (every COPY waits), then one
/// on `agent_activity_metrics` for 10 s (every rollup step waits), under load.
/// Two tables locked for 10 s each, then every write to `api_calls` delayed by 500 ms for 10 s
/// (a statement-level trigger that sleeps, counting the statements it delayed).
pub(crate) async fn run(s: Suite) -> anyhow::Result<bool> {
    let (observed, _stop, load) = start_load(&s, Duration::from_secs(53));
    let load_started = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let locker = connect(&s.service.database_url).await?;
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
    let spooled = s.metric(names::EVENTS_SPOOLED_TOTAL).await?;
    let dropped = s.metric(names::EVENTS_DROPPED_TOTAL).await?;
    let spilled = s.metric(names::EVENTS_SPILLED_TOTAL).await?;
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
