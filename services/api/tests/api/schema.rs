//! The schema contract: migrations apply to an empty database and are idempotent, the tables
//! and columns operators query exist under their names, and `api_calls` is partitioned by day.

use aim_store::partitions::{PartitionOutcome, ensure_api_calls_partitions, partition_name};
use aim_store::testing::TestDatabase;
use aim_store::{MigrationState, PgPool};
use chrono::{Days, NaiveDate};

async fn pool_for(db: &TestDatabase) -> PgPool {
    aim_store::connect(
        &db.settings(),
        &aim_store::PoolSettings::default(),
        std::time::Duration::from_secs(5),
    )
    .await
    .expect("connect")
}

#[tokio::test]
async fn migrations_apply_to_an_empty_database_and_a_second_run_changes_nothing() {
    let db = TestDatabase::create_empty().await;
    let pool = pool_for(&db).await;

    let before = aim_store::migration_status(&pool).await.expect("status");
    assert!(!before.is_empty());
    assert!(before.iter().all(|m| m.state == MigrationState::Pending));

    aim_store::migrate(&pool).await.expect("first run");
    let schema_before: Vec<(String, String)> = columns(&pool).await;
    aim_store::migrate(&pool).await.expect("second run");
    assert_eq!(
        columns(&pool).await,
        schema_before,
        "second run changed the schema"
    );

    let after = aim_store::migration_status(&pool).await.expect("status");
    assert_eq!(after.len(), before.len());
    assert!(
        after
            .iter()
            .all(|m| matches!(m.state, MigrationState::Applied { .. })),
        "{after:?}"
    );
}

async fn columns(pool: &PgPool) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = 'public' ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await
    .expect("columns")
}

#[tokio::test]
async fn tables_and_columns_carry_the_contract_names() {
    let db = TestDatabase::create().await;
    let pool = pool_for(&db).await;
    let columns = columns(&pool).await;
    let has = |table: &str, column: &str| columns.iter().any(|(t, c)| t == table && c == column);
    let contract: &[(&str, &[&str])] = &[
        ("organizations", &["id", "name"]),
        (
            "users",
            &["id", "organization_id", "email", "password_hash", "role"],
        ),
        (
            "agents",
            &[
                "id",
                "organization_id",
                "status",
                "trust_score",
                "last_active",
            ],
        ),
        (
            "api_keys",
            &["id", "organization_id", "agent_id", "key_hash", "prefix"],
        ),
        (
            "verification_events",
            &[
                "organization_id",
                "agent_id",
                "action",
                "status",
                "duration_ms",
                "started_at",
            ],
        ),
        (
            "trust_score_history",
            &[
                "agent_id",
                "organization_id",
                "trust_score",
                "previous_score",
                "change_reason",
                "changed_by",
                "recorded_at",
            ],
        ),
        (
            "api_calls",
            &[
                "id",
                "organization_id",
                "agent_id",
                "user_id",
                "method",
                "endpoint",
                "status_code",
                "duration_ms",
                "request_size_bytes",
                "response_size_bytes",
                "user_agent",
                "ip_address",
                "error_message",
                "request_id",
                "called_at",
                "batch_id",
            ],
        ),
        (
            "agent_activity_metrics",
            &[
                "organization_id",
                "agent_id",
                "hour_timestamp",
                "api_calls_count",
                "errors_count",
                "data_processed_bytes",
                "verifications_count",
                "total_duration_ms",
                "avg_response_time_ms",
                "p95_response_time_ms",
                "latency_histogram",
            ],
        ),
        (
            "organization_daily_metrics",
            &[
                "organization_id",
                "date",
                "total_api_calls",
                "total_data_processed_bytes",
                "total_errors",
                "total_agents",
                "verified_agents",
                "pending_agents",
                "avg_trust_score",
                "total_verifications",
                "successful_verifications",
                "failed_verifications",
            ],
        ),
        (
            "endpoint_hourly_metrics",
            &[
                "organization_id",
                "method",
                "endpoint",
                "hour_timestamp",
                "latency_histogram",
            ],
        ),
        ("ingest_batches", &["batch_id", "row_count", "committed_at"]),
        (
            "audit_events",
            &[
                "organization_id",
                "actor_id",
                "action",
                "target_type",
                "target_id",
                "created_at",
            ],
        ),
    ];
    for (table, wanted) in contract {
        for column in *wanted {
            assert!(has(table, column), "{table}.{column} is missing");
        }
    }
}

