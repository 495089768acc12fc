//! The analytics endpoints against a known set of calls sent through the API.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::helpers::TestApp;

fn sum(points: &Value, field: &str) -> f64 {
    points
        .as_array()
        .expect("array")
        .iter()
        .map(|p| p[field].as_f64().expect("number"))
        .sum()
}

#[tokio::test]
async fn every_number_comes_from_the_calls_made() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let busy = app.agent(&admin.token, "busy").await; // user call 1
    let busy_id = busy["id"].as_str().expect("id").to_owned();
    let failing = app.agent(&admin.token, "failing").await; // user call 2
    let failing_id = failing["id"].as_str().expect("id").to_owned();
    let busy_key = app.key(&admin.token, &busy_id).await; // user call 3
    let failing_key = app.key(&admin.token, &failing_id).await; // user call 4
    for _ in 0..10 {
        let r = app
            .get_as(&format!("/api/v1/agents/{busy_id}"), &busy_key)
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    for _ in 0..5 {
        let r = app
            .post_as(
                &format!("/api/v1/agents/{failing_id}/verify-action"),
                &failing_key,
                json!({ "action": "" }),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let other = app.organization("globex").await;
    app.drain().await;

    let usage = app
        .get_as("/api/v1/analytics/usage?period=day", &admin.token)
        .await;
    assert_eq!(usage.status, StatusCode::OK, "{}", usage.body);
    let u = &usage.body;
    assert_eq!(u["period"], "day");
    assert_eq!(u["api_calls"], 19);
    assert_eq!(u["total_agents"], 2);
    assert_eq!(u["active_agents"], 2);
    assert_eq!(u["error_rate"], 26.32);
    assert_eq!(u["uptime"], 100.0);
    assert!(u["avg_response_time_ms"].as_f64().expect("avg") > 0.0);
    assert!(u["p95_response_time_ms"].as_f64().expect("p95") > 0.0);
    assert!(u["data_volume"].as_f64().is_some());
    let month = app.get_as("/api/v1/analytics/usage", &admin.token).await;
    assert_eq!(month.body["period"], "month");
    assert_eq!(month.body["api_calls"], 19);
    let year = app
        .get_as("/api/v1/analytics/usage?period=year", &admin.token)
        .await;
    assert_eq!(
        year.body["api_calls"], 19,
        "the daily rollups agree with the hourly ones"
    );

    let endpoints = app
        .get_as("/api/v1/analytics/endpoints?period=day", &admin.token)
        .await;
    assert_eq!(endpoints.status, StatusCode::OK);
    let list = endpoints.body["endpoints"].as_array().expect("array");
    assert_eq!(list[0]["method"], "GET");
    assert_eq!(list[0]["endpoint"], "/api/v1/agents/{id}");
    assert_eq!(list[0]["calls"], 10);
    assert_eq!(list[0]["error_rate"], 0.0);
    assert_eq!(list[1]["endpoint"], "/api/v1/agents/{id}/verify-action");
    assert_eq!(list[1]["calls"], 5);
    assert_eq!(list[1]["error_rate"], 100.0);
    // Percentiles from the histogram, within its stated 5% of the exact ones.
    let durations: Vec<f64> = sqlx::query_scalar(
        "SELECT duration_ms FROM api_calls WHERE endpoint = '/api/v1/agents/{id}' AND method = 'GET' ORDER BY duration_ms",
    )
    .fetch_all(&app.pool)
    .await
    .expect("durations");
    for (field, q) in [("p50_ms", 0.50), ("p95_ms", 0.95), ("p99_ms", 0.99)] {
        let rank = ((q * durations.len() as f64).ceil() as usize).max(1);
        let exact = durations[rank - 1].max(0.05);
        let estimate = list[0][field].as_f64().expect("percentile");
        assert!(
            (estimate - exact).abs() <= 0.05 * exact,
            "{field}: {estimate} vs exact {exact}"
        );
    }

    let series = app
        .get_as(
            "/api/v1/analytics/timeseries?metric=api_calls",
            &admin.token,
        )
        .await;
    assert_eq!(series.status, StatusCode::OK, "{}", series.body);
    assert_eq!(
        series.body["points"].as_array().map(Vec::len),
        Some(24),
        "zero-filled hours"
    );
    assert_eq!(sum(&series.body["points"], "value"), 19.0);
    let errors = app
        .get_as(
            "/api/v1/analytics/timeseries?metric=errors&interval=day",
            &admin.token,
        )
        .await;
    assert_eq!(sum(&errors.body["points"], "value"), 5.0);
    let one = app
        .get_as(
            &format!("/api/v1/analytics/timeseries?metric=api_calls&agent_id={busy_id}"),
            &admin.token,
        )
        .await;
    assert_eq!(sum(&one.body["points"], "value"), 10.0);
    // Latency percentiles over time: ordered within each bucket, zero where nothing was called.
    let mut percentiles = Vec::new();
    for metric in ["p50_latency", "p95_latency", "p99_latency"] {
        let answer = app
            .get_as(
                &format!("/api/v1/analytics/timeseries?metric={metric}"),
                &admin.token,
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(answer.body["metric"], metric);
        let values: Vec<f64> = answer.body["points"]
            .as_array()
            .expect("points")
            .iter()
            .map(|p| p["value"].as_f64().expect("value"))
            .collect();
        percentiles.push(values);
    }
    for (i, calls) in series.body["points"]
        .as_array()
        .expect("points")
        .iter()
        .enumerate()
    {
        let (p50, p95, p99) = (percentiles[0][i], percentiles[1][i], percentiles[2][i]);
        assert!(p50 <= p95 && p95 <= p99, "bucket {i}: {p50} {p95} {p99}");
        assert_eq!(calls["value"] == 0.0, p99 == 0.0, "bucket {i}");
    }
    // A year of endpoints: the same calls, read from the daily rollups.
    let year = app
        .get_as("/api/v1/analytics/endpoints?period=year", &admin.token)
        .await;
    assert_eq!(year.body["period"], "year");
    assert_eq!(year.body["endpoints"][0]["calls"], 10);
    assert_eq!(year.body["endpoints"][1]["calls"], 5);

    let activity = app
        .get_as(
            &format!("/api/v1/analytics/agents/{busy_id}/activity?hours=3"),
            &admin.token,
        )
        .await;
    assert_eq!(activity.status, StatusCode::OK);
    assert_eq!(activity.body["hours"].as_array().map(Vec::len), Some(3));
    assert_eq!(sum(&activity.body["hours"], "api_calls"), 10.0);

    let agents = app
        .get_as("/api/v1/analytics/agents/activity", &admin.token)
        .await;
    assert_eq!(agents.status, StatusCode::OK);
    let a = &agents.body;
    assert_eq!(a["total"], 2);
    assert_eq!(a["activities"][0]["agent_id"], busy_id.as_str());
    assert_eq!(a["activities"][0]["api_calls"], 10);
    assert_eq!(a["activities"][1]["errors"], 5);
    assert_eq!(a["summary"]["total_calls"], 15);
    assert_eq!(a["summary"]["success_count"], 10);
    assert_eq!(a["summary"]["failure_count"], 5);
    assert_eq!(a["summary"]["success_rate"], 66.67);

    let dashboard = app
        .get_as("/api/v1/analytics/dashboard", &admin.token)
        .await;
    assert_eq!(dashboard.status, StatusCode::OK);
    let d = &dashboard.body;
    assert_eq!(d["organization_id"], admin.organization_id.to_string());
    assert_eq!(
        (
            d["total_agents"].as_i64(),
            d["pending_agents"].as_i64(),
            d["verified_agents"].as_i64()
        ),
        (Some(2), Some(2), Some(0))
    );
    assert_eq!(d["api_calls_24h"], 19);
    assert_eq!(d["error_rate_24h"], 26.32);
    assert_eq!(d["avg_trust_score"], 0.5);
    assert_eq!(d["total_users"], 1);

    // Another organization sees none of it.
    let theirs = app
        .get_as("/api/v1/analytics/usage?period=day", &other.token)
        .await;
    assert_eq!(theirs.body["api_calls"], 0);
    assert_eq!(theirs.body["uptime"], 100.0);
    assert_eq!(
        app.get_as(
            &format!("/api/v1/analytics/agents/{busy_id}/activity"),
            &other.token
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get_as(
            &format!("/api/v1/analytics/timeseries?metric=api_calls&agent_id={busy_id}"),
            &other.token
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get_as("/api/v1/analytics/endpoints", &other.token)
            .await
            .body["endpoints"],
        json!([])
    );
    assert_eq!(
        app.get_as("/api/v1/analytics/agents/activity", &other.token)
            .await
            .body["total"],
        0
    );
    assert_eq!(
        app.get_as("/api/v1/analytics/dashboard", &other.token)
            .await
            .body["api_calls_24h"],
        0
    );
}

#[tokio::test]
async fn agents_cannot_read_analytics_and_parameters_are_checked() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let viewer = app.user(&admin, "viewer").await;
    let agent = app.agent(&admin.token, "a").await;
    let key = app
        .key(&admin.token, agent["id"].as_str().expect("id"))
        .await;
    for path in [
        "/api/v1/analytics/usage",
        "/api/v1/analytics/endpoints",
        "/api/v1/analytics/timeseries?metric=api_calls",
        "/api/v1/analytics/agents/activity",
        "/api/v1/analytics/dashboard",
    ] {
        assert_eq!(
            app.get_as(path, &key).await.status,
            StatusCode::FORBIDDEN,
            "{path}"
        );
        assert_eq!(
            app.get_as(path, &viewer.token).await.status,
            StatusCode::OK,
            "{path}"
        );
    }
    for path in [
        "/api/v1/analytics/usage?period=decade",
        "/api/v1/analytics/usage?days=0",
        "/api/v1/analytics/usage?days=366",
        "/api/v1/analytics/endpoints?limit=0",
        "/api/v1/analytics/endpoints?period=decade",
        "/api/v1/analytics/timeseries?metric=bogus",
        "/api/v1/analytics/timeseries?metric=api_calls&from=2020-01-01T00:00:00Z",
        "/api/v1/analytics/timeseries?metric=api_calls&from=2030-01-01T00:00:00Z&to=2029-01-01T00:00:00Z",
        "/api/v1/analytics/agents/activity?limit=101",
        "/api/v1/analytics/agents/activity?days=0",
    ] {
        let response = app.get_as(path, &admin.token).await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            response.body
        );
    }
    let hours = app
        .get_as(
            &format!(
                "/api/v1/analytics/agents/{}/activity?hours=721",
                agent["id"].as_str().expect("id")
            ),
            &admin.token,
        )
        .await;
    assert_eq!(hours.status, StatusCode::BAD_REQUEST);
    app.drain().await;
}

#[tokio::test]
async fn trust_trends_and_verification_activity_come_from_their_tables() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let other = app.organization("globex").await;
    let none = app
        .get_as("/api/v1/analytics/trust-score-trends", &admin.token)
        .await;
    assert_eq!(none.status, StatusCode::OK);
    assert_eq!(none.body["trends"], json!([]), "no history, no trends");

    let high = app.agent(&admin.token, "high").await;
    let low = app.agent(&admin.token, "low").await;
    let high_id = high["id"].as_str().expect("id").to_owned();
    let low_id = low["id"].as_str().expect("id").to_owned();
    for (id, score) in [(&high_id, 0.95), (&low_id, 0.3)] {
        let r = app
            .call(
                axum::http::Method::PUT,
                &format!("/api/v1/agents/{id}/trust-score"),
                Some(&admin.token),
                Some(json!({ "trust_score": score, "reason": "review" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let trends = app
        .get_as("/api/v1/analytics/trust-score-trends?weeks=4", &admin.token)
        .await;
    let t = &trends.body;
    assert_eq!(t["data_type"], "weekly");
    assert_eq!(t["trends"].as_array().map(Vec::len), Some(1), "{t}");
    let week = &t["trends"][0];
    assert_eq!(week["agent_count"], 2);
    assert_eq!(
        week["avg_score"], 0.625,
        "each agent's last score of the week"
    );
    assert_eq!(
        week["scores_by_range"],
        json!({ "excellent": 1, "good": 0, "fair": 0, "poor": 1 })
    );
    assert_eq!(t["summary"]["overall_avg"], 0.625);
    assert_eq!(t["summary"]["trend_direction"], "stable");
    let daily = app
        .get_as("/api/v1/analytics/trends?period=days&days=7", &admin.token)
        .await;
    assert_eq!(daily.body["data_type"], "daily");
    assert_eq!(daily.body["trends"][0]["agent_count"], 2);

    let key = app.key(&admin.token, &high_id).await;
    let uri = format!("/api/v1/agents/{high_id}/verify-action");
    app.post_as(&uri, &key, json!({ "action": "a" })).await; // pending
    app.call(
        axum::http::Method::PATCH,
        &format!("/api/v1/agents/{high_id}"),
        Some(&admin.token),
        Some(json!({ "status": "verified" })),
    )
    .await;
    app.post_as(&uri, &key, json!({ "action": "a" })).await; // success
    app.call(
        axum::http::Method::PATCH,
        &format!("/api/v1/agents/{high_id}"),
        Some(&admin.token),
        Some(json!({ "status": "suspended" })),
    )
    .await;
    app.post_as(&uri, &admin.token, json!({ "action": "a" }))
        .await; // failed
    let activity = app
        .get_as(
            "/api/v1/analytics/verification-activity?months=6",
            &admin.token,
        )
        .await;
    assert_eq!(activity.status, StatusCode::OK);
    let months = activity.body["activity"].as_array().expect("months");
    assert_eq!(months.len(), 6, "every month present");
    let current = months.last().expect("current month");
    assert_eq!(
        current["month_year"],
        chrono::Utc::now().format("%Y-%m").to_string()
    );
    assert_eq!(
        (
            current["verified"].as_i64(),
            current["failed"].as_i64(),
            current["pending"].as_i64(),
            current["total"].as_i64()
        ),
        (Some(1), Some(1), Some(1), Some(3))
    );
    assert!(months[..5].iter().all(|m| m["total"] == 0));
    assert_eq!(activity.body["current_stats"]["total_agents"], 2);
    assert_eq!(activity.body["current_stats"]["total_pending"], 1);

    // Isolation, roles, validation.
    assert_eq!(
        app.get_as("/api/v1/analytics/trust-score-trends", &other.token)
            .await
            .body["trends"],
        json!([])
    );
    let theirs = app
        .get_as("/api/v1/analytics/verification-activity", &other.token)
        .await;
    assert!(
        theirs.body["activity"]
            .as_array()
            .expect("months")
            .iter()
            .all(|m| m["total"] == 0)
    );
    for path in [
        "/api/v1/analytics/trust-score-trends",
        "/api/v1/analytics/trends",
        "/api/v1/analytics/verification-activity",
    ] {
        assert_eq!(
            app.get_as(path, &key).await.status,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    for path in [
        "/api/v1/analytics/trust-score-trends?weeks=0",
        "/api/v1/analytics/trust-score-trends?weeks=53",
        "/api/v1/analytics/trends?period=months",
        "/api/v1/analytics/trends?period=days&days=91",
        "/api/v1/analytics/verification-activity?months=25",
    ] {
        assert_eq!(
            app.get_as(path, &admin.token).await.status,
            StatusCode::BAD_REQUEST,
            "{path}"
        );
    }
    app.drain().await;
}

#[tokio::test]
async fn export_streams_the_organizations_raw_calls() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let other = app.organization("globex").await;
    let agent = app.agent(&admin.token, "a").await;
    let id = agent["id"].as_str().expect("id").to_owned();
    let key = app.key(&admin.token, &id).await;
    for _ in 0..7 {
        app.get_as(&format!("/api/v1/agents/{id}"), &key).await;
    }
    app.drain().await;
    let expected: i64 =
        sqlx::query_scalar("SELECT count(*) FROM api_calls WHERE organization_id = $1")
            .bind(admin.organization_id)
            .fetch_one(&app.pool)
            .await
            .expect("count");
    assert_eq!(expected, 9, "two user calls and seven agent calls");

    let (status, content_type, csv) = app.get_text("/api/v1/analytics/export", &admin.token).await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("id,called_at,agent_id"),
        "{}",
        lines[0]
    );
    assert_eq!(lines.len() as i64, expected + 1);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains(",/api/v1/agents/{id},"))
            .count(),
        7
    );

    let (status, content_type, ndjson) = app
        .get_text("/api/v1/analytics/export?format=ndjson", &admin.token)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/x-ndjson");
    let rows: Vec<Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(rows.len() as i64, expected);
    assert!(
        rows.iter()
            .all(|r| r["request_id"].is_string() && r.get("organization_id").is_none())
    );

    let (_, _, theirs) = app
        .get_text("/api/v1/analytics/export?format=ndjson", &other.token)
        .await;
    assert_eq!(theirs, "", "another organization exports nothing of ours");
    let (status, _, _) = app.get_text("/api/v1/analytics/export", &key).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for path in [
        "/api/v1/analytics/export?format=xml",
        "/api/v1/analytics/export?from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z",
        "/api/v1/analytics/export?from=2026-03-01T00:00:00Z&to=2026-01-01T00:00:00Z",
    ] {
        let (status, _, _) = app.get_text(path, &admin.token).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
    }
}

#[tokio::test]
async fn long_windows_merge_whole_days_with_the_hours_at_either_end() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let agent = app.agent(&admin.token, "old-timer").await;
    let agent_id: uuid::Uuid = agent["id"].as_str().expect("id").parse().expect("uuid");
    let now = chrono::Utc::now();
    let sink = app.pipeline.as_ref().expect("pipeline").sink();
    // 3 calls 10 days ago (a whole day inside a 30-day window), 2 calls 40 days ago, 1 server
    // error 29 days and 23 hours ago (inside the 30-day window's first, partial day).
    for _ in 0..3 {
        sink.record(crate::helpers::past_call(
            admin.organization_id,
            agent_id,
            now - chrono::Duration::days(10),
            200,
        ));
    }
    for _ in 0..2 {
        sink.record(crate::helpers::past_call(
            admin.organization_id,
            agent_id,
            now - chrono::Duration::days(40),
            200,
        ));
    }
    let edge = now - chrono::Duration::days(30) + chrono::Duration::hours(1);
    sink.record(crate::helpers::past_call(
        admin.organization_id,
        agent_id,
        edge,
        500,
    ));
    app.drain().await;

    // The admin's own call creating the agent is the one call of today.
    for (days, calls, uptime) in [(1, 1, 100.0), (7, 1, 100.0), (30, 5, 80.0), (60, 7, 85.71)] {
        let usage = app
            .get_as(
                &format!("/api/v1/analytics/usage?days={days}"),
                &admin.token,
            )
            .await;
        assert_eq!(usage.status, StatusCode::OK, "{}", usage.body);
        assert_eq!(
            usage.body["api_calls"], calls,
            "{days} days: {}",
            usage.body
        );
        assert_eq!(usage.body["uptime"], uptime, "{days} days");
        let active = if days >= 30 { 1 } else { 0 };
        assert_eq!(usage.body["active_agents"], active, "{days} days");
    }

    let activity = app
        .get_as("/api/v1/analytics/agents/activity?days=60", &admin.token)
        .await;
    assert_eq!(activity.status, StatusCode::OK, "{}", activity.body);
    let entry = &activity.body["activities"][0];
    assert_eq!(entry["api_calls"], 6);
    assert_eq!(entry["errors"], 1);
    let p95 = entry["p95_response_time_ms"].as_f64().expect("p95");
    assert!((p95 - 10.0).abs() <= 0.5, "p95 {p95}");
    assert_eq!(activity.body["summary"]["failure_count"], 1);

    let month = app
        .get_as("/api/v1/analytics/endpoints?period=month", &admin.token)
        .await;
    assert_eq!(month.status, StatusCode::OK, "{}", month.body);
    let agent_route = month.body["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .find(|e| e["endpoint"] == "/api/v1/agents/{id}")
        .expect("the agents' route")
        .clone();
    assert_eq!(agent_route["calls"], 4);
    assert_eq!(agent_route["errors"], 1);

    let from = (now - chrono::Duration::days(45)).format("%Y-%m-%dT00:00:00Z");
    let series = app
        .get_as(
            &format!("/api/v1/analytics/timeseries?metric=api_calls&interval=day&from={from}&agent_id={agent_id}"),
            &admin.token,
        )
        .await;
    assert_eq!(series.status, StatusCode::OK, "{}", series.body);
    assert_eq!(sum(&series.body["points"], "value"), 6.0);
}

#[tokio::test]
async fn the_csv_export_neutralises_spreadsheet_formulas() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let request = axum::http::Request::get("/api/v1/agents")
        .header("authorization", format!("Bearer {}", admin.token))
        .header("user-agent", "=HYPERLINK(\"http://evil.test\",\"x\")")
        .header("x-request-id", "+cmd=1")
        .body(axum::body::Body::empty())
        .expect("request");
    assert_eq!(app.request(request).await.status, StatusCode::OK);
    app.drain().await;
    let (status, _, csv) = app.get_text("/api/v1/analytics/export", &admin.token).await;
    assert_eq!(status, StatusCode::OK);
    let row = csv
        .lines()
        .find(|l| l.contains("HYPERLINK"))
        .unwrap_or_else(|| panic!("the call is exported: {csv}"));
    assert!(
        row.contains(r#""'=HYPERLINK(""http://evil.test"",""x"")""#),
        "{row}"
    );
    assert!(row.ends_with(",'+cmd=1"), "{row}");
    let (_, _, ndjson) = app
        .get_text("/api/v1/analytics/export?format=ndjson", &admin.token)
        .await;
    assert!(
        ndjson.contains(r#""request_id":"+cmd=1""#),
        "JSON keeps values as they are: {ndjson}"
    );
}
