//! `ApiError`: every error the API answers, with one status per variant and one JSON envelope:
//!
//! ```json
//! {"error": {"code": "not_found", "message": "…", "fields": {"name": "…"}}}
//! ```
//!
//! `code` is stable and machine-readable; `message` is for people; `fields` appears on
//! validation errors. A 5xx never carries internals: details go to the log, once, here.

use std::collections::BTreeMap;

use crate::metric_names::DB_POOL_TIMEOUTS;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Seconds a client should wait before retrying while the database is unavailable.
const RETRY_AFTER_S: &str = "5";

/// The error code a response carries, stored in its extensions so that middleware (request
/// logs, analytics) can read it without parsing the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode(pub &'static str);

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed (bad JSON syntax, bad query string, bad id).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 422: well-formed, but some fields are invalid; each is named.
    #[error("invalid fields")]
    Validation { fields: BTreeMap<String, String> },
    /// 401 with `WWW-Authenticate: Bearer`: no credentials, or bad ones. Always the same
    /// message, so a failure says nothing about which part was wrong.
    #[error("unauthorized")]
    Unauthorized,
    /// 403: authenticated, but the role or principal may not do this.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// 403 `agent_suspended`: an agent key whose agent is suspended (the call is still recorded).
    #[error("agent suspended")]
    AgentSuspended,
    /// 409: the object conflicts with one that exists (say, a taken email).
    #[error("conflict: {0}")]
    Conflict(String),
    /// 409: the object's state forbids the change (a revoked agent cannot be revived).
    #[error("{message}")]
    StateConflict {
        code: &'static str,
        message: &'static str,
    },
    /// 429 with `Retry-After`: a rate limit; the value is whole seconds to wait.
    #[error("too many requests")]
    TooManyRequests { retry_after_s: u64 },
    /// 404: no such route, or no such object in the caller's organization.
    #[error("not found")]
    NotFound,
    /// 405: the route exists, the method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 413: the body is over the size limit.
    #[error("payload too large")]
    PayloadTooLarge,
    /// 415: a JSON body without `Content-Type: application/json`.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// 503 with `Retry-After`: the database is unreachable or out of connections.
    #[error("service unavailable")]
    Unavailable(#[source] Cause),
    /// 500: a fault on our side; the client sees a fixed message, the log the whole cause chain.
    #[error("internal error")]
    Internal(#[source] Cause),
}

impl ApiError {
    /// The code of [`ApiError::Unavailable`], which the database breaker watches for.
    pub const UNAVAILABLE: &'static str = "service_unavailable";

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::AgentSuspended => StatusCode::FORBIDDEN,
            Self::Conflict(_) | Self::StateConflict { .. } => StatusCode::CONFLICT,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. } => code,
            Self::Validation { .. } => "validation_failed",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::AgentSuspended => "agent_suspended",
            Self::Conflict(_) => "conflict",
            Self::StateConflict { code, .. } => code,
            Self::TooManyRequests { .. } => "rate_limited",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Unavailable(_) => Self::UNAVAILABLE,
            Self::Internal(_) => "internal_error",
        }
    }

    fn public_message(&self) -> String {
        match self {
            Self::BadRequest { message, .. } => message.clone(),
            Self::Validation { .. } => "Some fields are invalid.".into(),
            Self::Unauthorized => "Missing or invalid credentials.".into(),
            Self::Forbidden(why) => format!("Not allowed: {why}."),
            Self::AgentSuspended => {
                "This agent is suspended; its keys are refused until an admin reinstates it.".into()
            }
            Self::Conflict(what) => format!("{what} already exists."),
            Self::StateConflict { message, .. } => (*message).to_owned(),
            Self::TooManyRequests { .. } => "Too many requests; retry later.".into(),
            Self::NotFound => "Not found.".into(),
            Self::MethodNotAllowed => "This method is not allowed on this route.".into(),
            Self::PayloadTooLarge => "The request body is too large.".into(),
            Self::UnsupportedMediaType => "Expected Content-Type: application/json.".into(),
            Self::Unavailable(_) => "The service is temporarily unavailable; retry shortly.".into(),
            Self::Internal(_) => "Internal server error.".into(),
        }
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable, machine-readable: `not_found`, `validation_failed`, `unauthorized`…
    pub code: &'static str,
    /// For people.
    pub message: String,
    /// On `validation_failed`: what is wrong with each field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<BTreeMap<String, String>>,
}

/// Why a request failed on our side, kept whole (with its own sources) so that the log line
/// shows every cause (`aim_connect::Causes`).
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// How often, at most, an outage of the database is logged while it lasts.
const UNAVAILABLE_LOG_EVERY_MS: i64 = 10_000;

