//! The middleware that opens the database breaker ([`crate::breaker`]): any response that says
//! the database is unavailable, from any route, readiness included.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// A response that says the database is unavailable (from any route, readiness
/// included) opens the breaker.
pub async fn trip_on_unavailable(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    if response.extensions().get::<ErrorCode>() == Some(&ErrorCode(ApiError::UNAVAILABLE)) {
        state.breaker().trip(state.pool());
    }
    response
}
