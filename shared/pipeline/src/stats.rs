//! The pipeline's accounting. Atomics are the source of truth (cheap to bump per batch, read by
//! `/api/v1/status` and by tests); [`PipelineStats::export`] copies them into the Prometheus
//! recorder when `/metrics` is scraped.
//!
//! The invariant, at all times: received (+ recovered from a previous run's spool) = written +
//! dropped (all reasons) + queued + in flight + in spool.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use serde::Serialize;

/// The pipeline's metric names, each written once: [`PipelineStats::describe`] documents them
/// and the pipeline records them through these constants only.
pub mod names {
    pub const BATCH_SIZE_EVENTS: &str = "aim_analytics_batch_size_events";
    pub const BATCHES_TOTAL: &str = "aim_analytics_batches_total";
    pub const DATABASE_DOWN: &str = "aim_analytics_database_down";
    pub const EVENTS_DROPPED_TOTAL: &str = "aim_analytics_events_dropped_total";
    pub const EVENTS_ENQUEUED_TOTAL: &str = "aim_analytics_events_enqueued_total";
    pub const EVENTS_IN_FLIGHT: &str = "aim_analytics_events_in_flight";
    pub const EVENTS_RECEIVED_TOTAL: &str = "aim_analytics_events_received_total";
    pub const EVENTS_REPLAYED_TOTAL: &str = "aim_analytics_events_replayed_total";
    pub const EVENTS_SPILLED_TOTAL: &str = "aim_analytics_events_spilled_total";
    pub const EVENTS_SPOOLED_TOTAL: &str = "aim_analytics_events_spooled_total";
    pub const EVENTS_WRITTEN_TOTAL: &str = "aim_analytics_events_written_total";
    pub const EVENTS_DEAD_LETTERED_TOTAL: &str = "aim_analytics_events_dead_lettered_total";
    pub const STATEMENT_REFUSED: &str = "aim_analytics_statement_refused";
    pub const FLUSH_DURATION_SECONDS: &str = "aim_analytics_flush_duration_seconds";
    pub const LAST_FLUSH_TIMESTAMP_SECONDS: &str = "aim_analytics_last_flush_timestamp_seconds";
    pub const QUEUE_DEPTH: &str = "aim_analytics_queue_depth";
    pub const SPOOL_BYTES: &str = "aim_analytics_spool_bytes";
    pub const SPOOL_CORRUPT_FRAMES_TOTAL: &str = "aim_analytics_spool_corrupt_frames_total";
    pub const SPOOL_FRAMES: &str = "aim_analytics_spool_frames";
}

/// Why events were dropped; each is a label value of [`names::EVENTS_DROPPED_TOTAL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The bounded queue was full.
    QueueFull,
    /// The database was down and the spool at its size cap.
    SpoolFull,
    /// A spooled batch older than the spool's maximum age.
    SpoolExpired,
    /// A spool frame that failed its checksum or was torn.
    SpoolCorrupt,
    /// PostgreSQL refused events and the dead-letter spool could not keep them (at its cap, or
    /// its disk failed).
    Rejected,
    /// Arrived after the pipeline was closed for shutdown.
    Shutdown,
}

impl DropReason {
    pub const ALL: [Self; 6] = [
        Self::QueueFull,
        Self::SpoolFull,
        Self::SpoolExpired,
        Self::SpoolCorrupt,
        Self::Rejected,
        Self::Shutdown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::SpoolFull => "spool_full",
            Self::SpoolExpired => "spool_expired",
            Self::SpoolCorrupt => "spool_corrupt",
            Self::Rejected => "rejected",
            Self::Shutdown => "shutdown",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::QueueFull => 0,
            Self::SpoolFull => 1,
            Self::SpoolExpired => 2,
            Self::SpoolCorrupt => 3,
            Self::Rejected => 4,
            Self::Shutdown => 5,
        }
    }
}

#[derive(Debug, Default)]
pub struct PipelineStats {
    pub(crate) received: AtomicU64,
    pub(crate) written: AtomicU64,
    dropped: [AtomicU64; 6],
    pub(crate) spooled: AtomicU64,
    /// Of `spooled`, events the spiller moved off a three-quarters-full queue.
    pub(crate) spilled: AtomicU64,
    pub(crate) replayed: AtomicU64,
    /// Events a previous run left in the spool, found at start.
    pub(crate) recovered: AtomicU64,
    /// Events taken off the queue and not yet written, spooled or dropped.
    pub(crate) in_flight: AtomicI64,
    /// Events sitting in the spool, waiting for replay.
    pub(crate) in_spool: AtomicI64,
    pub(crate) batches_written: AtomicU64,
    pub(crate) batches_duplicate: AtomicU64,
    pub(crate) spool_bytes: AtomicU64,
    pub(crate) spool_frames: AtomicU64,
    pub(crate) corrupt_frames: AtomicU64,
    /// Unix milliseconds of the last committed batch; 0 before the first.
    pub(crate) last_flush_ms: AtomicI64,
    pub(crate) database_down: std::sync::atomic::AtomicBool,
    /// Events PostgreSQL refused, kept in the dead-letter spool.
    pub(crate) dead_lettered: AtomicU64,
    /// PostgreSQL's own message while it refuses the batch statement itself (a SQLSTATE of
    /// class 42 or 0A, or both halves of a split refused); cleared by the next batch written.
    pub(crate) statement_refused: std::sync::Mutex<Option<String>>,
}

