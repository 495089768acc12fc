//! The running pipeline: the bounded queue, the writers that batch from it, and the replayer
//! that drains the spool.
//!
//! ```text
//! Sink::record ─try_send─▶ flume (bounded) ─▶ writer × N: batch by size or age of the first event
//!                                               ├─ database up: one transaction (ledger + COPY)
//!                                               ├─ connection/server failure: spool the batch,
//!                                               │  mark the database down, wake the replayer
//!                                               └─ content refused: count as `rejected`, log once
//! replayer: while the database is down, probe with capped exponential backoff; once it answers,
//!           replay sealed spool segments in order (the ledger drops what was already applied)
//! spiller:  past 3/4 of the queue's capacity (every writer waiting on a database that answers,
//!           only too slowly), move the oldest events to the spool, down to half
//! ```
//!
//! Shutdown ([`Pipeline::shutdown`]): the sink closes (later events count as `shutdown` drops),
//! writers drain the queue and flush; past 3/4 of the deadline a writer stuck on the database
//! gives up and spools instead; events still queued at the very end are counted, never ignored.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aim_connect::TokioPostgres;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::copy::{Outcome, WriteError, write_batch};
use crate::event::{ApiCallEvent, CallRow};
use crate::spool::{self, Spool, SpoolError, SpooledBatch};
use crate::stats::{DropReason, PipelineStats};

/// How the pipeline is sized; see `docs/configuration.md` for the variables behind it.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub queue_capacity: usize,
    pub writers: usize,
    pub batch_max: usize,
    pub flush_after: Duration,
    pub spool_dir: PathBuf,
    pub spool_max_bytes: u64,
    pub spool_max_age: Duration,
    /// Whether each batch also upserts its rollup deltas. Always on in the service; off only
    /// to measure what the rollup step costs (the ingest benchmark's baseline).
    pub rollups: bool,
    /// How many steps below the starting thread's CPU priority the pipeline's threads run (a
    /// nice increment, capped at 19; 0 for none; Linux only). The pipeline's bursts — a backlog
    /// spooled when the database goes away, the spool replayed when it returns, the spiller —
    /// then take the cores only when requests leave them idle.
    pub nice: u8,
}

/// Events per batch at most. A batch costs one COPY (per event) plus one rollup row per distinct
/// key (agent, route, organization × hour and day), written while the rollup lock is held; so
/// when a backlog builds up, big batches fold many events into each rollup row: 2,000-event
/// batches kept 0.23 of the ingest rate without rollups, 50,000-event ones about 0.9
/// (`docs/benchmarks.md`). Under a light load the flush interval ends batches long before.
pub const DEFAULT_BATCH_MAX: usize = 50_000;

/// How long one statement of a batch may run. A writer stuck behind a lock (a long migration, an
/// operator's `LOCK TABLE`) gives up and spools its batch instead of letting the queue fill up
/// and drop events; the replayer writes it once the statement goes through again. A batch of
/// 50,000 events takes well under a second.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The writers' connection settings plus [`STATEMENT_TIMEOUT`], after any `options` the
/// settings already carry.
fn with_statement_timeout(mut database: TokioPostgres) -> TokioPostgres {
    let timeout = format!("-c statement_timeout={}", STATEMENT_TIMEOUT.as_millis());
    let options = match database.config.get_options() {
        Some(existing) if !existing.is_empty() => format!("{existing} {timeout}"),
        _ => timeout,
    };
    database.config.options(&options);
    database
}

const PROBE_MIN: Duration = Duration::from_millis(100);
const PROBE_MAX: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("opening the spool: {0}")]
    Spool(#[from] SpoolError),
    #[error("building the writers' connection pool: {0}")]
    Pool(String),
    #[error("starting the pipeline's threads: {0}")]
    Runtime(std::io::Error),
}

/// The request path's handle: hand over an event without waiting.
#[derive(Clone)]
pub struct Sink {
    tx: flume::Sender<ApiCallEvent>,
    stats: Arc<PipelineStats>,
    closed: Arc<AtomicBool>,
}

impl Sink {
    /// Never blocks, never fails the caller: a full queue or a closed pipeline drops the event
    /// and counts it.
    pub fn record(&self, event: ApiCallEvent) {
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        if self.closed.load(Ordering::Acquire) {
            self.stats.drop_events(DropReason::Shutdown, 1);
            return;
        }
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(flume::TrySendError::Full(_)) => self.stats.drop_events(DropReason::QueueFull, 1),
            Err(flume::TrySendError::Disconnected(_)) => {
                self.stats.drop_events(DropReason::Shutdown, 1);
            }
        }
    }
}

