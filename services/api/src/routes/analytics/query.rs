//! The analytics read model's query side: the typed parameters every analytics route shares
//! (a period, a window of days, a page), parsed and range-checked once, the window logic (which
//! rollup rows a rolling window reads) and the figures every answer formats the same way. The
//! routes hold handlers and response types only.

use aim_store::analytics::{Rollup, RollupRow};
use aim_store::model::Page;
use aim_traffic::Traffic;
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::error::ApiError;
use crate::routes::paging::Pagination;
use crate::state::AppState;

const MIB: f64 = 1024.0 * 1024.0;

/// The longest rolling window, in days.
pub(super) const MAX_DAYS: i64 = 365;

/// A rolling period of whole days, named (`day`, `week`, `month`, `year`) or counted (`days`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Period {
    /// How answers name it: the name asked for, or `"{days}d"`.
    pub label: String,
    pub days: i64,
}

impl Period {
    /// `days` (1–365) wins over `period`; with neither, `default`.
    pub fn parse(period: Option<&str>, days: Option<i64>, default: &str) -> Result<Self, ApiError> {
        let name = period.unwrap_or(default);
        let named_days = match name {
            "day" => 1,
            "week" => 7,
            "month" => 30,
            "year" => 365,
            _ => {
                return Err(ApiError::invalid_parameter(
                    "period must be one of day, week, month, year",
                ));
            }
        };
        // Checked even when `days` wins, so an unknown period is refused whatever comes with it.
        if let Some(days) = days {
            return Ok(Self {
                label: format!("{days}d"),
                days: Self::days(days)?,
            });
        }
        Ok(Self {
            label: name.to_owned(),
            days: named_days,
        })
    }

    fn days(days: i64) -> Result<i64, ApiError> {
        if (1..=MAX_DAYS).contains(&days) {
            Ok(days)
        } else {
            Err(ApiError::invalid_parameter(format!(
                "days must be between 1 and {MAX_DAYS}"
            )))
        }
    }

    /// From the start of the hour `days` ago to the end of today: nothing is stamped after now,
    /// and today then comes from one daily row per key instead of up to 24 hourly ones.
    pub fn window(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        let now = Utc::now();
        let tomorrow = now.date_naive() + chrono::Days::new(1);
        (
            aim_pipeline::rollup::truncate_to_hour(now - Duration::days(self.days)),
            tomorrow.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc(),
        )
    }

    /// The organization's rollup rows of one family over this period.
    pub async fn rows(
        &self,
        state: &AppState,
        organization: Uuid,
        rollup: Rollup,
    ) -> Result<Vec<RollupRow>, ApiError> {
        let (from, to) = self.window();
        Ok(aim_store::analytics::window_rows(state.db()?, organization, rollup, from, to).await?)
    }
}

/// A page of a list whose default size is `default_limit` (the lists' 1–100 and offset checks).
pub(super) fn page(
    limit: Option<i64>,
    offset: Option<i64>,
    default_limit: i64,
) -> Result<Page, ApiError> {
    Pagination {
        limit: Some(limit.unwrap_or(default_limit)),
        offset,
    }
    .page()
}

/// The sum of every row's traffic.
pub(super) fn total(rows: &[RollupRow]) -> Traffic {
    let mut total = Traffic::default();
    for row in rows {
        total.merge(&row.traffic);
    }
    total
}

pub(super) fn percent(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        round2(100.0 * part as f64 / whole as f64)
    }
}

pub(super) fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Not rounded: a day of small calls is a few KiB, which two decimals of a MiB would show as
/// 0. Dividing by 2^20 is exact for any byte count below 2^53, so the value carries every byte.
pub(super) fn mib(bytes: i64) -> f64 {
    bytes as f64 / MIB
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_map_to_days_and_bad_ones_are_refused() {
        let days = |period, days| Period::parse(period, days, "month").map(|p| p.days);
        assert_eq!(days(None, None).expect("default"), 30);
        assert_eq!(days(Some("week"), None).expect("week"), 7);
        assert_eq!(days(Some("year"), Some(3)).expect("days wins"), 3);
        assert!(days(Some("decade"), None).is_err());
        assert!(days(None, Some(0)).is_err());
        assert!(days(None, Some(366)).is_err());
        assert_eq!(Period::parse(None, Some(3), "day").expect("3").label, "3d");
    }

    #[test]
    fn pages_default_to_their_list_and_keep_the_lists_ranges() {
        assert_eq!(page(None, None, 10).expect("default").limit, 10);
        assert!(page(Some(0), None, 10).is_err());
        assert!(page(Some(101), None, 10).is_err());
        assert!(page(None, Some(-1), 10).is_err());
    }
}
