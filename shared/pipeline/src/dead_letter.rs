//! A batch PostgreSQL refuses is never silently lost. Refused for its content (a constraint, a
//! trigger, an extension's rule), it is split in halves to find the refused events, the rest are
//! written exactly once, and the refused ones go to the dead-letter spool (its own folder and
//! cap, the spool's CRC frames), counted, for an operator to replay after the fix or discard.
//! Refused because the statement itself is wrong — a SQLSTATE of class 42 (syntax or access
//! rule) or 0A (feature not supported), or both halves of a split refused — the whole batch is
//! dead-lettered without splitting further, and the pipeline reports itself degraded with
//! PostgreSQL's own message until a batch is written again.
//!
//! Sub-batch ids are derived from the batch id (UUID v5 of the parent and the half), so a batch
//! attempted again (after the database went away mid-split, or from the spool) splits the same
//! way and the ledger skips the halves already written: exactly once.
//!
//! May call: the writer's `write_to_database`, the dead-letter spool. Never the queue.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use uuid::Uuid;

use crate::event::{AsRow, CallRow};
use crate::spool::SpooledBatch;
use crate::state::{State, now_ms};
use crate::stats::DropReason;
use crate::transaction::{Outcome, WriteError};
use crate::writer::write_to_database;

/// Rows the dead-letter spool can keep.
pub trait ToCallRow {
    fn to_call_row(&self) -> CallRow;
}

impl ToCallRow for crate::event::ApiCallEvent {
    fn to_call_row(&self) -> CallRow {
        CallRow::from_event(self)
    }
}

impl ToCallRow for CallRow {
    fn to_call_row(&self) -> CallRow {
        self.clone()
    }
}

/// The id of half `which` (0 or 1) of batch `parent`.
#[must_use]
pub fn sub_batch_id(parent: Uuid, which: u8) -> Uuid {
    Uuid::new_v5(&parent, &[which])
}

/// Whether PostgreSQL refused the statement rather than the rows: SQLSTATE class 42 (syntax
/// error or access rule violation: an undefined column after a bad deploy) or 0A (feature not
/// supported: an extension's rule, as Citus's on `DO UPDATE SET`).
#[must_use]
pub fn statement_is_wrong(error: &tokio_postgres::Error) -> bool {
    error
        .code()
        .is_some_and(|c| c.code().starts_with("42") || c.code().starts_with("0A"))
}

/// PostgreSQL's own message and SQLSTATE, not the driver's "db error".
#[must_use]
pub fn postgres_message(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => error.to_string(),
    }
}

/// What became of a batch's events, counted once the whole batch is settled.
#[derive(Default)]
pub(crate) struct Tally {
    pub written: u64,
    pub batches_written: u64,
    pub batches_duplicate: u64,
    /// Refused events by the id they are kept under, and PostgreSQL's message.
    pub refused: Vec<(Uuid, Vec<CallRow>, String)>,
}

type Unavailable = Box<dyn std::error::Error + Send + Sync>;

/// Writes `rows` as batch `batch_id`, splitting it when PostgreSQL refuses it. `Err` when the
/// database could not be reached meanwhile: the caller keeps the whole batch (what was written
/// is in the ledger under the derived ids).
pub(crate) fn write<'a, T: AsRow + ToCallRow + Sync>(
    state: &'a State,
    batch_id: Uuid,
    rows: &'a [T],
    tally: &'a mut Tally,
) -> Pin<Box<dyn Future<Output = Result<(), Unavailable>> + Send + 'a>> {
    Box::pin(async move {
        match write_to_database(state, batch_id, rows).await {
            Ok(outcome) => {
                written(state, tally, rows.len(), outcome);
                Ok(())
            }
            Err(WriteError::Unavailable(e)) => Err(e),
            Err(WriteError::Rejected(e)) => refused(state, batch_id, rows, &e, tally).await,
        }
    })
}

