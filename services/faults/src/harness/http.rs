//! The suites' HTTP client: plain requests, numbered load calls, and reads of the service's
//! Prometheus metrics.

use aim_pipeline::stats::names;
use anyhow::bail;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::{Duration, Instant};

pub(crate) type Http = Client<HttpConnector, Full<Bytes>>;

pub(crate) fn http_client() -> Http {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build_http()
}

pub(crate) async fn get(
    http: &Http,
    uri: &str,
    headers: Option<&[(&str, &str)]>,
    body: Option<String>,
) -> anyhow::Result<(u16, Bytes)> {
    let mut request = http::Request::builder()
        .method(if body.is_some() { "POST" } else { "GET" })
        .uri(uri);
    for (name, value) in headers.unwrap_or_default() {
        request = request.header(*name, *value);
    }
    let request = match body {
        Some(body) => request
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?,
        None => request.body(Full::new(Bytes::new()))?,
    };
    let response = tokio::time::timeout(Duration::from_secs(10), http.request(request)).await??;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((status, bytes))
}

/// A `GET` with the agent's `authorization` and `x-request-id: fault-<n>`, the id the oracle
/// looks for; returns the answer and how long it took.
pub(crate) async fn numbered_call(
    http: &Http,
    uri: &str,
    authorization: &str,
    n: u64,
) -> (anyhow::Result<(u16, Bytes)>, Duration) {
    let id = format!("fault-{n}");
    let sent = Instant::now();
    let answer = get(
        http,
        uri,
        Some(&[("authorization", authorization), ("x-request-id", &id)]),
        None,
    )
    .await;
    (answer, sent.elapsed())
}

pub(crate) fn json(bytes: &Bytes) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::from_slice(bytes)?)
}

/// The sum of a metric's series.
pub(crate) async fn metric(http: &Http, port: u16, name: &str) -> anyhow::Result<f64> {
    metric_labelled(http, port, name, "").await
}

/// The sum of a metric's series whose labels contain `label`.
pub(crate) async fn metric_labelled(
    http: &Http,
    port: u16,
    name: &str,
    label: &str,
) -> anyhow::Result<f64> {
    let (_, text) = get(
        http,
        &format!("http://127.0.0.1:{port}/metrics"),
        None,
        None,
    )
    .await?;
    Ok(String::from_utf8_lossy(&text)
        .lines()
        .filter(|l| {
            l.starts_with(name) && l[name.len()..].starts_with([' ', '{']) && l.contains(label)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// Waits until nothing is queued, in a writer's hands or spooled, twice in a row half a second
/// apart; returns how long that took.
pub(crate) async fn drained(
    http: &Http,
    metrics_port: u16,
    within: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut quiet = 0;
    while started.elapsed() < within {
        let mut pending = 0.0;
        for name in [
            names::QUEUE_DEPTH,
            names::EVENTS_IN_FLIGHT,
            names::SPOOL_FRAMES,
            names::SPOOL_BYTES,
        ] {
            pending += metric(http, metrics_port, name).await.unwrap_or(1.0);
        }
        quiet = if pending == 0.0 { quiet + 1 } else { 0 };
        if quiet == 2 {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!("the queue and spool did not drain within {within:?}")
}
