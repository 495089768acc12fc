//! The database breaker (`src/breaker.rs`): once a request finds the database unavailable, the
//! requests that need it are refused at once rather than each waiting for a connection, the
//! ones that need none go on, and the service lets requests through again by itself once the
//! database answers.

use std::time::{Duration, Instant};

use axum::http::{StatusCode, header};

use crate::helpers::TestApp;

/// The tests' pool waits this long for a connection (`helpers::settings`).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);

#[tokio::test]
async fn a_stalled_database_is_waited_for_once_then_refused_at_once_until_it_answers() {
    let app = TestApp::spawn_behind_proxy().await;
    let (admin, _, key) = app.cached_key().await;

    app.proxy().pause();
    // The first request waits for a connection and finds none: that is how the service learns.
    let first = app.get_as("/api/v1/agents", &admin.token).await;
    assert_eq!(
        first.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        first.body
    );

    // The next ones do not wait: ten of them would take ten acquire timeouts otherwise.
    let started = Instant::now();
    for _ in 0..10 {
        let refused = app.get_as("/api/v1/agents", &admin.token).await;
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.error_code(), "service_unavailable");
        assert!(refused.headers.contains_key(header::RETRY_AFTER));
    }
    let took = started.elapsed();
    assert!(
        took < ACQUIRE_TIMEOUT / 2,
        "ten refusals took {took:?}; each waited for a connection"
    );
    // The status page says so without waiting either; a cached key still authenticates.
    let status = app.get("/api/v1/status").await;
    assert_eq!(status.body["services"]["database"], "unavailable");
    let no_database = app.get_as("/api/v1/verifications?limit=0", &key).await;
    assert_eq!(
        no_database.status,
        StatusCode::BAD_REQUEST,
        "{}",
        no_database.body
    );

    app.proxy().resume();
    app.until_the_database_answers().await;
    let listed = app.get_as("/api/v1/agents", &admin.token).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
}

#[tokio::test]
async fn a_cut_database_is_let_through_again_soon_after_it_returns() {
    let app = TestApp::spawn_behind_proxy().await;
    let admin = app.organization("acme").await;
    app.proxy().cut();
    assert_eq!(
        app.get_as("/api/v1/agents", &admin.token).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Still away: the probe keeps the breaker open, however long the outage.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        app.get_as("/api/v1/agents", &admin.token).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    app.proxy().resume();
    // No request is needed to find the database again: the probe does, within a few of its
    // 100-ms rounds (the bound allows for a slow machine).
    let resumed = Instant::now();
    loop {
        let listed = app.get_as("/api/v1/agents", &admin.token).await;
        if listed.status == StatusCode::OK {
            break;
        }
        assert_eq!(
            listed.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            listed.body
        );
        assert!(
            resumed.elapsed() < Duration::from_secs(5),
            "still refused {:?} after the database returned",
            resumed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
