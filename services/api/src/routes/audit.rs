//! `GET /api/v1/audit-events`: the organization's audit trail, for admins.

use aim_store::audit::AuditFilter;
use aim_store::model::{AuditEvent, Role};
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::ApiQuery;
use crate::routes::paging::{Pagination, Paging};
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit_events))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// e.g. `auth.login_failed`, `agent.trust_score_changed`; at most 100 characters.
    #[param(max_length = 100)]
    action: Option<String>,
    actor_id: Option<Uuid>,
    target_id: Option<Uuid>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    /// 1–100; 50 by default.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// 0 by default.
    #[param(minimum = 0)]
    offset: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
struct AuditList {
    audit_events: Vec<AuditEvent>,
    #[serde(flatten)]
    paging: Paging,
}

/// Audit events, newest first. `from` must be before `to` (a 400 `invalid_parameter`
/// otherwise).
#[utoipa::path(get, path = "/api/v1/audit-events", tag = "audit", params(AuditQuery),
    security(("user_token" = [])), responses(
    (status = 200, body = AuditList),
    (status = 401, body = ErrorEnvelope),
    (status = 403, body = ErrorEnvelope),
))]
async fn list_audit_events(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditList>, ApiError> {
    principal.user_with(Role::Admin)?;
    let page = Pagination {
        limit: query.limit,
        offset: query.offset,
    }
    .page()?;
    if query
        .action
        .as_ref()
        .is_some_and(|a| a.chars().count() > 100)
    {
        return Err(ApiError::invalid_parameter(
            "action must be at most 100 characters",
        ));
    }
    if let (Some(from), Some(to)) = (query.from, query.to)
        && from >= to
    {
        return Err(ApiError::invalid_parameter("to must be after from"));
    }
    let filter = AuditFilter {
        action: query.action,
        actor_id: query.actor_id,
        target_id: query.target_id,
        from: query.from,
        to: query.to,
    };
    let (audit_events, total) =
        aim_store::audit::list(state.db()?, principal.organization_id(), &filter, page).await?;
    Ok(Json(AuditList {
        audit_events,
        paging: Paging::new(total, page),
    }))
}
