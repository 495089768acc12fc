//! The public router, one module per resource. Each module exposes
//! `pub(crate) fn router() -> Router<AppState>`; `crate::app` merges them and adds the
//! middleware and the JSON fallbacks for unknown routes and methods.

mod health;
mod status;

use axum::Router;

use crate::state::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .merge(health::router())
        .merge(status::router())
}
