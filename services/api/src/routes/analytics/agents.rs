//! Agents' activity: one agent hour by hour, and every agent of the organization over a period.

use std::collections::BTreeMap;

use aim_pipeline::rollup::truncate_to_hour;
use aim_store::analytics::Rollup;
use aim_store::model::Page;
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
use crate::extract::{ApiPath, ApiQuery};
use crate::state::AppState;

use super::query::{Period, mib, page, percent, round2, total};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(agent_activity))
        .routes(routes!(agents_activity))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AgentActivityQuery {
    /// 1–720, default 24.
    #[param(minimum = 1, maximum = 720)]
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
    params(("id" = Uuid, Path), AgentActivityQuery), security(("user_token" = [])), responses(
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
        rows.into_iter().map(|r| (r.bucket, r.traffic)).collect();
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
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// Default 0.
    #[param(minimum = 0)]
    offset: Option<i64>,
    /// 1–365, default 30.
    #[param(minimum = 1, maximum = 365)]
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
    params(AgentsActivityQuery), security(("user_token" = [])), responses(
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
    let Page { limit, offset } = page(query.limit, query.offset, 10)?;
    let period = Period::parse(None, Some(query.days.unwrap_or(30)), "month")?;
    let organization = principal.organization_id();
    let rows = period
        .rows(&state, organization, Rollup::Agents(None))
        .await?;
    let mut per_agent: BTreeMap<Uuid, Traffic> = BTreeMap::new();
    for row in &rows {
        if let Some(agent) = row.agent_id {
            per_agent.entry(agent).or_default().merge(&row.traffic);
        }
    }
    let all = total(&rows);
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
