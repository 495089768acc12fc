//! Trust recomputation: for an organization (or one of its agents), load the model's inputs in
//! a fixed number of queries, assess every agent with `aim_trust`, then write what changed:
//! scores that moved by at least the policy's step (with their history rows, one statement),
//! the policy's transitions (each with its audit event, alert and webhook deliveries, one
//! transaction each), and the alerts newly seen (one transaction). [`plan`] is the pure part,
//! shared with the dry run, so a dry run shows exactly what a recomputation would do.

use aim_store::alerts::NewAlert;
use aim_store::model::{Actor, AgentStatus};
use aim_store::trust::{Candidate, ScoreWrite, Transition};
use aim_store::{PgPool, StoreError};
use aim_trust::{AlertRule, Assessment, PolicyTransition, TrustPolicy};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::metric_names as names;

/// What a recomputation would do to one agent.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Plan {
    pub agent_id: Uuid,
    pub name: String,
    pub status: AgentStatus,
    /// The status the policy moves it to, when it does.
    pub new_status: Option<AgentStatus>,
    pub stored_score: f64,
    pub assessment: Assessment,
    /// Whether the score moves by at least the step and would be written.
    pub writes_score: bool,
    /// The history row's `change_reason` when it does.
    pub reason: Option<String>,
    /// The alert rules whose conditions the assessment meets (opened unless one is unresolved).
    pub alerts: Vec<AlertRule>,
    #[serde(skip)]
    alert_messages: Vec<String>,
    #[serde(skip)]
    cause: Option<String>,
    #[serde(skip)]
    rules_allowed: i64,
}

/// Assesses one agent and decides what to write. Pure.
pub fn plan(candidate: &Candidate, policy: &TrustPolicy, now: DateTime<Utc>) -> Plan {
    let assessment = aim_trust::assess(&candidate.inputs, policy, now);
    let writes_score = assessment.moves(candidate.stored_score, policy);
    let reason = writes_score.then(|| {
        assessment.reason(
            candidate.stored_score,
            candidate.previous_factors.as_deref(),
        )
    });
    let policy_transition = match candidate.status {
        AgentStatus::Pending | AgentStatus::Verified => aim_trust::transition(
            candidate.status == AgentStatus::Pending,
            &assessment,
            candidate.inputs.rules_allowed,
            policy,
        ),
        AgentStatus::Suspended | AgentStatus::Revoked => None,
    };
    let (new_status, cause) = match policy_transition {
        Some(PolicyTransition::Verify) => (
            Some(AgentStatus::Verified),
            Some(format!(
                "policy: {} allowed verifications and a trust score of {:.2} (at least {} and {:.2})",
                candidate.inputs.rules_allowed,
                assessment.score,
                policy.auto_verify.min_allowed,
                policy.auto_verify.min_score
            )),
        ),
        Some(PolicyTransition::Suspend) => (
            Some(AgentStatus::Suspended),
            Some(format!(
                "policy: trust score {:.2} is below {:.2}",
                assessment.score,
                policy.suspend_below.unwrap_or_default()
            )),
        ),
        None => (None, None),
    };
    let seen = aim_trust::alerts(&assessment, Some(candidate.recent_high), policy);
    Plan {
        agent_id: candidate.agent_id,
        name: candidate.name.clone(),
        status: candidate.status,
        new_status,
        stored_score: candidate.stored_score,
        writes_score,
        reason,
        alerts: seen.iter().map(|(rule, _)| *rule).collect(),
        alert_messages: seen.into_iter().map(|(_, message)| message).collect(),
        cause,
        rules_allowed: candidate.inputs.rules_allowed,
        assessment,
    }
}

/// What one recomputation did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    pub agents: usize,
    pub scores_written: usize,
    pub transitions: usize,
    pub alerts_opened: usize,
    pub queries: usize,
}

impl std::ops::AddAssign for Outcome {
    fn add_assign(&mut self, other: Self) {
        self.agents += other.agents;
        self.scores_written += other.scores_written;
        self.transitions += other.transitions;
        self.alerts_opened += other.alerts_opened;
        self.queries += other.queries;
    }
}

/// The agents the policy suspended: the caller evicts their keys from its key cache.
pub type Suspended = Vec<Uuid>;

