use axum::http::{Method, StatusCode, header};
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp};

#[tokio::test]
async fn login_returns_the_documented_shape() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let response = app.login(&admin.email, PASSWORD).await;
    assert_eq!(response.status, StatusCode::OK);
    let body = &response.body;
    assert_eq!(body["token"], body["access_token"]);
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_at"].is_string());
    assert!(body["refresh_token"].is_string());
    assert_ne!(body["refresh_token"], body["token"]);
    let user = &body["user"];
    for field in ["id", "email", "name", "role", "organization_id"] {
        assert!(!user[field].is_null(), "user.{field} missing: {body}");
    }
    assert_eq!(user["role"], "admin");
    assert!(user.get("password_hash").is_none());

    let me = app.get_as("/api/v1/auth/me", &admin.token).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["type"], "user");
    assert_eq!(me.body["email"], admin.email.as_str());
}

#[tokio::test]
async fn unknown_email_wrong_password_and_deactivated_user_look_the_same() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let member = app.user(&admin, "member").await;
    let deactivated = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{}", member.id),
            Some(&admin.token),
            Some(json!({ "is_active": false })),
        )
        .await;
    assert_eq!(deactivated.status, StatusCode::OK, "{}", deactivated.body);

    let unknown = app.login("nobody@example.test", PASSWORD).await;
    let wrong = app.login(&admin.email, "not the right password").await;
    let inactive = app.login(&member.email, PASSWORD).await;
    for response in [&unknown, &wrong, &inactive] {
        assert_eq!(response.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.body, unknown.body,
            "the three failures must not differ"
        );
    }
    // A deactivated user's existing token stops working at once.
    let me = app.get_as("/api/v1/auth/me", &member.token).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn login_validates_its_body() {
    let app = TestApp::spawn().await;
    let missing = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({ "email": "a@b" })),
        )
        .await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    let empty = app.login("", "").await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        empty.body["error"]["fields"]["email"].is_string(),
        "{}",
        empty.body
    );
    assert!(
        empty.body["error"]["fields"]["password"].is_string(),
        "{}",
        empty.body
    );
}

#[tokio::test]
async fn login_attempts_are_rate_limited_per_email() {
    let app = TestApp::spawn_with(&[("AIM_LOGIN_RATE_LIMIT_PER_EMAIL_PER_MIN", "3")]).await;
    let admin = app.organization("acme").await; // one attempt used
    for _ in 0..2 {
        assert_eq!(
            app.login(&admin.email, "wrong password!").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let limited = app.login(&admin.email, PASSWORD).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.error_code(), "rate_limited");
    let retry: u64 = limited.headers[header::RETRY_AFTER]
        .to_str()
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("Retry-After seconds");
    assert!(retry >= 1);
}

#[tokio::test]
async fn refresh_tokens_are_not_access_tokens_and_rotate() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;

    let as_access = app.get_as("/api/v1/auth/me", &admin.refresh_token).await;
    assert_eq!(as_access.status, StatusCode::UNAUTHORIZED);
    let access_as_refresh = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({ "refresh_token": admin.token })),
        )
        .await;
    assert_eq!(access_as_refresh.status, StatusCode::UNAUTHORIZED);

    let refreshed = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({ "refresh_token": admin.refresh_token })),
        )
        .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    let new_access = refreshed.body["token"].as_str().expect("token");
    assert_eq!(
        app.get_as("/api/v1/auth/me", new_access).await.status,
        StatusCode::OK
    );

    let reused = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({ "refresh_token": admin.refresh_token })),
        )
        .await;
    assert_eq!(
        reused.status,
        StatusCode::UNAUTHORIZED,
        "a refresh token works once"
    );
}

#[tokio::test]
async fn logout_revokes_the_refresh_token() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let logout = app
        .post_as(
            "/api/v1/auth/logout",
            &admin.token,
            json!({ "refresh_token": admin.refresh_token }),
        )
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    let refresh = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({ "refresh_token": admin.refresh_token })),
        )
        .await;
    assert_eq!(refresh.status, StatusCode::UNAUTHORIZED);
    let audit = app
        .get_as(
            "/api/v1/audit-events?action=auth.logout",
            &app_admin_token(&app, &admin).await,
        )
        .await;
    assert_eq!(audit.body["total"], 1, "{}", audit.body);
}

