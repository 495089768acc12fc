use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp};

#[tokio::test]
async fn admins_create_list_and_deactivate_users() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let viewer = app.user(&admin, "viewer").await;

    let list = app.get_as("/api/v1/users", &admin.token).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["total"], 2);
    assert_eq!(list.body["users"].as_array().map(Vec::len), Some(2));

    let one = app
        .get_as(&format!("/api/v1/users/{}", viewer.id), &admin.token)
        .await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.body["role"], "viewer");

    let off = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{}", viewer.id),
            Some(&admin.token),
            Some(json!({ "is_active": false })),
        )
        .await;
    assert_eq!(off.status, StatusCode::OK);
    assert_eq!(off.body["is_active"], false);
    let on = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{}", viewer.id),
            Some(&admin.token),
            Some(json!({ "is_active": true })),
        )
        .await;
    assert_eq!(on.body["is_active"], true);
    assert_eq!(
        app.login(&viewer.email, PASSWORD).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn only_admins_manage_users() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    for role in ["manager", "member", "viewer"] {
        let user = app.user(&admin, role).await;
        let list = app.get_as("/api/v1/users", &user.token).await;
        assert_eq!(list.status, StatusCode::FORBIDDEN, "{role}");
        assert_eq!(list.error_code(), "forbidden");
        let create = app
            .post_as(
                "/api/v1/users",
                &user.token,
                json!({ "email": "x@y.test", "name": "x", "role": "admin", "password": PASSWORD }),
            )
            .await;
        assert_eq!(create.status, StatusCode::FORBIDDEN, "{role}");
    }
}

#[tokio::test]
async fn user_input_is_validated() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let bad = app
        .post_as(
            "/api/v1/users",
            &admin.token,
            json!({ "email": "not-an-email", "name": "", "role": "viewer", "password": "short" }),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields = &bad.body["error"]["fields"];
    for field in ["email", "name", "password"] {
        assert!(fields[field].is_string(), "{field}: {}", bad.body);
    }
    let bad_role = app
        .post_as(
            "/api/v1/users",
            &admin.token,
            json!({ "email": "a@b.test", "name": "a", "role": "owner", "password": PASSWORD }),
        )
        .await;
    assert_eq!(bad_role.status, StatusCode::UNPROCESSABLE_ENTITY);

    let taken = app
        .post_as(
            "/api/v1/users",
            &admin.token,
            json!({ "email": admin.email.to_uppercase(), "name": "dup", "role": "viewer", "password": PASSWORD }),
        )
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    assert_eq!(taken.error_code(), "conflict");

    let myself = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{}", admin.id),
            Some(&admin.token),
            Some(json!({ "is_active": false })),
        )
        .await;
    assert_eq!(myself.status, StatusCode::UNPROCESSABLE_ENTITY);

    let bad_id = app.get_as("/api/v1/users/not-a-uuid", &admin.token).await;
    assert_eq!(bad_id.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_id.error_code(), "invalid_path");
}

/// Emails are global (login is by email alone): an address taken in another organization
/// answers exactly as one taken in the admin's own, so the answer never says where it is.
#[tokio::test]
async fn a_taken_email_answers_the_same_whichever_organization_holds_it() {
    let app = TestApp::spawn().await;
    let admin = app.organization("acme").await;
    let other = app.organization("globex").await;
    let create = |email: String| json!({ "email": email, "name": "dup", "role": "viewer", "password": PASSWORD });
    let ours = app
        .post_as("/api/v1/users", &admin.token, create(admin.email.clone()))
        .await;
    let theirs = app
        .post_as("/api/v1/users", &admin.token, create(other.email.clone()))
        .await;
    assert_eq!(ours.status, StatusCode::CONFLICT);
    assert_eq!(
        (theirs.status, &theirs.body),
        (ours.status, &ours.body),
        "the same answer, byte for byte"
    );
}
