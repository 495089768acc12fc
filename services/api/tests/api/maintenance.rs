//! The maintenance steps against a real database.

use aim_store::maintenance::{self, Leader};
use aim_store::partitions::{ensure_api_calls_partitions, partition_name};
use aim_store::testing::TestDatabase;
use chrono::NaiveDate;

async fn pool(db: &TestDatabase) -> aim_store::PgPool {
    aim_store::connect(
        &db.settings(),
        &aim_store::PoolSettings::default(),
        std::time::Duration::from_secs(5),
    )
    .await
    .expect("pool")
}

async fn insert_call(pool: &aim_store::PgPool, day: NaiveDate) {
    sqlx::query(
        "INSERT INTO api_calls (id, organization_id, method, endpoint, status_code, duration_ms, called_at, batch_id) \
         VALUES (gen_random_uuid(), gen_random_uuid(), 'GET', '/x', 200, 1.0, ($1::date + time '06:00') AT TIME ZONE 'UTC', gen_random_uuid())",
    )
    .bind(day)
    .execute(pool)
    .await
    .expect("insert");
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("date")
}

#[tokio::test]
async fn retention_drops_old_partitions_and_keeps_recent_ones_and_rollups() {
    let db = TestDatabase::create().await;
    let pool = pool(&db).await;
    let today = day(2031, 6, 30);
    ensure_api_calls_partitions(&pool, day(2031, 3, 1), 2)
        .await
        .expect("old partitions");
    ensure_api_calls_partitions(&pool, day(2031, 6, 29), 1)
        .await
        .expect("recent partitions");
    insert_call(&pool, day(2031, 3, 1)).await;
    insert_call(&pool, day(2031, 6, 29)).await;
    sqlx::query("INSERT INTO organization_daily_metrics (organization_id, date, total_api_calls) VALUES (gen_random_uuid(), '2031-03-01', 1)")
        .execute(&pool)
        .await
        .expect("rollup");

    let done = maintenance::retention(&pool, today, 90, 730)
        .await
        .expect("retention");
    assert_eq!(
        done.dropped_partitions,
        vec![
            partition_name(day(2031, 3, 1)),
            partition_name(day(2031, 3, 2)),
            partition_name(day(2031, 3, 3))
        ]
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM api_calls")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(rows, 1, "the recent day's row stays");
    let rollups: i64 = sqlx::query_scalar("SELECT count(*) FROM organization_daily_metrics")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(rollups, 1, "rollups outlive raw rows");
    let again = maintenance::retention(&pool, today, 90, 730)
        .await
        .expect("again");
    assert!(again.dropped_partitions.is_empty());
    let later = maintenance::retention(&pool, day(2033, 6, 30), 90, 730)
        .await
        .expect("later");
    assert_eq!(
        later.rollup_rows_deleted, 1,
        "rollups past their own retention go"
    );
}

#[tokio::test]
async fn rows_in_the_default_partition_move_into_their_day() {
    let db = TestDatabase::create().await;
    let pool = pool(&db).await;
    let lost = day(2033, 5, 5);
    for _ in 0..3 {
        insert_call(&pool, lost).await;
    }
    assert_eq!(
        maintenance::days_in_default_partition(&pool)
            .await
            .expect("days"),
        vec![lost]
    );
    assert_eq!(
        maintenance::move_default_rows(&pool, lost)
            .await
            .expect("move"),
        3
    );
    assert!(
        maintenance::days_in_default_partition(&pool)
            .await
            .expect("days")
            .is_empty()
    );
    let home: Vec<String> = sqlx::query_scalar("SELECT tableoid::regclass::text FROM api_calls")
        .fetch_all(&pool)
        .await
        .expect("rows");
    assert_eq!(home, vec![partition_name(lost); 3]);
}

#[tokio::test]
async fn snapshots_ledger_pruning_and_the_leader_lock() {
    let db = TestDatabase::create().await;
    let pool = pool(&db).await;
    let org: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO organizations (id, name) VALUES (gen_random_uuid(), 'o') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .expect("org");
    for (status, score) in [("verified", 0.9), ("pending", 0.5), ("pending", 0.4)] {
        sqlx::query("INSERT INTO agents (id, organization_id, name, status, trust_score) VALUES (gen_random_uuid(), $1, 'a', $2, $3)")
            .bind(org)
            .bind(status)
            .bind(score)
            .execute(&pool)
            .await
            .expect("agent");
    }
    let today = chrono::Utc::now().date_naive();
    assert_eq!(
        maintenance::snapshot(&pool, today).await.expect("snapshot"),
        1
    );
    let (total, verified, pending, avg): (i32, i32, i32, Option<f64>) = sqlx::query_as(
        "SELECT total_agents, verified_agents, pending_agents, avg_trust_score FROM organization_daily_metrics WHERE organization_id = $1",
    )
    .bind(org)
    .fetch_one(&pool)
    .await
    .expect("snapshot row");
    assert_eq!((total, verified, pending), (3, 1, 2));
    assert!((avg.expect("avg") - 0.6).abs() < 1e-9);

    sqlx::query("INSERT INTO ingest_batches (batch_id, row_count, committed_at) VALUES (gen_random_uuid(), 1, now() - interval '9 days'), (gen_random_uuid(), 1, now())")
        .execute(&pool)
        .await
        .expect("ledger");
    let pruned = maintenance::prune_ledger(&pool, std::time::Duration::from_secs(8 * 86_400))
        .await
        .expect("prune");
    assert_eq!(pruned, 1, "only entries past the spool's age plus margin");

    let first = Leader::try_take(&pool)
        .await
        .expect("lock")
        .expect("first replica leads");
    assert!(
        Leader::try_take(&pool).await.expect("lock").is_none(),
        "one replica at a time"
    );
    first.release().await;
    assert!(
        Leader::try_take(&pool).await.expect("lock").is_some(),
        "free again once released"
    );
}

/// The parent of a partitioned table holds nothing; the sizes maintenance publishes are summed
/// over the partitions, for every analytics table.
#[tokio::test]
async fn table_sizes_sum_the_partitions() {
    let db = TestDatabase::create().await;
    let pool = pool(&db).await;
    ensure_api_calls_partitions(&pool, day(2031, 6, 29), 2)
        .await
        .expect("partitions");
    for _ in 0..200 {
        insert_call(&pool, day(2031, 6, 29)).await;
    }
    let parent: i64 = sqlx::query_scalar("SELECT pg_total_relation_size('api_calls')")
        .fetch_one(&pool)
        .await
        .expect("parent size");
    assert_eq!(parent, 0, "the parent alone says nothing");
    let sizes = maintenance::table_sizes(&pool).await.expect("sizes");
    let tables: Vec<&str> = sizes.iter().map(|(t, _)| t.as_str()).collect();
    let mut expected = maintenance::ANALYTICS_TABLES.to_vec();
    expected.sort_unstable();
    assert_eq!(tables, expected);
    let api_calls = sizes
        .iter()
        .find(|(t, _)| t == "api_calls")
        .map(|(_, b)| *b)
        .expect("api_calls");
    let partition: i64 = sqlx::query_scalar("SELECT pg_total_relation_size($1::regclass)")
        .bind(partition_name(day(2031, 6, 29)))
        .fetch_one(&pool)
        .await
        .expect("partition size");
    assert!(
        api_calls >= partition && partition > 0,
        "{api_calls} < {partition}"
    );
}
