//! `TestApp`: the service's router over a fresh database, optionally reached through a proxy
//! that a test can pause or cut to simulate an outage.

use aim_api::config::Environment;
use aim_api::{AppState, app};
use aim_store::PgPool;
use aim_store::testing::{FaultProxy, TestDatabase};
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use secrecy::SecretString;
use tower::ServiceExt;

pub struct TestApp {
    pub router: Router,
    /// The app's own pool, for checking what it wrote.
    pub pool: PgPool,
    /// Present when the app reaches its database through a proxy.
    pub proxy: Option<FaultProxy>,
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

fn state(pool: PgPool) -> AppState {
    AppState::new(
        pool,
        Environment::Test,
        SecretString::from("test-secret-of-at-least-thirty-two-bytes".to_owned()),
    )
}

impl TestApp {
    pub async fn spawn() -> Self {
        let db = TestDatabase::create().await;
        let pool = aim_store::connect_lazy(&db.url(), &settings()).expect("pool");
        Self {
            router: app(state(pool.clone())),
            pool,
            proxy: None,
        }
    }

    /// The app's pool goes through a [`FaultProxy`]; `self.proxy()` breaks it.
    pub async fn spawn_behind_proxy() -> Self {
        let db = TestDatabase::create().await;
        let proxy = db.proxy().await;
        let pool = aim_store::connect_lazy(&db.url_via(&proxy), &settings()).expect("pool");
        Self {
            router: app(state(pool.clone())),
            pool,
            proxy: Some(proxy),
        }
    }

    pub fn proxy(&self) -> &FaultProxy {
        self.proxy.as_ref().expect("spawned behind a proxy")
    }

    pub async fn request(&self, request: Request<Body>) -> TestResponse {
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
        let body = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "response body is not JSON ({e}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        TestResponse {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, uri: &str) -> TestResponse {
        self.request(Request::get(uri).body(Body::empty()).expect("request"))
            .await
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
