//! The service's own metric names, each written once; `metrics_server` describes them and every
//! recording site uses these constants. The pipeline's are in `aim_pipeline::stats::names`.

pub const BUILD_INFO: &str = "aim_build_info";
pub const HTTP_REQUESTS: &str = "aim_http_requests_total";
pub const HTTP_REQUEST_DURATION: &str = "aim_http_request_duration_seconds";
pub const HTTP_IN_FLIGHT: &str = "aim_http_requests_in_flight";
pub const HTTP_UNATTRIBUTED: &str = "aim_http_requests_unattributed_total";
pub const DB_POOL_CONNECTIONS: &str = "aim_db_pool_connections";
pub const DB_POOL_MAX: &str = "aim_db_pool_max_connections";
pub const DB_POOL_WAITING: &str = "aim_db_pool_waiting";
/// Requests that waited `AIM_DB_ACQUIRE_TIMEOUT_MS` for a pooled connection and got none: the
/// pool's waits that went wrong (sqlx does not count waits that ended well).
pub const DB_POOL_TIMEOUTS: &str = "aim_db_pool_acquire_timeouts_total";
/// 1 while requests that need the database are refused without trying it.
pub const DB_BREAKER_OPEN: &str = "aim_db_breaker_open";
/// Times the breaker opened.
pub const DB_BREAKER_TRIPS: &str = "aim_db_breaker_trips_total";
pub const MAINTENANCE_RUNS: &str = "aim_maintenance_runs_total";
pub const MAINTENANCE_STEPS: &str = "aim_maintenance_steps_total";
pub const TABLE_SIZE: &str = "aim_table_size_bytes";
