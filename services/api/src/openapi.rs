//! The OpenAPI document as served at `/api/v1/openapi.json`: what utoipa generates from the
//! handlers' annotations, completed here with what every operation shares, so that no
//! operation can forget it. Clients are generated from this document, so it must say every
//! status an operation can answer, every rule a field must follow and how each operation
//! authenticates:
//!
//! - the three security schemes (a user's token, an agent key in `X-API-Key`, an agent key as a
//!   bearer token); each operation's annotation lists the ones it accepts;
//! - the error responses that follow from an operation's shape: 400, 401, 403, 404, 413, 415,
//!   422, 429, 500 and 503, each with the error envelope, its `code` values and its headers;
//! - the text rule PostgreSQL imposes: no string in a request may hold U+0000;
//! - `Me` as a flat discriminated union that common client generators parse.
//!
//! utoipa has no hook that sees the merged document of every router, so this works on the
//! finished document as JSON.

use serde_json::{Map, Value, json};

/// A string without U+0000, which PostgreSQL cannot store (the extractors refuse it).
pub(crate) const NO_NUL: &str = "^[^\\x00]*$";

/// The characters Rust's `char::is_whitespace` (what `str::trim` removes) counts as white
/// space, spelled out: regex engines disagree on `\s`.
macro_rules! white_space {
    () => {
        "\\t\\n\\x0B\\x0C\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000"
    };
}

/// Text that is not blank (the server trims it and refuses it empty) and holds no U+0000.
pub(crate) const NOT_BLANK: &str = concat!("^[^\\x00]*[^\\x00", white_space!(), "][^\\x00]*$");

/// The server's email rule (`routes::validation::valid_email`): one `@` with text on both
/// sides, no white space inside, white space around it trimmed.
pub(crate) const EMAIL: &str = concat!(
    "^[",
    white_space!(),
    "]*[^\\x00@",
    white_space!(),
    "]+@[^\\x00@",
    white_space!(),
    "]+[",
    white_space!(),
    "]*$"
);

/// Every `code` the error envelope can carry (`error.rs` checks each `ApiError` against it).
pub(crate) const ERROR_CODES: &[&str] = &[
    "malformed_json",
    "unreadable_body",
    "invalid_query",
    "invalid_path",
    "invalid_parameter",
    "ambiguous_credentials",
    "unauthorized",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "conflict",
    "agent_revoked",
    "agent_suspended",
    "alert_resolved",
    "payload_too_large",
    "unsupported_media_type",
    "validation_failed",
    "rate_limited",
    "internal_error",
    "service_unavailable",
];

/// Operations that never touch the database, so never answer 503.
const WITHOUT_DATABASE: &[&str] = &["/health"];

/// The shared error responses: name in `components.responses`, status, description, and
/// whether it carries `Retry-After` or `WWW-Authenticate`.
const RESPONSES: &[(&str, &str, &str, Option<&str>)] = &[
    (
        "BadRequest",
        "400",
        "Malformed: `malformed_json`, `unreadable_body` (a body that is not JSON), \
         `invalid_query` / `invalid_path` (a parameter or id of the wrong type, or holding \
         U+0000), `invalid_parameter` (out of its range, or a rule between parameters), \
         `ambiguous_credentials` (both `Authorization` and `X-API-Key`).",
        None,
    ),
    (
        "Unauthorized",
        "401",
        "`unauthorized`: no credentials, or bad ones (an expired or ended session, a revoked \
         or expired key, a deactivated user).",
        Some("WWW-Authenticate"),
    ),
    (
        "Forbidden",
        "403",
        "`forbidden`: the caller's role, or an agent key, may not do this (see the roles in \
         docs/api.md). `agent_suspended`: the key's agent is suspended; its keys are refused \
         until an admin reinstates it.",
        None,
    ),
    (
        "NotFound",
        "404",
        "`not_found`: no such object in the caller's organization.",
        None,
    ),
    (
        "PayloadTooLarge",
        "413",
        "`payload_too_large`: the body is over 1 MiB.",
        None,
    ),
    (
        "UnsupportedMediaType",
        "415",
        "`unsupported_media_type`: a body without `Content-Type: application/json`.",
        None,
    ),
    (
        "ValidationFailed",
        "422",
        "`validation_failed`: well-formed but invalid; `fields` names each problem (U+0000 \
         anywhere in the body is refused as field `body`).",
        None,
    ),
    (
        "TooManyRequests",
        "429",
        "`rate_limited`: a rate limit (per agent key, or login attempts); wait `Retry-After` \
         seconds.",
        Some("Retry-After"),
    ),
    (
        "InternalError",
        "500",
        "`internal_error`: a fault on the service's side; details are in its log.",
        None,
    ),
    (
        "Unavailable",
        "503",
        "`service_unavailable`: the database is unreachable or out of connections; retry after \
         `Retry-After` seconds.",
        Some("Retry-After"),
    ),
];

