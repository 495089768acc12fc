//! Agents: CRUD, trust scores (every change recorded in `trust_score_history` in the same
//! transaction), API keys (shown once), and `verify-action`.
//!
//! Roles: anyone in the organization reads; members create and edit agents and ask for
//! verifications; managers set trust scores (at creation too), change statuses, manage keys
//! and delete agents. Revocation is terminal: no status change revives a revoked agent. An agent key
//! reads its own agent and calls its own `verify-action`, nothing else.

mod access;
mod checks;
mod keys;
mod trust;
mod verify;

use aim_store::agents::{AgentPatch, NewAgent};
use aim_store::model::{Agent, AgentStatus, Role};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{ClientMeta, Principal};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::routes::paging::{Pagination, Paging};
use crate::routes::validation::FieldErrors;
use crate::state::AppState;

use access::{visible_agent, with_last_calls};
use checks::{check_object, valid_score};

/// The score a new agent starts with unless told otherwise.
pub const DEFAULT_TRUST_SCORE: f64 = 0.5;
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_agents, create_agent))
        .routes(routes!(get_agent, update_agent, delete_agent))
        .merge(trust::router())
        .merge(keys::router())
        .merge(verify::router())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only agents in this status.
    status: Option<AgentStatus>,
    /// 1–100; 50 by default.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// 0 by default.
    #[param(minimum = 0)]
    offset: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
struct AgentList {
    agents: Vec<Agent>,
    #[serde(flatten)]
    paging: Paging,
}

