//! The pipeline against a real PostgreSQL: exact row counts, exact drop counts, spooling while
//! the database is cut and exactly-once replay, duplicate batches, damaged spool segments, and
//! shutdown with a full queue.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aim_pipeline::spool::{Spool, SpooledBatch};
use aim_pipeline::{ApiCallEvent, CallRow, DropReason, Pipeline, PipelineConfig};
use aim_store::testing::TestDatabase;
use uuid::Uuid;

mod common;
use common::event;

fn config(spool: &std::path::Path) -> PipelineConfig {
    PipelineConfig {
        queue_capacity: 65_536,
        writers: 2,
        batch_max: 500,
        flush_after: Duration::from_millis(20),
        spool_dir: spool.to_path_buf(),
        spool_max_bytes: 64 * 1024 * 1024,
        spool_max_age: Duration::from_secs(7 * 86_400),
        dead_letter_dir: spool.join("dead-letter"),
        dead_letter_max_bytes: u64::MAX,
        rollups: true,
        nice: 0,
    }
}

fn pg(database: &aim_connect::DatabaseSettings) -> aim_connect::TokioPostgres {
    aim_connect::install_crypto_provider();
    database.tokio_postgres().expect("TLS settings")
}

async fn count(db: &TestDatabase, sql: &str) -> i64 {
    let pool = aim_store::connect(
        &db.settings(),
        &aim_store::PoolSettings::default(),
        Duration::from_secs(5),
    )
    .await
    .expect("pool");
    let n: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.expect(sql);
    pool.close().await;
    n
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Recomputes every rollup from the raw rows and requires no difference.
async fn assert_rollups_clean(db: &TestDatabase) {
    let client = pg(&db.settings()).connect().await.expect("connect");
    let today = chrono::Utc::now().date_naive();
    let differences = aim_pipeline::rollup::verify::verify(
        &client,
        today - chrono::Days::new(2),
        today + chrono::Days::new(1),
    )
    .await
    .expect("verify");
    assert!(
        differences.is_empty(),
        "{}",
        differences
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_becomes_exactly_one_row() {
    let db = TestDatabase::create().await;
    let spool = tempfile::tempdir().expect("spool");
    let pipeline = Pipeline::start(config(spool.path()), pg(&db.settings())).expect("start");
    let sink = pipeline.sink();
    let org = Uuid::now_v7();
    for i in 0..5_000 {
        sink.record(event(org, i));
    }
    let stats = Arc::clone(pipeline.stats());
    wait_for("5000 rows written", || stats.snapshot().written == 5_000).await;
    assert_eq!(pipeline.shutdown(deadline()).await, 0);
    assert_eq!(count(&db, "SELECT count(*) FROM api_calls").await, 5_000);
    assert_eq!(
        count(&db, "SELECT count(DISTINCT id) FROM api_calls").await,
        5_000
    );
    assert_eq!(
        count(&db, "SELECT count(DISTINCT request_id) FROM api_calls").await,
        5_000
    );
    let ledger = count(
        &db,
        "SELECT coalesce(sum(row_count), 0)::bigint FROM ingest_batches",
    )
    .await;
    assert_eq!(ledger, 5_000, "the ledger accounts for every row");
    assert_rollups_clean(&db).await;
    let calls = count(
        &db,
        "SELECT coalesce(sum(total_api_calls), 0)::bigint FROM organization_daily_metrics",
    )
    .await;
    assert_eq!(calls, 5_000, "the daily rollup counts every call");
    let s = stats.snapshot();
    assert!(s.balanced(0), "{s:?}");
    assert_eq!(s.dropped, 0);
}

/// A queue of 100 events and one writer taking 10 at a time.
fn small_queue(spool: &std::path::Path) -> PipelineConfig {
    PipelineConfig {
        queue_capacity: 100,
        writers: 1,
        batch_max: 10,
        ..config(spool)
    }
}

/// Pauses the database and hands the writer one event: past the batch's flush interval it is
/// stuck writing it, taking nothing more from the queue.
async fn stall_the_writer(proxy: &aim_store::testing::FaultProxy, pipeline: &Pipeline) {
    proxy.pause();
    pipeline.sink().record(event(Uuid::nil(), 0));
    wait_for("the writer to take its batch", || {
        pipeline.stats().snapshot().in_flight == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_and_counts_exactly() {
    let db = TestDatabase::create().await;
    let proxy = db.proxy().await;
    let spool = tempfile::tempdir().expect("spool");
    let mut cfg = small_queue(spool.path());
    // A spool that takes nothing: the spiller leaves the queue alone, and what does not fit is
    // dropped at the door.
    cfg.spool_max_bytes = 0;
    let pipeline = Pipeline::start(cfg, pg(&db.settings_via(&proxy))).expect("start");
    let sink = pipeline.sink();
    let stats = Arc::clone(pipeline.stats());
    // Hold the writer on a stalled database, then offer far more than the queue holds.
    stall_the_writer(&proxy, &pipeline).await;
    for i in 1..1_000 {
        sink.record(event(Uuid::nil(), i));
    }
    let s = stats.snapshot();
    assert_eq!(pipeline.queue_depth(), 100);
    assert_eq!(
        stats.dropped(DropReason::QueueFull),
        1_000 - 100 - 1,
        "{s:?}"
    );
    assert!(s.balanced(100), "{s:?}");

    proxy.resume();
    wait_for("the queue to drain", || stats.snapshot().written == 101).await;
    pipeline.shutdown(deadline()).await;
    assert_eq!(count(&db, "SELECT count(*) FROM api_calls").await, 101);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_stuck_on_a_slow_database_does_not_let_the_queue_overflow() {
    let db = TestDatabase::create().await;
    let proxy = db.proxy().await;
    let spool = tempfile::tempdir().expect("spool");
    let cfg = small_queue(spool.path());
    let pipeline = Pipeline::start(cfg, pg(&db.settings_via(&proxy))).expect("start");
    let sink = pipeline.sink();
    let stats = Arc::clone(pipeline.stats());
    // The database answers nothing, yet nothing says it is down: the writer waits on its batch.
    stall_the_writer(&proxy, &pipeline).await;
    // Ten times the queue's capacity, 30 at a time: past three quarters the spiller moves the
    // oldest to the spool, so the queue never overflows.
    for chunk in 0..33 {
        for i in 0..30 {
            sink.record(event(Uuid::nil(), 1 + chunk * 30 + i));
        }
        wait_for("the queue back under three quarters", || {
            pipeline.queue_depth() < 75
        })
        .await;
    }
    let s = stats.snapshot();
    assert_eq!(s.dropped, 0, "{s:?}");
    assert!(s.spilled > 0 && s.spilled == s.spooled, "{s:?}");
    assert!(s.balanced(pipeline.queue_depth() as u64), "{s:?}");

    proxy.resume();
    wait_for("every event written", || stats.snapshot().written == 991).await;
    assert_eq!(pipeline.shutdown(deadline()).await, 0);
    assert_eq!(count(&db, "SELECT count(*) FROM api_calls").await, 991);
    assert_eq!(
        count(&db, "SELECT count(DISTINCT request_id) FROM api_calls").await,
        991
    );
    assert_rollups_clean(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_spooled_while_the_database_is_cut_and_replayed_exactly_once() {
    let db = TestDatabase::create().await;
    let proxy = db.proxy().await;
    let spool = tempfile::tempdir().expect("spool");
    let pipeline =
        Pipeline::start(config(spool.path()), pg(&db.settings_via(&proxy))).expect("start");
    let sink = pipeline.sink();
    let stats = Arc::clone(pipeline.stats());
    for i in 0..1_000 {
        sink.record(event(Uuid::nil(), i));
    }
    wait_for("the first rows", || stats.snapshot().written == 1_000).await;

    proxy.cut();
    for i in 0..3_000 {
        sink.record(event(Uuid::nil(), i));
    }
    wait_for("everything spooled", || stats.snapshot().in_spool == 3_000).await;
    let s = stats.snapshot();
    assert!(s.database_down && s.spool_bytes > 0, "{s:?}");
    assert_eq!(pipeline.status().state, "spooling");
    assert!(s.balanced(0), "{s:?}");

    proxy.resume();
    wait_for("the spool replayed", || {
        let s = stats.snapshot();
        s.written == 4_000 && s.in_spool == 0
    })
    .await;
    pipeline.shutdown(deadline()).await;
    assert_eq!(count(&db, "SELECT count(*) FROM api_calls").await, 4_000);
    assert_eq!(
        count(&db, "SELECT count(DISTINCT id) FROM api_calls").await,
        4_000
    );
    let s = stats.snapshot();
    assert_eq!(s.replayed, 3_000);
    assert_rollups_clean(&db).await;
    assert_eq!(s.dropped, 0);
    assert_eq!(s.spool_bytes, 0);
    assert!(
        std::fs::read_dir(spool.path())
            .expect("dir")
            .filter_map(Result::ok)
            .all(|e| e.path().is_dir()),
        "segments removed"
    );
}

#[tokio::test]
async fn a_batch_replayed_after_it_committed_is_not_duplicated() {
    let db = TestDatabase::create().await;
    let client = pg(&db.settings()).connect().await.expect("connect");
    let copy = aim_pipeline::transaction::Statements::prepare(&client)
        .await
        .expect("prepare");
    let rows: Vec<CallRow> = (0..50)
        .map(|i| CallRow::from_event(&event(Uuid::nil(), i)))
        .collect();
    let batch = Uuid::now_v7();
    let first = aim_pipeline::transaction::write_batch(&client, &copy, batch, &rows)
        .await
        .expect("first");
    let again = aim_pipeline::transaction::write_batch(&client, &copy, batch, &rows)
        .await
        .expect("again");
    assert_eq!(first, aim_pipeline::transaction::Outcome::Written);
    assert_eq!(again, aim_pipeline::transaction::Outcome::Duplicate);
    assert_eq!(count(&db, "SELECT count(*) FROM api_calls").await, 50);
    assert_rollups_clean(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_spool_segments_are_skipped_counted_and_quarantined() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().expect("spool");
    let batch = |n: u64| SpooledBatch {
        batch_id: Uuid::now_v7(),
        spooled_at_ms: chrono::Utc::now().timestamp_millis(),
        rows: (0..n)
            .map(|i| CallRow::from_event(&event(Uuid::nil(), i)))
            .collect(),
    };
    {
        let mut spool = Spool::open(dir.path(), u64::MAX).expect("open");
        // Segment 0: good, corrupt, good. Segment 1: good, then a torn frame. Segment 2: good.
        let first = spool.append(&batch(10), 0).expect("append");
        spool.append(&batch(20), 0).expect("append");
        spool.append(&batch(30), 0).expect("append");
        spool.seal();
        spool.append(&batch(40), 0).expect("append");
        spool.append(&batch(50), 0).expect("append");
        spool.seal();
        spool.append(&batch(60), 0).expect("append");
        spool.seal();
        let segments = spool.sealed_segments().expect("segments");
        let mut bytes = std::fs::read(&segments[0]).expect("read");
        bytes[usize::try_from(first).expect("size") + 12] ^= 0x40;
        std::fs::write(&segments[0], bytes).expect("write");
        let mut bytes = std::fs::read(&segments[1]).expect("read");
        bytes.truncate(bytes.len() - 5);
        std::fs::write(&segments[1], bytes).expect("write");
    }
    let pipeline =
        Pipeline::start(config(dir.path()), pg(&db.settings())).expect("start despite damage");
    let stats = Arc::clone(pipeline.stats());
    wait_for("the good frames replayed", || {
        stats.snapshot().written == 10 + 30 + 40 + 60
    })
    .await;
    wait_for("segments handled", || stats.snapshot().corrupt_frames == 2).await;
    pipeline.shutdown(deadline()).await;
    assert_eq!(count(&db, "SELECT count(*) FROM api_calls").await, 140);
    assert_eq!(
        stats.dropped(DropReason::SpoolCorrupt),
        2,
        "one corrupt frame, one torn frame"
    );
    let quarantined = std::fs::read_dir(dir.path().join("quarantine"))
        .expect("quarantine")
        .count();
    assert_eq!(quarantined, 2);
    assert_rollups_clean(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_a_full_queue_writes_every_event() {
    let db = TestDatabase::create().await;
    let spool = tempfile::tempdir().expect("spool");
    let mut cfg = config(spool.path());
    cfg.queue_capacity = 20_000;
    cfg.flush_after = Duration::from_secs(60);
    let pipeline = Pipeline::start(cfg, pg(&db.settings())).expect("start");
    let sink = pipeline.sink();
    for i in 0..20_000 {
        sink.record(event(Uuid::nil(), i));
    }
    let stats = Arc::clone(pipeline.stats());
    assert_eq!(
        pipeline.shutdown(deadline()).await,
        0,
        "nothing left behind"
    );
    sink.record(event(Uuid::nil(), 0));
    assert_eq!(
        stats.dropped(DropReason::Shutdown),
        1,
        "events after shutdown are counted"
    );
    assert_eq!(stats.dropped(DropReason::QueueFull), 0);
    assert_eq!(count(&db, "SELECT count(*) FROM api_calls").await, 20_000);
    assert_rollups_clean(&db).await;
    assert!(stats.snapshot().balanced(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_while_the_database_is_down_spools_and_the_next_start_replays() {
    let db = TestDatabase::create().await;
    let proxy = db.proxy().await;
    let spool = tempfile::tempdir().expect("spool");
    proxy.cut();
    let pipeline =
        Pipeline::start(config(spool.path()), pg(&db.settings_via(&proxy))).expect("start");
    let sink = pipeline.sink();
    for i in 0..700 {
        sink.record(event(Uuid::nil(), i));
    }
    pipeline.shutdown(deadline()).await;

    proxy.resume();
    let next = Pipeline::start(config(spool.path()), pg(&db.settings())).expect("restart");
    assert_eq!(next.stats().snapshot().recovered, 700);
    let stats = Arc::clone(next.stats());
    wait_for("the replay", || stats.snapshot().written == 700).await;
    next.shutdown(deadline()).await;
    assert_eq!(count(&db, "SELECT count(*) FROM api_calls").await, 700);
    assert_rollups_clean(&db).await;
    assert!(stats.snapshot().balanced(0));
}

#[tokio::test]
async fn the_hand_encoded_copy_round_trips_every_column() {
    let db = TestDatabase::create().await;
    let client = pg(&db.settings()).connect().await.expect("connect");
    let copy = aim_pipeline::transaction::Statements::prepare(&client)
        .await
        .expect("prepare");
    let called_at = SystemTime::UNIX_EPOCH + Duration::from_micros(1_790_000_000_123_456);
    let mut e = event(Uuid::now_v7(), 7);
    e.user_id = Some(Uuid::now_v7());
    e.agent_id = None;
    e.duration_ms = 12.345_678;
    e.ip_address = Some("2001:db8::1".parse().expect("ipv6"));
    e.user_agent = Some(http::HeaderValue::from_bytes(b"agent\xc3\xa9/1").expect("header"));
    e.error_message = Some("not_found");
    e.status_code = 404;
    e.called_at = called_at;
    e.endpoint = Arc::from("/api/v1/agents/{id}");
    let batch = Uuid::now_v7();
    aim_pipeline::transaction::write_batch(&client, &copy, batch, std::slice::from_ref(&e))
        .await
        .expect("write");
    let row = client
        .query_one(
            "SELECT id, organization_id, agent_id, user_id, method, endpoint, status_code, duration_ms, \
                    request_size_bytes, response_size_bytes, user_agent, host(ip_address), error_message, \
                    request_id, (extract(epoch FROM called_at) * 1000000)::bigint, batch_id FROM api_calls",
            &[],
        )
        .await
        .expect("row");
    assert_eq!(row.get::<_, Uuid>(0), e.id);
    assert_eq!(row.get::<_, Uuid>(1), e.organization_id);
    assert_eq!(row.get::<_, Option<Uuid>>(2), None);
    assert_eq!(row.get::<_, Option<Uuid>>(3), e.user_id);
    assert_eq!(row.get::<_, String>(4), "POST");
    assert_eq!(row.get::<_, String>(5), "/api/v1/agents/{id}");
    assert_eq!(row.get::<_, i32>(6), 404);
    assert_eq!(row.get::<_, f64>(7), 12.345_678);
    assert_eq!(row.get::<_, i64>(8), 7);
    assert_eq!(row.get::<_, i64>(9), 100);
    assert_eq!(
        row.get::<_, Option<String>>(10).as_deref(),
        Some("agenté/1")
    );
    assert_eq!(
        row.get::<_, Option<String>>(11).as_deref(),
        Some("2001:db8::1")
    );
    assert_eq!(
        row.get::<_, Option<String>>(12).as_deref(),
        Some("not_found")
    );
    assert_eq!(row.get::<_, Option<String>>(13).as_deref(), Some("req-7"));
    assert_eq!(row.get::<_, i64>(14), 1_790_000_000_123_456);
    assert_eq!(row.get::<_, Uuid>(15), batch);
}

#[tokio::test]
async fn verify_finds_a_tampered_rollup_and_rebuild_repairs_it() {
    let db = TestDatabase::create().await;
    let mut client = pg(&db.settings()).connect().await.expect("connect");
    let statements = aim_pipeline::transaction::Statements::prepare(&client)
        .await
        .expect("prepare");
    let org = Uuid::now_v7();
    let events: Vec<ApiCallEvent> = (0..40).map(|i| event(org, i)).collect();
    aim_pipeline::transaction::write_batch(&client, &statements, Uuid::now_v7(), &events)
        .await
        .expect("write");
    assert_rollups_clean(&db).await;
    client
        .execute(
            "UPDATE organization_daily_metrics SET total_api_calls = total_api_calls + 1",
            &[],
        )
        .await
        .expect("tamper");
    let today = chrono::Utc::now().date_naive();
    let found = aim_pipeline::rollup::verify::verify(&client, today, today)
        .await
        .expect("verify");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].table, "organization_daily_metrics");
    assert_eq!((found[0].stored.calls, found[0].computed.calls), (41, 40));
    aim_pipeline::rollup::verify::rebuild(&mut client, today, today)
        .await
        .expect("rebuild");
    assert_rollups_clean(&db).await;
}

/// The pipeline's counters once two looks 100 ms apart agree (and, with the database up, the
/// queue is empty).
async fn settled(pipeline: &Pipeline, up: bool) -> (aim_pipeline::StatsSnapshot, u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let first = (pipeline.stats().snapshot(), pipeline.queue_depth() as u64);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let second = (pipeline.stats().snapshot(), pipeline.queue_depth() as u64);
        let quiet = format!("{:?}", first) == format!("{:?}", second);
        if (quiet && (second.1 == 0 || !up)) || std::time::Instant::now() > deadline {
            return second;
        }
    }
}

/// One step of a generated scenario.
#[derive(Debug, Clone)]
enum Step {
    /// Hand this many events to the sink at once (more than the queue holds, sometimes).
    Send(u64),
    /// The database stops answering.
    Cut,
    /// It answers again.
    Resume,
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (1u64..400).prop_map(Step::Send),
        1 => Just(Step::Cut),
        1 => Just(Step::Resume),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 10, ..Default::default() })]

    /// Whatever happens — a queue too small for a burst, the database cut and back — every event
    /// is written, dropped with a reason, queued, in a writer's hands or spooled, whenever the
    /// pipeline is looked at; at the end every event is written or counted as dropped, and
    /// the rows are exactly the written events.
    #[test]
    fn the_accounting_balances_whatever_happens(
        steps in proptest::collection::vec(step(), 1..8),
        capacity in 1usize..300,
        batch in 1usize..64,
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let db = TestDatabase::create().await;
            let proxy = db.proxy().await;
            let spool = tempfile::tempdir().expect("spool");
            let mut sizing = config(spool.path());
            sizing.queue_capacity = capacity;
            sizing.batch_max = batch;
            let pipeline = Pipeline::start(sizing, pg(&db.settings_via(&proxy))).expect("pipeline");
            let sink = pipeline.sink();
            let organization = Uuid::now_v7();
            let mut sent = 0;
            let mut up = true;
            for step in &steps {
                match step {
                    Step::Send(n) => {
                        for _ in 0..*n {
                            sink.record(event(organization, sent));
                            sent += 1;
                        }
                    }
                    Step::Cut => {
                        proxy.cut();
                        up = false;
                    }
                    Step::Resume => {
                        proxy.resume();
                        up = true;
                    }
                }
                // Looked at once nothing moves: the counters are read one by one, so a look
                // in the middle of a hand-over would see an event in neither place.
                let (snapshot, queued) = settled(&pipeline, up).await;
                assert!(
                    snapshot.balanced(queued),
                    "after {step:?}: {snapshot:?}, queued {queued}"
                );
                assert_eq!(snapshot.received, sent);
            }
            proxy.resume();
            // The replayer notices the database within its backoff and empties the spool.
            wait_for("the spool to be replayed", || {
                pipeline.stats().snapshot().in_spool == 0
            })
            .await;
            let left = pipeline
                .shutdown(tokio::time::Instant::now() + Duration::from_secs(20))
                .await;
            assert_eq!(left, 0);
            let s = pipeline.stats().snapshot();
            assert!(s.balanced(0), "{s:?}");
            assert_eq!(s.received, s.written + s.dropped, "{s:?}");
            let rows = count(&db, "SELECT count(*) FROM api_calls").await;
            assert_eq!(rows as u64, s.written, "{s:?}");
            assert_rollups_clean(&db).await;
        });
    }
}

async fn execute(db: &TestDatabase, sql: &str) {
    let client = pg(&db.settings()).connect().await.expect("connect");
    client.batch_execute(sql).await.expect(sql);
}

/// A trigger on `api_calls` that refuses the rows whose request id is `marker` (`%` for all).
async fn refuse(db: &TestDatabase, marker: &str) {
    execute(
        db,
        &format!(
            "CREATE FUNCTION refuse_marked() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.request_id LIKE '{marker}' THEN \
                 RAISE EXCEPTION 'refused by the test trigger: %', NEW.request_id; END IF; \
             RETURN NEW; END $$; \
             CREATE TRIGGER refuse_marked BEFORE INSERT ON api_calls \
                 FOR EACH ROW EXECUTE FUNCTION refuse_marked();"
        ),
    )
    .await;
}

fn dead_letters(dir: &std::path::Path) -> Vec<SpooledBatch> {
    let spool = Spool::open(dir, u64::MAX).expect("dead-letter spool");
    spool
        .sealed_segments()
        .expect("segments")
        .iter()
        .flat_map(|s| aim_pipeline::spool::read_segment(s).expect("read").batches)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refused_event_is_dead_lettered_and_the_rest_of_its_batch_is_written() {
    let db = TestDatabase::create().await;
    refuse(&db, "req-137").await;
    let spool = tempfile::tempdir().expect("spool");
    let pipeline = Pipeline::start(config(spool.path()), pg(&db.settings())).expect("start");
    let sink = pipeline.sink();
    let org = Uuid::now_v7();
    for i in 0..400 {
        sink.record(event(org, i));
    }
    assert_eq!(pipeline.shutdown(deadline()).await, 0);
    let s = pipeline.stats().snapshot();
    assert_eq!(
        (s.written, s.dead_lettered, s.dropped),
        (399, 1, 0),
        "{s:?}"
    );
    assert!(s.balanced(0), "{s:?}");
    assert_eq!(
        s.statement_refused, None,
        "one bad row is not a wrong statement"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM api_calls").await, 399);
    assert_rollups_clean(&db).await;
    let kept = dead_letters(&spool.path().join("dead-letter"));
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].rows.len(), 1);
    assert_eq!(kept[0].rows[0].request_id.as_deref(), Some("req-137"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_refused_for_every_row_dead_letters_whole_batches_and_degrades() {
    let db = TestDatabase::create().await;
    refuse(&db, "%").await;
    let spool = tempfile::tempdir().expect("spool");
    let pipeline = Pipeline::start(config(spool.path()), pg(&db.settings())).expect("start");
    let sink = pipeline.sink();
    let org = Uuid::now_v7();
    for i in 0..300 {
        sink.record(event(org, i));
    }
    assert_eq!(pipeline.shutdown(deadline()).await, 0);
    let s = pipeline.stats().snapshot();
    assert_eq!(
        (s.written, s.dead_lettered, s.dropped),
        (0, 300, 0),
        "{s:?}"
    );
    let message = s.statement_refused.expect("degraded");
    assert!(message.contains("refused by the test trigger"), "{message}");
    assert!(message.contains("SQLSTATE P0001"), "{message}");
    assert_eq!(count(&db, "SELECT count(*) FROM api_calls").await, 0);
    // Whole batches, not single events: one split each at most.
    let kept = dead_letters(&spool.path().join("dead-letter"));
    assert_eq!(kept.iter().map(|b| b.rows.len()).sum::<usize>(), 300);
    assert!(kept.len() <= 3, "{} dead-letter batches", kept.len());

    // Replayed while still refused: kept. After the fix: every call exactly once, and a second
    // replay finds nothing.
    let dir = spool.path().join("dead-letter");
    let client = pg(&db.settings()).connect().await.expect("connect");
    let early = aim_pipeline::dead_letter::replay(&dir, &client)
        .await
        .expect("replay");
    assert_eq!((early.written, early.still_refused), (0, 300));
    execute(&db, "DROP TRIGGER refuse_marked ON api_calls").await;
    let listed = aim_pipeline::dead_letter::list(&dir).expect("list");
    assert_eq!(listed.iter().map(|k| k.events).sum::<usize>(), 300);
    let replayed = aim_pipeline::dead_letter::replay(&dir, &client)
        .await
        .expect("replay");
    assert_eq!(replayed.written, 300);
    assert_eq!(count(&db, "SELECT count(*) FROM api_calls").await, 300);
    assert_rollups_clean(&db).await;
    let again = aim_pipeline::dead_letter::replay(&dir, &client)
        .await
        .expect("replay");
    assert_eq!(again, aim_pipeline::dead_letter::Replayed::default());
    assert!(
        aim_pipeline::dead_letter::list(&dir)
            .expect("list")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_of_a_kept_batch_already_written_is_not_written_twice() {
    let db = TestDatabase::create().await;
    refuse(&db, "req-7").await;
    let spool = tempfile::tempdir().expect("spool");
    let pipeline = Pipeline::start(config(spool.path()), pg(&db.settings())).expect("start");
    let sink = pipeline.sink();
    let org = Uuid::now_v7();
    for i in 0..20 {
        sink.record(event(org, i));
    }
    assert_eq!(pipeline.shutdown(deadline()).await, 0);
    execute(&db, "DROP TRIGGER refuse_marked ON api_calls").await;
    let dir = spool.path().join("dead-letter");
    // A copy of the folder replayed after the original: the ledger has the batch.
    let copy = tempfile::tempdir().expect("copy");
    for entry in std::fs::read_dir(&dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            std::fs::copy(&path, copy.path().join(path.file_name().expect("name"))).expect("copy");
        }
    }
    let client = pg(&db.settings()).connect().await.expect("connect");
    let first = aim_pipeline::dead_letter::replay(&dir, &client)
        .await
        .expect("replay");
    let second = aim_pipeline::dead_letter::replay(copy.path(), &client)
        .await
        .expect("replay");
    assert_eq!((first.written, second.written, second.duplicate), (1, 0, 1));
    assert_eq!(count(&db, "SELECT count(*) FROM api_calls").await, 20);
    assert_eq!(
        aim_pipeline::dead_letter::discard(copy.path()).expect("discard"),
        0
    );
}

#[tokio::test]
async fn sub_batch_ids_are_derived_from_the_batch_id() {
    let parent = Uuid::now_v7();
    let left = aim_pipeline::dead_letter::sub_batch_id(parent, 0);
    assert_eq!(left, aim_pipeline::dead_letter::sub_batch_id(parent, 0));
    assert_ne!(left, aim_pipeline::dead_letter::sub_batch_id(parent, 1));
    assert_ne!(left, parent);
}
