//! Analytics read latency against raw volume: calls over 30 days from 10 organizations and
//! 1,000 agents are loaded through the writer path (rollups included, past days' partitions
//! created first), then every analytics endpoint is called through the real router and its p50
//! and p99 measured — once after the first million calls, again after the rest.
//!
//! ```sh
//! cargo bench -p aim-api --bench analytics -- [total-calls] [requests-per-endpoint]
//! ```
//!
//! Defaults: 10,000,000 calls, 200 requests per endpoint. Uses the test harness's database
//! discovery (`DATABASE_URL`, else `127.0.0.1:5432`, else a throwaway cluster) and a database
//! of its own. Prints a Markdown table for `docs/benchmarks.md`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aim_api::AppState;
use aim_pipeline::{ApiCallEvent, Pipeline};
use aim_store::testing::TestDatabase;
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use secrecy::SecretString;
use tower::ServiceExt;
use uuid::Uuid;

const ORGANIZATIONS: usize = 10;
const AGENTS_PER_ORGANIZATION: usize = 100;
const DAYS: u64 = 30;
const PASSWORD: &str = "benchmark password 123";
const SECRET: &str = "benchmark-secret-of-at-least-thirty-two-bytes";

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

struct Tenant {
    id: Uuid,
    token: String,
    agents: Vec<Uuid>,
}

async fn call(
    router: &Router,
    method: Method,
    uri: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> (StatusCode, serde_json::Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    let body = match body {
        Some(json) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(json.to_string())
        }
        None => Body::empty(),
    };
    let response = router
        .clone()
        .oneshot(request.body(body).expect("request"))
        .await
        .expect("infallible");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

async fn tenants(router: &Router, pool: &aim_store::PgPool) -> Vec<Tenant> {
    let passwords = aim_api::auth::password::Passwords::new(2).expect("hasher");
    let mut tenants = Vec::new();
    for i in 0..ORGANIZATIONS {
        let email = format!("admin@org{i}.bench");
        aim_api::bootstrap::create(
            pool,
            &passwords,
            &format!("org{i}"),
            &email,
            Some(SecretString::from(PASSWORD.to_owned())),
        )
        .await
        .expect("organization");
        let login = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/auth/login")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                serde_json::json!({ "email": email, "password": PASSWORD }).to_string(),
            ))
            .expect("request");
        let response = router.clone().oneshot(login).await.expect("infallible");
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&bytes).expect("login JSON");
        let token = body["token"].as_str().expect("token").to_owned();
        let id = body["user"]["organization_id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("organization id");
        let mut agents = Vec::new();
        for a in 0..AGENTS_PER_ORGANIZATION {
            let (status, agent) = call(
                router,
                Method::POST,
                "/api/v1/agents",
                &token,
                Some(serde_json::json!({ "name": format!("agent-{a}") })),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED, "{agent}");
            agents.push(
                agent["id"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .expect("agent id"),
            );
        }
        tenants.push(Tenant { id, token, agents });
    }
    tenants
}

