//! Upserting a batch's deltas, additively, as the last step of the writer's transaction. One
//! prepared statement per table takes the deltas as parallel arrays (histograms flattened), so a
//! batch costs three statements whatever its size, and rows go in in the deltas' sorted key
//! order, so concurrent writers lock rows in the same order and never deadlock.

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Error, GenericClient, Statement};

use super::histogram::BUCKETS;
use super::{Deltas, Traffic};

const TRAFFIC_SET: &str = "api_calls_count = m.api_calls_count + EXCLUDED.api_calls_count,
    errors_count = m.errors_count + EXCLUDED.errors_count,
    client_errors_count = m.client_errors_count + EXCLUDED.client_errors_count,
    server_errors_count = m.server_errors_count + EXCLUDED.server_errors_count,
    request_bytes = m.request_bytes + EXCLUDED.request_bytes,
    response_bytes = m.response_bytes + EXCLUDED.response_bytes,
    data_processed_bytes = m.data_processed_bytes + EXCLUDED.data_processed_bytes,
    total_duration_ms = m.total_duration_ms + EXCLUDED.total_duration_ms,
    avg_response_time_ms = (m.total_duration_ms + EXCLUDED.total_duration_ms)
        / nullif(m.api_calls_count + EXCLUDED.api_calls_count, 0),
    p95_response_time_ms = aim_histogram_quantile(
        aim_histogram_add(m.latency_histogram, EXCLUDED.latency_histogram), 0.95),
    latency_histogram = aim_histogram_add(m.latency_histogram, EXCLUDED.latency_histogram),
    updated_at = now()";

fn traffic_select(first: usize) -> String {
    let p = |i: usize| format!("${}", first + i);
    format!(
        "u.c, u.e, u.ce, u.se, u.rq, u.rs, u.rq + u.rs, u.d, u.d / u.c, \
         aim_histogram_quantile(({hist}::int8[])[(u.n - 1) * {BUCKETS} + 1 : u.n * {BUCKETS}], 0.95), \
         ({hist}::int8[])[(u.n - 1) * {BUCKETS} + 1 : u.n * {BUCKETS}], now()",
        hist = p(7),
    )
}

fn traffic_unnest(first: usize) -> String {
    let p = |i: usize| format!("${}", first + i);
    format!(
        "{}::int8[], {}::int8[], {}::int8[], {}::int8[], {}::int8[], {}::int8[], {}::float8[]",
        p(0),
        p(1),
        p(2),
        p(3),
        p(4),
        p(5),
        p(6)
    )
}

const TRAFFIC_COLUMNS: &str = "api_calls_count, errors_count, client_errors_count, \
     server_errors_count, request_bytes, response_bytes, data_processed_bytes, total_duration_ms, \
     avg_response_time_ms, p95_response_time_ms, latency_histogram, updated_at";
const TRAFFIC_ALIASES: &str = "c, e, ce, se, rq, rs, d, n";

pub fn agent_sql() -> String {
    format!(
        "INSERT INTO agent_activity_metrics AS m (organization_id, agent_id, hour_timestamp, {TRAFFIC_COLUMNS}) \
         SELECT u.o, u.a, u.h, {select} \
         FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], {unnest}) WITH ORDINALITY AS u(o, a, h, {TRAFFIC_ALIASES}) \
         ORDER BY u.n \
         ON CONFLICT (organization_id, agent_id, hour_timestamp) DO UPDATE SET {TRAFFIC_SET}",
        select = traffic_select(4),
        unnest = traffic_unnest(4),
    )
}

pub fn org_sql() -> String {
    format!(
        "INSERT INTO organization_daily_metrics AS m (organization_id, date, \
             total_api_calls, total_errors, client_errors, server_errors, request_bytes, \
             response_bytes, total_data_processed_bytes, total_duration_ms, avg_response_time_ms, \
             p95_response_time_ms, latency_histogram, updated_at) \
         SELECT u.o, u.day, {select} \
         FROM unnest($1::uuid[], $2::date[], {unnest}) WITH ORDINALITY AS u(o, day, {TRAFFIC_ALIASES}) \
         ORDER BY u.n \
         ON CONFLICT (organization_id, date) DO UPDATE SET \
             total_api_calls = m.total_api_calls + EXCLUDED.total_api_calls, \
             total_errors = m.total_errors + EXCLUDED.total_errors, \
             client_errors = m.client_errors + EXCLUDED.client_errors, \
             server_errors = m.server_errors + EXCLUDED.server_errors, \
             request_bytes = m.request_bytes + EXCLUDED.request_bytes, \
             response_bytes = m.response_bytes + EXCLUDED.response_bytes, \
             total_data_processed_bytes = m.total_data_processed_bytes + EXCLUDED.total_data_processed_bytes, \
             total_duration_ms = m.total_duration_ms + EXCLUDED.total_duration_ms, \
             avg_response_time_ms = (m.total_duration_ms + EXCLUDED.total_duration_ms) \
                 / nullif(m.total_api_calls + EXCLUDED.total_api_calls, 0), \
             p95_response_time_ms = aim_histogram_quantile( \
                 aim_histogram_add(m.latency_histogram, EXCLUDED.latency_histogram), 0.95), \
             latency_histogram = aim_histogram_add(m.latency_histogram, EXCLUDED.latency_histogram), \
             updated_at = now()",
        select = traffic_select(3),
        unnest = traffic_unnest(3),
    )
}

