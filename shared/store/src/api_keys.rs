//! Agent API keys. Only a SHA-256 hash of a key and a display prefix are stored; the key itself
//! is shown once, at creation.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::StoreError;
use crate::audit::{self, AuditEntry};
use crate::error::conflict_on_unique;
use crate::model::{Actor, ApiKey, KeyOwner};

const KEY_COLUMNS: &str =
    "id, agent_id, name, prefix, created_by, expires_at, last_used_at, revoked_at, created_at";

/// A key to store: its hash, never the key.
#[derive(Debug, Clone)]
pub struct NewApiKey<'a> {
    pub agent_id: Uuid,
    pub name: &'a str,
    pub key_hash: &'a [u8],
    pub prefix: &'a str,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Stores a key for an agent of the organization; `None` when there is no such live agent.
///
/// # Errors
/// The database error.
pub async fn create(
    pool: &PgPool,
    organization_id: Uuid,
    key: NewApiKey<'_>,
    actor: &Actor,
) -> Result<Option<ApiKey>, StoreError> {
    let mut tx = pool.begin().await?;
    let created: Option<ApiKey> = sqlx::query_as(&format!(
        "INSERT INTO api_keys (id, organization_id, agent_id, name, key_hash, prefix, \
             created_by, expires_at) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8 FROM agents \
         WHERE organization_id = $2 AND id = $3 AND deleted_at IS NULL \
         RETURNING {KEY_COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(organization_id)
    .bind(key.agent_id)
    .bind(key.name)
    .bind(key.key_hash)
    .bind(key.prefix)
    .bind(actor.id)
    .bind(key.expires_at)
    .fetch_optional(&mut *tx)
    .await
    .map_err(conflict_on_unique("an identical key"))?;
    let Some(created) = created else {
        return Ok(None);
    };
    audit::record(
        &mut tx,
        AuditEntry {
            organization_id: Some(organization_id),
            actor,
            action: "api_key.created",
            target_type: Some("api_key"),
            target_id: Some(created.id),
            details: serde_json::json!({
                "agent_id": key.agent_id,
                "prefix": created.prefix,
                "expires_at": created.expires_at,
            }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Some(created))
}

/// The agent's keys, newest first, revoked ones included.
///
/// # Errors
/// The database error.
pub async fn list(
    pool: &PgPool,
    organization_id: Uuid,
    agent_id: Uuid,
) -> Result<Vec<ApiKey>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE organization_id = $1 AND agent_id = $2 \
         ORDER BY created_at DESC, id DESC"
    ))
    .bind(organization_id)
    .bind(agent_id)
    .fetch_all(pool)
    .await?)
}

/// Revokes a key; returns its hash (for the key cache) when it was live.
///
/// # Errors
/// The database error.
pub async fn revoke(
    pool: &PgPool,
    organization_id: Uuid,
    agent_id: Uuid,
    key_id: Uuid,
    actor: &Actor,
) -> Result<Option<Vec<u8>>, StoreError> {
    let mut tx = pool.begin().await?;
    let hash: Option<Vec<u8>> = sqlx::query_scalar(
        "UPDATE api_keys SET revoked_at = now() \
         WHERE organization_id = $1 AND agent_id = $2 AND id = $3 AND revoked_at IS NULL \
         RETURNING key_hash",
    )
    .bind(organization_id)
    .bind(agent_id)
    .bind(key_id)
    .fetch_optional(&mut *tx)
    .await?;
    if hash.is_some() {
        audit::record(
            &mut tx,
            AuditEntry {
                organization_id: Some(organization_id),
                actor,
                action: "api_key.revoked",
                target_type: Some("api_key"),
                target_id: Some(key_id),
                details: serde_json::json!({ "agent_id": agent_id }),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(hash)
}

/// Who a key hash belongs to, whatever the key's state; the caller judges validity.
///
/// # Errors
/// The database error.
pub async fn owner_by_hash(pool: &PgPool, key_hash: &[u8]) -> Result<Option<KeyOwner>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT k.id AS key_id, k.agent_id, k.organization_id, k.expires_at, k.revoked_at, \
                a.status AS agent_status, a.deleted_at IS NOT NULL AS agent_deleted \
         FROM api_keys k JOIN agents a ON a.id = k.agent_id \
         WHERE k.key_hash = $1",
    )
    .bind(key_hash)
    .fetch_optional(pool)
    .await?)
}

/// Records that a key was used; callers throttle this to once a minute per key.
///
/// # Errors
/// The database error.
pub async fn touch(pool: &PgPool, key_id: Uuid) -> Result<(), StoreError> {
    sqlx::query("UPDATE api_keys SET last_used_at = now() WHERE id = $1")
        .bind(key_id)
        .execute(pool)
        .await?;
    Ok(())
}