/// A consistent-enough copy for status pages and tests.
#[derive(Debug, Clone, Serialize)]
pub struct StatsSnapshot {
    pub received: u64,
    /// Received and not dropped at the door (`queue_full`, `shutdown`).
    pub enqueued: u64,
    pub written: u64,
    pub dropped: u64,
    pub spooled: u64,
    pub spilled: u64,
    pub replayed: u64,
    pub recovered: u64,
    pub in_flight: i64,
    pub in_spool: i64,
    pub batches_written: u64,
    pub batches_duplicate: u64,
    pub spool_bytes: u64,
    pub spool_frames: u64,
    pub corrupt_frames: u64,
    pub last_flush_ms: i64,
    pub database_down: bool,
    pub dropped_by_reason: Vec<(&'static str, u64)>,
    /// Events PostgreSQL refused, kept in the dead-letter spool: with `written` and `dropped`,
    /// every enqueued event is accounted for.
    pub dead_lettered: u64,
    /// PostgreSQL's message while it refuses the batch statement itself (the pipeline is
    /// degraded: every batch goes to the dead-letter spool).
    pub statement_refused: Option<String>,
}

impl PipelineStats {
    pub fn drop_events(&self, reason: DropReason, events: u64) {
        self.dropped[reason.index()].fetch_add(events, Ordering::Relaxed);
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason.index()].load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let dropped_by_reason: Vec<_> = DropReason::ALL
            .iter()
            .map(|r| (r.as_str(), self.dropped(*r)))
            .collect();
        StatsSnapshot {
            received: self.received.load(Ordering::Relaxed),
            enqueued: self.received.load(Ordering::Relaxed).saturating_sub(
                self.dropped(DropReason::QueueFull) + self.dropped(DropReason::Shutdown),
            ),
            written: self.written.load(Ordering::Relaxed),
            dropped: dropped_by_reason.iter().map(|(_, n)| n).sum(),
            spooled: self.spooled.load(Ordering::Relaxed),
            spilled: self.spilled.load(Ordering::Relaxed),
            replayed: self.replayed.load(Ordering::Relaxed),
            recovered: self.recovered.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            in_spool: self.in_spool.load(Ordering::Relaxed),
            batches_written: self.batches_written.load(Ordering::Relaxed),
            batches_duplicate: self.batches_duplicate.load(Ordering::Relaxed),
            spool_bytes: self.spool_bytes.load(Ordering::Relaxed),
            spool_frames: self.spool_frames.load(Ordering::Relaxed),
            corrupt_frames: self.corrupt_frames.load(Ordering::Relaxed),
            last_flush_ms: self.last_flush_ms.load(Ordering::Relaxed),
            database_down: self.database_down.load(Ordering::Relaxed),
            dropped_by_reason,
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            statement_refused: self.statement_refused.lock().ok().and_then(|m| m.clone()),
        }
    }

