//! `aim rollups verify` and `rebuild`: recompute every rollup from the raw `api_calls` rows of
//! whole UTC days and compare with (or replace) what the writers stored. Verification counts
//! and daily snapshots are not traffic and are left alone.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use futures_util::{TryStreamExt, pin_mut};
use tokio_postgres::{Client, Error};
use uuid::Uuid;

use super::{Deltas, Key, Table, Traffic};
use super::{apply, sql};
use crate::event::RowRef;

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
            "{} {}: stored calls={} errors={} 4xx={} 5xx={} bytes_in={} bytes_out={} duration_ms={:.3} histogram_total={} last_call_us={}; \
             from api_calls calls={} errors={} 4xx={} 5xx={} bytes_in={} bytes_out={} duration_ms={:.3} histogram_total={} last_call_us={}",
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
            s.last_call_us,
            c.calls,
            c.errors,
            c.client_errors,
            c.server_errors,
            c.request_bytes,
            c.response_bytes,
            c.total_duration_ms,
            c.histogram.total(),
            c.last_call_us,
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

/// What the writers stored for days `from..=to`, per table.
///
/// # Errors
/// The database error.
pub async fn stored(
    client: &Client,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<BTreeMap<Key, Traffic>>, Error> {
    let (start, end) = bounds(from, to);
    let mut tables = Vec::new();
    for table in Table::ALL {
        let keys = sql::key_columns(table)
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>();
        let sql = format!(
            "SELECT {keys}, {traffic} FROM {name} WHERE {bucket} >= $1 AND {bucket} < $2",
            keys = keys.join(", "),
            traffic = sql::read_columns(table),
            name = table.name(),
            bucket = keys.last().copied().unwrap_or_default(),
        );
        let rows = if table.daily() {
            let end = to.succ_opt().unwrap_or(to);
            client.query(&sql, &[&from, &end]).await?
        } else {
            client.query(&sql, &[&start, &end]).await?
        };
        let mut stored = BTreeMap::new();
        for row in rows {
            stored.insert(
                apply::key_of(table, &row)?,
                apply::traffic_of(&row, keys.len())?,
            );
        }
        tables.push(stored);
    }
    Ok(tables)
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
        && a.last_call_us == b.last_call_us
}

fn compare(
    table: &'static str,
    stored: &BTreeMap<Key, Traffic>,
    computed: &BTreeMap<Key, Traffic>,
    out: &mut Vec<Difference>,
) {
    let keys: BTreeSet<&Key> = stored.keys().chain(computed.keys()).collect();
    let zero = Traffic::default();
    for key in keys {
        let s = stored.get(key).unwrap_or(&zero);
        let c = computed.get(key).unwrap_or(&zero);
        if !same(s, c) {
            out.push(Difference {
                table,
                key: key.to_string(),
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
    // One snapshot for both reads: batches committing meanwhile cannot show as differences.
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let read = async {
        let computed = recompute(client, from, to).await?;
        let stored = stored(client, from, to).await?;
        Ok::<_, Error>((computed, stored))
    }
    .await;
    client.batch_execute("COMMIT").await?;
    let (computed, stored) = read?;
    let mut out = Vec::new();
    for (table, stored) in Table::ALL.into_iter().zip(&stored) {
        compare(table.name(), stored, &computed.map(table), &mut out);
    }
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
    for table in Table::ALL {
        let zero = sql::traffic_columns(table)
            .iter()
            .map(|column| match *column {
                "latency_histogram" => format!("{column} = '{{}}'"),
                "last_call_at" => format!("{column} = NULL"),
                _ => format!("{column} = 0"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let bucket = if table.daily() {
            "date"
        } else {
            "hour_timestamp"
        };
        let sql = format!(
            "UPDATE {} SET {zero}, updated_at = now() WHERE {bucket} >= $1 AND {bucket} < $2",
            table.name()
        );
        if table.daily() {
            let end = to.succ_opt().unwrap_or(to);
            tx.execute(&sql, &[&from, &end]).await?;
        } else {
            tx.execute(&sql, &[&start, &end]).await?;
        }
    }
    super::apply::apply_and_commit(&tx, &statements, &computed, false).await?;
    tx.commit().await?;
    Ok(Table::ALL.iter().map(|t| computed.len(*t)).sum())
}
