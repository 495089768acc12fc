//! Verification events: what an agent asked to do and what was decided.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::StoreError;
use crate::model::{Page, RuleOutcome, VerificationEvent, VerificationStatus};

const EVENT_COLUMNS: &str = "id, organization_id, agent_id, action, resource, context, status, \
     reason, rule_outcome, duration_ms, started_at";
const IDENTITY_EVENT_COLUMNS: &str =
    "id, organization_id, agent_id, action, resource, context, status, reason";

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
    /// Recorded with the rollups (the column arrived with them in the trust migration; with
    /// analytics off the service may run on a schema rolled back below it).
    pub rule_outcome: RuleOutcome,
    pub duration_ms: f64,
    pub started_at: DateTime<Utc>,
    /// Count it in the analytics rollups too. Off when analytics are (`AIM_ANALYTICS_ENABLED`),
    /// so the service keeps verifying on a schema rolled back below the analytics tables.
    pub rollups: bool,
}

/// Records the event, its rollups when asked (`verifications_count` and the rules' outcome
/// counts of the agent's hour, which trust scoring reads; the day's verification totals;
/// failed counts `failed` and `timeout`) and the agent's
/// `last_active`, in one transaction.
///
/// # Errors
/// The database error.
pub async fn record(
    pool: &PgPool,
    event: NewVerification,
) -> Result<VerificationEvent, StoreError> {
    let mut tx = pool.begin().await?;
    let sql = if event.rollups {
        format!(
            "INSERT INTO verification_events (id, organization_id, agent_id, action, resource, \
                 context, status, reason, duration_ms, started_at, rule_outcome) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {EVENT_COLUMNS}"
        )
    } else {
        format!(
            "INSERT INTO verification_events (id, organization_id, agent_id, action, resource, \
                 context, status, reason, duration_ms, started_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             RETURNING {IDENTITY_EVENT_COLUMNS}, NULL::text AS rule_outcome, duration_ms, started_at"
        )
    };
    let mut insert = sqlx::query_as::<_, VerificationEvent>(&sql)
        .bind(Uuid::now_v7())
        .bind(event.organization_id)
        .bind(event.agent_id)
        .bind(&event.action)
        .bind(&event.resource)
        .bind(&event.context)
        .bind(event.status)
        .bind(&event.reason)
        .bind(event.duration_ms)
        .bind(event.started_at);
    if event.rollups {
        insert = insert.bind(event.rule_outcome);
    }
    let recorded = insert.fetch_one(&mut *tx).await?;
    if event.rollups {
        record_rollups(&mut tx, &event).await?;
    }
    sqlx::query("UPDATE agents SET last_active = greatest(last_active, $3) WHERE organization_id = $1 AND id = $2")
        .bind(event.organization_id)
        .bind(event.agent_id)
        .bind(event.started_at)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(recorded)
}

/// The verification rollups, exact because they commit with the event. `updated_at` takes the
/// inserted row's default rather than `now()`: Citus refuses non-immutable functions in an
/// upsert's `DO UPDATE SET` on distributed tables (docs/scaling.md).
async fn record_rollups(
    tx: &mut sqlx::PgTransaction<'_>,
    event: &NewVerification,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO agent_activity_metrics (organization_id, agent_id, hour_timestamp, \
             verifications_count, rules_allowed_count, rules_denied_count) \
         VALUES ($1, $2, date_trunc('hour', $3, 'UTC'), 1, $4, $5) \
         ON CONFLICT (organization_id, agent_id, hour_timestamp) DO UPDATE \
         SET verifications_count = agent_activity_metrics.verifications_count + 1, \
             rules_allowed_count = agent_activity_metrics.rules_allowed_count + $4, \
             rules_denied_count = agent_activity_metrics.rules_denied_count + $5, \
             updated_at = EXCLUDED.updated_at",
    )
    .bind(event.organization_id)
    .bind(event.agent_id)
    .bind(event.started_at)
    .bind(i64::from(event.rule_outcome == RuleOutcome::Allowed))
    .bind(i64::from(event.rule_outcome == RuleOutcome::Denied))
    .execute(&mut **tx)
    .await?;
    let succeeded = i64::from(event.status == VerificationStatus::Success);
    let failed = i64::from(matches!(
        event.status,
        VerificationStatus::Failed | VerificationStatus::Timeout
    ));
    sqlx::query(
        "INSERT INTO organization_daily_metrics (organization_id, date, total_verifications, \
             successful_verifications, failed_verifications) \
         VALUES ($1, ($2 AT TIME ZONE 'UTC')::date, 1, $3, $4) \
         ON CONFLICT (organization_id, date) DO UPDATE SET \
             total_verifications = organization_daily_metrics.total_verifications + 1, \
             successful_verifications = organization_daily_metrics.successful_verifications + $3, \
             failed_verifications = organization_daily_metrics.failed_verifications + $4, \
             updated_at = EXCLUDED.updated_at",
    )
    .bind(event.organization_id)
    .bind(event.started_at)
    .bind(succeeded)
    .bind(failed)
    .execute(&mut **tx)
    .await?;
    Ok(())
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
