//! The AIM API as a library: [`app`] builds the public router from an [`AppState`] (what tests
//! drive with `oneshot`), [`serve`] runs the whole service until a shutdown signal, and
//! [`cli`] is what the thin `aim` binary dispatches to.

pub mod auth;
pub mod bootstrap;
pub mod breaker;
pub mod cli;
mod client_addr;
pub mod config;
mod dashboard;
mod database;
pub mod error;
pub mod extract;
mod maintenance;
mod metric_names;
mod metrics_server;
mod middleware;
mod openapi;
mod routes;
mod secrets;
mod serve;
pub mod state;
mod tasks;
pub mod telemetry;
pub mod trust;
pub mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowMethods, AllowOrigin, CorsLayer};

pub use config::Config;
pub use error::ApiError;
pub use middleware::request_id::{RequestId, X_REQUEST_ID};
pub use serve::serve;
pub use state::AppState;

/// Request bodies over this size get a 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The public router with its middleware. The metrics listener has a router of its own and is
/// never reachable from here.
pub fn app(state: AppState) -> Router {
    app_with_cors(state, &[])
}

/// [`app`], answering browser preflights from `cors_origins` (`AIM_CORS_ORIGINS`).
pub fn app_with_cors(state: AppState, cors_origins: &[HeaderValue]) -> Router {
    let analytics = state.pipeline().map(|pipeline| {
        middleware::analytics::AnalyticsLayer::new(pipeline.sink(), state.trust_proxy())
    });
    let (router, generated) = routes::router().split_for_parts();
    let openapi = Arc::new(openapi::complete(&generated));
    let router = router
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let openapi = Arc::clone(&openapi);
                async move { axum::Json(openapi) }
            }),
        )
        .merge(dashboard::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::breaker_trip::trip_on_unavailable,
        ))
        // Outside the panic guard, so a panic is recorded as the 500 it answers.
        .layer(tower::util::option_layer(analytics))
        .layer(middleware::request_log::layer())
        .layer(axum::middleware::from_fn(middleware::http_metrics::record))
        .layer(axum::middleware::from_fn(
            middleware::request_id::request_id,
        ));
    let router = if cors_origins.is_empty() {
        router
    } else {
        router.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(cors_origins.iter().cloned()))
                .allow_methods(AllowMethods::mirror_request())
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    X_REQUEST_ID.clone(),
                ])
                .expose_headers([X_REQUEST_ID.clone(), header::RETRY_AFTER])
                .max_age(std::time::Duration::from_secs(600)),
        )
    };
    router.with_state(state)
}

/// The OpenAPI document of every route, as served at `/api/v1/openapi.json`.
pub fn openapi() -> serde_json::Value {
    openapi::complete(&routes::router().split_for_parts().1)
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    ApiError::Internal(format!("handler panicked: {detail}").into()).into_response()
}