pub fn endpoint_sql() -> String {
    format!(
        "INSERT INTO endpoint_hourly_metrics AS m (organization_id, method, endpoint, hour_timestamp, {TRAFFIC_COLUMNS}) \
         SELECT u.o, u.method, u.endpoint, u.h, {select} \
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], {unnest}) \
             WITH ORDINALITY AS u(o, method, endpoint, h, {TRAFFIC_ALIASES}) \
         ORDER BY u.n \
         ON CONFLICT (organization_id, method, endpoint, hour_timestamp) DO UPDATE SET {TRAFFIC_SET}",
        select = traffic_select(5),
        unnest = traffic_unnest(5),
    )
}

/// The three upserts, prepared on one connection.
pub struct RollupStatements {
    pub agent: Statement,
    pub org: Statement,
    pub endpoint: Statement,
}

impl RollupStatements {
    /// # Errors
    /// The database error.
    pub async fn prepare(client: &Client) -> Result<Self, Error> {
        Ok(Self {
            agent: client.prepare(&agent_sql()).await?,
            org: client.prepare(&org_sql()).await?,
            endpoint: client.prepare(&endpoint_sql()).await?,
        })
    }
}

/// Parallel arrays of a set of traffic rows.
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
        self.histograms.extend_from_slice(t.histogram.counts());
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 8] {
        [
            &self.calls,
            &self.errors,
            &self.client_errors,
            &self.server_errors,
            &self.request_bytes,
            &self.response_bytes,
            &self.duration,
            &self.histograms,
        ]
    }
}

/// Runs the three upserts. The futures are joined so that all three requests are queued on the
/// connection at once (behind whatever was queued before them, in order).
///
/// # Errors
/// The database error.
pub async fn apply(
    client: &impl GenericClient,
    statements: &RollupStatements,
    deltas: &Deltas,
) -> Result<(), Error> {
    let (mut agent_orgs, mut agents, mut agent_hours, mut agent_cols) =
        (Vec::new(), Vec::new(), Vec::new(), Columns::default());
    for (key, traffic) in &deltas.agent_hours {
        agent_orgs.push(key.organization_id);
        agents.push(key.agent_id);
        agent_hours.push(key.hour);
        agent_cols.push(traffic);
    }
    let (mut orgs, mut days, mut org_cols) = (Vec::new(), Vec::new(), Columns::default());
    for (key, traffic) in &deltas.org_days {
        orgs.push(key.organization_id);
        days.push(key.date);
        org_cols.push(traffic);
    }
    let (mut ep_orgs, mut methods, mut endpoints, mut ep_hours, mut ep_cols) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Columns::default(),
    );
    for (key, traffic) in &deltas.endpoint_hours {
        ep_orgs.push(key.organization_id);
        methods.push(key.method.as_str());
        endpoints.push(key.endpoint.as_str());
        ep_hours.push(key.hour);
        ep_cols.push(traffic);
    }

    let mut agent_params: Vec<&(dyn ToSql + Sync)> = vec![&agent_orgs, &agents, &agent_hours];
    agent_params.extend(agent_cols.params());
    let mut org_params: Vec<&(dyn ToSql + Sync)> = vec![&orgs, &days];
    org_params.extend(org_cols.params());
    let mut ep_params: Vec<&(dyn ToSql + Sync)> = vec![&ep_orgs, &methods, &endpoints, &ep_hours];
    ep_params.extend(ep_cols.params());

    // Fixed table order (agents, organizations, endpoints), like the rows within each.
    let (a, o, e) = tokio::join!(
        async {
            if agents.is_empty() {
                Ok(0)
            } else {
                client.execute(&statements.agent, &agent_params).await
            }
        },
        client.execute(&statements.org, &org_params),
        client.execute(&statements.endpoint, &ep_params),
    );
    a?;
    o?;
    e?;
    Ok(())
}
