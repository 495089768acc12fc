//! Webhook endpoints and their outbox. A delivery row is written in the transaction of the
//! event it announces ([`enqueue`]), for every endpoint of the organization subscribed to it,
//! enabled or not (a disabled endpoint's deliveries wait for it to be re-enabled), so a crash
//! or restart loses none. Replicas claim due rows with `FOR UPDATE SKIP LOCKED` and a lease
//! ([`claim_due`]): a claimed row is not due again until the lease ends, so two replicas never
//! send it at once, and a replica that dies mid-send leaves it to be sent again (at least once).
//! Secrets are stored encrypted by the caller; this module never sees them in clear.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::StoreError;
use crate::audit::{self, AuditEntry};
use crate::model::{Actor, Page};

pub const EVENT_ALERT_OPENED: &str = "alert.opened";
pub const EVENT_STATUS_CHANGED: &str = "agent.status_changed";
pub const EVENT_PING: &str = "webhook.ping";
/// The events an endpoint may subscribe to (a ping goes to the endpoint it tests, whatever its
/// subscriptions).
pub const EVENTS: [&str; 2] = [EVENT_ALERT_OPENED, EVENT_STATUS_CHANGED];

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Webhook {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    pub enabled: bool,
    /// Why the service disabled it (repeated failures); NULL while enabled.
    pub disabled_reason: Option<String>,
    pub consecutive_failures: i32,
    /// Until when the secret replaced by the last rotation still signs deliveries.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const WEBHOOK_COLUMNS: &str = "id, organization_id, url, description, events, enabled, \
     disabled_reason, consecutive_failures, previous_secret_expires_at, created_by, created_at, \
     updated_at";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Delivery {
    /// Sent as `AIM-Delivery-Id`; the same on every attempt and redelivery, so a receiver can
    /// de-duplicate.
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub event_type: String,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const DELIVERY_COLUMNS: &str = "id, webhook_id, event_type, payload, status, attempts, \
     next_attempt_at, last_attempt_at, last_status_code, last_error, delivered_at, created_at";

fn envelope(
    organization_id: Uuid,
    event: &str,
    data: serde_json::Value,
    now: DateTime<Utc>,
) -> serde_json::Value {
    serde_json::json!({
        "type": event,
        "occurred_at": now,
        "organization_id": organization_id,
        "data": data,
    })
}

/// Writes a delivery of `event` for every endpoint of the organization subscribed to it, in the
/// caller's transaction.
///
/// # Errors
/// The database error.
pub async fn enqueue(
    conn: &mut PgConnection,
    organization_id: Uuid,
    event: &str,
    data: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let payload = envelope(organization_id, event, data, now);
    Ok(sqlx::query(
        "INSERT INTO webhook_deliveries (id, organization_id, webhook_id, event_type, payload, \
             next_attempt_at) \
         SELECT gen_random_uuid(), organization_id, id, $2, $3, $4 \
         FROM webhooks WHERE organization_id = $1 AND $2 = ANY(events)",
    )
    .bind(organization_id)
    .bind(event)
    .bind(&payload)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected())
}

/// An endpoint to register; validated, its secret already encrypted.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    pub secret_encrypted: Vec<u8>,
}

