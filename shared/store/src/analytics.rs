//! Reads for the analytics API. Everything comes from the rollup tables, never from raw
//! `api_calls`: rows come back with their histograms, and the API merges them (histograms add,
//! percentiles never average).

use aim_traffic::{Histogram, Traffic};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::StoreError;

/// One rollup row: which hour or day (`bucket`) and, when relevant, which endpoint or agent, and
/// its traffic in the one model the writers and the routes use too.
#[derive(Debug, Clone)]
pub struct RollupRow {
    pub bucket: DateTime<Utc>,
    pub method: Option<String>,
    pub endpoint: Option<String>,
    pub agent_id: Option<Uuid>,
    pub traffic: Traffic,
}

impl<'r> sqlx::FromRow<'r, PgRow> for RollupRow {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        let last_call: Option<DateTime<Utc>> = row.try_get("last_call_at")?;
        Ok(Self {
            bucket: row.try_get("bucket")?,
            method: row.try_get("method")?,
            endpoint: row.try_get("endpoint")?,
            agent_id: row.try_get("agent_id")?,
            traffic: Traffic {
                calls: row.try_get("calls")?,
                errors: row.try_get("errors")?,
                client_errors: row.try_get("client_errors")?,
                server_errors: row.try_get("server_errors")?,
                request_bytes: row.try_get("request_bytes")?,
                response_bytes: row.try_get("response_bytes")?,
                total_duration_ms: row.try_get("total_duration_ms")?,
                histogram: Histogram::from_counts(row.try_get("histogram")?),
                last_call_us: last_call.map_or(0, |at| at.timestamp_micros()),
            },
        })
    }
}

const TRAFFIC: &str = "api_calls_count AS calls, errors_count AS errors, \
     client_errors_count AS client_errors, server_errors_count AS server_errors, request_bytes, \
     response_bytes, total_duration_ms, latency_histogram AS histogram, last_call_at";

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
    Ok(sqlx::query_as(
        "SELECT (date::timestamp AT TIME ZONE 'UTC') AS bucket, NULL::text AS method, \
                NULL::text AS endpoint, NULL::uuid AS agent_id, total_api_calls AS calls, \
                total_errors AS errors, client_errors, server_errors, request_bytes, \
                response_bytes, total_duration_ms, latency_histogram AS histogram, last_call_at \
         FROM organization_daily_metrics \
         WHERE organization_id = $1 AND date >= $2 AND date <= $3 AND total_api_calls > 0 \
         ORDER BY date",
    )
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

const HOURLY_ROW: &str = "hour_timestamp AS bucket, ";
const DAILY_ROW: &str = "(date::timestamp AT TIME ZONE 'UTC') AS bucket, ";
const ORG_TRAFFIC: &str = "total_api_calls AS calls, total_errors AS errors, client_errors, \
     server_errors, request_bytes, response_bytes, total_duration_ms, latency_histogram AS histogram, \
     last_call_at";
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

/// An agent as the activity list shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AgentSummary {
    pub id: Uuid,
    pub name: String,
    pub status: String,
    pub trust_score: f64,
    pub last_active: Option<DateTime<Utc>>,
}

/// When each of `agents` last made an API call, from its latest daily rollup row (the writers
/// keep `last_call_at` with the row's traffic): one primary-key probe per agent, never a scan
/// of `api_calls`. Agents without a recorded call are absent.
///
/// # Errors
/// The database error (an undefined table when the schema is below the analytics tables).
pub async fn last_calls(
    pool: &PgPool,
    organization_id: Uuid,
    agents: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, DateTime<Utc>>, StoreError> {
    if agents.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let rows: Vec<(Uuid, DateTime<Utc>)> = sqlx::query_as(
        "SELECT a.id, l.last_call_at FROM unnest($2::uuid[]) AS a(id) \
         CROSS JOIN LATERAL (SELECT d.last_call_at FROM agent_daily_metrics d \
             WHERE d.organization_id = $1 AND d.agent_id = a.id \
             ORDER BY d.date DESC LIMIT 1) l \
         WHERE l.last_call_at IS NOT NULL",
    )
    .bind(organization_id)
    .bind(agents)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Every live agent of the organization, oldest first.
///
/// # Errors
/// The database error.
pub async fn agent_summaries(
    pool: &PgPool,
    organization_id: Uuid,
) -> Result<Vec<AgentSummary>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, name, status, trust_score, last_active FROM agents \
         WHERE organization_id = $1 AND deleted_at IS NULL ORDER BY created_at, id",
    )
    .bind(organization_id)
    .fetch_all(pool)
    .await?)
}

/// The dashboard's identity counts.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrganizationCounts {
    pub total_agents: i64,
    pub verified_agents: i64,
    pub pending_agents: i64,
    pub avg_trust_score: Option<f64>,
    pub total_users: i64,
    pub active_users: i64,
    pub total_verifications: i64,
    pub successful_verifications: i64,
    pub failed_verifications: i64,
}

