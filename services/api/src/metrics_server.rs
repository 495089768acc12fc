//! Prometheus `/metrics` on its own listener (`AIM_METRICS_LISTEN`, loopback by default), so
//! the public listener never exposes it.

use std::sync::Arc;

use aim_pipeline::Pipeline;
use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::serve::spawn_tracked;

/// Histograms and summaries are kept by the exporter and must be compacted now and then.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Installs the process-wide recorder and serves it until `shutdown`.
///
/// # Errors
/// When a recorder is already installed in this process.
pub(crate) fn spawn(
    tracker: &TaskTracker,
    listener: TcpListener,
    shutdown: CancellationToken,
    pipeline: Option<Arc<Pipeline>>,
) -> anyhow::Result<()> {
    let handle = PrometheusBuilder::new().install_recorder()?;
    metrics::gauge!("aim_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);

    let upkeep = handle.clone();
    let stop = shutdown.clone();
    spawn_tracked(tracker, "metrics-upkeep", async move {
        let mut ticks = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            tokio::select! {
                _ = ticks.tick() => upkeep.run_upkeep(),
                () = stop.cancelled() => break,
            }
        }
    });

    let router = Router::new()
        .route("/metrics", get(render))
        .with_state(Scrape { handle, pipeline });
    spawn_tracked(tracker, "metrics-listener", async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "metrics listener failed");
        }
    });
    Ok(())
}

#[derive(Clone)]
struct Scrape {
    handle: PrometheusHandle,
    pipeline: Option<Arc<Pipeline>>,
}

/// The pipeline keeps its own atomics (cheap per batch, readable by tests and the status page);
/// they are copied into the recorder when scraped.
async fn render(axum::extract::State(scrape): axum::extract::State<Scrape>) -> String {
    if let Some(pipeline) = &scrape.pipeline {
        pipeline.stats().export(pipeline.queue_depth());
    }
    scrape.handle.render()
}
