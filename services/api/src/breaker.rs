//! A circuit breaker in front of the database. Once a request finds the database unavailable,
//! the requests that need it are refused at once (503 `service_unavailable`, `Retry-After`)
//! instead of each waiting up to `AIM_DB_ACQUIRE_TIMEOUT_MS` while the pool tries connection
//! after connection; one background probe, on a connection of its own, looks for the
//! database's return every [`PROBE_EVERY`] and closes the breaker when it answers.
//!
//! Why: without it, an outage under load parks every database request for the acquire timeout
//! (thousands at a time, each holding its client's connection), the pool's connection attempts
//! run by the thousand against a server that is shutting down or recovering, and every parked
//! request is released in the same instant when it returns. All of that takes the cores that
//! the requests needing no database (cached API keys) are served on.
//!
//! Written here rather than taken from a circuit-breaker crate (`failsafe`): those let trial
//! *requests* through while half open, so some clients would still wait out the outage; here
//! the trial is the service's own probe and no client waits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aim_store::PgPool;

use crate::error::ApiError;
use crate::metric_names::{DB_BREAKER_OPEN, DB_BREAKER_TRIPS};

/// How often the probe tries the database while the breaker is open: the longest a request
/// is refused after the database is back.
pub const PROBE_EVERY: Duration = Duration::from_millis(100);

/// A probe's connection and round trip must finish within this.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Cheap to clone; every clone is the same breaker.
#[derive(Clone, Default)]
pub struct DatabaseBreaker {
    open: Arc<AtomicBool>,
}

impl DatabaseBreaker {
    /// `Err` (a 503) while the breaker is open.
    ///
    /// # Errors
    /// [`ApiError::Unavailable`] while the database is known to be unreachable.
    pub fn check(&self) -> Result<(), ApiError> {
        if self.is_open() {
            return Err(self.refusal());
        }
        Ok(())
    }

    /// The 503 a request gets while the breaker is open.
    pub fn refusal(&self) -> ApiError {
        ApiError::Unavailable(
            "the database is unreachable; a probe is looking for its return".into(),
        )
    }

    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Opens the breaker, unless it is open already, and starts the probe that closes it. Must
    /// be called within a Tokio runtime.
    pub fn trip(&self, pool: &PgPool) {
        if self.open.swap(true, Ordering::AcqRel) {
            return;
        }
        metrics::counter!(DB_BREAKER_TRIPS).increment(1);
        metrics::gauge!(DB_BREAKER_OPEN).set(1.0);
        tracing::warn!(
            "database unavailable: refusing the requests that need it until a probe reaches it"
        );
        tokio::spawn(probe(self.clone(), pool.clone()));
    }
}

/// Tries the database until it answers, then closes the breaker. One per opening: `trip`
/// starts it only when it changes the state.
async fn probe(breaker: DatabaseBreaker, pool: PgPool) {
    let opened = Instant::now();
    let mut attempts: u64 = 0;
    loop {
        attempts += 1;
        match aim_store::reachable(&pool, PROBE_TIMEOUT).await {
            Ok(()) => break,
            Err(e) => tracing::debug!(error = %e, attempts, "database still unavailable"),
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
    breaker.open.store(false, Ordering::Release);
    metrics::gauge!(DB_BREAKER_OPEN).set(0.0);
    tracing::info!(
        after_ms = u64::try_from(opened.elapsed().as_millis()).unwrap_or(u64::MAX),
        attempts,
        "database reachable again: requests that need it are let through"
    );
}

/// Describes the breaker's series and publishes the gauge as 0, so that it exists (and reads
/// closed) before the first outage.
pub(crate) fn describe() {
    metrics::gauge!(DB_BREAKER_OPEN).set(0.0);
    metrics::describe_gauge!(
        DB_BREAKER_OPEN,
        "1 while requests that need the database are refused at once (a probe looks for its return every 100 ms)."
    );
    metrics::describe_counter!(
        DB_BREAKER_TRIPS,
        "Times a request found the database unavailable and the breaker opened."
    );
}
