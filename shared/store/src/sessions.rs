//! Refresh tokens: one row per issued token, consumed on use (rotation) and revoked by logout.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::StoreError;
use crate::audit::{self, AuditEntry};
use crate::model::Actor;

/// # Errors
/// The database error.
pub async fn create(
    pool: &PgPool,
    id: Uuid,
    organization_id: Uuid,
    user_id: Uuid,
    expires_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO refresh_tokens (id, organization_id, user_id, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(organization_id)
    .bind(user_id)
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// Consumes a live refresh token, returning its user when the token was valid, unused, and its
/// user is still active. A token can be consumed once, so a stolen copy used after the owner's
/// refresh fails.
///
/// # Errors
/// The database error.
pub async fn consume(pool: &PgPool, id: Uuid) -> Result<Option<(Uuid, Uuid)>, StoreError> {
    Ok(sqlx::query_as(
        "UPDATE refresh_tokens t SET revoked_at = now() FROM users u \
         WHERE t.id = $1 AND t.revoked_at IS NULL AND t.expires_at > now() \
           AND u.id = t.user_id AND u.is_active \
         RETURNING t.organization_id, t.user_id",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// Revokes one of the user's refresh tokens (logout), audited; true when it was live.
///
/// # Errors
/// The database error.
pub async fn revoke(
    pool: &PgPool,
    id: Uuid,
    organization_id: Uuid,
    user_id: Uuid,
    actor: &Actor,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now() \
         WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
    )
    .bind(id)
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        AuditEntry {
            organization_id: Some(organization_id),
            actor,
            action: "auth.logout",
            target_type: Some("user"),
            target_id: Some(user_id),
            details: serde_json::json!({ "session_was_live": done.rows_affected() == 1 }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}
