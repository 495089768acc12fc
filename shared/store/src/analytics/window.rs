//! Reading traffic over a window: the hourly and daily rollup rows of one family, with a window
//! cut into partial days (hourly rows) and whole days (daily rows) between.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::rows::{DAILY_ROW, HOURLY_ROW, ORG_TRAFFIC, RollupRow, TRAFFIC};
use crate::error::StoreError;

/// The organization's hourly rows per (method, endpoint) in `[from, to)`.
///
/// # Errors
/// The database error.
pub async fn endpoint_hours(
    pool: &PgPool,
    organization_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<RollupRow>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT hour_timestamp AS bucket, method, endpoint, NULL::uuid AS agent_id, {TRAFFIC} \
         FROM endpoint_hourly_metrics \
         WHERE organization_id = $1 AND hour_timestamp >= $2 AND hour_timestamp < $3 \
           AND api_calls_count > 0 ORDER BY hour_timestamp"
    ))
    .bind(organization_id)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?)
}

/// The organization's hourly rows per agent in `[from, to)`, optionally of one agent.
///
/// # Errors
/// The database error.
pub async fn agent_hours(
    pool: &PgPool,
    organization_id: Uuid,
    agent_id: Option<Uuid>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<RollupRow>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT hour_timestamp AS bucket, NULL::text AS method, NULL::text AS endpoint, agent_id, {TRAFFIC} \
         FROM agent_activity_metrics \
         WHERE organization_id = $1 AND ($2::uuid IS NULL OR agent_id = $2) \
           AND hour_timestamp >= $3 AND hour_timestamp < $4 AND api_calls_count > 0 \
         ORDER BY hour_timestamp"
    ))
    .bind(organization_id)
    .bind(agent_id)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?)
}

/// The organization's daily rows for days `from..=to`.
///
/// # Errors
/// The database error.
pub async fn org_days(
    pool: &PgPool,
    organization_id: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<RollupRow>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {DAILY_ROW} NULL::text AS method, NULL::text AS endpoint, \
                    NULL::uuid AS agent_id, {ORG_TRAFFIC} \
             FROM organization_daily_metrics \
             WHERE organization_id = $1 AND date >= $2 AND date <= $3 AND total_api_calls > 0 \
             ORDER BY date"
    ))
    .bind(organization_id)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?)
}

/// Which rollup family a window reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollup {
    /// Per agent (all of the organization's agents, or one).
    Agents(Option<Uuid>),
    /// Per method and endpoint.
    Endpoints,
    /// The organization's totals.
    Organization,
}

/// `[from, to)` cut into leading hours, whole UTC days and trailing hours. A window of weeks
/// then merges one row per key and day plus at most 46 hourly rows, instead of one per hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    pub head: (DateTime<Utc>, DateTime<Utc>),
    pub days: (NaiveDate, NaiveDate),
    pub tail: (DateTime<Utc>, DateTime<Utc>),
}

impl Split {
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>) -> Self {
        let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
        let first_day = if midnight(from.date_naive()) == from {
            from.date_naive()
        } else {
            from.date_naive().succ_opt().unwrap_or(from.date_naive())
        };
        let end_day = to.date_naive();
        if first_day >= end_day {
            return Self {
                head: (from, to),
                days: (end_day, end_day),
                tail: (to, to),
            };
        }
        Self {
            head: (from, midnight(first_day)),
            days: (first_day, end_day),
            tail: (midnight(end_day), to),
        }
    }
}

const HOURS: &str = "((hour_timestamp >= $2 AND hour_timestamp < $3) \
     OR (hour_timestamp >= $4 AND hour_timestamp < $5))";
const DAYS: &str = "date >= $6 AND date < $7";