/// Recomputes the organization's agents (or `only` one) at `now` and writes what changed.
///
/// # Errors
/// The database error; what was written before it stays written (each write is whole).
pub async fn recompute(
    pool: &PgPool,
    organization_id: Uuid,
    only: Option<Uuid>,
    policy: &TrustPolicy,
    now: DateTime<Utc>,
) -> Result<(Outcome, Suspended), StoreError> {
    let candidates = aim_store::trust::candidates(pool, organization_id, only, policy, now).await?;
    let plans: Vec<Plan> = candidates.iter().map(|c| plan(c, policy, now)).collect();
    let mut outcome = Outcome {
        agents: plans.len(),
        // The agents' query alone when there are none.
        queries: if plans.is_empty() {
            1
        } else {
            aim_store::trust::QUERIES_PER_LOAD
        },
        ..Outcome::default()
    };
    let writes: Vec<ScoreWrite> = plans
        .iter()
        .filter(|p| p.writes_score)
        .map(|p| ScoreWrite {
            agent_id: p.agent_id,
            previous: p.stored_score,
            score: p.assessment.score,
            reason: p.reason.clone().unwrap_or_default(),
            metadata: serde_json::json!({
                "computed_score": p.assessment.computed_score,
                "factors": p.assessment.factors,
                "override": p.assessment.admin_override,
                "computed_at": now,
            }),
            factors: serde_json::to_value(&p.assessment.factors).unwrap_or_default(),
        })
        .collect();
    if !writes.is_empty() {
        outcome.scores_written =
            aim_store::trust::write_scores(pool, organization_id, &writes, now)
                .await?
                .len();
        outcome.queries += 1;
    }
    let mut suspended = Vec::new();
    for p in &plans {
        let (Some(to), Some(cause)) = (p.new_status, p.cause.as_deref()) else {
            continue;
        };
        let applied = aim_store::trust::apply_transition(
            pool,
            organization_id,
            &Transition {
                agent_id: p.agent_id,
                from: p.status,
                to,
                cause,
                score: p.assessment.score,
            },
            policy.alerts.suspended,
            &Actor::default(),
            now,
        )
        .await?;
        outcome.queries += 1;
        if applied {
            outcome.transitions += 1;
            let label = if to == AgentStatus::Suspended {
                "suspended"
            } else {
                "verified"
            };
            metrics::counter!(names::TRUST_TRANSITIONS, "to" => label).increment(1);
            if to == AgentStatus::Suspended {
                suspended.push(p.agent_id);
            }
            tracing::info!(agent_id = %p.agent_id, from = ?p.status, to = ?to, cause, rules_allowed = p.rules_allowed, "trust policy changed an agent's status");
        }
    }
    let alerts: Vec<NewAlert> = plans
        .iter()
        .flat_map(|p| {
            p.alerts
                .iter()
                .zip(&p.alert_messages)
                .map(|(rule, message)| NewAlert {
                    agent_id: p.agent_id,
                    rule: *rule,
                    message: message.clone(),
                    details: serde_json::json!({
                        "trust_score": p.assessment.score,
                        "factors": p.assessment.factors,
                    }),
                })
        })
        .collect();
    if !alerts.is_empty() {
        let mut tx = pool.begin().await?;
        let opened = aim_store::alerts::open(&mut tx, organization_id, &alerts, now).await?;
        tx.commit().await?;
        outcome.queries += 1;
        outcome.alerts_opened = opened.len();
        for alert in &opened {
            metrics::counter!(names::ALERTS_OPENED, "rule" => alert.rule.clone()).increment(1);
        }
    }
    metrics::counter!(names::TRUST_SCORES_WRITTEN).increment(outcome.scores_written as u64);
    Ok((outcome, suspended))
}

/// Recomputes every organization's agents, each under its own policy. An organization whose
/// recomputation fails is logged and skipped; the others go on.
///
/// # Errors
/// The database error of the listing queries.
pub async fn recompute_all(
    pool: &PgPool,
    now: DateTime<Utc>,
) -> Result<(Outcome, Suspended), StoreError> {
    let policies = aim_store::trust::policies(pool).await?;
    let organizations = aim_store::trust::organizations_with_agents(pool).await?;
    let mut total = Outcome {
        queries: 2,
        ..Outcome::default()
    };
    let mut suspended = Vec::new();
    let default = TrustPolicy::default();
    for organization_id in organizations {
        let policy = policies.get(&organization_id).unwrap_or(&default);
        match recompute(pool, organization_id, None, policy, now).await {
            Ok((outcome, mut gone)) => {
                total += outcome;
                suspended.append(&mut gone);
            }
            Err(e) if e.is_unavailable() => return Err(e),
            Err(e) => {
                tracing::warn!(%organization_id, error = %e, "trust recomputation failed for an organization");
            }
        }
    }
    Ok((total, suspended))
}

/// What a policy would do to every agent of the organization, written nowhere.
///
/// # Errors
/// The database error.
pub async fn dry_run(
    pool: &PgPool,
    organization_id: Uuid,
    only: Option<Uuid>,
    policy: &TrustPolicy,
    now: DateTime<Utc>,
) -> Result<Vec<Plan>, StoreError> {
    let candidates = aim_store::trust::candidates(pool, organization_id, only, policy, now).await?;
    Ok(candidates.iter().map(|c| plan(c, policy, now)).collect())
}
