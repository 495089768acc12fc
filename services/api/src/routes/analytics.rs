//! The analytics API, one file per group of endpoints: [`usage`] (the organization's traffic),
//! [`agents`] (agents' activity), [`overview`] (the organization at a glance), [`trends`] (trust
//! scores and verifications), [`export`] (raw calls). Traffic is read from the rollups (hourly
//! rows for the partial days at a window's ends, daily rows for the whole days between) and
//! merged in Rust; [`query`] parses the parameters they share and holds the window logic. Any
//! role of the organization may read, with a user token; agent keys get 403. Windows are rolling
//! and end now, in UTC; hourly windows start at the hour.
//!
//! A new analytics endpoint goes into the file of its group, or a new one here with one line in
//! [`router`].

mod agents;
mod export;
mod overview;
mod query;
mod trends;
mod usage;

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(usage::router())
        .merge(agents::router())
        .merge(overview::router())
        .merge(trends::router())
        .merge(export::router())
}
