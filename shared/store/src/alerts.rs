//! Alerts: a condition the trust policy watches for, seen on an agent. At most one alert per
//! agent and rule is unresolved at a time (a partial unique index), so a condition seen on every
//! recomputation opens one alert, not one per run; opening one enqueues its webhook deliveries
//! in the same transaction.

use aim_trust::AlertRule;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::StoreError;
use crate::audit::{self, AuditEntry};
use crate::model::{Actor, Page};
use crate::webhooks;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum AlertStatus {
    Open,
    Acknowledged,
    Resolved,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Alert {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub agent_id: Uuid,
    #[schema(value_type = AlertRule)]
    pub rule: String,
    pub status: AlertStatus,
    pub message: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub opened_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<Uuid>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<Uuid>,
}

const COLUMNS: &str = "id, organization_id, agent_id, rule, status, message, details, opened_at, \
     acknowledged_at, acknowledged_by, resolved_at, resolved_by";

/// A condition seen on an agent.
#[derive(Debug, Clone)]
pub struct NewAlert {
    pub agent_id: Uuid,
    pub rule: AlertRule,
    pub message: String,
    pub details: serde_json::Value,
}

/// Opens the alerts that have no unresolved alert of the same agent and rule, and enqueues an
/// `alert.opened` delivery for each opened one. Returns the opened alerts.
///
/// # Errors
/// The database error.
pub async fn open(
    conn: &mut PgConnection,
    organization_id: Uuid,
    alerts: &[NewAlert],
    now: DateTime<Utc>,
) -> Result<Vec<Alert>, StoreError> {
    if alerts.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = alerts.iter().map(|_| Uuid::now_v7()).collect();
    let agents: Vec<Uuid> = alerts.iter().map(|a| a.agent_id).collect();
    let rules: Vec<&str> = alerts.iter().map(|a| a.rule.as_str()).collect();
    let messages: Vec<&str> = alerts.iter().map(|a| a.message.as_str()).collect();
    let details: Vec<&serde_json::Value> = alerts.iter().map(|a| &a.details).collect();
    let opened: Vec<Alert> = sqlx::query_as(&format!(
        "INSERT INTO alerts (id, organization_id, agent_id, rule, message, details, opened_at) \
         SELECT u.id, $1, u.agent_id, u.rule, u.message, u.details, $7 \
         FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::jsonb[]) \
             AS u(id, agent_id, rule, message, details) \
         ON CONFLICT (organization_id, agent_id, rule) WHERE status <> 'resolved' DO NOTHING \
         RETURNING {COLUMNS}"
    ))
    .bind(organization_id)
    .bind(&ids)
    .bind(&agents)
    .bind(&rules)
    .bind(&messages)
    .bind(&details)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    for alert in &opened {
        webhooks::enqueue(
            conn,
            organization_id,
            webhooks::EVENT_ALERT_OPENED,
            serde_json::to_value(alert).unwrap_or_default(),
            now,
        )
        .await?;
    }
    Ok(opened)
}

/// Filters of the alert list; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub status: Option<AlertStatus>,
    pub agent_id: Option<Uuid>,
}

/// The organization's alerts, newest first, and how many match in all.
///
/// # Errors
/// The database error.
pub async fn list(
    pool: &PgPool,
    organization_id: Uuid,
    filter: &AlertFilter,
    page: Page,
) -> Result<(Vec<Alert>, i64), StoreError> {
    const WHERE: &str = "organization_id = $1 AND ($2::text IS NULL OR status = $2) \
         AND ($3::uuid IS NULL OR agent_id = $3)";
    let alerts = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM alerts WHERE {WHERE} ORDER BY opened_at DESC, id DESC LIMIT $4 OFFSET $5"
    ))
    .bind(organization_id)
    .bind(filter.status)
    .bind(filter.agent_id)
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar(&format!("SELECT count(*) FROM alerts WHERE {WHERE}"))
        .bind(organization_id)
        .bind(filter.status)
        .bind(filter.agent_id)
        .fetch_one(pool)
        .await?;
    Ok((alerts, total))
}

/// What acknowledging or resolving found.
#[derive(Debug)]
pub enum Change {
    Done(Alert),
    NotFound,
    /// The alert is already resolved; resolution is final.
    Resolved,
}

/// Moves an unresolved alert to `to` (acknowledged or resolved), recording who and when, and
/// audits it. Acknowledging an acknowledged alert changes nothing and answers it as it is.
///
/// # Errors
/// The database error.
pub async fn change(
    pool: &PgPool,
    organization_id: Uuid,
    id: Uuid,
    to: AlertStatus,
    actor: &Actor,
) -> Result<Change, StoreError> {
    let mut tx = pool.begin().await?;
    let current: Option<AlertStatus> = sqlx::query_scalar(
        "SELECT status FROM alerts WHERE organization_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(organization_id)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    match current {
        None => return Ok(Change::NotFound),
        Some(AlertStatus::Resolved) => return Ok(Change::Resolved),
        Some(_) => {}
    }
    let sql = match to {
        AlertStatus::Acknowledged => format!(
            "UPDATE alerts SET status = 'acknowledged', \
                 acknowledged_at = coalesce(acknowledged_at, now()), \
                 acknowledged_by = coalesce(acknowledged_by, $3) \
             WHERE organization_id = $1 AND id = $2 RETURNING {COLUMNS}"
        ),
        AlertStatus::Resolved | AlertStatus::Open => format!(
            "UPDATE alerts SET status = 'resolved', resolved_at = now(), resolved_by = $3 \
             WHERE organization_id = $1 AND id = $2 RETURNING {COLUMNS}"
        ),
    };
    let alert: Alert = sqlx::query_as(&sql)
        .bind(organization_id)
        .bind(id)
        .bind(actor.id)
        .fetch_one(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        AuditEntry {
            organization_id: Some(organization_id),
            actor,
            action: if to == AlertStatus::Acknowledged {
                "alert.acknowledged"
            } else {
                "alert.resolved"
            },
            target_type: Some("alert"),
            target_id: Some(id),
            details: serde_json::json!({ "agent_id": alert.agent_id, "rule": alert.rule }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Change::Done(alert))
}

/// Unresolved alerts of the organization: (open, acknowledged).
///
/// # Errors
/// The database error.
pub async fn counts(pool: &PgPool, organization_id: Uuid) -> Result<(i64, i64), StoreError> {
    Ok(sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'open'), \
             count(*) FILTER (WHERE status = 'acknowledged') \
         FROM alerts WHERE organization_id = $1 AND status <> 'resolved'",
    )
    .bind(organization_id)
    .fetch_one(pool)
    .await?)
}

/// Unresolved alerts of every organization by status and rule, for `/metrics`.
///
/// # Errors
/// The database error.
pub async fn counts_by_rule(pool: &PgPool) -> Result<Vec<(String, String, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT status, rule, count(*) FROM alerts WHERE status <> 'resolved' GROUP BY 1, 2",
    )
    .fetch_all(pool)
    .await?)
}
