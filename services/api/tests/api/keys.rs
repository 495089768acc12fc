use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn keys_are_shown_once_stored_hashed_and_authenticate_the_agent() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let agent = app.agent(&admin.token, "a").await;
    let id = agent["id"].as_str().expect("id");

    let created = app
        .post_as(
            &format!("/api/v1/agents/{id}/api-keys"),
            &admin.token,
            json!({ "name": "ci" }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let key = created.body["api_key"].as_str().expect("key").to_owned();
    assert!(key.starts_with("aim_") && key.len() == 68, "{key}");
    assert!(key.starts_with(created.body["prefix"].as_str().expect("prefix")));

    let stored: Vec<(Vec<u8>, String)> = sqlx::query_as("SELECT key_hash, prefix FROM api_keys")
        .fetch_all(&app.pool)
        .await
        .expect("keys");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0.len(), 32, "only a SHA-256 is stored");
    assert!(!String::from_utf8_lossy(&stored[0].0).contains(&key[4..]));

    let list = app
        .get_as(&format!("/api/v1/agents/{id}/api-keys"), &admin.token)
        .await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(
        list.body["api_keys"][0].get("api_key").is_none(),
        "lists never show the key"
    );
    assert_eq!(list.body["api_keys"][0]["prefix"], created.body["prefix"]);

    // Both header forms authenticate, as this agent.
    let bearer = app.get_as("/api/v1/agents", &key).await;
    assert_eq!(bearer.status, StatusCode::OK, "{}", bearer.body);
    assert_eq!(bearer.body["agents"][0]["id"], id);
    let header = app
        .request(
            Request::get("/api/v1/auth/me")
                .header("x-api-key", &key)
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(header.status, StatusCode::OK);
    assert_eq!(header.body["type"], "agent");
    assert_eq!(header.body["id"], id);
}

#[tokio::test]
async fn agents_read_only_themselves_and_cannot_administer() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let me = app.agent(&admin.token, "me").await;
    let other = app.agent(&admin.token, "other").await;
    let key = app.key(&admin.token, me["id"].as_str().expect("id")).await;

    assert_eq!(
        app.get_as(
            &format!("/api/v1/agents/{}", me["id"].as_str().expect("id")),
            &key
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        app.get_as(
            &format!("/api/v1/agents/{}", other["id"].as_str().expect("id")),
            &key
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.post_as("/api/v1/agents", &key, json!({ "name": "x" }))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get_as("/api/v1/users", &key).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get_as("/api/v1/audit-events", &key).await.status,
        StatusCode::FORBIDDEN
    );
    let score = app
        .call(
            Method::PUT,
            &format!(
                "/api/v1/agents/{}/trust-score",
                me["id"].as_str().expect("id")
            ),
            Some(&key),
            Some(json!({ "trust_score": 1.0, "reason": "self-promotion" })),
        )
        .await;
    assert_eq!(score.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn revoked_and_expired_keys_stop_working() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let agent = app.agent(&admin.token, "a").await;
    let id = agent["id"].as_str().expect("id");
    let created = app
        .post_as(
            &format!("/api/v1/agents/{id}/api-keys"),
            &admin.token,
            json!({}),
        )
        .await;
    let key = created.body["api_key"].as_str().expect("key").to_owned();
    let key_id = created.body["id"].as_str().expect("key id").to_owned();
    assert_eq!(
        app.get_as("/api/v1/auth/me", &key).await.status,
        StatusCode::OK,
        "cached now"
    );

    let revoked = app
        .call(
            Method::DELETE,
            &format!("/api/v1/agents/{id}/api-keys/{key_id}"),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get_as("/api/v1/auth/me", &key).await.status,
        StatusCode::UNAUTHORIZED,
        "revocation applies at once here"
    );
    let again = app
        .call(
            Method::DELETE,
            &format!("/api/v1/agents/{id}/api-keys/{key_id}"),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);

    let past = app
        .post_as(
            &format!("/api/v1/agents/{id}/api-keys"),
            &admin.token,
            json!({ "expires_at": "2020-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(past.status, StatusCode::UNPROCESSABLE_ENTITY);
    let soon = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let expiring = app
        .post_as(
            &format!("/api/v1/agents/{id}/api-keys"),
            &admin.token,
            json!({ "expires_at": soon }),
        )
        .await;
    let expiring = expiring.body["api_key"].as_str().expect("key").to_owned();
    assert_eq!(
        app.get_as("/api/v1/auth/me", &expiring).await.status,
        StatusCode::OK
    );
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    assert_eq!(
        app.get_as("/api/v1/auth/me", &expiring).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn revoking_an_agent_stops_its_keys() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let agent = app.agent(&admin.token, "a").await;
    let id = agent["id"].as_str().expect("id");
    let key = app.key(&admin.token, id).await;
    assert_eq!(
        app.get_as("/api/v1/auth/me", &key).await.status,
        StatusCode::OK
    );
    let revoke = app
        .call(
            Method::PATCH,
            &format!("/api/v1/agents/{id}"),
            Some(&admin.token),
            Some(json!({ "status": "revoked" })),
        )
        .await;
    assert_eq!(revoke.status, StatusCode::OK);
    assert_eq!(
        app.get_as("/api/v1/auth/me", &key).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn cached_keys_authenticate_while_the_database_is_down() {
    let app = TestApp::spawn_behind_proxy().await;
    // Warm the cache, then cut the database.
    let (_, _, key) = app.cached_key().await;
    app.proxy().cut();
    // A request rejected after authentication but before any query: authentication itself
    // needed no database (an unauthenticated caller gets 401, a database-backed check 503).
    let rejected = app.get_as("/api/v1/verifications?limit=0", &key).await;
    assert_eq!(
        rejected.status,
        StatusCode::BAD_REQUEST,
        "{}",
        rejected.body
    );
    let unknown = app
        .get_as(
            "/api/v1/verifications?limit=0",
            "aim_1111111111111111111111111111111111111111111111111111111111111111",
        )
        .await;
    assert_eq!(
        unknown.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "an uncached key needs the database"
    );
    // A query that needs the database says so, without a 500.
    let listed = app.get_as("/api/v1/verifications", &key).await;
    assert_eq!(listed.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(listed.error_code(), "service_unavailable");
}

#[tokio::test]
async fn a_key_checked_before_an_outage_outlives_the_ttl_until_the_database_answers() {
    let app = TestApp::spawn_behind_proxy_with(&[("AIM_API_KEY_CACHE_TTL_S", "1")]).await;
    let (admin, id, key) = app.cached_key().await;
    app.proxy().cut();
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    // Past the TTL the key is checked again; the database cannot answer, so the earlier check
    // stands: authenticated (a 400 from validation, not a 503 from authentication).
    let stale = app.get_as("/api/v1/verifications?limit=0", &key).await;
    assert_eq!(stale.status, StatusCode::BAD_REQUEST, "{}", stale.body);
    app.proxy().resume();
    app.until_the_database_answers().await;
    // Once it answers, the check is fresh again; a revocation then applies at the next check.
    let revoke = app
        .call(
            axum::http::Method::DELETE,
            &format!("/api/v1/agents/{id}"),
            Some(&admin.token),
            None,
        )
        .await;
    assert!(revoke.status.is_success(), "{}", revoke.body);
    let revoked = app.get_as("/api/v1/verifications?limit=0", &key).await;
    assert_eq!(revoked.status, StatusCode::UNAUTHORIZED, "{}", revoked.body);
}

/// What another replica's revocation does: the row changes, this process's cache is not told.
async fn revoke_behind_the_cache(app: &TestApp, agent_id: &str) {
    let agent_id: uuid::Uuid = agent_id.parse().expect("uuid");
    let revoked = sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE agent_id = $1")
        .bind(agent_id)
        .execute(&app.pool)
        .await
        .expect("revoke");
    assert_eq!(revoked.rows_affected(), 1);
}

/// Calls the key every 50 ms until it is refused; returns how long that took. Every call before
/// is authenticated (a 400 from validation).
async fn until_refused(
    app: &TestApp,
    key: &str,
    within: std::time::Duration,
) -> std::time::Duration {
    let started = std::time::Instant::now();
    while started.elapsed() < within {
        let answer = app.get_as("/api/v1/verifications?limit=0", key).await;
        match answer.status {
            StatusCode::UNAUTHORIZED => return started.elapsed(),
            StatusCode::BAD_REQUEST => {}
            other => panic!("{other}: {}", answer.body),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the revoked key still authenticated after {within:?}");
}

#[tokio::test]
async fn a_key_in_use_is_checked_again_within_the_ttl_so_another_replica_s_revocation_applies() {
    let app = TestApp::spawn_with(&[("AIM_API_KEY_CACHE_TTL_S", "1")]).await;
    let (_, id, key) = app.cached_key().await;
    revoke_behind_the_cache(&app, &id).await;
    // Checked again in the background in the TTL's last quarter, so refused within the TTL
    // (the bound allows for a slow machine).
    let took = until_refused(&app, &key, std::time::Duration::from_secs(3)).await;
    assert!(took < std::time::Duration::from_millis(1_800), "{took:?}");
}

#[tokio::test]
async fn a_revocation_made_elsewhere_during_an_outage_applies_once_the_database_answers() {
    let app = TestApp::spawn_behind_proxy_with(&[("AIM_API_KEY_CACHE_TTL_S", "1")]).await;
    let (_, id, key) = app.cached_key().await;
    app.proxy().cut();
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    // The first call past the TTL finds the database down; the calls after it do not ask.
    for _ in 0..20 {
        let stale = app.get_as("/api/v1/verifications?limit=0", &key).await;
        assert_eq!(stale.status, StatusCode::BAD_REQUEST, "{}", stale.body);
    }
    app.proxy().resume();
    revoke_behind_the_cache(&app, &id).await;
    // A background check a second looks for the database; the first to reach it evicts the key.
    let took = until_refused(&app, &key, std::time::Duration::from_secs(5)).await;
    assert!(took < std::time::Duration::from_millis(2_500), "{took:?}");
}

#[tokio::test]
async fn agent_keys_are_rate_limited() {
    let app = TestApp::spawn_with(&[("AIM_AGENT_RATE_LIMIT_PER_S", "2")]).await;
    let admin = app.organization("acme").await;
    let agent = app.agent(&admin.token, "a").await;
    let key = app
        .key(&admin.token, agent["id"].as_str().expect("id"))
        .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(app.get_as("/api/v1/auth/me", &key).await.status);
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}

/// Two replicas on one database: a revocation made on one stops the key there at once and on
/// the other within its key cache's TTL (`AIM_API_KEY_CACHE_TTL_S`), the bound `docs/api.md`
/// states.
#[tokio::test]
async fn a_revocation_reaches_another_replica_within_the_key_cache_ttl() {
    const TTL_S: u64 = 3;
    let db = aim_store::testing::TestDatabase::create().await;
    let ttl = TTL_S.to_string();
    let overrides = [("AIM_API_KEY_CACHE_TTL_S", ttl.as_str())];
    let (a, b) = (
        TestApp::spawn_on(&db, &overrides),
        TestApp::spawn_on(&db, &overrides),
    );
    let admin = a.organization("acme").await;
    let agent = a.agent(&admin.token, "a").await;
    let id = agent["id"].as_str().expect("id");
    let created = a
        .post_as(
            &format!("/api/v1/agents/{id}/api-keys"),
            &admin.token,
            json!({}),
        )
        .await;
    let key = created.body["api_key"].as_str().expect("key").to_owned();
    let key_id = created.body["id"].as_str().expect("key id").to_owned();
    assert_eq!(
        b.get_as("/api/v1/auth/me", &key).await.status,
        StatusCode::OK
    );
    let cached_at = std::time::Instant::now();

    let revoked = a
        .call(
            Method::DELETE,
            &format!("/api/v1/agents/{id}/api-keys/{key_id}"),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    assert_eq!(
        a.get_as("/api/v1/auth/me", &key).await.status,
        StatusCode::UNAUTHORIZED,
        "at once on the replica that revoked it"
    );
    // The other replica still answers from its cached check; how long is the bound under test.
    let refused_after = loop {
        let status = b.get_as("/api/v1/auth/me", &key).await.status;
        if status == StatusCode::UNAUTHORIZED {
            break cached_at.elapsed();
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            cached_at.elapsed() < std::time::Duration::from_secs(TTL_S + 2),
            "still accepted past the TTL"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(
        refused_after
            <= std::time::Duration::from_secs(TTL_S) + std::time::Duration::from_millis(500),
        "refused after {refused_after:?}, beyond the TTL of {TTL_S} s"
    );
}