fn one_of(values: &[&str]) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(values.iter().copied()))
        .build()
}

/// `period` of the usage and endpoint analytics.
pub(crate) fn usage_period() -> utoipa::openapi::Object {
    one_of(&["day", "week", "month", "year"])
}

/// `period` of the trust-score trends.
pub(crate) fn trend_period() -> utoipa::openapi::Object {
    one_of(&["weeks", "days"])
}

/// `format` of the export.
pub(crate) fn export_format() -> utoipa::openapi::Object {
    one_of(&["csv", "ndjson"])
}

/// The served document: utoipa's, completed.
pub(crate) fn complete(generated: &utoipa::openapi::OpenApi) -> Value {
    // Start-up: a document of string-keyed maps always serializes; the service must not serve
    // a wrong one if it ever did not.
    let mut doc =
        serde_json::to_value(generated).expect("the generated OpenAPI document serializes");
    add_components(&mut doc);
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for operation in item.values_mut().filter_map(Value::as_object_mut) {
                add_responses(path, operation);
                for parameter in operation
                    .get_mut("parameters")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    if let Some(schema) = parameter.get_mut("schema") {
                        forbid_nul(schema);
                    }
                }
            }
        }
    }
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for schema in schemas.values_mut() {
            forbid_nul(schema);
        }
        flatten_me(schemas);
    }
    doc
}

fn add_components(doc: &mut Value) {
    let components = doc
        .as_object_mut()
        .map(|d| d.entry("components").or_insert_with(|| json!({})));
    let Some(components) = components.and_then(Value::as_object_mut) else {
        return;
    };
    components.insert(
        "securitySchemes".into(),
        json!({
            "user_token": {
                "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "A user's access token from `POST /api/v1/auth/login`, as \
                                `Authorization: Bearer <token>`."
            },
            "agent_key": {
                "type": "apiKey", "in": "header", "name": "X-API-Key",
                "description": "An agent's API key (`aim_` and 64 hex digits)."
            },
            "agent_key_bearer": {
                "type": "http", "scheme": "bearer", "bearerFormat": "aim_ key",
                "description": "An agent's API key as `Authorization: Bearer aim_…`."
            }
        }),
    );
    let mut responses = Map::new();
    for (name, _, description, header) in RESPONSES {
        let mut response = json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
        });
        if let Some(header) = header {
            response["headers"] = header_schema(header);
        }
        responses.insert((*name).to_owned(), response);
    }
    components.insert("responses".into(), Value::Object(responses));
    if let Some(code) = components
        .get_mut("schemas")
        .and_then(|s| s.pointer_mut("/ErrorBody/properties/code"))
    {
        code["enum"] = json!(ERROR_CODES);
    }
}

fn add_responses(path: &str, operation: &mut Map<String, Value>) {
    let schemes: Vec<String> = operation
        .get("security")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|requirement| requirement.keys().cloned())
        .collect();
    let secured = !schemes.is_empty();
    let parameters_in = |place: &str| {
        operation
            .get("parameters")
            .and_then(Value::as_array)
            .is_some_and(|ps| ps.iter().any(|p| p["in"] == place))
    };
    let (in_path, in_query) = (parameters_in("path"), parameters_in("query"));
    let body = operation.contains_key("requestBody");

    let mut statuses = vec!["500"];
    if !WITHOUT_DATABASE.contains(&path) {
        statuses.push("503");
    }
    if secured {
        // 429: an agent key's rate limit applies before any role check. 403: a role check,
        // or a suspended agent's key wherever keys are accepted.
        statuses.extend(["400", "401", "403", "429"]);
    }
    if in_path {
        statuses.extend(["400", "404"]);
    }
    if in_query {
        statuses.push("400");
    }
    if body {
        statuses.extend(["400", "413", "415", "422"]);
    }
    let responses = operation
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    let Some(responses) = responses else {
        return;
    };
    for status in statuses {
        let Some((name, ..)) = RESPONSES.iter().find(|(_, s, ..)| *s == status) else {
            continue;
        };
        let shared = json!({ "$ref": format!("#/components/responses/{name}") });
        match responses.get_mut(status) {
            // An operation's own description says more; the shared headers still apply.
            Some(own) => {
                if let Some(header) = RESPONSES
                    .iter()
                    .find(|(_, s, ..)| *s == status)
                    .and_then(|(.., header)| *header)
                {
                    own["headers"] = header_schema(header);
                }
            }
            None => {
                responses.insert(status.to_owned(), shared);
            }
        }
    }
}