fn written(state: &State, tally: &mut Tally, rows: usize, outcome: Outcome) {
    tally.written += rows as u64;
    match outcome {
        Outcome::Written => tally.batches_written += 1,
        Outcome::Duplicate => tally.batches_duplicate += 1,
    }
    if let Ok(mut refused) = state.stats.statement_refused.lock() {
        *refused = None;
    }
}

fn keep<T: ToCallRow>(tally: &mut Tally, batch_id: Uuid, rows: &[T], message: String) {
    tally.refused.push((
        batch_id,
        rows.iter().map(ToCallRow::to_call_row).collect(),
        message,
    ));
}

fn degraded(state: &State, message: &str) {
    if let Ok(mut refused) = state.stats.statement_refused.lock()
        && refused.as_deref() != Some(message)
    {
        tracing::error!(
            error = message,
            "PostgreSQL refuses the analytics batch statement itself; batches go to the dead-letter spool"
        );
        *refused = Some(message.to_owned());
    }
}

/// A batch PostgreSQL refused with `error`.
fn refused<'a, T: AsRow + ToCallRow + Sync>(
    state: &'a State,
    batch_id: Uuid,
    rows: &'a [T],
    error: &'a tokio_postgres::Error,
    tally: &'a mut Tally,
) -> Pin<Box<dyn Future<Output = Result<(), Unavailable>> + Send + 'a>> {
    Box::pin(async move {
        let message = postgres_message(error);
        if statement_is_wrong(error) {
            degraded(state, &message);
            keep(tally, batch_id, rows, message);
            return Ok(());
        }
        if rows.len() <= 1 {
            keep(tally, batch_id, rows, message);
            return Ok(());
        }
        let (left, right) = rows.split_at(rows.len() / 2);
        let (left_id, right_id) = (sub_batch_id(batch_id, 0), sub_batch_id(batch_id, 1));
        let left_result = write_to_database(state, left_id, left).await;
        if let Err(WriteError::Unavailable(e)) = left_result {
            return Err(e);
        }
        let right_result = write_to_database(state, right_id, right).await;
        match (left_result, right_result) {
            (_, Err(WriteError::Unavailable(e))) | (Err(WriteError::Unavailable(e)), _) => Err(e),
            (Err(WriteError::Rejected(_)), Err(WriteError::Rejected(_))) => {
                // Both halves refused: the statement, not some rows.
                degraded(state, &message);
                keep(tally, batch_id, rows, message);
                Ok(())
            }
            (Err(WriteError::Rejected(e)), Ok(outcome)) => {
                written(state, tally, right.len(), outcome);
                refused(state, left_id, left, &e, tally).await
            }
            (Ok(outcome), Err(WriteError::Rejected(e))) => {
                written(state, tally, left.len(), outcome);
                refused(state, right_id, right, &e, tally).await
            }
            (Ok(left_outcome), Ok(right_outcome)) => {
                written(state, tally, left.len(), left_outcome);
                written(state, tally, right.len(), right_outcome);
                Ok(())
            }
        }
    })
}

