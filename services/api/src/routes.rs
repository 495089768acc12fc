//! The public router, one module per resource. Each module exposes
//! `pub(crate) fn router() -> OpenApiRouter<AppState>`, so every route is documented in the
//! OpenAPI document by construction; `crate::app` merges them and adds the middleware and the
//! JSON fallbacks for unknown routes and methods.

mod agents;
mod analytics;
mod audit;
mod auth;
mod health;
mod status;
mod users;
mod verifications;

use aim_store::model::Page;
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::router())
        .merge(status::router())
        .merge(auth::router())
        .merge(users::router())
        .merge(agents::router())
        .merge(verifications::router())
        .merge(audit::router())
        .merge(analytics::router())
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "AIM — Agent Identity Management API",
        description = "Organizations register AI agents, give them API keys, track their trust \
                       scores and verify what they do. Errors always answer \
                       {\"error\": {\"code\", \"message\", \"fields\"?}}."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "operations", description = "Health and status"),
        (name = "auth", description = "Login and sessions"),
        (name = "users", description = "Users of the caller's organization (admin)"),
        (name = "agents", description = "Agents, trust scores, API keys, verification"),
        (name = "verifications", description = "Verification events"),
        (name = "audit", description = "Audit trail (admin)"),
        (name = "analytics", description = "Traffic and activity of the caller's organization, from the rollups"),
    )
)]
struct ApiDoc;

/// Declares the `bearer` scheme the paths refer to: a user access token or an agent key.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Lists answer at most this many rows, whatever `limit` asks for.
pub(crate) const MAX_LIMIT: i64 = 100;
pub(crate) const DEFAULT_LIMIT: i64 = 50;

/// `limit` and `offset` of a list.
#[derive(Debug, Clone, Copy, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Pagination {
    /// Rows to return, 1 to 100; 50 by default.
    pub limit: Option<i64>,
    /// Rows to skip; 0 by default.
    pub offset: Option<i64>,
}

impl Pagination {
    pub fn page(self) -> Result<Page, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid_parameter(format!(
                "limit must be between 1 and {MAX_LIMIT}"
            )));
        }
        let offset = self.offset.unwrap_or(0);
        if offset < 0 {
            return Err(ApiError::invalid_parameter("offset must not be negative"));
        }
        Ok(Page { limit, offset })
    }
}

/// Collects field errors, so a request learns everything wrong with it at once.
#[derive(Debug, Default)]
pub(crate) struct FieldErrors(std::collections::BTreeMap<String, String>);

impl FieldErrors {
    pub fn check(&mut self, ok: bool, field: &str, problem: &str) {
        if !ok {
            self.0
                .entry(field.to_owned())
                .or_insert_with(|| problem.to_owned());
        }
    }

    /// Checks a text field's trimmed length.
    pub fn text(&mut self, value: &str, field: &str, min: usize, max: usize) {
        let len = value.trim().chars().count();
        self.check(
            (min..=max).contains(&len),
            field,
            &format!("must be {min} to {max} characters"),
        );
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation { fields: self.0 })
        }
    }
}

/// A plausible address: one `@` with text on both sides, no spaces. Deliverability is not our
/// business; typos that make an address unusable are.
pub(crate) fn valid_email(email: &str) -> bool {
    let email = email.trim();
    email.len() <= 320
        && !email.contains(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        })
}

/// A list response's paging fields, beside its items.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Paging {
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

impl Paging {
    pub fn new(total: i64, page: Page) -> Self {
        Self {
            total,
            limit: page.limit,
            offset: page.offset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_need_one_at_and_no_spaces() {
        assert!(valid_email("a@b"));
        assert!(valid_email(" admin@localhost "));
        assert!(!valid_email("no-at"));
        assert!(!valid_email("@domain"));
        assert!(!valid_email("local@"));
        assert!(!valid_email("a b@c"));
        assert!(!valid_email("a@b@c"));
    }

    #[test]
    fn limits_are_validated() {
        assert!(
            Pagination {
                limit: Some(MAX_LIMIT + 1),
                offset: None,
            }
            .page()
            .is_err()
        );
        let page = Pagination {
            limit: Some(MAX_LIMIT),
            offset: None,
        }
        .page()
        .expect("the maximum");
        assert_eq!((page.limit, page.offset), (MAX_LIMIT, 0));
        let page = Pagination::default().page().expect("defaults");
        assert_eq!(page.limit, DEFAULT_LIMIT);
        assert!(
            Pagination {
                limit: Some(0),
                offset: None
            }
            .page()
            .is_err()
        );
        assert!(
            Pagination {
                limit: None,
                offset: Some(-1)
            }
            .page()
            .is_err()
        );
    }
}
