//! What trust scoring reads and writes: each organization's policy, the inputs of the model for
//! every agent of an organization in a fixed number of queries (agents, their hourly rollups,
//! their keys, their recent history; never `api_calls`), the scores that moved with their
//! history rows in one statement, and the policy's status transitions with their audit event,
//! alert and webhook deliveries in one transaction each.

use std::collections::HashMap;

use aim_trust::{FactorValue, Inputs, KeyFacts, Override, TrustPolicy, VOLUME_BASELINE_DAYS};
use chrono::{DateTime, Duration, DurationRound, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::StoreError;
use crate::audit::{self, AuditEntry};
use crate::model::{Actor, AgentStatus};
use crate::webhooks;

/// The organization's policy, or the defaults when it never set one. A stored policy missing
/// fields added since reads them at their defaults.
///
/// # Errors
/// The database error; a stored policy that no longer parses (it was validated when written).
pub async fn policy(pool: &PgPool, organization_id: Uuid) -> Result<TrustPolicy, StoreError> {
    let stored: Option<sqlx::types::Json<TrustPolicy>> =
        sqlx::query_scalar("SELECT policy FROM trust_policies WHERE organization_id = $1")
            .bind(organization_id)
            .fetch_optional(pool)
            .await?;
    Ok(stored.map(|p| p.0).unwrap_or_default())
}

/// The policies of every organization that stored one; the others use the defaults.
///
/// # Errors
/// The database error.
pub async fn policies(pool: &PgPool) -> Result<HashMap<Uuid, TrustPolicy>, StoreError> {
    let rows: Vec<(Uuid, sqlx::types::Json<TrustPolicy>)> =
        sqlx::query_as("SELECT organization_id, policy FROM trust_policies")
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(|(id, p)| (id, p.0)).collect())
}

/// Replaces the organization's policy (already validated) and audits the change.
///
/// # Errors
/// The database error.
pub async fn set_policy(
    pool: &PgPool,
    organization_id: Uuid,
    policy: &TrustPolicy,
    actor: &Actor,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO trust_policies (organization_id, policy, updated_by) VALUES ($1, $2, $3) \
         ON CONFLICT (organization_id) DO UPDATE \
         SET policy = excluded.policy, updated_by = excluded.updated_by, updated_at = excluded.updated_at",
    )
    .bind(organization_id)
    .bind(sqlx::types::Json(policy))
    .bind(actor.id)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        AuditEntry {
            organization_id: Some(organization_id),
            actor,
            action: "trust_policy.updated",
            target_type: Some("organization"),
            target_id: Some(organization_id),
            details: serde_json::to_value(policy).unwrap_or_default(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// [`policy`], or the defaults on a schema rolled back below the trust migration (no
/// `trust_policies` table): what `verify-action` reads, so the service keeps verifying with
/// analytics off on a schema rolled back to the identity tables.
///
/// # Errors
/// The database error, but an undefined table.
pub async fn policy_or_default(
    pool: &PgPool,
    organization_id: Uuid,
) -> Result<TrustPolicy, StoreError> {
    match policy(pool, organization_id).await {
        Err(StoreError::Database(sqlx::Error::Database(e)))
            if e.code().as_deref() == Some(UNDEFINED_TABLE) =>
        {
            Ok(TrustPolicy::default())
        }
        other => other,
    }
}

/// SQLSTATE 42P01.
const UNDEFINED_TABLE: &str = "42P01";

/// Every organization that has an agent the scorer looks at.
///
/// # Errors
/// The database error.
pub async fn organizations_with_agents(pool: &PgPool) -> Result<Vec<Uuid>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT organization_id FROM agents \
         WHERE deleted_at IS NULL AND status <> 'revoked' ORDER BY 1",
    )
    .fetch_all(pool)
    .await?)
}

/// One agent as the scorer sees it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub agent_id: Uuid,
    pub name: String,
    pub status: AgentStatus,
    pub stored_score: f64,
    /// The factors behind the stored score, when the service wrote it.
    pub previous_factors: Option<Vec<FactorValue>>,
    pub inputs: Inputs,
    /// The highest score written within the drop rule's hours, the stored one included.
    pub recent_high: f64,
}

/// The hours and days a load at `now` reads.
struct Windows {
    since: DateTime<Utc>,
    verification_since: DateTime<Utc>,
    error_since: DateTime<Utc>,
    baseline_since: DateTime<Utc>,
    last_hour: DateTime<Utc>,
    same_hours: Vec<DateTime<Utc>>,
    revocations_since: DateTime<Utc>,
    drop_since: DateTime<Utc>,
}