/// The `headers` of a response carrying `header`.
fn header_schema(header: &str) -> Value {
    let schema = if header == "Retry-After" {
        json!({"type": "integer", "minimum": 1})
    } else {
        json!({"type": "string", "enum": ["Bearer"]})
    };
    json!({ header: {"required": true, "schema": schema} })
}

/// Adds [`NO_NUL`] to every string schema that has no pattern, format or enum of its own, and
/// to the keys of free-form objects.
fn forbid_nul(schema: &mut Value) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    let types: Vec<&str> = match object.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let is_string = types.contains(&"string");
    let is_object = types.contains(&"object");
    // Annotations name the shared patterns (`pattern = "{not_blank}"`), which must be string
    // literals there; the patterns themselves live here, beside the rule they state.
    match object.get("pattern").and_then(Value::as_str) {
        Some("{not_blank}") => {
            object.insert("pattern".into(), json!(NOT_BLANK));
        }
        Some("{email}") => {
            object.insert("pattern".into(), json!(EMAIL));
        }
        _ => {}
    }
    let free_text = !matches!(
        object.get("format").and_then(Value::as_str),
        Some("uuid" | "date-time" | "date")
    );
    if is_string && free_text && !object.contains_key("pattern") && !object.contains_key("enum") {
        object.insert("pattern".into(), json!(NO_NUL));
    }
    // Free-form objects (`metadata`, `context`): their keys. The same rule holds for every
    // string at any depth inside them, which only a recursive schema could say, and client
    // generators (openapi-python-client) fail on one; the fields' descriptions say it instead.
    if is_object && !object.contains_key("properties") && !object.contains_key("$ref") {
        object.insert("propertyNames".into(), json!({ "pattern": NO_NUL }));
    }
    for key in ["properties", "patternProperties"] {
        if let Some(properties) = object.get_mut(key).and_then(Value::as_object_mut) {
            properties.values_mut().for_each(forbid_nul);
        }
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(inner) = object.get_mut(key) {
            forbid_nul(inner);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(inner) = object.get_mut(key).and_then(Value::as_array_mut) {
            inner.iter_mut().for_each(forbid_nul);
        }
    }
}

/// `Me` is a user or an agent, told apart by `type`. utoipa writes it as `oneOf` of `allOf`s,
/// which client generators (openapi-python-client, openapi-typescript) fail on; this writes it
/// as `oneOf` two flat objects with a `discriminator`.
fn flatten_me(schemas: &mut Map<String, Value>) {
    for (name, base, tag) in [("UserMe", "User", "user"), ("AgentMe", "Agent", "agent")] {
        let Some(mut flat) = schemas.get(base).cloned() else {
            continue;
        };
        if let Some(object) = flat.as_object_mut() {
            object
                .entry("properties")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .map(|p| p.insert("type".into(), json!({"type": "string", "enum": [tag]})));
            let required = object.entry("required").or_insert_with(|| json!([]));
            if let Some(required) = required.as_array_mut() {
                required.push(json!("type"));
            }
        }
        schemas.insert(name.into(), flat);
    }
    schemas.insert(
        "Me".into(),
        json!({
            "oneOf": [
                {"$ref": "#/components/schemas/UserMe"},
                {"$ref": "#/components/schemas/AgentMe"}
            ],
            "discriminator": {
                "propertyName": "type",
                "mapping": {
                    "user": "#/components/schemas/UserMe",
                    "agent": "#/components/schemas/AgentMe"
                }
            }
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_form_strings_and_object_keys_refuse_nul() {
        let mut schema = json!({
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "id": {"type": "string", "format": "uuid"},
                "metadata": {"type": ["object", "null"]},
                "tags": {"type": "array", "items": {"type": "string"}}
            }
        });
        forbid_nul(&mut schema);
        assert_eq!(schema["properties"]["name"]["pattern"], NO_NUL);
        assert!(schema["properties"]["id"].get("pattern").is_none());
        assert_eq!(
            schema["properties"]["metadata"]["propertyNames"]["pattern"],
            NO_NUL
        );
        assert_eq!(schema["properties"]["tags"]["items"]["pattern"], NO_NUL);
    }

    #[test]
    fn every_error_code_is_listed() {
        let codes: std::collections::HashSet<_> = ERROR_CODES.iter().collect();
        assert_eq!(codes.len(), ERROR_CODES.len());
    }
}
