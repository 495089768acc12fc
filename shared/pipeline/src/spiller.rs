//! Moving events from the queue to the spool: the spiller task, for a queue filling up behind a
//! slow database, and [`spool_events`], which the writers also use for a batch the database
//! could not take.
//!
//! May call: the spool. Never the database.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use uuid::Uuid;

use crate::event::{ApiCallEvent, CallRow};
use crate::spool::{SpoolError, SpooledBatch};
use crate::state::{State, now_ms};
use crate::stats::DropReason;

/// How often the spiller looks at the queue's depth.
const SPILL_CHECK: Duration = Duration::from_millis(20);

/// Keeps the queue from overflowing while every writer waits on a database that answers, only
/// too slowly to count as down: a table lock held for seconds, a disk that stalls. Writers give
/// such a batch up only at the statement timeout, and by then a busy service has filled the
/// queue and dropped events. Past three quarters of the queue's capacity the spiller moves the
/// oldest events to the spool, down to half, in batches the replayer writes once the database
/// keeps up again; events are dropped only when the spool cannot take them either. Under a
/// normal load the queue never gets near that, and the spiller only looks.
pub(crate) async fn run_spiller(state: Arc<State>, rx: flume::Receiver<ApiCallEvent>) {
    let capacity = state.config.queue_capacity.max(1);
    let high_water = (capacity - capacity / 4).max(1);
    let low_water = capacity / 2;
    let max = state.config.batch_max.max(1);
    let mut spilling = false;
    loop {
        tokio::select! {
            () = state.closing.cancelled() => return,
            () = tokio::time::sleep(SPILL_CHECK) => {}
        }
        // A full spool would only turn the writers' next events into drops: leave them queued.
        let spool_full =
            state.stats.spool_bytes.load(Ordering::Relaxed) >= state.config.spool_max_bytes;
        if rx.len() < high_water || spool_full {
            spilling = false;
            continue;
        }
        if !spilling {
            spilling = true;
            tracing::warn!(
                queued = rx.len(),
                capacity,
                "analytics queue three quarters full while the writers wait on the database; spooling the oldest events"
            );
        }
        while rx.len() > low_water && !state.closing.is_cancelled() {
            let take = (rx.len() - low_water).min(max);
            let mut events = Vec::with_capacity(take);
            for event in rx.try_iter().take(take) {
                events.push(event);
                state.stats.in_flight.fetch_add(1, Ordering::Relaxed);
            }
            if events.is_empty() {
                break;
            }
            if spool_events(&state, Uuid::now_v7(), &events).await {
                let n = events.len() as u64;
                state.stats.spilled.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}

/// Appends a batch taken from the queue (counted in flight) to the spool, or counts it dropped
/// as `spool_full` when the spool cannot take it. Returns whether it was spooled.
pub(crate) async fn spool_events(
    state: &Arc<State>,
    batch_id: Uuid,
    events: &[ApiCallEvent],
) -> bool {
    let n = events.len() as i64;
    let stats = &state.stats;
    let batch = SpooledBatch {
        batch_id,
        spooled_at_ms: now_ms(),
        rows: events.iter().map(CallRow::from_event).collect(),
    };
    match append_to_spool(state, batch).await {
        Ok(()) => {
            stats.in_flight.fetch_sub(n, Ordering::Relaxed);
            stats.in_spool.fetch_add(n, Ordering::Relaxed);
            stats.spooled.fetch_add(n as u64, Ordering::Relaxed);
            state.wake.notify_one();
            true
        }
        Err(e) => {
            stats.in_flight.fetch_sub(n, Ordering::Relaxed);
            stats.drop_events(DropReason::SpoolFull, n as u64);
            tracing::error!(%batch_id, events = n, error = %aim_connect::Causes(&e), "could not spool an analytics batch; dropped");
            false
        }
    }
}

/// Appends and fsyncs on the blocking pool: disk latency must not stall a runtime worker.
async fn append_to_spool(state: &Arc<State>, batch: SpooledBatch) -> Result<(), SpoolError> {
    let used = state.stats.spool_bytes.load(Ordering::Relaxed);
    let owner = Arc::clone(state);
    let size = tokio::task::spawn_blocking(move || owner.lock_spool()?.append(&batch, used))
        .await
        .map_err(|e| SpoolError::Io {
            path: state.config.spool_dir.clone(),
            source: std::io::Error::other(e.to_string()),
        })??;
    state.stats.spool_bytes.fetch_add(size, Ordering::Relaxed);
    state.stats.spool_frames.fetch_add(1, Ordering::Relaxed);
    Ok(())
}
