//! The rollup tables' SQL, built once per table from its key and traffic columns: the read of a
//! batch's current rows, the update of rows known to exist, and the upsert of new ones. Text only:
//! [`super::apply`] prepares and runs them, [`super::verify`] reads with the same columns.

use super::Table;

/// A table's traffic columns, in the order the upsert sends them.
pub fn traffic_columns(table: Table) -> [&'static str; 12] {
    if table == Table::OrgDay {
        [
            "total_api_calls",
            "total_errors",
            "client_errors",
            "server_errors",
            "request_bytes",
            "response_bytes",
            "total_data_processed_bytes",
            "total_duration_ms",
            "avg_response_time_ms",
            "p95_response_time_ms",
            "latency_histogram",
            "last_call_at",
        ]
    } else {
        [
            "api_calls_count",
            "errors_count",
            "client_errors_count",
            "server_errors_count",
            "request_bytes",
            "response_bytes",
            "data_processed_bytes",
            "total_duration_ms",
            "avg_response_time_ms",
            "p95_response_time_ms",
            "latency_histogram",
            "last_call_at",
        ]
    }
}

/// The traffic columns that are read back (the rest are derived from them).
pub fn read_columns(table: Table) -> String {
    let c = traffic_columns(table);
    [c[0], c[1], c[2], c[3], c[4], c[5], c[7], c[10], c[11]].join(", ")
}

/// A table's key columns with their SQL types, primary-key order.
pub fn key_columns(table: Table) -> Vec<(&'static str, &'static str)> {
    let mut keys = vec![("organization_id", "uuid")];
    if table.per_agent() {
        keys.push(("agent_id", "uuid"));
    }
    if table.per_endpoint() {
        keys.push(("method", "text"));
        keys.push(("endpoint", "text"));
    }
    keys.push(if table.daily() {
        ("date", "date")
    } else {
        ("hour_timestamp", "timestamptz")
    });
    keys
}

fn key_names(table: Table) -> String {
    key_columns(table)
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn key_arrays(table: Table) -> String {
    key_columns(table)
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| format!("${}::{kind}[]", i + 1))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The current traffic of the given keys. The keys are joined to the table (a primary-key
/// lookup each); a row-constructor `IN` made PostgreSQL scan the whole table per batch.
pub fn read_sql(table: Table) -> String {
    let on = key_columns(table)
        .iter()
        .map(|(name, _)| format!("m.{name} = k.{name}"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let keys = key_columns(table)
        .iter()
        .map(|(name, _)| format!("m.{name}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT {keys}, {traffic} FROM unnest({arrays}) AS k({names}) JOIN {table} m ON {on}",
        traffic = read_columns(table),
        arrays = key_arrays(table),
        names = key_names(table),
        table = table.name(),
    )
}

/// The traffic parameters after a table's key arrays, as `unnest` arguments (six counts, the
/// duration, avg, p95, the histogram bounds, the last call), and the flat histogram array,
/// which is sliced per row rather than unnested.
fn traffic_params(table: Table) -> (String, String) {
    let first = key_columns(table).len() + 1;
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
        (12, "timestamptz"),
    ];
    let arrays = kinds
        .iter()
        .map(|(offset, kind)| format!("${}::{kind}[]", first + offset))
        .collect::<Vec<_>>()
        .join(", ");
    (arrays, format!("${}", first + 7))
}

/// Upserts absolute traffic values. After the key arrays come six counts, the duration, the
/// flat histograms, avg, p95, each row's `[lo:hi]` slice of the flat histograms (trailing
/// zero buckets are not sent; readers pad them back) and the last call's time. `updated_at`
/// takes the inserted row's value on conflict, never `now()`: Citus refuses non-immutable
/// functions in `DO UPDATE SET` on distributed tables (docs/scaling.md, "Citus").
pub fn upsert_sql(table: Table) -> String {
    let (traffic_arrays, histograms) = traffic_params(table);
    let columns = traffic_columns(table);
    let set = columns
        .iter()
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let names = key_names(table);
    let keys = key_columns(table)
        .iter()
        .map(|(name, _)| format!("u.{name}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO {table} ({names}, {columns}, updated_at) \
         SELECT {keys}, u.c, u.e, u.ce, u.se, u.rq, u.rs, u.rq + u.rs, u.d, u.avg, u.p95, \
                coalesce(({histograms}::int8[])[u.lo : u.hi], '{{}}'), u.lc, now() \
         FROM unnest({key_arrays}, {traffic_arrays}) \
             WITH ORDINALITY AS u({names}, c, e, ce, se, rq, rs, d, avg, p95, lo, hi, lc, n) \
         ORDER BY u.n \
         ON CONFLICT ({names}) DO UPDATE SET {set}, updated_at = EXCLUDED.updated_at",
        table = table.name(),
        columns = columns.join(", "),
        key_arrays = key_arrays(table),
    )
}

/// Rewrites rows known to exist (the read found them) with absolute values: cheaper than the
/// upsert's speculative insertion (about 15% per row here). Same parameters as [`upsert_sql`].
/// Row locks are taken in join order rather than key order, which is safe because the rollup
/// lock serialises every multi-row writer of these tables; the only other writers (a
/// verification's counters, the daily snapshot) lock one row per table.
pub fn update_sql(table: Table) -> String {
    let (traffic_arrays, histograms) = traffic_params(table);
    let values = [
        "u.c".to_owned(),
        "u.e".to_owned(),
        "u.ce".to_owned(),
        "u.se".to_owned(),
        "u.rq".to_owned(),
        "u.rs".to_owned(),
        "u.rq + u.rs".to_owned(),
        "u.d".to_owned(),
        "u.avg".to_owned(),
        "u.p95".to_owned(),
        format!("coalesce(({histograms}::int8[])[u.lo : u.hi], '{{}}')"),
        "u.lc".to_owned(),
    ];
    let set = traffic_columns(table)
        .iter()
        .zip(&values)
        .map(|(column, value)| format!("{column} = {value}"))
        .collect::<Vec<_>>()
        .join(", ");
    let matches = key_columns(table)
        .iter()
        .map(|(name, _)| format!("m.{name} = u.{name}"))
        .collect::<Vec<_>>()
        .join(" AND ");
    format!(
        "UPDATE {table} AS m SET {set}, updated_at = now() \
         FROM unnest({key_arrays}, {traffic_arrays}) \
             AS u({names}, c, e, ce, se, rq, rs, d, avg, p95, lo, hi, lc) \
         WHERE {matches}",
        table = table.name(),
        key_arrays = key_arrays(table),
        names = key_names(table),
    )
}
