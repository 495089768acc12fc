//! `GET /api/v1/status`: what an operator or a deployment check reads first. It always answers
//! 200 while the process runs; the body says what is degraded.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::health::DB_PROBE_TIMEOUT;
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(status))
}

#[derive(Debug, Serialize, ToSchema)]
struct Status {
    status: &'static str,
    environment: &'static str,
    version: &'static str,
    uptime_seconds: u64,
    services: Services,
    pipeline: Pipeline,
}

#[derive(Debug, Serialize, ToSchema)]
struct Services {
    database: &'static str,
}

/// The analytics pipeline, when enabled.
#[derive(Debug, Serialize, ToSchema)]
struct Pipeline {
    /// `running`, `spooling` (database unreachable), `replaying`, `degraded` (PostgreSQL
    /// refuses the batch statement itself: batches go to the dead-letter spool), `stopping` or
    /// `disabled`.
    state: &'static str,
    queue_depth: usize,
    spool_bytes: u64,
    events_written: u64,
    events_dropped: u64,
    /// Events PostgreSQL refused, kept in the dead-letter spool (docs/operations.md).
    events_dead_lettered: u64,
    /// PostgreSQL's own message while the pipeline is `degraded`; null otherwise.
    statement_refused: Option<String>,
    /// Milliseconds since the last batch was committed; null before the first.
    last_flush_age_ms: Option<i64>,
}

/// What an operator reads first: always 200 while the process runs; the body says what is
/// degraded.
#[utoipa::path(get, path = "/api/v1/status", tag = "operations", responses((status = 200, body = Status)))]
async fn status(State(state): State<AppState>) -> Json<Status> {
    // While the breaker is open its probe has the answer; no need to wait for another.
    let database_ok = match state.db() {
        Ok(pool) => match aim_store::ping(pool, DB_PROBE_TIMEOUT).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "status: database unavailable");
                false
            }
        },
        Err(_) => false,
    };
    let refused = state
        .pipeline()
        .is_some_and(|p| p.status().statement_refused.is_some());
    Json(Status {
        status: if database_ok && !refused {
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
        pipeline: state.pipeline().map_or(
            Pipeline {
                state: "disabled",
                queue_depth: 0,
                spool_bytes: 0,
                events_written: 0,
                events_dropped: 0,
                events_dead_lettered: 0,
                statement_refused: None,
                last_flush_age_ms: None,
            },
            |p| {
                let s = p.status();
                Pipeline {
                    state: s.state,
                    queue_depth: s.queue_depth,
                    spool_bytes: s.spool_bytes,
                    events_written: s.events_written,
                    events_dropped: s.events_dropped,
                    events_dead_lettered: s.events_dead_lettered,
                    statement_refused: s.statement_refused,
                    last_flush_age_ms: s.last_flush_age_ms,
                }
            },
        ),
    })
}
