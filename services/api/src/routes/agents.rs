//! Agents: CRUD, trust scores (every change recorded in `trust_score_history` in the same
//! transaction), API keys (shown once), and `verify-action`.
//!
//! Roles: anyone in the organization reads; members create and edit agents and ask for
//! verifications; managers change trust scores, manage keys and delete agents. An agent key
//! reads its own agent and calls its own `verify-action`, nothing else.

use aim_store::agents::{AgentPatch, NewAgent};
use aim_store::api_keys::NewApiKey;
use aim_store::model::{
    Agent, AgentStatus, ApiKey, Role, TrustScoreChange, VerificationEvent, VerificationStatus,
};
use aim_store::verifications::NewVerification;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{ClientMeta, Principal, api_keys};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::routes::{FieldErrors, Pagination, Paging};
use crate::state::AppState;

/// A verified agent needs at least this trust score for its actions to be allowed.
pub const MIN_TRUST_FOR_SUCCESS: f64 = 0.5;
/// The score a new agent starts with unless told otherwise.
pub const DEFAULT_TRUST_SCORE: f64 = 0.5;
const MAX_METADATA_BYTES: usize = 16 * 1024;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_agents, create_agent))
        .routes(routes!(get_agent, update_agent, delete_agent))
        .routes(routes!(set_trust_score))
        .routes(routes!(trust_history))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
        .routes(routes!(verify_action))
}

/// An agent of the caller's organization; agents see only themselves. Anything else is a 404,
/// exactly like an id that does not exist.
async fn visible_agent(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
) -> Result<Agent, ApiError> {
    if let Principal::Agent { agent_id, .. } = principal
        && *agent_id != id
    {
        return Err(ApiError::NotFound);
    }
    aim_store::agents::get(state.db()?, principal.organization_id(), id)
        .await?
        .ok_or(ApiError::NotFound)
}

