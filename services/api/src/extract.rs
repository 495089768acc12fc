//! Our own extractors, so that a malformed body, query string or path parameter gets the same
//! JSON envelope as every other error instead of axum's plain-text rejection.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// `axum::Json` with our errors: 400 bad syntax, 422 wrong shape, 415 wrong content type,
/// 413 too large.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

impl<T: serde::Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Query` with our errors (400).
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// `axum::extract::Path` with our errors (400).
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

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
}
