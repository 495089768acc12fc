//! The public router, one module per resource. Each module exposes
//! `pub(crate) fn router() -> OpenApiRouter<AppState>`, so every route is documented in the
//! OpenAPI document by construction; `crate::app` merges them and adds the middleware and the
//! JSON fallbacks for unknown routes and methods.

mod agents;
mod alerts;
mod analytics;
mod audit;
mod auth;
mod health;
pub(crate) mod paging;
mod status;
mod trust_policy;
mod users;
pub(crate) mod validation;
mod verifications;
mod webhooks;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::router())
        .merge(status::router())
        .merge(auth::router())
        .merge(users::router())
        .merge(agents::router())
        .merge(verifications::router())
        .merge(audit::router())
        .merge(analytics::router())
        .merge(trust_policy::router())
        .merge(alerts::router())
        .merge(webhooks::router())
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "AIM — Agent Identity Management API",
        description = "Organizations register AI agents, give them API keys, track their trust \
                       scores and verify what they do. Errors always answer \
                       {\"error\": {\"code\", \"message\", \"fields\"?}}."
    ),
    tags(
        (name = "operations", description = "Health and status"),
        (name = "auth", description = "Login and sessions"),
        (name = "users", description = "Users of the caller's organization (admin)"),
        (name = "agents", description = "Agents, trust scores, API keys, verification"),
        (name = "verifications", description = "Verification events"),
        (name = "audit", description = "Audit trail (admin)"),
        (name = "trust", description = "Trust policy, alerts and webhooks of the caller's organization"),
        (name = "analytics", description = "Traffic and activity of the caller's organization, from the rollups"),
    )
)]
struct ApiDoc;
