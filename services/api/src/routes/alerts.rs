//! `/api/v1/alerts`: what the trust policy's alert rules saw, per agent and rule, and their
//! acknowledgement and resolution. Any user of the organization reads them; a manager
//! acknowledges and resolves.

use aim_store::alerts::{Alert, AlertFilter, AlertStatus, Change};
use aim_store::model::Role;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{ClientMeta, Principal};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::{ApiPath, ApiQuery};
use crate::routes::paging::{Pagination, Paging};
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_alerts))
        .routes(routes!(acknowledge))
        .routes(routes!(resolve))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AlertQuery {
    status: Option<AlertStatus>,
    agent_id: Option<Uuid>,
    /// 1–100; 50 by default.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// 0 by default.
    #[param(minimum = 0)]
    offset: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
struct AlertList {
    alerts: Vec<Alert>,
    #[serde(flatten)]
    paging: Paging,
}

/// The organization's alerts, newest first.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "trust", params(AlertQuery),
    security(("user_token" = [])), responses(
    (status = 200, body = AlertList),
))]
async fn list_alerts(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<AlertQuery>,
) -> Result<Json<AlertList>, ApiError> {
    principal.user_with(Role::Viewer)?;
    let page = Pagination {
        limit: query.limit,
        offset: query.offset,
    }
    .page()?;
    let filter = AlertFilter {
        status: query.status,
        agent_id: query.agent_id,
    };
    let (alerts, total) =
        aim_store::alerts::list(state.db()?, principal.organization_id(), &filter, page).await?;
    Ok(Json(AlertList {
        alerts,
        paging: Paging::new(total, page),
    }))
}

async fn change(
    state: &AppState,
    principal: &Principal,
    meta: &ClientMeta,
    id: Uuid,
    to: AlertStatus,
) -> Result<Json<Alert>, ApiError> {
    principal.user_with(Role::Manager)?;
    match aim_store::alerts::change(
        state.db()?,
        principal.organization_id(),
        id,
        to,
        &principal.actor(meta),
    )
    .await?
    {
        Change::Done(alert) => Ok(Json(alert)),
        Change::NotFound => Err(ApiError::NotFound),
        Change::Resolved => Err(ApiError::StateConflict {
            code: "alert_resolved",
            message: "The alert is resolved; a condition seen again opens a new alert.",
        }),
    }
}

/// Acknowledges an open alert: someone is on it. It stays the agent's one unresolved alert for
/// its rule, so the condition seen again opens nothing new.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/acknowledge", tag = "trust", params(("id" = Uuid, Path)),
    security(("user_token" = [])), responses(
    (status = 200, body = Alert),
    (status = 409, body = ErrorEnvelope),
))]
async fn acknowledge(
    State(state): State<AppState>,
    principal: Principal,
    meta: ClientMeta,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Alert>, ApiError> {
    change(&state, &principal, &meta, id, AlertStatus::Acknowledged).await
}

/// Resolves an alert. If its condition is still met at the next recomputation, a new alert
/// opens.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/resolve", tag = "trust", params(("id" = Uuid, Path)),
    security(("user_token" = [])), responses(
    (status = 200, body = Alert),
    (status = 409, body = ErrorEnvelope),
))]
async fn resolve(
    State(state): State<AppState>,
    principal: Principal,
    meta: ClientMeta,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Alert>, ApiError> {
    change(&state, &principal, &meta, id, AlertStatus::Resolved).await
}
