//! The OpenAPI document as the oracle: every response the API tests receive through
//! [`crate::helpers::TestApp::request`] is checked against the operation the document declares
//! for it: its status must be declared, and its JSON body must match the declared schema. The
//! document is the one the service serves (`aim_api::openapi()`), never a copy of it.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

static DOCUMENT: LazyLock<Value> = LazyLock::new(aim_api::openapi);

/// Compiled response validators by (method, path template, status).
static VALIDATORS: LazyLock<Mutex<HashMap<String, Arc<jsonschema::Validator>>>> =
    LazyLock::new(Mutex::default);

/// The document's path template matching `path`, if any (`/api/v1/agents/{id}` for
/// `/api/v1/agents/0193…`).
fn template_of(path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.split('/').collect();
    DOCUMENT["paths"]
        .as_object()?
        .keys()
        .map(String::as_str)
        .filter(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t == s || (t.starts_with('{') && t.ends_with('}')))
        })
        // A literal segment beats a parameter (`/agents/activity` over `/agents/{id}`).
        .min_by_key(|template| template.matches('{').count())
}

/// Checks one response against the document; panics with what does not match. Responses to
/// requests the document does not describe (unknown routes, the dashboard's files, the
/// document itself) are not checked.
pub fn check(method: &Method, uri: &str, status: StatusCode, body: &Value) {
    let path = uri.split('?').next().unwrap_or(uri);
    let Some(template) = template_of(path) else {
        return;
    };
    let method_key = method.as_str().to_ascii_lowercase();
    let Some(operation) = DOCUMENT["paths"][template].get(&method_key) else {
        // A browser's CORS preflight, answered by the CORS layer outside any operation.
        if method == Method::OPTIONS {
            return;
        }
        // A method the route does not have: the 405 fallback, outside any operation.
        assert_eq!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}: an undocumented method answered {status}"
        );
        return;
    };
    let code = status.as_str();
    let Some(mut response) = operation["responses"].get(code) else {
        panic!(
            "{method} {template} answered {status}, which the document does not declare \
             (declared: {:?}); body: {body}",
            operation["responses"]
                .as_object()
                .map(|r| r.keys().collect::<Vec<_>>())
        );
    };
    if let Some(reference) = response["$ref"].as_str() {
        response = DOCUMENT
            .pointer(reference.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling {reference}"));
    }
    let Some(schema) = response.pointer("/content/application~1json/schema") else {
        return;
    };
    if body.is_string() && status.is_success() && template.ends_with("/export") {
        // The export streams CSV or NDJSON, not a JSON document.
        return;
    }
    let key = format!("{method_key} {template} {code}");
    let validator = {
        let mut cache = VALIDATORS.lock().expect("validators");
        Arc::clone(cache.entry(key).or_insert_with(|| {
            // The whole document as the root, so the schema's `#/components/...` refs resolve;
            // its other members are not schema keywords and are ignored.
            let mut root = DOCUMENT.clone();
            root["allOf"] = json!([schema]);
            root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
            Arc::new(jsonschema::validator_for(&root).unwrap_or_else(|e| {
                panic!("the document's schema for {method} {template} {code} compiles: {e}")
            }))
        }))
    };
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {uri} → {status}: the body does not match the document:\n  {}\nbody: {body}",
        errors.join("\n  ")
    );
}

#[test]
fn a_literal_segment_is_preferred_to_a_parameter() {
    assert_eq!(
        template_of("/api/v1/analytics/agents/activity"),
        Some("/api/v1/analytics/agents/activity")
    );
    assert_eq!(
        template_of("/api/v1/analytics/agents/0193a3c0-0000-7000-8000-000000000000/activity"),
        Some("/api/v1/analytics/agents/{id}/activity")
    );
    assert_eq!(template_of("/nowhere"), None);
}

#[test]
#[should_panic(expected = "does not match the document")]
fn a_body_off_the_schema_fails() {
    check(
        &Method::GET,
        "/api/v1/agents?limit=5",
        StatusCode::OK,
        &json!({ "agents": "not a list", "total": 0, "limit": 5, "offset": 0 }),
    );
}

#[test]
#[should_panic(expected = "does not declare")]
fn an_undeclared_status_fails() {
    check(
        &Method::GET,
        "/api/v1/auth/me",
        StatusCode::CONFLICT,
        &json!({ "error": { "code": "conflict", "message": "x" } }),
    );
}

#[test]
fn a_declared_error_passes() {
    check(
        &Method::GET,
        "/api/v1/agents/0193a3c0-0000-7000-8000-000000000000",
        StatusCode::NOT_FOUND,
        &json!({ "error": { "code": "not_found", "message": "Not found." } }),
    );
}
