//! The dashboard in a real browser: headless Chromium driven over the DevTools protocol, against
//! the real router served on a loopback port, with known traffic made through the API.
//!
//! Chromium comes from Debian's `chromium` package; `.ci/run` installs it and sets
//! `AIM_REQUIRE_CHROMIUM=1`, so in CI a missing browser fails the test instead of skipping it.
//! The test saves `docs/img/dashboard.png`, the screenshot the README shows.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::cdp::browser_protocol::network::{
    EventLoadingFailed, EventLoadingFinished, EventRequestWillBeSent, GetResponseBodyParams,
    RequestId,
};
use chromiumoxide::page::{Page, ScreenshotParams};
use futures_util::StreamExt;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{PASSWORD, TestApp, TestUser};

fn chromium() -> Option<PathBuf> {
    let candidates = ["chromium", "chromium-browser", "google-chrome"];
    let found = std::env::var_os("CHROMIUM").map(PathBuf::from).or_else(|| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .flat_map(|dir| candidates.iter().map(move |name| dir.join(name)))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("AIM_REQUIRE_CHROMIUM").is_none(),
            "Chromium is required here: apt-get install chromium"
        );
        eprintln!(
            "Chromium is not installed (apt-get install chromium): the browser test is skipped"
        );
    }
    found
}

/// The router on a loopback port, as `aim serve` runs it.
async fn listen(app: &TestApp) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let service = app
        .router
        .clone()
        .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await });
    address
}

/// Requests the page sent, by DevTools request id: method and URL.
type Sent = Arc<Mutex<BTreeMap<String, (String, String)>>>;
/// DevTools ids of the requests that ended, answered or not.
type Ended = Arc<Mutex<std::collections::HashSet<String>>>;

struct Chromium {
    browser: Browser,
    page: Page,
    sent: Sent,
    ended: Ended,
    _profile: tempfile::TempDir,
}

impl Chromium {
    async fn launch(executable: PathBuf) -> Self {
        let profile = tempfile::tempdir().expect("profile directory");
        let config = BrowserConfig::builder()
            .chrome_executable(executable)
            .new_headless_mode()
            .no_sandbox()
            .user_data_dir(profile.path())
            .window_size(1280, 900)
            .viewport(None)
            .arg("--disable-gpu")
            .arg("--disable-dev-shm-usage")
            .launch_timeout(Duration::from_secs(30))
            .build()
            .expect("browser configuration");
        let (browser, mut handler) = Browser::launch(config).await.expect("launch Chromium");
        tokio::spawn(async move { while handler.next().await.is_some() {} });
        let page = browser.new_page("about:blank").await.expect("a page");
        let sent: Sent = Arc::default();
        let mut requests = page
            .event_listener::<EventRequestWillBeSent>()
            .await
            .expect("request events");
        let log = Arc::clone(&sent);
        tokio::spawn(async move {
            while let Some(event) = requests.next().await {
                log.lock().expect("request log").insert(
                    event.request_id.inner().clone(),
                    (event.request.method.clone(), event.request.url.clone()),
                );
            }
        });
        let ended: Ended = Arc::default();
        let mut finished = page
            .event_listener::<EventLoadingFinished>()
            .await
            .expect("finished events");
        let log = Arc::clone(&ended);
        tokio::spawn(async move {
            while let Some(event) = finished.next().await {
                let id = event.request_id.inner().clone();
                log.lock().expect("ended log").insert(id);
            }
        });
        let mut failed = page
            .event_listener::<EventLoadingFailed>()
            .await
            .expect("failed events");
        let log = Arc::clone(&ended);
        tokio::spawn(async move {
            while let Some(event) = failed.next().await {
                let id = event.request_id.inner().clone();
                log.lock().expect("ended log").insert(id);
            }
        });
        Self {
            browser,
            page,
            sent,
            ended,
            _profile: profile,
        }
    }

