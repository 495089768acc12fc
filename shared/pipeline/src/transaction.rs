//! The batch transaction: one transaction that records the batch id in the ledger
//! (`ingest_batches`), binary-COPYs the rows into `api_calls` ([`crate::copy`]), upserts the
//! batch's rollup deltas ([`crate::rollup`]), and commits. A batch id already in the ledger means
//! the batch was applied before (a replay after an unacknowledged commit): the transaction is
//! rolled back and the batch reported as a duplicate, so replays are exact.
//!
//! May call: COPY encoding, the rollup fold and its statements. Never the queue or the spool.

use tokio_postgres::{Client, Error, SimpleQueryMessage, Statement};
use uuid::Uuid;

use crate::copy::{COPY, copy_rows};
use crate::event::AsRow;
use crate::rollup::{self, Deltas, apply::RollupStatements};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Written,
    /// The ledger already had this batch id.
    Duplicate,
}

/// Why a batch could not be written: the database (try again later) or the batch (never).
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The pool's, the connection's or the server's error, or why the writer gave up waiting.
    #[error("database unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("batch rejected")]
    Rejected(#[source] Error),
}

impl WriteError {
    pub fn classify(e: Error) -> Self {
        if is_transient(&e) {
            Self::Unavailable(Box::new(e))
        } else {
            Self::Rejected(e)
        }
    }
}

/// Whether the batch may be written later (spooled) rather than dropped:
/// [`aim_connect::sqlstate::is_transient_for_writer`] for the server's answers, and always for a
/// closed connection or an error without a SQLSTATE (an I/O, TLS or protocol failure, not the
/// server judging our data).
fn is_transient(e: &Error) -> bool {
    e.is_closed()
        || e.code()
            .is_none_or(|state| aim_connect::sqlstate::is_transient_for_writer(state.code()))
}

/// The statements a batch runs, prepared on its connection (writers keep them cached).
pub struct Statements {
    pub copy: Statement,
    /// `None` when the pipeline runs without rollups (the benchmark's baseline).
    pub rollups: Option<RollupStatements>,
}

impl Statements {
    /// # Errors
    /// The database error.
    pub async fn prepare(client: &Client) -> Result<Self, Error> {
        Ok(Self {
            copy: client.prepare(COPY).await?,
            rollups: Some(RollupStatements::prepare(client).await?),
        })
    }
}

/// Writes `rows` as batch `batch_id` in one transaction: ledger, raw rows, then the rollup
/// deltas folded from the same rows.
///
/// Round trips: `BEGIN`, the ledger insert and the start of the COPY together, the COPY's data,
/// `COMMIT`.
///
/// # Errors
/// [`WriteError`], classified. After an error the transaction is rolled back (a connection the
/// caller keeps is clean); after [`WriteError::Unavailable`] the caller should discard it.
pub async fn write_batch<T: AsRow>(
    client: &Client,
    statements: &Statements,
    batch_id: Uuid,
    rows: &[T],
) -> Result<Outcome, WriteError> {
    match write(client, statements, batch_id, rows).await {
        Ok(outcome) => Ok(outcome),
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(WriteError::classify(e))
        }
    }
}

async fn write<T: AsRow>(
    client: &Client,
    statements: &Statements,
    batch_id: Uuid,
    rows: &[T],
) -> Result<Outcome, Error> {
    // Both values are formatted from a UUID and an integer: nothing to escape.
    let ledger = format!(
        "BEGIN; INSERT INTO ingest_batches (batch_id, row_count) VALUES ('{batch_id}', {}) \
         ON CONFLICT (batch_id) DO NOTHING RETURNING 1",
        rows.len()
    );
    // The ledger insert and the start of the COPY are sent together (tokio-postgres pipelines
    // requests on one connection and the server runs them in order), saving a round trip per
    // batch; a duplicate abandons the COPY, which aborts the transaction.
    let (ledger, sink) = tokio::join!(
        client.simple_query(&ledger),
        client.copy_in(&statements.copy)
    );
    let fresh = ledger?
        .iter()
        .any(|m| matches!(m, SimpleQueryMessage::Row(_)));
    let sink = sink?;
    if !fresh {
        drop(sink);
        client.batch_execute("ROLLBACK").await?;
        return Ok(Outcome::Duplicate);
    }
    // The rollup step is queued behind the COPY's data (requests on a connection are sent
    // whole and in the order they were made) and ends with COMMIT, so the hot rollup rows stay
    // locked only for the commit. Should anything fail, the server answers the COMMIT of the
    // aborted transaction with a rollback, and the first error is what we report.
    let (copied, rolled_up) = tokio::join!(copy_rows(sink, batch_id, rows), async {
        match &statements.rollups {
            Some(rollups) => {
                // Folded once the COPY's first chunks are out: PostgreSQL parses rows while
                // the deltas are computed.
                let mut deltas = Deltas::default();
                for row in rows {
                    deltas.add(&row.as_row());
                }
                rollup::apply::apply_and_commit(client, rollups, &deltas, true).await
            }
            None => client.batch_execute("COMMIT").await,
        }
    });
    copied?;
    rolled_up?;
    Ok(Outcome::Written)
}
