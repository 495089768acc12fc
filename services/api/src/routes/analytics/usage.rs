//! The organization's traffic: usage over a period, per-endpoint figures, and time series.

use std::collections::BTreeMap;

use aim_pipeline::rollup::truncate_to_hour;
use aim_store::analytics::Rollup;
use aim_traffic::Traffic;
use chrono::{DateTime, Duration, Utc};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use aim_store::model::Role;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::ApiQuery;
use crate::state::AppState;

use super::query::{Period, mib, page, percent, round2, total};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(usage))
        .routes(routes!(endpoints))
        .routes(routes!(timeseries))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct UsageQuery {
    /// `day`, `week`, `month` (default) or `year`.
    #[param(schema_with = crate::openapi::usage_period)]
    period: Option<String>,
    /// 1–365; overrides `period`.
    #[param(minimum = 1, maximum = 365)]
    days: Option<i64>,
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
    security(("user_token" = [])), responses(
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
    let period = Period::parse(query.period.as_deref(), query.days, "month")?;
    let organization = principal.organization_id();
    let rows = period
        .rows(&state, organization, Rollup::Organization)
        .await?;
    let total = total(&rows);
    let (from, to) = period.window();
    let active = aim_store::analytics::active_agents(state.db()?, organization, from, to).await?;
    let total_agents = aim_store::analytics::agent_summaries(state.db()?, organization)
        .await?
        .len();
    Ok(Json(Usage {
        period: period.label,
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
    #[param(schema_with = crate::openapi::usage_period)]
    period: Option<String>,
    /// 1–100, default 20.
    #[param(minimum = 1, maximum = 100)]
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
    security(("user_token" = [])), responses(
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
    let period = Period::parse(query.period.as_deref(), None, "day")?;
    let limit = page(query.limit, None, 20)?.limit;
    let rows = period
        .rows(&state, principal.organization_id(), Rollup::Endpoints)
        .await?;
    let mut groups: BTreeMap<(String, String), Traffic> = BTreeMap::new();
    for row in &rows {
        let key = (
            row.method.clone().unwrap_or_default(),
            row.endpoint.clone().unwrap_or_default(),
        );
        groups.entry(key).or_default().merge(&row.traffic);
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
    Ok(Json(EndpointList {
        period: period.label,
        endpoints,
    }))
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

/// A zero-filled time series of one metric, for the organization or one of its agents. `from`
/// must be before `to`, and the range at most 744 hourly or 366 daily buckets (a 400
/// `invalid_parameter` otherwise).
#[utoipa::path(get, path = "/api/v1/analytics/timeseries", tag = "analytics", params(SeriesQuery),
    security(("user_token" = [])), responses(
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
        sums.entry(truncate(row.bucket))
            .or_default()
            .merge(&row.traffic);
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
