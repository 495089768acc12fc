//! `AppState`: what every handler may use. Cheap to clone (a pool handle and an `Arc`).

use std::sync::Arc;
use std::time::Instant;

use aim_store::PgPool;
use secrecy::{ExposeSecret, SecretString};

use crate::ApiError;
use crate::auth::api_keys::KeyCache;
use crate::auth::jwt::Tokens;
use crate::auth::password::{PasswordError, Passwords};
use crate::auth::rate_limit::RateLimits;
use crate::breaker::DatabaseBreaker;
use crate::config::{Config, Environment, WebhookConfig};

#[derive(Clone)]
pub struct AppState {
    db: PgPool,
    breaker: DatabaseBreaker,
    inner: Arc<Inner>,
}

struct Inner {
    environment: Environment,
    started_at: Instant,
    tokens: Tokens,
    passwords: Passwords,
    key_cache: KeyCache,
    rate_limits: RateLimits,
    trust_proxy: bool,
    /// `None` when `AIM_ANALYTICS_ENABLED=false`.
    pipeline: Option<Arc<aim_pipeline::Pipeline>>,
    webhooks: Webhooks,
}

/// What registering and sending webhooks needs.
pub struct Webhooks {
    pub cipher: aim_webhooks::Cipher,
    pub sender: aim_webhooks::Sender,
    pub config: WebhookConfig,
}

/// Why the state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    WebhookKey(#[from] aim_webhooks::CipherError),
}

impl AppState {
    /// # Errors
    /// When the password hasher cannot start (no randomness); a webhook key that is not 64 hex
    /// digits.
    pub fn new(
        db: PgPool,
        config: &Config,
        jwt_secret: &SecretString,
        webhook_key: &SecretString,
        pipeline: Option<Arc<aim_pipeline::Pipeline>>,
    ) -> Result<Self, StateError> {
        let hashing = std::thread::available_parallelism().map_or(2, usize::from);
        Ok(Self {
            db,
            breaker: DatabaseBreaker::default(),
            inner: Arc::new(Inner {
                environment: config.environment,
                started_at: Instant::now(),
                tokens: Tokens::new(
                    jwt_secret,
                    config.auth.access_token_ttl,
                    config.auth.refresh_token_ttl,
                ),
                passwords: Passwords::new(hashing)?,
                key_cache: KeyCache::new(config.auth.api_key_cache_ttl),
                rate_limits: RateLimits::new(
                    config.auth.login_rate_limit_per_ip_per_min,
                    config.auth.login_rate_limit_per_email_per_min,
                    config.http.agent_rate_limit_per_s,
                ),
                trust_proxy: config.http.trust_proxy,
                pipeline,
                webhooks: Webhooks {
                    cipher: aim_webhooks::Cipher::from_hex(webhook_key.expose_secret())?,
                    sender: aim_webhooks::Sender::new(
                        config.webhooks.allow_private,
                        config.webhooks.timeout,
                    ),
                    config: config.webhooks.clone(),
                },
            }),
        })
    }

    /// The pool for a request's queries, or at once the 503 the query would end in while the
    /// database is known to be unavailable (see [`crate::breaker`]).
    ///
    /// # Errors
    /// [`ApiError::Unavailable`] while the breaker is open.
    pub fn db(&self) -> Result<&PgPool, ApiError> {
        self.breaker.check()?;
        Ok(&self.db)
    }

    /// The pool whatever the breaker says: for probes that report the database's state.
    pub fn pool(&self) -> &PgPool {
        &self.db
    }

    pub fn breaker(&self) -> &DatabaseBreaker {
        &self.breaker
    }

    pub fn environment(&self) -> Environment {
        self.inner.environment
    }

    pub fn uptime(&self) -> std::time::Duration {
        self.inner.started_at.elapsed()
    }

    pub fn tokens(&self) -> &Tokens {
        &self.inner.tokens
    }

    pub fn webhooks(&self) -> &Webhooks {
        &self.inner.webhooks
    }

    pub fn passwords(&self) -> &Passwords {
        &self.inner.passwords
    }

    pub fn key_cache(&self) -> &KeyCache {
        &self.inner.key_cache
    }

    pub fn rate_limits(&self) -> &RateLimits {
        &self.inner.rate_limits
    }

    pub fn trust_proxy(&self) -> bool {
        self.inner.trust_proxy
    }

    pub fn pipeline(&self) -> Option<&Arc<aim_pipeline::Pipeline>> {
        self.inner.pipeline.as_ref()
    }
}