/// # Errors
/// The database error.
pub async fn create(
    pool: &PgPool,
    organization_id: Uuid,
    webhook: NewWebhook,
    actor: &Actor,
) -> Result<Webhook, StoreError> {
    let mut tx = pool.begin().await?;
    let created: Webhook = sqlx::query_as(&format!(
        "INSERT INTO webhooks (id, organization_id, url, description, events, secret_encrypted, \
             created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {WEBHOOK_COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(organization_id)
    .bind(&webhook.url)
    .bind(&webhook.description)
    .bind(&webhook.events)
    .bind(&webhook.secret_encrypted)
    .bind(actor.id)
    .fetch_one(&mut *tx)
    .await?;
    audit(
        &mut tx,
        organization_id,
        actor,
        "webhook.created",
        created.id,
        serde_json::json!({
            "url": created.url, "events": created.events,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(created)
}

async fn audit(
    conn: &mut PgConnection,
    organization_id: Uuid,
    actor: &Actor,
    action: &'static str,
    id: Uuid,
    details: serde_json::Value,
) -> Result<(), StoreError> {
    audit::record(
        conn,
        AuditEntry {
            organization_id: Some(organization_id),
            actor,
            action,
            target_type: Some("webhook"),
            target_id: Some(id),
            details,
        },
    )
    .await
}

/// # Errors
/// The database error.
pub async fn list(pool: &PgPool, organization_id: Uuid) -> Result<Vec<Webhook>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE organization_id = $1 ORDER BY created_at, id"
    ))
    .bind(organization_id)
    .fetch_all(pool)
    .await?)
}

/// # Errors
/// The database error.
pub async fn get(
    pool: &PgPool,
    organization_id: Uuid,
    id: Uuid,
) -> Result<Option<Webhook>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE organization_id = $1 AND id = $2"
    ))
    .bind(organization_id)
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// The fields a PATCH may change; `None` leaves one as it is. Enabling clears the failure
/// count and the reason it was disabled.
#[derive(Debug, Clone, Default)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub description: Option<String>,
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

