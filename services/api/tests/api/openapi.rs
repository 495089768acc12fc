use axum::http::StatusCode;

use crate::helpers::TestApp;

#[tokio::test]
async fn the_openapi_document_covers_every_endpoint() {
    let app = TestApp::spawn().await;
    let response = app.get("/api/v1/openapi.json").await;
    assert_eq!(response.status, StatusCode::OK);
    let doc = &response.body;
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    let expected = [
        ("get", "/health"),
        ("get", "/health/ready"),
        ("get", "/api/v1/status"),
        ("post", "/api/v1/auth/login"),
        ("post", "/api/v1/auth/refresh"),
        ("post", "/api/v1/auth/logout"),
        ("get", "/api/v1/auth/me"),
        ("get", "/api/v1/users"),
        ("post", "/api/v1/users"),
        ("get", "/api/v1/users/{id}"),
        ("patch", "/api/v1/users/{id}"),
        ("get", "/api/v1/agents"),
        ("post", "/api/v1/agents"),
        ("get", "/api/v1/agents/{id}"),
        ("patch", "/api/v1/agents/{id}"),
        ("delete", "/api/v1/agents/{id}"),
        ("put", "/api/v1/agents/{id}/trust-score"),
        ("get", "/api/v1/agents/{id}/trust-history"),
        ("get", "/api/v1/agents/{id}/api-keys"),
        ("post", "/api/v1/agents/{id}/api-keys"),
        ("delete", "/api/v1/agents/{id}/api-keys/{key_id}"),
        ("post", "/api/v1/agents/{id}/verify-action"),
        ("get", "/api/v1/verifications"),
        ("get", "/api/v1/audit-events"),
        ("get", "/api/v1/analytics/usage"),
        ("get", "/api/v1/analytics/endpoints"),
        ("get", "/api/v1/analytics/timeseries"),
        ("get", "/api/v1/analytics/agents/{id}/activity"),
        ("get", "/api/v1/analytics/agents/activity"),
        ("get", "/api/v1/analytics/dashboard"),
        ("get", "/api/v1/analytics/trust-score-trends"),
        ("get", "/api/v1/analytics/trends"),
        ("get", "/api/v1/analytics/verification-activity"),
        ("get", "/api/v1/analytics/export"),
        ("get", "/api/v1/agents/{id}/trust-score"),
        ("get", "/api/v1/trust-policy"),
        ("put", "/api/v1/trust-policy"),
        ("post", "/api/v1/trust-policy/dry-run"),
        ("get", "/api/v1/alerts"),
        ("post", "/api/v1/alerts/{id}/acknowledge"),
        ("post", "/api/v1/alerts/{id}/resolve"),
        ("get", "/api/v1/webhooks"),
        ("post", "/api/v1/webhooks"),
        ("get", "/api/v1/webhooks/{id}"),
        ("patch", "/api/v1/webhooks/{id}"),
        ("delete", "/api/v1/webhooks/{id}"),
        ("post", "/api/v1/webhooks/{id}/rotate-secret"),
        ("post", "/api/v1/webhooks/{id}/ping"),
        ("get", "/api/v1/webhooks/{id}/deliveries"),
        (
            "post",
            "/api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver",
        ),
    ];
    let paths = doc["paths"].as_object().expect("paths");
    for (method, path) in expected {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} undocumented"
        );
    }
    let documented: usize = paths
        .values()
        .map(|p| p.as_object().map_or(0, |m| m.len()))
        .sum();
    assert_eq!(
        documented,
        expected.len(),
        "a documented route is missing from this list"
    );
    for scheme in ["user_token", "agent_key", "agent_key_bearer"] {
        assert!(
            doc["components"]["securitySchemes"][scheme].is_object(),
            "{scheme}"
        );
    }
}
