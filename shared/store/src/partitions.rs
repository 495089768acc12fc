//! Daily partitions of `api_calls`, by UTC day, named `api_calls_pYYYYMMDD`.
//!
//! Attaching a partition takes a lock on the parent table that the ingest writers also need, so
//! each partition is created in its own short transaction with a `lock_timeout`: a busy moment
//! makes us skip a day (the default partition catches its rows, the next run retries) instead of
//! stalling every writer behind us.

use chrono::{Days, NaiveDate};
use sqlx::PgPool;

use crate::StoreError;

/// How long one partition's creation may wait for the parent table's lock.
const LOCK_TIMEOUT: &str = "2s";

/// What happened to one day's partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionOutcome {
    Created,
    AlreadyExists,
    /// Another transaction held the parent table for longer than the lock timeout.
    SkippedBusy,
    /// Rows for this day sit in the default partition; they must be moved first.
    SkippedDefaultHasRows,
}

/// The partition name for a UTC day.
pub fn partition_name(day: NaiveDate) -> String {
    format!("api_calls_p{}", day.format("%Y%m%d"))
}

/// Makes sure the partitions for `first_day` and the `days_ahead` days after it exist.
///
/// # Errors
/// Database errors other than the expected outcomes listed in [`PartitionOutcome`].
pub async fn ensure_api_calls_partitions(
    pool: &PgPool,
    first_day: NaiveDate,
    days_ahead: u64,
) -> Result<Vec<(NaiveDate, PartitionOutcome)>, StoreError> {
    let mut outcomes = Vec::new();
    for offset in 0..=days_ahead {
        let Some(day) = first_day.checked_add_days(Days::new(offset)) else {
            break;
        };
        outcomes.push((day, ensure_partition(pool, day).await?));
    }
    Ok(outcomes)
}

async fn ensure_partition(pool: &PgPool, day: NaiveDate) -> Result<PartitionOutcome, StoreError> {
    let name = partition_name(day);
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(&name)
        .fetch_one(pool)
        .await?;
    if exists {
        return Ok(PartitionOutcome::AlreadyExists);
    }
    let Some(next) = day.succ_opt() else {
        return Ok(PartitionOutcome::SkippedBusy);
    };
    // The name and bounds come from a date, never from input, so formatting them is safe.
    let create = format!(
        "CREATE TABLE IF NOT EXISTS {name} PARTITION OF api_calls \
         FOR VALUES FROM ('{day} 00:00:00+00') TO ('{next} 00:00:00+00')"
    );
    let mut tx = pool.begin().await?;
    sqlx::query(&format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        .execute(&mut *tx)
        .await?;
    match sqlx::query(&create).execute(&mut *tx).await {
        Ok(_) => {
            tx.commit().await?;
            tracing::info!(partition = %name, "created api_calls partition");
            Ok(PartitionOutcome::Created)
        }
        Err(sqlx::Error::Database(db)) => {
            let outcome = match db.code().as_deref() {
                // Another replica created it between our check and our CREATE.
                Some("42P07" | "23505") => PartitionOutcome::AlreadyExists,
                Some("55P03") => PartitionOutcome::SkippedBusy,
                Some("23514") => PartitionOutcome::SkippedDefaultHasRows,
                _ => return Err(sqlx::Error::Database(db).into()),
            };
            tracing::warn!(partition = %name, ?outcome, "api_calls partition not created");
            Ok(outcome)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_sort_by_day() {
        let day = NaiveDate::from_ymd_opt(2026, 1, 9).expect("valid date");
        assert_eq!(partition_name(day), "api_calls_p20260109");
    }
}
