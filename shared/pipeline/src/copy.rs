//! Writing one batch: a single transaction that records the batch id in the ledger
//! (`ingest_batches`), binary-COPYs the rows into `api_calls`, upserts the batch's rollup deltas,
//! and commits. A batch id already in
//! the ledger means the batch was applied before (a replay after an unacknowledged commit): the
//! transaction is rolled back and the batch reported as a duplicate, so replays are exact.

mod encode;

use futures_util::{SinkExt, pin_mut};
use tokio_postgres::{Client, Error, SimpleQueryMessage, Statement};
use uuid::Uuid;

use crate::event::AsRow;
use crate::rollup::{self, Deltas, apply::RollupStatements};

/// The COPY statement both the writers and the benchmark's bare-COPY baseline run.
pub const COPY: &str = "COPY api_calls (id, organization_id, agent_id, user_id, method, endpoint, \
     status_code, duration_ms, request_size_bytes, response_size_bytes, user_agent, ip_address, \
     error_message, request_id, called_at, batch_id) FROM STDIN (FORMAT binary)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Written,
    /// The ledger already had this batch id.
    Duplicate,
}

/// Why a batch could not be written: the database (try again later) or the batch (never).
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("batch rejected: {0}")]
    Rejected(String),
}

impl WriteError {
    pub fn classify(e: &Error) -> Self {
        if is_transient(e) {
            Self::Unavailable(e.to_string())
        } else {
            Self::Rejected(e.to_string())
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
            Err(WriteError::classify(&e))
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

/// Streams `rows` into a started [`COPY`]; also what the benchmark's bare-COPY baseline runs.
///
/// Rows are encoded into chunks of about 256 KiB that go out as they fill, so PostgreSQL parses
/// one chunk while the next is encoded, and a batch of 50,000 rows never needs one 16 MB buffer
/// (whose fresh pages cost more to fault in than the encoding itself).
///
/// # Errors
/// The database error.
pub async fn copy_rows<T: AsRow>(
    sink: tokio_postgres::CopyInSink<bytes::Bytes>,
    batch_id: Uuid,
    rows: &[T],
) -> Result<u64, Error> {
    const CHUNK: usize = 256 * 1024;
    /// Room for the largest row after a chunk's last one, so chunks rarely reallocate.
    const SLACK: usize = 16 * 1024;
    let mut buf = bytes::BytesMut::with_capacity(CHUNK + SLACK);
    pin_mut!(sink);
    encode::header(&mut buf);
    for row in rows {
        encode::row(&mut buf, &row.as_row(), batch_id);
        if buf.len() >= CHUNK {
            sink.feed(buf.split().freeze()).await?;
            buf.reserve(CHUNK + SLACK);
        }
    }
    encode::trailer(&mut buf);
    sink.send(buf.freeze()).await?;
    sink.finish().await
}
