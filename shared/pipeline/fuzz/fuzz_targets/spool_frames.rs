//! The spool reader's view of a damaged segment: any bytes, read frame by frame as
//! `read_segment` does, must decode, be skipped as corrupt or end as torn — never panic, never
//! loop. A second pass wraps the input in a valid header, so the checksum passes and the
//! postcard decoder itself sees arbitrary payloads; what decodes must encode back to a frame
//! that decodes to the same batch.
#![no_main]

use aim_pipeline::spool::frame::{self, Decoded, HEADER_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while !rest.is_empty() {
        match frame::decode(rest) {
            Decoded::Frame { consumed, .. } | Decoded::Corrupt { consumed } => {
                assert!(consumed >= HEADER_BYTES && consumed <= rest.len());
                rest = &rest[consumed..];
            }
            Decoded::Torn => break,
        }
    }

    let len = u32::try_from(data.len()).expect("libFuzzer inputs are small");
    let mut framed = Vec::with_capacity(HEADER_BYTES + data.len());
    framed.extend_from_slice(&len.to_le_bytes());
    framed.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    framed.extend_from_slice(data);
    match frame::decode(&framed) {
        Decoded::Frame { batch, consumed } => {
            assert_eq!(consumed, framed.len());
            let again = frame::encode(&batch).expect("a decoded batch encodes");
            match frame::decode(&again) {
                Decoded::Frame { batch: back, .. } => {
                    assert_eq!(back.batch_id, batch.batch_id);
                    assert_eq!(back.spooled_at_ms, batch.spooled_at_ms);
                    assert_eq!(back.rows.len(), batch.rows.len());
                }
                other => panic!("a re-encoded batch did not decode: {other:?}"),
            }
        }
        Decoded::Corrupt { consumed } => assert_eq!(consumed, framed.len()),
        Decoded::Torn => panic!("a whole frame read as torn"),
    }
});
