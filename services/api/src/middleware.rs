//! Middleware of the public router: request ids, request logs, HTTP metrics, the analytics
//! layer and the database breaker's trip. Each runs for every request, so each does little: no
//! I/O, no locks.

pub mod analytics;
pub mod breaker_trip;
mod headers;
pub mod http_metrics;
pub mod request_id;
pub mod request_log;
