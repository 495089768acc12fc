//! COPY encoding: the `api_calls` COPY statement and the stream of a batch's rows into it, in
//! PostgreSQL's binary format ([`encode`]). Owns the raw rows' wire format; calls nothing of the
//! pipeline but the event's cleaning rule.

mod encode;

use futures_util::{SinkExt, pin_mut};
use tokio_postgres::Error;
use uuid::Uuid;

use crate::event::AsRow;

/// The COPY statement both the writers and the benchmark's bare-COPY baseline run.
pub const COPY: &str = "COPY api_calls (id, organization_id, agent_id, user_id, method, endpoint, \
     status_code, duration_ms, request_size_bytes, response_size_bytes, user_agent, ip_address, \
     error_message, request_id, called_at, batch_id) FROM STDIN (FORMAT binary)";

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
