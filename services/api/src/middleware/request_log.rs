//! One log line per request with its id, route template, status and duration, inside a span
//! that every log line of the request inherits. The raw path is not logged: the route template
//! says which endpoint, and query strings may carry things that do not belong in logs.

use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::http::Response;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{DefaultOnBodyChunk, DefaultOnEos, MakeSpan, OnResponse, TraceLayer};
use tracing::Span;

use super::request_id::RequestId;

pub type RequestLogLayer = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    RequestSpan,
    (),
    LogResponse,
    DefaultOnBodyChunk,
    DefaultOnEos,
    (),
>;

pub fn layer() -> RequestLogLayer {
    TraceLayer::new_for_http()
        .make_span_with(RequestSpan)
        .on_request(())
        .on_response(LogResponse)
        .on_failure(())
}

#[derive(Debug, Clone, Copy)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("<unmatched>", MatchedPath::as_str);
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map_or("", RequestId::as_str);
        tracing::info_span!(
            "request",
            method = %request.method(),
            route,
            request_id,
        )
    }
}

#[derive(Debug, Clone, Copy)]
pub struct LogResponse;

impl<B> OnResponse<B> for LogResponse {
    fn on_response(self, response: &Response<B>, latency: Duration, _span: &Span) {
        let status = response.status().as_u16();
        let duration_ms = latency.as_secs_f64() * 1000.0;
        let error = response
            .extensions()
            .get::<crate::error::ErrorCode>()
            .map(|c| c.0);
        // A 503 is the database being away, logged once per interval where it is detected
        // (`error.rs`); an error line per refused request would flood the log in an outage.
        if status >= 500 && status != 503 {
            tracing::error!(status, duration_ms, error, "request finished");
        } else {
            tracing::info!(status, duration_ms, error, "request finished");
        }
    }
}