/// Hands `n` calls spread evenly over the last 30 days to the pipeline, as fast as it writes
/// them (the queue is never allowed to overflow), and waits until all are written.
async fn load(pipeline: &Pipeline, tenants: &[Tenant], n: u64, seed: u64) -> Duration {
    let routes: Vec<(Method, Arc<str>)> = [
        (Method::GET, "/api/v1/agents"),
        (Method::GET, "/api/v1/agents/{id}"),
        (Method::PUT, "/api/v1/agents/{id}"),
        (Method::POST, "/api/v1/agents/{id}/verify-action"),
        (Method::GET, "/api/v1/verifications/{id}"),
        (Method::POST, "/api/v1/verifications"),
        (Method::GET, "/api/v1/agents/{id}/api-keys"),
        (Method::GET, "<unmatched>"),
    ]
    .into_iter()
    .map(|(m, r)| (m, Arc::from(r)))
    .collect();
    let sink = pipeline.sink();
    let stats = pipeline.stats();
    let start_written = stats.snapshot().written;
    let mut rng = Lcg(seed);
    let end = SystemTime::now();
    let span = Duration::from_secs(DAYS * 86_400);
    let started = Instant::now();
    for i in 0..n {
        if i % 10_000 == 0 {
            // Keep at most ~100,000 events queued: a benchmark must not drop.
            loop {
                let s = stats.snapshot();
                if s.enqueued - s.written - s.dropped < 100_000 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        let tenant = &tenants[(rng.next() % tenants.len() as u64) as usize];
        let agent = tenant.agents[(rng.next() % tenant.agents.len() as u64) as usize];
        let (method, route) = &routes[(rng.next() % routes.len() as u64) as usize];
        let status = match rng.next() % 100 {
            0..=89 => 200,
            90..=96 => 404,
            97..=98 => 422,
            _ => 500,
        };
        let at = span.mul_f64(i as f64 / n as f64);
        sink.record(ApiCallEvent {
            id: Uuid::now_v7(),
            organization_id: tenant.id,
            agent_id: Some(agent),
            user_id: None,
            method: method.clone(),
            endpoint: Arc::clone(route),
            status_code: status,
            // 0.1–100 ms, log-uniform.
            duration_ms: 0.1 * 1000f64.powf((rng.next() % 10_000) as f64 / 10_000.0),
            request_size_bytes: rng.next() % 2_000,
            response_size_bytes: rng.next() % 20_000,
            user_agent: None,
            ip_address: None,
            error_message: (status >= 400).then_some("not_found"),
            request_id: None,
            called_at: end - span + at,
        });
    }
    while stats.snapshot().written < start_written + n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let snapshot = stats.snapshot();
    assert_eq!(snapshot.dropped, 0, "the load must not drop: {snapshot:?}");
    started.elapsed()
}

fn endpoints(tenant: &Tenant) -> Vec<(&'static str, String)> {
    let agent = tenant.agents[0];
    vec![
        (
            "usage?period=day",
            "/api/v1/analytics/usage?period=day".into(),
        ),
        (
            "usage?period=month",
            "/api/v1/analytics/usage?period=month".into(),
        ),
        ("usage?days=365", "/api/v1/analytics/usage?days=365".into()),
        (
            "endpoints?period=month",
            "/api/v1/analytics/endpoints?period=month".into(),
        ),
        (
            "timeseries hour (24 h)",
            "/api/v1/analytics/timeseries?metric=p95_latency&interval=hour".into(),
        ),
        (
            "timeseries day (30 d)",
            "/api/v1/analytics/timeseries?metric=api_calls&interval=day".into(),
        ),
        (
            "timeseries day, one agent",
            format!("/api/v1/analytics/timeseries?metric=errors&interval=day&agent_id={agent}"),
        ),
        (
            "agents/{id}/activity?hours=720",
            format!("/api/v1/analytics/agents/{agent}/activity?hours=720"),
        ),
        (
            "agents/activity?days=30",
            "/api/v1/analytics/agents/activity?days=30&limit=100".into(),
        ),
        ("dashboard", "/api/v1/analytics/dashboard".into()),
        (
            "trust-score-trends",
            "/api/v1/analytics/trust-score-trends?weeks=52".into(),
        ),
        (
            "verification-activity",
            "/api/v1/analytics/verification-activity?months=24".into(),
        ),
    ]
}

/// p50 and p99 in milliseconds of `requests` calls per endpoint, organizations taken in turn.
async fn measure(
    router: &Router,
    tenants: &[Tenant],
    requests: usize,
) -> Vec<(&'static str, f64, f64)> {
    let mut out = Vec::new();
    let names: Vec<&'static str> = endpoints(&tenants[0]).into_iter().map(|(n, _)| n).collect();
    for (index, name) in names.into_iter().enumerate() {
        let mut times = Vec::with_capacity(requests);
        for i in 0..requests + 10 {
            let tenant = &tenants[i % tenants.len()];
            let uri = endpoints(tenant).swap_remove(index).1;
            let started = Instant::now();
            let (status, body) = call(router, Method::GET, &uri, &tenant.token, None).await;
            let took = started.elapsed();
            assert_eq!(status, StatusCode::OK, "{uri}: {body}");
            if i >= 10 {
                times.push(took.as_secs_f64() * 1000.0);
            }
        }
        times.sort_by(f64::total_cmp);
        let at =
            |q: f64| times[((q * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1];
        out.push((name, at(0.50), at(0.99)));
    }
    out
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let numbers: Vec<u64> = std::env::args().filter_map(|a| a.parse().ok()).collect();
    let total = numbers.first().copied().unwrap_or(10_000_000);
    let requests = numbers.get(1).copied().unwrap_or(200) as usize;
    let first = (total / 10).max(1);

    let db = TestDatabase::create().await;
    aim_connect::install_crypto_provider();
    let database = db.settings();
    let pool = aim_store::connect_lazy(
        &database,
        &aim_store::PoolSettings {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
        },
    );
    let today = chrono::Utc::now().date_naive();
    aim_store::partitions::ensure_api_calls_partitions(
        &pool,
        today - chrono::Days::new(DAYS + 1),
        DAYS + 3,
    )
    .await
    .expect("partitions");
    let vars: HashMap<String, String> = [("AIM_ENVIRONMENT", "test"), ("JWT_SECRET", SECRET)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let config = aim_api::config::Config::from_vars(&vars).expect("config");
    // The router under test records nothing: the reads must not add to what they read.
    let state = AppState::new(
        pool.clone(),
        &config,
        &SecretString::from(SECRET.to_owned()),
        // Webhooks are not sent here; any well-formed key will do.
        &SecretString::from("00".repeat(32)),
        None,
    )
    .expect("state");
    let router = aim_api::app(state);
    eprintln!("creating {ORGANIZATIONS} organizations with {AGENTS_PER_ORGANIZATION} agents each…");
    let tenants = tenants(&router, &pool).await;

    let spool = tempfile::tempdir().expect("spool");
    let mut sizing = config.analytics.pipeline.clone();
    sizing.spool_dir = spool.path().to_path_buf();
    sizing.dead_letter_dir = spool.path().join("dead-letter");
    sizing.queue_capacity = 200_000;
    let writers = database.tokio_postgres().expect("TLS settings");
    let pipeline = Pipeline::start(sizing, writers).expect("pipeline");

    eprintln!("loading {first} calls…");
    let took_first = load(&pipeline, &tenants, first, 7).await;
    sqlx::query("ANALYZE")
        .execute(&pool)
        .await
        .expect("analyze");
    eprintln!("measuring at {first} calls…");
    let small = measure(&router, &tenants, requests).await;

    eprintln!("loading {} more calls…", total - first);
    let took_rest = load(&pipeline, &tenants, total - first, 11).await;
    sqlx::query("ANALYZE")
        .execute(&pool)
        .await
        .expect("analyze");
    eprintln!("measuring at {total} calls…");
    let large = measure(&router, &tenants, requests).await;
    pipeline
        .shutdown(tokio::time::Instant::now() + Duration::from_secs(60))
        .await;

    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM api_calls")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(rows as u64, total, "every call written");
    let rollup_rows: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM agent_activity_metrics) + (SELECT count(*) FROM agent_daily_metrics) \
              + (SELECT count(*) FROM endpoint_hourly_metrics) + (SELECT count(*) FROM endpoint_daily_metrics) \
              + (SELECT count(*) FROM organization_daily_metrics)",
    )
    .fetch_one(&pool)
    .await
    .expect("count");

    println!(
        "| endpoint | p50 at {first} | p99 at {first} | p50 at {total} | p99 at {total} | p50 ratio |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for ((name, p50_small, p99_small), (_, p50_large, p99_large)) in small.iter().zip(&large) {
        println!(
            "| `{name}` | {p50_small:.2} ms | {p99_small:.2} ms | {p50_large:.2} ms | {p99_large:.2} ms | {:.2} |",
            p50_large / p50_small
        );
    }
    println!();
    println!(
        "{requests} requests per endpoint and size, in-process through the router; {total} calls in api_calls, {rollup_rows} rollup rows"
    );
    println!(
        "ingest with rollups: first {first} at {:.0} calls/s, the rest at {:.0} calls/s",
        first as f64 / took_first.as_secs_f64(),
        (total - first) as f64 / took_rest.as_secs_f64()
    );
}
