//! Reads for the analytics API. Everything comes from the rollup tables, never from raw
//! `api_calls`: rows come back with their histograms, and the API merges them (histograms add,
//! percentiles never average).

mod rows;
mod window;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::StoreError;
pub use rows::RollupRow;
pub use window::{
    Rollup, Split, active_agents, agent_hours, endpoint_hours, org_days, window_rows,
};

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
    /// The call's `x-request-id`: the client's own when it sent a sane one, so not unique
    /// (`id` is); see `docs/api.md`.
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
