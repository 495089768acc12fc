//! How the pipeline is sized: every stage reads its limits from here.

use std::path::PathBuf;
use std::time::Duration;

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
    /// Where events PostgreSQL refuses (for their content or because the statement itself is
    /// wrong) are kept for an operator to replay after the fix or discard: a spool of its own,
    /// never replayed automatically.
    pub dead_letter_dir: PathBuf,
    pub dead_letter_max_bytes: u64,
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
