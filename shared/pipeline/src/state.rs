//! What the pipeline's tasks share: its configuration, counters, the writers' pool, the spool
//! and the signals between the tasks. Holds no behaviour beyond locking the spool.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::batch::Filling;
use crate::config::PipelineConfig;
use crate::spool::{Spool, SpoolError};
use crate::stats::PipelineStats;
use crate::transaction::Statements;

pub(crate) struct State {
    pub config: PipelineConfig,
    pub stats: Arc<PipelineStats>,
    pub pool: deadpool_postgres::Pool,
    pub spool: Mutex<Spool>,
    /// Where refused events are kept ([`crate::dead_letter`]); never replayed by the service.
    pub dead_letter: Mutex<Spool>,
    /// Rung by the sink as events are handed over; wakes a writer gathering a batch.
    pub filling: Arc<Filling>,
    /// Woken when a batch is spooled or the database goes down.
    pub wake: Notify,
    /// Writers: drain the queue and stop.
    pub closing: CancellationToken,
    /// Writers: stop waiting on the database; spool what is left.
    pub hurry: CancellationToken,
    /// Batches of partially replayed segments already applied, so a re-read skips them.
    pub replayed: Mutex<HashSet<Uuid>>,
    /// Each pooled connection's prepared batch statements, by the pool's id for it, so a batch
    /// neither rebuilds the SQL texts nor hashes them into the connection's statement cache.
    pub prepared: Mutex<HashMap<deadpool_postgres::ObjectId, Arc<Statements>>>,
}

impl State {
    /// The spool, or an I/O error naming its folder when a panic poisoned the lock.
    pub fn lock_spool(&self) -> Result<MutexGuard<'_, Spool>, SpoolError> {
        self.spool.lock().map_err(|_| SpoolError::Io {
            path: self.config.spool_dir.clone(),
            source: std::io::Error::other("spool lock poisoned"),
        })
    }
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
