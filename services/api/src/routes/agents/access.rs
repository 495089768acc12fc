//! Which agent a caller may see, and the last call the rollups know of.

use aim_store::model::Agent;
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;

/// An agent of the caller's organization; agents see only themselves. Anything else is a 404,
/// exactly like an id that does not exist.
pub(super) async fn visible_agent(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
) -> Result<Agent, ApiError> {
    if let Principal::Agent { agent_id, .. } = principal
        && *agent_id != id
    {
        return Err(ApiError::NotFound);
    }
    aim_store::agents::get(state.db()?, principal.organization_id(), id)
        .await?
        .ok_or(ApiError::NotFound)
}

/// Moves each agent's `last_active` (its last verification, kept in `agents`) to its last API
/// call when that is later, read from the rollups the writers keep. With analytics off the
/// rollups may not exist (a schema rolled back below them), so `last_active` stays as stored.
pub(crate) async fn with_last_calls(
    state: &AppState,
    agents: &mut [Agent],
) -> Result<(), ApiError> {
    let Some(first) = agents.first() else {
        return Ok(());
    };
    if state.pipeline().is_none() {
        return Ok(());
    }
    let ids: Vec<Uuid> = agents.iter().map(|a| a.id).collect();
    let calls = aim_store::analytics::last_calls(state.db()?, first.organization_id, &ids).await?;
    for agent in agents {
        if let Some(at) = calls.get(&agent.id) {
            agent.last_active = agent.last_active.max(Some(*at));
        }
    }
    Ok(())
}
