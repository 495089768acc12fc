//! Our own extractors, so that a malformed body, query string or path parameter gets the same
//! JSON envelope as every other error instead of axum's plain-text rejection. They are also the
//! one place text input is refused for holding a NUL character (U+0000), which PostgreSQL
//! cannot store in `text` or `jsonb`: a body, query or path carrying one is a 4xx here, never a
//! database error later.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// `axum::Json` with our errors: 400 bad syntax, 422 wrong shape or a NUL character in any
/// string (object keys included), 415 wrong content type, 413 too large.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !json_content_type(request.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::bad_request("unreadable_body", e.body_text())
            }
        })?;
        if json_has_nul(&bytes) {
            return Err(ApiError::Validation {
                fields: [("body".to_owned(), NUL_REFUSED.to_owned())]
                    .into_iter()
                    .collect(),
            });
        }
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes)?;
        Ok(Self(value))
    }
}

const NUL_REFUSED: &str = "text must not contain the NUL character (U+0000)";

/// `application/json` or any `application/*+json`, as axum's own `Json` accepts.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let essence = essence.to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Whether a JSON text holds the escape `\u0000` inside a string. JSON can carry a NUL only
/// as that escape (a raw control byte is not valid JSON), and a backslash outside a string is
/// not valid either, so it is enough to read escapes: each backslash starts one, and the
/// escaped character is skipped, so `\\u0000` (a backslash, then the text `u0000`) is not one.
fn json_has_nul(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes.get(i + 1..i + 6) == Some(b"u0000".as_slice()) {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// Whether a percent-encoded query or path decodes to a NUL (URIs cannot hold the raw byte).
fn encodes_nul(text: &str) -> bool {
    text.contains("%00")
}

impl<T: serde::Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Query` with our errors (400, a NUL character included).
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if parts.uri.query().is_some_and(encodes_nul) {
            return Err(ApiError::bad_request("invalid_query", NUL_REFUSED));
        }
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// `axum::extract::Path` with our errors (400, a NUL character included).
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if encodes_nul(parts.uri.path()) {
            return Err(ApiError::bad_request("invalid_path", NUL_REFUSED));
        }
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// An optional JSON body: no `Content-Type` and no bytes is `None`; anything else is parsed as
/// [`ApiJson`] would.
impl<T, S> OptionalFromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Option<Self>, ApiError> {
        if request.headers().contains_key(header::CONTENT_TYPE) {
            return <Self as FromRequest<S>>::from_request(request, state)
                .await
                .map(Some);
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| ApiError::bad_request("unreadable_body", e.body_text()))?;
        if bytes.is_empty() {
            Ok(None)
        } else {
            Err(ApiError::UnsupportedMediaType)
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonSyntaxError(e) => Self::bad_request(
                "malformed_json",
                format!("The body is not valid JSON: {}", e.body_text()),
            ),
            JsonRejection::JsonDataError(e) => Self::Validation {
                fields: [("body".to_owned(), e.body_text())].into_iter().collect(),
            },
            JsonRejection::MissingJsonContentType(_) => Self::UnsupportedMediaType,
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            other => Self::bad_request("unreadable_body", other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request("invalid_query", rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::bad_request("invalid_path", rejection.body_text())
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, header};
    use axum::routing::post;
    use http_body_util::BodyExt;
    use serde::Deserialize;
    use tower::ServiceExt;

    use super::*;

    #[derive(Debug, Deserialize, serde::Serialize)]
    struct Input {
        name: String,
        count: u32,
    }

    #[derive(Debug, Deserialize)]
    struct Params {
        #[expect(dead_code, reason = "only parsed, to exercise the rejection")]
        limit: u32,
    }

    fn router() -> Router {
        Router::new()
            .route(
                "/echo",
                post(|ApiJson(input): ApiJson<Input>| async { ApiJson(input) }),
            )
            .route(
                "/items/{id}",
                post(
                    |ApiPath(_id): ApiPath<uuid::Uuid>, ApiQuery(_q): ApiQuery<Params>| async {
                        StatusCode::NO_CONTENT
                    },
                ),
            )
            .layer(axum::extract::DefaultBodyLimit::max(64))
    }

    async fn send(request: Request<Body>) -> (StatusCode, serde_json::Value) {
        let response = router().oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, json)
    }

    fn json_post(uri: &str, body: &'static str) -> Request<Body> {
        Request::post(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .expect("request")
    }

    #[tokio::test]
    async fn valid_json_passes_through() {
        let (status, body) = send(json_post("/echo", r#"{"name":"a","count":2}"#)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["count"], 2);
    }

    #[tokio::test]
    async fn malformed_json_is_a_400_envelope() {
        let (status, body) = send(json_post("/echo", r#"{"name": "a", "#)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], "malformed_json");
    }

    #[tokio::test]
    async fn wrong_shape_is_a_422_naming_the_problem() {
        let (status, body) = send(json_post("/echo", r#"{"name":"a","count":-1}"#)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["error"]["code"], "validation_failed");
        let detail = body["error"]["fields"]["body"]
            .as_str()
            .expect("field detail");
        assert!(detail.contains("count"), "{detail}");
    }

    #[tokio::test]
    async fn missing_content_type_is_a_415() {
        let request = Request::post("/echo")
            .body(Body::from(r#"{"name":"a","count":1}"#))
            .expect("request");
        let (status, body) = send(request).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(body["error"]["code"], "unsupported_media_type");
    }

    #[tokio::test]
    async fn oversized_body_is_a_413() {
        let big: &'static str =
            Box::leak(format!(r#"{{"name":"{}","count":1}}"#, "x".repeat(200)).into_boxed_str());
        let (status, body) = send(json_post("/echo", big)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body["error"]["code"], "payload_too_large");
    }

    #[tokio::test]
    async fn bad_path_and_query_are_400s() {
        let (status, body) = send(json_post("/items/not-a-uuid?limit=1", "")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], "invalid_path");

        let uri = format!("/items/{}?limit=many", uuid::Uuid::nil());
        let request = Request::post(uri).body(Body::empty()).expect("request");
        let (status, body) = send(request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], "invalid_query");
    }

    #[tokio::test]
    async fn a_nul_character_anywhere_in_the_input_is_refused() {
        for body in [
            r#"{"name":"x\u0000y","count":1}"#,
            r#"{"name":"a","count":1,"k\u0000":1}"#,
        ] {
            let (status, reply) = send(json_post("/echo", body)).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_eq!(reply["error"]["code"], "validation_failed", "{body}");
        }
        let (status, _) = send(json_post("/echo", r#"{"name":"a\\u0000","count":1}"#)).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "an escaped backslash before u0000 is plain text"
        );

        let uri = format!("/items/{}?limit=1%00", uuid::Uuid::nil());
        let request = Request::post(uri).body(Body::empty()).expect("request");
        let (status, reply) = send(request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(reply["error"]["code"], "invalid_query");

        let request = Request::post("/items/a%00b?limit=1")
            .body(Body::empty())
            .expect("request");
        let (status, reply) = send(request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(reply["error"]["code"], "invalid_path");
    }
}
