//! `x-request-id`: taken from the client when it is a sane token, generated (UUID v7) otherwise,
//! put on the request for handlers and logs, and answered on the response.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Longer ids are replaced: they would bloat every log line and analytics row.
const MAX_LEN: usize = 128;

/// The request's id, in the request's extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

impl RequestId {
    pub fn as_str(&self) -> &str {
        // Only visible ASCII is ever stored, see `acceptable`.
        self.0.to_str().unwrap_or_default()
    }
}

fn acceptable(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(b))
}

fn generate() -> HeaderValue {
    HeaderValue::try_from(uuid::Uuid::now_v7().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// `axum::middleware::from_fn` body.
pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&X_REQUEST_ID)
        .filter(|v| acceptable(v))
        // The client's value shares hyper's read buffer; the id outlives the request in its
        // analytics event, so it gets an allocation of its own.
        .and_then(super::headers::detached)
        .unwrap_or_else(generate);
    request
        .headers_mut()
        .insert(X_REQUEST_ID.clone(), id.clone());
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).await;
    response.headers_mut().insert(X_REQUEST_ID.clone(), id);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_client_ids_are_kept_and_others_replaced() {
        assert!(acceptable(&HeaderValue::from_static("abc-123_x.y")));
        assert!(!acceptable(&HeaderValue::from_static("")));
        assert!(!acceptable(&HeaderValue::from_static("has space")));
        assert!(!acceptable(&HeaderValue::from_static("quote\"")));
        let long = HeaderValue::try_from("a".repeat(MAX_LEN + 1)).expect("ascii");
        assert!(!acceptable(&long));
    }

    #[test]
    fn generated_ids_are_uuid_v7() {
        let id = generate();
        let parsed = uuid::Uuid::parse_str(id.to_str().expect("ascii")).expect("uuid");
        assert_eq!(parsed.get_version_num(), 7);
    }
}
