//! Trust-score trends and verification activity: read from `trust_score_history` and
//! `verification_events`, which are small per organization compared with the calls. Weeks and
//! months are UTC; nothing is synthesised: a bucket without data is absent from the trends, and
//! months without verifications are zeros.

use std::collections::BTreeMap;

use aim_store::analytics::TrendUnit;
use aim_store::model::Role;
use axum::Json;
use axum::extract::State;
use chrono::{Datelike, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::ApiQuery;
use crate::state::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(trust_score_trends))
        .routes(routes!(trends))
        .routes(routes!(verification_activity))
}

#[derive(Debug, Default, Serialize, ToSchema)]
struct Ranges {
    /// Scores ≥ 0.9.
    excellent: i64,
    /// 0.7 ≤ score < 0.9.
    good: i64,
    /// 0.5 ≤ score < 0.7.
    fair: i64,
    /// Below 0.5.
    poor: i64,
}

#[derive(Debug, Serialize, ToSchema)]
struct TrendPoint {
    /// The bucket's first day.
    date: NaiveDate,
    /// The week's Monday (weekly trends), or the day.
    week_start: NaiveDate,
    /// Mean of each agent's last score recorded in the bucket.
    avg_score: f64,
    agent_count: i64,
    scores_by_range: Ranges,
}

#[derive(Debug, Serialize, ToSchema)]
struct TrendSummary {
    overall_avg: f64,
    /// `up` or `down` when the last bucket's mean differs from the first's by more than 1%.
    trend_direction: &'static str,
    change_percentage: f64,
}

#[derive(Debug, Serialize, ToSchema)]
struct Trends {
    period: String,
    data_type: &'static str,
    trends: Vec<TrendPoint>,
    summary: TrendSummary,
}

