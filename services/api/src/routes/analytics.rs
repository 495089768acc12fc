//! The analytics API: read from the rollups (hourly rows for the partial days at a window's
//! ends, daily rows for the whole days between), merged in Rust. Any role of the organization may read, with a user token; agent keys
//! get 403. Windows are rolling and end now, in UTC; hourly windows start at the hour.

use std::collections::BTreeMap;

use aim_pipeline::rollup::{Histogram, Traffic, truncate_to_hour};
use aim_store::analytics::{Rollup, RollupRow};
use aim_store::model::Role;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::{ApiPath, ApiQuery};
use crate::state::AppState;

const MIB: f64 = 1024.0 * 1024.0;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(usage))
        .routes(routes!(endpoints))
        .routes(routes!(timeseries))
        .routes(routes!(agent_activity))
        .routes(routes!(agents_activity))
        .routes(routes!(dashboard))
}

fn traffic(rows: &[RollupRow]) -> Traffic {
    let mut total = Traffic::default();
    for row in rows {
        add_row(&mut total, row);
    }
    total
}

/// Adds a stored row to `total` without copying its histogram: a 30-day window of 100 agents
/// merges thousands of rows per request.
fn add_row(total: &mut Traffic, row: &RollupRow) {
    total.calls += row.calls;
    total.errors += row.errors;
    total.client_errors += row.client_errors;
    total.server_errors += row.server_errors;
    total.request_bytes = total.request_bytes.saturating_add(row.request_bytes);
    total.response_bytes = total.response_bytes.saturating_add(row.response_bytes);
    total.total_duration_ms += row.total_duration_ms;
    total.histogram.merge_counts(&row.histogram);
}

fn row_traffic(row: &RollupRow) -> Traffic {
    Traffic {
        calls: row.calls,
        errors: row.errors,
        client_errors: row.client_errors,
        server_errors: row.server_errors,
        request_bytes: row.request_bytes,
        response_bytes: row.response_bytes,
        total_duration_ms: row.total_duration_ms,
        histogram: Histogram::from_counts(row.histogram.clone()),
        // The read model does not select it; no analytics answer shows a row's last call.
        last_call_us: 0,
    }
}