/// # Errors
/// The database error.
pub async fn update(
    pool: &PgPool,
    organization_id: Uuid,
    id: Uuid,
    patch: WebhookPatch,
    actor: &Actor,
) -> Result<Option<Webhook>, StoreError> {
    let mut tx = pool.begin().await?;
    let updated: Option<Webhook> = sqlx::query_as(&format!(
        "UPDATE webhooks SET url = coalesce($3, url), description = coalesce($4, description), \
             events = coalesce($5, events), enabled = coalesce($6, enabled), \
             consecutive_failures = CASE WHEN $6 THEN 0 ELSE consecutive_failures END, \
             disabled_reason = CASE WHEN $6 THEN NULL \
                 WHEN $6 = false THEN 'disabled by an admin' ELSE disabled_reason END, \
             updated_at = now() \
         WHERE organization_id = $1 AND id = $2 RETURNING {WEBHOOK_COLUMNS}"
    ))
    .bind(organization_id)
    .bind(id)
    .bind(&patch.url)
    .bind(&patch.description)
    .bind(&patch.events)
    .bind(patch.enabled)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(updated) = updated else {
        return Ok(None);
    };
    audit(
        &mut tx,
        organization_id,
        actor,
        "webhook.updated",
        id,
        serde_json::json!({
            "url": patch.url, "events": patch.events, "enabled": patch.enabled,
            "description_changed": patch.description.is_some(),
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(Some(updated))
}

/// Deletes the endpoint and its deliveries.
///
/// # Errors
/// The database error.
pub async fn delete(
    pool: &PgPool,
    organization_id: Uuid,
    id: Uuid,
    actor: &Actor,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let deleted = sqlx::query("DELETE FROM webhooks WHERE organization_id = $1 AND id = $2")
        .bind(organization_id)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if deleted == 0 {
        return Ok(false);
    }
    audit(
        &mut tx,
        organization_id,
        actor,
        "webhook.deleted",
        id,
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Replaces the secret; the one it replaces keeps signing (a second signature) until
/// `overlap_until`.
///
/// # Errors
/// The database error.
pub async fn rotate(
    pool: &PgPool,
    organization_id: Uuid,
    id: Uuid,
    secret_encrypted: &[u8],
    overlap_until: DateTime<Utc>,
    actor: &Actor,
) -> Result<Option<Webhook>, StoreError> {
    let mut tx = pool.begin().await?;
    let rotated: Option<Webhook> = sqlx::query_as(&format!(
        "UPDATE webhooks SET previous_secret_encrypted = secret_encrypted, \
             previous_secret_expires_at = $4, secret_encrypted = $3, updated_at = now() \
         WHERE organization_id = $1 AND id = $2 RETURNING {WEBHOOK_COLUMNS}"
    ))
    .bind(organization_id)
    .bind(id)
    .bind(secret_encrypted)
    .bind(overlap_until)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(rotated) = rotated else {
        return Ok(None);
    };
    audit(
        &mut tx,
        organization_id,
        actor,
        "webhook.secret_rotated",
        id,
        serde_json::json!({
            "previous_secret_expires_at": overlap_until,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(Some(rotated))
}

/// Enqueues a `webhook.ping` to this endpoint alone. Returns the delivery, `None` when the
/// endpoint does not exist.
///
/// # Errors
/// The database error.
pub async fn ping(
    pool: &PgPool,
    organization_id: Uuid,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<Delivery>, StoreError> {
    let payload = envelope(
        organization_id,
        EVENT_PING,
        serde_json::json!({ "webhook_id": id }),
        now,
    );
    Ok(sqlx::query_as(&format!(
        "INSERT INTO webhook_deliveries (id, organization_id, webhook_id, event_type, payload, \
             next_attempt_at) \
         SELECT $3, organization_id, id, $4, $5, $6 FROM webhooks \
         WHERE organization_id = $1 AND id = $2 RETURNING {DELIVERY_COLUMNS}"
    ))
    .bind(organization_id)
    .bind(id)
    .bind(Uuid::now_v7())
    .bind(EVENT_PING)
    .bind(&payload)
    .bind(now)
    .fetch_optional(pool)
    .await?)
}

/// The endpoint's deliveries, newest first, and how many it has in all.
///
/// # Errors
/// The database error.
pub async fn deliveries(
    pool: &PgPool,
    organization_id: Uuid,
    webhook_id: Uuid,
    status: Option<DeliveryStatus>,
    page: Page,
) -> Result<(Vec<Delivery>, i64), StoreError> {
    const WHERE: &str =
        "organization_id = $1 AND webhook_id = $2 AND ($3::text IS NULL OR status = $3)";
    let rows = sqlx::query_as(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE {WHERE} \
         ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5"
    ))
    .bind(organization_id)
    .bind(webhook_id)
    .bind(status)
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM webhook_deliveries WHERE {WHERE}"
    ))
    .bind(organization_id)
    .bind(webhook_id)
    .bind(status)
    .fetch_one(pool)
    .await?;
    Ok((rows, total))
}

/// Sends one delivery again, delivered or failed: back to pending, due now, attempts from 0,
/// the same id.
///
/// # Errors
/// The database error.
pub async fn redeliver(
    pool: &PgPool,
    organization_id: Uuid,
    webhook_id: Uuid,
    delivery_id: Uuid,
    actor: &Actor,
) -> Result<Option<Delivery>, StoreError> {
    let mut tx = pool.begin().await?;
    let delivery: Option<Delivery> = sqlx::query_as(&format!(
        "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = now(), \
             last_error = NULL, last_status_code = NULL, delivered_at = NULL \
         WHERE organization_id = $1 AND webhook_id = $2 AND id = $3 RETURNING {DELIVERY_COLUMNS}"
    ))
    .bind(organization_id)
    .bind(webhook_id)
    .bind(delivery_id)
    .fetch_optional(&mut *tx)
    .await?;
    if delivery.is_some() {
        audit(
            &mut tx,
            organization_id,
            actor,
            "webhook.redelivered",
            webhook_id,
            serde_json::json!({
                "delivery_id": delivery_id,
            }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(delivery)
}

/// A delivery claimed for sending, with what signing it needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Due {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub webhook_id: Uuid,
    pub event_type: String,
    pub payload: serde_json::Value,
    /// This attempt's number, from 1.
    pub attempts: i32,
    pub url: String,
    pub secret_encrypted: Vec<u8>,
    pub previous_secret_encrypted: Option<Vec<u8>>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

/// Claims up to `limit` due deliveries of enabled endpoints: each is counted as an attempt and
/// not due again for `lease` (the attempt's outcome sets the real next time).
///
/// # Errors
/// The database error.
pub async fn claim_due(
    pool: &PgPool,
    limit: i64,
    lease: std::time::Duration,
) -> Result<Vec<Due>, StoreError> {
    Ok(sqlx::query_as(
        "WITH due AS ( \
             SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
             WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND w.enabled \
             ORDER BY d.next_attempt_at LIMIT $1 FOR UPDATE OF d SKIP LOCKED) \
         UPDATE webhook_deliveries d \
         SET attempts = d.attempts + 1, last_attempt_at = now(), \
             next_attempt_at = now() + make_interval(secs => $2) \
         FROM due, webhooks w WHERE d.id = due.id AND w.id = d.webhook_id \
         RETURNING d.id, d.organization_id, d.webhook_id, d.event_type, d.payload, d.attempts, \
             w.url, w.secret_encrypted, w.previous_secret_encrypted, w.previous_secret_expires_at",
    )
    .bind(limit)
    .bind(lease.as_secs_f64())
    .fetch_all(pool)
    .await?)
}

/// Records a 2xx answer: delivered; the endpoint's failure count starts again.
///
/// # Errors
/// The database error.
pub async fn delivered(pool: &PgPool, due: &Due, status_code: u16) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE webhook_deliveries SET status = 'delivered', delivered_at = now(), \
             last_status_code = $2, last_error = NULL WHERE id = $1",
    )
    .bind(due.id)
    .bind(i32::from(status_code))
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE webhooks SET consecutive_failures = 0 WHERE id = $1")
        .bind(due.webhook_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// What a failed attempt led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// The delivery will not be tried again (its attempts are spent).
    pub gave_up: bool,
    /// This failure disabled the endpoint.
    pub disabled: bool,
}

/// Records a failed attempt: retried at `retry_at`, or failed for good when `None`. The
/// endpoint is disabled once `disable_after` attempts in a row have failed.
///
/// # Errors
/// The database error.
pub async fn failed(
    pool: &PgPool,
    due: &Due,
    status_code: Option<u16>,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
    disable_after: i32,
) -> Result<Failure, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE webhook_deliveries SET status = CASE WHEN $4::timestamptz IS NULL THEN 'failed' ELSE 'pending' END, \
             next_attempt_at = coalesce($4, next_attempt_at), last_status_code = $2, last_error = $3 \
         WHERE id = $1",
    )
    .bind(due.id)
    .bind(status_code.map(i32::from))
    .bind(error)
    .bind(retry_at)
    .execute(&mut *tx)
    .await?;
    let disabled: Option<bool> = sqlx::query_scalar(
        "UPDATE webhooks SET consecutive_failures = consecutive_failures + 1, \
             enabled = enabled AND consecutive_failures + 1 < $2, \
             disabled_reason = CASE WHEN enabled AND consecutive_failures + 1 >= $2 \
                 THEN format('disabled after %s failed attempts in a row; last: %s', consecutive_failures + 1, $3::text) \
                 ELSE disabled_reason END \
         WHERE id = $1 RETURNING NOT enabled AND consecutive_failures = $2",
    )
    .bind(due.webhook_id)
    .bind(disable_after)
    .bind(error)
    .fetch_optional(&mut *tx)
    .await?;
    if disabled == Some(true) {
        audit(
            &mut tx,
            due.organization_id,
            &Actor::default(),
            "webhook.disabled",
            due.webhook_id,
            serde_json::json!({ "failures": disable_after, "last_error": error }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Failure {
        gave_up: retry_at.is_none(),
        disabled: disabled == Some(true),
    })
}

/// Pending and failed deliveries of every organization, for `/metrics`.
///
/// # Errors
/// The database error.
pub async fn backlog(pool: &PgPool) -> Result<(i64, i64), StoreError> {
    Ok(sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'failed') \
         FROM webhook_deliveries WHERE status <> 'delivered'",
    )
    .fetch_one(pool)
    .await?)
}
