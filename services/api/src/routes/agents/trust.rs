//! An agent's trust score: computed by the service (`crate::trust`), explained factor by
//! factor, overridden by a manager (recorded in `trust_score_history` in the same transaction),
//! and its history.

use aim_store::model::{Agent, AgentStatus, Role, TrustScoreChange};
use aim_trust::{Assessment, TrustPolicy};
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{ClientMeta, Principal};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::routes::paging::Pagination;
use crate::routes::validation::FieldErrors;
use crate::state::AppState;

use super::access::{visible_agent, with_last_calls};
use super::checks::valid_score;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(set_trust_score, trust_score))
        .routes(routes!(trust_history))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SetTrustScore {
    /// 0.0–1.0.
    #[schema(minimum = 0.0, maximum = 1.0)]
    trust_score: f64,
    /// Why; recorded in the history.
    #[schema(max_length = 500, pattern = "{not_blank}")]
    reason: String,
    /// Until when the override holds the score; omitted or `null`, until the next override.
    /// Must be in the future.
    expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
struct TrustScoreChanged {
    agent: Agent,
    previous_score: f64,
    trust_score: f64,
}

/// Overrides an agent's trust score: the score is held at this value (the service's
/// recomputation keeps it) until `expires_at`, then computed again. The change, the previous
/// score, the reason, the override and who made it are recorded in `trust_score_history` in the
/// same transaction.
#[utoipa::path(put, path = "/api/v1/agents/{id}/trust-score", tag = "agents", params(("id" = Uuid, Path)),
    request_body = SetTrustScore, security(("user_token" = [])), responses(
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
    errors.text(&body.reason, "reason", 500);
    if let Some(at) = body.expires_at {
        errors.check(at > Utc::now(), "expires_at", "must be in the future");
    }
    errors.finish()?;
    let (mut agent, previous_score) = aim_store::agents::set_trust_score(
        state.db()?,
        principal.organization_id(),
        id,
        body.trust_score,
        body.reason.trim(),
        body.expires_at,
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
    params(("id" = Uuid, Path), Pagination), security(("user_token" = []), ("agent_key" = []), ("agent_key_bearer" = [])), responses(
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
struct TrustScoreView {
    agent_id: Uuid,
    status: AgentStatus,
    /// The stored score: what `verify-action` and the agents list use.
    trust_score: f64,
    /// The score computed now from the factors, with each factor's value, weight and inputs,
    /// the override in force and when it was computed. Equal to the stored score, within the
    /// policy's step, after every recomputation.
    assessment: Assessment,
    /// The policy in force for the agent's organization.
    policy: TrustPolicy,
    /// The last recorded change, if any.
    last_change: Option<TrustScoreChange>,
}

/// An agent's trust score, explained: the factors it is computed from (each with its value,
/// weight and what it counted), the override in force, the organization's policy and the last
/// change. Computed on request from the rollups and identity tables; written nowhere.
#[utoipa::path(get, path = "/api/v1/agents/{id}/trust-score", tag = "agents", params(("id" = Uuid, Path)),
    security(("user_token" = []), ("agent_key" = []), ("agent_key_bearer" = [])), responses(
    (status = 200, body = TrustScoreView),
    (status = 404, body = ErrorEnvelope),
))]
async fn trust_score(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<TrustScoreView>, ApiError> {
    let agent = visible_agent(&state, &principal, id).await?;
    let db = state.db()?;
    let policy = aim_store::trust::policy(db, agent.organization_id).await?;
    let plan = crate::trust::dry_run(
        db,
        agent.organization_id,
        Some(agent.id),
        &policy,
        Utc::now(),
    )
    .await?
    .into_iter()
    .next();
    // Deleted meanwhile: gone, as `visible_agent` would now say.
    let assessment = plan.ok_or(ApiError::NotFound)?.assessment;
    let last_change = aim_store::agents::trust_history(
        db,
        agent.organization_id,
        agent.id,
        aim_store::model::Page {
            limit: 1,
            offset: 0,
        },
    )
    .await?
    .into_iter()
    .next();
    Ok(Json(TrustScoreView {
        agent_id: agent.id,
        status: agent.status,
        trust_score: agent.trust_score,
        assessment,
        policy,
        last_change,
    }))
}