impl Windows {
    fn new(policy: &TrustPolicy, now: DateTime<Utc>) -> Self {
        let hour = now.duration_trunc(Duration::hours(1)).unwrap_or(now);
        let error_since = hour - Duration::hours(i64::from(policy.error_window_hours) - 1);
        let baseline_since = error_since - Duration::days(i64::from(policy.error_baseline_days));
        let last_hour = hour - Duration::hours(1);
        let same_hours: Vec<_> = (1..=i64::from(VOLUME_BASELINE_DAYS))
            .map(|d| last_hour - Duration::days(d))
            .collect();
        let verification_since = hour - Duration::days(i64::from(policy.verification_window_days));
        let earliest_same_hour = same_hours.last().copied().unwrap_or(last_hour);
        Self {
            since: verification_since
                .min(baseline_since)
                .min(earliest_same_hour),
            verification_since,
            error_since,
            baseline_since,
            last_hour,
            same_hours,
            revocations_since: now - Duration::days(i64::from(policy.revocation_window_days)),
            drop_since: now
                - Duration::hours(
                    policy
                        .alerts
                        .score_drop
                        .as_ref()
                        .map_or(0, |d| i64::from(d.hours)),
                ),
        }
    }
}

#[derive(sqlx::FromRow)]
struct AgentRow {
    id: Uuid,
    name: String,
    status: AgentStatus,
    trust_score: f64,
    trust_factors: Option<sqlx::types::Json<Vec<FactorValue>>>,
    created_at: DateTime<Utc>,
    last_active: Option<DateTime<Utc>>,
    trust_override_score: Option<f64>,
    trust_override_reason: Option<String>,
    trust_override_expires_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct TrafficRow {
    agent_id: Uuid,
    rules_allowed: i64,
    rules_denied: i64,
    recent_calls: i64,
    recent_errors: i64,
    baseline_calls: i64,
    baseline_errors: i64,
    hour_calls: i64,
    same_hour_calls: i64,
    last_call_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    agent_id: Uuid,
    oldest_active: Option<DateTime<Utc>>,
    without_expiry: i64,
    revoked: i64,
}

/// The number of queries [`candidates`] sends, whatever the number of agents.
pub const QUERIES_PER_LOAD: usize = 4;

/// The scorer's view of the organization's live agents: pending, verified and suspended ones
/// (revoked and deleted agents are not scored); or of one (`only`), revoked included, so that
/// its score can still be explained. [`QUERIES_PER_LOAD`] queries.
///
/// # Errors
/// The database error.
pub async fn candidates(
    pool: &PgPool,
    organization_id: Uuid,
    only: Option<Uuid>,
    policy: &TrustPolicy,
    now: DateTime<Utc>,
) -> Result<Vec<Candidate>, StoreError> {
    let w = Windows::new(policy, now);
    let agents: Vec<AgentRow> = sqlx::query_as(
        "SELECT id, name, status, trust_score, trust_factors, created_at, last_active, \
             trust_override_score, trust_override_reason, trust_override_expires_at \
         FROM agents WHERE organization_id = $1 AND ($2::uuid IS NULL OR id = $2) \
             AND deleted_at IS NULL AND (status <> 'revoked' OR $2::uuid IS NOT NULL) \
         ORDER BY id",
    )
    .bind(organization_id)
    .bind(only)
    .fetch_all(pool)
    .await?;
    if agents.is_empty() {
        return Ok(Vec::new());
    }
    let traffic: Vec<TrafficRow> = sqlx::query_as(
        "SELECT agent_id, \
             coalesce(sum(rules_allowed_count) FILTER (WHERE hour_timestamp >= $4), 0)::int8 AS rules_allowed, \
             coalesce(sum(rules_denied_count) FILTER (WHERE hour_timestamp >= $4), 0)::int8 AS rules_denied, \
             coalesce(sum(api_calls_count) FILTER (WHERE hour_timestamp >= $5), 0)::int8 AS recent_calls, \
             coalesce(sum(errors_count) FILTER (WHERE hour_timestamp >= $5), 0)::int8 AS recent_errors, \
             coalesce(sum(api_calls_count) FILTER (WHERE hour_timestamp >= $6 AND hour_timestamp < $5), 0)::int8 AS baseline_calls, \
             coalesce(sum(errors_count) FILTER (WHERE hour_timestamp >= $6 AND hour_timestamp < $5), 0)::int8 AS baseline_errors, \
             coalesce(sum(api_calls_count) FILTER (WHERE hour_timestamp = $7), 0)::int8 AS hour_calls, \
             coalesce(sum(api_calls_count) FILTER (WHERE hour_timestamp = ANY($8)), 0)::int8 AS same_hour_calls, \
             max(last_call_at) AS last_call_at \
         FROM agent_activity_metrics \
         WHERE organization_id = $1 AND ($2::uuid IS NULL OR agent_id = $2) \
             AND hour_timestamp >= $3 AND hour_timestamp <= $9 \
         GROUP BY agent_id",
    )
    .bind(organization_id)
    .bind(only)
    .bind(w.since)
    .bind(w.verification_since)
    .bind(w.error_since)
    .bind(w.baseline_since)
    .bind(w.last_hour)
    .bind(&w.same_hours)
    // A backdated assessment does not see hours from its future.
    .bind(now)
    .fetch_all(pool)
    .await?;
    let keys: Vec<KeyRow> = sqlx::query_as(
        "SELECT agent_id, \
             min(created_at) FILTER (WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $3)) AS oldest_active, \
             count(*) FILTER (WHERE revoked_at IS NULL AND expires_at IS NULL) AS without_expiry, \
             count(*) FILTER (WHERE revoked_at >= $4) AS revoked \
         FROM api_keys WHERE organization_id = $1 AND ($2::uuid IS NULL OR agent_id = $2) \
         GROUP BY agent_id",
    )
    .bind(organization_id)
    .bind(only)
    .bind(now)
    .bind(w.revocations_since)
    .fetch_all(pool)
    .await?;
    let highs: Vec<(Uuid, f64)> = sqlx::query_as(
        "SELECT agent_id, max(trust_score) FROM trust_score_history \
         WHERE organization_id = $1 AND ($2::uuid IS NULL OR agent_id = $2) \
             AND recorded_at >= $3 AND recorded_at <= $4 \
         GROUP BY agent_id",
    )
    .bind(organization_id)
    .bind(only)
    .bind(w.drop_since)
    .bind(now)
    .fetch_all(pool)
    .await?;
    let mut traffic: HashMap<Uuid, TrafficRow> =
        traffic.into_iter().map(|t| (t.agent_id, t)).collect();
    let mut keys: HashMap<Uuid, KeyRow> = keys.into_iter().map(|k| (k.agent_id, k)).collect();
    let highs: HashMap<Uuid, f64> = highs.into_iter().collect();
    Ok(agents
        .into_iter()
        .map(|a| {
            let t = traffic.remove(&a.id);
            let k = keys.remove(&a.id);
            let last_active = match (a.last_active, t.as_ref().and_then(|t| t.last_call_at)) {
                (Some(x), Some(y)) => Some(x.max(y)),
                (x, y) => x.or(y),
            }
            // A backdated assessment does not see activity from its future.
            .map(|at| at.min(now));
            let admin_override = a.trust_override_score.map(|score| Override {
                score,
                reason: a.trust_override_reason.clone().unwrap_or_default(),
                expires_at: a.trust_override_expires_at,
            });
            let inputs = Inputs {
                created_at: a.created_at.min(now),
                last_active,
                rules_allowed: t.as_ref().map_or(0, |t| t.rules_allowed),
                rules_denied: t.as_ref().map_or(0, |t| t.rules_denied),
                recent_calls: t.as_ref().map_or(0, |t| t.recent_calls),
                recent_errors: t.as_ref().map_or(0, |t| t.recent_errors),
                baseline_calls: t.as_ref().map_or(0, |t| t.baseline_calls),
                baseline_errors: t.as_ref().map_or(0, |t| t.baseline_errors),
                hour_calls: t.as_ref().map_or(0, |t| t.hour_calls),
                same_hour_calls: t.as_ref().map_or(0, |t| t.same_hour_calls),
                keys: k.map_or_else(KeyFacts::default, |k| KeyFacts {
                    oldest_active_created_at: k.oldest_active,
                    active_without_expiry: k.without_expiry,
                    recent_revocations: k.revoked,
                }),
                admin_override,
            };
            Candidate {
                agent_id: a.id,
                name: a.name,
                status: a.status,
                stored_score: a.trust_score,
                previous_factors: a.trust_factors.map(|f| f.0),
                inputs,
                recent_high: highs
                    .get(&a.id)
                    .copied()
                    .map_or(a.trust_score, |h| h.max(a.trust_score)),
            }
        })
        .collect())
}

/// A score the service decided to write.
#[derive(Debug, Clone)]
pub struct ScoreWrite {
    pub agent_id: Uuid,
    /// The score the decision was made against; a row that changed meanwhile (a manager's
    /// override) is left alone.
    pub previous: f64,
    pub score: f64,
    pub reason: String,
    /// Every factor's value and weight, the override in force, the computed score.
    pub metadata: serde_json::Value,
    pub factors: serde_json::Value,
}

/// Writes the scores and their history rows in one statement (one transaction), `recorded_at`
/// = `now`, `changed_by` NULL. Returns the agents written.
///
/// # Errors
/// The database error.
pub async fn write_scores(
    pool: &PgPool,
    organization_id: Uuid,
    writes: &[ScoreWrite],
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, StoreError> {
    if writes.is_empty() {
        return Ok(Vec::new());
    }
    let history_ids: Vec<Uuid> = writes.iter().map(|_| Uuid::now_v7()).collect();
    let agent_ids: Vec<Uuid> = writes.iter().map(|w| w.agent_id).collect();
    let previous: Vec<f64> = writes.iter().map(|w| w.previous).collect();
    let scores: Vec<f64> = writes.iter().map(|w| w.score).collect();
    let reasons: Vec<&str> = writes.iter().map(|w| w.reason.as_str()).collect();
    let metadata: Vec<&serde_json::Value> = writes.iter().map(|w| &w.metadata).collect();
    let factors: Vec<&serde_json::Value> = writes.iter().map(|w| &w.factors).collect();
    Ok(sqlx::query_scalar(
        "WITH u AS (SELECT * FROM unnest($2::uuid[], $3::uuid[], $4::float8[], $5::float8[], \
                 $6::text[], $7::jsonb[], $8::jsonb[]) \
                 AS u(history_id, agent_id, previous, score, reason, metadata, factors)), \
         changed AS ( \
             UPDATE agents a SET trust_score = u.score, trust_factors = u.factors, updated_at = $9 \
             FROM u WHERE a.organization_id = $1 AND a.id = u.agent_id \
                 AND a.trust_score = u.previous AND a.deleted_at IS NULL \
             RETURNING a.id) \
         INSERT INTO trust_score_history (id, organization_id, agent_id, trust_score, \
             previous_score, change_reason, changed_by, recorded_at, metadata) \
         SELECT u.history_id, $1, u.agent_id, u.score, u.previous, u.reason, NULL, $9, u.metadata \
         FROM u JOIN changed ON changed.id = u.agent_id \
         RETURNING agent_id",
    )
    .bind(organization_id)
    .bind(&history_ids)
    .bind(&agent_ids)
    .bind(&previous)
    .bind(&scores)
    .bind(&reasons)
    .bind(&metadata)
    .bind(&factors)
    .bind(now)
    .fetch_all(pool)
    .await?)
}

/// A status change the policy (or a person) makes.
#[derive(Debug, Clone)]
pub struct Transition<'a> {
    pub agent_id: Uuid,
    pub from: AgentStatus,
    pub to: AgentStatus,
    /// Why, in words: recorded in the audit event and the webhook payload.
    pub cause: &'a str,
    pub score: f64,
}

/// Applies a transition if the agent is still in `from`: the status, its audit event, a
/// `suspended` alert when the policy asks for one, and the webhook deliveries of both, in one
/// transaction. Returns whether it applied.
///
/// # Errors
/// The database error.
pub async fn apply_transition(
    pool: &PgPool,
    organization_id: Uuid,
    transition: &Transition<'_>,
    suspended_alert: bool,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let changed = sqlx::query(
        "UPDATE agents SET status = $4, updated_at = $5 \
         WHERE organization_id = $1 AND id = $2 AND status = $3 AND deleted_at IS NULL",
    )
    .bind(organization_id)
    .bind(transition.agent_id)
    .bind(transition.from)
    .bind(transition.to)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 0 {
        return Ok(false);
    }
    record_transition(&mut tx, organization_id, transition, actor, now).await?;
    if suspended_alert && transition.to == AgentStatus::Suspended {
        crate::alerts::open(
            &mut tx,
            organization_id,
            &[crate::alerts::NewAlert {
                agent_id: transition.agent_id,
                rule: aim_trust::AlertRule::Suspended,
                message: format!("agent suspended: {}", transition.cause),
                details: serde_json::json!({ "trust_score": transition.score }),
            }],
            now,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// The audit event and webhook deliveries of a status change already made in `conn`'s
/// transaction; the store's PATCH uses it too, so every transition is announced the same way.
///
/// # Errors
/// The database error.
pub async fn record_transition(
    conn: &mut PgConnection,
    organization_id: Uuid,
    transition: &Transition<'_>,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let details = serde_json::json!({
        "from": transition.from,
        "to": transition.to,
        "cause": transition.cause,
        "trust_score": transition.score,
    });
    audit::record(
        conn,
        AuditEntry {
            organization_id: Some(organization_id),
            actor,
            action: "agent.status_changed",
            target_type: Some("agent"),
            target_id: Some(transition.agent_id),
            details: details.clone(),
        },
    )
    .await?;
    webhooks::enqueue(
        conn,
        organization_id,
        webhooks::EVENT_STATUS_CHANGED,
        serde_json::json!({ "agent_id": transition.agent_id, "changed_by": actor.id, "at": now, "transition": details }),
        now,
    )
    .await?;
    Ok(())
}