    /// Help texts for every pipeline metric, registered once with the exporter (Prometheus
    /// tooling expects them).
    pub fn describe() {
        use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
        describe_counter!(
            names::EVENTS_RECEIVED_TOTAL,
            "Analytics events built by the request path."
        );
        describe_counter!(
            names::EVENTS_ENQUEUED_TOTAL,
            "Events accepted into the queue (received minus queue_full and shutdown drops)."
        );
        describe_counter!(
            names::EVENTS_WRITTEN_TOTAL,
            "Events committed to api_calls, replays included."
        );
        describe_counter!(
            names::EVENTS_DEAD_LETTERED_TOTAL,
            "Events PostgreSQL refused (a trigger, a constraint, a statement the schema no longer accepts), kept in the dead-letter spool for `aim spool dead-letter replay` or `discard`."
        );
        describe_gauge!(
            names::STATEMENT_REFUSED,
            "1 while PostgreSQL refuses the batch statement itself (SQLSTATE class 42 or 0A, or both halves of a split refused): every batch goes to the dead-letter spool."
        );
        describe_counter!(
            names::EVENTS_SPOOLED_TOTAL,
            "Events written to the disk spool while the database was unavailable."
        );
        describe_counter!(
            names::EVENTS_SPILLED_TOTAL,
            "Of the spooled events, those moved off a three-quarters-full queue while the writers waited on a slow database."
        );
        describe_counter!(
            names::EVENTS_REPLAYED_TOTAL,
            "Events replayed from the spool."
        );
        describe_counter!(
            names::EVENTS_DROPPED_TOTAL,
            "Events lost, by reason: queue_full, spool_full, spool_expired, spool_corrupt (counts damaged spool frames: their events cannot be read), rejected, shutdown."
        );
        describe_counter!(
            names::BATCHES_TOTAL,
            "Batches by outcome: written, or duplicate (a replay the ledger skipped)."
        );
        describe_counter!(
            names::SPOOL_CORRUPT_FRAMES_TOTAL,
            "Damaged spool frames found on replay."
        );
        describe_gauge!(names::QUEUE_DEPTH, "Events waiting in the queue.");
        describe_gauge!(
            names::EVENTS_IN_FLIGHT,
            "Events taken by a writer and not yet committed or spooled."
        );
        describe_gauge!(
            names::SPOOL_BYTES,
            Unit::Bytes,
            "Bytes waiting in the spool."
        );
        describe_gauge!(names::SPOOL_FRAMES, "Batches waiting in the spool.");
        describe_gauge!(
            names::DATABASE_DOWN,
            "1 while the writers cannot reach PostgreSQL and spool instead."
        );
        describe_gauge!(
            names::LAST_FLUSH_TIMESTAMP_SECONDS,
            Unit::Seconds,
            "Unix time of the last committed batch."
        );
        describe_histogram!(names::BATCH_SIZE_EVENTS, "Events per committed batch.");
        describe_histogram!(
            names::FLUSH_DURATION_SECONDS,
            Unit::Seconds,
            "Time to write one batch: ledger, COPY, rollups, commit."
        );
    }

    /// Copies the counters into the process's metrics recorder (called on each scrape).
    pub fn export(&self, queue_depth: usize) {
        let s = self.snapshot();
        metrics::counter!(names::EVENTS_RECEIVED_TOTAL).absolute(s.received);
        metrics::counter!(names::EVENTS_ENQUEUED_TOTAL).absolute(s.enqueued);
        metrics::counter!(names::EVENTS_WRITTEN_TOTAL).absolute(s.written);
        metrics::counter!(names::EVENTS_DEAD_LETTERED_TOTAL).absolute(s.dead_lettered);
        metrics::gauge!(names::STATEMENT_REFUSED).set(if s.statement_refused.is_some() {
            1.0
        } else {
            0.0
        });
        metrics::counter!(names::EVENTS_SPOOLED_TOTAL).absolute(s.spooled);
        metrics::counter!(names::EVENTS_SPILLED_TOTAL).absolute(s.spilled);
        metrics::counter!(names::EVENTS_REPLAYED_TOTAL).absolute(s.replayed);
        for (reason, n) in &s.dropped_by_reason {
            metrics::counter!(names::EVENTS_DROPPED_TOTAL, "reason" => *reason).absolute(*n);
        }
        metrics::counter!(names::BATCHES_TOTAL, "outcome" => "written").absolute(s.batches_written);
        metrics::counter!(names::BATCHES_TOTAL, "outcome" => "duplicate")
            .absolute(s.batches_duplicate);
        metrics::counter!(names::SPOOL_CORRUPT_FRAMES_TOTAL).absolute(s.corrupt_frames);
        metrics::gauge!(names::QUEUE_DEPTH).set(queue_depth as f64);
        metrics::gauge!(names::EVENTS_IN_FLIGHT).set(s.in_flight as f64);
        metrics::gauge!(names::SPOOL_BYTES).set(s.spool_bytes as f64);
        metrics::gauge!(names::SPOOL_FRAMES).set(s.spool_frames as f64);
        metrics::gauge!(names::DATABASE_DOWN).set(if s.database_down { 1.0 } else { 0.0 });
        metrics::gauge!(names::LAST_FLUSH_TIMESTAMP_SECONDS).set(s.last_flush_ms as f64 / 1000.0);
    }
}

/// Records one committed batch's size and write time.
pub(crate) fn record_flush(events: u64, took: std::time::Duration) {
    metrics::histogram!(names::BATCH_SIZE_EVENTS).record(events as f64);
    metrics::histogram!(names::FLUSH_DURATION_SECONDS).record(took.as_secs_f64());
}

impl StatsSnapshot {
    /// Whether every event is accounted for: `received + recovered = written + dead-lettered
    /// + dropped + queued + in flight + in spool`.
    pub fn balanced(&self, queued: u64) -> bool {
        let pending = u64::try_from(self.in_flight + self.in_spool).unwrap_or(u64::MAX);
        self.received + self.recovered
            == self.written + self.dead_lettered + self.dropped + queued + pending
    }
}
