//! The analytics dashboard: three static files compiled into the binary, so a deployment needs
//! no CDN, no asset directory and no network access to show it. The page is a client of the
//! public API like any other (it logs in and reads the analytics endpoints with its token), so
//! it has no routes of its own beyond these files and inherits the API's tenancy and
//! validation.
//!
//! Served by hand rather than with `tower-http`'s `ServeDir`: the files live in the binary, not
//! on disk, and three routes with a strong `ETag` are all that is needed.

use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

/// Scripts and styles only from this origin, API calls only to it, no framing: the page
/// handles a token, so nothing else may run in it.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

struct Asset {
    body: &'static str,
    content_type: &'static str,
    etag: HeaderValue,
}

impl Asset {
    fn new(body: &'static str, content_type: &'static str) -> Self {
        let digest = Sha256::digest(body.as_bytes());
        let etag = format!("\"{}\"", hex::encode(&digest[..16]));
        Self {
            body,
            content_type,
            // Hex digits and quotes are always a valid header value; the fallback is unreachable.
            etag: HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"aim\"")),
        }
    }

    /// The file, or 304 when the browser already has this version. `no-cache` makes the
    /// browser ask every time, so a new binary's page is never mixed with an old script.
    fn respond(&self, request: &HeaderMap) -> Response {
        let fresh = request
            .get(header::IF_NONE_MATCH)
            .is_some_and(|tags| tags.as_bytes() == self.etag.as_bytes());
        let headers = [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(self.content_type),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::ETAG, self.etag.clone()),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ];
        if fresh {
            (StatusCode::NOT_MODIFIED, headers).into_response()
        } else {
            (headers, self.body).into_response()
        }
    }
}

static PAGE: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        include_str!("../dashboard/index.html"),
        "text/html; charset=utf-8",
    )
});
static SCRIPT: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        include_str!("../dashboard/app.js"),
        "text/javascript; charset=utf-8",
    )
});
static STYLE: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        include_str!("../dashboard/app.css"),
        "text/css; charset=utf-8",
    )
});

/// `/` sends a browser to the dashboard; the files are under `/dashboard`.
pub(crate) fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/dashboard") }))
        .route(
            "/dashboard",
            get(|h: HeaderMap| async move { PAGE.respond(&h) }),
        )
        .route(
            "/dashboard/app.js",
            get(|h: HeaderMap| async move { SCRIPT.respond(&h) }),
        )
        .route(
            "/dashboard/app.css",
            get(|h: HeaderMap| async move { STYLE.respond(&h) }),
        )
}
