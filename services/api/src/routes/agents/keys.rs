//! An agent's API keys: listed, created (the secret shown once), revoked.

use aim_store::api_keys::NewApiKey;
use aim_store::model::{ApiKey, Role};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{ClientMeta, Principal, api_keys};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::{ApiJson, ApiPath};
use crate::routes::validation::FieldErrors;
use crate::state::AppState;

use super::access::visible_agent;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
}

#[derive(Debug, Serialize, ToSchema)]
struct KeyList {
    api_keys: Vec<ApiKey>,
}

/// An agent's keys (display prefix only), newest first, revoked ones included.
#[utoipa::path(get, path = "/api/v1/agents/{id}/api-keys", tag = "agents", params(("id" = Uuid, Path)),
    security(("user_token" = [])), responses(
    (status = 200, body = KeyList),
    (status = 403, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope),
))]
async fn list_keys(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<KeyList>, ApiError> {
    principal.user_with(Role::Viewer)?;
    let agent = visible_agent(&state, &principal, id).await?;
    let api_keys = aim_store::api_keys::list(state.db()?, agent.organization_id, agent.id).await?;
    Ok(Json(KeyList { api_keys }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    /// A label for people.
    #[serde(default)]
    #[schema(max_length = 200)]
    name: String,
    /// When the key stops working; never by default. Must be in the future.
    expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
struct CreatedKey {
    /// The key itself. It is shown this once and cannot be recovered.
    api_key: String,
    #[serde(flatten)]
    key: ApiKey,
}

/// Creates a key for the agent and returns it once. Authenticate with
/// `Authorization: Bearer aim_…` or `X-API-Key: aim_…`. `expires_at`, when given, must be in
/// the future (422 otherwise).
#[utoipa::path(post, path = "/api/v1/agents/{id}/api-keys", tag = "agents", params(("id" = Uuid, Path)),
    request_body = CreateKey, security(("user_token" = [])), responses(
    (status = 201, body = CreatedKey),
    (status = 403, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope),
    (status = 422, body = ErrorEnvelope),
))]
async fn create_key(
    State(state): State<AppState>,
    principal: Principal,
    meta: ClientMeta,
    ApiPath(id): ApiPath<Uuid>,
    body: Option<ApiJson<CreateKey>>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    principal.user_with(Role::Manager)?;
    let ApiJson(body) = body.unwrap_or_else(|| ApiJson(CreateKey::default()));
    let mut errors = FieldErrors::default();
    errors.check(
        body.name.chars().count() <= 200,
        "name",
        "must be at most 200 characters",
    );
    errors.check(
        body.expires_at.is_none_or(|at| at > Utc::now()),
        "expires_at",
        "must be in the future",
    );
    errors.finish()?;
    let generated = api_keys::generate().map_err(|e| ApiError::Internal(e.into()))?;
    let key = aim_store::api_keys::create(
        state.db()?,
        principal.organization_id(),
        NewApiKey {
            agent_id: id,
            name: body.name.trim(),
            key_hash: &generated.hash,
            prefix: &generated.display_prefix,
            expires_at: body.expires_at,
        },
        &principal.actor(&meta),
    )
    .await?
    .ok_or(ApiError::NotFound)?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            api_key: generated.key,
            key,
        }),
    ))
}

/// Revokes a key. It stops working on this replica at once and on others within
/// `AIM_API_KEY_CACHE_TTL_S`.
#[utoipa::path(delete, path = "/api/v1/agents/{id}/api-keys/{key_id}", tag = "agents",
    params(("id" = Uuid, Path), ("key_id" = Uuid, Path)), security(("user_token" = [])), responses(
    (status = 204, description = "revoked"),
    (status = 403, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope, description = "no such live key"),
))]
async fn revoke_key(
    State(state): State<AppState>,
    principal: Principal,
    meta: ClientMeta,
    ApiPath((id, key_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    principal.user_with(Role::Manager)?;
    let hash = aim_store::api_keys::revoke(
        state.db()?,
        principal.organization_id(),
        id,
        key_id,
        &principal.actor(&meta),
    )
    .await?
    .ok_or(ApiError::NotFound)?;
    state.key_cache().evict(&hash);
    Ok(StatusCode::NO_CONTENT)
}