#[tokio::test]
async fn bad_credentials_are_401_with_a_challenge() {
    let app = TestApp::spawn().await;
    for credential in [
        None,
        Some("garbage"),
        Some("aim_0000000000000000000000000000000000000000000000000000000000000000"),
    ] {
        let response = app
            .call(Method::GET, "/api/v1/agents", credential, None)
            .await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{credential:?}");
        assert_eq!(response.error_code(), "unauthorized");
        assert_eq!(response.headers[header::WWW_AUTHENTICATE], "Bearer");
    }
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({ "sub": uuid::Uuid::nil(), "org": uuid::Uuid::nil(), "role": "admin", "typ": "access",
                 "jti": uuid::Uuid::nil(), "iat": 0, "exp": 4_000_000_000_i64, "iss": "aim" }),
        &jsonwebtoken::EncodingKey::from_secret(b"some-other-secret-some-other-secret"),
    )
    .expect("encode");
    let response = app.get_as("/api/v1/agents", &forged).await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
}

async fn refresh(app: &TestApp, refresh_token: &str) -> crate::helpers::TestResponse {
    app.call(
        Method::POST,
        "/api/v1/auth/refresh",
        None,
        Some(json!({ "refresh_token": refresh_token })),
    )
    .await
}

fn token(response: &crate::helpers::TestResponse, field: &str) -> String {
    response.body[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {}", response.body))
        .to_owned()
}

#[tokio::test]
async fn logout_ends_the_sessions_access_tokens_at_once_and_no_other_session() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let other_login = app.login(&admin.email, PASSWORD).await;
    let other_access = token(&other_login, "token");
    // An access token issued by a refresh belongs to the same session.
    let refreshed = refresh(&app, &admin.refresh_token).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    let refreshed_access = token(&refreshed, "token");

    let logout = app
        .post_as(
            "/api/v1/auth/logout",
            &admin.token,
            json!({ "refresh_token": token(&refreshed, "refresh_token") }),
        )
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT, "{}", logout.body);
    for access in [&admin.token, &refreshed_access] {
        let me = app.get_as("/api/v1/auth/me", access).await;
        assert_eq!(
            me.status,
            StatusCode::UNAUTHORIZED,
            "logged out: {}",
            me.body
        );
    }
    assert_eq!(
        app.get_as("/api/v1/auth/me", &other_access).await.status,
        StatusCode::OK,
        "another login of the same user is another session"
    );
}

#[tokio::test]
async fn a_replayed_refresh_token_ends_its_whole_family() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let first = refresh(&app, &admin.refresh_token).await;
    assert_eq!(first.status, StatusCode::OK);
    let (access, next) = (token(&first, "token"), token(&first, "refresh_token"));
    assert_eq!(
        app.get_as("/api/v1/auth/me", &access).await.status,
        StatusCode::OK
    );

    // The used token again: refused, and the family it belongs to is ended.
    assert_eq!(
        refresh(&app, &admin.refresh_token).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        refresh(&app, &next).await.status,
        StatusCode::UNAUTHORIZED,
        "the family's live refresh token is revoked too"
    );
    assert_eq!(
        app.get_as("/api/v1/auth/me", &access).await.status,
        StatusCode::UNAUTHORIZED,
        "and so are its access tokens"
    );
    let audit = app
        .get_as(
            "/api/v1/audit-events?action=auth.refresh_reused",
            &app_admin_token(&app, &admin).await,
        )
        .await;
    assert_eq!(audit.body["total"], 1, "{}", audit.body);
}

/// A fresh login of the admin, since the one the test started with has been ended.
async fn app_admin_token(app: &TestApp, admin: &crate::helpers::TestUser) -> String {
    token(&app.login(&admin.email, PASSWORD).await, "token")
}

#[tokio::test]
async fn two_refreshes_racing_with_one_token_rotate_once_and_end_the_family() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let (a, b) = tokio::join!(
        refresh(&app, &admin.refresh_token),
        refresh(&app, &admin.refresh_token)
    );
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::UNAUTHORIZED]);
    let winner = if a.status == StatusCode::OK { &a } else { &b };
    assert_eq!(
        refresh(&app, &token(winner, "refresh_token")).await.status,
        StatusCode::UNAUTHORIZED,
        "the loser's replay ended the family, the winner's new token with it"
    );
    assert_eq!(
        app.get_as("/api/v1/auth/me", &token(winner, "token"))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn tokens_from_before_a_deactivation_stay_dead_after_reactivation() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let member = app.user(&admin, "member").await;
    let uri = format!("/api/v1/users/{}", member.id);
    let set_active =
        |active: bool| app.patch_as(&uri, &admin.token, json!({ "is_active": active }));
    assert_eq!(set_active(false).await.status, StatusCode::OK);
    assert_eq!(set_active(true).await.status, StatusCode::OK);
    assert_eq!(
        app.get_as("/api/v1/auth/me", &member.token).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        refresh(&app, &member.refresh_token).await.status,
        StatusCode::UNAUTHORIZED
    );
    let again = app.login(&member.email, PASSWORD).await;
    assert_eq!(
        app.get_as("/api/v1/auth/me", &token(&again, "token"))
            .await
            .status,
        StatusCode::OK,
        "a new login works"
    );
}
