//! The analytics layer: records every API call that ends with an organization as an
//! `ApiCallEvent`, without I/O, locks or waiting on the request path.
//!
//! Per request it clones a few cheap handles (the method, the interned route template, the
//! `User-Agent` and `x-request-id` header values) and wraps the response body (and a request
//! body, when there is one) to count bytes. Authentication fills a task-local slot with the
//! caller's organization, agent and user ([`attribute`]): no allocation and no entry in the
//! request's extensions per call. The event is handed to the pipeline's bounded queue with `try_send` when the
//! response body has been sent or dropped, so `duration_ms` and `response_size_bytes` cover the
//! whole response. A call without an organization is no row: it is counted in
//! `aim_http_requests_unattributed_total` by route and status.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use aim_pipeline::{ApiCallEvent, Sink};
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderValue, Method, Response, header};
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;
use tower::{Layer, Service};
use uuid::Uuid;

use super::headers::detached;
use super::request_id::X_REQUEST_ID;
use crate::error::ErrorCode;

/// Routes that are probes, not API calls.
const SKIPPED: [&str; 3] = ["/health", "/health/ready", "/api/v1/status"];
const UNMATCHED: &str = "<unmatched>";

/// Who made the call, filled in by authentication.
#[derive(Debug, Clone, Copy)]
pub struct Attribution {
    pub organization_id: Uuid,
    pub agent_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
}

tokio::task_local! {
    /// Who made the call being served on this task; set by [`attribute`], read when the
    /// response is ready. A task-local rather than an entry in the request's extensions: it
    /// costs no allocation per call, and the request path runs each call on one task.
    static CALLER: Cell<Option<Attribution>>;
}

/// Records who made the call being served, for its analytics event; the first caller named
/// counts. Does nothing outside the analytics layer (analytics off, or a probe route).
pub fn attribute(attribution: Attribution) {
    let _ = CALLER.try_with(|caller| {
        if caller.get().is_none() {
            caller.set(Some(attribution));
        }
    });
}

#[derive(Clone)]
pub struct AnalyticsLayer {
    sink: Sink,
    trust_proxy: bool,
}

impl AnalyticsLayer {
    pub fn new(sink: Sink, trust_proxy: bool) -> Self {
        Self { sink, trust_proxy }
    }
}

impl<S> Layer<S> for AnalyticsLayer {
    type Service = Analytics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Analytics {
            inner,
            sink: self.sink.clone(),
            trust_proxy: self.trust_proxy,
        }
    }
}

#[derive(Clone)]
pub struct Analytics<S> {
    inner: S,
    sink: Sink,
    trust_proxy: bool,
}

/// What is known when the request starts; completed into an event when the response ends.
struct Pending {
    sink: Sink,
    /// Bytes the handler read of a request body; `None` for a request without one.
    request_bytes: Option<Arc<AtomicU64>>,
    method: Method,
    endpoint: Arc<str>,
    user_agent: Option<HeaderValue>,
    ip_address: Option<IpAddr>,
    request_id: Option<HeaderValue>,
    content_length: u64,
    started: Instant,
    called_at: SystemTime,
}

impl<S> Service<Request> for Analytics<S>
where
    S: Service<Request, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = AnalyticsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let endpoint = request
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str);
        if endpoint.is_some_and(|e| SKIPPED.contains(&e)) {
            return AnalyticsFuture {
                inner: CALLER.scope(Cell::new(None), self.inner.call(request)),
                pending: None,
            };
        }
        let endpoint = intern(endpoint.unwrap_or(UNMATCHED));
        // A request without a body (most GETs) has no bytes to count: no wrapper to allocate
        // and no `Content-Length` to read.
        let bodyless = request.body().is_end_stream();
        let request_bytes = (!bodyless).then(|| Arc::new(AtomicU64::new(0)));
        let headers = request.headers();
        let pending = Pending {
            sink: self.sink.clone(),
            request_bytes: request_bytes.clone(),
            method: request.method().clone(),
            endpoint,
            user_agent: headers.get(header::USER_AGENT).and_then(detached),
            ip_address: crate::client_addr::client_ip(
                request.headers(),
                request.extensions(),
                self.trust_proxy,
            ),
            // Already an allocation of its own: set by the request-id middleware.
            request_id: headers.get(&X_REQUEST_ID).cloned(),
            content_length: if bodyless { 0 } else { content_length(headers) },
            started: Instant::now(),
            called_at: SystemTime::now(),
        };
        let request = match request_bytes {
            None => request,
            Some(counted) => request.map(|body| {
                Body::new(RequestBody {
                    inner: body,
                    counted,
                })
            }),
        };
        AnalyticsFuture {
            inner: CALLER.scope(Cell::new(None), self.inner.call(request)),
            pending: Some(pending),
        }
    }
}