fn round4(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

async fn build(
    state: &AppState,
    principal: &Principal,
    unit: TrendUnit,
    buckets: i64,
) -> Result<Trends, ApiError> {
    principal.user_with(Role::Viewer)?;
    let today = Utc::now().date_naive();
    let first = match unit {
        TrendUnit::Week => {
            let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
            monday - Duration::weeks(buckets - 1)
        }
        TrendUnit::Day => today - Duration::days(buckets - 1),
    };
    let since = first.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let rows = aim_store::analytics::trust_scores_by(
        state.db()?,
        principal.organization_id(),
        unit,
        since,
    )
    .await?;
    let mut by_bucket: BTreeMap<NaiveDate, Vec<f64>> = BTreeMap::new();
    for (bucket, _, score) in rows {
        by_bucket.entry(bucket).or_default().push(score);
    }
    let trends: Vec<TrendPoint> = by_bucket
        .into_iter()
        .map(|(date, scores)| {
            let mut ranges = Ranges::default();
            for s in &scores {
                match *s {
                    s if s >= 0.9 => ranges.excellent += 1,
                    s if s >= 0.7 => ranges.good += 1,
                    s if s >= 0.5 => ranges.fair += 1,
                    _ => ranges.poor += 1,
                }
            }
            TrendPoint {
                date,
                week_start: date,
                avg_score: round4(scores.iter().sum::<f64>() / scores.len() as f64),
                agent_count: scores.len() as i64,
                scores_by_range: ranges,
            }
        })
        .collect();
    let weight: i64 = trends.iter().map(|t| t.agent_count).sum();
    let overall = if weight == 0 {
        0.0
    } else {
        round4(
            trends
                .iter()
                .map(|t| t.avg_score * t.agent_count as f64)
                .sum::<f64>()
                / weight as f64,
        )
    };
    let change = match (trends.first(), trends.last()) {
        (Some(a), Some(b)) if a.avg_score > 0.0 => {
            round4((b.avg_score - a.avg_score) / a.avg_score * 100.0)
        }
        _ => 0.0,
    };
    let (label, data_type) = match unit {
        TrendUnit::Week => (format!("{buckets} weeks"), "weekly"),
        TrendUnit::Day => (format!("{buckets} days"), "daily"),
    };
    Ok(Trends {
        period: label,
        data_type,
        summary: TrendSummary {
            overall_avg: overall,
            trend_direction: if change > 1.0 {
                "up"
            } else if change < -1.0 {
                "down"
            } else {
                "stable"
            },
            change_percentage: change,
        },
        trends,
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct WeeksQuery {
    /// 1–52, default 4.
    #[param(minimum = 1, maximum = 52)]
    weeks: Option<i64>,
}

/// Weekly trust-score trends of the organization's agents, from `trust_score_history`.
#[utoipa::path(get, path = "/api/v1/analytics/trust-score-trends", tag = "analytics", params(WeeksQuery),
    security(("user_token" = [])), responses(
    (status = 200, body = Trends),
    (status = 400, body = ErrorEnvelope),
    (status = 403, body = ErrorEnvelope),
))]
async fn trust_score_trends(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<WeeksQuery>,
) -> Result<Json<Trends>, ApiError> {
    build(&state, &principal, TrendUnit::Week, weeks(query.weeks)?)
        .await
        .map(Json)
}

/// `weeks`, 1–52, 4 when absent.
fn weeks(asked: Option<i64>) -> Result<i64, ApiError> {
    let weeks = asked.unwrap_or(4);
    if (1..=52).contains(&weeks) {
        Ok(weeks)
    } else {
        Err(ApiError::invalid_parameter(
            "weeks must be between 1 and 52",
        ))
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct TrendsQuery {
    /// `weeks` (default) or `days`.
    #[param(schema_with = crate::openapi::trend_period)]
    period: Option<String>,
    /// 1–52, default 4 (with `period=weeks`).
    #[param(minimum = 1, maximum = 52)]
    weeks: Option<i64>,
    /// 1–90, default 30 (with `period=days`).
    #[param(minimum = 1, maximum = 90)]
    days: Option<i64>,
}

/// Trust-score trends by week or by day.
#[utoipa::path(get, path = "/api/v1/analytics/trends", tag = "analytics", params(TrendsQuery),
    security(("user_token" = [])), responses(
    (status = 200, body = Trends),
    (status = 400, body = ErrorEnvelope),
    (status = 403, body = ErrorEnvelope),
))]
async fn trends(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<TrendsQuery>,
) -> Result<Json<Trends>, ApiError> {
    // Both counts are checked whichever the period, so that a request is refused or served the
    // same way whatever its other parameters (the document states both ranges).
    let weeks = weeks(query.weeks)?;
    let days = query.days.unwrap_or(30);
    if !(1..=90).contains(&days) {
        return Err(ApiError::invalid_parameter("days must be between 1 and 90"));
    }
    let (unit, count) = match query.period.as_deref().unwrap_or("weeks") {
        "weeks" => (TrendUnit::Week, weeks),
        "days" => (TrendUnit::Day, days),
        _ => return Err(ApiError::invalid_parameter("period must be weeks or days")),
    };
    build(&state, &principal, unit, count).await.map(Json)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct MonthsQuery {
    /// 1–24, default 6.
    #[param(minimum = 1, maximum = 24)]
    months: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
struct MonthActivity {
    /// `Jan`…`Dec`.
    month: String,
    /// `YYYY-MM`.
    month_year: String,
    /// Events with status `success`.
    verified: i64,
    /// Events with status `failed` or `timeout`.
    failed: i64,
    pending: i64,
    total: i64,
}

#[derive(Debug, Serialize, ToSchema)]
struct CurrentStats {
    /// Agents whose status is `verified` now.
    total_verified: i64,
    /// Agents whose status is `pending` now.
    total_pending: i64,
    total_agents: i64,
}

#[derive(Debug, Serialize, ToSchema)]
struct VerificationActivity {
    period: String,
    activity: Vec<MonthActivity>,
    current_stats: CurrentStats,
}

/// Verification events per month (UTC), every month present, oldest first.
#[utoipa::path(get, path = "/api/v1/analytics/verification-activity", tag = "analytics", params(MonthsQuery),
    security(("user_token" = [])), responses(
    (status = 200, body = VerificationActivity),
    (status = 400, body = ErrorEnvelope),
    (status = 403, body = ErrorEnvelope),
))]
async fn verification_activity(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<MonthsQuery>,
) -> Result<Json<VerificationActivity>, ApiError> {
    principal.user_with(Role::Viewer)?;
    let months = query.months.unwrap_or(6);
    if !(1..=24).contains(&months) {
        return Err(ApiError::invalid_parameter(
            "months must be between 1 and 24",
        ));
    }
    let today = Utc::now().date_naive();
    let mut cursor = NaiveDate::from_ymd_opt(today.year(), today.month(), 1).unwrap_or(today);
    let mut firsts = vec![cursor];
    for _ in 1..months {
        cursor = cursor
            .checked_sub_months(chrono::Months::new(1))
            .unwrap_or(cursor);
        firsts.push(cursor);
    }
    firsts.reverse();
    let since = firsts[0].and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let organization = principal.organization_id();
    let rows =
        aim_store::analytics::verifications_by_month(state.db()?, organization, since).await?;
    let found: BTreeMap<String, (i64, i64, i64, i64)> = rows
        .into_iter()
        .map(|(m, s, f, p, t)| (m, (s, f, p, t)))
        .collect();
    let activity = firsts
        .iter()
        .map(|first| {
            let key = first.format("%Y-%m").to_string();
            let (verified, failed, pending, total) = found.get(&key).copied().unwrap_or_default();
            MonthActivity {
                month: first.format("%b").to_string(),
                month_year: key,
                verified,
                failed,
                pending,
                total,
            }
        })
        .collect();
    let counts = aim_store::analytics::organization_counts(state.db()?, organization).await?;
    Ok(Json(VerificationActivity {
        period: format!("{months} months"),
        activity,
        current_stats: CurrentStats {
            total_verified: counts.verified_agents,
            total_pending: counts.pending_agents,
            total_agents: counts.total_agents,
        },
    }))
}
