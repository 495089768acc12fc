//! Writing one batch: a single transaction that records the batch id in the ledger
//! (`ingest_batches`), binary-COPYs the rows into `api_calls`, and commits. A batch id already in
//! the ledger means the batch was applied before (a replay after an unacknowledged commit): the
//! transaction is rolled back and the batch reported as a duplicate, so replays are exact.

use std::time::{Duration, SystemTime};

use futures_util::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Error};
use uuid::Uuid;

use crate::event::CallRow;

/// The COPY statement both the writers and the benchmark's bare-COPY baseline run.
pub const COPY: &str = "COPY api_calls (id, organization_id, agent_id, user_id, method, endpoint, \
     status_code, duration_ms, request_size_bytes, response_size_bytes, user_agent, ip_address, \
     error_message, request_id, called_at, batch_id) FROM STDIN (FORMAT binary)";

const TYPES: [Type; 16] = [
    Type::UUID,
    Type::UUID,
    Type::UUID,
    Type::UUID,
    Type::TEXT,
    Type::TEXT,
    Type::INT4,
    Type::FLOAT8,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::INET,
    Type::TEXT,
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::UUID,
];

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

/// Connection loss, server shutdown, resource exhaustion, conflicts: nothing about the rows.
fn is_transient(e: &Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // No SQLSTATE: an I/O or protocol failure, not the server judging our data.
        None => true,
        Some(state) => {
            let code = state.code();
            ["08", "53", "57", "58", "40"]
                .iter()
                .any(|class| code.starts_with(class))
        }
    }
}

/// Writes `rows` as batch `batch_id` in one transaction.
///
/// # Errors
/// [`WriteError`], classified.
pub async fn write_batch(
    client: &mut Client,
    batch_id: Uuid,
    rows: &[CallRow],
) -> Result<Outcome, WriteError> {
    write(client, batch_id, rows)
        .await
        .map_err(|e| WriteError::classify(&e))
}

async fn write(client: &mut Client, batch_id: Uuid, rows: &[CallRow]) -> Result<Outcome, Error> {
    let tx = client.transaction().await?;
    let count = i32::try_from(rows.len()).unwrap_or(i32::MAX);
    let fresh = tx
        .execute(
            "INSERT INTO ingest_batches (batch_id, row_count) VALUES ($1, $2) \
             ON CONFLICT (batch_id) DO NOTHING",
            &[&batch_id, &count],
        )
        .await?;
    if fresh == 0 {
        tx.rollback().await?;
        return Ok(Outcome::Duplicate);
    }
    copy_rows(tx.copy_in(COPY).await?, batch_id, rows).await?;
    tx.commit().await?;
    Ok(Outcome::Written)
}

/// Streams `rows` into a started [`COPY`]; also what the benchmark's bare-COPY baseline runs.
///
/// # Errors
/// The database error.
pub async fn copy_rows(
    sink: tokio_postgres::CopyInSink<bytes::Bytes>,
    batch_id: Uuid,
    rows: &[CallRow],
) -> Result<u64, Error> {
    let writer = BinaryCopyInWriter::new(sink, &TYPES);
    pin_mut!(writer);
    for row in rows {
        let called_at = called_at(row.called_at_us);
        let values: [&(dyn ToSql + Sync); 16] = [
            &row.id,
            &row.organization_id,
            &row.agent_id,
            &row.user_id,
            &row.method,
            &row.endpoint,
            &row.status_code,
            &row.duration_ms,
            &row.request_size_bytes,
            &row.response_size_bytes,
            &row.user_agent,
            &row.ip_address,
            &row.error_message,
            &row.request_id,
            &called_at,
            &batch_id,
        ];
        writer.as_mut().write(&values).await?;
    }
    writer.finish().await
}

fn called_at(us: i64) -> SystemTime {
    let offset = Duration::from_micros(us.unsigned_abs());
    if us >= 0 {
        SystemTime::UNIX_EPOCH + offset
    } else {
        SystemTime::UNIX_EPOCH - offset
    }
}
