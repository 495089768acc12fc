//! Batching: taking events off the queue in batches ended by size or by the age of their first
//! event. Owns the queue's read side; calls nothing else of the pipeline.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::event::ApiCallEvent;

/// How often a writer gathering a batch looks at the queue again.
const FILL_CHECK: Duration = Duration::from_millis(10);

/// Takes the next batch: waits for a first event, then takes more until `max` or until
/// `flush_after` has passed since the first. When closing, waits no longer: returns what is
/// queued, and `None` once the queue is empty. Every event taken is counted in `in_flight` at
/// once, so one that waits in a batch still being gathered is never missing from the accounting.
///
/// After the first event the writer looks at the queue every [`FILL_CHECK`] rather than waiting
/// on it: waiting would wake it (another thread, in another runtime) for every event the API
/// hands over, thousands of times a second under load, when one look in ten milliseconds takes
/// them all.
pub(crate) async fn next_batch(
    rx: &flume::Receiver<ApiCallEvent>,
    max: usize,
    flush_after: Duration,
    closing: &CancellationToken,
    in_flight: &AtomicI64,
) -> Option<Vec<ApiCallEvent>> {
    let first = tokio::select! {
        biased;
        received = rx.recv_async() => received.ok()?,
        () = closing.cancelled() => rx.try_recv().ok()?,
    };
    in_flight.fetch_add(1, Ordering::Relaxed);
    let deadline = Instant::now() + flush_after;
    let mut batch = Vec::with_capacity(max.min(4096));
    batch.push(first);
    while batch.len() < max {
        let before = batch.len();
        batch.extend(rx.try_iter().take(max - batch.len()));
        in_flight.fetch_add((batch.len() - before) as i64, Ordering::Relaxed);
        let now = Instant::now();
        if batch.len() >= max || closing.is_cancelled() || now >= deadline {
            break;
        }
        tokio::select! {
            biased;
            () = closing.cancelled() => {}
            () = tokio::time::sleep_until(deadline.min(now + FILL_CHECK)) => {}
        }
    }
    Some(batch)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::SystemTime;

    use proptest::prelude::*;
    use uuid::Uuid;

    use super::*;

    fn event(i: u64) -> ApiCallEvent {
        ApiCallEvent {
            id: Uuid::now_v7(),
            organization_id: Uuid::nil(),
            agent_id: None,
            user_id: None,
            method: http::Method::GET,
            endpoint: Arc::from("/x"),
            status_code: 200,
            duration_ms: 1.0,
            request_size_bytes: i,
            response_size_bytes: 0,
            user_agent: None,
            ip_address: None,
            error_message: None,
            request_id: None,
            called_at: SystemTime::now(),
        }
    }

    proptest! {
        #[test]
        fn batches_keep_every_event_in_order_and_respect_the_size_cap(
            count in 0u64..300,
            max in 1usize..64,
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("runtime");
            let (sizes, seen) = runtime.block_on(async {
                let (tx, rx) = flume::bounded(1024);
                for i in 0..count {
                    tx.send(event(i)).expect("queued");
                }
                let closing = CancellationToken::new();
                closing.cancel();
                let mut sizes = Vec::new();
                let mut seen = Vec::new();
                while let Some(batch) = next_batch(&rx, max, Duration::from_secs(3600), &closing, &AtomicI64::new(0)).await {
                    sizes.push(batch.len());
                    seen.extend(batch.iter().map(|e| e.request_size_bytes));
                }
                (sizes, seen)
            });
            prop_assert!(sizes.iter().all(|s| (1..=max).contains(s)));
            prop_assert_eq!(seen, (0..count).collect::<Vec<_>>());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_is_flushed_when_its_first_event_is_old_enough() {
        let (tx, rx) = flume::bounded(16);
        let closing = CancellationToken::new();
        tx.send(event(0)).expect("queued");
        let started = Instant::now();
        let batch = next_batch(
            &rx,
            100,
            Duration::from_millis(250),
            &closing,
            &AtomicI64::new(0),
        )
        .await
        .expect("a batch");
        assert_eq!(batch.len(), 1);
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(250),
            "flushed on age, not size"
        );

        for i in 0..10 {
            tx.send(event(i)).expect("queued");
        }
        let batch = next_batch(
            &rx,
            4,
            Duration::from_secs(60),
            &closing,
            &AtomicI64::new(0),
        )
        .await
        .expect("a batch");
        assert_eq!(batch.len(), 4, "flushed on size at once");
    }
}
