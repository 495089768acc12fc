//! `ApiCallEvent`: one recorded API call, built on the request path. It holds cheap handles
//! (`http::Method`, an interned route template, `HeaderValue`s) so that building one cleans no
//! text; text is cleaned and truncated later, by the writer, off the request path. The header
//! values must be copies, not slices of the connection's read buffer, or every queued event
//! would pin a whole buffer. `RowRef` is the one view of a row that the COPY encoder and the
//! rollup fold both read, whether it comes from a fresh event or the spool, and the text caps
//! here are the only ones, so raw rows and rollup keys always name routes alike.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderValue, Method};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// At most this many characters of the method are kept (raw rows and rollup keys alike).
pub const MAX_METHOD_CHARS: usize = 16;
/// At most this many characters of the route template are kept (raw rows and rollup keys).
pub const MAX_ENDPOINT_CHARS: usize = 512;
/// At most this many characters of `User-Agent` are kept.
pub const MAX_USER_AGENT_CHARS: usize = 256;
/// At most this many characters of the error code are kept.
pub const MAX_ERROR_CHARS: usize = 200;
/// Request ids are capped by the request-id middleware already; this bounds any other source.
pub const MAX_REQUEST_ID_CHARS: usize = 128;

#[derive(Debug, Clone)]
pub struct ApiCallEvent {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub agent_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub method: Method,
    /// The route template, e.g. `/api/v1/agents/{id}`, or `<unmatched>`.
    pub endpoint: Arc<str>,
    pub status_code: u16,
    pub duration_ms: f64,
    pub request_size_bytes: u64,
    pub response_size_bytes: u64,
    pub user_agent: Option<HeaderValue>,
    pub ip_address: Option<IpAddr>,
    /// The error code of the response's envelope, for status ≥ 400.
    pub error_message: Option<&'static str>,
    pub request_id: Option<HeaderValue>,
    pub called_at: SystemTime,
}

/// The row as it is written: every value cleaned so PostgreSQL accepts it, whatever the client
/// sent. Also the spool's on-disk form, so a spooled batch replays the very same rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRow {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub agent_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub method: String,
    pub endpoint: String,
    pub status_code: i32,
    pub duration_ms: f64,
    pub request_size_bytes: i64,
    pub response_size_bytes: i64,
    pub user_agent: Option<String>,
    pub ip_address: Option<IpAddr>,
    pub error_message: Option<String>,
    pub request_id: Option<String>,
    /// Microseconds since the Unix epoch.
    pub called_at_us: i64,
}

impl CallRow {
    /// The numeric columns, made acceptable to PostgreSQL: `(status_code, duration_ms,
    /// request_size_bytes, response_size_bytes, called_at_us)`.
    pub(crate) fn scalars(event: &ApiCallEvent) -> (i32, f64, i64, i64, i64) {
        (
            i32::from(event.status_code),
            if event.duration_ms.is_finite() && event.duration_ms >= 0.0 {
                event.duration_ms
            } else {
                0.0
            },
            saturating_i64(event.request_size_bytes),
            saturating_i64(event.response_size_bytes),
            event
                .called_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| {
                    saturating_i64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
                }),
        )
    }

    pub fn from_event(event: &ApiCallEvent) -> Self {
        let (status_code, duration_ms, request_size_bytes, response_size_bytes, called_at_us) =
            Self::scalars(event);
        Self {
            id: event.id,
            organization_id: event.organization_id,
            agent_id: event.agent_id,
            user_id: event.user_id,
            method: clean(event.method.as_str(), MAX_METHOD_CHARS),
            endpoint: clean(&event.endpoint, MAX_ENDPOINT_CHARS),
            status_code,
            duration_ms,
            request_size_bytes,
            response_size_bytes,
            user_agent: event
                .user_agent
                .as_ref()
                .map(|v| clean(&String::from_utf8_lossy(v.as_bytes()), MAX_USER_AGENT_CHARS)),
            ip_address: event.ip_address,
            error_message: event.error_message.map(|e| clean(e, MAX_ERROR_CHARS)),
            request_id: event
                .request_id
                .as_ref()
                .map(|v| clean(&String::from_utf8_lossy(v.as_bytes()), MAX_REQUEST_ID_CHARS)),
            called_at_us,
        }
    }
}

