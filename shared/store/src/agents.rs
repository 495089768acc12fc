//! Agents and their trust scores. Every trust-score change, the initial score included, writes
//! `trust_score_history` in the same transaction as the change.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::StoreError;
use crate::audit::{self, AuditEntry};
use crate::model::{Actor, Agent, AgentStatus, Page, TrustScoreChange};

const AGENT_COLUMNS: &str = "id, organization_id, name, description, agent_type, status, \
     trust_score, metadata, created_by, last_active, created_at, updated_at";

/// An agent to create; fields already validated.
#[derive(Debug, Clone)]
pub struct NewAgent {
    pub name: String,
    pub description: String,
    pub agent_type: String,
    pub trust_score: f64,
    pub metadata: serde_json::Value,
}

/// The fields a PATCH may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct AgentPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub agent_type: Option<String>,
    pub status: Option<AgentStatus>,
    pub metadata: Option<serde_json::Value>,
}

/// # Errors
/// The database error.
pub async fn create(
    pool: &PgPool,
    organization_id: Uuid,
    agent: NewAgent,
    actor: &Actor,
) -> Result<Agent, StoreError> {
    let mut tx = pool.begin().await?;
    let created: Agent = sqlx::query_as(&format!(
        "INSERT INTO agents (id, organization_id, name, description, agent_type, trust_score, \
             metadata, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {AGENT_COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(organization_id)
    .bind(&agent.name)
    .bind(&agent.description)
    .bind(&agent.agent_type)
    .bind(agent.trust_score)
    .bind(&agent.metadata)
    .bind(actor.id)
    .fetch_one(&mut *tx)
    .await?;
    record_score(&mut tx, &created, None, "initial score", None, actor).await?;
    audit::record(
        &mut tx,
        AuditEntry {
            organization_id: Some(organization_id),
            actor,
            action: "agent.created",
            target_type: Some("agent"),
            target_id: Some(created.id),
            details: serde_json::json!({
                "name": created.name,
                "trust_score": created.trust_score,
            }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(created)
}

async fn record_score(
    conn: &mut PgConnection,
    agent: &Agent,
    previous: Option<f64>,
    reason: &str,
    metadata: Option<&serde_json::Value>,
    actor: &Actor,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO trust_score_history (id, organization_id, agent_id, trust_score, \
             previous_score, change_reason, changed_by, metadata) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(Uuid::now_v7())
    .bind(agent.organization_id)
    .bind(agent.id)
    .bind(agent.trust_score)
    .bind(previous)
    .bind(reason)
    .bind(actor.id)
    .bind(metadata)
    .execute(conn)
    .await?;
    Ok(())
}

/// An agent of the organization that has not been deleted.
///
/// # Errors
/// The database error.
pub async fn get(
    pool: &PgPool,
    organization_id: Uuid,
    id: Uuid,
) -> Result<Option<Agent>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {AGENT_COLUMNS} FROM agents \
         WHERE organization_id = $1 AND id = $2 AND deleted_at IS NULL"
    ))
    .bind(organization_id)
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// The organization's agents, oldest first, optionally of one status.
///
/// # Errors
/// The database error.
pub async fn list(
    pool: &PgPool,
    organization_id: Uuid,
    status: Option<AgentStatus>,
    page: Page,
) -> Result<(Vec<Agent>, i64), StoreError> {
    const WHERE: &str =
        "organization_id = $1 AND deleted_at IS NULL AND ($2::text IS NULL OR status = $2)";
    let agents = sqlx::query_as(&format!(
        "SELECT {AGENT_COLUMNS} FROM agents WHERE {WHERE} \
         ORDER BY created_at, id LIMIT $3 OFFSET $4"
    ))
    .bind(organization_id)
    .bind(status)
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar(&format!("SELECT count(*) FROM agents WHERE {WHERE}"))
        .bind(organization_id)
        .bind(status)
        .fetch_one(pool)
        .await?;
    Ok((agents, total))
}

/// Applies a patch. Revocation is terminal: a patch that would move a revoked agent to any
/// other status is refused with [`StoreError::AgentRevoked`]; leaving `suspended` for any
/// status but `revoked` needs `may_reinstate` (an admin), else [`StoreError::AdminOnly`]. Both
/// are checked under the row's lock, so a change racing the patch cannot be undone by it. A
/// status change is audited and announced to webhooks as a transition.
///
/// # Errors
/// [`StoreError::AgentRevoked`], [`StoreError::AdminOnly`]; the database error.
pub async fn update(
    pool: &PgPool,
    organization_id: Uuid,
    id: Uuid,
    patch: AgentPatch,
    may_reinstate: bool,
    actor: &Actor,
) -> Result<Option<Agent>, StoreError> {
    let mut tx = pool.begin().await?;
    let current: Option<AgentStatus> = sqlx::query_scalar(
        "SELECT status FROM agents \
         WHERE organization_id = $1 AND id = $2 AND deleted_at IS NULL FOR UPDATE",
    )
    .bind(organization_id)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    match current {
        None => return Ok(None),
        Some(AgentStatus::Revoked) if patch.status.is_some_and(|s| s != AgentStatus::Revoked) => {
            return Err(StoreError::AgentRevoked);
        }
        Some(AgentStatus::Suspended)
            if !may_reinstate
                && patch.status.is_some_and(|s| {
                    !matches!(s, AgentStatus::Suspended | AgentStatus::Revoked)
                }) =>
        {
            return Err(StoreError::AdminOnly(
                "only an admin can reinstate a suspended agent",
            ));
        }
        Some(_) => {}
    }
    let from = current.unwrap_or(AgentStatus::Pending);
    let updated: Option<Agent> = sqlx::query_as(&format!(
        "UPDATE agents SET name = coalesce($3, name), description = coalesce($4, description), \
             agent_type = coalesce($5, agent_type), status = coalesce($6, status), \
             metadata = coalesce($7, metadata), updated_at = now() \
         WHERE organization_id = $1 AND id = $2 AND deleted_at IS NULL \
         RETURNING {AGENT_COLUMNS}"
    ))
    .bind(organization_id)
    .bind(id)
    .bind(&patch.name)
    .bind(&patch.description)
    .bind(&patch.agent_type)
    .bind(patch.status)
    .bind(&patch.metadata)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(updated) = updated else {
        return Ok(None);
    };
    audit::record(
        &mut tx,
        AuditEntry {
            organization_id: Some(organization_id),
            actor,
            action: "agent.updated",
            target_type: Some("agent"),
            target_id: Some(id),
            details: serde_json::json!({
                "name": patch.name,
                "description": patch.description,
                "agent_type": patch.agent_type,
                "status": patch.status,
                "metadata_changed": patch.metadata.is_some(),
            }),
        },
    )
    .await?;
    if updated.status != from {
        crate::trust::record_transition(
            &mut tx,
            organization_id,
            &crate::trust::Transition {
                agent_id: id,
                from,
                to: updated.status,
                cause: "changed by a user",
                score: updated.trust_score,
            },
            actor,
            chrono::Utc::now(),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Some(updated))
}

/// Marks the agent deleted and revokes its keys, keeping its history and analytics. Returns the
/// hashes of the keys it revoked, so the caller can evict them from its key cache.
///
/// # Errors
/// The database error.
pub async fn delete(
    pool: &PgPool,
    organization_id: Uuid,
    id: Uuid,
    actor: &Actor,
) -> Result<Option<Vec<Vec<u8>>>, StoreError> {
    let mut tx = pool.begin().await?;
    let deleted = sqlx::query(
        "UPDATE agents SET deleted_at = now(), status = 'revoked', updated_at = now() \
         WHERE organization_id = $1 AND id = $2 AND deleted_at IS NULL",
    )
    .bind(organization_id)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if deleted.rows_affected() == 0 {
        return Ok(None);
    }
    let hashes: Vec<Vec<u8>> = sqlx::query_scalar(
        "UPDATE api_keys SET revoked_at = now() \
         WHERE organization_id = $1 AND agent_id = $2 AND revoked_at IS NULL RETURNING key_hash",
    )
    .bind(organization_id)
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        AuditEntry {
            organization_id: Some(organization_id),
            actor,
            action: "agent.deleted",
            target_type: Some("agent"),
            target_id: Some(id),
            details: serde_json::json!({ "revoked_keys": hashes.len() }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Some(hashes))
}

/// Overrides the trust score: the score is set and held at `score` (the scheduled
/// recomputation keeps it) until `expires_at`, or until replaced when `None`. The history row
/// (with the previous score, the user as `changed_by` and the override as metadata) and the
/// audit entry commit with it. The row lock makes concurrent changes record a correct
/// `previous_score`.
///
/// # Errors
/// The database error.
pub async fn set_trust_score(
    pool: &PgPool,
    organization_id: Uuid,
    id: Uuid,
    score: f64,
    reason: &str,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
    actor: &Actor,
) -> Result<Option<(Agent, f64)>, StoreError> {
    let mut tx = pool.begin().await?;
    let previous: Option<f64> = sqlx::query_scalar(
        "SELECT trust_score FROM agents \
         WHERE organization_id = $1 AND id = $2 AND deleted_at IS NULL FOR UPDATE",
    )
    .bind(organization_id)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(previous) = previous else {
        return Ok(None);
    };
    let agent: Agent = sqlx::query_as(&format!(
        "UPDATE agents SET trust_score = $3, trust_override_score = $3, \
             trust_override_reason = $4, trust_override_expires_at = $5, \
             trust_override_by = $6, trust_factors = NULL, updated_at = now() \
         WHERE organization_id = $1 AND id = $2 RETURNING {AGENT_COLUMNS}"
    ))
    .bind(organization_id)
    .bind(id)
    .bind(score)
    .bind(reason)
    .bind(expires_at)
    .bind(actor.id)
    .fetch_one(&mut *tx)
    .await?;
    let metadata = serde_json::json!({
        "override": { "score": score, "reason": reason, "expires_at": expires_at },
    });
    record_score(
        &mut tx,
        &agent,
        Some(previous),
        reason,
        Some(&metadata),
        actor,
    )
    .await?;

    audit::record(
        &mut tx,
        AuditEntry {
            organization_id: Some(organization_id),
            actor,
            action: "agent.trust_score_changed",
            target_type: Some("agent"),
            target_id: Some(id),
            details: serde_json::json!({
                "previous_score": previous,
                "trust_score": score,
                "reason": reason,
                "expires_at": expires_at,
            }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Some((agent, previous)))
}

/// The agent's trust-score history, newest first.
///
/// # Errors
/// The database error.
pub async fn trust_history(
    pool: &PgPool,
    organization_id: Uuid,
    agent_id: Uuid,
    page: Page,
) -> Result<Vec<TrustScoreChange>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, agent_id, trust_score, previous_score, change_reason, changed_by, metadata, \
             recorded_at \
         FROM trust_score_history WHERE organization_id = $1 AND agent_id = $2 \
         ORDER BY recorded_at DESC, id DESC LIMIT $3 OFFSET $4",
    )
    .bind(organization_id)
    .bind(agent_id)
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(pool)
    .await?)
}
