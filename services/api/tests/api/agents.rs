use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn agents_are_created_listed_updated_and_deleted() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let agent = app.agent(&admin.token, "billing-bot").await;
    assert_eq!(agent["status"], "pending");
    assert_eq!(agent["trust_score"], 0.5);
    let id = agent["id"].as_str().expect("id");

    let list = app.get_as("/api/v1/agents", &admin.token).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["total"], 1);
    assert_eq!(list.body["limit"], 50);
    assert_eq!(list.body["offset"], 0);
    assert_eq!(list.body["agents"][0]["id"], id);

    let too_many = app.get_as("/api/v1/agents?limit=5000", &admin.token).await;
    assert_eq!(too_many.status, StatusCode::BAD_REQUEST);
    assert_eq!(too_many.error_code(), "invalid_parameter");
    let filtered = app
        .get_as("/api/v1/agents?status=verified", &admin.token)
        .await;
    assert_eq!(filtered.body["agents"], json!([]), "always an array");

    let patched = app
        .call(
            Method::PATCH,
            &format!("/api/v1/agents/{id}"),
            Some(&admin.token),
            Some(json!({ "status": "verified", "description": "pays invoices" })),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["status"], "verified");
    assert_eq!(patched.body["description"], "pays invoices");
    assert_eq!(patched.body["name"], "billing-bot");

    let key = app.key(&admin.token, id).await;
    let deleted = app
        .call(
            Method::DELETE,
            &format!("/api/v1/agents/{id}"),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get_as(&format!("/api/v1/agents/{id}"), &admin.token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get_as("/api/v1/agents", &admin.token).await.body["total"],
        0
    );
    assert_eq!(
        app.get_as("/api/v1/agents", &key).await.status,
        StatusCode::UNAUTHORIZED,
        "deleting an agent revokes its keys"
    );
    let history: i64 =
        sqlx::query_scalar("SELECT count(*) FROM trust_score_history WHERE agent_id = $1::uuid")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .expect("history");
    assert_eq!(history, 1, "history is kept after deletion");
}

#[tokio::test]
async fn trust_score_changes_record_history_with_previous_scores() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let agent = app.agent(&admin.token, "a").await;
    let id = agent["id"].as_str().expect("id");
    let uri = format!("/api/v1/agents/{id}/trust-score");

    let first = app
        .call(
            Method::PUT,
            &uri,
            Some(&admin.token),
            Some(json!({ "trust_score": 0.8, "reason": "audit passed" })),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["previous_score"], 0.5);
    assert_eq!(first.body["trust_score"], 0.8);
    let second = app
        .call(
            Method::PUT,
            &uri,
            Some(&admin.token),
            Some(json!({ "trust_score": 0.3, "reason": "incident" })),
        )
        .await;
    assert_eq!(second.body["previous_score"], 0.8);

    let rows: Vec<(f64, Option<f64>, String, Option<uuid::Uuid>)> = sqlx::query_as(
        "SELECT trust_score, previous_score, change_reason, changed_by FROM trust_score_history \
         WHERE agent_id = $1::uuid ORDER BY recorded_at, id",
    )
    .bind(id)
    .fetch_all(&app.pool)
    .await
    .expect("history");
    assert_eq!(rows.len(), 3, "initial score and two changes: {rows:?}");
    assert_eq!((rows[0].0, rows[0].1), (0.5, None));
    assert_eq!(
        (rows[1].0, rows[1].1, rows[1].2.as_str()),
        (0.8, Some(0.5), "audit passed")
    );
    assert_eq!(
        (rows[2].0, rows[2].1, rows[2].2.as_str()),
        (0.3, Some(0.8), "incident")
    );
    assert!(rows.iter().all(|r| r.3 == Some(admin.id)));

    let history = app
        .get_as(&format!("/api/v1/agents/{id}/trust-history"), &admin.token)
        .await;
    assert_eq!(history.body["history"].as_array().map(Vec::len), Some(3));

    for bad in [
        json!({ "trust_score": 1.5, "reason": "x" }),
        json!({ "trust_score": -0.1, "reason": "x" }),
        json!({ "trust_score": 0.5, "reason": "" }),
    ] {
        let response = app
            .call(Method::PUT, &uri, Some(&admin.token), Some(bad.clone()))
            .await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
}

