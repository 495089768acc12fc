//! The analytics layer through the real router: every call that ends with an organization
//! becomes exactly one `api_calls` row with the right fields; nothing else does.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::TestApp;

#[derive(Debug, sqlx::FromRow)]
struct Row {
    organization_id: Uuid,
    agent_id: Option<Uuid>,
    user_id: Option<Uuid>,
    method: String,
    endpoint: String,
    status_code: i32,
    duration_ms: f64,
    request_size_bytes: i64,
    response_size_bytes: i64,
    user_agent: Option<String>,
    error_message: Option<String>,
    request_id: Option<String>,
}

async fn row(app: &TestApp, request_id: &str) -> Row {
    sqlx::query_as(
        "SELECT organization_id, agent_id, user_id, method, endpoint, status_code, duration_ms, \
                request_size_bytes, response_size_bytes, user_agent, error_message, request_id \
         FROM api_calls WHERE request_id = $1",
    )
    .bind(request_id)
    .fetch_one(&app.pool)
    .await
    .unwrap_or_else(|e| panic!("no row for {request_id}: {e}"))
}

fn call(
    method: Method,
    uri: &str,
    credential: &str,
    id: &str,
    body: Option<serde_json::Value>,
) -> Request<Body> {
    let builder = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {credential}"))
        .header("x-request-id", id)
        .header(header::USER_AGENT, "analytics-test/1.0");
    match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => builder.body(Body::empty()),
    }
    .expect("request")
}

#[tokio::test]
async fn every_authenticated_call_is_one_row_with_the_right_fields() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let agent = app.agent(&admin.token, "bot").await;
    let agent_id: Uuid = agent["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("id");
    let key = app.key(&admin.token, &agent_id.to_string()).await;

    let mut expected = 0;
    for i in 0..20 {
        let id = format!("user-call-{i}");
        let response = app
            .request(call(
                Method::GET,
                &format!("/api/v1/agents/{agent_id}?x={i}"),
                &admin.token,
                &id,
                None,
            ))
            .await;
        assert_eq!(response.status, StatusCode::OK);
        expected += 1;
    }
    for i in 0..15 {
        let id = format!("agent-call-{i}");
        let body = json!({ "action": "read", "resource": format!("doc/{i}") });
        let response = app
            .request(call(
                Method::POST,
                &format!("/api/v1/agents/{agent_id}/verify-action"),
                &key,
                &id,
                Some(body),
            ))
            .await;
        assert_eq!(response.status, StatusCode::OK);
        expected += 1;
    }
    let invalid = app
        .request(call(
            Method::POST,
            "/api/v1/agents",
            &admin.token,
            "invalid-call",
            Some(json!({ "name": "" })),
        ))
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    expected += 1;
    // Not API calls of an organization: probes, and calls without valid credentials.
    app.request(call(
        Method::GET,
        "/api/v1/status",
        &admin.token,
        "probe",
        None,
    ))
    .await;
    app.request(call(Method::GET, "/health", &admin.token, "probe-2", None))
        .await;
    app.request(call(
        Method::GET,
        "/api/v1/agents",
        "not-a-token",
        "anonymous",
        None,
    ))
    .await;
    app.request(call(
        Method::GET,
        "/api/v1/nowhere",
        "not-a-token",
        "anonymous-2",
        None,
    ))
    .await;

    let stats = app.drain().await;
    let ours: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM api_calls WHERE request_id LIKE 'user-call-%' \
            OR request_id LIKE 'agent-call-%' OR request_id = 'invalid-call'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(ours, expected);
    let others: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM api_calls WHERE request_id IN ('probe', 'probe-2', 'anonymous', 'anonymous-2')",
    )
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(others, 0, "probes and unattributed calls are not rows");
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM api_calls")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(u64::try_from(total).expect("count"), stats.written);
    assert_eq!(stats.received, stats.written, "{stats:?}");
    assert!(stats.balanced(0), "{stats:?}");

    let user_call = row(&app, "user-call-3").await;
    assert_eq!(user_call.organization_id, admin.organization_id);
    assert_eq!(user_call.user_id, Some(admin.id));
    assert_eq!(user_call.agent_id, None);
    assert_eq!(user_call.method, "GET");
    assert_eq!(
        user_call.endpoint, "/api/v1/agents/{id}",
        "the route template, never the raw path"
    );
    assert_eq!(user_call.status_code, 200);
    assert!(user_call.response_size_bytes > 100, "{user_call:?}");
    assert!(user_call.duration_ms > 0.0);
    assert_eq!(user_call.user_agent.as_deref(), Some("analytics-test/1.0"));
    assert_eq!(user_call.error_message, None);

    let agent_call = row(&app, "agent-call-7").await;
    assert_eq!(agent_call.agent_id, Some(agent_id));
    assert_eq!(agent_call.user_id, None);
    assert_eq!(agent_call.method, "POST");
    assert_eq!(agent_call.endpoint, "/api/v1/agents/{id}/verify-action");
    let sent = json!({ "action": "read", "resource": "doc/7" })
        .to_string()
        .len();
    assert_eq!(
        agent_call.request_size_bytes,
        i64::try_from(sent).expect("size")
    );

    let failed = row(&app, "invalid-call").await;
    assert_eq!(failed.status_code, 422);
    assert_eq!(failed.error_message.as_deref(), Some("validation_failed"));
    assert_eq!(failed.request_id.as_deref(), Some("invalid-call"));
}

