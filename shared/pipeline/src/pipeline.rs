//! The wiring: the bounded queue, the sink the request path holds, and the tasks of every
//! stage started on the pipeline's own runtime, each stage in a module of its own.
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
//! filling:  the sink counts the events it hands over and wakes a writer gathering a batch
//!           every 1,024 of them (fewer for a small batch or queue): no clock, no wake-up per event
//! ```
//!
//! Shutdown ([`Pipeline::shutdown`]): the sink closes (later events count as `shutdown` drops),
//! writers drain the queue and flush; past 3/4 of the deadline a writer stuck on the database
//! gives up and spools instead; events still queued at the very end are counted, never ignored.

//!
//! Stages, in the order an event meets them: [`crate::event`] (the event and its cleaning
//! rule), [`crate::batch`], [`crate::writer`] (and its outcome rule), [`crate::transaction`]
//! (ledger + [`crate::copy`] + [`crate::rollup`]), [`crate::spiller`] and [`crate::spool`],
//! [`crate::replayer`]; [`crate::runtime`] is the threads they run on.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use aim_connect::TokioPostgres;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;

use crate::batch::Filling;
use crate::config::PipelineConfig;
use crate::event::ApiCallEvent;
use crate::replayer::{recover, run_replayer};
use crate::runtime::analytics_runtime;
use crate::spiller::run_spiller;
use crate::spool::{Spool, SpoolError};
use crate::state::{State, now_ms};
use crate::stats::{DropReason, PipelineStats};
use crate::writer::{run_writer, with_statement_timeout};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("opening the spool")]
    Spool(#[from] SpoolError),
    #[error("building the writers' connection pool")]
    Pool(#[from] deadpool_postgres::BuildError),
    #[error("starting the pipeline's threads")]
    Runtime(#[source] std::io::Error),
}

/// The request path's handle: hand over an event without waiting. One shared allocation, so a
/// clone per request is one reference count.
#[derive(Clone)]
pub struct Sink(Arc<SinkInner>);

struct SinkInner {
    tx: flume::Sender<ApiCallEvent>,
    filling: Arc<Filling>,
    stats: Arc<PipelineStats>,
    closed: AtomicBool,
}

impl Sink {
    /// Never blocks, never fails the caller: a full queue or a closed pipeline drops the event
    /// and counts it.
    pub fn record(&self, event: ApiCallEvent) {
        let sink = &*self.0;
        sink.stats.received.fetch_add(1, Ordering::Relaxed);
        if sink.closed.load(Ordering::Acquire) {
            sink.stats.drop_events(DropReason::Shutdown, 1);
            return;
        }
        match sink.tx.try_send(event) {
            Ok(()) => sink.filling.handed_over(),
            Err(flume::TrySendError::Full(_)) => sink.stats.drop_events(DropReason::QueueFull, 1),
            Err(flume::TrySendError::Disconnected(_)) => {
                sink.stats.drop_events(DropReason::Shutdown, 1);
            }
        }
    }

    fn is_closed(&self) -> bool {
        self.0.closed.load(Ordering::Acquire)
    }

    fn close(&self) {
        self.0.closed.store(true, Ordering::Release);
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
    pub events_dead_lettered: u64,
    /// PostgreSQL's own message while it refuses the batch statement itself; `state` is then
    /// `degraded`.
    pub statement_refused: Option<String>,
    /// `None` until the first batch is written.
    pub last_flush_age_ms: Option<i64>,
}

/// The running pipeline. [`Pipeline::shutdown`] stops it after a flush; dropping it stops its
/// tasks without one.
pub struct Pipeline {
    sink: Sink,
    rx: flume::Receiver<ApiCallEvent>,
    state: Arc<State>,
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
        let dead_letter = Spool::open(&config.dead_letter_dir, config.dead_letter_max_bytes)?;
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
            .build()?;
        let runtime = analytics_runtime(config.writers.max(1), config.nice)
            .map_err(PipelineError::Runtime)?;
        let (tx, rx) = flume::bounded(config.queue_capacity);
        let filling = Arc::new(Filling::new(config.batch_max, config.queue_capacity));
        let state = Arc::new(State {
            filling: Arc::clone(&filling),
            stats: Arc::clone(&stats),
            pool,
            spool: Mutex::new(spool),
            dead_letter: Mutex::new(dead_letter),
            wake: Notify::new(),
            closing: CancellationToken::new(),
            hurry: CancellationToken::new(),
            replayed: Mutex::new(HashSet::new()),
            prepared: Mutex::new(HashMap::new()),
            config,
        });
        let writers = (0..state.config.writers.max(1))
            .map(|i| {
                let state = Arc::clone(&state);
                let rx = rx.clone();
                runtime.spawn(tracing::Instrument::instrument(
                    run_writer(state, rx),
                    tracing::info_span!("analytics_writer", writer = i),
                ))
            })
            .collect();
        let spiller = runtime.spawn(tracing::Instrument::instrument(
            run_spiller(Arc::clone(&state), rx.clone()),
            tracing::info_span!("analytics_spiller"),
        ));
        let replayer = runtime.spawn(tracing::Instrument::instrument(
            run_replayer(Arc::clone(&state)),
            tracing::info_span!("analytics_replayer"),
        ));
        Ok(Self {
            sink: Sink(Arc::new(SinkInner {
                tx,
                filling,
                stats,
                closed: AtomicBool::new(false),
            })),
            rx,
            state,
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
        &self.state.stats
    }

    pub fn queue_depth(&self) -> usize {
        self.rx.len()
    }

    /// The writers' connection pool: connections open, idle, and writers waiting for one.
    pub fn pool_status(&self) -> deadpool_postgres::Status {
        self.state.pool.status()
    }

    pub fn status(&self) -> PipelineStatus {
        let s = self.state.stats.snapshot();
        let state = if self.sink.is_closed() {
            "stopping"
        } else if s.database_down {
            "spooling"
        } else if s.statement_refused.is_some() {
            "degraded"
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
            events_dead_lettered: s.dead_lettered,
            statement_refused: s.statement_refused,
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
        self.sink.close();
        self.state.closing.cancel();
        let now = Instant::now();
        let hurry_at = now + (deadline.saturating_duration_since(now) * 3) / 4;
        let state = Arc::clone(&self.state);
        let hurry = tokio::spawn(async move {
            tokio::time::sleep_until(hurry_at).await;
            state.hurry.cancel();
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
            self.state.stats.drop_events(DropReason::Shutdown, left);
            tracing::error!(
                events = left,
                "analytics events still queued at the shutdown deadline were dropped"
            );
        }
        if let Ok(mut spool) = self.state.spool.lock() {
            spool.seal();
        }
        self.state.pool.close();
        left
    }
}
