//! The organization at a glance (`/analytics/dashboard`, the overview the web dashboard's first
//! page shows): agents, users, verifications and unresolved alerts counted, and the last day's
//! traffic.

use aim_store::analytics::Rollup;
use aim_store::model::Role;
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{ApiError, ErrorEnvelope};
use crate::state::AppState;

use super::query::{Period, percent, round2, total};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(overview))
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Dashboard)]
struct Overview {
    organization_id: Uuid,
    total_agents: i64,
    verified_agents: i64,
    pending_agents: i64,
    /// Percent of agents that are verified.
    verification_rate: f64,
    avg_trust_score: f64,
    total_users: i64,
    active_users: i64,
    total_verifications: i64,
    successful_verifications: i64,
    failed_verifications: i64,
    /// Milliseconds, over the last 24 hours.
    avg_response_time: f64,
    api_calls_24h: i64,
    /// Percent, over the last 24 hours.
    error_rate_24h: f64,
    /// Alerts of the trust policy not yet acknowledged.
    open_alerts: i64,
    /// Alerts acknowledged but not resolved.
    acknowledged_alerts: i64,
}

/// The organization at a glance.
#[utoipa::path(get, path = "/api/v1/analytics/dashboard", tag = "analytics", operation_id = "dashboard",
    security(("user_token" = [])), responses(
    (status = 200, body = Overview),
    (status = 403, body = ErrorEnvelope),
))]
async fn overview(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Overview>, ApiError> {
    principal.user_with(Role::Viewer)?;
    let organization = principal.organization_id();
    let counts = aim_store::analytics::organization_counts(state.db()?, organization).await?;
    let (open_alerts, acknowledged_alerts) =
        aim_store::alerts::counts(state.db()?, organization).await?;
    let rows = Period::parse(None, None, "day")?
        .rows(&state, organization, Rollup::Organization)
        .await?;
    let day = total(&rows);
    Ok(Json(Overview {
        organization_id: organization,
        total_agents: counts.total_agents,
        verified_agents: counts.verified_agents,
        pending_agents: counts.pending_agents,
        verification_rate: percent(counts.verified_agents, counts.total_agents),
        avg_trust_score: round2(counts.avg_trust_score.unwrap_or(0.0) * 100.0) / 100.0,
        total_users: counts.total_users,
        active_users: counts.active_users,
        total_verifications: counts.total_verifications,
        successful_verifications: counts.successful_verifications,
        failed_verifications: counts.failed_verifications,
        avg_response_time: round2(day.avg_ms()),
        api_calls_24h: day.calls,
        error_rate_24h: percent(day.errors, day.calls),
        open_alerts,
        acknowledged_alerts,
    }))
}