/// The organization's agents, oldest first.
#[utoipa::path(get, path = "/api/v1/agents", tag = "agents", params(ListQuery),
    security(("user_token" = []), ("agent_key" = []), ("agent_key_bearer" = [])), responses(
    (status = 200, body = AgentList),
    (status = 400, body = ErrorEnvelope),
    (status = 401, body = ErrorEnvelope),
))]
async fn list_agents(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<AgentList>, ApiError> {
    let page = Pagination {
        limit: query.limit,
        offset: query.offset,
    }
    .page()?;
    if let Principal::Agent { agent_id, .. } = principal {
        // An agent's view of the list is itself.
        let mut agents: Vec<Agent> =
            aim_store::agents::get(state.db()?, principal.organization_id(), agent_id)
                .await?
                .filter(|a| query.status.is_none_or(|s| s == a.status))
                .into_iter()
                .collect();
        with_last_calls(&state, &mut agents).await?;
        let total = i64::try_from(agents.len()).unwrap_or(0);
        let agents = if page.offset > 0 { Vec::new() } else { agents };
        return Ok(Json(AgentList {
            agents,
            paging: Paging::new(total, page),
        }));
    }
    let (mut agents, total) =
        aim_store::agents::list(state.db()?, principal.organization_id(), query.status, page)
            .await?;
    with_last_calls(&state, &mut agents).await?;
    Ok(Json(AgentList {
        agents,
        paging: Paging::new(total, page),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateAgent {
    #[schema(max_length = 200, pattern = "{not_blank}")]
    name: String,
    #[serde(default)]
    #[schema(max_length = 2000)]
    description: String,
    /// Free-form kind, e.g. `ai_agent`, `mcp_server`; `ai_agent` by default.
    #[schema(max_length = 100, pattern = "{not_blank}")]
    agent_type: Option<String>,
    /// 0.0–1.0; 0.5 by default. Giving one needs the manager role.
    #[schema(minimum = 0.0, maximum = 1.0)]
    trust_score: Option<f64>,
    /// A JSON object of at most 16 KiB (serialized), with no U+0000 in any key or string.
    #[schema(value_type = Option<Object>)]
    metadata: Option<serde_json::Value>,
}

/// Registers an agent; it starts `pending`, and its initial trust score is recorded in its
/// history.
#[utoipa::path(post, path = "/api/v1/agents", tag = "agents", request_body = CreateAgent,
    security(("user_token" = [])), responses(
    (status = 201, body = Agent),
    (status = 403, body = ErrorEnvelope),
    (status = 422, body = ErrorEnvelope),
))]
async fn create_agent(
    State(state): State<AppState>,
    principal: Principal,
    meta: ClientMeta,
    ApiJson(body): ApiJson<CreateAgent>,
) -> Result<(StatusCode, Json<Agent>), ApiError> {
    principal.user_with(Role::Member)?;
    if body.trust_score.is_some() {
        // The same right as `PUT /agents/{id}/trust-score`.
        principal.user_with(Role::Manager)?;
    }
    let mut errors = FieldErrors::default();
    errors.text(&body.name, "name", 200);
    errors.check(
        body.description.chars().count() <= 2000,
        "description",
        "must be at most 2000 characters",
    );
    if let Some(kind) = &body.agent_type {
        errors.text(kind, "agent_type", 100);
    }
    let trust_score = body.trust_score.unwrap_or(DEFAULT_TRUST_SCORE);
    errors.check(
        valid_score(trust_score),
        "trust_score",
        "must be between 0.0 and 1.0",
    );
    check_object(&mut errors, "metadata", body.metadata.as_ref());
    errors.finish()?;
    let agent = aim_store::agents::create(
        state.db()?,
        principal.organization_id(),
        NewAgent {
            name: body.name.trim().to_owned(),
            description: body.description,
            agent_type: body
                .agent_type
                .map_or_else(|| "ai_agent".to_owned(), |t| t.trim().to_owned()),
            trust_score,
            metadata: body.metadata.unwrap_or_else(|| serde_json::json!({})),
        },
        &principal.actor(&meta),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(agent)))
}

/// One agent.
#[utoipa::path(get, path = "/api/v1/agents/{id}", tag = "agents", params(("id" = Uuid, Path)),
    security(("user_token" = []), ("agent_key" = []), ("agent_key_bearer" = [])), responses(
    (status = 200, body = Agent),
    (status = 404, body = ErrorEnvelope),
))]
async fn get_agent(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Agent>, ApiError> {
    let mut agent = visible_agent(&state, &principal, id).await?;
    with_last_calls(&state, std::slice::from_mut(&mut agent)).await?;
    Ok(Json(agent))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateAgent {
    #[schema(max_length = 200, pattern = "{not_blank}")]
    name: Option<String>,
    #[schema(max_length = 2000)]
    description: Option<String>,
    #[schema(max_length = 100, pattern = "{not_blank}")]
    agent_type: Option<String>,
    /// Needs the manager role; a revoked agent's status cannot change (409 `agent_revoked`).
    status: Option<AgentStatus>,
    /// A JSON object of at most 16 KiB (serialized), with no U+0000 in any key or string.
    #[schema(value_type = Option<Object>)]
    metadata: Option<serde_json::Value>,
}

/// Changes an agent's fields; absent fields stay as they are. Trust scores change through
/// `PUT /agents/{id}/trust-score`.
#[utoipa::path(patch, path = "/api/v1/agents/{id}", tag = "agents", params(("id" = Uuid, Path)),
    request_body = UpdateAgent, security(("user_token" = [])), responses(
    (status = 200, body = Agent),
    (status = 403, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope),
    (status = 409, body = ErrorEnvelope, description = "`agent_revoked`: a status change of a revoked agent"),
    (status = 422, body = ErrorEnvelope),
))]
async fn update_agent(
    State(state): State<AppState>,
    principal: Principal,
    meta: ClientMeta,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<UpdateAgent>,
) -> Result<Json<Agent>, ApiError> {
    principal.user_with(Role::Member)?;
    if body.status.is_some() {
        // The same right as revoking a key: a status decides whether the agent's keys work.
        principal.user_with(Role::Manager)?;
    }
    let mut errors = FieldErrors::default();
    if let Some(name) = &body.name {
        errors.text(name, "name", 200);
    }
    if let Some(description) = &body.description {
        errors.check(
            description.chars().count() <= 2000,
            "description",
            "must be at most 2000 characters",
        );
    }
    if let Some(kind) = &body.agent_type {
        errors.text(kind, "agent_type", 100);
    }
    check_object(&mut errors, "metadata", body.metadata.as_ref());
    errors.finish()?;
    let status_changed = body.status.is_some();
    let mut agent = aim_store::agents::update(
        state.db()?,
        principal.organization_id(),
        id,
        AgentPatch {
            name: body.name.map(|n| n.trim().to_owned()),
            description: body.description,
            agent_type: body.agent_type.map(|t| t.trim().to_owned()),
            status: body.status,
            metadata: body.metadata,
        },
        principal.user_with(Role::Admin).is_ok(),
        &principal.actor(&meta),
    )
    .await?
    .ok_or(ApiError::NotFound)?;
    if status_changed {
        // A revoked agent's keys must stop working here at once.
        state.key_cache().evict_agent(id);
    }
    with_last_calls(&state, std::slice::from_mut(&mut agent)).await?;
    Ok(Json(agent))
}

/// Deletes an agent: it disappears from the API and its keys are revoked; its history and
/// analytics are kept.
#[utoipa::path(delete, path = "/api/v1/agents/{id}", tag = "agents", params(("id" = Uuid, Path)),
    security(("user_token" = [])), responses(
    (status = 204, description = "deleted"),
    (status = 403, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope),
))]
async fn delete_agent(
    State(state): State<AppState>,
    principal: Principal,
    meta: ClientMeta,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    principal.user_with(Role::Manager)?;
    let hashes = aim_store::agents::delete(
        state.db()?,
        principal.organization_id(),
        id,
        &principal.actor(&meta),
    )
    .await?
    .ok_or(ApiError::NotFound)?;
    for hash in hashes {
        state.key_cache().evict(&hash);
    }
    Ok(StatusCode::NO_CONTENT)
}
