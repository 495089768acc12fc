//! `TestApp`: the service's router over a fresh database, optionally reached through a proxy
//! that a test can pause or cut to simulate an outage.

use std::collections::HashMap;
use std::sync::Arc;

use aim_api::config::Config;
use aim_api::{AppState, app, app_with_cors};
use aim_connect::DatabaseSettings;
use aim_pipeline::Pipeline;
use aim_store::PgPool;
use aim_store::testing::{FaultProxy, TestDatabase};
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use secrecy::SecretString;
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

pub const JWT_SECRET: &str = "test-secret-of-at-least-thirty-two-bytes";
/// The tests' webhook encryption key (64 hex digits).
pub const WEBHOOK_KEY: &str = "7f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
/// Every test user's password.
pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub router: Router,
    /// The router's state: for driving background work (webhook dispatch) from a test.
    pub state: AppState,
    /// The app's own pool, for checking what it wrote.
    pub pool: PgPool,
    /// Present when the app reaches its database through a proxy.
    pub proxy: Option<FaultProxy>,
    /// The analytics pipeline, unless the test turned it off.
    pub pipeline: Option<Arc<Pipeline>>,
    /// The database's own settings, for the check when the test ends.
    direct: DatabaseSettings,
    _spool: tempfile::TempDir,
}

pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: serde_json::Value,
}

fn settings() -> aim_store::PoolSettings {
    aim_store::PoolSettings {
        max_connections: 5,
        acquire_timeout: std::time::Duration::from_secs(1),
    }
}

