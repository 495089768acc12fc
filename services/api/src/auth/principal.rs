//! The [`Principal`] extractor: the caller's organization and identity, from a user access
//! token or an agent key, and [`ClientMeta`], the caller's address and request id for the audit
//! trail.

use std::net::IpAddr;

use aim_store::model::{Actor, ActorKind, Role};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use chrono::Utc;
use uuid::Uuid;

use super::api_keys::{self, Lookup, ValidKey};
use super::jwt::TokenType;
use crate::error::ApiError;
use crate::middleware::analytics::{self, Attribution};
use crate::middleware::request_id::RequestId;
use crate::state::AppState;

/// Who is calling. Every query a handler makes is scoped by `organization_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    User {
        user_id: Uuid,
        organization_id: Uuid,
        role: Role,
    },
    Agent {
        agent_id: Uuid,
        organization_id: Uuid,
        key_id: Uuid,
    },
}

impl Principal {
    pub fn organization_id(&self) -> Uuid {
        match self {
            Self::User {
                organization_id, ..
            }
            | Self::Agent {
                organization_id, ..
            } => *organization_id,
        }
    }

    /// The calling user's id when it is a user with at least `min`.
    ///
    /// # Errors
    /// [`ApiError::Forbidden`] for agents and for users below `min`.
    pub fn user_with(&self, min: Role) -> Result<Uuid, ApiError> {
        match self {
            Self::User { user_id, role, .. } if role.at_least(min) => Ok(*user_id),
            Self::User { .. } => Err(ApiError::Forbidden(match min {
                Role::Admin => "this needs the admin role",
                Role::Manager => "this needs the manager role or higher",
                Role::Member => "this needs the member role or higher",
                Role::Viewer => "this needs a user account",
            })),
            Self::Agent { .. } => Err(ApiError::Forbidden("agent keys cannot do this")),
        }
    }

    /// Who the analytics layer records this call as.
    pub fn attribution(&self) -> Attribution {
        match self {
            Self::User {
                user_id,
                organization_id,
                ..
            } => Attribution {
                organization_id: *organization_id,
                agent_id: None,
                user_id: Some(*user_id),
            },
            Self::Agent {
                agent_id,
                organization_id,
                ..
            } => Attribution {
                organization_id: *organization_id,
                agent_id: Some(*agent_id),
                user_id: None,
            },
        }
    }

    pub fn actor(&self, meta: &ClientMeta) -> Actor {
        let (kind, id) = match self {
            Self::User { user_id, .. } => (ActorKind::User, *user_id),
            Self::Agent { agent_id, .. } => (ActorKind::Agent, *agent_id),
        };
        Actor {
            kind,
            id: Some(id),
            ip: meta.ip.map(|ip| ip.to_string()),
            request_id: meta.request_id.clone(),
        }
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        let credential = credential(&parts.headers)?.ok_or(ApiError::Unauthorized)?;
        let (principal, suspended) = if api_keys::looks_like_key(credential) {
            authenticate_key(state, credential).await?
        } else {
            (authenticate_user(state, credential).await?, false)
        };
        analytics::attribute(principal.attribution());
        // After attribution: a suspended agent's refused calls are its calls.
        if suspended {
            return Err(ApiError::AgentSuspended);
        }
        // After attribution: a rate-limited call is still a call of this agent.
        if let Principal::Agent { key_id, .. } = principal {
            state.rate_limits().check_agent_key(key_id)?;
        }
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}

/// `Authorization: Bearer <credential>`, or `X-API-Key: <key>`; not both. A request carrying
/// both is ambiguous (which identity should it act as, and should a bad one be ignored?), so it
/// is refused with a 400 whatever the headers hold, rather than one silently winning.
fn credential(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let authorization = headers.get(header::AUTHORIZATION);
    let api_key = headers.get("x-api-key");
    match (authorization, api_key) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "ambiguous_credentials",
            "Send either Authorization or X-API-Key, not both.",
        )),
        (Some(value), None) => Ok(value.to_str().ok().and_then(|value| {
            let (scheme, rest) = value.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| rest.trim())
                .filter(|c| !c.is_empty())
        })),
        (None, Some(value)) => Ok(value.to_str().ok().map(str::trim).filter(|c| !c.is_empty())),
        (None, None) => Ok(None),
    }
}

async fn authenticate_user(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let claims = state
        .tokens()
        .verify(token, TokenType::Access)
        .map_err(|_| ApiError::Unauthorized)?;
    // The role, the account's state and the session's are read now, not trusted from the token,
    // so a deactivation, a demotion or a logout applies to the very next request.
    let role = aim_store::users::active_role(state.db()?, claims.org, claims.sub, claims.sid)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    Ok(Principal::User {
        user_id: claims.sub,
        organization_id: claims.org,
        role,
    })
}

