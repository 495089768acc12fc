//! Security suites: every endpoint of the OpenAPI document called by another organization with
//! this organization's ids; JWT forgeries; out-of-range parameters; oversized bodies; secrets
//! that must never be stored or recorded.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use base64::Engine;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::helpers::{JWT_SECRET, PASSWORD, TestApp, TestUser};

/// Status and raw body (export answers CSV, so not everything is JSON).
async fn raw(
    app: &TestApp,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> (StatusCode, String) {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = match body {
        Some(body) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body)),
        None => request.body(Body::empty()),
    }
    .expect("request");
    let response = app
        .router
        .clone()
        .oneshot(request)
        .await
        .expect("infallible");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// What one organization owns, for the other to reach for.
struct Tenant {
    admin: TestUser,
    agent_id: String,
    agent_name: String,
    key: String,
    key_id: String,
    verification_id: String,
    webhook_id: String,
    delivery_id: String,
    alert_id: String,
    member: TestUser,
}

async fn tenant(app: &TestApp, name: &str) -> Tenant {
    let admin = app.organization(name).await;
    let agent_name = format!("{name}-secret-agent");
    let agent = app.agent(&admin.token, &agent_name).await;
    let agent_id = agent["id"].as_str().expect("id").to_owned();
    let created = app
        .post_as(
            &format!("/api/v1/agents/{agent_id}/api-keys"),
            &admin.token,
            json!({}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let key = created.body["api_key"].as_str().expect("key").to_owned();
    let key_id = created.body["id"].as_str().expect("key id").to_owned();
    let verified = app
        .post_as(
            &format!("/api/v1/agents/{agent_id}/verify-action"),
            &key,
            json!({ "action": "read:things" }),
        )
        .await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    let verification_id = verified.body["id"]
        .as_str()
        .expect("verification id")
        .to_owned();
    let member = app.user(&admin, "member").await;
    let webhook = app
        .post_as(
            "/api/v1/webhooks",
            &admin.token,
            json!({ "url": format!("https://{name}.example.com/hook"), "events": ["alert.opened"] }),
        )
        .await;
    assert_eq!(webhook.status, StatusCode::CREATED, "{}", webhook.body);
    let webhook_id = webhook.body["id"].as_str().expect("webhook id").to_owned();
    let ping = app
        .post_as(
            &format!("/api/v1/webhooks/{webhook_id}/ping"),
            &admin.token,
            json!({}),
        )
        .await;
    let delivery_id = ping.body["id"].as_str().expect("delivery id").to_owned();
    let mut tx = app.pool.begin().await.expect("tx");
    let opened = aim_store::alerts::open(
        &mut tx,
        admin.organization_id,
        &[aim_store::alerts::NewAlert {
            agent_id: agent_id.parse().expect("uuid"),
            rule: aim_trust::AlertRule::ScoreBelow,
            message: format!("{name} alert"),
            details: json!({}),
        }],
        chrono::Utc::now(),
    )
    .await
    .expect("alert");
    tx.commit().await.expect("commit");
    let alert_id = opened[0].id.to_string();
    let policy = app
        .call(
            Method::PUT,
            "/api/v1/trust-policy",
            Some(&admin.token),
            Some(json!({ "step": 0.05, "denied_actions": [format!("{name}:*")] })),
        )
        .await;
    assert_eq!(policy.status, StatusCode::OK, "{}", policy.body);
    Tenant {
        admin,
        agent_id,
        agent_name,
        key,
        key_id,
        verification_id,
        webhook_id,
        delivery_id,
        alert_id,
        member,
    }
}

/// A body that passes validation where one is needed, so a refusal is about ownership.
fn body_for(method: &Method, path: &str) -> Option<String> {
    let body = match (method.as_str(), path) {
        ("PUT", p) if p.ends_with("/trust-score") => json!({ "trust_score": 0.9, "reason": "x" }),
        ("POST", p) if p.ends_with("/verify-action") => json!({ "action": "read:x" }),
        ("PATCH", p) if p.starts_with("/api/v1/users/") => json!({ "is_active": false }),
        ("PATCH", p) if p.starts_with("/api/v1/webhooks/") => json!({ "description": "renamed" }),
        ("POST", p) if p.ends_with("/ping") || p.ends_with("/redeliver") => return None,
        ("POST", p) if p.starts_with("/api/v1/alerts/") => return None,
        ("PATCH", _) => json!({ "name": "renamed" }),
        ("POST", "/api/v1/users") => {
            json!({ "email": "intruder@example.test", "name": "i", "role": "viewer", "password": PASSWORD })
        }
        ("POST", "/api/v1/agents") => json!({ "name": "intruder-agent" }),
        ("POST", "/api/v1/auth/login") => {
            json!({ "email": "nobody@example.test", "password": "wrong password" })
        }
        ("POST", "/api/v1/auth/refresh" | "/api/v1/auth/logout") => json!({ "refresh_token": "x" }),
        ("GET" | "DELETE", _) => return None,
        _ => json!({}),
    };
    Some(body.to_string())
}

#[tokio::test]
async fn no_endpoint_lets_one_organization_reach_anothers_data() {
    let app = TestApp::spawn().await;
    let victim = tenant(&app, "victim").await;
    let intruder = tenant(&app, "intruder").await;
    let document = app.get("/api/v1/openapi.json").await.body;
    let paths = document["paths"].as_object().expect("paths");
    let secrets = [
        victim.agent_id.as_str(),
        victim.agent_name.as_str(),
        victim.key.as_str(),
        victim.key_id.as_str(),
        victim.verification_id.as_str(),
        victim.webhook_id.as_str(),
        victim.delivery_id.as_str(),
        victim.alert_id.as_str(),
        "victim alert",
        "victim.example.com",
        victim.member.email.as_str(),
        victim.admin.email.as_str(),
    ];
    let victim_org = victim.admin.organization_id.to_string();
    let mut calls = 0;
    for (path, operations) in paths {
        for method in operations.as_object().expect("operations").keys() {
            let method: Method = method.to_uppercase().parse().expect("method");
            let member_id = victim.member.id.to_string();
            let id = if path.starts_with("/api/v1/users/") {
                &member_id
            } else if path.starts_with("/api/v1/verifications/") {
                &victim.verification_id
            } else if path.starts_with("/api/v1/webhooks/") {
                &victim.webhook_id
            } else if path.starts_with("/api/v1/alerts/") {
                &victim.alert_id
            } else {
                &victim.agent_id
            };
            let uri = path
                .replace("{key_id}", &victim.key_id)
                .replace("{delivery_id}", &victim.delivery_id)
                .replace("{id}", id);
            let uri = if path.ends_with("/export") {
                format!("{uri}?format=ndjson")
            } else {
                uri
            };
            let credentials = [
                format!("Bearer {}", intruder.admin.token),
                format!("Bearer {}", intruder.member.token),
                format!("Bearer {}", intruder.key),
            ];
            for credential in &credentials {
                calls += 1;
                let (status, body) = raw(
                    &app,
                    method.clone(),
                    &uri,
                    &[("authorization", credential)],
                    body_for(&method, path),
                )
                .await;
                assert!(
                    status.as_u16() < 500,
                    "{method} {uri} answered {status}: {body}"
                );
                if path.contains('{') {
                    assert!(
                        matches!(status.as_u16(), 401 | 403 | 404),
                        "{method} {uri} reached another organization's resource: {status} {body}"
                    );
                }
                for secret in secrets {
                    assert!(
                        !body.contains(secret),
                        "{method} {uri} leaked {secret}: {body}"
                    );
                }
                // The victim's organization id may appear nowhere but in its own answers.
                assert!(
                    !body.contains(&victim_org),
                    "{method} {uri} leaked the other organization's id: {body}"
                );
            }
        }
    }
    assert!(
        calls > 60,
        "only {calls} calls: is the OpenAPI document complete?"
    );

    // And the victim still has everything, untouched.
    let agent = app
        .get_as(
            &format!("/api/v1/agents/{}", victim.agent_id),
            &victim.admin.token,
        )
        .await;
    assert_eq!(agent.status, StatusCode::OK);
    assert_eq!(agent.body["name"], victim.agent_name.as_str());
    let still_works = app
        .get_as(&format!("/api/v1/agents/{}", victim.agent_id), &victim.key)
        .await;
    assert_eq!(still_works.status, StatusCode::OK);
    // The intruder's admin replaced a trust policy: its own.
    let policy = app
        .get_as("/api/v1/trust-policy", &victim.admin.token)
        .await;
    assert_eq!(policy.body["denied_actions"], json!(["victim:*"]));
    for (webhook, alert) in [(&victim.webhook_id, &victim.alert_id)] {
        let shown = app
            .get_as(&format!("/api/v1/webhooks/{webhook}"), &victim.admin.token)
            .await;
        assert_eq!(shown.body["description"], "", "{}", shown.body);
        let alerts = app.get_as("/api/v1/alerts", &victim.admin.token).await;
        assert_eq!(alerts.body["alerts"][0]["id"], alert.as_str());
        assert_eq!(alerts.body["alerts"][0]["status"], "open");
    }
}

fn forge(
    header: &Value,
    claims: &Value,
    secret: &[u8],
    algorithm: jsonwebtoken::Algorithm,
) -> String {
    let mut jwt_header = jsonwebtoken::Header::new(algorithm);
    if let Some(typ) = header["typ"].as_str() {
        jwt_header.typ = Some(typ.to_owned());
    }
    jsonwebtoken::encode(
        &jwt_header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .expect("encode")
}

#[tokio::test]
async fn forged_expired_and_misused_tokens_are_401() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let now = chrono::Utc::now().timestamp();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    // The admin's live session, from the token login issued.
    let session: Value = admin
        .token
        .split('.')
        .nth(1)
        .and_then(|payload| b64.decode(payload).ok())
        .and_then(|json| serde_json::from_slice(&json).ok())
        .expect("the token's claims");
    let claims = |overrides: Value| {
        let mut c = json!({
            "sub": admin.id, "org": admin.organization_id, "role": "admin", "typ": "access",
            "jti": uuid::Uuid::now_v7(), "sid": session["sid"], "iat": now, "exp": now + 600,
            "iss": "aim"
        });
        for (k, v) in overrides.as_object().expect("object") {
            c[k] = v.clone();
        }
        c
    };
    let secret = JWT_SECRET.as_bytes();
    let hs256 = jsonwebtoken::Algorithm::HS256;
    // The control: a token made like the service makes them is accepted.
    let good = forge(&json!({}), &claims(json!({})), secret, hs256);
    assert_eq!(
        app.get_as("/api/v1/agents", &good).await.status,
        StatusCode::OK
    );

    let unsigned = format!(
        "{}.{}.",
        b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(claims(json!({})).to_string())
    );
    let tampered = {
        let parts: Vec<&str> = good.split('.').collect();
        let payload = claims(json!({ "org": uuid::Uuid::now_v7() })).to_string();
        format!("{}.{}.{}", parts[0], b64.encode(payload), parts[2])
    };
    let refresh = app.login(&admin.email, PASSWORD).await.body["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    let cases = [
        ("alg none", unsigned),
        (
            "HS512 with the right secret",
            forge(
                &json!({}),
                &claims(json!({})),
                secret,
                jsonwebtoken::Algorithm::HS512,
            ),
        ),
        (
            "wrong secret",
            forge(
                &json!({}),
                &claims(json!({})),
                b"another-secret-another-secret-another",
                hs256,
            ),
        ),
        (
            "expired",
            forge(
                &json!({}),
                &claims(json!({ "iat": now - 7_200, "exp": now - 3_600 })),
                secret,
                hs256,
            ),
        ),
        (
            "wrong issuer",
            forge(
                &json!({}),
                &claims(json!({ "iss": "someone-else" })),
                secret,
                hs256,
            ),
        ),
        ("tampered payload", tampered),
        ("refresh token as access token", refresh),
        (
            "refresh-typed token",
            forge(
                &json!({}),
                &claims(json!({ "typ": "refresh" })),
                secret,
                hs256,
            ),
        ),
        ("missing exp", {
            let mut c = claims(json!({}));
            c.as_object_mut().expect("object").remove("exp");
            forge(&json!({}), &c, secret, hs256)
        }),
        ("not a JWT", "not.a.jwt".to_owned()),
        (
            "a session that does not exist",
            forge(
                &json!({}),
                &claims(json!({ "sid": uuid::Uuid::now_v7() })),
                secret,
                hs256,
            ),
        ),
        ("no session (a token from before sessions)", {
            let mut c = claims(json!({}));
            c.as_object_mut().expect("object").remove("sid");
            forge(&json!({}), &c, secret, hs256)
        }),
    ];
    for (what, token) in cases {
        let response = app.get_as("/api/v1/agents", &token).await;
        assert_eq!(
            response.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            response.body
        );
        assert_eq!(response.error_code(), "unauthorized", "{what}");
    }
}

#[tokio::test]
async fn every_parameter_out_of_range_is_a_400_naming_the_range() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let agent = app.agent(&admin.token, "a").await;
    let id = agent["id"].as_str().expect("id");
    let far = (chrono::Utc::now() - chrono::Duration::days(400)).format("%Y-%m-%dT%H:%M:%SZ");
    let cases = [
        "/api/v1/analytics/usage?days=0".to_owned(),
        "/api/v1/analytics/usage?days=366".to_owned(),
        "/api/v1/analytics/usage?period=decade".to_owned(),
        "/api/v1/analytics/endpoints?limit=0".to_owned(),
        "/api/v1/analytics/endpoints?limit=101".to_owned(),
        "/api/v1/analytics/endpoints?period=decade".to_owned(),
        "/api/v1/analytics/timeseries?metric=bogus".to_owned(),
        "/api/v1/analytics/timeseries?metric=api_calls&interval=minute".to_owned(),
        format!("/api/v1/analytics/timeseries?metric=api_calls&interval=hour&from={far}"),
        "/api/v1/analytics/agents/activity?limit=0".to_owned(),
        "/api/v1/analytics/agents/activity?limit=101".to_owned(),
        "/api/v1/analytics/agents/activity?offset=-1".to_owned(),
        "/api/v1/analytics/agents/activity?days=366".to_owned(),
        format!("/api/v1/analytics/agents/{id}/activity?hours=0"),
        format!("/api/v1/analytics/agents/{id}/activity?hours=721"),
        "/api/v1/analytics/trust-score-trends?weeks=0".to_owned(),
        "/api/v1/analytics/trust-score-trends?weeks=53".to_owned(),
        "/api/v1/analytics/trends?period=months".to_owned(),
        "/api/v1/analytics/verification-activity?months=0".to_owned(),
        "/api/v1/analytics/verification-activity?months=25".to_owned(),
        "/api/v1/analytics/export?format=xml".to_owned(),
        format!("/api/v1/analytics/export?from={far}"),
        "/api/v1/analytics/usage?days=banana".to_owned(),
        "/api/v1/agents?limit=100000".to_owned(),
    ];
    for uri in cases {
        let (status, body) = raw(
            &app,
            Method::GET,
            &uri,
            &[("authorization", &format!("Bearer {}", admin.token))],
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        let body: Value = serde_json::from_str(&body).expect("a JSON error");
        assert!(body["error"]["code"].is_string(), "{uri}: {body}");
        assert!(body["error"]["message"].is_string(), "{uri}: {body}");
    }
}

#[tokio::test]
async fn an_oversized_body_is_a_json_413() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let name = "x".repeat(aim_api::MAX_BODY_BYTES + 1);
    let (status, body) = raw(
        &app,
        Method::POST,
        "/api/v1/agents",
        &[("authorization", &format!("Bearer {}", admin.token))],
        Some(json!({ "name": name }).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = serde_json::from_str(&body).expect("a JSON error");
    assert!(body["error"]["code"].is_string(), "{body}");
}

#[tokio::test]
async fn secrets_are_never_recorded_and_stored_only_as_hashes() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let agent = app.agent(&admin.token, "canary").await;
    let id = agent["id"].as_str().expect("id");
    let key = app.key(&admin.token, id).await;
    let canary = "canary-secret-7d41c2";
    // Secrets in a query string, a custom header and the credentials themselves.
    let (status, _) = raw(
        &app,
        Method::GET,
        &format!("/api/v1/agents/{id}?api_key={canary}&password={canary}"),
        &[
            ("authorization", &format!("Bearer {key}")),
            ("x-canary", canary),
        ],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = raw(
        &app,
        Method::GET,
        &format!("/api/v1/agents?token={canary}"),
        &[
            ("authorization", &format!("Bearer {}", admin.token)),
            ("user-agent", "ua"),
        ],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    app.drain().await;

    let rows: Vec<String> = sqlx::query_scalar("SELECT row_to_json(c)::text FROM api_calls c")
        .fetch_all(&app.pool)
        .await
        .expect("rows");
    assert!(rows.len() >= 4, "{rows:?}");
    for row in &rows {
        for secret in [canary, key.as_str(), admin.token.as_str(), PASSWORD] {
            assert!(!row.contains(secret), "a secret was recorded: {row}");
        }
    }
    // Stored only as hashes.
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT row_to_json(t)::text FROM (SELECT * FROM users) t \
         UNION ALL SELECT row_to_json(k)::text FROM api_keys k \
         UNION ALL SELECT row_to_json(r)::text FROM refresh_tokens r \
         UNION ALL SELECT row_to_json(a)::text FROM audit_events a",
    )
    .fetch_all(&app.pool)
    .await
    .expect("stored");
    for row in &stored {
        for secret in [
            key.as_str(),
            PASSWORD,
            admin.token.as_str(),
            admin.refresh_token.as_str(),
        ] {
            assert!(!row.contains(secret), "a secret is stored in clear: {row}");
        }
    }
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE email = $1")
        .bind(&admin.email)
        .fetch_one(&app.pool)
        .await
        .expect("hash");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
}

#[tokio::test]
async fn a_nul_character_in_any_text_input_is_a_4xx_not_a_500() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let agent = app.agent(&admin.token, "a").await;
    let id = agent["id"].as_str().expect("id");
    let bearer = format!("Bearer {}", admin.token);
    let cases: [(Method, String, Option<&str>); 7] = [
        (
            Method::POST,
            "/api/v1/agents".into(),
            Some(r#"{"name":"x\u0000y"}"#),
        ),
        (
            Method::POST,
            "/api/v1/agents".into(),
            Some(r#"{"name":"ok","metadata":{"k\u0000":1}}"#),
        ),
        (
            Method::POST,
            "/api/v1/auth/login".into(),
            Some(r#"{"email":"a\u0000@b","password":"x"}"#),
        ),
        (
            Method::GET,
            "/api/v1/audit-events?action=a%00b".into(),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/agents/{id}/verify-action"),
            Some(r#"{"action":"read","context":{"why":"a\u0000"}}"#),
        ),
        (
            Method::PATCH,
            format!("/api/v1/agents/{id}"),
            Some(r#"{"description":"\u0000"}"#),
        ),
        (Method::GET, format!("/api/v1/agents/{id}%00"), None),
    ];
    for (method, uri, body) in cases {
        let (status, reply) = raw(
            &app,
            method,
            &uri,
            &[("authorization", &bearer)],
            body.map(str::to_owned),
        )
        .await;
        assert!(status.is_client_error(), "{uri} {body:?}: {status} {reply}");
        let reply: Value = serde_json::from_str(&reply).expect("a JSON error");
        assert!(reply["error"]["code"].is_string(), "{uri}: {reply}");
    }
}

#[tokio::test]
async fn authorization_and_x_api_key_together_are_refused_as_ambiguous() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let agent = app.agent(&admin.token, "a").await;
    let key = app
        .key(&admin.token, agent["id"].as_str().expect("id"))
        .await;
    for (authorization, what) in [
        (
            "Bearer not-a-token".to_owned(),
            "an invalid token beside a valid key",
        ),
        (format!("Bearer {}", admin.token), "two valid credentials"),
        (
            "Basic dXNlcjpwYXNz".to_owned(),
            "another scheme beside a key",
        ),
    ] {
        let request = axum::http::Request::get("/api/v1/auth/me")
            .header("authorization", authorization)
            .header("x-api-key", &key)
            .body(axum::body::Body::empty())
            .expect("request");
        let response = app.request(request).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{what}");
        assert_eq!(response.error_code(), "ambiguous_credentials", "{what}");
    }
}

/// Every string input of every operation the document declares, driven from the document: each
/// query and path parameter, and each text property of each request body (and the keys and
/// values of its free-form objects) gets U+0000 in an otherwise valid request. Each must be a
/// 4xx with the envelope, never a 500.
#[tokio::test]
async fn a_nul_in_every_string_input_the_document_declares_is_a_4xx() {
    let app = TestApp::spawn().await;
    let world = crate::roles::World::new(&app).await;
    let doc = aim_api::openapi();
    let rows = crate::roles::table();
    let admin = 3;
    let mut tried = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("operations") {
            let method: Method = method.to_uppercase().parse().expect("method");
            let row = rows
                .iter()
                .find(|r| r.template == *path && r.method == method);
            let (uri, body) = match row {
                Some(row) => world.request(&app, row, admin).await,
                None => (path.clone(), unauthenticated_body(path)),
            };
            let credential = row.map(|_| world.admin.token.as_str());
            let mut cases: Vec<(String, String, Option<Value>)> = Vec::new();
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().expect("name");
                match parameter["in"].as_str() {
                    Some("query") => {
                        let sep = if uri.contains('?') { '&' } else { '?' };
                        cases.push((
                            format!("query {name}"),
                            format!("{uri}{sep}{name}=a%00b"),
                            body.clone(),
                        ));
                    }
                    Some("path") => {
                        let with_nul = path
                            .split('/')
                            .zip(uri.split('?').next().unwrap_or_default().split('/'))
                            .map(|(t, u)| {
                                if t == format!("{{{name}}}") {
                                    "a%00b"
                                } else {
                                    u
                                }
                            })
                            .collect::<Vec<_>>()
                            .join("/");
                        cases.push((format!("path {name}"), with_nul, body.clone()));
                    }
                    _ => {}
                }
            }
            if let Some(schema) = operation.pointer("/requestBody/content/application~1json/schema")
            {
                let schema = resolve(&doc, schema);
                for (name, property) in schema["properties"].as_object().into_iter().flatten() {
                    let property = resolve(&doc, property);
                    let types = property["type"].to_string();
                    let base = body.clone().unwrap_or_else(|| json!({}));
                    if types.contains("string") && property.get("enum").is_none() {
                        let mut with_nul = base.clone();
                        with_nul[name] = json!("a\u{0}b");
                        cases.push((format!("body {name}"), uri.clone(), Some(with_nul)));
                    }
                    if types.contains("object") {
                        let mut in_key = base.clone();
                        in_key[name] = json!({ "k\u{0}": 1 });
                        let mut in_value = base.clone();
                        in_value[name] = json!({ "k": ["v\u{0}"] });
                        cases.push((format!("body {name} key"), uri.clone(), Some(in_key)));
                        cases.push((format!("body {name} value"), uri.clone(), Some(in_value)));
                    }
                }
            }
            for (input, uri, body) in cases {
                tried += 1;
                let response = app.call(method.clone(), &uri, credential, body).await;
                assert!(
                    matches!(response.status.as_u16(), 400 | 422),
                    "{method} {path}, U+0000 in {input}: {} {}",
                    response.status,
                    response.body
                );
                response.error_code();
            }
        }
    }
    assert!(tried > 60, "only {tried} inputs tried");
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => doc
            .pointer(reference.trim_start_matches('#'))
            .expect("the reference resolves"),
        None => schema,
    }
}

/// Valid bodies of the operations that take no credentials.
fn unauthenticated_body(path: &str) -> Option<Value> {
    match path {
        "/api/v1/auth/login" => Some(json!({ "email": "a@b.test", "password": PASSWORD })),
        "/api/v1/auth/refresh" => Some(json!({ "refresh_token": "x" })),
        _ => None,
    }
}

/// JSON numbers at the edge of a double (PostgreSQL writes them back as long decimals) survive
/// the round trip through `jsonb`; they were 500s on read-back.
#[tokio::test]
async fn extreme_numbers_in_metadata_and_context_round_trip() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let metadata = json!({ "max": f64::MAX, "min": -f64::MAX, "tiny": 5e-324, "big": 1e300 });
    let created = app
        .post_as(
            "/api/v1/agents",
            &admin.token,
            json!({ "name": "x", "metadata": metadata }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["metadata"], metadata);
    let id = created.body["id"].as_str().expect("id");
    let verified = app
        .post_as(
            &format!("/api/v1/agents/{id}/verify-action"),
            &admin.token,
            json!({ "action": "read", "context": { "n": 1.797_693_134_862_315_5e308 } }),
        )
        .await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    let listed = app.get_as("/api/v1/verifications", &admin.token).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
}
