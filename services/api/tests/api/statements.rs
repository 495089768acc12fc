//! Every statement the service sends to the analytics tables, collected from a private cluster
//! that loads `pg_stat_statements`, checked against what Citus requires of distributed tables
//! (docs/scaling.md, "Citus"): no volatile or stable function in an upsert's `DO UPDATE SET`, and
//! no read of an analytics table without an `organization_id` predicate (one shard group per
//! read) except the reads that scan every organization by design, listed below with why.

use aim_store::testing::StatementsCluster;
use chrono::{Duration, Utc};

use crate::helpers::TestApp;

/// Distributed by `organization_id` (deploy/citus/distribute.sql).
const ANALYTICS_TABLES: [&str; 6] = [
    "api_calls",
    "agent_activity_metrics",
    "agent_daily_metrics",
    "endpoint_hourly_metrics",
    "endpoint_daily_metrics",
    "organization_daily_metrics",
];

/// Functions that are not IMMUTABLE; Citus refuses them in `DO UPDATE SET` on distributed
/// tables.
const NOT_IMMUTABLE: [&str; 12] = [
    "now(",
    "clock_timestamp(",
    "statement_timestamp(",
    "transaction_timestamp(",
    "timeofday(",
    "random(",
    "gen_random_uuid(",
    "current_timestamp",
    "localtimestamp",
    "current_date",
    "current_time",
    "nextval(",
];

/// Reads of every organization by design: a fragment of the statement, and why it may scan.
const SCANS_EVERY_ORGANIZATION: &[(&str, &str)] = &[
    (
        "from api_calls_default",
        "the maintenance task's default-partition move finds the days to move",
    ),
    (
        "select min(called_at)::date, max(called_at)::date from api_calls",
        "the test harness's own range for `aim rollups verify`",
    ),
];

/// Whether `sql` (lower case) names `table` after `FROM`, `JOIN`, `INTO`, `UPDATE` or `COPY`; an
/// `api_calls` partition counts as `api_calls`.
fn names(sql: &str, table: &str) -> bool {
    ["from ", "join ", "into ", "update ", "copy "]
        .iter()
        .any(|keyword| {
            let needle = format!("{keyword}{table}");
            sql.match_indices(&needle).any(|(i, _)| {
                let rest = &sql[i + needle.len()..];
                let next = rest.chars().next();
                next.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'))
                    || rest.starts_with("_p2")
                    || rest.starts_with("_default")
            })
        })
}

/// What Citus would refuse, one line per statement.
fn problems(statements: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for statement in statements {
        let sql = statement
            .to_lowercase()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if !ANALYTICS_TABLES.iter().any(|t| names(&sql, t)) {
            continue;
        }
        if let Some(at) = sql.find("do update set") {
            let clause = &sql[at..];
            let clause = clause
                .find(" returning ")
                .map_or(clause, |end| &clause[..end]);
            for function in NOT_IMMUTABLE {
                if clause.contains(function) {
                    out.push(format!(
                        "`{}` in DO UPDATE SET (Citus: functions used in the DO UPDATE SET clause \
                         of INSERTs on distributed tables must be marked IMMUTABLE): {statement}",
                        function.trim_end_matches('(')
                    ));
                }
            }
        }
        let read = sql.starts_with("select")
            || (sql.starts_with("with")
                && !["insert ", "update ", "delete "]
                    .iter()
                    .any(|w| sql.contains(w)));
        if read
            && !sql.contains("organization_id")
            && !SCANS_EVERY_ORGANIZATION
                .iter()
                .any(|(fragment, _)| sql.contains(fragment))
        {
            out.push(format!(
                "a read of an analytics table without an organization_id predicate: {statement}"
            ));
        }
    }
    out
}

#[test]
fn the_check_finds_what_citus_refuses() {
    let statements = [
        "INSERT INTO agent_activity_metrics (organization_id) VALUES ($1) ON CONFLICT (organization_id) DO UPDATE SET updated_at = now()",
        "INSERT INTO agent_activity_metrics (organization_id) VALUES ($1) ON CONFLICT (organization_id) DO UPDATE SET updated_at = excluded.updated_at RETURNING now()",
        "SELECT sum(api_calls_count) FROM endpoint_daily_metrics WHERE date >= $1",
        "SELECT count(*) FROM api_calls_p20261203",
        "SELECT 1 FROM agents WHERE api_calls_count = 1",
    ]
    .map(str::to_owned);
    let found = problems(&statements);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found[0].starts_with("`now` in DO UPDATE SET"));
    assert!(found[1].starts_with("a read"));
    assert!(found[2].contains("api_calls_p20261203"));
}

#[tokio::test]
async fn every_statement_on_the_analytics_tables_runs_on_citus() {
    let cluster = StatementsCluster::start().await;
    let app = TestApp::spawn_on_settings(cluster.settings(), &[]);

    // The API: every operation that takes credentials, as an admin and as an agent key where
    // it may, with each one's valid request.
    let world = crate::roles::World::new(&app).await;
    for row in crate::roles::table() {
        for role in [3, 4] {
            if row.allowed[role] {
                let (uri, body) = world.request(&app, &row, role).await;
                app.call(row.method.clone(), &uri, Some(world.credential(role)), body)
                    .await;
            }
        }
    }
    // The writers: calls of today and of past days (the default partition's too).
    let agent = app.agent(&world.admin.token, "writer").await;
    let agent: uuid::Uuid = agent["id"].as_str().expect("id").parse().expect("uuid");
    let sink = app.pipeline.as_ref().expect("pipeline").sink();
    for days in [0, 1, 3, 40] {
        for status in [200, 404, 500] {
            sink.record(crate::helpers::past_call(
                world.admin.organization_id,
                agent,
                Utc::now() - Duration::days(days),
                status,
            ));
        }
    }
    app.drain().await;

    // The trust recomputation and every maintenance step.
    aim_api::trust::recompute_all(&app.pool, Utc::now())
        .await
        .expect("trust");
    let pool = &app.pool;
    let today = Utc::now().date_naive();
    aim_store::maintenance::snapshot(pool, today)
        .await
        .expect("snapshot");
    aim_store::partitions::ensure_api_calls_partitions(pool, today, 7)
        .await
        .expect("partitions");
    for day in aim_store::maintenance::days_in_default_partition(pool)
        .await
        .expect("days")
    {
        aim_store::maintenance::move_default_rows(pool, day)
            .await
            .expect("move");
    }
    aim_store::maintenance::retention(pool, today, 90, 730)
        .await
        .expect("retention");
    aim_store::maintenance::table_sizes(pool)
        .await
        .expect("sizes");

    let statements = cluster.statements().await;
    let analytics = statements
        .iter()
        .filter(|s| {
            let sql = s.to_lowercase();
            ANALYTICS_TABLES.iter().any(|t| names(&sql, t))
        })
        .count();
    assert!(
        analytics >= 20,
        "only {analytics} statements reached the analytics tables"
    );
    let found = problems(&statements);
    assert!(found.is_empty(), "{}", found.join("\n\n"));
}