#[tokio::test]
async fn status_shows_the_pipeline() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    app.get_as("/api/v1/agents", &admin.token).await;
    let status = app.get("/api/v1/status").await;
    let pipeline = &status.body["pipeline"];
    assert_eq!(pipeline["state"], "running", "{}", status.body);
    for field in [
        "queue_depth",
        "spool_bytes",
        "events_written",
        "events_dropped",
    ] {
        assert!(pipeline[field].is_u64(), "{field}: {}", status.body);
    }
    assert!(pipeline.get("last_flush_age_ms").is_some());
}

#[tokio::test]
async fn disabled_analytics_records_nothing() {
    let app = TestApp::spawn_with(&[("AIM_ANALYTICS_ENABLED", "false")]).await;
    let admin = app.organization("acme").await;
    assert_eq!(
        app.get_as("/api/v1/agents", &admin.token).await.status,
        StatusCode::OK
    );
    let status = app.get("/api/v1/status").await;
    assert_eq!(status.body["pipeline"]["state"], "disabled");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM api_calls")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn calls_during_a_database_outage_are_spooled_and_land_once() {
    let app = TestApp::spawn_behind_proxy().await;
    // Warm the key cache, then cut the database: key-authenticated calls still answer (a
    // validation error needs no query) and are recorded.
    let (_, _, key) = app.cached_key().await;
    app.proxy().cut();
    for i in 0..25 {
        let response = app
            .request(call(
                Method::GET,
                "/api/v1/verifications?limit=0",
                &key,
                &format!("outage-{i}"),
                None,
            ))
            .await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST);
    }
    let pipeline = app.pipeline.as_ref().expect("pipeline");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while pipeline.stats().snapshot().in_spool < 25 {
        assert!(
            std::time::Instant::now() < deadline,
            "not spooled: {:?}",
            pipeline.stats().snapshot()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    app.proxy().resume();
    while pipeline.stats().snapshot().in_spool > 0 {
        assert!(
            std::time::Instant::now() < deadline + std::time::Duration::from_secs(20),
            "not replayed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let stats = app.drain().await;
    let rows: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT id) FROM api_calls WHERE request_id LIKE 'outage-%'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(rows, 25);
    assert!(stats.balanced(0), "{stats:?}");
    assert_eq!(stats.dropped, 0);
}

/// The deployment guide's check: ten small calls with a user token show a data volume above
/// zero, in MiB unrounded and in bytes.
#[tokio::test]
async fn ten_small_calls_show_a_data_volume_above_zero() {
    let app = TestApp::spawn().await;
    let admin = app.organization("volume").await;
    for _ in 0..10 {
        let listed = app.get_as("/api/v1/agents", &admin.token).await;
        assert_eq!(listed.status, StatusCode::OK);
    }
    app.drain().await;
    let usage = app
        .get_as("/api/v1/analytics/usage?period=day", &admin.token)
        .await;
    assert_eq!(usage.status, StatusCode::OK, "{}", usage.body);
    let bytes = usage.body["data_volume_bytes"].as_i64().expect("bytes");
    let mib = usage.body["data_volume"].as_f64().expect("MiB");
    assert!(bytes > 0 && mib > 0.0, "{}", usage.body);
    assert_eq!(mib, bytes as f64 / 1_048_576.0, "exact, not rounded");
}

/// `last_active` follows an agent's API calls (from the rollups), not only its verifications,
/// in the agent, the agent list and the analytics of agents.
#[tokio::test]
async fn last_active_moves_with_the_agent_s_calls() {
    let app = TestApp::spawn().await;
    let (admin, agent, key) = app.cached_key().await;
    let fresh = app.agent(&admin.token, "silent").await;
    assert!(fresh["last_active"].is_null(), "{fresh}");
    let before = chrono::Utc::now();
    for _ in 0..3 {
        let got = app.get_as(&format!("/api/v1/agents/{agent}"), &key).await;
        assert_eq!(got.status, StatusCode::OK);
    }
    let after = chrono::Utc::now();
    app.drain().await;

    let last_active = |value: &serde_json::Value| {
        value["last_active"]
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
    };
    let got = app
        .get_as(&format!("/api/v1/agents/{agent}"), &admin.token)
        .await;
    let at = last_active(&got.body).expect("last_active set by calls");
    assert!(
        before <= at && at <= after,
        "{at} not in [{before}, {after}]"
    );

    let listed = app.get_as("/api/v1/agents", &admin.token).await;
    let agents = listed.body["agents"].as_array().expect("agents");
    let mine = agents
        .iter()
        .find(|a| a["id"] == agent.as_str())
        .expect("listed");
    assert_eq!(last_active(mine), Some(at));
    let silent = agents
        .iter()
        .find(|a| a["id"] == fresh["id"])
        .expect("listed");
    assert!(silent["last_active"].is_null(), "{silent}");

    let activity = app
        .get_as("/api/v1/analytics/agents/activity", &admin.token)
        .await;
    let entry = activity.body["activities"]
        .as_array()
        .expect("agents")
        .iter()
        .find(|a| a["agent_id"] == agent.as_str())
        .expect("in the activity")
        .clone();
    assert_eq!(last_active(&entry), Some(at), "{entry}");
}

/// PostgreSQL refusing every row (a trigger here; a bad deploy's schema in real life): the
/// calls are kept in the dead-letter spool, not dropped, and the status page says the pipeline
/// is degraded with PostgreSQL's own message.
#[tokio::test]
async fn a_refused_statement_dead_letters_the_calls_and_the_status_says_why() {
    let app = TestApp::spawn().await;
    let (_admin, agent, key) = app.cached_key().await;
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_all() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN RAISE EXCEPTION 'analytics are frozen for the test'; END $$; \
         CREATE TRIGGER refuse_all BEFORE INSERT ON api_calls \
             FOR EACH ROW EXECUTE FUNCTION refuse_all();",
    )
    .execute(&app.pool)
    .await
    .expect("trigger");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        for _ in 0..3 {
            app.get_as(&format!("/api/v1/agents/{agent}"), &key).await;
        }
        let status = app.get("/api/v1/status").await;
        if status.body["pipeline"]["state"] == "degraded" {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "{}", status.body);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(status.body["status"], "degraded");
    let message = status.body["pipeline"]["statement_refused"]
        .as_str()
        .expect("the database's message")
        .to_owned();
    assert!(
        message.contains("analytics are frozen for the test"),
        "{message}"
    );
    assert!(status.body["pipeline"]["events_dead_lettered"].as_u64() > Some(0));
    let stats = app.drain().await;
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert!(stats.balanced(0), "{stats:?}");
    assert_eq!(
        stats.written + stats.dead_lettered,
        stats.enqueued,
        "{stats:?}"
    );
}
