//! Login, token refresh, logout, and the caller's own account.
//!
//! Unknown email, wrong password and deactivated user all answer the same 401 after the same
//! amount of work. Attempts are rate limited per client address and per email.

use aim_store::model::{Actor, ActorKind, Role, User};
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use aim_store::sessions::{NewRefreshToken, Rotation};

use crate::auth::jwt::TokenType;
use crate::auth::password::MAX_PASSWORD_LEN;
use crate::auth::{ClientMeta, Principal};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::ApiJson;
use crate::routes::validation::FieldErrors;
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    #[schema(max_length = 320, pattern = "{not_blank}")]
    email: String,
    #[schema(value_type = String, format = Password, min_length = 1, max_length = 1024)]
    password: SecretString,
}

#[derive(Debug, Serialize, ToSchema)]
struct LoginResponse {
    token: String,
    /// The same value as `token`.
    access_token: String,
    token_type: &'static str,
    expires_at: DateTime<Utc>,
    refresh_token: String,
    refresh_expires_at: DateTime<Utc>,
    user: UserSummary,
}

#[derive(Debug, Serialize, ToSchema)]
struct UserSummary {
    id: Uuid,
    email: String,
    name: String,
    role: Role,
    organization_id: Uuid,
}

impl From<User> for UserSummary {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            email: u.email,
            name: u.name,
            role: u.role,
            organization_id: u.organization_id,
        }
    }
}

/// Exchanges an email and password for an access token and a refresh token.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest, responses(
    (status = 200, body = LoginResponse),
    (status = 401, body = ErrorEnvelope, description = "unknown email, wrong password or deactivated user"),
    (status = 422, body = ErrorEnvelope),
    (status = 429, body = ErrorEnvelope, description = "too many attempts; see Retry-After"),
))]
async fn login(
    State(state): State<AppState>,
    meta: ClientMeta,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    use secrecy::ExposeSecret;
    let mut errors = FieldErrors::default();
    errors.text(&body.email, "email", 320);
    let password_len = body.password.expose_secret().chars().count();
    errors.check(
        (1..=MAX_PASSWORD_LEN).contains(&password_len),
        "password",
        "must be 1 to 1024 characters",
    );
    errors.finish()?;
    let email = body.email.trim();
    state.rate_limits().check_login(meta.ip, email)?;

    let credentials = aim_store::users::credentials_by_email(state.db()?, email).await?;
    let matched = state
        .passwords()
        .verify(
            &body.password,
            credentials.as_ref().map(|c| c.password_hash.as_str()),
        )
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let anonymous = Actor {
        kind: ActorKind::Anonymous,
        id: None,
        ip: meta.ip.map(|ip| ip.to_string()),
        request_id: meta.request_id.clone(),
    };
    let user = match credentials {
        Some(c) if matched && c.is_active => c,
        other => {
            let who = other.map(|c| (c.organization_id, c.id));
            aim_store::users::record_login(state.db()?, who, false, email, &anonymous).await?;
            return Err(ApiError::Unauthorized);
        }
    };
    let actor = Actor {
        kind: ActorKind::User,
        id: Some(user.id),
        ..anonymous
    };
    aim_store::users::record_login(
        state.db()?,
        Some((user.organization_id, user.id)),
        true,
        email,
        &actor,
    )
    .await?;
    let profile = aim_store::users::get(state.db()?, user.organization_id, user.id)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let session = Uuid::now_v7();
    let pair = Pair::sign(&state, &profile, session)?;
    aim_store::sessions::start(
        state.db()?,
        session,
        profile.organization_id,
        profile.id,
        pair.stored_refresh(),
    )
    .await?;
    Ok(Json(pair.into_response(profile)))
}

struct Pair {
    access: crate::auth::jwt::Issued,
    refresh: crate::auth::jwt::Issued,
}

impl Pair {
    /// Signs a new pair for a session; nothing is stored yet.
    fn sign(state: &AppState, user: &User, session: Uuid) -> Result<Self, ApiError> {
        let tokens = state.tokens();
        let issue = |typ| {
            tokens
                .issue(typ, user.id, user.organization_id, user.role, session)
                .map_err(|e| ApiError::Internal(e.into()))
        };
        Ok(Self {
            access: issue(TokenType::Access)?,
            refresh: issue(TokenType::Refresh)?,
        })
    }