pub fn config(overrides: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<String, String> =
        [("AIM_ENVIRONMENT", "test"), ("JWT_SECRET", JWT_SECRET)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    vars.extend(
        overrides
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    Config::from_vars(&vars).expect("test configuration")
}

/// The app's state with a running analytics pipeline writing to the same database.
fn state(
    pool: PgPool,
    config: &Config,
    database: &DatabaseSettings,
    spool: &std::path::Path,
) -> (AppState, Option<Arc<Pipeline>>) {
    let pipeline = config.analytics.enabled.then(|| {
        let mut sizing = config.analytics.pipeline.clone();
        sizing.spool_dir = spool.to_path_buf();
        sizing.dead_letter_dir = spool.join("dead-letter");
        sizing.flush_after = std::time::Duration::from_millis(20);
        let writers = database.tokio_postgres().expect("TLS settings");
        Arc::new(Pipeline::start(sizing, writers).expect("pipeline"))
    });
    let state = AppState::new(
        pool,
        config,
        &SecretString::from(JWT_SECRET.to_owned()),
        &SecretString::from(WEBHOOK_KEY.to_owned()),
        pipeline.clone(),
    )
    .expect("state");
    (state, pipeline)
}

/// A logged-in user of some organization.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub email: String,
    pub token: String,
    pub refresh_token: String,
}

/// `aim rollups verify` over every day with calls, and two days either side of today.
async fn assert_rollups_clean(database: &DatabaseSettings) {
    let client = database
        .tokio_postgres()
        .expect("TLS settings")
        .connect()
        .await
        .expect("connect");
    let today = chrono::Utc::now().date_naive();
    let range = client
        .query_one(
            "SELECT min(called_at)::date, max(called_at)::date FROM api_calls",
            &[],
        )
        .await
        .expect("range");
    let first: Option<chrono::NaiveDate> = range.get(0);
    let last: Option<chrono::NaiveDate> = range.get(1);
    let from = first.map_or(today, |d| d.min(today)) - chrono::Days::new(2);
    let to = last.map_or(today, |d| d.max(today)) + chrono::Days::new(2);
    let differences = aim_pipeline::rollup::verify::verify(&client, from, to)
        .await
        .expect("verify");
    assert!(
        differences.is_empty(),
        "rollups differ from api_calls:\n{}",
        differences
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Every test that ran the pipeline ends with the rollups checked against the raw rows, so they
/// are known clean after concurrent writers, outages and replays, not only where a test asks.
/// The check reads one snapshot, so batches still being written cannot make it flaky; it runs
/// on its own thread and runtime because `drop` cannot await.
impl Drop for TestApp {
    fn drop(&mut self) {
        if self.pipeline.is_none() || std::thread::panicking() {
            return;
        }
        let database = self.direct.clone();
        let checked = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(assert_rollups_clean(&database));
        })
        .join();
        if let Err(panic) = checked {
            std::panic::resume_unwind(panic);
        }
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// With configuration variables set, e.g. `[("AIM_AGENT_RATE_LIMIT_PER_S", "2")]`.
    pub async fn spawn_with(overrides: &[(&str, &str)]) -> Self {
        Self::spawn_on(&TestDatabase::create().await, overrides)
    }

    /// On a database the test prepared (migrated up or down as it needs), with configuration
    /// variables set.
    pub fn spawn_on(db: &TestDatabase, overrides: &[(&str, &str)]) -> Self {
        Self::spawn_on_settings(db.settings(), overrides)
    }

    /// On a migrated database named by its settings (a private cluster's, say).
    pub fn spawn_on_settings(database: DatabaseSettings, overrides: &[(&str, &str)]) -> Self {
        let pool = aim_store::connect_lazy(&database, &settings());
        let config = config(overrides);
        let spool = tempfile::tempdir().expect("spool");
        let (state, pipeline) = state(pool.clone(), &config, &database, spool.path());
        Self {
            router: app_with_cors(state.clone(), &config.http.cors_origins),
            state,
            pool,
            proxy: None,
            pipeline,
            direct: database,
            _spool: spool,
        }
    }

    /// The app's pool goes through a [`FaultProxy`]; `self.proxy()` breaks it.
    pub async fn spawn_behind_proxy() -> Self {
        Self::spawn_behind_proxy_with(&[]).await
    }

    /// [`TestApp::spawn_behind_proxy`] with configuration variables set.
    pub async fn spawn_behind_proxy_with(overrides: &[(&str, &str)]) -> Self {
        let db = TestDatabase::create().await;
        let proxy = db.proxy().await;
        let via = db.settings_via(&proxy);
        let pool = aim_store::connect_lazy(&via, &settings());
        let spool = tempfile::tempdir().expect("spool");
        let (state, pipeline) = state(pool.clone(), &config(overrides), &via, spool.path());
        Self {
            router: app(state.clone()),
            state,
            pool,
            proxy: Some(proxy),
            pipeline,
            direct: db.settings(),
            _spool: spool,
        }
    }

    /// Waits for `/health/ready` to answer 200: after an outage the service refuses requests
    /// that need the database until its breaker's probe (every 100 ms) reaches it again.
    pub async fn until_the_database_answers(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let ready = self.get("/health/ready").await;
            if ready.status == StatusCode::OK {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the service did not find the database again within 10 s: {}",
                ready.body
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Stops the pipeline after it wrote (or spooled) every event: what tests call instead of
    /// sleeping before they count rows.
    pub async fn drain(&self) -> aim_pipeline::StatsSnapshot {
        let pipeline = self.pipeline.as_ref().expect("analytics enabled");
        let left = pipeline
            .shutdown(tokio::time::Instant::now() + std::time::Duration::from_secs(20))
            .await;
        assert_eq!(left, 0, "events left in the queue after draining");
        self.assert_rollups_clean().await;
        pipeline.stats().snapshot()
    }

    /// `aim rollups verify` over every day with calls: the rollups must match the raw rows.
    pub async fn assert_rollups_clean(&self) {
        assert_rollups_clean(&self.direct).await;
    }

    pub fn proxy(&self) -> &FaultProxy {
        self.proxy.as_ref().expect("spawned behind a proxy")
    }

    /// Sends a request to the router; every response is checked against the OpenAPI document
    /// ([`crate::contract::check`]).
    pub async fn request(&self, request: Request<Body>) -> TestResponse {
        let method = request.method().clone();
        let uri = request.uri().to_string();
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let json = headers
            .get(header::CONTENT_TYPE)
            .is_none_or(|t| t.as_bytes().starts_with(b"application/json"));
        let body = if bytes.is_empty() {
            serde_json::Value::Null
        } else if !json {
            // An export's CSV or NDJSON, as text.
            serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "response body is not JSON ({e}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        crate::contract::check(&method, &uri, status, &body);
        TestResponse {
            status,
            headers,
            body,
        }
    }

    /// A GET whose body is not JSON (an export): status, content type, text.
    pub async fn get_text(&self, uri: &str, credential: &str) -> (StatusCode, String, String) {
        let request = Request::get(uri)
            .header(header::AUTHORIZATION, format!("Bearer {credential}"))
            .body(Body::empty())
            .expect("request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (
            status,
            content_type,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    pub async fn get(&self, uri: &str) -> TestResponse {
        self.request(Request::get(uri).body(Body::empty()).expect("request"))
            .await
    }

    /// A request with an optional bearer credential and an optional JSON body.
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        credential: Option<&str>,
        body: Option<Value>,
    ) -> TestResponse {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(credential) = credential {
            request = request.header(header::AUTHORIZATION, format!("Bearer {credential}"));
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        };
        self.request(request.expect("request")).await
    }

    pub async fn get_as(&self, uri: &str, credential: &str) -> TestResponse {
        self.call(Method::GET, uri, Some(credential), None).await
    }

    pub async fn post_as(&self, uri: &str, credential: &str, body: Value) -> TestResponse {
        self.call(Method::POST, uri, Some(credential), Some(body))
            .await
    }

    pub async fn patch_as(&self, uri: &str, credential: &str, body: Value) -> TestResponse {
        self.call(Method::PATCH, uri, Some(credential), Some(body))
            .await
    }

    pub async fn login(&self, email: &str, password: &str) -> TestResponse {
        self.call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({ "email": email, "password": password })),
        )
        .await
    }

    /// A new organization and its admin, logged in.
    pub async fn organization(&self, name: &str) -> TestUser {
        let email = format!("admin-{}@{name}.test", Uuid::now_v7().simple());
        let passwords = aim_api::auth::password::Passwords::new(2).expect("hasher");
        aim_api::bootstrap::create(
            &self.pool,
            &passwords,
            name,
            &email,
            Some(SecretString::from(PASSWORD.to_owned())),
        )
        .await
        .expect("bootstrap an organization");
        self.logged_in(&email).await
    }

    async fn logged_in(&self, email: &str) -> TestUser {
        let response = self.login(email, PASSWORD).await;
        assert_eq!(response.status, StatusCode::OK, "login: {}", response.body);
        let user = &response.body["user"];
        TestUser {
            id: user["id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("user id"),
            organization_id: user["organization_id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("organization id"),
            email: email.to_owned(),
            token: response.body["token"].as_str().expect("token").to_owned(),
            refresh_token: response.body["refresh_token"]
                .as_str()
                .expect("refresh")
                .to_owned(),
        }
    }

    /// A user with `role` in the admin's organization, logged in.
    pub async fn user(&self, admin: &TestUser, role: &str) -> TestUser {
        let email = format!("{role}-{}@example.test", Uuid::now_v7().simple());
        let created = self
            .post_as(
                "/api/v1/users",
                &admin.token,
                json!({ "email": email, "name": role, "role": role, "password": PASSWORD }),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        self.logged_in(&email).await
    }

    /// A new agent of the caller's organization; returns its JSON.
    pub async fn agent(&self, token: &str, name: &str) -> Value {
        let created = self
            .post_as("/api/v1/agents", token, json!({ "name": name }))
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        created.body
    }

    /// A new key for the agent; returns the key itself.
    pub async fn key(&self, token: &str, agent_id: &str) -> String {
        let created = self
            .post_as(
                &format!("/api/v1/agents/{agent_id}/api-keys"),
                token,
                json!({}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        created.body["api_key"]
            .as_str()
            .expect("api_key")
            .to_owned()
    }

    /// A new organization's admin, an agent's id and a key of that agent, used once so that
    /// its check is cached (what outage tests start from).
    pub async fn cached_key(&self) -> (TestUser, String, String) {
        let admin = self.organization("acme").await;
        let agent = self.agent(&admin.token, "a").await;
        let id = agent["id"].as_str().expect("id").to_owned();
        let key = self.key(&admin.token, &id).await;
        assert_eq!(
            self.get_as("/api/v1/auth/me", &key).await.status,
            StatusCode::OK
        );
        (admin, id, key)
    }
}

impl TestResponse {
    /// Asserts the error envelope and returns its code.
    pub fn error_code(&self) -> &str {
        let code = self.body["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error envelope in {}", self.body));
        assert!(
            self.body["error"]["message"].is_string(),
            "envelope without a message: {}",
            self.body
        );
        code
    }
}

/// A call of `agent` at `at`, handed to the pipeline as the request path would.
pub fn past_call(
    organization: uuid::Uuid,
    agent: uuid::Uuid,
    at: chrono::DateTime<chrono::Utc>,
    status: u16,
) -> aim_pipeline::ApiCallEvent {
    aim_pipeline::ApiCallEvent {
        id: uuid::Uuid::now_v7(),
        organization_id: organization,
        agent_id: Some(agent),
        user_id: None,
        method: axum::http::Method::GET,
        endpoint: std::sync::Arc::from("/api/v1/agents/{id}"),
        status_code: status,
        duration_ms: 10.0,
        request_size_bytes: 100,
        response_size_bytes: 1_000,
        user_agent: None,
        ip_address: None,
        error_message: None,
        request_id: None,
        called_at: at.into(),
    }
}
