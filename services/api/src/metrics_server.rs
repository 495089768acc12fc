//! Prometheus `/metrics` on its own listener (`AIM_METRICS_LISTEN`, loopback by default), so
//! the public listener never exposes it.

use std::sync::Arc;

use aim_pipeline::Pipeline;
use aim_store::PgPool;
use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metric_names as names;
use crate::tasks::spawn_tracked;

/// Histograms and summaries are kept by the exporter and must be compacted now and then.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Latency buckets for every `_seconds` histogram: 0.5 ms to 10 s, so a p99 of a fast
/// endpoint and of a slow flush can both be read from them (summaries would not aggregate
/// across replicas).
const SECONDS_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const BATCH_SIZE_BUCKETS: &[f64] = &[
    1.0, 10.0, 100.0, 500.0, 1_000.0, 5_000.0, 10_000.0, 25_000.0, 50_000.0, 100_000.0,
];

/// Installs the process-wide recorder and serves it until `shutdown`.
///
/// # Errors
/// When a recorder is already installed in this process.
pub(crate) fn spawn(
    tracker: &TaskTracker,
    listener: TcpListener,
    shutdown: CancellationToken,
    db: PgPool,
    pipeline: Option<Arc<Pipeline>>,
) -> anyhow::Result<()> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full(aim_pipeline::stats::names::BATCH_SIZE_EVENTS.into()),
            BATCH_SIZE_BUCKETS,
        )?
        .install_recorder()?;
    metrics::describe_gauge!(
        names::BUILD_INFO,
        "Always 1; the labels say which build is running."
    );
    metrics::gauge!(
        names::BUILD_INFO,
        "version" => env!("CARGO_PKG_VERSION"),
        "rustc" => env!("CARGO_PKG_RUST_VERSION"),
    )
    .set(1.0);
    crate::middleware::http_metrics::describe();
    aim_pipeline::PipelineStats::describe();
    describe_pools();
    crate::breaker::describe();
    metrics::describe_counter!(
        names::HTTP_UNATTRIBUTED,
        "Requests that ended without an organization (no or bad credentials), by route and status: not recorded as api_calls rows."
    );
    metrics::describe_counter!(
        names::MAINTENANCE_RUNS,
        "Maintenance runs this replica performed while holding the maintenance lock."
    );
    metrics::describe_counter!(
        names::MAINTENANCE_STEPS,
        "Maintenance steps by step and outcome."
    );
    metrics::describe_gauge!(
        names::TABLE_SIZE,
        metrics::Unit::Bytes,
        "Size of each analytics table with its partitions, indexes and TOAST, sampled by the maintenance run (published by the replica that runs it)."
    );
    describe_trust();
    let process = metrics_process::Collector::default();
    process.describe();

    let upkeep = handle.clone();
    let stop = shutdown.clone();
    spawn_tracked(tracker, "metrics-upkeep", async move {
        let mut ticks = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            tokio::select! {
                _ = ticks.tick() => upkeep.run_upkeep(),
                () = stop.cancelled() => break,
            }
        }
    });

    let router = Router::new()
        .route("/metrics", get(render))
        .with_state(Scrape {
            handle,
            db,
            pipeline,
            process,
        });
    spawn_tracked(tracker, "metrics-listener", async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "metrics listener failed");
        }
    });
    Ok(())
}

#[derive(Clone)]
struct Scrape {
    handle: PrometheusHandle,
    db: PgPool,
    pipeline: Option<Arc<Pipeline>>,
    process: metrics_process::Collector,
}

fn describe_trust() {
    metrics::describe_counter!(
        names::TRUST_RECOMPUTATIONS,
        "Scheduled trust recomputations of every organization (on the maintenance leader), by outcome."
    );
    metrics::describe_counter!(
        names::TRUST_SCORES_WRITTEN,
        "Trust scores the service wrote: moves of at least the policy's step, each with its history row."
    );
    metrics::describe_counter!(
        names::TRUST_TRANSITIONS,
        "Agent status changes the trust policy made, by the status reached (verified, suspended)."
    );
    metrics::describe_counter!(names::ALERTS_OPENED, "Alerts opened, by rule.");
    metrics::describe_gauge!(
        names::ALERTS_UNRESOLVED,
        "Unresolved alerts of every organization by status (open, acknowledged) and rule, sampled by the maintenance run (published by the replica that runs it)."
    );
    metrics::describe_counter!(
        names::WEBHOOK_DELIVERIES,
        "Webhook delivery attempts by outcome: delivered, retry (failed, tried again later), failed (attempts spent)."
    );
    metrics::describe_counter!(
        names::WEBHOOKS_DISABLED,
        "Webhook endpoints the service disabled after AIM_WEBHOOK_DISABLE_AFTER failed attempts in a row."
    );
    metrics::describe_gauge!(
        names::WEBHOOK_BACKLOG,
        "Webhook deliveries pending (due or waiting for a retry or a disabled endpoint) and failed, sampled by the maintenance run."
    );
}

fn describe_pools() {
    metrics::describe_gauge!(
        names::DB_POOL_CONNECTIONS,
        "Open database connections by pool (api: requests; analytics: the writers) and state (idle, in_use)."
    );
    metrics::describe_gauge!(names::DB_POOL_MAX, "The pool's connection limit.");
    metrics::describe_gauge!(
        names::DB_POOL_WAITING,
        "Writers waiting for a connection of the analytics pool."
    );
    metrics::describe_counter!(
        names::DB_POOL_TIMEOUTS,
        "Requests that found no free connection within AIM_DB_ACQUIRE_TIMEOUT_MS."
    );
}

/// Gauges that are state rather than events are read when scraped: the pipeline's atomics
/// (cheap per batch, also read by tests and the status page), both pools, the process.
async fn render(axum::extract::State(scrape): axum::extract::State<Scrape>) -> String {
    if let Some(pipeline) = &scrape.pipeline {
        pipeline.stats().export(pipeline.queue_depth());
        let pool = pipeline.pool_status();
        let idle = pool.available as f64;
        metrics::gauge!(names::DB_POOL_CONNECTIONS, "pool" => "analytics", "state" => "idle")
            .set(idle);
        metrics::gauge!(names::DB_POOL_CONNECTIONS, "pool" => "analytics", "state" => "in_use")
            .set(pool.size.saturating_sub(pool.available) as f64);
        metrics::gauge!(names::DB_POOL_MAX, "pool" => "analytics").set(pool.max_size as f64);
        metrics::gauge!(names::DB_POOL_WAITING, "pool" => "analytics").set(pool.waiting as f64);
    }
    let size = f64::from(scrape.db.size());
    let idle = scrape.db.num_idle() as f64;
    metrics::gauge!(names::DB_POOL_CONNECTIONS, "pool" => "api", "state" => "idle").set(idle);
    metrics::gauge!(names::DB_POOL_CONNECTIONS, "pool" => "api", "state" => "in_use")
        .set(size - idle);
    metrics::gauge!(names::DB_POOL_MAX, "pool" => "api")
        .set(f64::from(scrape.db.options().get_max_connections()));
    scrape.process.collect();
    scrape.handle.render()
}
