//! The webhook dispatcher: on every replica, every `AIM_WEBHOOK_POLL_MS`, claim due deliveries
//! from the outbox (`FOR UPDATE SKIP LOCKED` with a lease, so replicas never send one twice at
//! once), sign and send each, and record the outcome: delivered, retried after a capped
//! exponential backoff with jitter, or failed once its attempts are spent. An endpoint that
//! fails `AIM_WEBHOOK_DISABLE_AFTER` attempts in a row is disabled until an admin enables it.

use std::time::Duration;

use aim_store::StoreError;
use aim_store::webhooks::Due;
use axum::body::Bytes;
use chrono::Utc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::metric_names as names;
use crate::state::AppState;

/// Deliveries one poll claims at most; the rest wait for the next poll.
const CLAIM_LIMIT: i64 = 32;

/// How long a claimed delivery is kept from other replicas beyond the attempt's timeout.
const LEASE_MARGIN: Duration = Duration::from_secs(30);

pub(crate) async fn run(state: AppState, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(state.webhooks().config.poll);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = shutdown.cancelled() => break,
        }
        // A claimed batch is finished before the shutdown is looked at again, so no attempt is
        // cut midway (each is bounded by the attempt timeout).
        if let Err(e) = dispatch_once(&state).await {
            if e.is_unavailable() {
                tracing::debug!(error = %e, "webhook dispatcher: database unavailable");
            } else {
                tracing::warn!(error = %e, "webhook dispatcher could not claim deliveries");
            }
        }
    }
}

/// Claims the due deliveries and attempts each once, concurrently. Returns how many it
/// attempted.
///
/// # Errors
/// The database error of the claim.
pub async fn dispatch_once(state: &AppState) -> Result<usize, StoreError> {
    let config = &state.webhooks().config;
    let due =
        aim_store::webhooks::claim_due(state.pool(), CLAIM_LIMIT, config.timeout + LEASE_MARGIN)
            .await?;
    let count = due.len();
    let mut attempts = JoinSet::new();
    for delivery in due {
        let state = state.clone();
        attempts.spawn(async move { attempt(&state, &delivery).await });
    }
    while let Some(done) = attempts.join_next().await {
        if let Err(e) = done {
            tracing::error!(error = %e, "a webhook attempt panicked");
        }
    }
    Ok(count)
}

async fn attempt(state: &AppState, due: &Due) {
    let webhooks = state.webhooks();
    let config = &webhooks.config;
    let outcome = send(state, due).await;
    let pool = state.pool();
    let recorded = match outcome {
        Ok(status) => {
            metrics::counter!(names::WEBHOOK_DELIVERIES, "outcome" => "delivered").increment(1);
            aim_store::webhooks::delivered(pool, due, status).await
        }
        Err((code, error)) => {
            let attempts = u32::try_from(due.attempts).unwrap_or(u32::MAX);
            let retry_at = (attempts < config.max_attempts).then(|| {
                let mut random = [0u8; 4];
                let unit = getrandom::fill(&mut random)
                    .map(|()| f64::from(u32::from_le_bytes(random)) / f64::from(u32::MAX))
                    .unwrap_or(0.5);
                let wait =
                    aim_webhooks::backoff(attempts, config.retry_base, config.retry_cap, unit);
                Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default()
            });
            let label = if retry_at.is_some() {
                "retry"
            } else {
                "failed"
            };
            metrics::counter!(names::WEBHOOK_DELIVERIES, "outcome" => label).increment(1);
            tracing::info!(delivery_id = %due.id, webhook_id = %due.webhook_id, attempt = attempts, %error, ?retry_at, "webhook attempt failed");
            let disable_after = i32::try_from(config.disable_after).unwrap_or(i32::MAX);
            aim_store::webhooks::failed(pool, due, code, &error, retry_at, disable_after)
                .await
                .map(|failure| {
                    if failure.disabled {
                        metrics::counter!(names::WEBHOOKS_DISABLED).increment(1);
                        tracing::warn!(webhook_id = %due.webhook_id, "webhook endpoint disabled after repeated failures");
                    }
                })
        }
    };
    if let Err(e) = recorded {
        // The lease runs out and the delivery is attempted again: at least once.
        tracing::warn!(delivery_id = %due.id, error = %e, "could not record a webhook attempt");
    }
}

/// Signs and sends; the error is the status (if any) and what went wrong, in words.
async fn send(state: &AppState, due: &Due) -> Result<u16, (Option<u16>, String)> {
    let webhooks = state.webhooks();
    let now = Utc::now();
    let current = webhooks
        .cipher
        .decrypt(&due.secret_encrypted)
        .map_err(|e| (None, e.to_string()))?;
    let previous = match (
        &due.previous_secret_encrypted,
        due.previous_secret_expires_at,
    ) {
        (Some(sealed), Some(until)) if until > now => Some(
            webhooks
                .cipher
                .decrypt(sealed)
                .map_err(|e| (None, e.to_string()))?,
        ),
        _ => None,
    };
    let mut secrets = vec![current.as_str()];
    secrets.extend(previous.as_deref());
    let body = serde_json::to_vec(&due.payload).map_err(|e| (None, e.to_string()))?;
    let signature = aim_webhooks::signature(&secrets, now.timestamp(), &body);
    let delivery_id = due.id.to_string();
    webhooks
        .sender
        .send(aim_webhooks::Request {
            url: &due.url,
            delivery_id: &delivery_id,
            event: &due.event_type,
            signature: &signature,
            body: Bytes::from(body),
        })
        .await
        .map_err(|e| (e.status_code(), e.to_string()))
}
