//! No request can read or change another organization's data: its ids answer 404, exactly like
//! ids that do not exist.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn the_whole_story_and_another_organization_sees_none_of_it() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;

    // Create an agent and its key; the key reads the agent list.
    let agent = app.agent(&admin.token, "billing-bot").await;
    let id = agent["id"].as_str().expect("id").to_owned();
    let created_key = app
        .post_as(
            &format!("/api/v1/agents/{id}/api-keys"),
            &admin.token,
            json!({}),
        )
        .await;
    let key = created_key.body["api_key"]
        .as_str()
        .expect("key")
        .to_owned();
    let key_id = created_key.body["id"].as_str().expect("key id").to_owned();
    let listed = app.get_as("/api/v1/agents", &key).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body["agents"][0]["id"], id.as_str());

    // Two trust-score changes, two history rows with correct previous scores.
    let score_uri = format!("/api/v1/agents/{id}/trust-score");
    for (score, previous) in [(0.7, 0.5), (0.9, 0.7)] {
        let changed = app
            .call(
                Method::PUT,
                &score_uri,
                Some(&admin.token),
                Some(json!({ "trust_score": score, "reason": "review" })),
            )
            .await;
        assert_eq!(changed.status, StatusCode::OK);
        assert_eq!(changed.body["previous_score"], previous);
    }
    let verify_uri = format!("/api/v1/agents/{id}/verify-action");
    let verified = app
        .post_as(&verify_uri, &key, json!({ "action": "pay" }))
        .await;
    assert_eq!(verified.status, StatusCode::OK);
    let event_count: i64 = sqlx::query_scalar("SELECT count(*) FROM verification_events")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(event_count, 1);

    // Another organization's admin: 404 on every one of those ids, and nothing in its lists.
    let other = app.organization("globex").await;
    let t = other.token.as_str();
    let not_found = [
        app.get_as(&format!("/api/v1/agents/{id}"), t).await,
        app.call(
            Method::PATCH,
            &format!("/api/v1/agents/{id}"),
            Some(t),
            Some(json!({ "name": "pwned" })),
        )
        .await,
        app.call(
            Method::PUT,
            &score_uri,
            Some(t),
            Some(json!({ "trust_score": 0.0, "reason": "x" })),
        )
        .await,
        app.get_as(&format!("/api/v1/agents/{id}/trust-history"), t)
            .await,
        app.get_as(&format!("/api/v1/agents/{id}/api-keys"), t)
            .await,
        app.post_as(&format!("/api/v1/agents/{id}/api-keys"), t, json!({}))
            .await,
        app.call(
            Method::DELETE,
            &format!("/api/v1/agents/{id}/api-keys/{key_id}"),
            Some(t),
            None,
        )
        .await,
        app.post_as(&verify_uri, t, json!({ "action": "pay" }))
            .await,
        app.get_as(&format!("/api/v1/users/{}", admin.id), t).await,
        app.call(
            Method::PATCH,
            &format!("/api/v1/users/{}", admin.id),
            Some(t),
            Some(json!({ "is_active": false })),
        )
        .await,
        app.call(
            Method::DELETE,
            &format!("/api/v1/agents/{id}"),
            Some(t),
            None,
        )
        .await,
    ];
    let missing = app
        .get_as(&format!("/api/v1/agents/{}", uuid::Uuid::now_v7()), t)
        .await;
    for response in &not_found {
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{}", response.body);
        assert_eq!(
            response.body, missing.body,
            "indistinguishable from a missing id"
        );
    }
    assert_eq!(app.get_as("/api/v1/agents", t).await.body["total"], 0);
    assert_eq!(
        app.get_as("/api/v1/verifications", t).await.body["total"],
        0
    );
    assert_eq!(app.get_as("/api/v1/users", t).await.body["total"], 1);
    let audit = app.get_as("/api/v1/audit-events?limit=100", t).await;
    assert!(
        audit.body["audit_events"]
            .as_array()
            .expect("array")
            .iter()
            .all(|e| e["organization_id"] == other.organization_id.to_string()),
        "{}",
        audit.body
    );
    let filtered = app
        .get_as(&format!("/api/v1/verifications?agent_id={id}"), t)
        .await;
    assert_eq!(filtered.body["total"], 0);

    // Nothing changed for the owner.
    let mine = app
        .get_as(&format!("/api/v1/agents/{id}"), &admin.token)
        .await;
    assert_eq!(mine.body["name"], "billing-bot");
    assert_eq!(mine.body["trust_score"], 0.9);
    assert_eq!(
        app.get_as("/api/v1/auth/me", &key).await.status,
        StatusCode::OK,
        "key still works"
    );
}

/// Another organization's admin can neither revive nor revoke our agent, nor end our sessions.
#[tokio::test]
async fn another_organization_cannot_change_an_agents_status_or_end_a_session() {
    let app = TestApp::spawn().await;
    let ours = app.organization("acme").await;
    let theirs = app.organization("globex").await;
    let agent = app.agent(&ours.token, "a").await;
    let id = agent["id"].as_str().expect("id");
    for status in ["revoked", "verified"] {
        let patched = app
            .call(
                Method::PATCH,
                &format!("/api/v1/agents/{id}"),
                Some(&theirs.token),
                Some(json!({ "status": status })),
            )
            .await;
        assert_eq!(patched.status, StatusCode::NOT_FOUND, "{status}");
    }
    let read = app
        .get_as(&format!("/api/v1/agents/{id}"), &ours.token)
        .await;
    assert_eq!(read.body["status"], "pending");
    let logout = app
        .post_as(
            "/api/v1/auth/logout",
            &theirs.token,
            json!({ "refresh_token": ours.refresh_token }),
        )
        .await;
    assert_eq!(logout.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        app.get_as("/api/v1/auth/me", &ours.token).await.status,
        StatusCode::OK,
        "our session is untouched"
    );
}
