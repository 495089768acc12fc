//! Probes for orchestrators: `/health` says the process serves requests and touches nothing
//! else; `/health/ready` says it can do useful work, which needs the database.

use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::AppState;

/// A probe must answer well inside an orchestrator's own timeout.
pub(crate) const DB_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(live))
        .route("/health/ready", get(ready))
}

async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    aim_store::ping(&state.db, DB_PROBE_TIMEOUT)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(Json(json!({ "status": "ready", "database": "healthy" })))
}
