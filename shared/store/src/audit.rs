//! The audit trail: who did what to which object. Entries are written on the same connection
//! (usually the same transaction) as the change they describe, so a change and its record
//! commit or roll back together.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::StoreError;
use crate::model::{Actor, AuditEvent, Page};

/// One entry to record.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    pub organization_id: Option<Uuid>,
    pub actor: &'a Actor,
    pub action: &'static str,
    pub target_type: Option<&'static str>,
    pub target_id: Option<Uuid>,
    pub details: serde_json::Value,
}

/// # Errors
/// The database error.
pub async fn record(conn: &mut PgConnection, entry: AuditEntry<'_>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_events (id, organization_id, actor_type, actor_id, action, \
             target_type, target_id, details, ip_address, request_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::inet, $10)",
    )
    .bind(Uuid::now_v7())
    .bind(entry.organization_id)
    .bind(entry.actor.kind.as_str())
    .bind(entry.actor.id)
    .bind(entry.action)
    .bind(entry.target_type)
    .bind(entry.target_id)
    .bind(entry.details)
    .bind(entry.actor.ip.as_deref())
    .bind(entry.actor.request_id.as_deref())
    .execute(conn)
    .await?;
    Ok(())
}

/// Filters of the audit list; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub actor_id: Option<Uuid>,
    pub target_id: Option<Uuid>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// The organization's entries, newest first, and how many match in all.
///
/// # Errors
/// The database error.
pub async fn list(
    pool: &PgPool,
    organization_id: Uuid,
    filter: &AuditFilter,
    page: Page,
) -> Result<(Vec<AuditEvent>, i64), StoreError> {
    const WHERE: &str = "organization_id = $1 \
         AND ($2::text IS NULL OR action = $2) \
         AND ($3::uuid IS NULL OR actor_id = $3) \
         AND ($4::uuid IS NULL OR target_id = $4) \
         AND ($5::timestamptz IS NULL OR created_at >= $5) \
         AND ($6::timestamptz IS NULL OR created_at < $6)";
    let rows = sqlx::query_as::<_, AuditEvent>(&format!(
        "SELECT id, organization_id, actor_type, actor_id, action, target_type, target_id, \
                details, host(ip_address) AS ip_address, request_id, created_at \
         FROM audit_events WHERE {WHERE} ORDER BY created_at DESC, id DESC LIMIT $7 OFFSET $8"
    ))
    .bind(organization_id)
    .bind(&filter.action)
    .bind(filter.actor_id)
    .bind(filter.target_id)
    .bind(filter.from)
    .bind(filter.to)
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(pool)
    .await?;
    let total: i64 =
        sqlx::query_scalar(&format!("SELECT count(*) FROM audit_events WHERE {WHERE}"))
            .bind(organization_id)
            .bind(&filter.action)
            .bind(filter.actor_id)
            .bind(filter.target_id)
            .bind(filter.from)
            .bind(filter.to)
            .fetch_one(pool)
            .await?;
    Ok((rows, total))
}