/// What `/api/v1/status` shows of the pipeline.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PipelineStatus {
    pub state: &'static str,
    pub queue_depth: usize,
    pub spool_bytes: u64,
    pub events_written: u64,
    pub events_dropped: u64,
    /// `None` until the first batch is written.
    pub last_flush_age_ms: Option<i64>,
}

struct Shared {
    config: PipelineConfig,
    stats: Arc<PipelineStats>,
    pool: deadpool_postgres::Pool,
    spool: Mutex<Spool>,
    /// Woken when a batch is spooled or the database goes down.
    wake: Notify,
    /// Writers: drain the queue and stop.
    closing: CancellationToken,
    /// Writers: stop waiting on the database; spool what is left.
    hurry: CancellationToken,
    /// Batches of partially replayed segments already applied, so a re-read skips them.
    replayed: Mutex<HashSet<Uuid>>,
}

/// The running pipeline. [`Pipeline::shutdown`] stops it after a flush; dropping it stops its
/// tasks without one.
pub struct Pipeline {
    sink: Sink,
    rx: flume::Receiver<ApiCallEvent>,
    shared: Arc<Shared>,
    /// Taken by the one [`Pipeline::shutdown`] call that waits for them.
    tasks: Mutex<Option<Tasks>>,
    /// The pipeline's own threads (see [`PipelineConfig::nice`]); `None` only once dropped.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Does not block, so a pipeline may be dropped inside another runtime.
            runtime.shutdown_background();
        }
    }
}

/// The runtime the pipeline's tasks (and their connections and spool writes) run on: threads of
/// their own, at a lower CPU priority than the threads that serve requests.
fn analytics_runtime(threads: usize, nice: u8) -> std::io::Result<tokio::runtime::Runtime> {
    let priority = lowered_priority(nice);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("aim-analytics")
        .enable_all()
        .on_thread_start(move || {
            if let Some(priority) = priority {
                set_thread_priority(priority);
            }
        })
        .build()
}

/// The nice value `nice` steps below the calling thread's; `None` when there is nothing to lower
/// (or no way to, off Linux). An absolute value, so that threads started by threads already
/// lowered are not lowered twice.
fn lowered_priority(nice: u8) -> Option<i32> {
    if nice == 0 || !cfg!(target_os = "linux") {
        return None;
    }
    let current = rustix::process::getpriority_process(None).unwrap_or(0);
    Some((current + i32::from(nice)).min(19))
}

/// On Linux the nice value belongs to a thread, and `setpriority(PRIO_PROCESS, 0, …)` sets the
/// calling thread's (elsewhere it would be the whole process's, hence Linux only).
fn set_thread_priority(priority: i32) {
    if let Err(e) = rustix::process::setpriority_process(None, priority) {
        tracing::warn!(error = %e, priority, "could not lower the analytics threads' CPU priority");
    }
}

struct Tasks {
    writers: Vec<JoinHandle<()>>,
    spiller: JoinHandle<()>,
    replayer: JoinHandle<()>,
}

