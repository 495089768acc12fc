use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn verify_action_decides_records_and_lists() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let agent = app.agent(&admin.token, "a").await;
    let id = agent["id"].as_str().expect("id");
    let key = app.key(&admin.token, id).await;
    let uri = format!("/api/v1/agents/{id}/verify-action");

    let pending = app
        .post_as(&uri, &key, json!({ "action": "read:invoices" }))
        .await;
    assert_eq!(pending.status, StatusCode::OK, "{}", pending.body);
    assert_eq!(pending.body["status"], "pending");
    assert_eq!(pending.body["allowed"], false);

    app.call(
        Method::PATCH,
        &format!("/api/v1/agents/{id}"),
        Some(&admin.token),
        Some(json!({ "status": "verified" })),
    )
    .await;
    let allowed = app
        .post_as(&uri, &key, json!({ "action": "read:invoices", "resource": "invoice/42", "context": { "ip": "10.0.0.1" } }))
        .await;
    assert_eq!(allowed.body["status"], "success");
    assert_eq!(allowed.body["allowed"], true);
    assert!(
        allowed.body["duration_ms"]
            .as_f64()
            .is_some_and(|d| d >= 0.0)
    );

    app.call(
        Method::PUT,
        &format!("/api/v1/agents/{id}/trust-score"),
        Some(&admin.token),
        // Below 0.5, so refused; above the default policy's floor (0.3), so not suspended.
        Some(json!({ "trust_score": 0.4, "reason": "incident" })),
    )
    .await;
    let member = app.user(&admin, "member").await;
    let refused = app
        .post_as(&uri, &member.token, json!({ "action": "write:invoices" }))
        .await;
    assert_eq!(refused.body["status"], "failed");

    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM verification_events WHERE agent_id = $1::uuid")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .expect("count");
    assert_eq!(rows, 3);
    let last_active: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT last_active FROM agents WHERE id = $1::uuid")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .expect("agent");
    assert!(last_active.is_some());

    let all = app.get_as("/api/v1/verifications", &admin.token).await;
    assert_eq!(all.body["total"], 3);
    let failed = app
        .get_as("/api/v1/verifications?status=failed", &admin.token)
        .await;
    assert_eq!(failed.body["total"], 1);
    let by_agent = app
        .get_as(
            &format!("/api/v1/verifications?agent_id={id}&limit=2"),
            &admin.token,
        )
        .await;
    assert_eq!(
        by_agent.body["verifications"].as_array().map(Vec::len),
        Some(2)
    );
    let future = app
        .get_as(
            "/api/v1/verifications?from=2999-01-01T00:00:00Z",
            &admin.token,
        )
        .await;
    assert_eq!(future.body["total"], 0);
    let own = app.get_as("/api/v1/verifications", &key).await;
    assert_eq!(own.body["total"], 3, "an agent lists its own events");

    let (per_hour, total, succeeded, failed): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT coalesce(sum(verifications_count), 0)::bigint FROM agent_activity_metrics WHERE agent_id = $1::uuid), \
                total_verifications, successful_verifications, failed_verifications \
         FROM organization_daily_metrics WHERE organization_id = $2",
    )
    .bind(id)
    .bind(admin.organization_id)
    .fetch_one(&app.pool)
    .await
    .expect("rollups");
    assert_eq!(
        (per_hour, total, succeeded, failed),
        (3, 3, 1, 1),
        "pending counts in the total only"
    );
    app.drain().await;
}

#[tokio::test]
async fn verify_action_checks_its_caller_and_input() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let viewer = app.user(&admin, "viewer").await;
    let agent = app.agent(&admin.token, "a").await;
    let other = app.agent(&admin.token, "b").await;
    let key = app
        .key(&admin.token, agent["id"].as_str().expect("id"))
        .await;
    let uri = format!(
        "/api/v1/agents/{}/verify-action",
        agent["id"].as_str().expect("id")
    );

    assert_eq!(
        app.post_as(&uri, &viewer.token, json!({ "action": "x" }))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let for_other = format!(
        "/api/v1/agents/{}/verify-action",
        other["id"].as_str().expect("id")
    );
    assert_eq!(
        app.post_as(&for_other, &key, json!({ "action": "x" }))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let bad = app
        .post_as(
            &uri,
            &key,
            json!({ "action": "", "context": "not an object" }),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body["error"]["fields"]["action"].is_string());
    assert!(bad.body["error"]["fields"]["context"].is_string());
    let range = app
        .get_as(
            "/api/v1/verifications?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
            &admin.token,
        )
        .await;
    assert_eq!(range.status, StatusCode::BAD_REQUEST);
    assert_eq!(range.error_code(), "invalid_parameter");
    let bad_time = app
        .get_as("/api/v1/verifications?from=yesterday", &admin.token)
        .await;
    assert_eq!(bad_time.status, StatusCode::BAD_REQUEST);
}
