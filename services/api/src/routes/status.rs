//! `GET /api/v1/status`: what an operator or a deployment check reads first. It always answers
//! 200 while the process runs; the body says what is degraded.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::health::DB_PROBE_TIMEOUT;
use crate::state::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/v1/status", get(status))
}

#[derive(Debug, Serialize)]
struct Status {
    status: &'static str,
    environment: &'static str,
    version: &'static str,
    uptime_seconds: u64,
    services: Services,
}

#[derive(Debug, Serialize)]
struct Services {
    database: &'static str,
}

async fn status(State(state): State<AppState>) -> Json<Status> {
    let database_ok = match aim_store::ping(&state.db, DB_PROBE_TIMEOUT).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "status: database unavailable");
            false
        }
    };
    Json(Status {
        status: if database_ok {
            "operational"
        } else {
            "degraded"
        },
        environment: state.environment().as_str(),
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: state.uptime().as_secs(),
        services: Services {
            database: if database_ok {
                "healthy"
            } else {
                "unavailable"
            },
        },
    })
}