#[tokio::test]
async fn every_analytics_key_includes_the_organization() {
    let db = TestDatabase::create().await;
    let pool = pool_for(&db).await;
    let keys: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT c.conrelid::regclass::text, c.conname::text, \
                'organization_id' = ANY (SELECT a.attname::text FROM pg_attribute a \
                                        WHERE a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)) \
         FROM pg_constraint c \
         WHERE c.contype IN ('p', 'u') \
           AND c.conrelid::regclass::text IN ('agent_activity_metrics', 'organization_daily_metrics', \
                'endpoint_hourly_metrics', 'trust_score_history', 'verification_events')",
    )
    .fetch_all(&pool)
    .await
    .expect("constraints");
    assert_eq!(keys.len(), 5, "{keys:?}");
    for (table, name, has_org) in keys {
        assert!(has_org, "{table}: {name} lacks organization_id");
    }
}

#[tokio::test]
async fn api_calls_partitions_are_created_once_and_receive_their_day() {
    let db = TestDatabase::create().await;
    let pool = pool_for(&db).await;
    let today = NaiveDate::from_ymd_opt(2031, 3, 30).expect("date");

    let first = ensure_api_calls_partitions(&pool, today, 7)
        .await
        .expect("create");
    assert_eq!(first.len(), 8);
    assert!(
        first.iter().all(|(_, o)| *o == PartitionOutcome::Created),
        "{first:?}"
    );
    let second = ensure_api_calls_partitions(&pool, today, 7)
        .await
        .expect("again");
    assert!(
        second
            .iter()
            .all(|(_, o)| *o == PartitionOutcome::AlreadyExists),
        "{second:?}"
    );

    let day = today.checked_add_days(Days::new(2)).expect("date");
    sqlx::query(
        "INSERT INTO api_calls (id, organization_id, method, endpoint, status_code, duration_ms, \
                                called_at, batch_id) \
         VALUES (gen_random_uuid(), gen_random_uuid(), 'GET', '/x', 200, 1.5, \
                 ($1::date + time '23:59:59.999') AT TIME ZONE 'UTC', gen_random_uuid())",
    )
    .bind(day)
    .execute(&pool)
    .await
    .expect("insert");
    let landed: String = sqlx::query_scalar("SELECT tableoid::regclass::text FROM api_calls")
        .fetch_one(&pool)
        .await
        .expect("select");
    assert_eq!(landed, partition_name(day));
}

#[tokio::test]
async fn a_day_with_rows_in_the_default_partition_is_skipped_not_an_error() {
    let db = TestDatabase::create().await;
    let pool = pool_for(&db).await;
    let day = NaiveDate::from_ymd_opt(2032, 1, 1).expect("date");
    sqlx::query(
        "INSERT INTO api_calls (id, organization_id, method, endpoint, status_code, duration_ms, \
                                called_at, batch_id) \
         VALUES (gen_random_uuid(), gen_random_uuid(), 'GET', '/x', 200, 1.5, \
                 ($1::date + time '12:00') AT TIME ZONE 'UTC', gen_random_uuid())",
    )
    .bind(day)
    .execute(&pool)
    .await
    .expect("insert into the default partition");
    let outcome = ensure_api_calls_partitions(&pool, day, 0)
        .await
        .expect("no error");
    assert_eq!(
        outcome,
        vec![(day, PartitionOutcome::SkippedDefaultHasRows)]
    );
}

#[test]
fn every_migration_has_a_down_script() {
    let ups: Vec<i64> = aim_store::MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| m.version)
        .collect();
    let downs: Vec<i64> = aim_store::MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_down_migration())
        .map(|m| m.version)
        .collect();
    assert!(!ups.is_empty());
    for version in &ups {
        assert!(
            downs.contains(version),
            "migration {version} has no VERSION_name.down.sql"
        );
    }
}

#[tokio::test]
async fn migrating_down_to_an_unknown_version_is_refused() {
    let db = TestDatabase::create().await;
    let pool = pool_for(&db).await;
    let err = aim_store::migrate_down(&pool, 20_261_128_000_099)
        .await
        .expect_err("unknown version");
    assert!(err.to_string().contains("20261128000099"), "{err}");
    assert!(
        aim_store::migration_status(&pool)
            .await
            .expect("status")
            .iter()
            .all(|m| matches!(m.state, MigrationState::Applied { .. })),
        "nothing was reverted"
    );
}

