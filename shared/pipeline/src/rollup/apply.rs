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

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Error, GenericClient, Row, Statement};
use uuid::Uuid;

use super::histogram::Histogram;
use super::{AgentHour, Deltas, EndpointHour, OrgDay, Traffic};

/// `pg_advisory_xact_lock` key of the rollup step ("AIMrollup").
pub const ROLLUP_LOCK: i64 = 0x4149_4d72_6f6c_6c75;

const TRAFFIC_READ: &str = "api_calls_count, errors_count, client_errors_count, \
     server_errors_count, request_bytes, response_bytes, total_duration_ms, latency_histogram";
const ORG_TRAFFIC_READ: &str = "total_api_calls, total_errors, client_errors, server_errors, \
     request_bytes, response_bytes, total_duration_ms, latency_histogram";

/// `$first..` are the traffic arrays; each row's histogram is its `[lo:hi]` slice of the flat
/// array at `$first + 7` (trailing zero buckets are not sent; readers pad them back).
fn traffic_values(first: usize) -> String {
    let hist = format!("${}", first + 7);
    format!(
        "u.c, u.e, u.ce, u.se, u.rq, u.rs, u.rq + u.rs, u.d, u.avg, u.p95, \
         coalesce(({hist}::int8[])[u.lo : u.hi], '{{}}'), now()"
    )
}

fn traffic_arrays(first: usize) -> String {
    let kinds = [
        (0, "int8"),
        (1, "int8"),
        (2, "int8"),
        (3, "int8"),
        (4, "int8"),
        (5, "int8"),
        (6, "float8"),
        (8, "float8"),
        (9, "float8"),
        (10, "int4"),
        (11, "int4"),
    ];
    kinds
        .iter()
        .map(|(offset, kind)| format!("${}::{kind}[]", first + offset))
        .collect::<Vec<_>>()
        .join(", ")
}

const TRAFFIC_ALIASES: &str = "c, e, ce, se, rq, rs, d, avg, p95, lo, hi, n";
const HOURLY_COLUMNS: &str = "api_calls_count, errors_count, client_errors_count, \
     server_errors_count, request_bytes, response_bytes, data_processed_bytes, total_duration_ms, \
     avg_response_time_ms, p95_response_time_ms, latency_histogram, updated_at";
const HOURLY_SET: &str = "api_calls_count = EXCLUDED.api_calls_count, \
     errors_count = EXCLUDED.errors_count, client_errors_count = EXCLUDED.client_errors_count, \
     server_errors_count = EXCLUDED.server_errors_count, request_bytes = EXCLUDED.request_bytes, \
     response_bytes = EXCLUDED.response_bytes, data_processed_bytes = EXCLUDED.data_processed_bytes, \
     total_duration_ms = EXCLUDED.total_duration_ms, \
     avg_response_time_ms = EXCLUDED.avg_response_time_ms, \
     p95_response_time_ms = EXCLUDED.p95_response_time_ms, \
     latency_histogram = EXCLUDED.latency_histogram, updated_at = now()";

// Reads join the keys to the table (a primary-key lookup per key); a row-constructor `IN`
// made PostgreSQL scan the whole table per batch, slower with every batch written.
pub fn agent_read_sql() -> String {
    format!(
        "SELECT m.organization_id, m.agent_id, m.hour_timestamp, {TRAFFIC_READ} \
         FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[]) AS k(o, a, h) \
         JOIN agent_activity_metrics m \
           ON m.organization_id = k.o AND m.agent_id = k.a AND m.hour_timestamp = k.h"
    )
}

pub fn org_read_sql() -> String {
    format!(
        "SELECT m.organization_id, m.date, {ORG_TRAFFIC_READ} \
         FROM unnest($1::uuid[], $2::date[]) AS k(o, day) \
         JOIN organization_daily_metrics m ON m.organization_id = k.o AND m.date = k.day"
    )
}

pub fn endpoint_read_sql() -> String {
    format!(
        "SELECT m.organization_id, m.method, m.endpoint, m.hour_timestamp, {TRAFFIC_READ} \
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[]) AS k(o, me, e, h) \
         JOIN endpoint_hourly_metrics m ON m.organization_id = k.o AND m.method = k.me \
           AND m.endpoint = k.e AND m.hour_timestamp = k.h"
    )
}