fn saturating_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// PostgreSQL `text` refuses NUL; everything else valid UTF-8 is fine. Truncates on a character
/// boundary.
pub fn clean(text: &str, max_chars: usize) -> String {
    text.chars()
        .filter(|c| *c != '\0')
        .take(max_chars)
        .collect()
}

/// One row's values, borrowed from an event or a spooled row.
pub struct RowRef<'a> {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub agent_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub method: &'a str,
    pub endpoint: &'a str,
    pub status_code: i32,
    pub duration_ms: f64,
    pub request_size_bytes: i64,
    pub response_size_bytes: i64,
    pub user_agent: Option<&'a [u8]>,
    pub ip_address: Option<IpAddr>,
    pub error_message: Option<&'a str>,
    pub request_id: Option<&'a [u8]>,
    pub called_at_us: i64,
}

/// Anything a batch can be written from: fresh events, or rows read back from the spool.
pub trait AsRow {
    fn as_row(&self) -> RowRef<'_>;
}

impl AsRow for ApiCallEvent {
    fn as_row(&self) -> RowRef<'_> {
        let e = self;
        let row = CallRow::scalars(e);
        RowRef {
            id: e.id,
            organization_id: e.organization_id,
            agent_id: e.agent_id,
            user_id: e.user_id,
            method: e.method.as_str(),
            endpoint: &e.endpoint,
            status_code: row.0,
            duration_ms: row.1,
            request_size_bytes: row.2,
            response_size_bytes: row.3,
            user_agent: e.user_agent.as_ref().map(|v| v.as_bytes()),
            ip_address: e.ip_address,
            error_message: e.error_message,
            request_id: e.request_id.as_ref().map(|v| v.as_bytes()),
            called_at_us: row.4,
        }
    }
}

impl AsRow for CallRow {
    fn as_row(&self) -> RowRef<'_> {
        let r = self;
        RowRef {
            id: r.id,
            organization_id: r.organization_id,
            agent_id: r.agent_id,
            user_id: r.user_id,
            method: &r.method,
            endpoint: &r.endpoint,
            status_code: r.status_code,
            duration_ms: r.duration_ms,
            request_size_bytes: r.request_size_bytes,
            response_size_bytes: r.response_size_bytes,
            user_agent: r.user_agent.as_deref().map(str::as_bytes),
            ip_address: r.ip_address,
            error_message: r.error_message.as_deref(),
            request_id: r.request_id.as_deref().map(str::as_bytes),
            called_at_us: r.called_at_us,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> ApiCallEvent {
        ApiCallEvent {
            id: Uuid::now_v7(),
            organization_id: Uuid::now_v7(),
            agent_id: None,
            user_id: None,
            method: Method::GET,
            endpoint: Arc::from("/api/v1/agents/{id}"),
            status_code: 200,
            duration_ms: 1.25,
            request_size_bytes: 10,
            response_size_bytes: 20,
            user_agent: None,
            ip_address: None,
            error_message: None,
            request_id: None,
            called_at: SystemTime::now(),
        }
    }

    #[test]
    fn values_postgres_would_refuse_are_cleaned() {
        let mut e = event();
        e.duration_ms = f64::NAN;
        e.request_size_bytes = u64::MAX;
        e.user_agent =
            Some(HeaderValue::from_bytes(b"curl/8\xff\xfe").expect("obs-text is allowed"));
        e.endpoint = Arc::from("/a\0b");
        let row = CallRow::from_event(&e);
        assert_eq!(row.duration_ms, 0.0);
        assert_eq!(row.request_size_bytes, i64::MAX);
        assert_eq!(row.endpoint, "/ab");
        assert!(row.user_agent.expect("kept").starts_with("curl/8"));
    }

    #[test]
    fn long_text_is_truncated_on_character_boundaries() {
        let mut e = event();
        e.user_agent =
            Some(HeaderValue::from_str(&"é".repeat(300)).unwrap_or(HeaderValue::from_static("x")));
        let long = "ü".repeat(500);
        assert_eq!(
            clean(&long, MAX_ERROR_CHARS).chars().count(),
            MAX_ERROR_CHARS
        );
        let row = CallRow::from_event(&e);
        assert!(row.user_agent.expect("kept").chars().count() <= MAX_USER_AGENT_CHARS);
    }
}