fn percent(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        round2(100.0 * part as f64 / whole as f64)
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Not rounded: a day of small calls is a few KiB, which two decimals of a MiB would show as
/// 0. Dividing by 2^20 is exact for any byte count below 2^53, so the value carries every byte.
fn mib(bytes: i64) -> f64 {
    bytes as f64 / MIB
}

/// The window of the last `days` days: from the start of the hour `days` ago to now. It is read
/// up to the end of today: nothing is stamped after now, and today then comes from one daily
/// row per key instead of up to 24 hourly ones.
fn last_days(days: i64) -> (DateTime<Utc>, DateTime<Utc>) {
    let now = Utc::now();
    let tomorrow = now.date_naive() + chrono::Days::new(1);
    (
        truncate_to_hour(now - Duration::days(days)),
        tomorrow.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc(),
    )
}

/// The organization's rollup rows of one family over the last `days` days.
async fn window(
    state: &AppState,
    organization: Uuid,
    rollup: Rollup,
    days: i64,
) -> Result<Vec<RollupRow>, ApiError> {
    let (from, to) = last_days(days);
    Ok(aim_store::analytics::window_rows(state.db()?, organization, rollup, from, to).await?)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct UsageQuery {
    /// `day`, `week`, `month` (default) or `year`.
    period: Option<String>,
    /// 1–365; overrides `period`.
    days: Option<i64>,
}

fn period_days(period: Option<&str>, days: Option<i64>) -> Result<(String, i64), ApiError> {
    if let Some(days) = days {
        if !(1..=365).contains(&days) {
            return Err(ApiError::invalid_parameter(
                "days must be between 1 and 365",
            ));
        }
        return Ok((format!("{days}d"), days));
    }
    let period = period.unwrap_or("month");
    let days = match period {
        "day" => 1,
        "week" => 7,
        "month" => 30,
        "year" => 365,
        _ => {
            return Err(ApiError::invalid_parameter(
                "period must be one of day, week, month, year",
            ));
        }
    };
    Ok((period.to_owned(), days))
}

#[derive(Debug, Serialize, ToSchema)]
struct Usage {
    period: String,
    total_agents: i64,
    /// Agents with at least one call in the period.
    active_agents: i64,
    api_calls: i64,
    /// MiB (2^20 bytes) of request and response bodies, unrounded: `data_volume_bytes` / 1048576.
    data_volume: f64,
    /// Bytes of request and response bodies.
    data_volume_bytes: i64,
    /// Percent of the period's calls not answered with a 5xx; 100 when there were none.
    uptime: f64,
    /// Percent of the period's calls answered with a 4xx or 5xx.
    error_rate: f64,
    avg_response_time_ms: f64,
    p95_response_time_ms: f64,
    generated_at: DateTime<Utc>,
}

/// Usage of the caller's organization over a rolling period.
#[utoipa::path(get, path = "/api/v1/analytics/usage", tag = "analytics", params(UsageQuery),
    security(("bearer" = [])), responses(
    (status = 200, body = Usage),
    (status = 400, body = ErrorEnvelope),
    (status = 403, body = ErrorEnvelope, description = "agent keys cannot read analytics"),
))]
async fn usage(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<UsageQuery>,
) -> Result<Json<Usage>, ApiError> {
    principal.user_with(Role::Viewer)?;
    let (period, days) = period_days(query.period.as_deref(), query.days)?;
    let organization = principal.organization_id();
    let rows = window(&state, organization, Rollup::Organization, days).await?;
    let total = traffic(&rows);
    let (from, to) = last_days(days);
    let active = aim_store::analytics::active_agents(state.db()?, organization, from, to).await?;
    let total_agents = aim_store::analytics::agent_summaries(state.db()?, organization)
        .await?
        .len();
    Ok(Json(Usage {
        period,
        total_agents: i64::try_from(total_agents).unwrap_or(i64::MAX),
        active_agents: active,
        api_calls: total.calls,
        data_volume: mib(total.request_bytes + total.response_bytes),
        data_volume_bytes: total.request_bytes + total.response_bytes,
        uptime: if total.calls == 0 {
            100.0
        } else {
            round2(100.0 - percent(total.server_errors, total.calls))
        },
        error_rate: percent(total.errors, total.calls),
        avg_response_time_ms: round2(total.avg_ms()),
        p95_response_time_ms: total.histogram.quantile(0.95),
        generated_at: Utc::now(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct EndpointsQuery {
    /// `day` (default), `week`, `month` or `year`.
    period: Option<String>,
    /// 1–100, default 20.
    limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
struct EndpointStats {
    method: String,
    endpoint: String,
    calls: i64,
    errors: i64,
    error_rate: f64,
    avg_response_time_ms: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    request_bytes: i64,
    response_bytes: i64,
}

#[derive(Debug, Serialize, ToSchema)]
struct EndpointList {
    period: String,
    endpoints: Vec<EndpointStats>,
}

/// Per method and route template: calls, error rate, latency percentiles, bytes; busiest first.
#[utoipa::path(get, path = "/api/v1/analytics/endpoints", tag = "analytics", params(EndpointsQuery),
    security(("bearer" = [])), responses(
    (status = 200, body = EndpointList),
    (status = 400, body = ErrorEnvelope),
    (status = 403, body = ErrorEnvelope),
))]
async fn endpoints(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<EndpointsQuery>,
) -> Result<Json<EndpointList>, ApiError> {
    principal.user_with(Role::Viewer)?;
    let period = query.period.unwrap_or_else(|| "day".to_owned());
    let days = match period.as_str() {
        "day" => 1,
        "week" => 7,
        "month" => 30,
        "year" => 365,
        _ => {
            return Err(ApiError::invalid_parameter(
                "period must be one of day, week, month, year",
            ));
        }
    };
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid_parameter(
            "limit must be between 1 and 100",
        ));
    }
    let rows = window(&state, principal.organization_id(), Rollup::Endpoints, days).await?;
    let mut groups: BTreeMap<(String, String), Traffic> = BTreeMap::new();
    for row in &rows {
        let key = (
            row.method.clone().unwrap_or_default(),
            row.endpoint.clone().unwrap_or_default(),
        );
        add_row(groups.entry(key).or_default(), row);
    }
    let mut endpoints: Vec<EndpointStats> = groups
        .into_iter()
        .map(|((method, endpoint), t)| EndpointStats {
            method,
            endpoint,
            calls: t.calls,
            errors: t.errors,
            error_rate: percent(t.errors, t.calls),
            avg_response_time_ms: round2(t.avg_ms()),
            p50_ms: t.histogram.quantile(0.50),
            p95_ms: t.histogram.quantile(0.95),
            p99_ms: t.histogram.quantile(0.99),
            request_bytes: t.request_bytes,
            response_bytes: t.response_bytes,
        })
        .collect();
    endpoints.sort_by(|a, b| {
        b.calls
            .cmp(&a.calls)
            .then_with(|| a.endpoint.cmp(&b.endpoint))
    });
    endpoints.truncate(usize::try_from(limit).unwrap_or(20));
    Ok(Json(EndpointList { period, endpoints }))
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Metric {
    ApiCalls,
    Errors,
    DataVolume,
    P50Latency,
    P95Latency,
    P99Latency,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Interval {
    Hour,
    Day,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SeriesQuery {
    /// `api_calls`, `errors`, `data_volume` (MiB), `p50_latency`, `p95_latency` or
    /// `p99_latency` (ms).
    metric: Metric,
    /// `hour` (default; at most 744 buckets) or `day` (at most 366).
    interval: Option<Interval>,
    /// RFC 3339; default 24 hours (hourly) or 30 days (daily) before `to`.
    from: Option<DateTime<Utc>>,
    /// RFC 3339; default now.
    to: Option<DateTime<Utc>>,
    /// Only this agent's calls.
    agent_id: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
struct Point {
    timestamp: DateTime<Utc>,
    value: f64,
}

#[derive(Debug, Serialize, ToSchema)]
struct Series {
    metric: Metric,
    interval: Interval,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    points: Vec<Point>,
}

impl Serialize for Metric {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            Self::ApiCalls => "api_calls",
            Self::Errors => "errors",
            Self::DataVolume => "data_volume",
            Self::P50Latency => "p50_latency",
            Self::P95Latency => "p95_latency",
            Self::P99Latency => "p99_latency",
        })
    }
}

impl Serialize for Interval {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            Self::Hour => "hour",
            Self::Day => "day",
        })
    }
}

