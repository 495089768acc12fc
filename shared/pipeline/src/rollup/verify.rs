//! `aim rollups verify` and `rebuild`: recompute every rollup from the raw `api_calls` rows of
//! whole UTC days and compare with (or replace) what the writers stored. Verification counts
//! and daily snapshots are not traffic and are left alone.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use futures_util::{TryStreamExt, pin_mut};
use tokio_postgres::{Client, Error};
use uuid::Uuid;

use super::histogram::Histogram;
use super::{AgentHour, Deltas, EndpointHour, OrgDay, Traffic};
use crate::copy::RowRef;

/// One rollup row whose stored traffic differs from the raw rows'.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    pub table: &'static str,
    pub key: String,
    pub stored: Traffic,
    pub computed: Traffic,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, c) = (&self.stored, &self.computed);
        write!(
            f,
            "{} {}: stored calls={} errors={} 4xx={} 5xx={} bytes_in={} bytes_out={} duration_ms={:.3} histogram_total={}; \
             from api_calls calls={} errors={} 4xx={} 5xx={} bytes_in={} bytes_out={} duration_ms={:.3} histogram_total={}",
            self.table,
            self.key,
            s.calls,
            s.errors,
            s.client_errors,
            s.server_errors,
            s.request_bytes,
            s.response_bytes,
            s.total_duration_ms,
            s.histogram.total(),
            c.calls,
            c.errors,
            c.client_errors,
            c.server_errors,
            c.request_bytes,
            c.response_bytes,
            c.total_duration_ms,
            c.histogram.total(),
        )
    }
}

fn bounds(from: NaiveDate, to: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = from.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let end = to
        .succ_opt()
        .unwrap_or(to)
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc();
    (start, end)
}

/// Folds the raw rows of days `from..=to` into deltas, streaming.
///
/// # Errors
/// The database error.
pub async fn recompute(client: &Client, from: NaiveDate, to: NaiveDate) -> Result<Deltas, Error> {
    let (start, end) = bounds(from, to);
    let rows = client
        .query_raw(
            "SELECT organization_id, agent_id, method, endpoint, status_code, duration_ms, \
                    request_size_bytes, response_size_bytes, called_at \
             FROM api_calls WHERE called_at >= $1 AND called_at < $2",
            [&start as &(dyn tokio_postgres::types::ToSql + Sync), &end],
        )
        .await?;
    pin_mut!(rows);
    let mut deltas = Deltas::default();
    while let Some(row) = rows.try_next().await? {
        let method: String = row.get(2);
        let endpoint: String = row.get(3);
        let called_at: DateTime<Utc> = row.get(8);
        deltas.add(&RowRef {
            id: Uuid::nil(),
            organization_id: row.get(0),
            agent_id: row.get(1),
            user_id: None,
            method: &method,
            endpoint: &endpoint,
            status_code: row.get(4),
            duration_ms: row.get(5),
            request_size_bytes: row.get(6),
            response_size_bytes: row.get(7),
            user_agent: None,
            ip_address: None,
            error_message: None,
            request_id: None,
            called_at_us: called_at.timestamp_micros(),
        });
    }
    Ok(deltas)
}

fn traffic(row: &tokio_postgres::Row, first: usize) -> Traffic {
    Traffic {
        calls: row.get(first),
        errors: row.get(first + 1),
        client_errors: row.get(first + 2),
        server_errors: row.get(first + 3),
        request_bytes: row.get(first + 4),
        response_bytes: row.get(first + 5),
        total_duration_ms: row.get(first + 6),
        histogram: Histogram::from_counts(row.get(first + 7)),
    }
}

const AGENT_TRAFFIC: &str = "api_calls_count, errors_count, client_errors_count, \
     server_errors_count, request_bytes, response_bytes, total_duration_ms, latency_histogram";
const ORG_TRAFFIC: &str = "total_api_calls, total_errors, client_errors, server_errors, \
     request_bytes, response_bytes, total_duration_ms, latency_histogram";

/// What the writers stored for days `from..=to`.
///
/// # Errors
/// The database error.
pub async fn stored(client: &Client, from: NaiveDate, to: NaiveDate) -> Result<Deltas, Error> {
    let (start, end) = bounds(from, to);
    let mut deltas = Deltas::default();
    for row in client
        .query(
            &format!(
                "SELECT organization_id, agent_id, hour_timestamp, {AGENT_TRAFFIC} \
                 FROM agent_activity_metrics WHERE hour_timestamp >= $1 AND hour_timestamp < $2"
            ),
            &[&start, &end],
        )
        .await?
    {
        let key = AgentHour {
            organization_id: row.get(0),
            agent_id: row.get(1),
            hour: row.get(2),
        };
        deltas.agent_hours.insert(key, traffic(&row, 3));
    }
    for row in client
        .query(
            &format!(
                "SELECT organization_id, date, {ORG_TRAFFIC} \
                 FROM organization_daily_metrics WHERE date >= $1 AND date <= $2"
            ),
            &[&from, &to],
        )
        .await?
    {
        let key = OrgDay {
            organization_id: row.get(0),
            date: row.get(1),
        };
        deltas.org_days.insert(key, traffic(&row, 2));
    }
    for row in client
        .query(
            &format!(
                "SELECT organization_id, method, endpoint, hour_timestamp, {AGENT_TRAFFIC} \
                 FROM endpoint_hourly_metrics WHERE hour_timestamp >= $1 AND hour_timestamp < $2"
            ),
            &[&start, &end],
        )
        .await?
    {
        let key = EndpointHour {
            organization_id: row.get(0),
            method: row.get(1),
            endpoint: row.get(2),
            hour: row.get(3),
        };
        deltas.endpoint_hours.insert(key, traffic(&row, 4));
    }
    Ok(deltas)
}

