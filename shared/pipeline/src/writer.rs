//! The writers: each takes batches off the queue and writes them in one transaction
//! ([`crate::transaction`]), or hands them to the spool when the database is unavailable. Also
//! the one rule for what a write's outcome means ([`write_or_dead_letter`]), which the replayer
//! shares.
//!
//! May call: batching, the batch transaction, the spiller's `spool_events`. Never the spool's
//! files directly, never the request path.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aim_connect::TokioPostgres;
use uuid::Uuid;

use crate::batch::next_batch;
use crate::dead_letter::{self, Tally, ToCallRow};
use crate::event::{ApiCallEvent, AsRow};
use crate::rollup::apply::RollupStatements;
use crate::spiller::spool_events;
use crate::state::{State, now_ms};
use crate::transaction::{Outcome, Statements, WriteError, write_batch};

/// How long one statement of a batch may run. A writer stuck behind a lock (a long migration, an
/// operator's `LOCK TABLE`) gives up and spools its batch instead of letting the queue fill up
/// and drop events; the replayer writes it once the statement goes through again. A batch of
/// 50,000 events takes well under a second.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the writers' connections call themselves (`pg_stat_activity.application_name`), so
/// their backends' CPU can be told apart from the request path's (load-tests/callgrind).
pub const WRITERS_APPLICATION_NAME: &str = "aim-analytics";

/// The writers' connection settings plus [`STATEMENT_TIMEOUT`], after any `options` the
/// settings already carry, and their own [`WRITERS_APPLICATION_NAME`].
pub(crate) fn with_statement_timeout(mut database: TokioPostgres) -> TokioPostgres {
    database.config.application_name(WRITERS_APPLICATION_NAME);
    let timeout = format!("-c statement_timeout={}", STATEMENT_TIMEOUT.as_millis());
    let options = match database.config.get_options() {
        Some(existing) if !existing.is_empty() => format!("{existing} {timeout}"),
        _ => timeout,
    };
    database.config.options(&options);
    database
}

pub(crate) async fn run_writer(state: Arc<State>, rx: flume::Receiver<ApiCallEvent>) {
    let max = state.config.batch_max.max(1);
    let mut events = Vec::new();
    while next_batch(
        &rx,
        &mut events,
        &state.filling,
        max,
        state.config.flush_after,
        &state.closing,
        &state.stats.in_flight,
    )
    .await
    {
        deliver(&state, Uuid::now_v7(), &events).await;
    }
}

/// Writes a fresh batch straight from its events, or spools it when the database is down.
async fn deliver(state: &Arc<State>, batch_id: Uuid, events: &[ApiCallEvent]) {
    let n = events.len() as i64;
    if !state.stats.database_down.load(Ordering::Relaxed)
        && write_or_dead_letter(state, batch_id, events).await == Settled::Written
    {
        state.stats.in_flight.fetch_sub(n, Ordering::Relaxed);
        return;
    }
    spool_events(state, batch_id, events).await;
}

/// What became of a batch the database was asked to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    /// Every event is accounted for: committed now or before (the ledger had it), or refused
    /// by PostgreSQL and kept in the dead-letter spool (or, when that cannot keep it, counted as
    /// a `rejected` drop).
    Written,
    /// The database could not take it: the caller keeps the whole batch (the writer spools it,
    /// the replayer leaves it in the spool) and the database is marked down for the replayer's
    /// probe. Halves of it already written are in the ledger under ids derived from the batch
    /// id, so the next attempt skips them.
    Unavailable,
}

/// The one outcome rule for fresh and replayed batches alike: write, split what PostgreSQL
/// refuses ([`crate::dead_letter`]), count.
pub(crate) async fn write_or_dead_letter<T: AsRow + ToCallRow + Sync>(
    state: &Arc<State>,
    batch_id: Uuid,
    rows: &[T],
) -> Settled {
    let started = std::time::Instant::now();
    let mut tally = Tally::default();
    match dead_letter::write(state, batch_id, rows, &mut tally).await {
        Ok(()) => {
            let stats = &state.stats;
            stats.written.fetch_add(tally.written, Ordering::Relaxed);
            stats
                .batches_written
                .fetch_add(tally.batches_written, Ordering::Relaxed);
            stats
                .batches_duplicate
                .fetch_add(tally.batches_duplicate, Ordering::Relaxed);
            if tally.written > 0 {
                stats.last_flush_ms.store(now_ms(), Ordering::Relaxed);
                crate::stats::record_flush(tally.written, started.elapsed());
            }
            dead_letter::keep_refused(state, tally.refused).await;
            Settled::Written
        }
        Err(reason) => {
            if !state.stats.database_down.swap(true, Ordering::Relaxed) {
                tracing::warn!(%batch_id, error = %aim_connect::Causes(&*reason),
                    "database unavailable; spooling analytics to disk");
            }
            state.wake.notify_one();
            Settled::Unavailable
        }
    }
}

pub(crate) async fn write_to_database<T: AsRow>(
    state: &State,
    batch_id: Uuid,
    rows: &[T],
) -> Result<Outcome, WriteError> {
    let attempt = async {
        let client = state
            .pool
            .get()
            .await
            .map_err(|e| WriteError::Unavailable(Box::new(e)))?;
        let statements = cached_statements(state, &client)
            .await
            .map_err(WriteError::classify)?;
        let result = write_batch(&client, &statements, batch_id, rows).await;
        if matches!(result, Err(WriteError::Unavailable(_))) {
            // The connection's state is unknown; never hand it to another batch.
            let _ = deadpool_postgres::Object::take(client);
        }
        result
    };
    tokio::select! {
        result = attempt => result,
        () = state.hurry.cancelled() => Err(WriteError::Unavailable("the shutdown deadline came first".into())),
    }
}

/// The batch statements, prepared once per pooled connection and kept by its pool id. Entries of
/// connections the pool has since closed are dropped once the map holds more than the pool can.
async fn cached_statements(
    state: &State,
    client: &deadpool_postgres::Object,
) -> Result<Arc<Statements>, tokio_postgres::Error> {
    let id = deadpool_postgres::Object::id(client);
    if let Some(statements) = state.prepared.lock().ok().and_then(|p| p.get(&id).cloned()) {
        return Ok(statements);
    }
    let rollups = if state.config.rollups {
        Some(RollupStatements::prepare(client).await?)
    } else {
        None
    };
    let statements = Arc::new(Statements {
        copy: client.prepare(crate::copy::COPY).await?,
        rollups,
    });
    if let Ok(mut prepared) = state.prepared.lock() {
        if prepared.len() > state.pool.status().max_size {
            prepared.clear();
        }
        prepared.insert(id, Arc::clone(&statements));
    }
    Ok(statements)
}
