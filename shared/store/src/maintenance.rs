//! The maintenance steps: daily snapshot columns, `api_calls` partitions ahead of time, rows
//! moved out of the default partition, retention by dropping old partitions (rollups kept longer),
//! and pruning the batch ledger. Each step runs in its own short transaction with a
//! `lock_timeout`, so the ingest writers are never blocked for long; a step that cannot get its
//! lock is skipped and retried on the next run.

use chrono::{Days, NaiveDate, Utc};
use sqlx::PgPool;

use crate::StoreError;
use crate::partitions::partition_name;

const LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '2s'";

/// Writes today's snapshot columns of `organization_daily_metrics` for every organization.
/// Returns the number of organizations.
///
/// # Errors
/// The database error.
pub async fn snapshot(pool: &PgPool, today: NaiveDate) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query(LOCK_TIMEOUT).execute(&mut *tx).await?;
    let done = sqlx::query(
        "INSERT INTO organization_daily_metrics (organization_id, date, total_agents, \
             verified_agents, pending_agents, avg_trust_score, snapshot_at) \
         SELECT o.id, $1, count(a.id), count(a.id) FILTER (WHERE a.status = 'verified'), \
                count(a.id) FILTER (WHERE a.status = 'pending'), avg(a.trust_score), now() \
         FROM organizations o \
         LEFT JOIN agents a ON a.organization_id = o.id AND a.deleted_at IS NULL \
         GROUP BY o.id \
         ON CONFLICT (organization_id, date) DO UPDATE SET \
             total_agents = EXCLUDED.total_agents, verified_agents = EXCLUDED.verified_agents, \
             pending_agents = EXCLUDED.pending_agents, avg_trust_score = EXCLUDED.avg_trust_score, \
             snapshot_at = EXCLUDED.snapshot_at",
    )
    .bind(today)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

/// Days that have rows in the default partition.
///
/// # Errors
/// The database error.
pub async fn days_in_default_partition(pool: &PgPool) -> Result<Vec<NaiveDate>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT (called_at AT TIME ZONE 'UTC')::date FROM api_calls_default ORDER BY 1",
    )
    .fetch_all(pool)
    .await?)
}

