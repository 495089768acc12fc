//! Trust that the service computes: traffic of known shape sent through the real writer path
//! over simulated days (backdated calls and verifications), recomputed at each simulated day's
//! end; the lifecycle, alerts, overrides, the policy and its dry run.

use aim_store::model::{RuleOutcome, VerificationStatus};
use aim_store::verifications::NewVerification;
use axum::http::{Method, StatusCode};
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, TestUser};

/// One simulated day of an agent: `calls` calls spread over 09:00–14:59 (`errors` of them
/// answered 500) through the pipeline, and verifications recorded as `verify-action` records
/// them, at 10:00.
#[allow(clippy::too_many_arguments)]
async fn day(
    app: &TestApp,
    organization: Uuid,
    agent: Uuid,
    start: DateTime<Utc>,
    calls: usize,
    errors: usize,
    allowed: usize,
    denied: usize,
) {
    let sink = app.pipeline.as_ref().expect("pipeline").sink();
    for i in 0..calls {
        let at = start + Duration::hours(9 + (i % 6) as i64) + Duration::seconds(i as i64);
        sink.record(crate::helpers::past_call(
            organization,
            agent,
            at,
            if i < errors { 500 } else { 200 },
        ));
    }
    for (count, outcome, action) in [
        (allowed, RuleOutcome::Allowed, "read:records"),
        (denied, RuleOutcome::Denied, "delete:records"),
    ] {
        for i in 0..count {
            aim_store::verifications::record(
                &app.pool,
                NewVerification {
                    organization_id: organization,
                    agent_id: agent,
                    action: action.into(),
                    resource: None,
                    context: None,
                    status: if outcome == RuleOutcome::Allowed {
                        VerificationStatus::Success
                    } else {
                        VerificationStatus::Failed
                    },
                    reason: "simulated".into(),
                    rule_outcome: outcome,
                    duration_ms: 1.0,
                    started_at: start + Duration::hours(10) + Duration::seconds(i as i64),
                    rollups: true,
                },
            )
            .await
            .expect("verification");
        }
    }
}

async fn recompute(
    app: &TestApp,
    organization: Uuid,
    now: DateTime<Utc>,
) -> aim_api::trust::Outcome {
    let policy = aim_store::trust::policy(&app.pool, organization)
        .await
        .expect("policy");
    aim_api::trust::recompute(&app.pool, organization, None, &policy, now)
        .await
        .expect("recompute")
        .0
}

async fn status_and_score(app: &TestApp, agent: Uuid) -> (String, f64) {
    sqlx::query_as("SELECT status, trust_score FROM agents WHERE id = $1")
        .bind(agent)
        .fetch_one(&app.pool)
        .await
        .expect("agent")
}

fn id(agent: &Value) -> Uuid {
    agent["id"].as_str().expect("id").parse().expect("uuid")
}

