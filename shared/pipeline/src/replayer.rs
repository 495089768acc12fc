//! The replayer: while the database is down, probes it with capped exponential backoff; once it
//! answers, writes the sealed spool segments in order, each batch through the writers' own path
//! and outcome rule (the ledger skips what was applied before). Also [`recover`], which counts
//! what a previous run left in the spool.
//!
//! May call: the writer's `write_or_dead_letter`, the spool. Never the queue.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::spool::{self, Spool, SpoolError};
use crate::state::{State, now_ms};
use crate::stats::{DropReason, PipelineStats};
use crate::writer::{Settled, write_or_dead_letter};

const PROBE_MIN: Duration = Duration::from_millis(100);
const PROBE_MAX: Duration = Duration::from_secs(5);

pub(crate) async fn run_replayer(state: Arc<State>) {
    let mut backoff = PROBE_MIN;
    loop {
        let pending = state.stats.in_spool.load(Ordering::Relaxed) > 0
            || state.stats.spool_frames.load(Ordering::Relaxed) > 0;
        let down = state.stats.database_down.load(Ordering::Relaxed);
        if !pending && !down {
            tokio::select! {
                () = state.wake.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
            continue;
        }
        if down {
            if probe(&state).await {
                state.stats.database_down.store(false, Ordering::Relaxed);
                tracing::info!("database reachable again; replaying the spool");
                backoff = PROBE_MIN;
            } else {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(PROBE_MAX);
                continue;
            }
        }
        if let Err(e) = replay(&state).await {
            tracing::error!(
                error = %aim_connect::Causes(&e),
                "replaying the spool failed; retrying"
            );
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(PROBE_MAX);
            continue;
        }
        // One pass at a time: whatever was spooled meanwhile waits for a wake-up or a second.
        if !state.stats.database_down.load(Ordering::Relaxed) {
            tokio::select! {
                () = state.wake.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

async fn probe(state: &State) -> bool {
    let check = async {
        let client = state.pool.get().await.ok()?;
        match client.simple_query("SELECT 1").await {
            Ok(_) => Some(()),
            Err(_) => {
                let _ = deadpool_postgres::Object::take(client);
                None
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), check)
        .await
        .ok()
        .flatten()
        .is_some()
}

/// Replays every sealed segment in order; stops (leaving the rest) when the database fails.
async fn replay(state: &Arc<State>) -> Result<(), SpoolError> {
    let segments = {
        let mut spool = state.lock_spool()?;
        spool.seal();
        spool.sealed_segments()?
    };
    for segment in segments {
        let path = segment.clone();
        let contents = tokio::task::spawn_blocking(move || spool::read_segment(&path))
            .await
            .map_err(|e| SpoolError::Io {
                path: segment.clone(),
                source: std::io::Error::other(e.to_string()),
            })??;
        let size = std::fs::metadata(&segment).map_or(0, |m| m.len());
        for batch in &contents.batches {
            let n = batch.rows.len() as i64;
            let done = state
                .replayed
                .lock()
                .map(|r| r.contains(&batch.batch_id))
                .unwrap_or(false);
            if done {
                continue;
            }
            if spool::expired(batch, now_ms(), state.config.spool_max_age) {
                state.stats.drop_events(DropReason::SpoolExpired, n as u64);
                tracing::warn!(batch_id = %batch.batch_id, events = n, "spooled batch past the maximum age; dropped");
            } else {
                match write_or_dead_letter(state, batch.batch_id, &batch.rows).await {
                    Settled::Written => {
                        state.stats.replayed.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    // Left in the spool; the replayer probes again.
                    Settled::Unavailable => return Ok(()),
                }
            }
            state.stats.in_spool.fetch_sub(n, Ordering::Relaxed);
            if let Ok(mut replayed) = state.replayed.lock() {
                replayed.insert(batch.batch_id);
            }
        }
        if contents.damaged() {
            let corrupt = contents.corrupt_frames + u64::from(contents.torn_tail);
            state
                .stats
                .corrupt_frames
                .fetch_add(corrupt, Ordering::Relaxed);
            // A damaged frame's event count cannot be read: drops are counted per frame.
            state.stats.drop_events(DropReason::SpoolCorrupt, corrupt);
            let moved = state.lock_spool()?.quarantine(&segment)?;
            tracing::error!(corrupt_frames = contents.corrupt_frames, torn_tail = contents.torn_tail,
                quarantined = %moved.display(), "damaged spool segment: good frames replayed, file quarantined");
        } else {
            state.lock_spool()?.remove(&segment)?;
        }
        state.stats.spool_bytes.fetch_sub(
            size.min(state.stats.spool_bytes.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        let frames = contents.batches.len() as u64;
        state.stats.spool_frames.fetch_sub(
            frames.min(state.stats.spool_frames.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        if let Ok(mut replayed) = state.replayed.lock() {
            for batch in &contents.batches {
                replayed.remove(&batch.batch_id);
            }
        }
    }
    Ok(())
}

/// Counts what a previous run left in the spool, so the status and the replay account for it.
pub(crate) fn recover(spool: &Spool, stats: &PipelineStats) -> Result<(), SpoolError> {
    let mut events = 0i64;
    let mut frames = 0u64;
    for segment in spool.sealed_segments()? {
        let contents = spool::read_segment(&segment)?;
        frames += contents.batches.len() as u64;
        events += contents
            .batches
            .iter()
            .map(|b| b.rows.len() as i64)
            .sum::<i64>();
    }
    let bytes = spool.bytes()?;
    if bytes > 0 {
        tracing::warn!(events, frames, bytes, dir = %spool.dir().display(), "spooled analytics found; replaying");
    }
    stats.in_spool.store(events, Ordering::Relaxed);
    stats
        .recovered
        .store(u64::try_from(events).unwrap_or(0), Ordering::Relaxed);
    stats.spool_frames.store(frames, Ordering::Relaxed);
    stats.spool_bytes.store(bytes, Ordering::Relaxed);
    Ok(())
}