/// Moves each agent's `last_active` (its last verification, kept in `agents`) to its last API
/// call when that is later, read from the rollups the writers keep. With analytics off the
/// rollups may not exist (a schema rolled back below them), so `last_active` stays as stored.
pub(crate) async fn with_last_calls(
    state: &AppState,
    agents: &mut [Agent],
) -> Result<(), ApiError> {
    let Some(first) = agents.first() else {
        return Ok(());
    };
    if state.pipeline().is_none() {
        return Ok(());
    }
    let ids: Vec<Uuid> = agents.iter().map(|a| a.id).collect();
    let calls = aim_store::analytics::last_calls(state.db()?, first.organization_id, &ids).await?;
    for agent in agents {
        if let Some(at) = calls.get(&agent.id) {
            agent.last_active = agent.last_active.max(Some(*at));
        }
    }
    Ok(())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only agents in this status.
    status: Option<AgentStatus>,
    limit: Option<i64>,
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
    security(("bearer" = [])), responses(
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
struct CreateAgent {
    name: String,
    #[serde(default)]
    description: String,
    /// Free-form kind, e.g. `ai_agent`, `mcp_server`.
    agent_type: Option<String>,
    /// 0.0–1.0; 0.5 by default.
    trust_score: Option<f64>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<serde_json::Value>,
}

/// `metadata` and `context`: a JSON object of bounded size.
fn check_object(errors: &mut FieldErrors, field: &str, value: Option<&serde_json::Value>) {
    if let Some(value) = value {
        errors.check(value.is_object(), field, "must be a JSON object");
        let size = serde_json::to_vec(value).map_or(usize::MAX, |v| v.len());
        errors.check(size <= MAX_METADATA_BYTES, field, "must be at most 16 KiB");
    }
}

fn valid_score(score: f64) -> bool {
    score.is_finite() && (0.0..=1.0).contains(&score)
}

/// Registers an agent; it starts `pending`, and its initial trust score is recorded in its
/// history.
#[utoipa::path(post, path = "/api/v1/agents", tag = "agents", request_body = CreateAgent,
    security(("bearer" = [])), responses(
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
    let mut errors = FieldErrors::default();
    errors.text(&body.name, "name", 1, 200);
    errors.check(
        body.description.chars().count() <= 2000,
        "description",
        "must be at most 2000 characters",
    );
    if let Some(kind) = &body.agent_type {
        errors.text(kind, "agent_type", 1, 100);
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
    security(("bearer" = [])), responses(
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
    name: Option<String>,
    description: Option<String>,
    agent_type: Option<String>,
    status: Option<AgentStatus>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<serde_json::Value>,
}

/// Changes an agent's fields; absent fields stay as they are. Trust scores change through
/// `PUT /agents/{id}/trust-score`.
#[utoipa::path(patch, path = "/api/v1/agents/{id}", tag = "agents", params(("id" = Uuid, Path)),
    request_body = UpdateAgent, security(("bearer" = [])), responses(
    (status = 200, body = Agent),
    (status = 403, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope),
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
    let mut errors = FieldErrors::default();
    if let Some(name) = &body.name {
        errors.text(name, "name", 1, 200);
    }
    if let Some(description) = &body.description {
        errors.check(
            description.chars().count() <= 2000,
            "description",
            "must be at most 2000 characters",
        );
    }
    if let Some(kind) = &body.agent_type {
        errors.text(kind, "agent_type", 1, 100);
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
    security(("bearer" = [])), responses(
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

#[derive(Debug, Deserialize, ToSchema)]
struct SetTrustScore {
    /// 0.0–1.0.
    trust_score: f64,
    /// Why; recorded in the history.
    reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct TrustScoreChanged {
    agent: Agent,
    previous_score: f64,
    trust_score: f64,
}

/// Sets an agent's trust score; the change, the previous score, the reason and who made it are
/// recorded in `trust_score_history` in the same transaction.
#[utoipa::path(put, path = "/api/v1/agents/{id}/trust-score", tag = "agents", params(("id" = Uuid, Path)),
    request_body = SetTrustScore, security(("bearer" = [])), responses(
    (status = 200, body = TrustScoreChanged),
    (status = 403, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope),
    (status = 422, body = ErrorEnvelope),
))]
async fn set_trust_score(
    State(state): State<AppState>,
    principal: Principal,
    meta: ClientMeta,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<SetTrustScore>,
) -> Result<Json<TrustScoreChanged>, ApiError> {
    principal.user_with(Role::Manager)?;
    let mut errors = FieldErrors::default();
    errors.check(
        valid_score(body.trust_score),
        "trust_score",
        "must be between 0.0 and 1.0",
    );
    errors.text(&body.reason, "reason", 1, 500);
    errors.finish()?;
    let (mut agent, previous_score) = aim_store::agents::set_trust_score(
        state.db()?,
        principal.organization_id(),
        id,
        body.trust_score,
        body.reason.trim(),
        &principal.actor(&meta),
    )
    .await?
    .ok_or(ApiError::NotFound)?;
    with_last_calls(&state, std::slice::from_mut(&mut agent)).await?;
    Ok(Json(TrustScoreChanged {
        trust_score: agent.trust_score,
        agent,
        previous_score,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
struct TrustHistory {
    history: Vec<TrustScoreChange>,
}

/// An agent's trust-score changes, newest first, the initial score included.
#[utoipa::path(get, path = "/api/v1/agents/{id}/trust-history", tag = "agents",
    params(("id" = Uuid, Path), Pagination), security(("bearer" = [])), responses(
    (status = 200, body = TrustHistory),
    (status = 404, body = ErrorEnvelope),
))]
async fn trust_history(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(pagination): ApiQuery<Pagination>,
) -> Result<Json<TrustHistory>, ApiError> {
    let page = pagination.page()?;
    let agent = visible_agent(&state, &principal, id).await?;
    let history =
        aim_store::agents::trust_history(state.db()?, agent.organization_id, agent.id, page)
            .await?;
    Ok(Json(TrustHistory { history }))
}

#[derive(Debug, Serialize, ToSchema)]
struct KeyList {
    api_keys: Vec<ApiKey>,
}

/// An agent's keys (display prefix only), newest first, revoked ones included.
#[utoipa::path(get, path = "/api/v1/agents/{id}/api-keys", tag = "agents", params(("id" = Uuid, Path)),
    security(("bearer" = [])), responses(
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
struct CreateKey {
    /// A label for people.
    #[serde(default)]
    name: String,
    /// When the key stops working; never by default.
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
/// `Authorization: Bearer aim_…` or `X-API-Key: aim_…`.
#[utoipa::path(post, path = "/api/v1/agents/{id}/api-keys", tag = "agents", params(("id" = Uuid, Path)),
    request_body = CreateKey, security(("bearer" = [])), responses(
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
    let generated = api_keys::generate().map_err(|e| ApiError::Internal(e.to_string()))?;
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
    params(("id" = Uuid, Path), ("key_id" = Uuid, Path)), security(("bearer" = [])), responses(
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

#[derive(Debug, Deserialize, ToSchema)]
struct VerifyAction {
    /// What the agent wants to do, e.g. `read:customer_records`.
    action: String,
    /// What it wants to do it to.
    resource: Option<String>,
    #[schema(value_type = Option<Object>)]
    context: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
struct Verification {
    /// True when `status` is `success`.
    allowed: bool,
    #[serde(flatten)]
    event: VerificationEvent,
}

/// The rule: a verified agent with a trust score of at least 0.5 is allowed (`success`); a
/// verified agent below it is refused (`failed`); a pending agent is `pending`; a suspended or
/// revoked agent is refused (`failed`).
pub fn decide(status: AgentStatus, trust_score: f64) -> (VerificationStatus, &'static str) {
    match status {
        AgentStatus::Verified if trust_score >= MIN_TRUST_FOR_SUCCESS => {
            (VerificationStatus::Success, "agent is verified and trusted")
        }
        AgentStatus::Verified => (VerificationStatus::Failed, "trust score is below 0.5"),
        AgentStatus::Pending => (
            VerificationStatus::Pending,
            "agent is awaiting verification",
        ),
        AgentStatus::Suspended => (VerificationStatus::Failed, "agent is suspended"),
        AgentStatus::Revoked => (VerificationStatus::Failed, "agent is revoked"),
    }
}

/// Decides whether the agent may perform an action and records the decision as a verification
/// event. Called by the agent itself (with its key) or by a member+ user of its organization.
#[utoipa::path(post, path = "/api/v1/agents/{id}/verify-action", tag = "agents", params(("id" = Uuid, Path)),
    request_body = VerifyAction, security(("bearer" = [])), responses(
    (status = 200, body = Verification),
    (status = 403, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope),
    (status = 422, body = ErrorEnvelope),
))]
async fn verify_action(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<VerifyAction>,
) -> Result<Json<Verification>, ApiError> {
    let started_at = Utc::now();
    let clock = std::time::Instant::now();
    if let Principal::User { .. } = principal {
        principal.user_with(Role::Member)?;
    }
    let mut errors = FieldErrors::default();
    errors.text(&body.action, "action", 1, 200);
    if let Some(resource) = &body.resource {
        errors.text(resource, "resource", 1, 500);
    }
    check_object(&mut errors, "context", body.context.as_ref());
    errors.finish()?;
    let agent = visible_agent(&state, &principal, id).await?;
    let (status, reason) = decide(agent.status, agent.trust_score);
    let event = aim_store::verifications::record(
        state.db()?,
        NewVerification {
            organization_id: agent.organization_id,
            agent_id: agent.id,
            action: body.action.trim().to_owned(),
            resource: body.resource.map(|r| r.trim().to_owned()),
            context: body.context,
            status,
            reason: reason.to_owned(),
            duration_ms: clock.elapsed().as_secs_f64() * 1000.0,
            started_at,
            rollups: state.pipeline().is_some(),
        },
    )
    .await?;
    Ok(Json(Verification {
        allowed: status == VerificationStatus::Success,
        event,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decision_rule_is_the_documented_one() {
        assert_eq!(
            decide(AgentStatus::Verified, 0.5).0,
            VerificationStatus::Success
        );
        assert_eq!(
            decide(AgentStatus::Verified, 0.49).0,
            VerificationStatus::Failed
        );
        assert_eq!(
            decide(AgentStatus::Pending, 1.0).0,
            VerificationStatus::Pending
        );
        assert_eq!(
            decide(AgentStatus::Suspended, 1.0).0,
            VerificationStatus::Failed
        );
        assert_eq!(
            decide(AgentStatus::Revoked, 1.0).0,
            VerificationStatus::Failed
        );
    }

    #[test]
    fn scores_outside_the_unit_interval_are_invalid() {
        assert!(valid_score(0.0) && valid_score(1.0) && valid_score(0.73));
        assert!(!valid_score(-0.01) && !valid_score(1.01) && !valid_score(f64::NAN));
    }
}
