//! Paging of lists: the `limit` and `offset` every list takes, checked once, and the paging
//! fields its answer carries.

use aim_store::model::Page;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ApiError;

/// Lists answer at most this many rows, whatever `limit` asks for.
pub(crate) const MAX_LIMIT: i64 = 100;
pub(crate) const DEFAULT_LIMIT: i64 = 50;

/// `limit` and `offset` of a list.
#[derive(Debug, Clone, Copy, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Pagination {
    /// Rows to return, 1 to 100; 50 by default.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Rows to skip; 0 by default.
    #[param(minimum = 0)]
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
