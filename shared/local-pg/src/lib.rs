//! A private PostgreSQL cluster run from the binaries installed on the machine.
//!
//! With no `DATABASE_URL`, `aim` keeps its own cluster under `$AIM_DATA_DIR/pg` so that the
//! README's run command works on a machine that merely has PostgreSQL installed. The test
//! harness uses the same code as its last resort. This crate only manages the server process and
//! its folders (`initdb`, `pg_ctl`, the data-folder lock, running as the `postgres` user when we
//! are root); it never opens a database connection, which is the store's job.

mod binaries;
mod cluster;
mod error;
mod layout;
mod lock;
mod privileges;

pub use binaries::Binaries;
pub use cluster::{Attached, ClusterOptions, LocalCluster, ShutdownMode};
pub use error::Error;
pub use lock::DataDirLock;