/// The organization's rollup rows of `[from, to)` (hour-aligned): hourly rows for the partial
/// days at either end, daily rows (bucket = midnight UTC) for the whole days between.
///
/// # Errors
/// The database error.
pub async fn window_rows(
    pool: &PgPool,
    organization_id: Uuid,
    rollup: Rollup,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<RollupRow>, StoreError> {
    let split = Split::new(from, to);
    let sql = match rollup {
        Rollup::Agents(_) => format!(
            "SELECT {HOURLY_ROW} NULL::text AS method, NULL::text AS endpoint, agent_id, {TRAFFIC} \
                 FROM agent_activity_metrics WHERE organization_id = $1 AND {HOURS} \
                   AND ($8::uuid IS NULL OR agent_id = $8) AND api_calls_count > 0 \
                 UNION ALL \
                 SELECT {DAILY_ROW} NULL::text, NULL::text, agent_id, {TRAFFIC} \
                 FROM agent_daily_metrics WHERE organization_id = $1 AND {DAYS} \
                   AND ($8::uuid IS NULL OR agent_id = $8) AND api_calls_count > 0"
        ),
        Rollup::Endpoints => format!(
            "SELECT {HOURLY_ROW} method, endpoint, NULL::uuid AS agent_id, {TRAFFIC} \
                 FROM endpoint_hourly_metrics WHERE organization_id = $1 AND {HOURS} \
                   AND api_calls_count > 0 \
                 UNION ALL \
                 SELECT {DAILY_ROW} method, endpoint, NULL::uuid, {TRAFFIC} \
                 FROM endpoint_daily_metrics WHERE organization_id = $1 AND {DAYS} \
                   AND api_calls_count > 0"
        ),
        Rollup::Organization => format!(
            "SELECT {HOURLY_ROW} NULL::text AS method, NULL::text AS endpoint, NULL::uuid AS agent_id, {TRAFFIC} \
                 FROM endpoint_hourly_metrics WHERE organization_id = $1 AND {HOURS} \
                   AND api_calls_count > 0 \
                 UNION ALL \
                 SELECT {DAILY_ROW} NULL::text, NULL::text, NULL::uuid, {ORG_TRAFFIC} \
                 FROM organization_daily_metrics WHERE organization_id = $1 AND {DAYS} \
                   AND total_api_calls > 0"
        ),
    };
    let mut query = sqlx::query_as(&sql)
        .bind(organization_id)
        .bind(split.head.0)
        .bind(split.head.1)
        .bind(split.tail.0)
        .bind(split.tail.1)
        .bind(split.days.0)
        .bind(split.days.1);
    if let Rollup::Agents(agent) = rollup {
        query = query.bind(agent);
    }
    Ok(query.fetch_all(pool).await?)
}

/// Agents of the organization with at least one call in `[from, to)` (hour-aligned).
///
/// # Errors
/// The database error.
pub async fn active_agents(
    pool: &PgPool,
    organization_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let split = Split::new(from, to);
    Ok(sqlx::query_scalar(&format!(
        "SELECT count(DISTINCT agent_id) FROM ( \
             SELECT agent_id FROM agent_activity_metrics WHERE organization_id = $1 AND {HOURS} \
               AND api_calls_count > 0 \
             UNION ALL \
             SELECT agent_id FROM agent_daily_metrics WHERE organization_id = $1 AND {DAYS} \
               AND api_calls_count > 0) AS active"
    ))
    .bind(organization_id)
    .bind(split.head.0)
    .bind(split.head.1)
    .bind(split.tail.0)
    .bind(split.tail.1)
    .bind(split.days.0)
    .bind(split.days.1)
    .fetch_one(pool)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("timestamp")
    }

    #[test]
    fn a_window_splits_into_hours_whole_days_and_hours() {
        let split = Split::new(at("2026-10-29T13:00:00Z"), at("2026-11-28T19:00:00Z"));
        assert_eq!(
            split.head,
            (at("2026-10-29T13:00:00Z"), at("2026-10-30T00:00:00Z"))
        );
        assert_eq!(
            (split.days.0.to_string(), split.days.1.to_string()),
            ("2026-10-30".to_owned(), "2026-11-28".to_owned())
        );
        assert_eq!(
            split.tail,
            (at("2026-11-28T00:00:00Z"), at("2026-11-28T19:00:00Z"))
        );
    }

    #[test]
    fn a_window_within_a_day_or_across_one_midnight_is_all_hours() {
        for (from, to) in [
            ("2026-11-28T01:00:00Z", "2026-11-28T19:00:00Z"),
            ("2026-11-27T19:00:00Z", "2026-11-28T20:00:00Z"),
        ] {
            let split = Split::new(at(from), at(to));
            assert_eq!(split.head, (at(from), at(to)));
            assert_eq!(split.days.0, split.days.1);
            assert_eq!(split.tail.0, split.tail.1);
        }
    }

    #[test]
    fn aligned_windows_are_all_days() {
        let split = Split::new(at("2026-11-01T00:00:00Z"), at("2026-11-28T00:00:00Z"));
        assert_eq!(split.head.0, split.head.1);
        assert_eq!(split.tail.0, split.tail.1);
        assert_eq!(split.days.0.to_string(), "2026-11-01");
        assert_eq!(split.days.1.to_string(), "2026-11-28");
    }
}