/// The rollback path of docs/operations.md: down to the identity schema keeps organizations,
/// users, agents and keys and drops sessions and analytics; the service (analytics off) serves
/// agents on that schema; up again, calls are recorded again.
#[tokio::test]
async fn down_to_the_identity_schema_keeps_identities_and_up_again_records_calls() {
    use crate::helpers::TestApp;
    use axum::http::StatusCode;

    const IDENTITY: i64 = 20_261_128_000_001;
    let db = TestDatabase::create().await;
    let (agent_id, key) = {
        let app = TestApp::spawn_on(&db, &[]);
        let (_admin, agent_id, key) = app.cached_key().await;
        for _ in 0..5 {
            let got = app
                .get_as(&format!("/api/v1/agents/{agent_id}"), &key)
                .await;
            assert_eq!(got.status, StatusCode::OK);
        }
        let stats = app.drain().await;
        assert!(stats.written >= 6, "{stats:?}");
        (agent_id, key)
    };
    let pool = pool_for(&db).await;
    let identities = |pool: PgPool| async move {
        sqlx::query_as::<_, (i64, i64, i64, i64)>(
            "SELECT (SELECT count(*) FROM organizations), (SELECT count(*) FROM users), \
                    (SELECT count(*) FROM agents), (SELECT count(*) FROM api_keys)",
        )
        .fetch_one(&pool)
        .await
        .expect("identity counts")
    };
    let before = identities(pool.clone()).await;

    let reverted = aim_store::migrate_down(&pool, IDENTITY)
        .await
        .expect("down");
    assert!(!reverted.is_empty() && reverted.iter().all(|v| *v > IDENTITY));
    assert_eq!(identities(pool.clone()).await, before, "identities survive");
    let analytics = aim_store::maintenance::ANALYTICS_TABLES;
    for gone in ["refresh_tokens", "sessions"].into_iter().chain(analytics) {
        let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
            .bind(gone)
            .fetch_one(&pool)
            .await
            .expect("regclass");
        assert_eq!(exists, None, "{gone} is still there");
    }
    let status = aim_store::migration_status(&pool).await.expect("status");
    assert!(
        status
            .iter()
            .all(|m| (m.version <= IDENTITY) == matches!(m.state, MigrationState::Applied { .. })),
        "{status:?}"
    );

    {
        // The previous image on the rolled-back schema, as the runbook runs it.
        let app = TestApp::spawn_on(&db, &[("AIM_ANALYTICS_ENABLED", "false")]);
        let got = app
            .get_as(&format!("/api/v1/agents/{agent_id}"), &key)
            .await;
        assert_eq!(got.status, StatusCode::OK, "{}", got.body);
        let verified = app
            .post_as(
                &format!("/api/v1/agents/{agent_id}/verify-action"),
                &key,
                serde_json::json!({ "action": "read" }),
            )
            .await;
        assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    }

    aim_store::migrate(&pool).await.expect("up again");
    let app = TestApp::spawn_on(&db, &[]);
    for _ in 0..3 {
        let got = app
            .get_as(&format!("/api/v1/agents/{agent_id}"), &key)
            .await;
        assert_eq!(got.status, StatusCode::OK);
    }
    let stats = app.drain().await;
    assert_eq!(stats.written, 3, "{stats:?}");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM api_calls")
        .fetch_one(&pool)
        .await
        .expect("rows");
    assert_eq!(rows, 3, "the calls after the way back up are recorded");
    pool.close().await;
}

/// The schema says what the API documents: `api_calls.request_id` is not unique.
#[tokio::test]
async fn the_schema_says_request_ids_are_not_unique() {
    let db = TestDatabase::create().await;
    let pool = aim_store::connect_lazy(&db.settings(), &aim_store::PoolSettings::default());
    let comment: Option<String> = sqlx::query_scalar(
        "SELECT col_description('api_calls'::regclass, attnum) FROM pg_attribute \
         WHERE attrelid = 'api_calls'::regclass AND attname = 'request_id'",
    )
    .fetch_one(&pool)
    .await
    .expect("comment");
    assert!(
        comment.as_deref().is_some_and(|c| c.contains("NOT unique")),
        "{comment:?}"
    );
    let unique: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a \
           ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) \
         WHERE i.indrelid = 'api_calls'::regclass AND i.indisunique AND a.attname = 'request_id')",
    )
    .fetch_one(&pool)
    .await
    .expect("indexes");
    assert!(!unique);
}