pin_project! {
    pub struct AnalyticsFuture<F> {
        #[pin]
        inner: TaskLocalFuture<Cell<Option<Attribution>>, F>,
        pending: Option<Pending>,
    }
}

impl<F, E> Future for AnalyticsFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let response = match this.inner.as_mut().poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(result) => result?,
        };
        let Some(pending) = this.pending.take() else {
            return Poll::Ready(Ok(response));
        };
        let caller = this.inner.take_value().and_then(Cell::into_inner);
        let status = response.status().as_u16();
        let error = response.extensions().get::<ErrorCode>().map(|c| c.0);
        let finished = Finished {
            pending,
            caller,
            status,
            error: if status >= 400 { error } else { None },
            response_bytes: 0,
        };
        Poll::Ready(Ok(response.map(|body| {
            Body::new(ResponseBody {
                inner: body,
                finished: Some(finished),
            })
        })))
    }
}

/// The response's half: emits the event once, when the body ends or is dropped.
struct Finished {
    pending: Pending,
    caller: Option<Attribution>,
    status: u16,
    error: Option<&'static str>,
    response_bytes: u64,
}

impl Finished {
    fn emit(self) {
        let p = self.pending;
        let Some(who) = self.caller else {
            metrics::counter!(
                crate::metric_names::HTTP_UNATTRIBUTED,
                "route" => p.endpoint.to_string(),
                "status" => self.status.to_string(),
            )
            .increment(1);
            return;
        };
        let counted = p
            .request_bytes
            .map_or(0, |counted| counted.load(Ordering::Relaxed));
        p.sink.record(ApiCallEvent {
            id: event_id(p.called_at),
            organization_id: who.organization_id,
            agent_id: who.agent_id,
            user_id: who.user_id,
            method: p.method,
            endpoint: p.endpoint,
            status_code: self.status,
            duration_ms: p.started.elapsed().as_secs_f64() * 1000.0,
            // A body the handler never read was still sent: trust the larger figure.
            request_size_bytes: counted.max(p.content_length),
            response_size_bytes: self.response_bytes,
            user_agent: p.user_agent,
            ip_address: p.ip_address,
            error_message: self.error,
            request_id: p.request_id,
            called_at: p.called_at,
        });
    }
}

pin_project! {
    /// Counts the request bytes the handler reads.
    struct RequestBody {
        #[pin]
        inner: Body,
        counted: Arc<AtomicU64>,
    }
}

impl HttpBody for RequestBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            this.counted.fetch_add(data_len(frame), Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project! {
    /// Counts the response bytes sent and emits the event when the body ends or is dropped.
    struct ResponseBody {
        #[pin]
        inner: Body,
        finished: Option<Finished>,
    }

    impl PinnedDrop for ResponseBody {
        fn drop(this: Pin<&mut Self>) {
            if let Some(finished) = this.project().finished.take() {
                finished.emit();
            }
        }
    }
}

impl HttpBody for ResponseBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(finished) = this.finished.as_mut() {
                    finished.response_bytes += data_len(frame);
                }
            }
            Poll::Ready(None) => {
                if let Some(finished) = this.finished.take() {
                    finished.emit();
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A version 7 id from the call's own time. Without the process-wide context `Uuid::now_v7`
/// locks (ids need to be unique, not ordered within a millisecond) and with the `fast-rng`
/// feature the random bits come from a thread-local generator, not a system call per id.
fn event_id(called_at: SystemTime) -> Uuid {
    let since_epoch = called_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        since_epoch.as_secs(),
        since_epoch.subsec_nanos(),
    ))
}

fn data_len(frame: &Frame<Bytes>) -> u64 {
    frame.data_ref().map_or(0, |d| d.len() as u64)
}

fn content_length(headers: &HeaderMap) -> u64 {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

thread_local! {
    /// Route templates are few and fixed, so each thread keeps one shared copy of each and an
    /// event clones an `Arc` instead of copying the string.
    static ROUTES: RefCell<HashSet<Arc<str>>> = RefCell::new(HashSet::new());
}

fn intern(route: &str) -> Arc<str> {
    ROUTES.with_borrow_mut(|routes| match routes.get(route) {
        Some(shared) => Arc::clone(shared),
        None => {
            let shared: Arc<str> = Arc::from(route);
            routes.insert(Arc::clone(&shared));
            shared
        }
    })
}
