//! The threads the pipeline runs on, apart from the request path's and below its CPU priority.
//! Owns nothing but the thread set-up; may call the OS (`rustix`), nothing of the pipeline.

/// The runtime the pipeline's tasks (and their connections and spool writes) run on: threads of
/// their own, at a lower CPU priority than the threads that serve requests.
pub(crate) fn analytics_runtime(
    threads: usize,
    nice: u8,
) -> std::io::Result<tokio::runtime::Runtime> {
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