fn value(metric: Metric, t: &Traffic) -> f64 {
    match metric {
        Metric::ApiCalls => t.calls as f64,
        Metric::Errors => t.errors as f64,
        Metric::DataVolume => mib(t.request_bytes + t.response_bytes),
        Metric::P50Latency => t.histogram.quantile(0.50),
        Metric::P95Latency => t.histogram.quantile(0.95),
        Metric::P99Latency => t.histogram.quantile(0.99),
    }
}

fn day_start(at: DateTime<Utc>) -> DateTime<Utc> {
    at.date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc()
}

/// A zero-filled time series of one metric, for the organization or one of its agents.
#[utoipa::path(get, path = "/api/v1/analytics/timeseries", tag = "analytics", params(SeriesQuery),
    security(("bearer" = [])), responses(
    (status = 200, body = Series),
    (status = 400, body = ErrorEnvelope),
    (status = 403, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope, description = "no such agent in the organization"),
))]
async fn timeseries(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<SeriesQuery>,
) -> Result<Json<Series>, ApiError> {
    principal.user_with(Role::Viewer)?;
    let organization = principal.organization_id();
    let interval = query.interval.unwrap_or(Interval::Hour);
    let (step, max_buckets, default_span) = match interval {
        Interval::Hour => (Duration::hours(1), 744, Duration::hours(24)),
        Interval::Day => (Duration::days(1), 366, Duration::days(30)),
    };
    let truncate = |at| match interval {
        Interval::Hour => truncate_to_hour(at),
        Interval::Day => day_start(at),
    };
    let to = truncate(query.to.unwrap_or_else(Utc::now)) + step;
    let from = truncate(query.from.unwrap_or(to - default_span));
    if from >= to {
        return Err(ApiError::invalid_parameter("from must be before to"));
    }
    let buckets = (to - from).num_seconds() / step.num_seconds();
    if buckets > max_buckets {
        return Err(ApiError::invalid_parameter(format!(
            "the range is capped at {max_buckets} buckets for this interval"
        )));
    }
    if let Some(agent) = query.agent_id {
        aim_store::agents::get(state.db()?, organization, agent)
            .await?
            .ok_or(ApiError::NotFound)?;
    }
    let rows = match (interval, query.agent_id) {
        (Interval::Day, None) => {
            aim_store::analytics::org_days(
                state.db()?,
                organization,
                from.date_naive(),
                (to - step).date_naive(),
            )
            .await?
        }
        (Interval::Day, Some(agent)) => {
            let rollup = Rollup::Agents(Some(agent));
            aim_store::analytics::window_rows(state.db()?, organization, rollup, from, to).await?
        }
        (Interval::Hour, Some(agent)) => {
            aim_store::analytics::agent_hours(state.db()?, organization, Some(agent), from, to)
                .await?
        }
        (Interval::Hour, None) => {
            aim_store::analytics::endpoint_hours(state.db()?, organization, from, to).await?
        }
    };
    let mut sums: BTreeMap<DateTime<Utc>, Traffic> = BTreeMap::new();
    for row in &rows {
        add_row(sums.entry(truncate(row.bucket)).or_default(), row);
    }
    let zero = Traffic::default();
    let points = (0..buckets)
        .map(|i| {
            let timestamp = from + step * i32::try_from(i).unwrap_or(0);
            Point {
                timestamp,
                value: value(query.metric, sums.get(&timestamp).unwrap_or(&zero)),
            }
        })
        .collect();
    Ok(Json(Series {
        metric: query.metric,
        interval,
        from,
        to,
        points,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AgentActivityQuery {
    /// 1–720, default 24.
    hours: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
struct HourActivity {
    hour: DateTime<Utc>,
    api_calls: i64,
    errors: i64,
    /// MiB (2^20 bytes) of request and response bodies, unrounded.
    data_processed: f64,
    /// Bytes of request and response bodies.
    data_processed_bytes: i64,
    avg_response_time_ms: f64,
    p95_response_time_ms: f64,
}

#[derive(Debug, Serialize, ToSchema)]
struct AgentActivity {
    agent_id: Uuid,
    hours: Vec<HourActivity>,
}

/// One agent's hourly activity, zero-filled, oldest first.
#[utoipa::path(get, path = "/api/v1/analytics/agents/{id}/activity", tag = "analytics",
    params(("id" = Uuid, Path), AgentActivityQuery), security(("bearer" = [])), responses(
    (status = 200, body = AgentActivity),
    (status = 400, body = ErrorEnvelope),
    (status = 403, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope),
))]
async fn agent_activity(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<AgentActivityQuery>,
) -> Result<Json<AgentActivity>, ApiError> {
    principal.user_with(Role::Viewer)?;
    let hours = query.hours.unwrap_or(24);
    if !(1..=720).contains(&hours) {
        return Err(ApiError::invalid_parameter(
            "hours must be between 1 and 720",
        ));
    }
    let organization = principal.organization_id();
    aim_store::agents::get(state.db()?, organization, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let to = truncate_to_hour(Utc::now()) + Duration::hours(1);
    let from = to - Duration::hours(hours);
    let rows =
        aim_store::analytics::agent_hours(state.db()?, organization, Some(id), from, to).await?;
    let by_hour: BTreeMap<DateTime<Utc>, Traffic> =
        rows.iter().map(|r| (r.bucket, row_traffic(r))).collect();
    let zero = Traffic::default();
    let hours = (0..hours)
        .map(|i| {
            let hour = from + Duration::hours(i);
            let t = by_hour.get(&hour).unwrap_or(&zero);
            HourActivity {
                hour,
                api_calls: t.calls,
                errors: t.errors,
                data_processed: mib(t.request_bytes + t.response_bytes),
                data_processed_bytes: t.request_bytes + t.response_bytes,
                avg_response_time_ms: round2(t.avg_ms()),
                p95_response_time_ms: t.histogram.quantile(0.95),
            }
        })
        .collect();
    Ok(Json(AgentActivity {
        agent_id: id,
        hours,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AgentsActivityQuery {
    /// 1–100, default 10.
    limit: Option<i64>,
    /// Default 0.
    offset: Option<i64>,
    /// 1–365, default 30.
    days: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
struct AgentActivityEntry {
    agent_id: Uuid,
    agent_name: String,
    status: String,
    trust_score: f64,
    last_active: Option<DateTime<Utc>>,
    api_calls: i64,
    /// MiB (2^20 bytes) of request and response bodies, unrounded.
    data_processed: f64,
    /// Bytes of request and response bodies.
    data_processed_bytes: i64,
    errors: i64,
    avg_response_time_ms: f64,
    p95_response_time_ms: f64,
}

#[derive(Debug, Serialize, ToSchema)]
struct ActivitySummary {
    total_calls: i64,
    /// Calls answered below 400.
    success_count: i64,
    /// Calls answered 400 or above.
    failure_count: i64,
    success_rate: f64,
}

#[derive(Debug, Serialize, ToSchema)]
struct AgentsActivity {
    activities: Vec<AgentActivityEntry>,
    summary: ActivitySummary,
    total: i64,
    limit: i64,
    offset: i64,
}

/// The organization's agents with their calls over the last `days` days, busiest first.
#[utoipa::path(get, path = "/api/v1/analytics/agents/activity", tag = "analytics",
    params(AgentsActivityQuery), security(("bearer" = [])), responses(
    (status = 200, body = AgentsActivity),
    (status = 400, body = ErrorEnvelope),
    (status = 403, body = ErrorEnvelope),
))]
async fn agents_activity(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<AgentsActivityQuery>,
) -> Result<Json<AgentsActivity>, ApiError> {
    principal.user_with(Role::Viewer)?;
    let limit = query.limit.unwrap_or(10);
    let offset = query.offset.unwrap_or(0);
    let days = query.days.unwrap_or(30);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid_parameter(
            "limit must be between 1 and 100",
        ));
    }
    if offset < 0 {
        return Err(ApiError::invalid_parameter("offset must not be negative"));
    }
    if !(1..=365).contains(&days) {
        return Err(ApiError::invalid_parameter(
            "days must be between 1 and 365",
        ));
    }
    let organization = principal.organization_id();
    let rows = window(&state, organization, Rollup::Agents(None), days).await?;
    let mut per_agent: BTreeMap<Uuid, Traffic> = BTreeMap::new();
    for row in &rows {
        if let Some(agent) = row.agent_id {
            add_row(per_agent.entry(agent).or_default(), row);
        }
    }
    let all = traffic(&rows);
    let agents = aim_store::analytics::agent_summaries(state.db()?, organization).await?;
    let ids: Vec<Uuid> = agents.iter().map(|a| a.id).collect();
    let last_calls = aim_store::analytics::last_calls(state.db()?, organization, &ids).await?;
    let zero = Traffic::default();
    let mut activities: Vec<AgentActivityEntry> = agents
        .into_iter()
        .map(|a| {
            let t = per_agent.get(&a.id).unwrap_or(&zero);
            AgentActivityEntry {
                agent_id: a.id,
                agent_name: a.name,
                status: a.status,
                trust_score: a.trust_score,
                last_active: a.last_active.max(last_calls.get(&a.id).copied()),
                api_calls: t.calls,
                data_processed: mib(t.request_bytes + t.response_bytes),
                data_processed_bytes: t.request_bytes + t.response_bytes,
                errors: t.errors,
                avg_response_time_ms: round2(t.avg_ms()),
                p95_response_time_ms: t.histogram.quantile(0.95),
            }
        })
        .collect();
    let total = i64::try_from(activities.len()).unwrap_or(i64::MAX);
    // Busiest first; ties keep the agents' creation order (the sort is stable).
    activities.sort_by_key(|a| std::cmp::Reverse(a.api_calls));
    let activities = activities
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(10))
        .collect();
    Ok(Json(AgentsActivity {
        activities,
        summary: ActivitySummary {
            total_calls: all.calls,
            success_count: all.calls - all.errors,
            failure_count: all.errors,
            success_rate: if all.calls == 0 {
                0.0
            } else {
                percent(all.calls - all.errors, all.calls)
            },
        },
        total,
        limit,
        offset,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
struct Dashboard {
    organization_id: Uuid,
    total_agents: i64,
    verified_agents: i64,
    pending_agents: i64,
    /// Percent of agents that are verified.
    verification_rate: f64,
    avg_trust_score: f64,
    total_users: i64,
    active_users: i64,
    total_verifications: i64,
    successful_verifications: i64,
    failed_verifications: i64,
    /// Milliseconds, over the last 24 hours.
    avg_response_time: f64,
    api_calls_24h: i64,
    /// Percent, over the last 24 hours.
    error_rate_24h: f64,
}

/// The organization at a glance.
#[utoipa::path(get, path = "/api/v1/analytics/dashboard", tag = "analytics",
    security(("bearer" = [])), responses(
    (status = 200, body = Dashboard),
    (status = 403, body = ErrorEnvelope),
))]
async fn dashboard(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Dashboard>, ApiError> {
    principal.user_with(Role::Viewer)?;
    let organization = principal.organization_id();
    let counts = aim_store::analytics::dashboard_counts(state.db()?, organization).await?;
    let rows = window(&state, organization, Rollup::Organization, 1).await?;
    let day = traffic(&rows);
    Ok(Json(Dashboard {
        organization_id: organization,
        total_agents: counts.total_agents,
        verified_agents: counts.verified_agents,
        pending_agents: counts.pending_agents,
        verification_rate: percent(counts.verified_agents, counts.total_agents),
        avg_trust_score: round2(counts.avg_trust_score.unwrap_or(0.0) * 100.0) / 100.0,
        total_users: counts.total_users,
        active_users: counts.active_users,
        total_verifications: counts.total_verifications,
        successful_verifications: counts.successful_verifications,
        failed_verifications: counts.failed_verifications,
        avg_response_time: round2(day.avg_ms()),
        api_calls_24h: day.calls,
        error_rate_24h: percent(day.errors, day.calls),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_map_to_days_and_bad_ones_are_refused() {
        assert_eq!(period_days(None, None).expect("default").1, 30);
        assert_eq!(period_days(Some("week"), None).expect("week").1, 7);
        assert_eq!(period_days(Some("year"), Some(3)).expect("days wins").1, 3);
        assert!(period_days(Some("decade"), None).is_err());
        assert!(period_days(None, Some(0)).is_err());
        assert!(period_days(None, Some(366)).is_err());
    }
}
