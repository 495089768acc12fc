//! The pipeline's threads run below the CPU priority of the thread that started it
//! (`PipelineConfig::nice`), the spool writers on its blocking threads included. A test binary
//! of its own: every pipeline's threads are named `aim-analytics`, so another test's pipeline in
//! the same process would be counted too.
#![cfg(target_os = "linux")]

use std::time::Duration;

use aim_pipeline::{Pipeline, PipelineConfig};
use uuid::Uuid;

mod common;
use common::event;

/// The nice value and name of each of this process's threads, from `/proc`.
fn threads() -> Vec<(String, i32)> {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|task| {
            let dir = task.ok()?.path();
            let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
            let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
            // The name in `stat` is in parentheses and may hold spaces: count fields after it.
            // Field 19 (`nice`) is the 17th after the closing parenthesis.
            let after = stat.rsplit_once(')')?.1;
            let nice = after.split_whitespace().nth(16)?.parse().ok()?;
            Some((comm.trim().to_owned(), nice))
        })
        .collect()
}

fn own_nice() -> i32 {
    let me = std::fs::read_to_string("/proc/thread-self/stat").expect("stat");
    let after = me.rsplit_once(')').expect("comm").1;
    after
        .split_whitespace()
        .nth(16)
        .and_then(|n| n.parse().ok())
        .expect("nice")
}

#[tokio::test]
async fn the_pipeline_s_threads_and_its_spool_writes_run_at_a_lower_priority() {
    let spool = tempfile::tempdir().expect("spool");
    // Nothing listens on port 1: the writer finds the database down and spools on a blocking
    // thread of the pipeline's runtime.
    aim_connect::install_crypto_provider();
    let database = aim_connect::DatabaseSettings::from_url("postgres://postgres@127.0.0.1:1/none")
        .expect("url")
        .tokio_postgres()
        .expect("TLS settings");
    let pipeline = Pipeline::start(
        PipelineConfig {
            queue_capacity: 16,
            writers: 2,
            batch_max: 4,
            flush_after: Duration::from_millis(10),
            spool_dir: spool.path().to_path_buf(),
            spool_max_bytes: 1 << 20,
            spool_max_age: Duration::from_secs(60),
            dead_letter_dir: spool.path().join("dead-letter"),
            dead_letter_max_bytes: u64::MAX,
            rollups: true,
            nice: 5,
        },
        database,
    )
    .expect("start");
    let before = own_nice();
    pipeline.sink().record(event(Uuid::now_v7(), 0));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while pipeline.stats().snapshot().in_spool < 1 {
        assert!(std::time::Instant::now() < deadline, "never spooled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let analytics: Vec<i32> = threads()
        .into_iter()
        .filter(|(name, _)| name == "aim-analytics")
        .map(|(_, nice)| nice)
        .collect();
    // Two workers and at least the blocking thread that wrote the spool.
    assert!(analytics.len() >= 3, "{:?}", threads());
    assert!(
        analytics.iter().all(|nice| *nice == (before + 5).min(19)),
        "the test's thread at {before}, the pipeline's at {analytics:?}"
    );
    assert_eq!(own_nice(), before, "the starting thread keeps its priority");
    pipeline
        .shutdown(tokio::time::Instant::now() + Duration::from_secs(5))
        .await;
}
