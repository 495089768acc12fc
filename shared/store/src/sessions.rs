//! Sessions and their refresh tokens. A login starts a session (a token family); each refresh
//! uses its token once and issues the next in the same session; ending the session (logout, a
//! deactivation, or the replay of a used refresh token) ends every token it issued, access
//! tokens included, since each request checks its session ([`crate::users::active_role`]).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::StoreError;
use crate::audit::{self, AuditEntry};
use crate::model::Actor;

/// A refresh token to store: its id (the token's `jti`) and expiry.
#[derive(Debug, Clone, Copy)]
pub struct NewRefreshToken {
    pub id: Uuid,
    pub expires_at: DateTime<Utc>,
}

/// Why a session ended, as stored in `sessions.revoked_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    Logout,
    Reuse,
    Deactivated,
}

impl EndReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::Reuse => "reuse",
            Self::Deactivated => "deactivated",
        }
    }
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The token was live: it is now used, and `next` is stored in its session.
    Rotated {
        organization_id: Uuid,
        user_id: Uuid,
    },
    /// The token had been used already: its session has been ended, with every token in it.
    Reused,
    /// Unknown, expired, its session ended, or its user deactivated.
    Refused,
}

/// Starts a session with its first refresh token.
///
/// # Errors
/// The database error.
pub async fn start(
    pool: &PgPool,
    session_id: Uuid,
    organization_id: Uuid,
    user_id: Uuid,
    token: NewRefreshToken,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO sessions (id, organization_id, user_id) VALUES ($1, $2, $3)")
        .bind(session_id)
        .bind(organization_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    insert_token(&mut tx, session_id, organization_id, user_id, token).await?;
    tx.commit().await?;
    Ok(())
}

async fn insert_token(
    conn: &mut PgConnection,
    session_id: Uuid,
    organization_id: Uuid,
    user_id: Uuid,
    token: NewRefreshToken,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO refresh_tokens (id, session_id, organization_id, user_id, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token.id)
    .bind(session_id)
    .bind(organization_id)
    .bind(user_id)
    .bind(token.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Uses refresh token `id` of session `session_id` once, storing `next` in its place.
///
/// The token's row is locked, so of two refreshes racing with the same token exactly one
/// rotates; the other finds it used and, as for any replay, ends the session, the winner's new
/// tokens included (the server cannot tell a legitimate client's retry from a thief, and the
/// BCP's answer is to make both log in again). A replay is audited as `auth.refresh_reused`.
///
/// # Errors
/// The database error.
pub async fn rotate(
    pool: &PgPool,
    id: Uuid,
    session_id: Uuid,
    next: NewRefreshToken,
    actor: &Actor,
) -> Result<Rotation, StoreError> {
    let mut tx = pool.begin().await?;
    let row: Option<(Uuid, Uuid, bool, bool, bool)> = sqlx::query_as(
        "SELECT t.organization_id, t.user_id, t.used_at IS NOT NULL, \
                t.expires_at > now() AND s.revoked_at IS NULL, u.is_active \
         FROM refresh_tokens t \
         JOIN sessions s ON s.id = t.session_id \
         JOIN users u ON u.id = t.user_id \
         WHERE t.id = $1 AND t.session_id = $2 \
         FOR UPDATE OF t, s",
    )
    .bind(id)
    .bind(session_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((organization_id, user_id, used, live, active)) = row else {
        return Ok(Rotation::Refused);
    };
    if used {
        let ended = end(&mut tx, session_id, EndReason::Reuse).await?;
        if ended {
            audit::record(
                &mut tx,
                AuditEntry {
                    organization_id: Some(organization_id),
                    actor,
                    action: "auth.refresh_reused",
                    target_type: Some("user"),
                    target_id: Some(user_id),
                    details: serde_json::json!({ "session_id": session_id }),
                },
            )
            .await?;
        }
        tx.commit().await?;
        return Ok(Rotation::Reused);
    }
    if !live || !active {
        return Ok(Rotation::Refused);
    }
    sqlx::query("UPDATE refresh_tokens SET used_at = now() WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    insert_token(&mut tx, session_id, organization_id, user_id, next).await?;
    tx.commit().await?;
    Ok(Rotation::Rotated {
        organization_id,
        user_id,
    })
}

/// Ends a live session; true when it was live.
async fn end(
    conn: &mut PgConnection,
    session_id: Uuid,
    reason: EndReason,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $2 \
         WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(session_id)
    .bind(reason.as_str())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends every live session of a user (a deactivation), so that none of the tokens issued
/// before works again after a reactivation.
///
/// # Errors
/// The database error.
pub async fn end_all(
    conn: &mut PgConnection,
    user_id: Uuid,
    reason: EndReason,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $2 \
         WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .bind(reason.as_str())
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Ends one of the user's sessions (logout), audited; true when it was live. Its access tokens
/// stop working with the next request.
///
/// # Errors
/// The database error.
pub async fn logout(
    pool: &PgPool,
    session_id: Uuid,
    organization_id: Uuid,
    user_id: Uuid,
    actor: &Actor,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let owned: Option<bool> = sqlx::query_scalar(
        "SELECT revoked_at IS NULL FROM sessions WHERE id = $1 AND user_id = $2 FOR UPDATE",
    )
    .bind(session_id)
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await?;
    let was_live = match owned {
        Some(true) => end(&mut tx, session_id, EndReason::Logout).await?,
        _ => false,
    };
    audit::record(
        &mut tx,
        AuditEntry {
            organization_id: Some(organization_id),
            actor,
            action: "auth.logout",
            target_type: Some("user"),
            target_id: Some(user_id),
            details: serde_json::json!({ "session_was_live": was_live }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(was_live)
}
