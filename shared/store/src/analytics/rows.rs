//! The rollup rows the analytics reads return, and the column lists that select them.

use aim_traffic::{Histogram, Traffic};
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

/// One rollup row: which hour or day (`bucket`) and, when relevant, which endpoint or agent, and
/// its traffic in the one model the writers and the routes use too.
#[derive(Debug, Clone)]
pub struct RollupRow {
    pub bucket: DateTime<Utc>,
    pub method: Option<String>,
    pub endpoint: Option<String>,
    pub agent_id: Option<Uuid>,
    pub traffic: Traffic,
}

impl<'r> sqlx::FromRow<'r, PgRow> for RollupRow {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        let last_call: Option<DateTime<Utc>> = row.try_get("last_call_at")?;
        Ok(Self {
            bucket: row.try_get("bucket")?,
            method: row.try_get("method")?,
            endpoint: row.try_get("endpoint")?,
            agent_id: row.try_get("agent_id")?,
            traffic: Traffic {
                calls: row.try_get("calls")?,
                errors: row.try_get("errors")?,
                client_errors: row.try_get("client_errors")?,
                server_errors: row.try_get("server_errors")?,
                request_bytes: row.try_get("request_bytes")?,
                response_bytes: row.try_get("response_bytes")?,
                total_duration_ms: row.try_get("total_duration_ms")?,
                histogram: Histogram::from_counts(row.try_get("histogram")?),
                last_call_us: last_call.map_or(0, |at| at.timestamp_micros()),
            },
        })
    }
}

pub(super) const TRAFFIC: &str = "api_calls_count AS calls, errors_count AS errors, \
     client_errors_count AS client_errors, server_errors_count AS server_errors, request_bytes, \
     response_bytes, total_duration_ms, latency_histogram AS histogram, last_call_at";

pub(super) const HOURLY_ROW: &str = "hour_timestamp AS bucket, ";
pub(super) const DAILY_ROW: &str = "(date::timestamp AT TIME ZONE 'UTC') AS bucket, ";
pub(super) const ORG_TRAFFIC: &str = "total_api_calls AS calls, total_errors AS errors, client_errors, \
     server_errors, request_bytes, response_bytes, total_duration_ms, latency_histogram AS histogram, \
     last_call_at";