pub fn agent_sql() -> String {
    format!(
        "INSERT INTO agent_activity_metrics (organization_id, agent_id, hour_timestamp, {HOURLY_COLUMNS}) \
         SELECT u.o, u.a, u.h, {values} \
         FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], {arrays}) \
             WITH ORDINALITY AS u(o, a, h, {TRAFFIC_ALIASES}) ORDER BY u.n \
         ON CONFLICT (organization_id, agent_id, hour_timestamp) DO UPDATE SET {HOURLY_SET}",
        values = traffic_values(4),
        arrays = traffic_arrays(4),
    )
}

pub fn org_sql() -> String {
    format!(
        "INSERT INTO organization_daily_metrics (organization_id, date, total_api_calls, \
             total_errors, client_errors, server_errors, request_bytes, response_bytes, \
             total_data_processed_bytes, total_duration_ms, avg_response_time_ms, \
             p95_response_time_ms, latency_histogram, updated_at) \
         SELECT u.o, u.day, {values} \
         FROM unnest($1::uuid[], $2::date[], {arrays}) \
             WITH ORDINALITY AS u(o, day, {TRAFFIC_ALIASES}) ORDER BY u.n \
         ON CONFLICT (organization_id, date) DO UPDATE SET \
             total_api_calls = EXCLUDED.total_api_calls, total_errors = EXCLUDED.total_errors, \
             client_errors = EXCLUDED.client_errors, server_errors = EXCLUDED.server_errors, \
             request_bytes = EXCLUDED.request_bytes, response_bytes = EXCLUDED.response_bytes, \
             total_data_processed_bytes = EXCLUDED.total_data_processed_bytes, \
             total_duration_ms = EXCLUDED.total_duration_ms, \
             avg_response_time_ms = EXCLUDED.avg_response_time_ms, \
             p95_response_time_ms = EXCLUDED.p95_response_time_ms, \
             latency_histogram = EXCLUDED.latency_histogram, updated_at = now()",
        values = traffic_values(3),
        arrays = traffic_arrays(3),
    )
}

pub fn endpoint_sql() -> String {
    format!(
        "INSERT INTO endpoint_hourly_metrics (organization_id, method, endpoint, hour_timestamp, {HOURLY_COLUMNS}) \
         SELECT u.o, u.method, u.endpoint, u.h, {values} \
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], {arrays}) \
             WITH ORDINALITY AS u(o, method, endpoint, h, {TRAFFIC_ALIASES}) ORDER BY u.n \
         ON CONFLICT (organization_id, method, endpoint, hour_timestamp) DO UPDATE SET {HOURLY_SET}",
        values = traffic_values(5),
        arrays = traffic_arrays(5),
    )
}

/// The six statements of the rollup step, prepared on one connection.
pub struct RollupStatements {
    pub agent_read: Statement,
    pub org_read: Statement,
    pub endpoint_read: Statement,
    pub agent: Statement,
    pub org: Statement,
    pub endpoint: Statement,
}

impl RollupStatements {
    /// # Errors
    /// The database error.
    pub async fn prepare(client: &Client) -> Result<Self, Error> {
        Ok(Self {
            agent_read: client.prepare(&agent_read_sql()).await?,
            org_read: client.prepare(&org_read_sql()).await?,
            endpoint_read: client.prepare(&endpoint_read_sql()).await?,
            agent: client.prepare(&agent_sql()).await?,
            org: client.prepare(&org_sql()).await?,
            endpoint: client.prepare(&endpoint_sql()).await?,
        })
    }

    /// Every SQL text, for callers that cache prepared statements themselves.
    pub fn sql() -> [String; 6] {
        [
            agent_read_sql(),
            org_read_sql(),
            endpoint_read_sql(),
            agent_sql(),
            org_sql(),
            endpoint_sql(),
        ]
    }
}

fn read_traffic(row: &Row, first: usize) -> Traffic {
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
    }

    /// In the order of `traffic_arrays`: six counts, duration, the flat histograms, avg, p95,
    /// the histogram bounds.
    fn params(&self) -> [&(dyn ToSql + Sync); 12] {
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
        ]
    }
}

/// Current + delta for every key, in key order.
fn merged<K: Ord + Clone>(
    deltas: &BTreeMap<K, Traffic>,
    mut current: BTreeMap<K, Traffic>,
) -> Vec<(K, Traffic)> {
    deltas
        .iter()
        .map(|(key, delta)| {
            // Each stored row is merged once: take it instead of copying its histogram.
            let mut total = current.remove(key).unwrap_or_default();
            total.merge(delta);
            (key.clone(), total)
        })
        .collect()
}

