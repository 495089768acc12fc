//! The spool's frame: `[payload length: u32 LE][CRC32 of payload: u32 LE][payload]`, the payload
//! a postcard-encoded [`SpooledBatch`]. The length lets a reader skip a frame whose checksum
//! fails; a frame shorter than its length is a torn write, the end of what can be read.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::event::CallRow;

/// One spooled batch: replayed under its original id, so the ledger can tell whether it was
/// already applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpooledBatch {
    pub batch_id: Uuid,
    /// Unix milliseconds when it was spooled; past the maximum age it is dropped, not replayed.
    pub spooled_at_ms: i64,
    pub rows: Vec<CallRow>,
}

pub const HEADER_BYTES: usize = 8;
/// A length beyond this cannot be ours (batches are far smaller), so the length itself is
/// damaged and nothing after it can be trusted.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024 * 1024;

/// # Errors
/// postcard's error if it cannot encode the batch (or the payload outgrows a `u32`).
pub fn encode(batch: &SpooledBatch) -> Result<Vec<u8>, postcard::Error> {
    let payload = postcard::to_stdvec(batch)?;
    let len = u32::try_from(payload.len()).map_err(|_| postcard::Error::SerializeBufferFull)?;
    let mut frame = Vec::with_capacity(HEADER_BYTES + payload.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    frame.extend_from_slice(&payload);
    Ok(frame)
}

#[derive(Debug)]
pub enum Decoded {
    Frame {
        batch: SpooledBatch,
        consumed: usize,
    },
    /// The checksum failed or the payload did not decode; skip `consumed` bytes.
    Corrupt { consumed: usize },
    /// Not enough bytes for the frame: a torn write, or a damaged length.
    Torn,
}

/// Decodes the frame at the start of `bytes`.
pub fn decode(bytes: &[u8]) -> Decoded {
    let Some(header) = bytes.get(..HEADER_BYTES) else {
        return Decoded::Torn;
    };
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_PAYLOAD_BYTES {
        return Decoded::Torn;
    }
    let Some(payload) = bytes.get(HEADER_BYTES..HEADER_BYTES + len) else {
        return Decoded::Torn;
    };
    let consumed = HEADER_BYTES + len;
    if crc32fast::hash(payload) != crc {
        return Decoded::Corrupt { consumed };
    }
    match postcard::from_bytes(payload) {
        Ok(batch) => Decoded::Frame { batch, consumed },
        Err(_) => Decoded::Corrupt { consumed },
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use uuid::Uuid;

    use super::*;
    use crate::event::CallRow;

    fn arb_row() -> impl Strategy<Value = CallRow> {
        (
            any::<u128>(),
            proptest::option::of(any::<u128>()),
            "[ -~]{0,40}",
            any::<u16>(),
            any::<f64>(),
            any::<i64>(),
            proptest::option::of("\\PC{0,30}"),
            proptest::option::of(any::<[u8; 4]>()),
            any::<i64>(),
        )
            .prop_map(
                |(id, agent, endpoint, status, duration, size, ua, ip, at)| CallRow {
                    id: Uuid::from_u128(id),
                    organization_id: Uuid::from_u128(id.rotate_left(7)),
                    agent_id: agent.map(Uuid::from_u128),
                    user_id: None,
                    method: "POST".into(),
                    endpoint,
                    status_code: i32::from(status),
                    duration_ms: duration,
                    request_size_bytes: size,
                    response_size_bytes: size / 2,
                    user_agent: ua,
                    ip_address: ip.map(std::net::IpAddr::from),
                    error_message: None,
                    request_id: Some("r".into()),
                    called_at_us: at,
                },
            )
    }

    fn arb_batch() -> impl Strategy<Value = SpooledBatch> {
        (
            any::<u128>(),
            any::<i64>(),
            proptest::collection::vec(arb_row(), 0..20),
        )
            .prop_map(|(id, at, rows)| SpooledBatch {
                batch_id: Uuid::from_u128(id),
                spooled_at_ms: at,
                rows,
            })
    }

    /// Bitwise equality, so NaN durations compare equal to themselves.
    fn same(a: &SpooledBatch, b: &SpooledBatch) -> bool {
        postcard::to_stdvec(a).ok() == postcard::to_stdvec(b).ok()
    }

    proptest! {
        #[test]
        fn frames_round_trip(batch in arb_batch()) {
            let frame = encode(&batch).expect("encode");
            match decode(&frame) {
                Decoded::Frame { batch: back, consumed } => {
                    prop_assert!(same(&back, &batch));
                    prop_assert_eq!(consumed, frame.len());
                }
                other => prop_assert!(false, "decoded as {:?}", other),
            }
        }

        #[test]
        fn any_truncation_is_torn_never_a_panic(batch in arb_batch(), cut in 0usize..10_000) {
            let frame = encode(&batch).expect("encode");
            let cut = cut % frame.len();
            prop_assert!(matches!(decode(&frame[..cut]), Decoded::Torn));
        }

        #[test]
        fn any_flipped_payload_byte_is_caught(batch in arb_batch(), at in 0usize..10_000, bit in 0u8..8) {
            let mut frame = encode(&batch).expect("encode");
            let at = HEADER_BYTES + at % (frame.len() - HEADER_BYTES);
            frame[at] ^= 1 << bit;
            prop_assert!(matches!(decode(&frame), Decoded::Corrupt { .. }), "CRC32 catches one-bit errors");
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }
    }
}
