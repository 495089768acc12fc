//! Applying a batch's deltas as the last step of the writer's transaction.
//!
//! Merging histograms inside PostgreSQL (element-wise addition of `bigint[]` in SQL, a
//! percentile by window function) cost over a hundred microseconds per row and cut ingest to a
//! few thousand events per second. So the merge is done in Rust: the step takes a
//! transaction-level advisory lock (rollup steps of concurrent writers, and `rebuild`, run one at
//! a time, so no two read-modify-write the same row), reads the current traffic of the batch's
//! keys, adds the deltas, computes `avg_response_time_ms` and `p95_response_time_ms`, and upserts
//! absolute values. The lock is held from the read to the commit only; the COPY of raw rows runs
//! outside it. Each table takes one read and one upsert with the keys as parallel arrays
//! (histograms flattened), whatever the batch's size, and only the traffic columns are written:
//! verification counts and daily snapshots, kept by others, are untouched.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use futures_util::future::join_all;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Error, GenericClient, Row, Statement};
use uuid::Uuid;

use super::sql::{key_columns, read_sql, update_sql, upsert_sql};
use super::{Deltas, Key, Table, Traffic};
use aim_traffic::Histogram;

/// `pg_advisory_xact_lock` key of the rollup step ("AIMrollu").
pub const ROLLUP_LOCK: i64 = 0x4149_4d72_6f6c_6c75;

/// The read, update and upsert statements of every table, prepared on one connection.
pub struct RollupStatements {
    read: Vec<Statement>,
    update: Vec<Statement>,
    upsert: Vec<Statement>,
}

impl RollupStatements {
    /// # Errors
    /// The database error.
    pub async fn prepare(client: &Client) -> Result<Self, Error> {
        let mut read = Vec::new();
        let mut update = Vec::new();
        let mut upsert = Vec::new();
        for table in Table::ALL {
            read.push(client.prepare(&read_sql(table)).await?);
            update.push(client.prepare(&update_sql(table)).await?);
            upsert.push(client.prepare(&upsert_sql(table)).await?);
        }
        Ok(Self {
            read,
            update,
            upsert,
        })
    }
}

/// A stored row's key, from the key columns at the start of `row` (as [`read_sql`](super::sql::read_sql) and
/// `verify` select them).
pub fn key_of(table: Table, row: &Row) -> Result<Key, Error> {
    let organization_id: Uuid = row.try_get(0)?;
    let mut next = 1;
    let agent_id = if table.per_agent() {
        next += 1;
        Some(row.try_get::<_, Uuid>(1)?)
    } else {
        None
    };
    let route = if table.per_endpoint() {
        next += 2;
        Some((row.try_get(next - 2)?, row.try_get(next - 1)?))
    } else {
        None
    };
    let start = if table.daily() {
        let date: NaiveDate = row.try_get(next)?;
        date.and_hms_opt(0, 0, 0)
            .unwrap_or_default()
            .and_utc()
            .timestamp()
    } else {
        row.try_get::<_, DateTime<Utc>>(next)?.timestamp()
    };
    Ok(Key {
        organization_id,
        agent_id,
        route,
        start,
    })
}

/// The traffic read by [`read_columns`](super::sql::read_columns), starting at column `first`.
pub fn traffic_of(row: &Row, first: usize) -> Result<Traffic, Error> {
    Ok(Traffic {
        calls: row.try_get(first)?,
        errors: row.try_get(first + 1)?,
        client_errors: row.try_get(first + 2)?,
        server_errors: row.try_get(first + 3)?,
        request_bytes: row.try_get(first + 4)?,
        response_bytes: row.try_get(first + 5)?,
        total_duration_ms: row.try_get(first + 6)?,
        histogram: Histogram::from_counts(row.try_get(first + 7)?),
        last_call_us: row
            .try_get::<_, Option<DateTime<Utc>>>(first + 8)?
            .map_or(0, |at| at.timestamp_micros()),
    })
}

/// The keys of one table as parallel arrays.
#[derive(Default)]
struct KeyArrays<'a> {
    organizations: Vec<Uuid>,
    agents: Vec<Uuid>,
    methods: Vec<&'a str>,
    endpoints: Vec<&'a str>,
    hours: Vec<DateTime<Utc>>,
    dates: Vec<NaiveDate>,
}

impl<'a> KeyArrays<'a> {
    fn new(table: Table, keys: impl Iterator<Item = &'a Key>) -> Self {
        let mut arrays = Self::default();
        for key in keys {
            arrays.organizations.push(key.organization_id);
            if let Some(agent) = key.agent_id {
                arrays.agents.push(agent);
            }
            if let Some((method, endpoint)) = &key.route {
                arrays.methods.push(method);
                arrays.endpoints.push(endpoint);
            }
            if table.daily() {
                arrays.dates.push(key.date());
            } else {
                arrays.hours.push(key.hour());
            }
        }
        arrays
    }

    fn params(&self, table: Table) -> Vec<&(dyn ToSql + Sync)> {
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&self.organizations];
        if table.per_agent() {
            params.push(&self.agents);
        }
        if table.per_endpoint() {
            params.push(&self.methods);
            params.push(&self.endpoints);
        }
        if table.daily() {
            params.push(&self.dates);
        } else {
            params.push(&self.hours);
        }
        params
    }
}