/// Runs the rollup step and then `COMMIT`, which is queued right behind the upserts.
///
/// # Errors
/// The database error.
pub async fn apply_and_commit(
    client: &impl GenericClient,
    statements: &RollupStatements,
    deltas: &Deltas,
    commit: bool,
) -> Result<(), Error> {
    let agent_orgs: Vec<Uuid> = deltas
        .agent_hours
        .keys()
        .map(|k| k.organization_id)
        .collect();
    let agents: Vec<Uuid> = deltas.agent_hours.keys().map(|k| k.agent_id).collect();
    let agent_hours: Vec<DateTime<Utc>> = deltas.agent_hours.keys().map(|k| k.hour).collect();
    let orgs: Vec<Uuid> = deltas.org_days.keys().map(|k| k.organization_id).collect();
    let days: Vec<NaiveDate> = deltas.org_days.keys().map(|k| k.date).collect();
    let ep_orgs: Vec<Uuid> = deltas
        .endpoint_hours
        .keys()
        .map(|k| k.organization_id)
        .collect();
    let methods: Vec<&str> = deltas
        .endpoint_hours
        .keys()
        .map(|k| k.method.as_str())
        .collect();
    let endpoints: Vec<&str> = deltas
        .endpoint_hours
        .keys()
        .map(|k| k.endpoint.as_str())
        .collect();
    let ep_hours: Vec<DateTime<Utc>> = deltas.endpoint_hours.keys().map(|k| k.hour).collect();

    // Sent in one go (simple and prepared statements both go out on first poll, in order), so
    // the reads run after the lock is granted.
    let lock_sql = format!("SELECT pg_advisory_xact_lock({ROLLUP_LOCK})");
    let agent_keys: [&(dyn ToSql + Sync); 3] = [&agent_orgs, &agents, &agent_hours];
    let org_keys: [&(dyn ToSql + Sync); 2] = [&orgs, &days];
    let ep_keys: [&(dyn ToSql + Sync); 4] = [&ep_orgs, &methods, &endpoints, &ep_hours];
    let (lock, agent_rows, org_rows, ep_rows) = tokio::join!(
        client.batch_execute(&lock_sql),
        client.query(&statements.agent_read, &agent_keys),
        client.query(&statements.org_read, &org_keys),
        client.query(&statements.endpoint_read, &ep_keys),
    );
    lock?;
    let current_agents: BTreeMap<AgentHour, Traffic> = agent_rows?
        .iter()
        .map(|r| {
            let key = AgentHour {
                organization_id: r.get(0),
                agent_id: r.get(1),
                hour: r.get(2),
            };
            (key, read_traffic(r, 3))
        })
        .collect();
    let current_orgs: BTreeMap<OrgDay, Traffic> = org_rows?
        .iter()
        .map(|r| {
            let key = OrgDay {
                organization_id: r.get(0),
                date: r.get(1),
            };
            (key, read_traffic(r, 2))
        })
        .collect();
    let current_eps: BTreeMap<EndpointHour, Traffic> = ep_rows?
        .iter()
        .map(|r| {
            let key = EndpointHour {
                organization_id: r.get(0),
                method: r.get(1),
                endpoint: r.get(2),
                hour: r.get(3),
            };
            (key, read_traffic(r, 4))
        })
        .collect();

    let mut agent_cols = Columns::default();
    for (_, t) in merged(&deltas.agent_hours, current_agents) {
        agent_cols.push(&t);
    }
    let mut org_cols = Columns::default();
    for (_, t) in merged(&deltas.org_days, current_orgs) {
        org_cols.push(&t);
    }
    let mut ep_cols = Columns::default();
    for (_, t) in merged(&deltas.endpoint_hours, current_eps) {
        ep_cols.push(&t);
    }
    let mut agent_params: Vec<&(dyn ToSql + Sync)> = vec![&agent_orgs, &agents, &agent_hours];
    agent_params.extend(agent_cols.params());
    let mut org_params: Vec<&(dyn ToSql + Sync)> = vec![&orgs, &days];
    org_params.extend(org_cols.params());
    let mut ep_params: Vec<&(dyn ToSql + Sync)> = vec![&ep_orgs, &methods, &endpoints, &ep_hours];
    ep_params.extend(ep_cols.params());

    // Fixed table order, rows in key order; COMMIT queued behind them.
    let (a, o, e, c) = tokio::join!(
        client.execute(&statements.agent, &agent_params),
        client.execute(&statements.org, &org_params),
        client.execute(&statements.endpoint, &ep_params),
        async {
            if commit {
                client.batch_execute("COMMIT").await
            } else {
                Ok(())
            }
        },
    );
    a?;
    o?;
    e?;
    c
}
