//! `AppState`: what every handler may use. Cheap to clone (handles and an `Arc`).

use std::sync::Arc;
use std::time::Instant;

use aim_store::PgPool;
use secrecy::SecretString;

use crate::config::Environment;

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    inner: Arc<Inner>,
}

struct Inner {
    environment: Environment,
    started_at: Instant,
    /// Signs and checks user tokens; shared by every replica.
    jwt_secret: SecretString,
}

impl AppState {
    pub fn new(db: PgPool, environment: Environment, jwt_secret: SecretString) -> Self {
        Self {
            db,
            inner: Arc::new(Inner {
                environment,
                started_at: Instant::now(),
                jwt_secret,
            }),
        }
    }

    pub fn environment(&self) -> Environment {
        self.inner.environment
    }

    pub fn uptime(&self) -> std::time::Duration {
        self.inner.started_at.elapsed()
    }

    pub fn jwt_secret(&self) -> &SecretString {
        &self.inner.jwt_secret
    }
}
