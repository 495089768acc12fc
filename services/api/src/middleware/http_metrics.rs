//! Request counts, latency and in-flight requests for Prometheus, by method, route template and
//! status class (`2xx`…`5xx`): never by raw path, whose cardinality a client controls.

use std::hash::{Hash, Hasher};
use std::sync::{LazyLock, RwLock};
use std::time::Instant;

use crate::metric_names::{HTTP_IN_FLIGHT, HTTP_REQUEST_DURATION, HTTP_REQUESTS};
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Counter, Gauge, Histogram};

/// Names and help texts, registered once with the exporter.
pub fn describe() {
    metrics::describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by method, route template and status class."
    );
    metrics::describe_histogram!(
        HTTP_REQUEST_DURATION,
        metrics::Unit::Seconds,
        "Time from the request's arrival to its response headers, by method, route template and status class."
    );
    metrics::describe_gauge!(HTTP_IN_FLIGHT, "HTTP requests being handled.");
}

/// One labelled series: method, route template, status class.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Series {
    method: &'static str,
    route: String,
    status: &'static str,
}

/// The same, borrowed from the request, so a lookup allocates nothing.
struct SeriesRef<'a> {
    method: &'static str,
    route: &'a str,
    status: &'static str,
}

impl Hash for SeriesRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Exactly what `Series`'s derived `Hash` feeds the hasher.
        self.method.hash(state);
        self.route.hash(state);
        self.status.hash(state);
    }
}

impl hashbrown::Equivalent<Series> for SeriesRef<'_> {
    fn equivalent(&self, key: &Series) -> bool {
        self.method == key.method && self.route == key.route && self.status == key.status
    }
}

/// Registered handles per series. Registering through the `metrics` macros on every request
/// (building the key's label strings, hashing them, a registry lookup) cost a measurable part
/// of a cheap request; a handle, once registered, is an atomic add. Series are bounded: route
/// templates, a fixed set of methods and status classes.
static SERIES: LazyLock<RwLock<hashbrown::HashMap<Series, (Counter, Histogram)>>> =
    LazyLock::new(Default::default);

fn record_series(method: &'static str, route: &str, status: &'static str, seconds: f64) {
    let key = SeriesRef {
        method,
        route,
        status,
    };
    if let Ok(series) = SERIES.read()
        && let Some((requests, duration)) = series.get(&key)
    {
        requests.increment(1);
        duration.record(seconds);
        return;
    }
    let labels = [
        ("method", method.to_owned()),
        ("route", route.to_owned()),
        ("status", status.to_owned()),
    ];
    let handles = (
        metrics::counter!(HTTP_REQUESTS, &labels),
        metrics::histogram!(HTTP_REQUEST_DURATION, &labels),
    );
    handles.0.increment(1);
    handles.1.record(seconds);
    if let Ok(mut series) = SERIES.write() {
        series.insert(
            Series {
                method,
                route: route.to_owned(),
                status,
            },
            handles,
        );
    }
}

static IN_FLIGHT_GAUGE: LazyLock<Gauge> = LazyLock::new(|| metrics::gauge!(HTTP_IN_FLIGHT));

/// Decrements the in-flight gauge however the request ends (answered, or dropped by a client
/// that went away).
struct InFlight;

impl InFlight {
    fn enter() -> Self {
        IN_FLIGHT_GAUGE.increment(1.0);
        Self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT_GAUGE.decrement(1.0);
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Methods outside the standard set are counted as `other`, so the label stays bounded.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

pub async fn record(request: Request, next: Next) -> Response {
    let method = method_label(request.method());
    let route = request.extensions().get::<MatchedPath>().cloned();
    let _in_flight = InFlight::enter();
    let started = Instant::now();
    let response = next.run(request).await;
    record_series(
        method,
        route.as_ref().map_or("<unmatched>", MatchedPath::as_str),
        status_class(response.status().as_u16()),
        started.elapsed().as_secs_f64(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_stay_bounded() {
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(599), "5xx");
        let odd = axum::http::Method::from_bytes(b"BREW").expect("method");
        assert_eq!(method_label(&odd), "other");
    }
}