    fn stored_refresh(&self) -> NewRefreshToken {
        NewRefreshToken {
            id: self.refresh.jti,
            expires_at: self.refresh.expires_at,
        }
    }

    fn into_response(self, user: User) -> LoginResponse {
        LoginResponse {
            token: self.access.token.clone(),
            access_token: self.access.token,
            token_type: "Bearer",
            expires_at: self.access.expires_at,
            refresh_token: self.refresh.token,
            refresh_expires_at: self.refresh.expires_at,
            user: user.into(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RefreshRequest {
    refresh_token: String,
}

/// Exchanges a refresh token for a new access token and a new refresh token; the old refresh
/// token is used up. Presenting a used refresh token again ends its whole session (every token
/// issued from the same login stops working): a replay means a copy leaked.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest, responses(
    (status = 200, body = LoginResponse),
    (status = 401, body = ErrorEnvelope, description = "invalid, used, revoked or expired refresh token"),
))]
async fn refresh(
    State(state): State<AppState>,
    meta: ClientMeta,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let claims = state
        .tokens()
        .verify(&body.refresh_token, TokenType::Refresh)
        .map_err(|_| ApiError::Unauthorized)?;
    let profile = aim_store::users::get(state.db()?, claims.org, claims.sub)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    // Signed before the rotation so that the new token is stored in the same transaction that
    // uses up the old one.
    let pair = Pair::sign(&state, &profile, claims.sid)?;
    let anonymous = Actor {
        kind: ActorKind::Anonymous,
        id: None,
        ip: meta.ip.map(|ip| ip.to_string()),
        request_id: meta.request_id,
    };
    match aim_store::sessions::rotate(
        state.db()?,
        claims.jti,
        claims.sid,
        pair.stored_refresh(),
        &anonymous,
    )
    .await?
    {
        Rotation::Rotated { .. } => Ok(Json(pair.into_response(profile))),
        Rotation::Reused | Rotation::Refused => Err(ApiError::Unauthorized),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LogoutRequest {
    refresh_token: String,
}

/// Ends the session the refresh token belongs to: the refresh token, and every access token
/// of that login, stop working with the next request. The refresh token must be a valid one of
/// the caller's (422 otherwise).
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body = LogoutRequest,
    security(("user_token" = [])), responses(
    (status = 204, description = "revoked (or already revoked)"),
    (status = 401, body = ErrorEnvelope),
))]
async fn logout(
    State(state): State<AppState>,
    principal: Principal,
    meta: ClientMeta,
    ApiJson(body): ApiJson<LogoutRequest>,
) -> Result<axum::http::StatusCode, ApiError> {
    let user = principal.user_with(Role::Viewer)?;
    let claims = state
        .tokens()
        .verify(&body.refresh_token, TokenType::Refresh)
        .map_err(|_| ApiError::invalid("refresh_token", "is not a valid refresh token"))?;
    if claims.sub != user {
        return Err(ApiError::invalid(
            "refresh_token",
            "belongs to another user",
        ));
    }
    aim_store::sessions::logout(
        state.db()?,
        claims.sid,
        principal.organization_id(),
        user,
        &principal.actor(&meta),
    )
    .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Me {
    User(User),
    Agent(aim_store::model::Agent),
}

/// The caller: the user behind a token, or the agent behind a key.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", security(("user_token" = []), ("agent_key" = []), ("agent_key_bearer" = [])), responses(
    (status = 200, body = Me),
    (status = 401, body = ErrorEnvelope),
))]
async fn me(State(state): State<AppState>, principal: Principal) -> Result<Json<Me>, ApiError> {
    match principal {
        Principal::User {
            user_id,
            organization_id,
            ..
        } => aim_store::users::get(state.db()?, organization_id, user_id)
            .await?
            .map(|u| Json(Me::User(u)))
            .ok_or(ApiError::Unauthorized),
        Principal::Agent {
            agent_id,
            organization_id,
            ..
        } => aim_store::agents::get(state.db()?, organization_id, agent_id)
            .await?
            .map(|a| Json(Me::Agent(a)))
            .ok_or(ApiError::Unauthorized),
    }
}
