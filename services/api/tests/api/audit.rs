use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn changes_and_logins_are_audited_for_admins() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let agent = app.agent(&admin.token, "a").await;
    let id = agent["id"].as_str().expect("id");
    app.call(
        Method::PUT,
        &format!("/api/v1/agents/{id}/trust-score"),
        Some(&admin.token),
        Some(json!({ "trust_score": 0.9, "reason": "r" })),
    )
    .await;
    let key = app
        .post_as(
            &format!("/api/v1/agents/{id}/api-keys"),
            &admin.token,
            json!({}),
        )
        .await;
    let key_id = key.body["id"].as_str().expect("key id");
    app.call(
        Method::DELETE,
        &format!("/api/v1/agents/{id}/api-keys/{key_id}"),
        Some(&admin.token),
        None,
    )
    .await;
    app.login(&admin.email, "definitely wrong").await;

    let events = app
        .get_as("/api/v1/audit-events?limit=100", &admin.token)
        .await;
    assert_eq!(events.status, StatusCode::OK, "{}", events.body);
    let actions: Vec<&str> = events.body["audit_events"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for expected in [
        "organization.created",
        "auth.login_succeeded",
        "auth.login_failed",
        "agent.created",
        "agent.trust_score_changed",
        "api_key.created",
        "api_key.revoked",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    let filtered = app
        .get_as(
            &format!("/api/v1/audit-events?target_id={id}"),
            &admin.token,
        )
        .await;
    assert!(
        filtered.body["audit_events"]
            .as_array()
            .expect("array")
            .iter()
            .all(|e| e["target_id"] == id)
    );
    let changes = app
        .get_as(
            "/api/v1/audit-events?action=agent.trust_score_changed",
            &admin.token,
        )
        .await;
    assert_eq!(changes.body["total"], 1);
    assert_eq!(
        changes.body["audit_events"][0]["actor_id"],
        admin.id.to_string()
    );

    let manager = app.user(&admin, "manager").await;
    assert_eq!(
        app.get_as("/api/v1/audit-events", &manager.token)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}
