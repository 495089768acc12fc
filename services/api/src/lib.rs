//! The AIM API as a library: [`app`] builds the public router from an [`AppState`] (what tests
//! drive with `oneshot`), [`serve`] runs the whole service until a shutdown signal, and
//! [`cli`] is what the thin `aim` binary dispatches to.

pub mod cli;
pub mod config;
mod database;
pub mod error;
pub mod extract;
mod metrics_server;
mod middleware;
mod routes;
mod secrets;
mod serve;
pub mod state;
pub mod telemetry;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tower_http::catch_panic::CatchPanicLayer;

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
    routes::router()
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::request_log::layer())
        .layer(axum::middleware::from_fn(
            middleware::request_id::request_id,
        ))
        .with_state(state)
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
    ApiError::Internal(format!("handler panicked: {detail}")).into_response()
}
