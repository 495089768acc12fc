//! Batching: taking events off the queue in batches ended by size or by the age of their first
//! event. Owns the queue's read side and the signal the request path rings as the queue fills;
//! calls nothing else of the pipeline.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::event::ApiCallEvent;

/// At most this many events are handed over between two wake-ups of a writer gathering a batch.
const WAKE_EVERY_MAX: usize = 1024;

/// How the request path tells a writer gathering a batch that more events wait: it counts the
/// events it hands over and wakes a writer every `every` of them. A writer is woken by the
/// count, never by a clock, so its wake-ups are a few per batch at any rate (and an idle
/// service's writers sleep), where waking on each event would cost a cross-thread wake-up per
/// call and looking every few milliseconds would cost wake-ups whether or not calls come.
pub(crate) struct Filling {
    handed: AtomicUsize,
    every: usize,
    notify: Notify,
}

impl Filling {
    /// Wakes a writer every `min(batch_max, queue_capacity / 4, 1024)` events: soon enough for
    /// it to cut full batches and to empty a small queue long before the spiller (at 3/4 of it)
    /// or a drop would, rarely enough to cost nothing per call.
    pub(crate) fn new(batch_max: usize, queue_capacity: usize) -> Self {
        Self {
            handed: AtomicUsize::new(0),
            every: batch_max.min(queue_capacity / 4).clamp(1, WAKE_EVERY_MAX),
            notify: Notify::new(),
        }
    }

    /// After each event queued: one atomic add, and a wake-up every `every` events.
    pub(crate) fn handed_over(&self) {
        let handed = self.handed.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        if handed.is_multiple_of(self.every) {
            self.notify.notify_one();
        }
    }
}

/// Takes the next batch into `batch` (emptied first; a writer passes the same vector every time,
/// so its capacity is allocated once rather than faulted in afresh for every batch): waits for a
/// first event, then takes more until `max` or until `flush_after` has passed since the first.
/// When closing, waits no longer: takes what is queued, and returns `false` once the queue is
/// empty. Every event taken is counted in `in_flight` at once, so one that waits in a batch still
/// being gathered is never missing from the accounting.
///
/// After the first event the writer takes what is queued and sleeps until the batch's age is
/// up or [`Filling`] says more have come.
pub(crate) async fn next_batch(
    rx: &flume::Receiver<ApiCallEvent>,
    batch: &mut Vec<ApiCallEvent>,
    filling: &Filling,
    max: usize,
    flush_after: Duration,
    closing: &CancellationToken,
    in_flight: &AtomicI64,
) -> bool {
    batch.clear();
    let first = tokio::select! {
        biased;
        received = rx.recv_async() => received.ok(),
        () = closing.cancelled() => rx.try_recv().ok(),
    };
    let Some(first) = first else {
        return false;
    };
    in_flight.fetch_add(1, Ordering::Relaxed);
    let deadline = Instant::now() + flush_after;
    batch.push(first);
    while batch.len() < max {
        let before = batch.len();
        batch.extend(rx.try_iter().take(max - batch.len()));
        in_flight.fetch_add((batch.len() - before) as i64, Ordering::Relaxed);
        if batch.len() >= max || closing.is_cancelled() || Instant::now() >= deadline {
            break;
        }
        tokio::select! {
            biased;
            () = closing.cancelled() => {}
            () = filling.notify.notified() => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
    true
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
                let mut batch = Vec::new();
                while next_batch(&rx, &mut batch, &Filling::new(max, 1024), max, Duration::from_secs(3600), &closing, &AtomicI64::new(0)).await {
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
        let mut batch = Vec::new();
        assert!(
            next_batch(
                &rx,
                &mut batch,
                &Filling::new(100, 16),
                100,
                Duration::from_millis(250),
                &closing,
                &AtomicI64::new(0),
            )
            .await
        );
        assert_eq!(batch.len(), 1);
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(250),
            "flushed on age, not size"
        );

        for i in 0..10 {
            tx.send(event(i)).expect("queued");
        }
        assert!(
            next_batch(
                &rx,
                &mut batch,
                &Filling::new(4, 16),
                4,
                Duration::from_secs(60),
                &closing,
                &AtomicI64::new(0),
            )
            .await
        );
        assert_eq!(batch.len(), 4, "flushed on size at once");
    }

    #[tokio::test(start_paused = true)]
    async fn a_gathering_writer_is_woken_by_the_count_of_events_not_by_a_clock() {
        let (tx, rx) = flume::bounded(64);
        let filling = std::sync::Arc::new(Filling::new(8, 64));
        let closing = CancellationToken::new();
        tx.send(event(0)).expect("queued");
        filling.handed_over();
        let started = Instant::now();
        let gathering = {
            let filling = std::sync::Arc::clone(&filling);
            tokio::spawn(async move {
                let mut batch = Vec::new();
                let taken = next_batch(
                    &rx,
                    &mut batch,
                    &filling,
                    8,
                    Duration::from_secs(60),
                    &closing,
                    &AtomicI64::new(0),
                )
                .await;
                taken.then_some(batch)
            })
        };
        tokio::task::yield_now().await;
        for i in 1..8 {
            tx.send(event(i)).expect("queued");
            filling.handed_over();
        }
        let batch = gathering.await.expect("task").expect("a batch");
        assert_eq!(batch.len(), 8);
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "cut when the eighth event came, not when the batch's age was up"
        );
    }

    #[test]
    fn a_writer_is_woken_well_before_a_small_queue_fills() {
        assert_eq!(Filling::new(50_000, 65_536).every, WAKE_EVERY_MAX);
        assert_eq!(Filling::new(10, 65_536).every, 10, "a small batch");
        assert_eq!(
            Filling::new(50_000, 16).every,
            4,
            "a quarter of a small queue"
        );
        assert_eq!(Filling::new(50_000, 1).every, 1);
    }
}
