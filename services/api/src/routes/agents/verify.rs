//! `verify-action`: the decision rule and the recorded verification.

use aim_store::model::{AgentStatus, Role, RuleOutcome, VerificationEvent, VerificationStatus};
use aim_store::verifications::NewVerification;
use axum::Json;
use axum::extract::State;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::{ApiJson, ApiPath};
use crate::routes::validation::FieldErrors;
use crate::state::AppState;

use super::access::visible_agent;
use super::checks::check_object;

/// A verified agent needs at least this trust score for its actions to be allowed.
pub const MIN_TRUST_FOR_SUCCESS: f64 = 0.5;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(verify_action))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct VerifyAction {
    /// What the agent wants to do, e.g. `read:customer_records`.
    #[schema(max_length = 200, pattern = "{not_blank}")]
    action: String,
    /// What it wants to do it to.
    #[schema(max_length = 500, pattern = "{not_blank}")]
    resource: Option<String>,
    /// A JSON object of at most 16 KiB (serialized), with no U+0000 in any key or string.
    #[schema(value_type = Option<Object>)]
    context: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
struct Verification {
    /// True when `status` is `success`.
    allowed: bool,
    #[serde(flatten)]
    event: VerificationEvent,
}

/// The rule, in two steps. First the organization's action rules (`denied_actions` of its
/// trust policy): a denied action is refused (`failed`) whoever asks. Then the agent: a verified
/// agent with a trust score of at least 0.5 is allowed (`success`); a verified agent below it is
/// refused (`failed`); a pending agent is `pending`; a suspended or revoked agent is refused
/// (`failed`). The first step's outcome is recorded apart (`rule_outcome`): trust scoring counts
/// only it, so a low score cannot feed on the refusals it causes.
pub fn decide(
    rules_allow: bool,
    status: AgentStatus,
    trust_score: f64,
) -> (VerificationStatus, &'static str, RuleOutcome) {
    if !rules_allow {
        return (
            VerificationStatus::Failed,
            "the organization's rules deny this action",
            RuleOutcome::Denied,
        );
    }
    let (status, reason) = decide_for_agent(status, trust_score);
    (status, reason, RuleOutcome::Allowed)
}

fn decide_for_agent(status: AgentStatus, trust_score: f64) -> (VerificationStatus, &'static str) {
    match status {
        AgentStatus::Verified if trust_score >= MIN_TRUST_FOR_SUCCESS => {
            (VerificationStatus::Success, "agent is verified and trusted")
        }
        AgentStatus::Verified => (VerificationStatus::Failed, "trust score is below 0.5"),
        AgentStatus::Pending => (
            VerificationStatus::Pending,
            "agent is awaiting verification",
        ),
        AgentStatus::Suspended => (VerificationStatus::Failed, "agent is suspended"),
        AgentStatus::Revoked => (VerificationStatus::Failed, "agent is revoked"),
    }
}

/// Decides whether the agent may perform an action and records the decision as a verification
/// event. Called by the agent itself (with its key) or by a member+ user of its organization.
#[utoipa::path(post, path = "/api/v1/agents/{id}/verify-action", tag = "agents", params(("id" = Uuid, Path)),
    request_body = VerifyAction, security(("user_token" = []), ("agent_key" = []), ("agent_key_bearer" = [])), responses(
    (status = 200, body = Verification),
    (status = 403, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope),
    (status = 422, body = ErrorEnvelope),
))]
async fn verify_action(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<VerifyAction>,
) -> Result<Json<Verification>, ApiError> {
    let started_at = Utc::now();
    let clock = std::time::Instant::now();
    if let Principal::User { .. } = principal {
        principal.user_with(Role::Member)?;
    }
    let mut errors = FieldErrors::default();
    errors.text(&body.action, "action", 200);
    if let Some(resource) = &body.resource {
        errors.text(resource, "resource", 500);
    }
    check_object(&mut errors, "context", body.context.as_ref());
    errors.finish()?;
    let agent = visible_agent(&state, &principal, id).await?;
    let db = state.db()?;
    let policy = aim_store::trust::policy_or_default(db, agent.organization_id).await?;
    let action = body.action.trim();
    let (status, reason, rule_outcome) = decide(
        policy.action_allowed(action),
        agent.status,
        agent.trust_score,
    );
    let rollups = state.pipeline().is_some();
    let event = aim_store::verifications::record(
        db,
        NewVerification {
            organization_id: agent.organization_id,
            agent_id: agent.id,
            action: action.to_owned(),
            resource: body.resource.map(|r| r.trim().to_owned()),
            context: body.context,
            status,
            reason: reason.to_owned(),
            rule_outcome,
            duration_ms: clock.elapsed().as_secs_f64() * 1000.0,
            started_at,
            rollups,
        },
    )
    .await?;
    if rollups {
        // The verification is recorded whatever happens here; the scheduled run catches up.
        match crate::trust::recompute(
            db,
            agent.organization_id,
            Some(agent.id),
            &policy,
            Utc::now(),
        )
        .await
        {
            Ok((_, suspended)) => {
                for agent_id in suspended {
                    state.key_cache().evict_agent(agent_id);
                }
            }
            Err(e) => {
                tracing::warn!(agent_id = %agent.id, error = %e, "recomputing the agent's trust after a verification failed")
            }
        }
    }
    Ok(Json(Verification {
        allowed: status == VerificationStatus::Success,
        event,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decision_rule_is_the_documented_one() {
        assert_eq!(
            decide(true, AgentStatus::Verified, 0.5).0,
            VerificationStatus::Success
        );
        assert_eq!(
            decide(true, AgentStatus::Verified, 0.49).0,
            VerificationStatus::Failed
        );
        assert_eq!(
            decide(true, AgentStatus::Pending, 1.0).0,
            VerificationStatus::Pending
        );
        assert_eq!(
            decide(true, AgentStatus::Suspended, 1.0).0,
            VerificationStatus::Failed
        );
        assert_eq!(
            decide(true, AgentStatus::Revoked, 1.0).0,
            VerificationStatus::Failed
        );
        // The rules decide first, and their outcome is what scoring counts.
        assert_eq!(
            decide(false, AgentStatus::Verified, 1.0),
            (
                VerificationStatus::Failed,
                "the organization's rules deny this action",
                RuleOutcome::Denied
            )
        );
        assert_eq!(
            decide(true, AgentStatus::Pending, 0.0).2,
            RuleOutcome::Allowed
        );
    }
}
