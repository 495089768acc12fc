use axum::body::Body;
use axum::http::{Request, StatusCode, header};

use crate::helpers::TestApp;

#[tokio::test]
async fn unknown_routes_get_a_json_404() {
    let app = TestApp::spawn().await;
    let response = app.get("/api/v1/does-not-exist?x=1").await;
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert_eq!(response.error_code(), "not_found");
    assert!(response.headers.contains_key("x-request-id"));
}

#[tokio::test]
async fn wrong_methods_get_a_json_405_with_allow() {
    let app = TestApp::spawn().await;
    let response = app
        .request(
            Request::delete("/api/v1/status")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.error_code(), "method_not_allowed");
    let allow = response.headers[header::ALLOW].to_str().expect("ascii");
    assert!(allow.contains("GET"), "{allow}");
}

#[tokio::test]
async fn a_body_sent_to_a_get_route_is_not_a_500() {
    let app = TestApp::spawn().await;
    let response = app
        .request(
            Request::post("/health")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{not json"))
                .expect("request"),
        )
        .await;
    assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.error_code(), "method_not_allowed");
}

#[tokio::test]
async fn metrics_are_not_served_on_the_public_router() {
    let app = TestApp::spawn().await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn cors_answers_only_configured_origins() {
    let preflight = |origin: &'static str| {
        Request::options("/api/v1/agents")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "authorization,content-type",
            )
            .body(Body::empty())
            .expect("request")
    };
    let app = TestApp::spawn_with(&[("AIM_CORS_ORIGINS", "https://console.example.com")]).await;
    let allowed = app.request(preflight("https://console.example.com")).await;
    assert!(allowed.status.is_success(), "{}", allowed.status);
    assert_eq!(
        allowed.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://console.example.com"
    );
    let other = app.request(preflight("https://evil.example.com")).await;
    assert!(
        !other
            .headers
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );

    let closed = TestApp::spawn().await;
    let response = closed
        .request(preflight("https://console.example.com"))
        .await;
    assert!(
        !response
            .headers
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN),
        "no CORS unless configured"
    );
}