/// The key's agent, and whether it is suspended.
async fn authenticate_key(state: &AppState, key: &str) -> Result<(Principal, bool), ApiError> {
    let hash = api_keys::hash(key);
    let now = Utc::now();
    let cache = state.key_cache();
    let valid = match cache.lookup(&hash) {
        Lookup::Fresh(cached) => cached,
        Lookup::Recheck(cached) => {
            tokio::spawn(recheck_key(state.clone(), hash, cached.clone()));
            cached
        }
        known => {
            let generation = cache.generation();
            // `Err(None)`: the breaker is open, as good as a check that found the database down.
            let checked = match state.db() {
                Ok(pool) => aim_store::api_keys::owner_by_hash(pool, &hash)
                    .await
                    .map_err(Some),
                Err(_) => Err(None),
            };
            let refused = |e: Option<aim_store::StoreError>| {
                e.map_or_else(|| state.breaker().refusal(), ApiError::from)
            };
            match checked {
                Ok(owner) => {
                    let Some(owner) = owner.filter(|owner| api_keys::usable(owner, now)) else {
                        cache.forget(&hash);
                        return Err(ApiError::Unauthorized);
                    };
                    let valid = ValidKey::new(&owner);
                    // Not cached when a revocation may have overtaken the check; it still answers
                    // this call, which began before the revocation.
                    cache.insert(hash, valid.clone(), generation);
                    valid
                }
                // The database cannot say otherwise: an earlier check stands, so the agent's
                // calls keep working (and keep being recorded) through the outage, and stop
                // waiting for the database until a background check finds it back.
                Err(e) if e.as_ref().is_none_or(aim_store::StoreError::is_unavailable) => {
                    match known {
                        Lookup::Stale(cached) => {
                            state.breaker().trip(state.pool());
                            cached.database_unavailable();
                            cached
                        }
                        _ => return Err(refused(e)),
                    }
                }
                Err(e) => return Err(refused(e)),
            }
        }
    };
    if valid.expired(now) {
        // Every call checks the expiry, so no cached copy can outlive it: no need to hold other
        // checks back as a revocation does.
        cache.forget(&hash);
        return Err(ApiError::Unauthorized);
    }
    if let Some(pool) = valid.due_for_touch(now).then(|| state.db().ok()).flatten() {
        let pool = pool.clone();
        let key_id = valid.key_id;
        // Off the request path, at most once a minute per key; a failure only delays the
        // timestamp.
        tokio::spawn(async move {
            if let Err(e) = aim_store::api_keys::touch(&pool, key_id).await {
                tracing::debug!(error = %e, "could not record last_used_at");
            }
        });
    }
    Ok((
        Principal::Agent {
            agent_id: valid.agent_id,
            organization_id: valid.organization_id,
            key_id: valid.key_id,
        },
        valid.suspended,
    ))
}

/// A key's check made again off the request path: the caller has already been let through on
/// the cached check, which stays in place until this one replaces or evicts it.
async fn recheck_key(state: AppState, hash: api_keys::KeyHash, cached: ValidKey) {
    let cache = state.key_cache();
    let generation = cache.generation();
    let Ok(pool) = state.db() else {
        cached.database_unavailable();
        return;
    };
    match aim_store::api_keys::owner_by_hash(pool, &hash).await {
        Ok(Some(owner)) if api_keys::usable(&owner, Utc::now()) => {
            if !cache.insert(hash, cached.checked_again(&owner), generation) {
                // A revocation overtook the check: the next call checks on the request path.
                cache.forget(&hash);
            }
        }
        Ok(_) => cache.forget(&hash),
        Err(e) if e.is_unavailable() => {
            state.breaker().trip(state.pool());
            cached.database_unavailable();
        }
        Err(e) => {
            // Not an outage: the next call checks on the request path and gets the error.
            tracing::warn!(error = %e, "could not check an API key again");
            cache.forget(&hash);
        }
    }
}

/// The client's address (the peer, or `X-Forwarded-For` behind a trusted proxy) and the
/// request id.
#[derive(Debug, Clone, Default)]
pub struct ClientMeta {
    pub ip: Option<IpAddr>,
    pub request_id: Option<String>,
}

impl FromRequestParts<AppState> for ClientMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self {
            ip: crate::client_addr::client_ip(
                &parts.headers,
                &parts.extensions,
                state.trust_proxy(),
            ),
            request_id: parts
                .extensions
                .get::<RequestId>()
                .map(|id| id.as_str().to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn credentials_come_from_bearer_or_api_key_headers_never_both() {
        fn found(headers: &HeaderMap) -> Result<Option<&str>, &'static str> {
            credential(headers).map_err(|e| e.code())
        }
        let mut headers = HeaderMap::new();
        assert_eq!(found(&headers), Ok(None));
        headers.insert("x-api-key", HeaderValue::from_static("aim_x"));
        assert_eq!(found(&headers), Ok(Some("aim_x")));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer tok"),
        );
        assert_eq!(found(&headers), Err("ambiguous_credentials"));
        headers.remove("x-api-key");
        assert_eq!(found(&headers), Ok(Some("tok")));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic dXNlcg=="),
        );
        assert_eq!(
            found(&headers),
            Ok(None),
            "other schemes are not credentials"
        );
    }

    #[test]
    fn roles_gate_by_rank_and_agents_never_pass() {
        let viewer = Principal::User {
            user_id: Uuid::nil(),
            organization_id: Uuid::nil(),
            role: Role::Viewer,
        };
        assert!(viewer.user_with(Role::Viewer).is_ok());
        assert!(viewer.user_with(Role::Member).is_err());
        let admin = Principal::User {
            user_id: Uuid::nil(),
            organization_id: Uuid::nil(),
            role: Role::Admin,
        };
        assert!(admin.user_with(Role::Manager).is_ok());
        let agent = Principal::Agent {
            agent_id: Uuid::nil(),
            organization_id: Uuid::nil(),
            key_id: Uuid::nil(),
        };
        assert!(agent.user_with(Role::Viewer).is_err());
    }
}
