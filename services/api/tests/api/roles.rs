//! The role table of `docs/api.md` against the router: every operation that takes credentials
//! is in the table, and every role (four user roles and an agent key) is allowed exactly where
//! the table says (anything but 401/403) and refused with a 403 everywhere else.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{PASSWORD, TestApp, TestUser};

const ROLES: [&str; 5] = ["viewer", "member", "manager", "admin", "agent key"];

/// One row: the operation, an optional field its rule is about, and who may call it.
pub(crate) struct Row {
    pub method: Method,
    pub template: String,
    pub with: Option<String>,
    pub allowed: [bool; 5],
}

pub(crate) fn table() -> Vec<Row> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md"))
        .expect("docs/api.md");
    let section = doc
        .split("## Roles")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Roles section");
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            assert_eq!(cells.len(), 6, "a row of six cells: {line}");
            let operation = cells[0];
            let mut quoted = operation.split('`').skip(1).step_by(2);
            let (method, template) = quoted
                .next()
                .and_then(|op| op.split_once(' '))
                .expect("`METHOD PATH`");
            let with = operation
                .contains(" with ")
                .then(|| quoted.next().expect("`field`").to_owned());
            let mut allowed = [false; 5];
            for (slot, cell) in allowed.iter_mut().zip(&cells[1..]) {
                *slot = cell.starts_with('✓');
            }
            Row {
                method: method.parse().expect("a method"),
                template: template.to_owned(),
                with,
                allowed,
            }
        })
        .collect()
}

pub(crate) struct World {
    pub admin: TestUser,
    users: Vec<TestUser>,
    agent: String,
    key: String,
    spare_user: Uuid,
}

impl World {
    pub async fn new(app: &TestApp) -> Self {
        let admin = app.organization("acme").await;
        let mut users = Vec::new();
        for role in ["viewer", "member", "manager"] {
            users.push(app.user(&admin, role).await);
        }
        let agent = app.agent(&admin.token, "itself").await["id"]
            .as_str()
            .expect("id")
            .to_owned();
        let key = app.key(&admin.token, &agent).await;
        let spare_user = app.user(&admin, "viewer").await.id;
        Self {
            admin,
            users,
            agent,
            key,
            spare_user,
        }
    }

    /// A fresh agent, for operations that change or delete the one they act on.
    async fn fresh_agent(&self, app: &TestApp) -> String {
        app.agent(&self.admin.token, "target").await["id"]
            .as_str()
            .expect("id")
            .to_owned()
    }

    /// A fresh webhook of the organization, registered by its admin.
    async fn webhook(&self, app: &TestApp) -> String {
        let created = app
            .post_as(
                "/api/v1/webhooks",
                &self.admin.token,
                json!({ "url": "https://hooks.example.com/aim", "events": ["alert.opened"] }),
            )
            .await;
        created.body["id"].as_str().expect("webhook id").to_owned()
    }

    /// A fresh open alert of the organization, on a fresh agent.
    async fn alert(&self, app: &TestApp) -> String {
        let agent = self.fresh_agent(app).await;
        let mut tx = app.pool.begin().await.expect("tx");
        let opened = aim_store::alerts::open(
            &mut tx,
            self.admin.organization_id,
            &[aim_store::alerts::NewAlert {
                agent_id: agent.parse().expect("uuid"),
                rule: aim_trust::AlertRule::ScoreBelow,
                message: "roles".into(),
                details: json!({}),
            }],
            chrono::Utc::now(),
        )
        .await
        .expect("alert");
        tx.commit().await.expect("commit");
        opened[0].id.to_string()
    }

