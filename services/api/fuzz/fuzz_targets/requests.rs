//! Whatever a client sends, the API answers it without a 5xx, a panic or a non-JSON error.
//!
//! Each input picks one operation of the OpenAPI document, a caller (none, a garbage
//! credential, an admin's token, an agent's key), the ids put into its path (an agent that
//! exists, a random one, or fuzzer text), a query string and a body, and sends them through the
//! real router, whose handlers talk to a real, migrated PostgreSQL database (found as the tests
//! find one: `DATABASE_URL`, the server on 127.0.0.1:5432, or a throwaway cluster). The
//! analytics pipeline is off: recording is not what this target examines.
#![no_main]

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use aim_api::{AppState, Config};
use aim_store::testing::TestDatabase;
use arbitrary::Arbitrary;
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, header};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use tower::ServiceExt;

const JWT_SECRET: &str = "fuzzing-secret-of-at-least-thirty-two-bytes";
const PASSWORD: &str = "correct horse battery staple";

struct Fixture {
    runtime: tokio::runtime::Runtime,
    router: Router,
    operations: Vec<(Method, String)>,
    admin_token: String,
    agent_key: String,
    /// An agent of the admin's organization that paths may name (and the fuzzer may change).
    target_agent: String,
    /// Kept so the database outlives every input.
    _database: TestDatabase,
}

fn operations() -> Vec<(Method, String)> {
    let openapi = aim_api::openapi();
    let mut found = Vec::new();
    for (path, item) in openapi["paths"].as_object().into_iter().flatten() {
        for method in item.as_object().into_iter().flatten().map(|(m, _)| m) {
            if let Ok(method) = method.to_uppercase().parse::<Method>() {
                found.push((method, path.clone()));
            }
        }
    }
    assert!(
        found.len() > 20,
        "the OpenAPI document lists the operations"
    );
    found
}

async fn json(
    router: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: serde_json::Value,
) -> serde_json::Value {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::from(body.to_string())).expect("request"))
        .await
        .expect("infallible");
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    serde_json::from_slice(&bytes).expect("JSON")
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (router, database, admin_token, agent_key, target_agent) = runtime.block_on(async {
        let database = TestDatabase::create().await;
        let settings = aim_store::PoolSettings {
            max_connections: 4,
            acquire_timeout: Duration::from_secs(5),
        };
        let pool = aim_store::connect_lazy(&database.settings(), &settings);
        let vars: HashMap<String, String> = [
            ("AIM_ENVIRONMENT", "test"),
            ("JWT_SECRET", JWT_SECRET),
            ("AIM_ANALYTICS_ENABLED", "false"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let config = Config::from_vars(&vars).expect("configuration");
        let passwords = aim_api::auth::password::Passwords::new(1).expect("hasher");
        aim_api::bootstrap::create(
            &pool,
            &passwords,
            "Fuzz",
            "admin@fuzz.test",
            Some(SecretString::from(PASSWORD.to_owned())),
        )
        .await
        .expect("an organization");
        let state = AppState::new(
            pool,
            &config,
            &SecretString::from(JWT_SECRET.to_owned()),
            None,
        )
        .expect("state");
        let router = aim_api::app(state);
        let login = json(
            &router,
            Method::POST,
            "/api/v1/auth/login",
            None,
            serde_json::json!({ "email": "admin@fuzz.test", "password": PASSWORD }),
        )
        .await;
        let token = login["token"].as_str().expect("token").to_owned();
        let agent = |name: &'static str| {
            let router = router.clone();
            let token = token.clone();
            async move {
                let made = json(
                    &router,
                    Method::POST,
                    "/api/v1/agents",
                    Some(&token),
                    serde_json::json!({ "name": name }),
                )
                .await;
                made["id"].as_str().expect("agent id").to_owned()
            }
        };
        let caller = agent("caller").await;
        let target = agent("target").await;
        let key = json(
            &router,
            Method::POST,
            &format!("/api/v1/agents/{caller}/api-keys"),
            Some(&token),
            serde_json::json!({}),
        )
        .await;
        let key = key["api_key"].as_str().expect("key").to_owned();
        (router, database, token, key, target)
    });
    Fixture {
        runtime,
        router,
        operations: operations(),
        admin_token,
        agent_key,
        target_agent,
        _database: database,
    }
});

#[derive(Arbitrary, Debug)]
enum Caller {
    Nobody,
    Admin,
    AgentKey,
    Garbage(String),
}

#[derive(Arbitrary, Debug)]
enum Id {
    Target,
    Random,
    Text(String),
}

#[derive(Arbitrary, Debug)]
struct Call {
    operation: u16,
    caller: Caller,
    id: Id,
    query: String,
    body: Vec<u8>,
    json_body: bool,
}

fuzz_target!(|call: Call| {
    let fixture = &*FIXTURE;
    let (method, template) =
        &fixture.operations[usize::from(call.operation) % fixture.operations.len()];
    let id = match &call.id {
        Id::Target => fixture.target_agent.clone(),
        Id::Random => uuid::Uuid::new_v4().to_string(),
        Id::Text(text) => text.clone(),
    };
    // Every `{…}` segment of the template gets the chosen id.
    let mut path = String::new();
    let mut rest = template.as_str();
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        path.push_str(&rest[..open]);
        path.push_str(&id);
        rest = &rest[open + close + 1..];
    }
    path.push_str(rest);
    let uri = if call.query.is_empty() {
        path
    } else {
        format!("{path}?{}", call.query)
    };

    let mut request = Request::builder().method(method.clone()).uri(uri.as_str());
    match &call.caller {
        Caller::Nobody => {}
        Caller::Admin => {
            request = request.header(
                header::AUTHORIZATION,
                format!("Bearer {}", fixture.admin_token),
            );
        }
        Caller::AgentKey => request = request.header("x-api-key", fixture.agent_key.as_str()),
        Caller::Garbage(text) => request = request.header(header::AUTHORIZATION, text.as_str()),
    }
    if call.json_body {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    // Text a client could not send as a URI or header never reaches the server.
    let Ok(request) = request.body(Body::from(call.body)) else {
        return;
    };

    let (status, content_type, body) = fixture.runtime.block_on(async {
        let response = fixture
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.as_bytes().to_vec());
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, content_type, body)
    });
    assert!(
        !status.is_server_error(),
        "{method} {uri} answered {status}: {}",
        String::from_utf8_lossy(&body)
    );
    if status.is_client_error() {
        assert_eq!(
            content_type.as_deref(),
            Some(&b"application/json"[..]),
            "{method} {uri}"
        );
        let error: serde_json::Value = serde_json::from_slice(&body).expect("a JSON error body");
        assert!(
            error["error"]["code"].is_string(),
            "{method} {uri}: {error}"
        );
    }
});
