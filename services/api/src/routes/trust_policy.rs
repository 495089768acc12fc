//! `GET/PUT /api/v1/trust-policy`: the organization's trust policy (admin only), and
//! `POST /api/v1/trust-policy/dry-run`: what a policy would do to every agent, written nowhere.

use aim_store::model::Role;
use aim_trust::TrustPolicy;
use axum::Json;
use axum::extract::State;
use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{ClientMeta, Principal};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::ApiJson;
use crate::routes::validation::FieldErrors;
use crate::state::AppState;
use crate::trust::Plan;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_policy, put_policy))
        .routes(routes!(dry_run))
}

fn validate(policy: &TrustPolicy) -> Result<(), ApiError> {
    let mut errors = FieldErrors::default();
    for invalid in policy.validate() {
        errors.check(false, &invalid.field, &invalid.message);
    }
    errors.finish()
}

/// The organization's trust policy: the defaults until an admin stores one.
#[utoipa::path(get, path = "/api/v1/trust-policy", tag = "trust", security(("user_token" = [])), responses(
    (status = 200, body = TrustPolicy),
))]
async fn get_policy(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<TrustPolicy>, ApiError> {
    principal.user_with(Role::Admin)?;
    Ok(Json(
        aim_store::trust::policy(state.db()?, principal.organization_id()).await?,
    ))
}

/// Replaces the organization's trust policy. Fields left out take their defaults. Besides
/// each field's range: at least one weight above 0, `volume_ratio_max` above
/// `volume_ratio_warn`, and `*` only at the end of a denied action. Applies from the next
/// recomputation (scheduled, or after an agent's verification); try it first with the dry run.
#[utoipa::path(put, path = "/api/v1/trust-policy", tag = "trust", request_body = TrustPolicy,
    security(("user_token" = [])), responses(
    (status = 200, body = TrustPolicy),
    (status = 422, body = ErrorEnvelope),
))]
async fn put_policy(
    State(state): State<AppState>,
    principal: Principal,
    meta: ClientMeta,
    ApiJson(policy): ApiJson<TrustPolicy>,
) -> Result<Json<TrustPolicy>, ApiError> {
    principal.user_with(Role::Admin)?;
    validate(&policy)?;
    aim_store::trust::set_policy(
        state.db()?,
        principal.organization_id(),
        &policy,
        &principal.actor(&meta),
    )
    .await?;
    Ok(Json(policy))
}

#[derive(Debug, Serialize, ToSchema)]
struct DryRun {
    /// Every pending, verified and suspended agent: its score and status now and under the
    /// policy, the factors, and the alerts it would raise.
    agents: Vec<Plan>,
    /// How many would have their score written, their status changed, and an alert condition.
    scores_written: usize,
    status_changes: usize,
    with_alerts: usize,
}

/// What the given policy would do to each agent of the organization now: its score, whether
/// it would be written, its status and alert conditions. Nothing is written; the stored policy
/// is unchanged.
#[utoipa::path(post, path = "/api/v1/trust-policy/dry-run", tag = "trust", request_body = TrustPolicy,
    security(("user_token" = [])), responses(
    (status = 200, body = DryRun),
    (status = 422, body = ErrorEnvelope),
))]
async fn dry_run(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(policy): ApiJson<TrustPolicy>,
) -> Result<Json<DryRun>, ApiError> {
    principal.user_with(Role::Admin)?;
    validate(&policy)?;
    let agents = crate::trust::dry_run(
        state.db()?,
        principal.organization_id(),
        None,
        &policy,
        Utc::now(),
    )
    .await?;
    Ok(Json(DryRun {
        scores_written: agents.iter().filter(|a| a.writes_score).count(),
        status_changes: agents.iter().filter(|a| a.new_status.is_some()).count(),
        with_alerts: agents.iter().filter(|a| !a.alerts.is_empty()).count(),
        agents,
    }))
}