/// Moves one day's rows out of the default partition into that day's own partition, in one
/// transaction: the rows go into a new table, which is then attached.
///
/// # Errors
/// The database error (a lock timeout included; the next run retries).
pub async fn move_default_rows(pool: &PgPool, day: NaiveDate) -> Result<u64, StoreError> {
    let Some(next) = day.succ_opt() else {
        return Ok(0);
    };
    let name = partition_name(day);
    let mut tx = pool.begin().await?;
    sqlx::query(LOCK_TIMEOUT).execute(&mut *tx).await?;
    // Names and bounds come from a date, never from input.
    sqlx::query(&format!(
        "CREATE TABLE {name} (LIKE api_calls INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    ))
    .execute(&mut *tx)
    .await?;
    let range = format!("called_at >= '{day} 00:00:00+00' AND called_at < '{next} 00:00:00+00'");
    let moved = sqlx::query(&format!(
        "WITH gone AS (DELETE FROM api_calls_default WHERE {range} RETURNING *) \
         INSERT INTO {name} SELECT * FROM gone"
    ))
    .execute(&mut *tx)
    .await?;
    sqlx::query(&format!(
        "ALTER TABLE api_calls ATTACH PARTITION {name} \
         FOR VALUES FROM ('{day} 00:00:00+00') TO ('{next} 00:00:00+00')"
    ))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(moved.rows_affected())
}

/// What retention removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Retention {
    pub dropped_partitions: Vec<String>,
    pub rollup_rows_deleted: u64,
}

/// Drops the `api_calls` partitions of days before `today - raw_days`, and deletes rollup rows
/// older than `today - rollup_days`.
///
/// # Errors
/// The database error.
pub async fn retention(
    pool: &PgPool,
    today: NaiveDate,
    raw_days: u64,
    rollup_days: u64,
) -> Result<Retention, StoreError> {
    let raw_cutoff = today.checked_sub_days(Days::new(raw_days)).unwrap_or(today);
    let partitions: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'api_calls'::regclass AND c.relname ~ '^api_calls_p[0-9]{8}$' \
         ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    let mut out = Retention::default();
    for name in partitions {
        let Some(day) = name
            .strip_prefix("api_calls_p")
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y%m%d").ok())
        else {
            continue;
        };
        if day >= raw_cutoff {
            continue;
        }
        let mut tx = pool.begin().await?;
        sqlx::query(LOCK_TIMEOUT).execute(&mut *tx).await?;
        sqlx::query(&format!("DROP TABLE {name}"))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(partition = %name, "retention dropped an api_calls partition");
        out.dropped_partitions.push(name);
    }
    let rollup_cutoff = today
        .checked_sub_days(Days::new(rollup_days))
        .unwrap_or(today);
    let cutoff_at = rollup_cutoff
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc();
    for sql in [
        "DELETE FROM agent_activity_metrics WHERE hour_timestamp < $1",
        "DELETE FROM endpoint_hourly_metrics WHERE hour_timestamp < $1",
    ] {
        out.rollup_rows_deleted += sqlx::query(sql)
            .bind(cutoff_at)
            .execute(pool)
            .await?
            .rows_affected();
    }
    for sql in [
        "DELETE FROM agent_daily_metrics WHERE date < $1",
        "DELETE FROM endpoint_daily_metrics WHERE date < $1",
        "DELETE FROM organization_daily_metrics WHERE date < $1",
    ] {
        out.rollup_rows_deleted += sqlx::query(sql)
            .bind(rollup_cutoff)
            .execute(pool)
            .await?
            .rows_affected();
    }
    Ok(out)
}

/// Deletes ledger entries older than `max_age`. Callers pass the spool's maximum age plus a
/// margin, so no batch that could still be replayed loses its entry.
///
/// # Errors
/// The database error.
pub async fn prune_ledger(pool: &PgPool, max_age: std::time::Duration) -> Result<u64, StoreError> {
    let cutoff =
        Utc::now() - chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::days(3650));
    Ok(
        sqlx::query("DELETE FROM ingest_batches WHERE committed_at < $1")
            .bind(cutoff)
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

/// `pg_try_advisory_lock` key of the maintenance leader ("AIMmaint").
const LEADER_LOCK: i64 = 0x4149_4d6d_6169_6e74;

/// A dedicated connection holding the maintenance leader's session lock: the replica that has
/// it runs the maintenance task; the lock goes with the connection.
/// The analytics tables whose size `/metrics` reports: the raw calls, the ledger, the rollups.
pub const ANALYTICS_TABLES: [&str; 7] = [
    "api_calls",
    "ingest_batches",
    "agent_activity_metrics",
    "agent_daily_metrics",
    "endpoint_hourly_metrics",
    "endpoint_daily_metrics",
    "organization_daily_metrics",
];

/// Each analytics table's size on disk, indexes and TOAST included, summed over its
/// partitions (`pg_partition_tree`): the parent of a partitioned table holds nothing itself, so
/// `pg_total_relation_size('api_calls')` alone says 0. (`pg_partition_tree` lists nothing for
/// a table that is not partitioned; that one's own size is taken.)
///
/// # Errors
/// The database error (an undefined table on a schema rolled back below them).
pub async fn table_sizes(pool: &PgPool) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT t.name, coalesce( \
             (SELECT sum(pg_total_relation_size(p.relid)) FROM pg_partition_tree(t.name::regclass) AS p), \
             pg_total_relation_size(t.name::regclass))::int8 \
         FROM unnest($1::text[]) AS t(name) ORDER BY t.name",
    )
    .bind(&ANALYTICS_TABLES[..])
    .fetch_all(pool)
    .await?)
}

pub struct Leader(sqlx::PgConnection);

impl Leader {
    /// Takes the lock if no other session holds it.
    ///
    /// # Errors
    /// The database error.
    pub async fn try_take(pool: &PgPool) -> Result<Option<Self>, StoreError> {
        use sqlx::Connection;
        let mut conn = pool.acquire().await?.detach();
        let won: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LEADER_LOCK)
            .fetch_one(&mut conn)
            .await?;
        if won {
            Ok(Some(Self(conn)))
        } else {
            let _ = conn.close().await;
            Ok(None)
        }
    }

    /// Whether the session, and so the lock, is still there.
    pub async fn alive(&mut self) -> bool {
        use sqlx::Connection;
        self.0.ping().await.is_ok()
    }

    pub async fn release(self) {
        use sqlx::Connection;
        let _ = self.0.close().await;
    }
}