impl Pipeline {
    /// Opens the spool (counting what a previous run left in it), builds the writers' pool
    /// (connections open lazily, so a down database does not stop start-up) and starts the
    /// tasks.
    ///
    /// # Errors
    /// [`PipelineError`] when the spool folder or the pool cannot be set up.
    pub fn start(config: PipelineConfig, database: TokioPostgres) -> Result<Self, PipelineError> {
        let stats = Arc::new(PipelineStats::default());
        let spool = Spool::open(&config.spool_dir, config.spool_max_bytes)?;
        recover(&spool, &stats)?;
        let database = with_statement_timeout(database);
        let manager = deadpool_postgres::Manager::from_config(
            database.config,
            database.tls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(config.writers + 1)
            .build()
            .map_err(|e| PipelineError::Pool(e.to_string()))?;
        let runtime = analytics_runtime(config.writers.max(1), config.nice)
            .map_err(PipelineError::Runtime)?;
        let (tx, rx) = flume::bounded(config.queue_capacity);
        let shared = Arc::new(Shared {
            stats: Arc::clone(&stats),
            pool,
            spool: Mutex::new(spool),
            wake: Notify::new(),
            closing: CancellationToken::new(),
            hurry: CancellationToken::new(),
            replayed: Mutex::new(HashSet::new()),
            config,
        });
        let writers = (0..shared.config.writers.max(1))
            .map(|i| {
                let shared = Arc::clone(&shared);
                let rx = rx.clone();
                runtime.spawn(tracing::Instrument::instrument(
                    run_writer(shared, rx),
                    tracing::info_span!("analytics_writer", writer = i),
                ))
            })
            .collect();
        let spiller = runtime.spawn(tracing::Instrument::instrument(
            run_spiller(Arc::clone(&shared), rx.clone()),
            tracing::info_span!("analytics_spiller"),
        ));
        let replayer = runtime.spawn(tracing::Instrument::instrument(
            run_replayer(Arc::clone(&shared)),
            tracing::info_span!("analytics_replayer"),
        ));
        Ok(Self {
            sink: Sink {
                tx,
                stats,
                closed: Arc::new(AtomicBool::new(false)),
            },
            rx,
            shared,
            tasks: Mutex::new(Some(Tasks {
                writers,
                spiller,
                replayer,
            })),
            runtime: Some(runtime),
        })
    }

    pub fn sink(&self) -> Sink {
        self.sink.clone()
    }

    pub fn stats(&self) -> &Arc<PipelineStats> {
        &self.shared.stats
    }

    pub fn queue_depth(&self) -> usize {
        self.rx.len()
    }

    /// The writers' connection pool: connections open, idle, and writers waiting for one.
    pub fn pool_status(&self) -> deadpool_postgres::Status {
        self.shared.pool.status()
    }

    pub fn status(&self) -> PipelineStatus {
        let s = self.shared.stats.snapshot();
        let state = if self.sink.closed.load(Ordering::Relaxed) {
            "stopping"
        } else if s.database_down {
            "spooling"
        } else if s.in_spool > 0 {
            "replaying"
        } else {
            "running"
        };
        PipelineStatus {
            state,
            queue_depth: self.rx.len(),
            spool_bytes: s.spool_bytes,
            events_written: s.written,
            events_dropped: s.dropped,
            last_flush_age_ms: (s.last_flush_ms > 0).then(|| now_ms() - s.last_flush_ms),
        }
    }

    /// Closes the sink, lets the writers drain and flush (spooling if the database is down) and
    /// waits for them until `deadline`. Returns the number of events that could not be handled
    /// in time (counted as `shutdown` drops).
    pub async fn shutdown(&self, deadline: Instant) -> u64 {
        let Some(Tasks {
            writers,
            spiller,
            replayer,
        }) = self.tasks.lock().ok().and_then(|mut t| t.take())
        else {
            return 0;
        };
        self.sink.closed.store(true, Ordering::Release);
        self.shared.closing.cancel();
        let now = Instant::now();
        let hurry_at = now + (deadline.saturating_duration_since(now) * 3) / 4;
        let shared = Arc::clone(&self.shared);
        let hurry = tokio::spawn(async move {
            tokio::time::sleep_until(hurry_at).await;
            shared.hurry.cancel();
        });
        // The spiller stops at `closing`, after spooling any batch it holds.
        if timeout_at(deadline, spiller).await.is_err() {
            tracing::warn!("the analytics spiller was still spooling at the shutdown deadline");
        }
        for writer in writers {
            if timeout_at(deadline, writer).await.is_err() {
                tracing::warn!("an analytics writer was still busy at the shutdown deadline");
            }
        }
        hurry.abort();
        replayer.abort();
        let mut left = 0u64;
        while self.rx.try_recv().is_ok() {
            left += 1;
        }
        if left > 0 {
            self.shared.stats.drop_events(DropReason::Shutdown, left);
            tracing::error!(
                events = left,
                "analytics events still queued at the shutdown deadline were dropped"
            );
        }
        if let Ok(mut spool) = self.shared.spool.lock() {
            spool.seal();
        }
        self.shared.pool.close();
        left
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Counts what a previous run left in the spool, so the status and the replay account for it.
fn recover(spool: &Spool, stats: &PipelineStats) -> Result<(), SpoolError> {
    let mut events = 0i64;
    let mut frames = 0u64;
    for segment in spool.sealed_segments()? {
        let contents = spool::read_segment(&segment)?;
        frames += contents.batches.len() as u64;
        events += contents
            .batches
            .iter()
            .map(|b| b.rows.len() as i64)
            .sum::<i64>();
    }
    let bytes = spool.bytes()?;
    if bytes > 0 {
        tracing::warn!(events, frames, bytes, dir = %spool.dir().display(), "spooled analytics found; replaying");
    }
    stats.in_spool.store(events, Ordering::Relaxed);
    stats
        .recovered
        .store(u64::try_from(events).unwrap_or(0), Ordering::Relaxed);
    stats.spool_frames.store(frames, Ordering::Relaxed);
    stats.spool_bytes.store(bytes, Ordering::Relaxed);
    Ok(())
}

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

async fn run_writer(shared: Arc<Shared>, rx: flume::Receiver<ApiCallEvent>) {
    let max = shared.config.batch_max.max(1);
    while let Some(events) = next_batch(
        &rx,
        max,
        shared.config.flush_after,
        &shared.closing,
        &shared.stats.in_flight,
    )
    .await
    {
        deliver(&shared, Uuid::now_v7(), events).await;
    }
}

/// How often the spiller looks at the queue's depth.
const SPILL_CHECK: Duration = Duration::from_millis(20);

/// Keeps the queue from overflowing while every writer waits on a database that answers, only
/// too slowly to count as down: a table lock held for seconds, a disk that stalls. Writers give
/// such a batch up only at the statement timeout, and by then a busy service has filled the
/// queue and dropped events. Past three quarters of the queue's capacity the spiller moves the
/// oldest events to the spool, down to half, in batches the replayer writes once the database
/// keeps up again; events are dropped only when the spool cannot take them either. Under a
/// normal load the queue never gets near that, and the spiller only looks.
async fn run_spiller(shared: Arc<Shared>, rx: flume::Receiver<ApiCallEvent>) {
    let capacity = shared.config.queue_capacity.max(1);
    let high_water = (capacity - capacity / 4).max(1);
    let low_water = capacity / 2;
    let max = shared.config.batch_max.max(1);
    let mut spilling = false;
    loop {
        tokio::select! {
            () = shared.closing.cancelled() => return,
            () = tokio::time::sleep(SPILL_CHECK) => {}
        }
        // A full spool would only turn the writers' next events into drops: leave them queued.
        let spool_full =
            shared.stats.spool_bytes.load(Ordering::Relaxed) >= shared.config.spool_max_bytes;
        if rx.len() < high_water || spool_full {
            spilling = false;
            continue;
        }
        if !spilling {
            spilling = true;
            tracing::warn!(
                queued = rx.len(),
                capacity,
                "analytics queue three quarters full while the writers wait on the database; spooling the oldest events"
            );
        }
        while rx.len() > low_water && !shared.closing.is_cancelled() {
            let take = (rx.len() - low_water).min(max);
            let mut events = Vec::with_capacity(take);
            for event in rx.try_iter().take(take) {
                events.push(event);
                shared.stats.in_flight.fetch_add(1, Ordering::Relaxed);
            }
            if events.is_empty() {
                break;
            }
            if spool_events(&shared, Uuid::now_v7(), &events).await {
                let n = events.len() as u64;
                shared.stats.spilled.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}

/// Writes a fresh batch straight from its events, or spools it when the database is down.
async fn deliver(shared: &Arc<Shared>, batch_id: Uuid, events: Vec<ApiCallEvent>) {
    let n = events.len() as i64;
    let stats = &shared.stats;
    if !stats.database_down.load(Ordering::Relaxed) {
        let started = std::time::Instant::now();
        match write_to_database(shared, batch_id, &events).await {
            Ok(outcome) => {
                stats.in_flight.fetch_sub(n, Ordering::Relaxed);
                committed(stats, outcome, n as u64, started.elapsed());
                return;
            }
            Err(WriteError::Rejected(reason)) => {
                stats.in_flight.fetch_sub(n, Ordering::Relaxed);
                stats.drop_events(DropReason::Rejected, n as u64);
                tracing::error!(%batch_id, events = n, %reason, "PostgreSQL refused an analytics batch; dropped");
                return;
            }
            Err(WriteError::Unavailable(reason)) => {
                if !stats.database_down.swap(true, Ordering::Relaxed) {
                    tracing::warn!(%reason, "database unavailable; spooling analytics to disk");
                }
                shared.wake.notify_one();
            }
        }
    }
    spool_events(shared, batch_id, &events).await;
}

/// Appends a batch taken from the queue (counted in flight) to the spool, or counts it dropped
/// as `spool_full` when the spool cannot take it. Returns whether it was spooled.
async fn spool_events(shared: &Arc<Shared>, batch_id: Uuid, events: &[ApiCallEvent]) -> bool {
    let n = events.len() as i64;
    let stats = &shared.stats;
    let batch = SpooledBatch {
        batch_id,
        spooled_at_ms: now_ms(),
        rows: events.iter().map(CallRow::from_event).collect(),
    };
    match append_to_spool(shared, batch).await {
        Ok(()) => {
            stats.in_flight.fetch_sub(n, Ordering::Relaxed);
            stats.in_spool.fetch_add(n, Ordering::Relaxed);
            stats.spooled.fetch_add(n as u64, Ordering::Relaxed);
            shared.wake.notify_one();
            true
        }
        Err(e) => {
            stats.in_flight.fetch_sub(n, Ordering::Relaxed);
            stats.drop_events(DropReason::SpoolFull, n as u64);
            tracing::error!(%batch_id, events = n, error = %e, "could not spool an analytics batch; dropped");
            false
        }
    }
}

fn committed(stats: &PipelineStats, outcome: Outcome, events: u64, took: Duration) {
    stats.written.fetch_add(events, Ordering::Relaxed);
    match outcome {
        Outcome::Written => stats.batches_written.fetch_add(1, Ordering::Relaxed),
        Outcome::Duplicate => stats.batches_duplicate.fetch_add(1, Ordering::Relaxed),
    };
    stats.last_flush_ms.store(now_ms(), Ordering::Relaxed);
    metrics::histogram!("aim_analytics_batch_size_events").record(events as f64);
    metrics::histogram!("aim_analytics_flush_duration_seconds").record(took.as_secs_f64());
}

async fn write_to_database<T: crate::event::AsRow>(
    shared: &Shared,
    batch_id: Uuid,
    rows: &[T],
) -> Result<Outcome, WriteError> {
    let attempt = async {
        let client = shared
            .pool
            .get()
            .await
            .map_err(|e| WriteError::Unavailable(e.to_string()))?;
        let statements = cached_statements(&client, shared.config.rollups)
            .await
            .map_err(|e| WriteError::classify(&e))?;
        let result = write_batch(&client, &statements, batch_id, rows).await;
        if matches!(result, Err(WriteError::Unavailable(_))) {
            // The connection's state is unknown; never hand it to another batch.
            let _ = deadpool_postgres::Object::take(client);
        }
        result
    };
    tokio::select! {
        result = attempt => result,
        () = shared.hurry.cancelled() => Err(WriteError::Unavailable("shutdown deadline".into())),
    }
}

/// The batch statements, prepared once per pooled connection.
async fn cached_statements(
    client: &deadpool_postgres::Object,
    rollups: bool,
) -> Result<crate::copy::Statements, tokio_postgres::Error> {
    use crate::rollup::apply::RollupStatements;
    let rollups = if rollups {
        Some(
            RollupStatements::prepare_with(|sql| async move { client.prepare_cached(&sql).await })
                .await?,
        )
    } else {
        None
    };
    Ok(crate::copy::Statements {
        copy: client.prepare_cached(crate::copy::COPY).await?,
        rollups,
    })
}

/// Appends and fsyncs on the blocking pool: disk latency must not stall a runtime worker.
async fn append_to_spool(shared: &Arc<Shared>, batch: SpooledBatch) -> Result<(), SpoolError> {
    let used = shared.stats.spool_bytes.load(Ordering::Relaxed);
    let owner = Arc::clone(shared);
    let size = tokio::task::spawn_blocking(move || lock(&owner)?.append(&batch, used))
        .await
        .map_err(|e| SpoolError::Io {
            path: shared.config.spool_dir.clone(),
            source: std::io::Error::other(e.to_string()),
        })??;
    shared.stats.spool_bytes.fetch_add(size, Ordering::Relaxed);
    shared.stats.spool_frames.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

async fn run_replayer(shared: Arc<Shared>) {
    let mut backoff = PROBE_MIN;
    loop {
        let pending = shared.stats.in_spool.load(Ordering::Relaxed) > 0
            || shared.stats.spool_frames.load(Ordering::Relaxed) > 0;
        let down = shared.stats.database_down.load(Ordering::Relaxed);
        if !pending && !down {
            tokio::select! {
                () = shared.wake.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
            continue;
        }
        if down {
            if probe(&shared).await {
                shared.stats.database_down.store(false, Ordering::Relaxed);
                tracing::info!("database reachable again; replaying the spool");
                backoff = PROBE_MIN;
            } else {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(PROBE_MAX);
                continue;
            }
        }
        if let Err(e) = replay(&shared).await {
            tracing::error!(error = %e, "replaying the spool failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(PROBE_MAX);
            continue;
        }
        // One pass at a time: whatever was spooled meanwhile waits for a wake-up or a second.
        if !shared.stats.database_down.load(Ordering::Relaxed) {
            tokio::select! {
                () = shared.wake.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

async fn probe(shared: &Shared) -> bool {
    let check = async {
        let client = shared.pool.get().await.ok()?;
        match client.simple_query("SELECT 1").await {
            Ok(_) => Some(()),
            Err(_) => {
                let _ = deadpool_postgres::Object::take(client);
                None
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), check)
        .await
        .ok()
        .flatten()
        .is_some()
}

/// Replays every sealed segment in order; stops (leaving the rest) when the database fails.
async fn replay(shared: &Arc<Shared>) -> Result<(), SpoolError> {
    let segments = {
        let mut spool = lock(shared)?;
        spool.seal();
        spool.sealed_segments()?
    };
    for segment in segments {
        let path = segment.clone();
        let contents = tokio::task::spawn_blocking(move || spool::read_segment(&path))
            .await
            .map_err(|e| SpoolError::Io {
                path: segment.clone(),
                source: std::io::Error::other(e.to_string()),
            })??;
        let size = std::fs::metadata(&segment).map_or(0, |m| m.len());
        for batch in &contents.batches {
            let n = batch.rows.len() as i64;
            let done = shared
                .replayed
                .lock()
                .map(|r| r.contains(&batch.batch_id))
                .unwrap_or(false);
            if done {
                continue;
            }
            if spool::expired(batch, now_ms(), shared.config.spool_max_age) {
                shared.stats.drop_events(DropReason::SpoolExpired, n as u64);
                tracing::warn!(batch_id = %batch.batch_id, events = n, "spooled batch past the maximum age; dropped");
            } else {
                let started = std::time::Instant::now();
                match write_to_database(shared, batch.batch_id, &batch.rows).await {
                    Ok(outcome) => {
                        committed(&shared.stats, outcome, n as u64, started.elapsed());
                        shared.stats.replayed.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(WriteError::Rejected(reason)) => {
                        shared.stats.drop_events(DropReason::Rejected, n as u64);
                        tracing::error!(batch_id = %batch.batch_id, %reason, "PostgreSQL refused a spooled batch; dropped");
                    }
                    Err(WriteError::Unavailable(reason)) => {
                        shared.stats.database_down.store(true, Ordering::Relaxed);
                        tracing::warn!(%reason, "database unavailable again during replay");
                        return Ok(());
                    }
                }
            }
            shared.stats.in_spool.fetch_sub(n, Ordering::Relaxed);
            if let Ok(mut replayed) = shared.replayed.lock() {
                replayed.insert(batch.batch_id);
            }
        }
        if contents.damaged() {
            let corrupt = contents.corrupt_frames + u64::from(contents.torn_tail);
            shared
                .stats
                .corrupt_frames
                .fetch_add(corrupt, Ordering::Relaxed);
            // A damaged frame's event count cannot be read: drops are counted per frame.
            shared.stats.drop_events(DropReason::SpoolCorrupt, corrupt);
            let moved = lock(shared)?.quarantine(&segment)?;
            tracing::error!(corrupt_frames = contents.corrupt_frames, torn_tail = contents.torn_tail,
                quarantined = %moved.display(), "damaged spool segment: good frames replayed, file quarantined");
        } else {
            lock(shared)?.remove(&segment)?;
        }
        shared.stats.spool_bytes.fetch_sub(
            size.min(shared.stats.spool_bytes.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        let frames = contents.batches.len() as u64;
        shared.stats.spool_frames.fetch_sub(
            frames.min(shared.stats.spool_frames.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        if let Ok(mut replayed) = shared.replayed.lock() {
            for batch in &contents.batches {
                replayed.remove(&batch.batch_id);
            }
        }
    }
    Ok(())
}

fn lock(shared: &Shared) -> Result<std::sync::MutexGuard<'_, Spool>, SpoolError> {
    shared.spool.lock().map_err(|_| SpoolError::Io {
        path: shared.config.spool_dir.clone(),
        source: std::io::Error::other("spool lock poisoned"),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::SystemTime;

    use proptest::prelude::*;

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
