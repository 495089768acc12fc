//! `aim serve`: start-up, the two listeners, and the ordered shutdown.
//!
//! Shutdown order, all under one deadline (`AIM_SHUTDOWN_GRACE_MS`) that starts with the
//! signal: stop accepting, finish in-flight requests, stop tracked background tasks, close the
//! pool, and last stop the private cluster (in [`crate::database::Database::close`]).

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;

use aim_pipeline::Pipeline;
use anyhow::Context;
use tokio::net::TcpListener;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::database::Database;
use crate::maintenance::PARTITION_DAYS_AHEAD;
use crate::state::AppState;
use crate::tasks::spawn_tracked;
use crate::{app_with_cors, metrics_server, secrets};

/// Runs the service until SIGINT or SIGTERM, then shuts it down in order.
///
/// # Errors
/// Any start-up step that fails (database, migrations, listeners), with context saying which.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    let database = Database::open_owned(&config).await?;
    let result = serve_on(&config, &database, shutdown).await;
    // The cluster is stopped whether the service ran or failed to start.
    let closed = database.close().await;
    result.and(closed)
}

async fn serve_on(
    config: &Config,
    database: &Database,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let pool = database.pool(config).await?;
    if config.database.auto_migrate {
        aim_store::migrate(&pool)
            .await
            .context("applying migrations")?;
        tracing::info!("migrations applied");
    }
    let today = chrono::Utc::now().date_naive();
    if let Err(e) =
        aim_store::partitions::ensure_api_calls_partitions(&pool, today, PARTITION_DAYS_AHEAD).await
    {
        tracing::warn!(error = %e, "could not create api_calls partitions; the default partition takes the rows meanwhile");
    }
    let jwt_secret = secrets::jwt_secret(config)?;
    // Held while serving: `aim spool dead-letter` refuses to touch the folder meanwhile.
    let _dead_letter_lock = if config.analytics.enabled {
        let dir = &config.analytics.pipeline.dead_letter_dir;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        Some(aim_local_pg::DataDirLock::acquire(dir).with_context(|| {
            format!(
                "AIM_ANALYTICS_DEAD_LETTER_DIR={} is in use by another aim; each replica needs \
                 its own",
                dir.display()
            )
        })?)
    } else {
        None
    };
    let pipeline = if config.analytics.enabled {
        let writers = database
            .settings()
            .tokio_postgres()
            .context("setting up TLS for the analytics writers")?;
        // The writers connect lazily; one connection now turns a certificate or password the
        // writers would refuse into a start-up failure instead of a silently filling spool.
        drop(writers.connect().await.with_context(|| {
            format!(
                "the analytics writers' connection to the database at {}",
                database.settings()
            )
        })?);
        let pipeline = Pipeline::start(config.analytics.pipeline.clone(), writers)
            .context("starting the analytics pipeline")?;
        Some(Arc::new(pipeline))
    } else {
        tracing::warn!("AIM_ANALYTICS_ENABLED=false: API calls are not recorded");
        None
    };
    let webhook_key = secrets::webhook_key(config)?;
    let state = AppState::new(
        pool.clone(),
        config,
        &jwt_secret,
        &webhook_key,
        pipeline.clone(),
    )
    .context("building the service state (password hasher, webhook key)")?;
    crate::bootstrap::on_start(&pool, state.passwords(), config).await?;

    let listener = TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("binding AIM_LISTEN={}", config.http.listen))?;
    let metrics_listener = TcpListener::bind(config.http.metrics_listen)
        .await
        .with_context(|| format!("binding AIM_METRICS_LISTEN={}", config.http.metrics_listen))?;

    let tracker = TaskTracker::new();
    metrics_server::spawn(
        &tracker,
        metrics_listener,
        shutdown.clone(),
        pool.clone(),
        pipeline.clone(),
    )?;
    spawn_tracked(
        &tracker,
        "maintenance",
        crate::maintenance::run(
            pool.clone(),
            crate::maintenance::Settings::new(config),
            state.key_cache().clone(),
            shutdown.clone(),
        ),
    );
    spawn_tracked(
        &tracker,
        "webhooks",
        crate::webhooks::run(state.clone(), shutdown.clone()),
    );
    let limits = state.clone();
    let stop = shutdown.clone();
    spawn_tracked(&tracker, "rate-limit-upkeep", async move {
        let mut ticks = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = ticks.tick() => limits.rate_limits().retain_recent(),
                () = stop.cancelled() => break,
            }
        }
    });

    tracing::info!(
        listen = %config.http.listen,
        metrics = %config.http.metrics_listen,
        environment = config.environment.as_str(),
        "aim is serving; stop it with Ctrl-C or SIGTERM"
    );
    let server = axum::serve(
        listener,
        app_with_cors(state, &config.http.cors_origins)
            .into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.clone().cancelled_owned())
    .into_future();
    tokio::pin!(server);

    let (served, deadline) = tokio::select! {
        served = &mut server => (served, Instant::now() + config.shutdown_grace),
        () = shutdown.cancelled() => {
            let deadline = Instant::now() + config.shutdown_grace;
            tracing::info!(grace = ?config.shutdown_grace, "shutting down: finishing in-flight requests");
            match timeout_at(deadline, &mut server).await {
                Ok(served) => (served, deadline),
                Err(_) => {
                    tracing::warn!("requests still in flight at the shutdown deadline were cut off");
                    (Ok(()), deadline)
                }
            }
        }
    };
    shutdown.cancel();
    // No request can produce an event any more: flush (or spool) what the pipeline holds.
    if let Some(pipeline) = &pipeline {
        let left = pipeline.shutdown(deadline).await;
        let s = pipeline.stats().snapshot();
        tracing::info!(
            written = s.written,
            spooled = s.in_spool,
            dropped = s.dropped,
            left,
            "analytics pipeline stopped"
        );
    }
    tracker.close();
    if timeout_at(deadline, tracker.wait()).await.is_err() {
        tracing::warn!(
            still_running = tracker.len(),
            "background tasks still running at the shutdown deadline were abandoned"
        );
    }
    if timeout_at(deadline, pool.close()).await.is_err() {
        tracing::warn!("database connections still busy at the shutdown deadline");
    }
    tracing::info!("stopped serving");
    served.context("serving HTTP")
}

async fn stop_on_signal(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops aim");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
        () = shutdown.cancelled() => return,
    }
    shutdown.cancel();
}
