//! Probes for orchestrators: `/health` says the process serves requests and touches nothing
//! else; `/health/ready` says it can do useful work, which needs the database.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorEnvelope};
use crate::state::AppState;

/// A probe must answer well inside an orchestrator's own timeout.
pub(crate) const DB_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(live))
        .routes(routes!(ready))
}

#[derive(Debug, Serialize, ToSchema)]
struct Live {
    status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
struct Ready {
    status: &'static str,
    database: &'static str,
}

/// Liveness: the process answers; touches nothing else.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, body = Live)))]
async fn live() -> Json<Live> {
    Json(Live { status: "ok" })
}

/// Readiness: 503 while the database does not answer within 2 s, and at once while the service
/// already knows it is unavailable (its database breaker is open).
#[utoipa::path(get, path = "/health/ready", tag = "operations", responses(
    (status = 200, body = Ready),
    (status = 503, body = ErrorEnvelope, description = "database unavailable"),
))]
async fn ready(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
    aim_store::ping(state.db()?, DB_PROBE_TIMEOUT)
        .await
        .map_err(|e| ApiError::Unavailable(e.into()))?;
    Ok(Json(Ready {
        status: "ready",
        database: "healthy",
    }))
}