/// Logs the database's unavailability at most once every ten seconds, with the number of
/// requests refused since the last line. During an outage every request that needs the
/// database is refused; a line for each (thousands a second under load) would cost the
/// requests that need no database their latency, and tell an operator nothing more.
fn warn_unavailable(detail: &(dyn std::error::Error + 'static)) {
    use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
    static LAST_MS: AtomicI64 = AtomicI64::new(i64::MIN);
    static SINCE: AtomicU64 = AtomicU64::new(0);
    let now = chrono::Utc::now().timestamp_millis();
    let last = LAST_MS.load(Ordering::Relaxed);
    let due = now.saturating_sub(last) >= UNAVAILABLE_LOG_EVERY_MS;
    if due
        && LAST_MS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        let refused = SINCE.swap(0, Ordering::Relaxed) + 1;
        tracing::warn!(
            error = detail,
            refused,
            "database unavailable; requests that need it are refused"
        );
    } else {
        SINCE.fetch_add(1, Ordering::Relaxed);
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(detail) => {
                tracing::error!(error = %aim_connect::Causes(&**detail), "internal error");
            }
            Self::Unavailable(detail) => warn_unavailable(&**detail),
            _ => {}
        }
        let status = self.status_code();
        let code = self.code();
        let fields = match &self {
            Self::Validation { fields } => Some(fields.clone()),
            _ => None,
        };
        let body = ErrorEnvelope {
            error: ErrorBody {
                code,
                message: self.public_message(),
                fields,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            Self::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_S));
            }
            Self::TooManyRequests { retry_after_s } => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after_s.max(&1).to_owned()),
                );
            }
            Self::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response.extensions_mut().insert(ErrorCode(code));
        response
    }
}

impl ApiError {
    /// A 400 for a query parameter outside its allowed range; the message states the range.
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::bad_request("invalid_parameter", message)
    }

    /// A 422 naming one field.
    pub fn invalid(field: &str, problem: impl Into<String>) -> Self {
        Self::Validation {
            fields: [(field.to_owned(), problem.into())].into_iter().collect(),
        }
    }
}

impl From<aim_store::StoreError> for ApiError {
    fn from(e: aim_store::StoreError) -> Self {
        match e {
            aim_store::StoreError::Conflict(what) => return Self::Conflict(what.to_owned()),
            aim_store::StoreError::AdminOnly(why) => return Self::Forbidden(why),
            aim_store::StoreError::AgentRevoked => {
                return Self::StateConflict {
                    code: "agent_revoked",
                    message: "The agent is revoked; revocation is terminal (register a new agent).",
                };
            }
            _ => {}
        }
        if e.is_pool_timeout() {
            metrics::counter!(DB_POOL_TIMEOUTS, "pool" => "api").increment(1);
        }
        if e.is_unavailable() {
            Self::Unavailable(e.into())
        } else {
            Self::Internal(e.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_distinct_code() {
        let all = [
            ApiError::bad_request("malformed_json", "x"),
            ApiError::Validation {
                fields: BTreeMap::new(),
            },
            ApiError::Unauthorized,
            ApiError::Forbidden("x"),
            ApiError::Conflict("x".into()),
            ApiError::StateConflict {
                code: "agent_revoked",
                message: "x",
            },
            ApiError::TooManyRequests { retry_after_s: 1 },
            ApiError::NotFound,
            ApiError::MethodNotAllowed,
            ApiError::PayloadTooLarge,
            ApiError::UnsupportedMediaType,
            ApiError::Unavailable("x".into()),
            ApiError::Internal("x".into()),
        ];
        let codes: std::collections::HashSet<_> = all.iter().map(ApiError::code).collect();
        assert_eq!(codes.len(), all.len());
        // The OpenAPI document's enum of codes lists every one, those of 400s included.
        let bad_requests = [
            "malformed_json",
            "unreadable_body",
            "invalid_query",
            "invalid_path",
            "invalid_parameter",
            "ambiguous_credentials",
        ];
        for code in codes.iter().copied().chain(bad_requests) {
            assert!(crate::openapi::ERROR_CODES.contains(&code), "{code}");
        }
    }

    #[test]
    fn internal_errors_hide_their_detail() {
        let response = ApiError::Internal("password=hunter2 in a query".into()).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            response.extensions().get::<ErrorCode>(),
            Some(&ErrorCode("internal_error"))
        );
    }

    #[test]
    fn unavailable_says_when_to_retry() {
        let response = ApiError::Unavailable("pool timed out".into()).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from_static(RETRY_AFTER_S))
        );
    }
}
