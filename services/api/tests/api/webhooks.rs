//! Webhooks against a receiver the test runs on loopback: failures retried, a restart between
//! the event and its delivery losing nothing, signatures that verify (two during a rotation),
//! redelivery under the same id, automatic disabling, and private destinations refused unless
//! the operator allows them.

use std::sync::{Arc, Mutex};

use aim_store::testing::TestDatabase;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::TestApp;

/// What the receiver saw: each request's delivery id, event, signature header and body.
#[derive(Default)]
struct Receiver {
    fail_first: usize,
    seen: Mutex<Vec<(String, String, String, Bytes)>>,
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mut seen = receiver.seen.lock().expect("lock");
    seen.push((
        header("aim-delivery-id"),
        header("aim-event"),
        header("aim-signature"),
        body,
    ));
    if seen.len() <= receiver.fail_first {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::NO_CONTENT
    }
}

async fn receiver(fail_first: usize) -> (Arc<Receiver>, String) {
    let receiver = Arc::new(Receiver {
        fail_first,
        ..Receiver::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/hooks/aim?x=1",
        listener.local_addr().expect("addr")
    );
    let app = axum::Router::new()
        .route("/hooks/aim", axum::routing::post(receive))
        .with_state(Arc::clone(&receiver));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (receiver, url)
}

const OVERRIDES: [(&str, &str); 4] = [
    ("AIM_WEBHOOK_ALLOW_PRIVATE", "true"),
    ("AIM_WEBHOOK_RETRY_BASE_MS", "10"),
    ("AIM_WEBHOOK_RETRY_CAP_S", "1"),
    ("AIM_WEBHOOK_TIMEOUT_MS", "5000"),
];

/// Dispatches until nothing is pending (or ten seconds pass).
async fn deliver_all(app: &TestApp) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        aim_api::webhooks::dispatch_once(&app.state)
            .await
            .expect("dispatch");
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'")
                .fetch_one(&app.pool)
                .await
                .expect("count");
        if pending == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{pending} deliveries still pending"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// `t=<ts>,v1=<hex>…` verifies under `secret` for this body.
fn verifies(header: &str, secret: &str, body: &[u8]) -> bool {
    let Some(timestamp) = header
        .split(',')
        .find_map(|part| part.strip_prefix("t="))
        .and_then(|t| t.parse::<i64>().ok())
    else {
        return false;
    };
    let expected = aim_webhooks::signature(&[secret], timestamp, body);
    let Some(mac) = expected.split(",v1=").nth(1) else {
        return false;
    };
    header.split(',').any(|part| part == format!("v1={mac}"))
}

#[tokio::test]
async fn every_event_survives_a_restart_and_failures_and_arrives_signed() {
    let db = TestDatabase::create().await;
    let (receiver, url) = receiver(2).await;
    let first = TestApp::spawn_on(&db, &OVERRIDES);
    let admin = first.organization("acme").await;
    let created = first
        .post_as(
            "/api/v1/webhooks",
            &admin.token,
            json!({ "url": url, "events": ["alert.opened", "agent.status_changed"] }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let secret = created.body["secret"].as_str().expect("secret").to_owned();
    let webhook = created.body["id"].as_str().expect("id").to_owned();
    assert!(secret.starts_with("whsec_"));
    let stored: Vec<u8> = sqlx::query_scalar("SELECT secret_encrypted FROM webhooks")
        .fetch_one(&first.pool)
        .await
        .expect("stored");
    assert!(
        !stored
            .windows(16)
            .any(|w| secret.as_bytes().windows(16).any(|s| s == w))
    );

    // A transition and an alert, each announced in its own transaction.
    let agent = first.agent(&admin.token, "a").await;
    let agent_id = agent["id"].as_str().expect("id").to_owned();
    let suspended = first
        .patch_as(
            &format!("/api/v1/agents/{agent_id}"),
            &admin.token,
            json!({ "status": "suspended" }),
        )
        .await;
    assert_eq!(suspended.status, StatusCode::OK);
    let policy = first
        .call(
            Method::PUT,
            "/api/v1/trust-policy",
            Some(&admin.token),
            Some(json!({ "alerts": { "score_below": 0.99 } })),
        )
        .await;
    assert_eq!(policy.status, StatusCode::OK, "{}", policy.body);
    let policy = aim_store::trust::policy(&first.pool, admin.organization_id)
        .await
        .expect("policy");
    aim_api::trust::recompute(
        &first.pool,
        admin.organization_id,
        None,
        &policy,
        chrono::Utc::now(),
    )
    .await
    .expect("recompute");
    // The service stops before sending anything; another starts on the same database.
    drop(first);
    let second = TestApp::spawn_on(&db, &OVERRIDES);
    deliver_all(&second).await;

    let deliveries = second
        .get_as(
            &format!("/api/v1/webhooks/{webhook}/deliveries"),
            &admin.token,
        )
        .await;
    assert_eq!(deliveries.status, StatusCode::OK, "{}", deliveries.body);
    let deliveries = deliveries.body["deliveries"]
        .as_array()
        .expect("list")
        .clone();
    let mut events: Vec<&str> = deliveries
        .iter()
        .map(|d| d["event_type"].as_str().expect("event"))
        .collect();
    events.sort_unstable();
    assert_eq!(events, ["agent.status_changed", "alert.opened"]);
    assert!(deliveries.iter().all(|d| d["status"] == "delivered"));
    let attempts: i64 = deliveries
        .iter()
        .map(|d| d["attempts"].as_i64().expect("n"))
        .sum();
    assert_eq!(attempts, 4, "two failures, then one success each");

    let seen = receiver.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 4);
    for (id, event, signature, body) in &seen {
        assert!(verifies(signature, &secret, body), "{signature}");
        assert!(!verifies(signature, "whsec_other", body));
        let body: Value = serde_json::from_slice(body).expect("json");
        assert_eq!(body["type"], event.as_str());
        assert_eq!(body["organization_id"], admin.organization_id.to_string());
        assert!(deliveries.iter().any(|d| d["id"] == id.as_str()));
    }

    // A rotation: both secrets sign during the overlap. A ping, then its redelivery under the
    // same id.
    let rotated = second
        .post_as(
            &format!("/api/v1/webhooks/{webhook}/rotate-secret"),
            &admin.token,
            json!({ "overlap_hours": 1 }),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let new_secret = rotated.body["secret"].as_str().expect("secret").to_owned();
    let ping = second
        .post_as(
            &format!("/api/v1/webhooks/{webhook}/ping"),
            &admin.token,
            json!({}),
        )
        .await;
    assert_eq!(ping.status, StatusCode::ACCEPTED, "{}", ping.body);
    let ping_id = ping.body["id"].as_str().expect("id").to_owned();
    deliver_all(&second).await;
    let again = second
        .post_as(
            &format!("/api/v1/webhooks/{webhook}/deliveries/{ping_id}/redeliver"),
            &admin.token,
            json!({}),
        )
        .await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.body);
    deliver_all(&second).await;
    let seen = receiver.seen.lock().expect("lock").clone();
    let pings: Vec<_> = seen.iter().filter(|(id, ..)| *id == ping_id).collect();
    assert_eq!(pings.len(), 2);
    for (_, event, signature, body) in pings {
        assert_eq!(event, "webhook.ping");
        assert!(verifies(signature, &secret, body) && verifies(signature, &new_secret, body));
    }
}

#[tokio::test]
async fn an_endpoint_that_keeps_failing_is_disabled_until_an_admin_enables_it() {
    let (receiver, url) = receiver(usize::MAX).await;
    let mut overrides = OVERRIDES.to_vec();
    overrides.extend([
        ("AIM_WEBHOOK_MAX_ATTEMPTS", "2"),
        ("AIM_WEBHOOK_DISABLE_AFTER", "3"),
    ]);
    let app = TestApp::spawn_with(&overrides).await;
    let admin = app.organization("acme").await;
    let created = app
        .post_as(
            "/api/v1/webhooks",
            &admin.token,
            json!({ "url": url, "events": ["agent.status_changed"] }),
        )
        .await;
    let webhook = created.body["id"].as_str().expect("id").to_owned();
    for _ in 0..2 {
        let ping = app
            .post_as(
                &format!("/api/v1/webhooks/{webhook}/ping"),
                &admin.token,
                json!({}),
            )
            .await;
        assert_eq!(ping.status, StatusCode::ACCEPTED);
    }
    // Two deliveries of two attempts each: the third failed attempt in a row disables the
    // endpoint (an attempt already under way when it does may still fail), and no attempt is
    // made while it is disabled.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        aim_api::webhooks::dispatch_once(&app.state)
            .await
            .expect("dispatch");
        let shown = app
            .get_as(&format!("/api/v1/webhooks/{webhook}"), &admin.token)
            .await;
        if shown.body["enabled"] == false {
            assert!(
                shown.body["disabled_reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("3 failed attempts")),
                "{}",
                shown.body
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never disabled");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let attempted = receiver.seen.lock().expect("lock").len();
    assert!((3..=4).contains(&attempted), "{attempted}");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    aim_api::webhooks::dispatch_once(&app.state)
        .await
        .expect("dispatch");
    assert_eq!(receiver.seen.lock().expect("lock").len(), attempted);
    let enabled = app
        .patch_as(
            &format!("/api/v1/webhooks/{webhook}"),
            &admin.token,
            json!({ "enabled": true }),
        )
        .await;
    assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.body);
    assert_eq!(enabled.body["consecutive_failures"], 0);
    assert_eq!(enabled.body["disabled_reason"], Value::Null);
}

#[tokio::test]
async fn private_destinations_and_bad_urls_are_refused_by_default() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://10.0.0.8/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/",
        "http://[::ffff:192.168.0.1]/",
        "http://100.64.1.1/",
        "ftp://example.com/",
        "https://user:pass@example.com/",
    ] {
        let refused = app
            .post_as(
                "/api/v1/webhooks",
                &admin.token,
                json!({ "url": url, "events": ["alert.opened"] }),
            )
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{url}: {}",
            refused.body
        );
        assert!(refused.body["error"]["fields"]["url"].is_string(), "{url}");
    }
    // A host name is checked at delivery: localhost resolves to loopback.
    let by_name = app
        .post_as(
            "/api/v1/webhooks",
            &admin.token,
            json!({ "url": "http://localhost:9/hook", "events": ["alert.opened"] }),
        )
        .await;
    assert_eq!(by_name.status, StatusCode::CREATED, "{}", by_name.body);
    let webhook = by_name.body["id"].as_str().expect("id").to_owned();
    app.post_as(
        &format!("/api/v1/webhooks/{webhook}/ping"),
        &admin.token,
        json!({}),
    )
    .await;
    aim_api::webhooks::dispatch_once(&app.state)
        .await
        .expect("dispatch");
    let deliveries = app
        .get_as(
            &format!("/api/v1/webhooks/{webhook}/deliveries"),
            &admin.token,
        )
        .await;
    let error = deliveries.body["deliveries"][0]["last_error"]
        .as_str()
        .expect("an error")
        .to_owned();
    assert!(error.contains("internal address"), "{error}");
    // Members, managers and agents may not manage webhooks.
    let manager = app.user(&admin, "manager").await;
    assert_eq!(
        app.get_as("/api/v1/webhooks", &manager.token).await.status,
        StatusCode::FORBIDDEN
    );
    let duplicate = app
        .post_as(
            "/api/v1/webhooks",
            &admin.token,
            json!({ "url": "https://example.com/", "events": ["alert.opened", "alert.opened"] }),
        )
        .await;
    assert_eq!(duplicate.status, StatusCode::UNPROCESSABLE_ENTITY);
}
