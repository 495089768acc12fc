//! How the service's long-lived background tasks are started: each on the one `TaskTracker`
//! that shutdown waits on, inside a span naming it, so every log line of a task says which.
//! The orchestrator (`serve.rs`) and the tasks it starts (`metrics_server.rs`) both use it.

use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// Spawns `future` on `tracker` inside a span named `name`.
pub(crate) fn spawn_tracked<F>(tracker: &TaskTracker, name: &'static str, future: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    tracker.spawn(future.instrument(tracing::info_span!("task", name)));
}
