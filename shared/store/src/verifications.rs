//! Verification events: what an agent asked to do and what was decided.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::StoreError;
use crate::model::{Page, VerificationEvent, VerificationStatus};

const EVENT_COLUMNS: &str = "id, organization_id, agent_id, action, resource, context, status, \
     reason, duration_ms, started_at";

/// A decided verification to record.
#[derive(Debug, Clone)]
pub struct NewVerification {
    pub organization_id: Uuid,
    pub agent_id: Uuid,
    pub action: String,
    pub resource: Option<String>,
    pub context: Option<serde_json::Value>,
    pub status: VerificationStatus,
    pub reason: String,
    pub duration_ms: f64,
    pub started_at: DateTime<Utc>,
}

/// Records the event and the agent's `last_active` in one transaction.
///
/// # Errors
/// The database error.
pub async fn record(
    pool: &PgPool,
    event: NewVerification,
) -> Result<VerificationEvent, StoreError> {
    let mut tx = pool.begin().await?;
    let recorded: VerificationEvent = sqlx::query_as(&format!(
        "INSERT INTO verification_events (id, organization_id, agent_id, action, resource, \
             context, status, reason, duration_ms, started_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {EVENT_COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(event.organization_id)
    .bind(event.agent_id)
    .bind(&event.action)
    .bind(&event.resource)
    .bind(&event.context)
    .bind(event.status)
    .bind(&event.reason)
    .bind(event.duration_ms)
    .bind(event.started_at)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("UPDATE agents SET last_active = greatest(last_active, $3) WHERE organization_id = $1 AND id = $2")
        .bind(event.organization_id)
        .bind(event.agent_id)
        .bind(event.started_at)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(recorded)
}

/// Filters of the verification list; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct VerificationFilter {
    pub agent_id: Option<Uuid>,
    pub status: Option<VerificationStatus>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// The organization's events, newest first, and how many match in all.
///
/// # Errors
/// The database error.
pub async fn list(
    pool: &PgPool,
    organization_id: Uuid,
    filter: &VerificationFilter,
    page: Page,
) -> Result<(Vec<VerificationEvent>, i64), StoreError> {
    const WHERE: &str = "organization_id = $1 \
         AND ($2::uuid IS NULL OR agent_id = $2) \
         AND ($3::text IS NULL OR status = $3) \
         AND ($4::timestamptz IS NULL OR started_at >= $4) \
         AND ($5::timestamptz IS NULL OR started_at < $5)";
    let events = sqlx::query_as(&format!(
        "SELECT {EVENT_COLUMNS} FROM verification_events WHERE {WHERE} \
         ORDER BY started_at DESC, id DESC LIMIT $6 OFFSET $7"
    ))
    .bind(organization_id)
    .bind(filter.agent_id)
    .bind(filter.status)
    .bind(filter.from)
    .bind(filter.to)
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM verification_events WHERE {WHERE}"
    ))
    .bind(organization_id)
    .bind(filter.agent_id)
    .bind(filter.status)
    .bind(filter.from)
    .bind(filter.to)
    .fetch_one(pool)
    .await?;
    Ok((events, total))
}