/// # Errors
/// The database error.
pub async fn organization_counts(
    pool: &PgPool,
    organization_id: Uuid,
) -> Result<OrganizationCounts, StoreError> {
    Ok(sqlx::query_as(
        "SELECT \
           (SELECT count(*) FROM agents WHERE organization_id = $1 AND deleted_at IS NULL) AS total_agents, \
           (SELECT count(*) FROM agents WHERE organization_id = $1 AND deleted_at IS NULL AND status = 'verified') AS verified_agents, \
           (SELECT count(*) FROM agents WHERE organization_id = $1 AND deleted_at IS NULL AND status = 'pending') AS pending_agents, \
           (SELECT avg(trust_score)::float8 FROM agents WHERE organization_id = $1 AND deleted_at IS NULL) AS avg_trust_score, \
           (SELECT count(*) FROM users WHERE organization_id = $1) AS total_users, \
           (SELECT count(*) FROM users WHERE organization_id = $1 AND is_active) AS active_users, \
           (SELECT coalesce(sum(total_verifications), 0)::bigint FROM organization_daily_metrics WHERE organization_id = $1) AS total_verifications, \
           (SELECT coalesce(sum(successful_verifications), 0)::bigint FROM organization_daily_metrics WHERE organization_id = $1) AS successful_verifications, \
           (SELECT coalesce(sum(failed_verifications), 0)::bigint FROM organization_daily_metrics WHERE organization_id = $1) AS failed_verifications",
    )
    .bind(organization_id)
    .fetch_one(pool)
    .await?)
}

/// Each agent's last recorded trust score in each `unit` (`week` or `day`, UTC) since `since`.
///
/// # Errors
/// The database error.
pub async fn trust_scores_by(
    pool: &PgPool,
    organization_id: Uuid,
    unit: TrendUnit,
    since: DateTime<Utc>,
) -> Result<Vec<(NaiveDate, Uuid, f64)>, StoreError> {
    let unit = match unit {
        TrendUnit::Week => "week",
        TrendUnit::Day => "day",
    };
    Ok(sqlx::query_as(
        "SELECT date_trunc($3, recorded_at AT TIME ZONE 'UTC')::date AS bucket, agent_id, \
                (array_agg(trust_score ORDER BY recorded_at DESC, id DESC))[1] AS score \
         FROM trust_score_history WHERE organization_id = $1 AND recorded_at >= $2 \
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .bind(organization_id)
    .bind(since)
    .bind(unit)
    .fetch_all(pool)
    .await?)
}

/// The bucket of a trend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrendUnit {
    Week,
    Day,
}

/// Verification events per UTC month since `since`: `(YYYY-MM, success, failed or timeout,
/// pending, total)`.
///
/// # Errors
/// The database error.
pub async fn verifications_by_month(
    pool: &PgPool,
    organization_id: Uuid,
    since: DateTime<Utc>,
) -> Result<Vec<(String, i64, i64, i64, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT to_char(date_trunc('month', started_at AT TIME ZONE 'UTC'), 'YYYY-MM') AS month, \
                count(*) FILTER (WHERE status = 'success'), \
                count(*) FILTER (WHERE status IN ('failed', 'timeout')), \
                count(*) FILTER (WHERE status = 'pending'), count(*) \
         FROM verification_events WHERE organization_id = $1 AND started_at >= $2 \
         GROUP BY 1 ORDER BY 1",
    )
    .bind(organization_id)
    .bind(since)
    .fetch_all(pool)
    .await?)
}

/// One raw call, as the export writes it.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct ExportRow {
    pub id: Uuid,
    pub called_at: DateTime<Utc>,
    pub agent_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub method: String,
    pub endpoint: String,
    pub status_code: i32,
    pub duration_ms: f64,
    pub request_size_bytes: i64,
    pub response_size_bytes: i64,
    pub user_agent: Option<String>,
    pub ip_address: Option<String>,
    pub error_message: Option<String>,
    pub request_id: Option<String>,
}

/// The next `limit` raw calls of the organization in `[from, to)` after `after` (keyset
/// pagination on `(called_at, id)`), so an export streams in bounded memory.
///
/// # Errors
/// The database error.
pub async fn export_page(
    pool: &PgPool,
    organization_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<ExportRow>, StoreError> {
    let (after_at, after_id) = after.map_or((None, None), |(at, id)| (Some(at), Some(id)));
    Ok(sqlx::query_as(
        "SELECT id, called_at, agent_id, user_id, method, endpoint, status_code, duration_ms, \
                request_size_bytes, response_size_bytes, user_agent, host(ip_address) AS ip_address, \
                error_message, request_id \
         FROM api_calls \
         WHERE organization_id = $1 AND called_at >= $2 AND called_at < $3 \
           AND ($4::timestamptz IS NULL OR (called_at, id) > ($4, $5)) \
         ORDER BY called_at, id LIMIT $6",
    )
    .bind(organization_id)
    .bind(from)
    .bind(to)
    .bind(after_at)
    .bind(after_id)
    .bind(limit)
    .fetch_all(pool)
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
