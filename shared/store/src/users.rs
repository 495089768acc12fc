//! Organizations and their users: bootstrap, login look-ups, administration.

use sqlx::PgPool;
use uuid::Uuid;

use crate::StoreError;
use crate::audit::{self, AuditEntry};
use crate::error::conflict_on_unique;
use crate::model::{Actor, Organization, Page, Role, User, UserCredentials};

const USER_COLUMNS: &str =
    "id, organization_id, email, name, role, is_active, last_login_at, created_at";

/// A user to create; the password is already hashed.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub email: &'a str,
    pub name: &'a str,
    pub role: Role,
    pub password_hash: &'a str,
}

/// Whether any user exists at all: bootstrap runs only on an empty installation.
///
/// # Errors
/// The database error.
pub async fn any_user_exists(pool: &PgPool) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users)")
        .fetch_one(pool)
        .await?)
}

/// Creates an organization and its first admin in one transaction.
///
/// # Errors
/// [`StoreError::Conflict`] when the email is taken; the database error.
pub async fn create_organization_with_admin(
    pool: &PgPool,
    organization_name: &str,
    admin: NewUser<'_>,
) -> Result<(Organization, User), StoreError> {
    let mut tx = pool.begin().await?;
    let organization: Organization = sqlx::query_as(
        "INSERT INTO organizations (id, name) VALUES ($1, $2) RETURNING id, name, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(organization_name)
    .fetch_one(&mut *tx)
    .await?;
    let user = insert_user(&mut tx, organization.id, &admin).await?;
    audit::record(
        &mut tx,
        AuditEntry {
            organization_id: Some(organization.id),
            actor: &Actor::default(),
            action: "organization.created",
            target_type: Some("organization"),
            target_id: Some(organization.id),
            details: serde_json::json!({ "name": organization_name, "admin": user.id }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok((organization, user))
}

async fn insert_user(
    conn: &mut sqlx::PgConnection,
    organization_id: Uuid,
    user: &NewUser<'_>,
) -> Result<User, StoreError> {
    sqlx::query_as(&format!(
        "INSERT INTO users (id, organization_id, email, name, role, password_hash) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {USER_COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(organization_id)
    .bind(user.email)
    .bind(user.name)
    .bind(user.role)
    .bind(user.password_hash)
    .fetch_one(conn)
    .await
    .map_err(conflict_on_unique("a user with this email"))
}

/// Creates a user in `organization_id`, audited.
///
/// # Errors
/// [`StoreError::Conflict`] when the email is taken; the database error.
pub async fn create(
    pool: &PgPool,
    organization_id: Uuid,
    user: NewUser<'_>,
    actor: &Actor,
) -> Result<User, StoreError> {
    let mut tx = pool.begin().await?;
    let created = insert_user(&mut tx, organization_id, &user).await?;
    audit::record(
        &mut tx,
        AuditEntry {
            organization_id: Some(organization_id),
            actor,
            action: "user.created",
            target_type: Some("user"),
            target_id: Some(created.id),
            details: serde_json::json!({ "email": created.email, "role": created.role }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(created)
}

/// The credentials for a login attempt; the email is matched case-insensitively.
///
/// # Errors
/// The database error.
pub async fn credentials_by_email(
    pool: &PgPool,
    email: &str,
) -> Result<Option<UserCredentials>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, organization_id, role, is_active, password_hash FROM users \
         WHERE lower(email) = lower($1)",
    )
    .bind(email)
    .fetch_optional(pool)
    .await?)
}

/// # Errors
/// The database error.
pub async fn get(
    pool: &PgPool,
    organization_id: Uuid,
    id: Uuid,
) -> Result<Option<User>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE organization_id = $1 AND id = $2"
    ))
    .bind(organization_id)
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// The user's current role when the user exists and is active and the token's session has not
/// ended; what every user request is authorised against, so a deactivation, a role change or a
/// logout takes effect at the next request.
///
/// # Errors
/// The database error.
pub async fn active_role(
    pool: &PgPool,
    organization_id: Uuid,
    id: Uuid,
    session_id: Uuid,
) -> Result<Option<Role>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT u.role FROM users u JOIN sessions s ON s.user_id = u.id \
         WHERE u.organization_id = $1 AND u.id = $2 AND u.is_active \
           AND s.id = $3 AND s.revoked_at IS NULL",
    )
    .bind(organization_id)
    .bind(id)
    .bind(session_id)
    .fetch_optional(pool)
    .await?)
}

/// # Errors
/// The database error.
pub async fn list(
    pool: &PgPool,
    organization_id: Uuid,
    page: Page,
) -> Result<(Vec<User>, i64), StoreError> {
    let users = sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE organization_id = $1 \
         ORDER BY created_at, id LIMIT $2 OFFSET $3"
    ))
    .bind(organization_id)
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar("SELECT count(*) FROM users WHERE organization_id = $1")
        .bind(organization_id)
        .fetch_one(pool)
        .await?;
    Ok((users, total))
}

/// Activates or deactivates a user (audited) and, on deactivation, revokes their sessions.
///
/// # Errors
/// The database error.
pub async fn set_active(
    pool: &PgPool,
    organization_id: Uuid,
    id: Uuid,
    active: bool,
    actor: &Actor,
) -> Result<Option<User>, StoreError> {
    let mut tx = pool.begin().await?;
    let user: Option<User> = sqlx::query_as(&format!(
        "UPDATE users SET is_active = $3, updated_at = now() \
         WHERE organization_id = $1 AND id = $2 RETURNING {USER_COLUMNS}"
    ))
    .bind(organization_id)
    .bind(id)
    .bind(active)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(user) = user else {
        return Ok(None);
    };
    if !active {
        crate::sessions::end_all(&mut tx, id, crate::sessions::EndReason::Deactivated).await?;
    }
    audit::record(
        &mut tx,
        AuditEntry {
            organization_id: Some(organization_id),
            actor,
            action: if active {
                "user.activated"
            } else {
                "user.deactivated"
            },
            target_type: Some("user"),
            target_id: Some(id),
            details: serde_json::json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Some(user))
}

/// Records a login attempt in the audit trail and, on success, the user's last login.
///
/// # Errors
/// The database error.
pub async fn record_login(
    pool: &PgPool,
    user: Option<(Uuid, Uuid)>,
    success: bool,
    email: &str,
    actor: &Actor,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    if let (Some((_, user_id)), true) = (user, success) {
        sqlx::query("UPDATE users SET last_login_at = now() WHERE id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
    }
    audit::record(
        &mut tx,
        AuditEntry {
            organization_id: user.map(|(org, _)| org),
            actor,
            action: if success {
                "auth.login_succeeded"
            } else {
                "auth.login_failed"
            },
            target_type: Some("user"),
            target_id: user.map(|(_, id)| id),
            // The address the attempt named, so failures against unknown addresses are visible;
            // never the password.
            details: serde_json::json!({ "email": email }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
