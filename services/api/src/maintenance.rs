//! The maintenance task: every `AIM_MAINTENANCE_INTERVAL_S`, on one replica at a time (a
//! session advisory lock held on a dedicated connection; the replica that holds it keeps it
//! until it stops), runs each step of `aim_store::maintenance` and logs and counts it.

use std::time::Duration;

use aim_store::PgPool;
use aim_store::maintenance::Leader;
use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::metric_names as names;

/// How many days of `api_calls` partitions exist ahead of today (created at start and by
/// every maintenance run).
pub(crate) const PARTITION_DAYS_AHEAD: u64 = 7;

/// The ledger outlives the spool's maximum age by this much, so no late replay double-counts.
const LEDGER_MARGIN: Duration = Duration::from_secs(24 * 3600);

/// Settings the task needs, copied out of the configuration.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    interval: Duration,
    retention_days: u64,
    rollup_retention_days: u64,
    ledger_max_age: Duration,
}

impl Settings {
    pub fn new(config: &Config) -> Self {
        Self {
            interval: config.maintenance.interval,
            retention_days: config.maintenance.retention_days,
            rollup_retention_days: config.maintenance.rollup_retention_days,
            ledger_max_age: config.analytics.pipeline.spool_max_age + LEDGER_MARGIN,
        }
    }
}

pub(crate) async fn run(pool: PgPool, settings: Settings, shutdown: CancellationToken) {
    let mut leader: Option<Leader> = None;
    let mut ticks = tokio::time::interval(settings.interval);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = shutdown.cancelled() => break,
        }
        match leader.as_mut() {
            None => leader = take_leadership(&pool).await,
            Some(held) => {
                if !held.alive().await {
                    // The session, and its lock, is gone: compete again next time.
                    leader = None;
                }
            }
        }
        if leader.is_some() {
            run_once(&pool, &settings).await;
        }
    }
    if let Some(held) = leader {
        held.release().await;
    }
}

async fn take_leadership(pool: &PgPool) -> Option<Leader> {
    match Leader::try_take(pool).await {
        Ok(Some(leader)) => {
            tracing::info!("this replica runs the maintenance task");
            Some(leader)
        }
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "could not compete for the maintenance lock");
            None
        }
    }
}

fn outcome<T, E: std::fmt::Display>(step: &'static str, result: &Result<T, E>) {
    let label = if result.is_ok() { "ok" } else { "error" };
    metrics::counter!(names::MAINTENANCE_STEPS, "step" => step, "outcome" => label).increment(1);
    if let Err(e) = result {
        tracing::warn!(step, error = %e, "maintenance step failed; retried next run");
    }
}

/// Every step once; failures are logged and counted, and do not stop the other steps.
pub(crate) async fn run_once(pool: &PgPool, settings: &Settings) {
    let today = Utc::now().date_naive();
    let snapshot = aim_store::maintenance::snapshot(pool, today).await;
    outcome("snapshot", &snapshot);
    let partitions =
        aim_store::partitions::ensure_api_calls_partitions(pool, today, PARTITION_DAYS_AHEAD).await;
    outcome("partitions", &partitions);
    match aim_store::maintenance::days_in_default_partition(pool).await {
        Ok(days) => {
            for day in days {
                let moved = aim_store::maintenance::move_default_rows(pool, day).await;
                if let Ok(rows) = &moved {
                    tracing::info!(%day, rows, "moved rows out of the default partition");
                }
                outcome("default_partition", &moved);
            }
        }
        Err(e) => outcome::<(), _>("default_partition", &Err(e)),
    }
    let retention = aim_store::maintenance::retention(
        pool,
        today,
        settings.retention_days,
        settings.rollup_retention_days,
    )
    .await;
    outcome("retention", &retention);
    let pruned = aim_store::maintenance::prune_ledger(pool, settings.ledger_max_age).await;
    outcome("ledger", &pruned);
    // Sampled here, once a run, rather than per scrape: summing every partition's size costs a
    // catalog walk that a scrape every few seconds on every replica should not repeat.
    let sizes = aim_store::maintenance::table_sizes(pool).await;
    if let Ok(sizes) = &sizes {
        for (table, bytes) in sizes {
            metrics::gauge!(names::TABLE_SIZE, "table" => table.clone()).set(*bytes as f64);
        }
    }
    outcome("table_sizes", &sizes);
    tracing::info!(
        organizations = snapshot.as_ref().ok(),
        dropped = retention.as_ref().map(|r| r.dropped_partitions.len()).ok(),
        ledger_pruned = pruned.as_ref().ok(),
        "maintenance run finished"
    );
    metrics::counter!(names::MAINTENANCE_RUNS).increment(1);
}
