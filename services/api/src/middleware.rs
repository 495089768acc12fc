//! Middleware of the public router: request ids and request logs. Each runs for every request,
//! so each does little: no I/O, no locks.

pub mod analytics;
pub mod http_metrics;
pub mod request_id;
pub mod request_log;