    /// The URI and body of a request that is valid in every way but the caller's right.
    pub async fn request(&self, app: &TestApp, row: &Row, role: usize) -> (String, Option<Value>) {
        let mut agent = self.agent.clone();
        let (method, template) = (row.method.as_str(), row.template.as_str());
        let destructive = matches!(method, "DELETE" | "PATCH" | "PUT");
        if destructive && template.starts_with("/api/v1/agents/{id}") {
            agent = self.fresh_agent(app).await;
        }
        let mut uri = if template.starts_with("/api/v1/users/{id}") {
            format!("/api/v1/users/{}", self.spare_user)
        } else if template.starts_with("/api/v1/webhooks/{id}") {
            template.replace("{id}", &self.webhook(app).await)
        } else if template.starts_with("/api/v1/alerts/{id}") {
            template.replace("{id}", &self.alert(app).await)
        } else {
            template.replace("{id}", &agent)
        };
        if uri.contains("{delivery_id}") {
            let webhook = uri.split('/').nth(4).expect("webhook id").to_owned();
            let ping = app
                .post_as(
                    &format!("/api/v1/webhooks/{webhook}/ping"),
                    &self.admin.token,
                    json!({}),
                )
                .await;
            uri = uri.replace(
                "{delivery_id}",
                ping.body["id"].as_str().expect("delivery id"),
            );
        }
        if template == "/api/v1/analytics/timeseries" {
            uri.push_str("?metric=api_calls");
        }
        if template.contains("{key_id}") {
            let created = app
                .post_as(
                    &format!("/api/v1/agents/{agent}/api-keys"),
                    &self.admin.token,
                    json!({}),
                )
                .await;
            let key_id = created.body["id"].as_str().expect("key id");
            uri = uri.replace("{key_id}", key_id);
        }
        let body = match (method, template, row.with.as_deref()) {
            ("POST", "/api/v1/auth/logout", _) => {
                // The refresh token of the session the caller's token belongs to is not needed:
                // any of the caller's own will do, and a fresh one leaves the others alive.
                let email = match role {
                    0..=2 => Some(self.users[role].email.clone()),
                    3 => Some(self.admin.email.clone()),
                    _ => None,
                };
                let refresh = match email {
                    Some(email) => app.login(&email, PASSWORD).await.body["refresh_token"]
                        .as_str()
                        .expect("refresh")
                        .to_owned(),
                    None => "not-a-token".to_owned(),
                };
                Some(json!({ "refresh_token": refresh }))
            }
            ("POST", "/api/v1/users", _) => Some(json!({
                "email": format!("{}@roles.test", Uuid::now_v7().simple()),
                "name": "new", "role": "viewer", "password": PASSWORD
            })),
            ("PATCH", "/api/v1/users/{id}", _) => Some(json!({ "is_active": true })),
            ("POST", "/api/v1/agents", Some("trust_score")) => {
                Some(json!({ "name": "scored", "trust_score": 0.7 }))
            }
            ("POST", "/api/v1/agents", _) => Some(json!({ "name": "new" })),
            ("PATCH", "/api/v1/agents/{id}", Some("status")) => {
                Some(json!({ "status": "verified" }))
            }
            ("PATCH", "/api/v1/agents/{id}", _) => Some(json!({ "name": "renamed" })),
            ("PUT", "/api/v1/agents/{id}/trust-score", _) => {
                Some(json!({ "trust_score": 0.8, "reason": "roles" }))
            }
            ("POST", "/api/v1/agents/{id}/api-keys", _) => Some(json!({})),
            ("POST", "/api/v1/agents/{id}/verify-action", _) => Some(json!({ "action": "read" })),
            ("PUT" | "POST", "/api/v1/trust-policy" | "/api/v1/trust-policy/dry-run", _) => {
                Some(json!({}))
            }
            ("POST", "/api/v1/webhooks", _) => Some(json!({
                "url": "https://hooks.example.com/aim", "events": ["alert.opened"]
            })),
            ("PATCH", "/api/v1/webhooks/{id}", _) => Some(json!({ "description": "roles" })),
            ("POST", "/api/v1/webhooks/{id}/rotate-secret", _) => Some(json!({})),
            (_, _, Some(field)) => panic!("no request for {method} {template} with {field}"),
            _ => None,
        };
        (uri, body)
    }

    pub fn credential(&self, role: usize) -> &str {
        match role {
            0..=2 => &self.users[role].token,
            3 => &self.admin.token,
            _ => &self.key,
        }
    }
}

#[tokio::test]
async fn the_role_table_in_api_md_is_what_the_router_does() {
    let app = TestApp::spawn().await;
    let world = World::new(&app).await;
    let rows = table();
    assert!(rows.len() >= 30, "the table has a row per operation");

    // Every operation that takes credentials has a row.
    let doc = aim_api::openapi();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("operations") {
            let secured = operation["security"]
                .as_array()
                .is_some_and(|s| !s.is_empty());
            let listed = rows
                .iter()
                .any(|r| r.template == *path && r.method.as_str().eq_ignore_ascii_case(method));
            assert_eq!(
                secured,
                listed,
                "{} {path}: takes credentials = {secured}, in the role table = {listed}",
                method.to_uppercase()
            );
            // The document's schemes say the same as the table's last column.
            if let Some(row) = rows.iter().find(|r| {
                r.template == *path
                    && r.method.as_str().eq_ignore_ascii_case(method)
                    && r.with.is_none()
            }) {
                let takes_keys = operation["security"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|s| s.get("agent_key").is_some());
                assert_eq!(
                    takes_keys, row.allowed[4],
                    "{method} {path}: agent_key scheme"
                );
            }
        }
    }

    for row in &rows {
        for (role, allowed) in row.allowed.iter().enumerate() {
            let (uri, body) = world.request(&app, row, role).await;
            let response = app
                .call(row.method.clone(), &uri, Some(world.credential(role)), body)
                .await;
            let what = format!(
                "{} {}{} as {}: {} {}",
                row.method,
                row.template,
                row.with
                    .as_deref()
                    .map(|f| format!(" with {f}"))
                    .unwrap_or_default(),
                ROLES[role],
                response.status,
                response.body
            );
            if *allowed {
                assert!(
                    response.status.is_success(),
                    "allowed, so it should succeed: {what}"
                );
            } else {
                assert_eq!(response.status, StatusCode::FORBIDDEN, "{what}");
                assert_eq!(response.error_code(), "forbidden", "{what}");
            }
        }
    }
}
