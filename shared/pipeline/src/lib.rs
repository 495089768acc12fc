//! The analytics ingest pipeline, independent of the HTTP layer so it can be tested and
//! benchmarked alone: [`ApiCallEvent`] (built on the request path), the [`Sink`] that hands it
//! to a bounded queue without waiting, writers that batch and binary-COPY into PostgreSQL under
//! an exactly-once batch ledger, and the disk [`spool`] that keeps batches while the database is
//! unreachable.

pub mod copy;
pub mod event;
mod pipeline;
pub mod rollup;
pub mod spool;
pub mod stats;

pub use event::{ApiCallEvent, CallRow};
pub use pipeline::{
    DEFAULT_BATCH_MAX, Pipeline, PipelineConfig, PipelineError, PipelineStatus, Sink,
};
pub use stats::{DropReason, PipelineStats, StatsSnapshot};
