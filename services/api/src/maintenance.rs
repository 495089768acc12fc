//! The maintenance task: every `AIM_MAINTENANCE_INTERVAL_S`, on one replica at a time (a
//! session advisory lock held on a dedicated connection; the replica that holds it keeps it
//! until it stops), runs each step of `aim_store::maintenance` and logs and counts it; every
//! `AIM_TRUST_RECOMPUTE_INTERVAL_S` the same replica recomputes every agent's trust score
//! (`crate::trust`), when analytics are on (the scores read the rollups).

use std::time::Duration;

use aim_store::PgPool;
use aim_store::maintenance::Leader;
use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::auth::api_keys::KeyCache;
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
    /// `None` when analytics are off: the scores read the rollups.
    trust_interval: Option<Duration>,
}

impl Settings {
    pub fn new(config: &Config) -> Self {
        Self {
            interval: config.maintenance.interval,
            retention_days: config.maintenance.retention_days,
            rollup_retention_days: config.maintenance.rollup_retention_days,
            ledger_max_age: config.analytics.pipeline.spool_max_age + LEDGER_MARGIN,
            trust_interval: config
                .analytics
                .enabled
                .then_some(config.maintenance.trust_interval),
        }
    }
}

/// What a tick asks for.
enum Due {
    Maintenance,
    Trust,
}

pub(crate) async fn run(
    pool: PgPool,
    settings: Settings,
    keys: KeyCache,
    shutdown: CancellationToken,
) {
    let mut leader: Option<Leader> = None;
    let mut ticks = tokio::time::interval(settings.interval);
    // Without analytics the trust ticker never fires (a day-long period, and its ticks ignored).
    let mut trust_ticks = tokio::time::interval_at(
        tokio::time::Instant::now()
            + settings
                .trust_interval
                .unwrap_or(Duration::from_secs(86_400)),
        settings
            .trust_interval
            .unwrap_or(Duration::from_secs(86_400)),
    );
    trust_ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let due = tokio::select! {
            _ = ticks.tick() => Due::Maintenance,
            _ = trust_ticks.tick() => Due::Trust,
            () = shutdown.cancelled() => break,
        };
        match leader.as_mut() {
            None => leader = take_leadership(&pool).await,
            Some(held) => {
                if !held.alive().await {
                    // The session, and its lock, is gone: compete again next time.
                    leader = None;
                }
            }
        }
        if leader.is_none() {
            continue;
        }
        match due {
            Due::Maintenance => run_once(&pool, &settings).await,
            Due::Trust if settings.trust_interval.is_some() => recompute_trust(&pool, &keys).await,
            Due::Trust => {}
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
    let alerts = aim_store::alerts::counts_by_rule(pool).await;
    if let Ok(alerts) = &alerts {
        for status in ["open", "acknowledged"] {
            for rule in [
                aim_trust::AlertRule::ScoreBelow,
                aim_trust::AlertRule::ScoreDrop,
                aim_trust::AlertRule::ErrorRateSpike,
                aim_trust::AlertRule::VolumeAnomaly,
                aim_trust::AlertRule::Suspended,
            ] {
                let count = alerts
                    .iter()
                    .find(|(s, r, _)| s == status && r == rule.as_str())
                    .map_or(0, |(_, _, n)| *n);
                metrics::gauge!(names::ALERTS_UNRESOLVED, "status" => status, "rule" => rule.as_str())
                    .set(count as f64);
            }
        }
    }
    outcome("alert_counts", &alerts);
    let backlog = aim_store::webhooks::backlog(pool).await;
    if let Ok((pending, failed)) = backlog {
        metrics::gauge!(names::WEBHOOK_BACKLOG, "status" => "pending").set(pending as f64);
        metrics::gauge!(names::WEBHOOK_BACKLOG, "status" => "failed").set(failed as f64);
    }
    outcome("webhook_backlog", &backlog);
    tracing::info!(
        organizations = snapshot.as_ref().ok(),
        dropped = retention.as_ref().map(|r| r.dropped_partitions.len()).ok(),
        ledger_pruned = pruned.as_ref().ok(),
        "maintenance run finished"
    );
    metrics::counter!(names::MAINTENANCE_RUNS).increment(1);
}

/// Every agent's trust score, once; the agents it suspends lose their keys in this replica's
/// cache at once (other replicas within their key-cache TTL).
pub(crate) async fn recompute_trust(pool: &PgPool, keys: &KeyCache) {
    let started = std::time::Instant::now();
    let result = crate::trust::recompute_all(pool, Utc::now()).await;
    let label = if result.is_ok() { "ok" } else { "error" };
    metrics::counter!(names::TRUST_RECOMPUTATIONS, "outcome" => label).increment(1);
    match result {
        Ok((outcome, suspended)) => {
            for agent_id in suspended {
                keys.evict_agent(agent_id);
            }
            tracing::info!(
                agents = outcome.agents,
                scores_written = outcome.scores_written,
                transitions = outcome.transitions,
                alerts_opened = outcome.alerts_opened,
                queries = outcome.queries,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "trust recomputation finished"
            );
        }
        Err(e) => tracing::warn!(error = %e, "trust recomputation failed; retried next run"),
    }
}