/// The policy the simulated days run under: errors and verifications weigh most, a score
/// below 0.5 suspends, `delete:*` is denied by the rules.
async fn strict_policy(app: &TestApp, admin: &TestUser) {
    let put = app
        .call(
            Method::PUT,
            "/api/v1/trust-policy",
            Some(&admin.token),
            Some(json!({
                "denied_actions": ["delete:*"],
                "weights": {"verification": 0.4, "error_rate": 0.4, "volume": 0.1, "key_hygiene": 0.05, "activity": 0.05},
                "suspend_below": 0.5,
            })),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
}

#[tokio::test]
async fn simulated_days_verify_a_good_agent_and_suspend_a_bad_one_with_each_alert_once() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    strict_policy(&app, &admin).await;
    let good = app.agent(&admin.token, "good").await;
    let bad = app.agent(&admin.token, "bad").await;
    let (good, bad) = (id(&good), id(&bad));
    let good_key = app.key(&admin.token, &good.to_string()).await;
    let bad_key = app.key(&admin.token, &bad.to_string()).await;
    let org = admin.organization_id;

    let today = Utc::now()
        .duration_trunc(Duration::days(1))
        .expect("midnight");
    let start = |d: i64| today - Duration::days(8 - d);
    for d in 1..=7 {
        day(&app, org, good, start(d), 60, 1, 3, 0).await;
        if d <= 4 {
            day(&app, org, bad, start(d), 60, 1, 3, 0).await;
        } else {
            // Its verifications start being denied and its errors spike.
            day(&app, org, bad, start(d), 60, 36, 0, 20).await;
        }
    }
    app.drain().await;

    let mut seen = Vec::new();
    for d in 1..=7 {
        let now = start(d) + Duration::hours(23) + Duration::minutes(30);
        recompute(&app, org, now).await;
        seen.push((
            status_and_score(&app, good).await,
            status_and_score(&app, bad).await,
        ));
    }
    // Pending until ten allowed verifications (day 4), then verified by policy.
    for (d, ((good_status, good_score), (bad_status, _))) in seen.iter().enumerate() {
        let expected = if d + 1 < 4 { "pending" } else { "verified" };
        assert_eq!(good_status, expected, "good agent on day {}", d + 1);
        assert!(*good_score > 0.8, "day {}: {good_score}", d + 1);
        let expected = match d + 1 {
            1..=3 => "pending",
            4 => "verified",
            _ => "suspended",
        };
        assert_eq!(bad_status, expected, "bad agent on day {}", d + 1);
    }
    let (_, bad_day_4) = seen[3].1.clone();
    let (_, bad_day_5) = seen[4].1.clone();
    assert!(
        bad_day_4 > 0.8 && bad_day_5 < 0.5,
        "{bad_day_4} -> {bad_day_5}"
    );

    // The expected alerts, once each however many recomputations saw them; none for the good one.
    let alerts = app.get_as("/api/v1/alerts", &admin.token).await;
    assert_eq!(alerts.status, StatusCode::OK, "{}", alerts.body);
    let mut rules: Vec<(String, String)> = alerts.body["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .map(|a| {
            (
                a["agent_id"].as_str().expect("agent").to_owned(),
                a["rule"].as_str().expect("rule").to_owned(),
            )
        })
        .collect();
    rules.sort();
    let bad_id = bad.to_string();
    assert_eq!(
        rules,
        ["error_rate_spike", "score_below", "score_drop", "suspended"]
            .map(|r| (bad_id.clone(), r.to_owned()))
    );

    let overview = app
        .get_as("/api/v1/analytics/dashboard", &admin.token)
        .await;
    assert_eq!(overview.body["open_alerts"], 4, "{}", overview.body);
    assert_eq!(overview.body["acknowledged_alerts"], 0);
    let first = alerts.body["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .find(|a| a["rule"] == "score_below")
        .and_then(|a| a["id"].as_str())
        .expect("a score_below alert")
        .to_owned();
    let acknowledged = app
        .post_as(
            &format!("/api/v1/alerts/{first}/acknowledge"),
            &admin.token,
            json!({}),
        )
        .await;
    assert_eq!(acknowledged.status, StatusCode::OK, "{}", acknowledged.body);
    assert_eq!(acknowledged.body["status"], "acknowledged");
    let overview = app
        .get_as("/api/v1/analytics/dashboard", &admin.token)
        .await;
    assert_eq!(
        (
            overview.body["open_alerts"].clone(),
            overview.body["acknowledged_alerts"].clone()
        ),
        (json!(3), json!(1))
    );

    // The suspended agent's key is refused with a clear code; the good one's works.
    let refused = app.get_as("/api/v1/auth/me", &bad_key).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.error_code(), "agent_suspended");
    assert_eq!(
        app.get_as("/api/v1/auth/me", &good_key).await.status,
        StatusCode::OK
    );

    // Every transition is audited with its cause.
    let transitions: Vec<(Uuid, Value)> = sqlx::query_as(
        "SELECT target_id, details FROM audit_events WHERE action = 'agent.status_changed' ORDER BY created_at",
    )
    .fetch_all(&app.pool)
    .await
    .expect("audit");
    assert_eq!(transitions.len(), 3, "{transitions:?}");
    assert!(transitions.iter().all(|(_, d)| {
        d["cause"]
            .as_str()
            .is_some_and(|c| c.starts_with("policy: "))
    }));
    assert!(
        transitions
            .iter()
            .any(|(t, d)| *t == bad && d["to"] == "suspended")
    );

    // An acknowledged alert still counts as the agent's one for its rule; a resolved one is
    // final, and the condition seen again opens a new alert.
    let resolved = app
        .post_as(
            &format!("/api/v1/alerts/{first}/resolve"),
            &admin.token,
            json!({}),
        )
        .await;
    assert_eq!(resolved.body["status"], "resolved");
    let refused = app
        .post_as(
            &format!("/api/v1/alerts/{first}/acknowledge"),
            &admin.token,
            json!({}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.error_code(), "alert_resolved");

    // History rows carry the factors; a recomputation with nothing new writes nothing.
    let metadata: Value = sqlx::query_scalar(
        "SELECT metadata FROM trust_score_history WHERE agent_id = $1 AND changed_by IS NULL \
         ORDER BY recorded_at DESC LIMIT 1",
    )
    .bind(bad)
    .fetch_one(&app.pool)
    .await
    .expect("history");
    assert_eq!(metadata["factors"].as_array().map(Vec::len), Some(5));
    let again = recompute(
        &app,
        org,
        start(7) + Duration::hours(23) + Duration::minutes(30),
    )
    .await;
    // The resolved alert's condition still holds: it opens again, once; nothing else is new.
    assert_eq!(
        (again.scores_written, again.transitions, again.alerts_opened),
        (0, 0, 1)
    );
    // The loading queries and one alert statement (whose conflicts open nothing): not one per
    // agent.
    assert_eq!(again.queries, aim_store::trust::QUERIES_PER_LOAD + 1);

    // Only an admin brings a suspended agent back.
    let manager = app.user(&admin, "manager").await;
    let uri = format!("/api/v1/agents/{bad}");
    let by_manager = app
        .patch_as(&uri, &manager.token, json!({ "status": "verified" }))
        .await;
    assert_eq!(
        by_manager.status,
        StatusCode::FORBIDDEN,
        "{}",
        by_manager.body
    );
    let by_admin = app
        .patch_as(&uri, &admin.token, json!({ "status": "verified" }))
        .await;
    assert_eq!(by_admin.status, StatusCode::OK, "{}", by_admin.body);
    assert_eq!(
        app.get_as("/api/v1/auth/me", &bad_key).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_override_holds_until_it_expires_then_the_computed_score_returns() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    strict_policy(&app, &admin).await;
    let agent = id(&app.agent(&admin.token, "watched").await);
    let org = admin.organization_id;
    let today = Utc::now()
        .duration_trunc(Duration::days(1))
        .expect("midnight");
    day(&app, org, agent, today - Duration::days(1), 0, 0, 0, 30).await;

    let manager = app.user(&admin, "manager").await;
    let expires = Utc::now() + Duration::hours(1);
    let set = app
        .call(
            Method::PUT,
            &format!("/api/v1/agents/{agent}/trust-score"),
            Some(&manager.token),
            Some(json!({ "trust_score": 0.9, "reason": "vouched for", "expires_at": expires })),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);

    let during = recompute(&app, org, Utc::now()).await;
    assert_eq!(during.scores_written, 0);
    assert_eq!(status_and_score(&app, agent).await, ("pending".into(), 0.9));
    let explained = app
        .get_as(&format!("/api/v1/agents/{agent}/trust-score"), &admin.token)
        .await;
    assert_eq!(explained.status, StatusCode::OK, "{}", explained.body);
    assert_eq!(explained.body["assessment"]["score"], 0.9);
    assert_eq!(
        explained.body["assessment"]["admin_override"]["reason"],
        "vouched for"
    );
    assert!(
        explained.body["assessment"]["computed_score"]
            .as_f64()
            .expect("computed")
            < 0.9
    );
    assert_eq!(
        explained.body["assessment"]["factors"]
            .as_array()
            .map(Vec::len),
        Some(5)
    );
    assert_eq!(explained.body["policy"]["suspend_below"], 0.5);
    assert_eq!(
        explained.body["last_change"]["changed_by"],
        manager.id.to_string()
    );

    let after = recompute(&app, org, Utc::now() + Duration::hours(2)).await;
    assert_eq!(after.scores_written, 1);
    let (_, score) = status_and_score(&app, agent).await;
    assert!(score < 0.7, "{score}");
    let (reason, changed_by): (String, Option<Uuid>) = sqlx::query_as(
        "SELECT change_reason, changed_by FROM trust_score_history WHERE agent_id = $1 \
         ORDER BY recorded_at DESC LIMIT 1",
    )
    .bind(agent)
    .fetch_one(&app.pool)
    .await
    .expect("history");
    assert!(
        reason.starts_with("fell mostly on verification"),
        "{reason}"
    );
    assert_eq!(changed_by, None);
}

#[tokio::test]
async fn verify_action_records_what_the_rules_said_and_rescores_the_agent_at_once() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    strict_policy(&app, &admin).await;
    let agent = id(&app.agent(&admin.token, "new").await);
    let key = app.key(&admin.token, &agent.to_string()).await;
    let uri = format!("/api/v1/agents/{agent}/verify-action");
    let pending = app.post_as(&uri, &key, json!({ "action": "read:x" })).await;
    assert_eq!(pending.status, StatusCode::OK, "{}", pending.body);
    assert_eq!(pending.body["status"], "pending");
    assert_eq!(pending.body["rule_outcome"], "allowed");
    let denied = app
        .post_as(&uri, &key, json!({ "action": "delete:everything" }))
        .await;
    assert_eq!(denied.body["status"], "failed");
    assert_eq!(denied.body["rule_outcome"], "denied");
    assert_eq!(
        denied.body["reason"],
        "the organization's rules deny this action"
    );
    let counts: (i64, i64) = sqlx::query_as(
        "SELECT sum(rules_allowed_count)::int8, sum(rules_denied_count)::int8 \
         FROM agent_activity_metrics WHERE agent_id = $1",
    )
    .bind(agent)
    .fetch_one(&app.pool)
    .await
    .expect("rollup");
    assert_eq!(counts, (1, 1));
    // The first verification's recomputation moved the score off its initial 0.5.
    let written: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM trust_score_history WHERE agent_id = $1 AND changed_by IS NULL",
    )
    .bind(agent)
    .fetch_one(&app.pool)
    .await
    .expect("history");
    assert!(written >= 1);
}

