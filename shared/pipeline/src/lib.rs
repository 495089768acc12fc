//! The analytics ingest pipeline, independent of the HTTP layer so it can be tested and
//! benchmarked alone: [`ApiCallEvent`] (built on the request path), the [`Sink`] that hands it
//! to a bounded queue without waiting, writers that batch and binary-COPY into PostgreSQL under
//! an exactly-once batch ledger, the disk [`spool`] that keeps batches while the database is
//! unreachable, and the [`dead_letter`] spool that keeps what PostgreSQL refuses. Each stage is a module; `docs/architecture.md` draws how data flows through them.

mod batch;
mod config;
pub mod copy;
pub mod dead_letter;
pub mod event;
mod pipeline;
mod replayer;
pub mod rollup;
mod runtime;
mod spiller;
pub mod spool;
mod state;
pub mod stats;
pub mod transaction;
mod writer;

pub use config::{DEFAULT_BATCH_MAX, PipelineConfig};
pub use event::{ApiCallEvent, CallRow};
pub use pipeline::{Pipeline, PipelineError, PipelineStatus, Sink};
pub use stats::{DropReason, PipelineStats, StatsSnapshot};