fn same(a: &Traffic, b: &Traffic) -> bool {
    let tolerance = 1e-6
        * a.total_duration_ms
            .abs()
            .max(b.total_duration_ms.abs())
            .max(1.0);
    a.calls == b.calls
        && a.errors == b.errors
        && a.client_errors == b.client_errors
        && a.server_errors == b.server_errors
        && a.request_bytes == b.request_bytes
        && a.response_bytes == b.response_bytes
        && (a.total_duration_ms - b.total_duration_ms).abs() <= tolerance
        && a.histogram == b.histogram
}

fn compare<K: Ord + Clone + fmt::Debug>(
    table: &'static str,
    stored: &BTreeMap<K, Traffic>,
    computed: &BTreeMap<K, Traffic>,
    out: &mut Vec<Difference>,
) {
    let keys: BTreeSet<&K> = stored.keys().chain(computed.keys()).collect();
    let zero = Traffic::default();
    for key in keys {
        let s = stored.get(key).unwrap_or(&zero);
        let c = computed.get(key).unwrap_or(&zero);
        if !same(s, c) {
            out.push(Difference {
                table,
                key: format!("{key:?}"),
                stored: s.clone(),
                computed: c.clone(),
            });
        }
    }
}

/// Every difference between the stored rollups and the raw rows for days `from..=to`.
///
/// # Errors
/// The database error.
pub async fn verify(
    client: &Client,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<Difference>, Error> {
    let computed = recompute(client, from, to).await?;
    let stored = stored(client, from, to).await?;
    let mut out = Vec::new();
    compare(
        "agent_activity_metrics",
        &stored.agent_hours,
        &computed.agent_hours,
        &mut out,
    );
    compare(
        "organization_daily_metrics",
        &stored.org_days,
        &computed.org_days,
        &mut out,
    );
    compare(
        "endpoint_hourly_metrics",
        &stored.endpoint_hours,
        &computed.endpoint_hours,
        &mut out,
    );
    Ok(out)
}

/// Replaces the stored traffic of days `from..=to` with what the raw rows say, in one
/// transaction. Returns the number of rollup rows written.
///
/// # Errors
/// The database error.
pub async fn rebuild(client: &mut Client, from: NaiveDate, to: NaiveDate) -> Result<usize, Error> {
    let computed = recompute(client, from, to).await?;
    let (start, end) = bounds(from, to);
    let statements = super::apply::RollupStatements::prepare(client).await?;
    let tx = client.transaction().await?;
    // The writers' rollup step takes the same lock: nothing reads the rows while they are zero.
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&super::apply::ROLLUP_LOCK],
    )
    .await?;
    let zero = "api_calls_count = 0, errors_count = 0, client_errors_count = 0, \
         server_errors_count = 0, request_bytes = 0, response_bytes = 0, data_processed_bytes = 0, \
         total_duration_ms = 0, avg_response_time_ms = 0, p95_response_time_ms = 0, \
         latency_histogram = '{}', updated_at = now()";
    tx.execute(
        &format!("UPDATE agent_activity_metrics SET {zero} WHERE hour_timestamp >= $1 AND hour_timestamp < $2"),
        &[&start, &end],
    )
    .await?;
    tx.execute(
        &format!("UPDATE endpoint_hourly_metrics SET {zero} WHERE hour_timestamp >= $1 AND hour_timestamp < $2"),
        &[&start, &end],
    )
    .await?;
    tx.execute(
        "UPDATE organization_daily_metrics SET total_api_calls = 0, total_errors = 0, \
             client_errors = 0, server_errors = 0, request_bytes = 0, response_bytes = 0, \
             total_data_processed_bytes = 0, total_duration_ms = 0, avg_response_time_ms = 0, \
             p95_response_time_ms = 0, latency_histogram = '{}', updated_at = now() \
         WHERE date >= $1 AND date <= $2",
        &[&from, &to],
    )
    .await?;
    super::apply::apply_and_commit(&tx, &statements, &computed, false).await?;
    tx.commit().await?;
    Ok(computed.agent_hours.len() + computed.org_days.len() + computed.endpoint_hours.len())
}
