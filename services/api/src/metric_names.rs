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
/// Trust scores the service wrote (moves of at least the policy's step).
pub const TRUST_SCORES_WRITTEN: &str = "aim_trust_scores_written_total";
/// Status changes the trust policy made, by the status reached.
pub const TRUST_TRANSITIONS: &str = "aim_trust_transitions_total";
/// Scheduled recomputations of every organization, by outcome.
pub const TRUST_RECOMPUTATIONS: &str = "aim_trust_recomputations_total";
/// Alerts opened, by rule.
pub const ALERTS_OPENED: &str = "aim_alerts_opened_total";
/// Unresolved alerts of every organization by status and rule, sampled by the maintenance run.
pub const ALERTS_UNRESOLVED: &str = "aim_alerts_unresolved";
/// Webhook delivery attempts, by outcome (delivered, retry, failed).
pub const WEBHOOK_DELIVERIES: &str = "aim_webhook_deliveries_total";
/// Webhook endpoints the service disabled after repeated failures.
pub const WEBHOOKS_DISABLED: &str = "aim_webhooks_disabled_total";
/// Deliveries waiting (pending) and given up (failed), sampled by the maintenance run.
pub const WEBHOOK_BACKLOG: &str = "aim_webhook_deliveries_backlog";
