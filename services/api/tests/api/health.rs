use axum::body::Body;
use axum::http::{Request, StatusCode, header};

use crate::helpers::TestApp;

#[tokio::test]
async fn liveness_touches_nothing() {
    let app = TestApp::spawn_behind_proxy().await;
    app.proxy().cut();
    let response = app.get("/health").await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.body["status"], "ok");
}

#[tokio::test]
async fn ready_and_status_report_a_healthy_database() {
    let app = TestApp::spawn().await;
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["database"], "healthy");

    let status = app.get("/api/v1/status").await;
    assert_eq!(status.status, StatusCode::OK);
    assert_eq!(status.body["status"], "operational");
    assert_eq!(status.body["services"]["database"], "healthy");
    assert_eq!(status.body["environment"], "test");
    assert_eq!(status.body["version"], env!("CARGO_PKG_VERSION"));
    assert!(status.body["uptime_seconds"].is_u64(), "{}", status.body);
}

#[tokio::test]
async fn a_cut_database_is_reported_unavailable_not_a_500() {
    let app = TestApp::spawn_behind_proxy().await;
    assert_eq!(app.get("/health/ready").await.status, StatusCode::OK);

    app.proxy().cut();
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.error_code(), "service_unavailable");
    assert!(ready.headers.contains_key(header::RETRY_AFTER));

    let status = app.get("/api/v1/status").await;
    assert_eq!(status.status, StatusCode::OK);
    assert_eq!(status.body["status"], "degraded");
    assert_eq!(status.body["services"]["database"], "unavailable");

    app.proxy().resume();
    app.until_the_database_answers().await;
    let status = app.get("/api/v1/status").await;
    assert_eq!(status.body["services"]["database"], "healthy");
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&app.pool)
        .await
        .expect("the pool reconnects by itself");
    assert_eq!(one, 1);
}

#[tokio::test]
async fn a_stalled_database_times_out_into_a_503() {
    let app = TestApp::spawn_behind_proxy().await;
    assert_eq!(app.get("/health/ready").await.status, StatusCode::OK);

    app.proxy().pause();
    let started = std::time::Instant::now();
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.error_code(), "service_unavailable");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the probe is bounded, took {:?}",
        started.elapsed()
    );
    let status = app.get("/api/v1/status").await;
    assert_eq!(status.body["services"]["database"], "unavailable");
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let app = TestApp::spawn().await;
    let echoed = app
        .request(
            Request::get("/health")
                .header("x-request-id", "client-id-42")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(echoed.headers["x-request-id"], "client-id-42");

    let generated = app.get("/health").await;
    let id = generated.headers["x-request-id"].to_str().expect("ascii");
    uuid::Uuid::parse_str(id).expect("a generated id is a UUID");

    let replaced = app
        .request(
            Request::get("/health")
                .header("x-request-id", "not ok; has spaces")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_ne!(replaced.headers["x-request-id"], "not ok; has spaces");
}
