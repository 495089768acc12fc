//! `GET /api/v1/verifications`: the organization's verification events, filterable and
//! paginated. Users of any role read them; agents read only their own.

use aim_store::model::{Role, VerificationEvent, VerificationStatus};
use aim_store::verifications::VerificationFilter;
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
    OpenApiRouter::new().routes(routes!(list_verifications))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct VerificationQuery {
    agent_id: Option<Uuid>,
    status: Option<VerificationStatus>,
    /// Events that started at or after this instant (RFC 3339).
    from: Option<DateTime<Utc>>,
    /// Events that started before this instant (RFC 3339).
    to: Option<DateTime<Utc>>,
    /// 1–100; 50 by default.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// 0 by default.
    #[param(minimum = 0)]
    offset: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
struct VerificationList {
    verifications: Vec<VerificationEvent>,
    #[serde(flatten)]
    paging: Paging,
}

/// Verification events, newest first. `from` must be before `to` (a 400 `invalid_parameter`
/// otherwise).
#[utoipa::path(get, path = "/api/v1/verifications", tag = "verifications", params(VerificationQuery),
    security(("user_token" = []), ("agent_key" = []), ("agent_key_bearer" = [])), responses(
    (status = 200, body = VerificationList),
    (status = 400, body = ErrorEnvelope),
    (status = 401, body = ErrorEnvelope),
    (status = 403, body = ErrorEnvelope, description = "an agent key asking for another agent's events"),
))]
async fn list_verifications(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<VerificationQuery>,
) -> Result<Json<VerificationList>, ApiError> {
    let page = Pagination {
        limit: query.limit,
        offset: query.offset,
    }
    .page()?;
    if let (Some(from), Some(to)) = (query.from, query.to)
        && from >= to
    {
        return Err(ApiError::invalid_parameter("to must be after from"));
    }
    let agent_id = match principal {
        Principal::Agent { agent_id, .. } => {
            if query.agent_id.is_some_and(|asked| asked != agent_id) {
                return Err(ApiError::Forbidden(
                    "an agent reads only its own verifications",
                ));
            }
            Some(agent_id)
        }
        Principal::User { .. } => {
            principal.user_with(Role::Viewer)?;
            query.agent_id
        }
    };
    let filter = VerificationFilter {
        agent_id,
        status: query.status,
        from: query.from,
        to: query.to,
    };
    let (verifications, total) =
        aim_store::verifications::list(state.db()?, principal.organization_id(), &filter, page)
            .await?;
    Ok(Json(VerificationList {
        verifications,
        paging: Paging::new(total, page),
    }))
}
