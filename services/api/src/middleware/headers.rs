//! Header values the middleware keeps past the request (the analytics event's User-Agent and
//! request id), copied out of hyper's read buffer. Shared by `analytics.rs` and
//! `request_id.rs`, which otherwise do not depend on each other's internals.

use axum::body::Bytes;
use axum::http::HeaderValue;

/// A copy of a header value in an allocation of its own. A value parsed by hyper shares the
/// connection's whole read buffer (8 KiB and more); an event holding it would pin that buffer
/// for as long as the event waits in the queue, a writer's batch or a retry — measured at about
/// 2.7 KiB per queued event, 650 MiB of RSS while a locked table held the writers back.
pub(crate) fn detached(value: &HeaderValue) -> Option<HeaderValue> {
    // Cannot fail: the bytes are those of a valid header value.
    HeaderValue::from_maybe_shared(Bytes::copy_from_slice(value.as_bytes())).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_detached_header_value_does_not_share_the_read_buffer() {
        // As hyper parses them: values that are slices of one large buffer.
        let buffer = Bytes::from(vec![b'a'; 8192]);
        let shared = HeaderValue::from_maybe_shared(buffer.slice(10..40)).expect("valid");
        let copy = detached(&shared).expect("valid");
        assert_eq!(copy, shared);
        let inside = buffer.as_ptr_range();
        assert!(
            !inside.contains(&copy.as_bytes().as_ptr()),
            "still in the buffer"
        );
    }
}