    async fn eval(&self, expression: &str) -> Value {
        self.page
            .evaluate(expression)
            .await
            .unwrap_or_else(|e| panic!("evaluate {expression}: {e}"))
            .value()
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Waits until `expression` is true in the page.
    async fn until(&self, what: &str, expression: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.eval(expression).await == Value::Bool(true) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Types into the login form and submits it with Enter: signing in needs no mouse.
    async fn sign_in_with(&self, email: &str, password: &str) {
        self.until("the login form", "!document.getElementById('login').hidden")
            .await;
        assert_eq!(
            self.eval("document.activeElement && document.activeElement.id")
                .await,
            json!("email"),
            "the login form puts the focus on its first field"
        );
        let field = self.page.find_element("#email").await.expect("email field");
        field.click().await.expect("click");
        field.type_str(email).await.expect("type the email");
        let field = self.page.find_element("#password").await.expect("password");
        field.click().await.expect("click");
        field.type_str(password).await.expect("type the password");
        field.press_key("Enter").await.expect("submit");
    }

    async fn sign_in(&self, email: &str) {
        self.sign_in_with(email, PASSWORD).await;
    }

    /// The body of the last response the page got from a URL containing `needle`.
    async fn response(&self, needle: &str) -> Value {
        let id = {
            let sent = self.sent.lock().expect("request log");
            sent.iter()
                .filter(|(_, (_, url))| url.contains(needle))
                .map(|(id, _)| id.clone())
                .max_by_key(|id| {
                    // DevTools ids are "<process>.<sequence>": the newest has the highest.
                    id.rsplit('.').next().and_then(|n| n.parse::<u64>().ok())
                })
                .unwrap_or_else(|| panic!("the page never requested {needle}"))
        };
        let body = self
            .page
            .execute(GetResponseBodyParams::new(RequestId::new(id)))
            .await
            .expect("response body");
        serde_json::from_str(&body.body).expect("a JSON body")
    }

    /// API calls the page made that the pipeline records: everything under `/api/v1/` but the
    /// login itself, which has no caller yet. Waits first until every request the page sent
    /// has ended: the page does not wait for its sign-out call, and closing the browser before
    /// the server answered it would cut it off.
    async fn recorded_calls(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let pending = {
                let ended = self.ended.lock().expect("ended log");
                self.sent
                    .lock()
                    .expect("request log")
                    .keys()
                    .filter(|id| !ended.contains(*id))
                    .count()
            };
            if pending == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{pending} requests of the page never ended"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.sent
            .lock()
            .expect("request log")
            .values()
            .filter(|(_, url)| url.contains("/api/v1/") && !url.contains("/api/v1/auth/login"))
            .count()
    }

    async fn close(mut self) {
        self.browser.close().await.expect("close Chromium");
        let _ = self.browser.wait().await;
    }
}

/// Known traffic through the API: per agent `(name, ok calls, failed calls)`, and a
/// verification by each agent that made calls. Setting an agent up takes three calls of the
/// admin's: create it, set its trust score, give it a key.
async fn traffic(app: &TestApp, admin: &TestUser, agents: &[(&str, usize, usize)]) -> Vec<Value> {
    let mut created = Vec::new();
    for (i, (name, ok, failed)) in agents.iter().enumerate() {
        let agent = app.agent(&admin.token, name).await;
        let id = agent["id"].as_str().expect("id").to_owned();
        let score = 0.55 + 0.1 * i as f64;
        let changed = app
            .call(
                axum::http::Method::PUT,
                &format!("/api/v1/agents/{id}/trust-score"),
                Some(&admin.token),
                Some(json!({ "trust_score": score, "reason": "reviewed" })),
            )
            .await;
        assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
        let key = app.key(&admin.token, &id).await;
        for _ in 0..*ok {
            let me = app.get_as("/api/v1/auth/me", &key).await;
            assert_eq!(me.status, StatusCode::OK);
        }
        for _ in 0..*failed {
            let missing = app
                .get_as(&format!("/api/v1/agents/{}", Uuid::now_v7()), &key)
                .await;
            assert!(missing.status.is_client_error(), "{}", missing.status);
        }
        if *ok == 0 {
            created.push(agent);
            continue;
        }
        let verified = app
            .post_as(
                &format!("/api/v1/agents/{id}/verify-action"),
                &key,
                json!({ "action": "read", "resource": "reports" }),
            )
            .await;
        assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
        created.push(agent);
    }
    created
}

/// An agent's own calls in [`traffic`].
fn calls_of(ok: usize, failed: usize) -> i64 {
    (ok + failed + usize::from(ok > 0)) as i64
}

async fn rows(app: &TestApp, organization: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM api_calls WHERE organization_id = $1")
        .bind(organization)
        .fetch_one(&app.pool)
        .await
        .expect("count calls")
}

async fn wait_for_rows(app: &TestApp, organization: Uuid, expected: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while rows(app, organization).await < expected {
        assert!(Instant::now() < deadline, "the calls were never written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn number(text: &Value) -> f64 {
    text.as_str()
        .expect("text")
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.')
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {text}"))
}

const TILES: &str = "JSON.stringify(Object.fromEntries([...document.querySelectorAll('[data-tile]')]\
    .map(e => [e.dataset.tile, {value: Number(e.dataset.value), text: e.firstChild.textContent}])))";

const AGENT_ROWS: &str = "JSON.stringify(Object.fromEntries([...document.querySelectorAll('[data-agent-row]')]\
    .map(r => [r.dataset.agentRow, Object.fromEntries([...r.querySelectorAll('[data-col]')]\
    .map(c => [c.dataset.col, c.textContent]))])))";

const ENDPOINT_ROWS: &str = "JSON.stringify(Object.fromEntries([...document.querySelectorAll('[data-endpoint]')]\
    .map(r => [r.dataset.endpoint, Object.fromEntries([...r.querySelectorAll('[data-col]')]\
    .map(c => [c.dataset.col, c.textContent]))])))";

/// Every form field has a label, every chart is an image with a title and its numbers as a
/// table, and every control can take the keyboard's focus.
const ACCESSIBLE: &str = "(() => {
    const fields = [...document.querySelectorAll('input, select')];
    const charts = [...document.querySelectorAll('.chart svg')];
    return fields.every(f => f.labels.length > 0)
        && charts.length >= 4
        && charts.every(c => c.getAttribute('role') === 'img' && c.querySelector('title')
            && c.closest('.chart').querySelector('details table'))
        && [...document.querySelectorAll('button')].every(b => b.tabIndex >= 0);
})()";

/// The lowest WCAG contrast ratio of any visible text against its background, and where.
const LOWEST_CONTRAST: &str = "(() => {
    const channel = c => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    const rgb = s => (s.match(/[\\d.]+/g) || []).map(Number);
    const luminance = ([r, g, b]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
    const background = el => {
        for (; el; el = el.parentElement) {
            const c = rgb(getComputedStyle(el).backgroundColor);
            if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
        }
        return [255, 255, 255];
    };
    let lowest = { ratio: 21, where: '' };
    for (const el of document.querySelectorAll('body *')) {
        const text = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
        if (!text || !el.getClientRects().length || el.closest('[hidden]')) continue;
        const style = getComputedStyle(el);
        const fg = rgb(style.color).slice(0, 3);
        const [a, b] = [luminance(fg), luminance(background(el))].sort((x, y) => y - x);
        const ratio = (a + 0.05) / (b + 0.05);
        if (ratio < lowest.ratio) lowest = { ratio, where: el.tagName + ' ' + el.textContent.slice(0, 40) };
    }
    return JSON.stringify(lowest);
})()";

async fn parsed(chromium: &Chromium, expression: &str) -> Value {
    let text = chromium.eval(expression).await;
    serde_json::from_str(text.as_str().expect("JSON text")).expect("JSON")
}

#[tokio::test]
async fn a_user_signs_in_and_sees_the_organizations_real_numbers() {
    let Some(executable) = chromium() else { return };
    let app = TestApp::spawn().await;
    let address = listen(&app).await;
    let admin = app.organization("Dashboard").await;
    let other = app.organization("Elsewhere").await;

    // Known traffic: three agents of this organization, one of another that must not show.
    let plan = [
        ("ingest-bot", 40, 0),
        ("report-writer", 25, 5),
        ("idle-agent", 0, 0),
    ];
    let agents = traffic(&app, &admin, &plan).await;
    traffic(&app, &other, &[("outsider", 30, 0)]).await;
    let known: i64 = plan
        .iter()
        .map(|(_, ok, failed)| calls_of(*ok, *failed) + 3)
        .sum();
    wait_for_rows(&app, admin.organization_id, known).await;

    let chromium = Chromium::launch(executable).await;
    chromium
        .page
        .goto(format!("http://{address}/"))
        .await
        .expect("open the dashboard");
    assert_eq!(
        chromium.eval("location.pathname").await,
        json!("/dashboard"),
        "/ redirects to the dashboard"
    );
    chromium.sign_in(&admin.email).await;
    chromium
        .until("the first load", "document.body.dataset.loaded === '1'")
        .await;
    assert_eq!(
        chromium.eval("location.href.includes('token')").await,
        json!(false),
        "the token stays out of the URL"
    );
    assert_eq!(
        chromium.eval(ACCESSIBLE).await,
        json!(true),
        "labels, chart titles and data tables"
    );

    let contrast = parsed(&chromium, LOWEST_CONTRAST).await;
    assert!(
        contrast["ratio"].as_f64().expect("ratio") >= 4.5,
        "text below WCAG AA contrast: {contrast}"
    );

    // The tiles show exactly what the API answered the page.
    let usage = chromium.response("/analytics/usage").await;
    let tiles = parsed(&chromium, TILES).await;
    for key in [
        "api_calls",
        "error_rate",
        "p95_response_time_ms",
        "active_agents",
        "uptime",
    ] {
        let api = usage[key].as_f64().expect("a number");
        assert_eq!(tiles[key]["value"].as_f64(), Some(api), "tile {key}");
        let shown = number(&tiles[key]["text"]);
        assert!(
            (shown - api).abs() < 0.051,
            "tile {key} shows {shown}, API {api}"
        );
    }
    // The page's own calls may already count, so the total is at least the known traffic.
    let calls = usage["api_calls"].as_i64().expect("calls");
    assert!(calls >= known, "{calls} calls shown, {known} made");
    assert_eq!(usage["active_agents"], json!(2), "two agents made calls");
    assert_eq!(usage["total_agents"], json!(3));
    assert!(
        chromium
            .eval("document.getElementById('empty').hidden")
            .await
            == json!(true),
        "no empty-state notice with traffic"
    );

    // The agents table: each agent's calls and errors, as made.
    let rows_shown = parsed(&chromium, AGENT_ROWS).await;
    for (agent, (name, ok, failed)) in agents.iter().zip(plan) {
        let id = agent["id"].as_str().expect("id");
        let row = &rows_shown[id];
        assert_eq!(row["name"], json!(name));
        assert_eq!(
            number(&row["api_calls"]),
            calls_of(ok, failed) as f64,
            "{name} calls"
        );
        assert_eq!(number(&row["errors"]), failed as f64, "{name} errors");
    }
    assert_eq!(
        rows_shown.as_object().map(|rows| rows.len()),
        Some(plan.len()),
        "only this organization's agents"
    );
    // The busiest endpoints: the agents' calls by route, exactly.
    let endpoints = parsed(&chromium, ENDPOINT_ROWS).await;
    assert_eq!(number(&endpoints["GET /api/v1/auth/me"]["calls"]), 65.0);
    assert_eq!(number(&endpoints["GET /api/v1/agents/{id}"]["calls"]), 5.0);
    assert_eq!(number(&endpoints["GET /api/v1/agents/{id}"]["errors"]), 5.0);
    assert_eq!(
        number(&endpoints["GET /api/v1/agents/{id}"]["error_rate"]),
        100.0
    );

    // One agent's hourly activity.
    let busiest = agents[0]["id"].as_str().expect("id");
    chromium
        .page
        .find_element(format!("button[data-agent='{busiest}']"))
        .await
        .expect("the agent's button")
        .click()
        .await
        .expect("open the agent");
    chromium
        .until(
            "the agent's activity",
            "document.querySelector('[data-agent-total]') !== null",
        )
        .await;
    assert_eq!(
        chromium
            .eval("document.querySelector('[data-agent-total]').dataset.agentTotal")
            .await,
        json!("41")
    );
    // Its status, the five factors of its score and its score history with reasons.
    assert_eq!(
        chromium
            .eval("document.querySelectorAll('#agent-body [data-factor]').length")
            .await,
        json!(5)
    );
    assert!(
        chromium
            .eval("document.querySelector('[data-agent-status]').dataset.agentStatus")
            .await
            .is_string()
    );
    assert!(
        chromium
            .eval("document.querySelectorAll('#agent-body [data-history]').length")
            .await
            .as_u64()
            .is_some_and(|n| n >= 1)
    );
    assert_eq!(
        chromium.eval("document.activeElement.id").await,
        json!("agent-title"),
        "opening an agent moves the focus to it"
    );

    let screenshot = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/img/dashboard.png");
    std::fs::create_dir_all(screenshot.parent().expect("docs/img")).expect("docs/img");
    chromium
        .page
        .save_screenshot(
            ScreenshotParams::builder().full_page(true).build(),
            &screenshot,
        )
        .await
        .expect("save the screenshot");

    // Another period: the page loads again, hourly.
    chromium
        .eval("const p = document.getElementById('period'); p.value = 'day'; p.dispatchEvent(new Event('change')); true")
        .await;
    chromium
        .until("the day's load", "document.body.dataset.loaded === '2'")
        .await;
    let summary = chromium
        .eval("document.querySelector('#calls-chart .summary').textContent")
        .await;
    assert!(
        summary
            .as_str()
            .is_some_and(|s| s.ends_with("per hour (UTC).")),
        "{summary}"
    );
    let day = chromium.response("/analytics/usage?period=day").await;
    let tiles = parsed(&chromium, TILES).await;
    assert_eq!(
        tiles["api_calls"]["value"].as_f64(),
        day["api_calls"].as_f64()
    );

    // On a phone's width the page reflows: nothing wider than the screen but the tables'
    // own scrolling areas, and the charts are redrawn to fit.
    chromium
        .page
        .execute(
            SetDeviceMetricsOverrideParams::builder()
                .width(390)
                .height(844)
                .device_scale_factor(2.0)
                .mobile(true)
                .build()
                .expect("phone metrics"),
        )
        .await
        .expect("a phone's screen");
    chromium
        .until(
            "the charts redrawn to the phone's width",
            "[...document.querySelectorAll('.chart svg')].every(s => s.getBoundingClientRect().width <= innerWidth)",
        )
        .await;
    assert_eq!(
        chromium
            .eval("document.documentElement.scrollWidth <= innerWidth")
            .await,
        json!(true),
        "the page fits a phone's width"
    );

    // The page's own requests are calls of the organization too, and nothing else was made.
    let page_calls = chromium.recorded_calls().await;
    chromium.close().await;
    app.drain().await;
    assert_eq!(
        rows(&app, admin.organization_id).await,
        known + page_calls as i64,
        "every call the page made is recorded, once"
    );
    assert_eq!(rows(&app, other.organization_id).await, calls_of(30, 0) + 3);
}

#[tokio::test]
async fn an_organization_without_traffic_sees_zeros_and_why() {
    let Some(executable) = chromium() else { return };
    let app = TestApp::spawn().await;
    let address = listen(&app).await;
    let admin = app.organization("Quiet").await;
    let busy = app.organization("Busy").await;
    traffic(&app, &busy, &[("busy-agent", 20, 3)]).await;

    let chromium = Chromium::launch(executable).await;
    chromium
        .page
        .goto(format!("http://{address}/dashboard"))
        .await
        .expect("open the dashboard");

    // A wrong password is refused on the form, with the reason.
    chromium
        .sign_in_with(&admin.email, "not the password")
        .await;
    chromium
        .until(
            "the error",
            "!document.getElementById('login-error').hidden",
        )
        .await;
    assert_eq!(
        chromium
            .eval("document.getElementById('login-error').textContent")
            .await,
        json!("The email or password is wrong.")
    );
    chromium
        .eval("document.getElementById('email').value = ''; document.getElementById('password').value = ''; document.getElementById('email').focus()")
        .await;

    chromium.sign_in(&admin.email).await;
    chromium
        .until("the first load", "document.body.dataset.loaded === '1'")
        .await;
    let usage = chromium.response("/analytics/usage").await;
    let tiles = parsed(&chromium, TILES).await;
    assert_eq!(usage["active_agents"], json!(0));
    assert_eq!(tiles["active_agents"]["value"].as_f64(), Some(0.0));
    assert_eq!(
        tiles["api_calls"]["value"].as_f64(),
        usage["api_calls"].as_f64()
    );
    // Only the page's own calls can count here (none of the other organization's).
    let empty_shown = chromium
        .eval("!document.getElementById('empty').hidden")
        .await;
    assert_eq!(empty_shown, json!(usage["api_calls"] == json!(0)));
    assert_eq!(
        chromium
            .eval("document.getElementById('agents').textContent")
            .await,
        json!("This organization has no agents yet. Create one with POST /api/v1/agents."),
    );
    assert_eq!(
        chromium
            .eval(
                "document.getElementById('verifications-chart').querySelector('.empty').textContent"
            )
            .await,
        json!("No verification was requested in these months.")
    );
    let endpoints = parsed(&chromium, ENDPOINT_ROWS).await;
    assert!(
        endpoints.get("GET /api/v1/auth/me").is_none(),
        "another organization's calls leaked: {endpoints}"
    );

    // Signing out forgets the session: a reload shows the form again.
    chromium
        .page
        .find_element("#sign-out")
        .await
        .expect("sign out")
        .click()
        .await
        .expect("click");
    chromium
        .until("the login form", "!document.getElementById('login').hidden")
        .await;
    assert_eq!(
        chromium.eval("sessionStorage.length").await,
        json!(0),
        "nothing of the session is kept"
    );
    let page_calls = chromium.recorded_calls().await;
    chromium.close().await;
    app.drain().await;
    assert_eq!(
        rows(&app, admin.organization_id).await,
        page_calls as i64,
        "the page's own calls, and nothing of the other organization"
    );
    let seen: Vec<Uuid> = sqlx::query_scalar("SELECT DISTINCT organization_id FROM api_calls")
        .fetch_all(&app.pool)
        .await
        .expect("organizations");
    assert_eq!(seen.len(), 2);
}

/// The page's files: from the binary, with a strict content security policy, revalidated with
/// an `ETag`; not API calls, so never recorded.
#[tokio::test]
async fn the_files_are_served_from_the_binary_with_a_strict_policy() {
    use axum::body::Body;
    use axum::http::{Request, header};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let app = TestApp::spawn().await;
    let get = |uri: &str, etag: Option<&str>| {
        let mut request = Request::get(uri);
        if let Some(etag) = etag {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        app.router
            .clone()
            .oneshot(request.body(Body::empty()).expect("request"))
    };

    let root = get("/", None).await.expect("infallible");
    assert_eq!(root.status(), StatusCode::SEE_OTHER);
    assert_eq!(root.headers()[header::LOCATION], "/dashboard");

    for (uri, content_type, marker) in [
        (
            "/dashboard",
            "text/html; charset=utf-8",
            "<form id=\"login-form\"",
        ),
        (
            "/dashboard/app.js",
            "text/javascript; charset=utf-8",
            "\"use strict\"",
        ),
        ("/dashboard/app.css", "text/css; charset=utf-8", ".tiles"),
    ] {
        let response = get(uri, None).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK, "{uri}");
        let headers = response.headers().clone();
        assert_eq!(headers[header::CONTENT_TYPE], content_type, "{uri}");
        let policy = headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("ascii");
        assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"));
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert!(String::from_utf8_lossy(&body).contains(marker), "{uri}");

        let etag = headers[header::ETAG].to_str().expect("ascii").to_owned();
        let again = get(uri, Some(&etag)).await.expect("infallible");
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{uri}");
        let stale = get(uri, Some("\"old\"")).await.expect("infallible");
        assert_eq!(stale.status(), StatusCode::OK, "{uri}");
    }

    // Nothing else is under /dashboard, and the API's JSON 404 says so.
    let missing = app.get("/dashboard/secrets.json").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error_code(), "not_found");

    // The page is not an API call: nothing of it is recorded.
    let stats = app.drain().await;
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM api_calls")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(recorded, 0, "{stats:?}");
}