#[tokio::test]
async fn the_policy_is_validated_admin_only_and_a_dry_run_writes_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let defaults = app.get_as("/api/v1/trust-policy", &admin.token).await;
    assert_eq!(defaults.status, StatusCode::OK);
    assert_eq!(defaults.body["step"], 0.01);
    assert_eq!(defaults.body["weights"]["verification"], 0.35);

    let bad = app
        .call(
            Method::PUT,
            "/api/v1/trust-policy",
            Some(&admin.token),
            Some(json!({ "weights": {"verification": 0, "error_rate": 0, "volume": 0, "key_hygiene": 0, "activity": 0}, "volume_ratio_max": 2 })),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    assert!(bad.body["error"]["fields"]["weights"].is_string());
    assert!(bad.body["error"]["fields"]["volume_ratio_max"].is_string());
    let manager = app.user(&admin, "manager").await;
    for (method, uri) in [
        (Method::GET, "/api/v1/trust-policy"),
        (Method::PUT, "/api/v1/trust-policy"),
        (Method::POST, "/api/v1/trust-policy/dry-run"),
    ] {
        let body = (method != Method::GET).then(|| json!({}));
        let refused = app.call(method, uri, Some(&manager.token), body).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{uri}");
    }

    let agent = id(&app.agent(&admin.token, "a").await);
    let history_before: i64 = sqlx::query_scalar("SELECT count(*) FROM trust_score_history")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    let dry = app
        .post_as(
            "/api/v1/trust-policy/dry-run",
            &admin.token,
            json!({ "suspend_below": 0.99 }),
        )
        .await;
    assert_eq!(dry.status, StatusCode::OK, "{}", dry.body);
    assert_eq!(dry.body["status_changes"], 1);
    assert_eq!(dry.body["agents"][0]["new_status"], "suspended");
    assert_eq!(dry.body["agents"][0]["writes_score"], true);
    let history_after: i64 = sqlx::query_scalar("SELECT count(*) FROM trust_score_history")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(history_before, history_after);
    assert_eq!(status_and_score(&app, agent).await, ("pending".into(), 0.5));
    // The stored policy is still the default.
    let stored = app.get_as("/api/v1/trust-policy", &admin.token).await;
    assert_eq!(stored.body["suspend_below"], 0.3);
}

#[tokio::test]
async fn a_suspended_agents_refused_calls_are_still_recorded() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let agent = id(&app.agent(&admin.token, "a").await);
    let key = app.key(&admin.token, &agent.to_string()).await;
    let suspended = app
        .patch_as(
            &format!("/api/v1/agents/{agent}"),
            &admin.token,
            json!({ "status": "suspended" }),
        )
        .await;
    assert_eq!(suspended.status, StatusCode::OK);
    let refused = app.get_as("/api/v1/auth/me", &key).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.error_code(), "agent_suspended");
    app.drain().await;
    let recorded: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM api_calls WHERE agent_id = $1 AND status_code = 403",
    )
    .bind(agent)
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(recorded, 1);
}
