//! What operators rely on: `/metrics` that Prometheus accepts (checked with `promtool`), JSON
//! request logs without secrets, and the deployment files (compose stack, Prometheus
//! configuration and alert rules, Grafana provisioning) parsing and passing `promtool`.
//!
//! `promtool` comes with Debian's `prometheus` package; `.ci/run` installs it and sets
//! `AIM_REQUIRE_PROMTOOL=1`, so in CI a missing `promtool` fails these tests instead of
//! skipping their `promtool` half.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aim_store::testing::TestDatabase;
use secrecy::ExposeSecret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const AIM: &str = env!("CARGO_BIN_EXE_aim");
const ADMIN_PASSWORD: &str = "canary-password-5f0c9e";

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `promtool`, or `None` (with a note) where it is not installed and not required.
fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("promtool"))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("AIM_REQUIRE_PROMTOOL").is_none(),
            "promtool is required here: apt-get install prometheus"
        );
        eprintln!("promtool is not installed (apt-get install prometheus): its checks are skipped");
    }
    found
}

fn promtool_ok(promtool: &Path, args: &[&str], stdin: Option<&str>) {
    let mut child = Command::new(promtool)
        .args(args)
        .current_dir(repository())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    {
        use std::io::Write;
        let mut input = child.stdin.take().expect("stdin");
        input
            .write_all(stdin.unwrap_or_default().as_bytes())
            .expect("write to promtool");
    }
    let output = child.wait_with_output().expect("promtool output");
    assert!(
        output.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A bare HTTP/1.1 exchange: status and body.
async fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// Chunked bodies (the metrics listener streams) reduced to their text.
fn dechunk(body: &str) -> String {
    if !body.starts_with(|c: char| c.is_ascii_hexdigit()) || body.starts_with("# ") {
        return body.to_owned();
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            return body.to_owned();
        };
        if size == 0 || tail.len() < size {
            break;
        }
        out.push_str(&tail[..size]);
        rest = tail[size..].trim_start_matches("\r\n");
    }
    out
}

/// Stops the service however the test ends, so a failed assertion leaves no process behind.
struct Service(std::process::Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn metrics_pass_promtool_and_logs_are_json_without_secrets() {
    let db = TestDatabase::create().await;
    let (port, metrics_port) = (free_port(), free_port());
    let dir = tempfile::tempdir().expect("data dir");
    let log = dir.path().join("aim.log");
    let mut service = Service(
        Command::new(AIM)
            .arg("serve")
            .env("DATABASE_URL", db.url().expose_secret())
            .env("JWT_SECRET", "operations-test-secret-of-32-bytes-or-more")
            .env("AIM_DATA_DIR", dir.path())
            .env("AIM_LISTEN", format!("127.0.0.1:{port}"))
            .env("AIM_METRICS_LISTEN", format!("127.0.0.1:{metrics_port}"))
            .env("AIM_LOG_FORMAT", "json")
            .env("AIM_ADMIN_EMAIL", "ops@example.test")
            .env("AIM_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("AIM_ANALYTICS_FLUSH_MS", "20")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn aim serve"),
    );

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            service.0.try_wait().expect("try_wait").is_none(),
            "aim exited early"
        );
        assert!(Instant::now() < deadline, "aim did not start within 60 s");
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
            && http(port, "GET", "/health", None, "").await.0 == 200
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = http(
        port,
        "POST",
        "/api/v1/auth/login",
        None,
        &format!(r#"{{"email":"ops@example.test","password":"{ADMIN_PASSWORD}"}}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let login: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let token = login["token"].as_str().expect("token").to_owned();
    for _ in 0..3 {
        assert_eq!(
            http(port, "GET", "/api/v1/agents", Some(&token), "")
                .await
                .0,
            200
        );
    }
    // A secret in a query string must not reach logs or metrics either.
    let canary = "canary-query-secret-91ab";
    http(
        port,
        "GET",
        &format!("/api/v1/agents?api_key={canary}"),
        Some(&token),
        "",
    )
    .await;
    assert_eq!(http(port, "GET", "/nowhere", None, "").await.0, 404);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (status, metrics) = http(metrics_port, "GET", "/metrics", None, "").await;
    assert_eq!(status, 200);
    let metrics = dechunk(&metrics);
    for name in [
        "aim_http_requests_total{",
        "aim_http_request_duration_seconds_bucket{",
        "aim_http_requests_in_flight",
        "aim_analytics_events_written_total",
        "aim_analytics_queue_depth",
        "aim_db_pool_connections{",
        "aim_db_pool_max_connections{",
        // Published as closed from the start, before any outage.
        "aim_db_breaker_open 0",
        "aim_build_info{",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(
            metrics.contains(name),
            "{name} missing from /metrics:\n{metrics}"
        );
    }
    assert!(metrics.contains(r#"route="/api/v1/agents""#));
    assert!(metrics.contains(r#"route="<unmatched>""#));
    for secret in [ADMIN_PASSWORD, token.as_str(), canary] {
        assert!(!metrics.contains(secret), "a secret reached /metrics");
    }
    if let Some(promtool) = promtool() {
        promtool_ok(&promtool, &["check", "metrics"], Some(&metrics));
    }

    // SIGTERM: a clean stop, so every log line is written before they are read.
    let _ = Command::new("kill")
        .arg(service.0.id().to_string())
        .status();
    let _ = service.0.wait();
    let logs = std::fs::read_to_string(&log).expect("log");
    let mut request_lines = 0;
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        let entry: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {line}"));
        if entry["message"] == "request finished" {
            request_lines += 1;
            let span = &entry["span"];
            assert!(
                span["request_id"].as_str().is_some_and(|id| !id.is_empty()),
                "{line}"
            );
            assert!(span["route"].is_string(), "{line}");
            assert!(entry["status"].is_u64(), "{line}");
            assert!(entry["duration_ms"].is_f64(), "{line}");
        }
    }
    assert!(request_lines >= 6, "request lines: {request_lines}\n{logs}");
    for secret in [ADMIN_PASSWORD, token.as_str(), canary] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn deployment_files_parse_and_pass_promtool() {
    let root = repository();
    let mut files = vec![root.join("compose.yaml")];
    files_under(&root.join("deploy"), &mut files);
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read");
        match file.extension().and_then(|e| e.to_str()) {
            Some("yml" | "yaml") => {
                let docs = yaml_rust2::YamlLoader::load_from_str(&text)
                    .unwrap_or_else(|e| panic!("{} is not YAML: {e}", file.display()));
                assert!(!docs.is_empty(), "{} is empty", file.display());
                checked += 1;
            }
            Some("json") => {
                serde_json::from_str::<serde_json::Value>(&text)
                    .unwrap_or_else(|e| panic!("{} is not JSON: {e}", file.display()));
                checked += 1;
            }
            _ => {}
        }
    }
    assert!(checked >= 7, "only {checked} deployment files found");

    // The compose stack wires what the documentation promises.
    let compose = &yaml_rust2::YamlLoader::load_from_str(
        &std::fs::read_to_string(root.join("compose.yaml")).expect("compose"),
    )
    .expect("YAML")[0];
    let services = &compose["services"];
    for service in ["postgres", "aim", "prometheus", "grafana"] {
        assert!(!services[service].is_badvalue(), "compose lacks {service}");
    }
    assert!(!services["postgres"]["healthcheck"].is_badvalue());
    assert_eq!(
        services["aim"]["environment"]["AIM_METRICS_LISTEN"].as_str(),
        Some("0.0.0.0:9464")
    );
    assert_eq!(
        services["aim"]["depends_on"]["postgres"]["condition"].as_str(),
        Some("service_healthy")
    );
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/grafana/dashboards/aim.json"))
            .expect("dashboard"),
    )
    .expect("JSON");
    let exprs: Vec<&str> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str())
        .collect();
    for metric in [
        "aim_http_requests_total",
        "aim_http_request_duration_seconds_bucket",
        "aim_analytics_queue_depth",
        "aim_analytics_events_dropped_total",
        "aim_analytics_spool_bytes",
        "aim_analytics_last_flush_timestamp_seconds",
        "aim_db_pool_connections",
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(metric)),
            "no panel shows {metric}"
        );
    }

    if let Some(promtool) = promtool() {
        promtool_ok(
            &promtool,
            &["check", "config", "deploy/prometheus/prometheus.yml"],
            None,
        );
        promtool_ok(
            &promtool,
            &["check", "rules", "deploy/prometheus/alerts.yml"],
            None,
        );
        promtool_ok(
            &promtool,
            &["test", "rules", "deploy/prometheus/alerts.test.yml"],
            None,
        );
    }
}