/// Parallel arrays of absolute traffic values.
#[derive(Default)]
struct Columns {
    calls: Vec<i64>,
    errors: Vec<i64>,
    client_errors: Vec<i64>,
    server_errors: Vec<i64>,
    request_bytes: Vec<i64>,
    response_bytes: Vec<i64>,
    duration: Vec<f64>,
    histograms: Vec<i64>,
    avg: Vec<f64>,
    p95: Vec<f64>,
    /// 1-based bounds of each row's histogram in `histograms`.
    lo: Vec<i32>,
    hi: Vec<i32>,
    last_call: Vec<Option<DateTime<Utc>>>,
}

impl Columns {
    fn push(&mut self, t: &Traffic) {
        self.calls.push(t.calls);
        self.errors.push(t.errors);
        self.client_errors.push(t.client_errors);
        self.server_errors.push(t.server_errors);
        self.request_bytes.push(t.request_bytes);
        self.response_bytes.push(t.response_bytes);
        self.duration.push(t.total_duration_ms);
        let counts = t.histogram.counts();
        let used = counts
            .iter()
            .rposition(|c| *c != 0)
            .map_or(0, |last| last + 1);
        let lo = self.histograms.len() + 1;
        self.histograms.extend_from_slice(&counts[..used]);
        self.lo.push(i32::try_from(lo).unwrap_or(i32::MAX));
        self.hi
            .push(i32::try_from(self.histograms.len()).unwrap_or(i32::MAX));
        self.avg.push(t.avg_ms());
        self.p95.push(t.histogram.quantile(0.95));
        self.last_call.push(t.last_call());
    }

    /// In the order of [`upsert_sql`](super::sql::upsert_sql): six counts, duration, the flat histograms, avg, p95,
    /// the histogram bounds, the last call.
    fn params(&self) -> [&(dyn ToSql + Sync); 13] {
        [
            &self.calls,
            &self.errors,
            &self.client_errors,
            &self.server_errors,
            &self.request_bytes,
            &self.response_bytes,
            &self.duration,
            &self.histograms,
            &self.avg,
            &self.p95,
            &self.lo,
            &self.hi,
            &self.last_call,
        ]
    }
}

/// Each table's key arrays followed by its traffic arrays, as the update and the upsert take them.
fn statement_params<'a>(sets: &'a [(KeyArrays<'_>, Columns)]) -> Vec<Vec<&'a (dyn ToSql + Sync)>> {
    Table::ALL
        .iter()
        .zip(sets)
        .map(|(table, (keys, traffic))| {
            let mut all = keys.params(*table);
            all.extend(traffic.params());
            all
        })
        .collect()
}

/// Runs the rollup step and then, when `commit`, `COMMIT`, queued right behind the upserts.
///
/// # Errors
/// The database error.
pub async fn apply_and_commit(
    client: &impl GenericClient,
    statements: &RollupStatements,
    deltas: &Deltas,
    commit: bool,
) -> Result<(), Error> {
    let rows: Vec<Vec<(Key, Traffic)>> = Table::ALL.iter().map(|t| deltas.rows(*t)).collect();
    let keys: Vec<KeyArrays<'_>> = Table::ALL
        .iter()
        .zip(&rows)
        .map(|(table, rows)| KeyArrays::new(*table, rows.iter().map(|(key, _)| key)))
        .collect();
    let key_params: Vec<Vec<&(dyn ToSql + Sync)>> = Table::ALL
        .iter()
        .zip(&keys)
        .map(|(table, keys)| keys.params(*table))
        .collect();

    // Sent in one go (requests on a connection go out on first poll, in order), so the reads
    // run after the lock is granted.
    let lock_sql = format!("SELECT pg_advisory_xact_lock({ROLLUP_LOCK})");
    let reads = join_all(
        statements
            .read
            .iter()
            .zip(&key_params)
            .map(|(statement, params)| client.query(statement, params)),
    );
    let (lock, read) = tokio::join!(client.batch_execute(&lock_sql), reads);
    lock?;

    // Per table: rows the read found (rewritten by UPDATE) and new ones (upserted: a
    // verification may create a row meanwhile).
    let mut found = Vec::with_capacity(Table::ALL.len());
    let mut fresh = Vec::with_capacity(Table::ALL.len());
    for ((table, stored), rows) in Table::ALL.iter().zip(read).zip(&rows) {
        let first = key_columns(*table).len();
        let mut current = HashMap::with_capacity(rows.len());
        for row in stored? {
            current.insert(key_of(*table, &row)?, traffic_of(&row, first)?);
        }
        let (mut old_keys, mut old_columns) = (Vec::new(), Columns::default());
        let (mut new_keys, mut new_columns) = (Vec::new(), Columns::default());
        for (key, delta) in rows {
            // Each stored row is merged once: take it instead of copying its histogram.
            match current.remove(key) {
                Some(mut total) => {
                    total.merge(delta);
                    old_keys.push(key);
                    old_columns.push(&total);
                }
                None => {
                    new_keys.push(key);
                    new_columns.push(delta);
                }
            }
        }
        found.push((KeyArrays::new(*table, old_keys.into_iter()), old_columns));
        fresh.push((KeyArrays::new(*table, new_keys.into_iter()), new_columns));
    }
    let (update_params, upsert_params) = (statement_params(&found), statement_params(&fresh));

    // Fixed table order (each table's updates, then its new rows); COMMIT queued behind them.
    let upserts = join_all(
        statements
            .update
            .iter()
            .zip(&update_params)
            .zip(statements.upsert.iter().zip(&upsert_params))
            .flat_map(|(update, upsert)| [update, upsert])
            .map(|(statement, params)| client.execute(statement, params)),
    );
    let (written, committed) = tokio::join!(upserts, async {
        if commit {
            client.batch_execute("COMMIT").await
        } else {
            Ok(())
        }
    });
    for result in written {
        result?;
    }
    committed
}