#[tokio::test]
async fn roles_gate_agent_changes() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let viewer = app.user(&admin, "viewer").await;
    let member = app.user(&admin, "member").await;
    let agent = app.agent(&admin.token, "a").await;
    let id = agent["id"].as_str().expect("id");

    assert_eq!(
        app.get_as("/api/v1/agents", &viewer.token).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get_as(&format!("/api/v1/agents/{id}"), &viewer.token)
            .await
            .status,
        StatusCode::OK
    );
    let create = app
        .post_as("/api/v1/agents", &viewer.token, json!({ "name": "x" }))
        .await;
    assert_eq!(create.status, StatusCode::FORBIDDEN);
    let patch = app
        .call(
            Method::PATCH,
            &format!("/api/v1/agents/{id}"),
            Some(&viewer.token),
            Some(json!({ "name": "y" })),
        )
        .await;
    assert_eq!(patch.status, StatusCode::FORBIDDEN);

    assert_eq!(
        app.post_as("/api/v1/agents", &member.token, json!({ "name": "x" }))
            .await
            .status,
        StatusCode::CREATED
    );
    let score = app
        .call(
            Method::PUT,
            &format!("/api/v1/agents/{id}/trust-score"),
            Some(&member.token),
            Some(json!({ "trust_score": 1.0, "reason": "me" })),
        )
        .await;
    assert_eq!(score.status, StatusCode::FORBIDDEN);
    let delete = app
        .call(
            Method::DELETE,
            &format!("/api/v1/agents/{id}"),
            Some(&member.token),
            None,
        )
        .await;
    assert_eq!(delete.status, StatusCode::FORBIDDEN);
    let key = app
        .post_as(
            &format!("/api/v1/agents/{id}/api-keys"),
            &member.token,
            json!({}),
        )
        .await;
    assert_eq!(key.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn agent_input_is_validated() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let bad = app
        .post_as(
            "/api/v1/agents",
            &admin.token,
            json!({ "name": " ", "trust_score": 2, "metadata": [1] }),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    for field in ["name", "trust_score", "metadata"] {
        assert!(
            bad.body["error"]["fields"][field].is_string(),
            "{field}: {}",
            bad.body
        );
    }
    let unknown_status = app
        .get_as("/api/v1/agents?status=sleeping", &admin.token)
        .await;
    assert_eq!(unknown_status.status, StatusCode::BAD_REQUEST);
    let bad_limit = app.get_as("/api/v1/agents?limit=0", &admin.token).await;
    assert_eq!(bad_limit.status, StatusCode::BAD_REQUEST);
    let agent = app.agent(&admin.token, "a").await;
    let unknown_field = app
        .call(
            Method::PATCH,
            &format!("/api/v1/agents/{}", agent["id"].as_str().expect("id")),
            Some(&admin.token),
            Some(json!({ "trust_score": 0.9 })),
        )
        .await;
    assert_eq!(
        unknown_field.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "trust scores change only through PUT trust-score"
    );
    let too_big = app
        .request(
            axum::http::Request::post("/api/v1/agents")
                .header("authorization", format!("Bearer {}", admin.token))
                .header("content-type", "application/json")
                .body(axum::body::Body::from(format!(
                    r#"{{"name":"{}"}}"#,
                    "x".repeat(2 * 1024 * 1024)
                )))
                .expect("request"),
        )
        .await;
    assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn revocation_is_terminal_and_status_changes_need_a_manager() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let member = app.user(&admin, "member").await;
    let manager = app.user(&admin, "manager").await;
    let agent = app.agent(&admin.token, "a").await;
    let id = agent["id"].as_str().expect("id");
    let key = app.key(&admin.token, id).await;
    let uri = format!("/api/v1/agents/{id}");
    let patch = |token: String, body: serde_json::Value| {
        let (app, uri) = (&app, &uri);
        async move { app.patch_as(uri, &token, body).await }
    };

    let by_member = patch(member.token.clone(), json!({ "status": "verified" })).await;
    assert_eq!(
        by_member.status,
        StatusCode::FORBIDDEN,
        "{}",
        by_member.body
    );
    assert_eq!(
        patch(member.token.clone(), json!({ "name": "renamed" }))
            .await
            .status,
        StatusCode::OK,
        "members still edit the other fields"
    );
    assert_eq!(
        patch(manager.token.clone(), json!({ "status": "verified" }))
            .await
            .status,
        StatusCode::OK
    );

    assert_eq!(
        patch(admin.token.clone(), json!({ "status": "revoked" }))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.get_as("/api/v1/auth/me", &key).await.status,
        StatusCode::UNAUTHORIZED
    );
    for (who, token) in [("member", &member.token), ("admin", &admin.token)] {
        for status in ["verified", "pending", "suspended"] {
            let revived = patch(token.clone(), json!({ "status": status })).await;
            let expected = if who == "member" {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::CONFLICT
            };
            assert_eq!(
                revived.status, expected,
                "{who} → {status}: {}",
                revived.body
            );
            if expected == StatusCode::CONFLICT {
                assert_eq!(revived.error_code(), "agent_revoked");
            }
        }
    }
    let read = app
        .get_as(&format!("/api/v1/agents/{id}"), &admin.token)
        .await;
    assert_eq!(read.body["status"], "revoked");
    assert_eq!(
        app.get_as("/api/v1/auth/me", &key).await.status,
        StatusCode::UNAUTHORIZED,
        "the key stays dead"
    );
    let verify = app
        .post_as(
            &format!("/api/v1/agents/{id}/verify-action"),
            &key,
            json!({ "action": "read" }),
        )
        .await;
    assert_eq!(verify.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_trust_score_at_creation_needs_a_manager_and_is_audited() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let member = app.user(&admin, "member").await;
    let manager = app.user(&admin, "manager").await;
    let by_member = app
        .post_as(
            "/api/v1/agents",
            &member.token,
            json!({ "name": "x", "trust_score": 1.0 }),
        )
        .await;
    assert_eq!(
        by_member.status,
        StatusCode::FORBIDDEN,
        "{}",
        by_member.body
    );
    let by_manager = app
        .post_as(
            "/api/v1/agents",
            &manager.token,
            json!({ "name": "x", "trust_score": 0.9 }),
        )
        .await;
    assert_eq!(by_manager.status, StatusCode::CREATED);
    let id = by_manager.body["id"].as_str().expect("id");
    let audit = app
        .get_as(
            &format!("/api/v1/audit-events?action=agent.created&target_id={id}"),
            &admin.token,
        )
        .await;
    assert_eq!(audit.body["total"], 1, "{}", audit.body);
    let entry = &audit.body["audit_events"][0];
    assert_eq!(entry["details"]["trust_score"], 0.9, "{entry}");
}
