//! Trust recomputation at scale: 100 organizations of 100 agents each (10,000), every agent with
//! a key and 30 days of hourly rollups (calls, errors, the action rules' outcomes; eight active
//! hours a day, 2.4 million rows), then the maintenance leader's recomputation of every agent
//! timed twice: the first run writes nearly every score (each moves from its initial 0.5), the
//! second finds nothing new. Prints a Markdown table for `docs/benchmarks.md` with the queries
//! each run sent (a fixed number per organization, not one per agent).
//!
//! ```sh
//! cargo bench -p aim-api --bench trust
//! ```
//!
//! Uses the test harness's database discovery (`DATABASE_URL`, else `127.0.0.1:5432`, else a
//! throwaway cluster) and a database of its own.

use std::time::{Duration, Instant};

use aim_store::testing::TestDatabase;

const ORGANIZATIONS: i32 = 100;
const AGENTS_PER_ORGANIZATION: i32 = 100;
const DAYS: i32 = 30;

/// Organizations, agents (created 60 days ago), a key each (a tenth of them older than the key
/// age limit, none expiring) and their initial history rows; then the rollups, whose numbers
/// come from a hash of the agent and hour so that agents differ and a run repeats.
const SEED: &[&str] = &[
    "INSERT INTO organizations (id, name) \
     SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(o), 12, '0'))::uuid, 'org ' || o \
     FROM generate_series(1, $ORGS) o",
    "INSERT INTO agents (id, organization_id, name, status, created_at, last_active) \
     SELECT ('00000000-0000-4000-9000-' || lpad(to_hex(o * 1000 + a), 12, '0'))::uuid, \
            ('00000000-0000-4000-8000-' || lpad(to_hex(o), 12, '0'))::uuid, \
            'agent ' || a, CASE WHEN a % 3 = 0 THEN 'pending' ELSE 'verified' END, \
            now() - interval '60 days', now() - (a % 20) * interval '1 day' \
     FROM generate_series(1, $ORGS) o, generate_series(1, $AGENTS) a",
    "INSERT INTO api_keys (id, organization_id, agent_id, key_hash, prefix, created_at) \
     SELECT gen_random_uuid(), organization_id, id, sha256(id::text::bytea), 'aim_bench', \
            now() - CASE WHEN name LIKE '%0' THEN interval '200 days' ELSE interval '20 days' END \
     FROM agents",
    "INSERT INTO trust_score_history (id, organization_id, agent_id, trust_score, change_reason, recorded_at) \
     SELECT gen_random_uuid(), organization_id, id, 0.5, 'initial score', created_at FROM agents",
    "INSERT INTO agent_activity_metrics (organization_id, agent_id, hour_timestamp, \
         api_calls_count, errors_count, client_errors_count, rules_allowed_count, rules_denied_count, \
         verifications_count, last_call_at) \
     SELECT a.organization_id, a.id, h, c.calls, c.errors, c.errors, c.allowed, c.denied, \
            c.allowed + c.denied, h + interval '30 minutes' \
     FROM agents a \
     CROSS JOIN generate_series(date_trunc('day', now()) - interval '$DAYS days', \
                                date_trunc('day', now()), interval '1 day') d \
     CROSS JOIN generate_series(9, 16) hour \
     CROSS JOIN LATERAL (SELECT d + hour * interval '1 hour' AS h) t \
     CROSS JOIN LATERAL (SELECT abs(hashtext(a.id::text || t.h::text)) AS r) x \
     CROSS JOIN LATERAL (SELECT 20 + x.r % 80 AS calls, \
                                CASE WHEN a.name LIKE '%7' AND t.h > now() - interval '1 day' \
                                     THEN 40 ELSE x.r % 3 END AS errors, \
                                (x.r / 7) % 3 AS allowed, \
                                CASE WHEN a.name LIKE '%9' THEN (x.r / 11) % 4 ELSE 0 END AS denied) c \
     WHERE t.h <= now()",
    "ANALYZE",
];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let db = TestDatabase::create().await;
    let pool = aim_store::connect_lazy(
        &db.settings(),
        &aim_store::PoolSettings {
            max_connections: 4,
            acquire_timeout: Duration::from_secs(30),
        },
    );
    let started = Instant::now();
    for statement in SEED {
        let sql = statement
            .replace("$ORGS", &ORGANIZATIONS.to_string())
            .replace("$AGENTS", &AGENTS_PER_ORGANIZATION.to_string())
            .replace("$DAYS", &DAYS.to_string());
        sqlx::query(&sql).execute(&pool).await.expect("seed");
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM agent_activity_metrics")
        .fetch_one(&pool)
        .await
        .expect("count");
    eprintln!(
        "seeded {} agents and {rows} hourly rollup rows in {:.1} s",
        ORGANIZATIONS * AGENTS_PER_ORGANIZATION,
        started.elapsed().as_secs_f64()
    );

    println!("| run | agents | scores written | transitions | alerts opened | queries | seconds |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for run in ["first (every score moves)", "second (nothing new)"] {
        let clock = Instant::now();
        let (outcome, _) = aim_api::trust::recompute_all(&pool, chrono::Utc::now())
            .await
            .expect("recompute");
        println!(
            "| {run} | {} | {} | {} | {} | {} | {:.2} |",
            outcome.agents,
            outcome.scores_written,
            outcome.transitions,
            outcome.alerts_opened,
            outcome.queries,
            clock.elapsed().as_secs_f64()
        );
    }
    pool.close().await;
}