/// Appends the refused events to the dead-letter spool and counts them; events it cannot keep
/// (at its cap, or its disk failing) are counted as `rejected` drops.
pub(crate) async fn keep_refused(state: &Arc<State>, refused: Vec<(Uuid, Vec<CallRow>, String)>) {
    for (batch_id, rows, message) in refused {
        let n = rows.len() as u64;
        tracing::error!(%batch_id, events = n, error = %message,
            "PostgreSQL refused analytics events; kept in the dead-letter spool");
        let batch = SpooledBatch {
            batch_id,
            spooled_at_ms: now_ms(),
            rows,
        };
        let owner = Arc::clone(state);
        let appended = tokio::task::spawn_blocking(move || {
            let mut spool = owner
                .dead_letter
                .lock()
                .map_err(|_| std::io::Error::other("dead-letter spool lock poisoned"))?;
            let used = spool.bytes().map_err(std::io::Error::other)?;
            spool.append(&batch, used).map_err(std::io::Error::other)?;
            spool.seal();
            Ok::<_, std::io::Error>(())
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match appended {
            Ok(()) => {
                state.stats.dead_lettered.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                state.stats.drop_events(DropReason::Rejected, n);
                tracing::error!(%batch_id, events = n, error = %e, "could not keep refused analytics events in the dead-letter spool; dropped");
            }
        }
    }
}

/// One batch kept in the dead-letter spool, as `aim spool dead-letter list` shows it.
#[derive(Debug, Clone)]
pub struct Kept {
    pub segment: std::path::PathBuf,
    pub batch_id: Uuid,
    pub events: usize,
    pub kept_at_ms: i64,
}

/// Every batch in the dead-letter folder `dir`, oldest first. Run it while no service uses the
/// folder (`aim spool dead-letter` holds the folder's lock).
///
/// # Errors
/// The folder cannot be read.
pub fn list(dir: &std::path::Path) -> Result<Vec<Kept>, crate::spool::SpoolError> {
    let spool = crate::spool::Spool::open(dir, u64::MAX)?;
    let mut out = Vec::new();
    for segment in spool.sealed_segments()? {
        for batch in crate::spool::read_segment(&segment)?.batches {
            out.push(Kept {
                segment: segment.clone(),
                batch_id: batch.batch_id,
                events: batch.rows.len(),
                kept_at_ms: batch.spooled_at_ms,
            });
        }
    }
    Ok(out)
}

/// What a replay did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    /// Events committed now.
    pub written: u64,
    /// Events of batches the ledger already had (replayed before): not written twice.
    pub duplicate: u64,
    /// Events PostgreSQL still refuses: left in the folder.
    pub still_refused: u64,
}

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Spool(#[from] crate::spool::SpoolError),
    #[error("PostgreSQL: {0}")]
    Database(String),
}

/// Writes every kept batch again through the ledger, under the id it was kept with, so a batch
/// replayed twice is written once. A segment whose batches are all written (or already were) is
/// deleted; one with a batch PostgreSQL still refuses is left whole for the next attempt.
///
/// # Errors
/// The folder cannot be read, or the database cannot be reached.
pub async fn replay(
    dir: &std::path::Path,
    client: &tokio_postgres::Client,
) -> Result<Replayed, ReplayError> {
    let statements = crate::transaction::Statements::prepare(client)
        .await
        .map_err(|e| ReplayError::Database(postgres_message(&e)))?;
    let spool = crate::spool::Spool::open(dir, u64::MAX)?;
    let mut out = Replayed::default();
    for segment in spool.sealed_segments()? {
        let mut keep = false;
        for batch in crate::spool::read_segment(&segment)?.batches {
            let n = batch.rows.len() as u64;
            match crate::transaction::write_batch(client, &statements, batch.batch_id, &batch.rows)
                .await
            {
                Ok(Outcome::Written) => out.written += n,
                Ok(Outcome::Duplicate) => out.duplicate += n,
                Err(WriteError::Rejected(e)) => {
                    tracing::warn!(batch_id = %batch.batch_id, events = n, error = %postgres_message(&e), "still refused; kept");
                    out.still_refused += n;
                    keep = true;
                }
                Err(WriteError::Unavailable(e)) => {
                    return Err(ReplayError::Database(e.to_string()));
                }
            }
        }
        if !keep {
            spool.remove(&segment)?;
        }
    }
    Ok(out)
}

/// Deletes every kept batch on purpose; returns the events deleted.
///
/// # Errors
/// The folder cannot be read or a file deleted.
pub fn discard(dir: &std::path::Path) -> Result<u64, crate::spool::SpoolError> {
    let spool = crate::spool::Spool::open(dir, u64::MAX)?;
    let mut events = 0;
    for segment in spool.sealed_segments()? {
        events += crate::spool::read_segment(&segment)?
            .batches
            .iter()
            .map(|b| b.rows.len() as u64)
            .sum::<u64>();
        spool.remove(&segment)?;
    }
    Ok(events)
}
