//! `/api/v1/webhooks`: an organization's webhook endpoints (admin only): register one (its
//! secret shown once), change, disable and re-enable it, rotate its secret with an overlap,
//! send it a test ping, list its deliveries and send one again.

use aim_store::model::Role;
use aim_store::webhooks::{Delivery, DeliveryStatus, NewWebhook, Webhook, WebhookPatch};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{ClientMeta, Principal};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::routes::paging::{Pagination, Paging};
use crate::routes::validation::FieldErrors;
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(rotate_secret))
        .routes(routes!(ping))
        .routes(routes!(list_deliveries))
        .routes(routes!(redeliver))
}

/// The events an endpoint may subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
enum WebhookEvent {
    #[serde(rename = "alert.opened")]
    AlertOpened,
    #[serde(rename = "agent.status_changed")]
    StatusChanged,
}

impl WebhookEvent {
    fn as_str(self) -> &'static str {
        match self {
            Self::AlertOpened => aim_store::webhooks::EVENT_ALERT_OPENED,
            Self::StatusChanged => aim_store::webhooks::EVENT_STATUS_CHANGED,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateWebhook {
    /// `http` or `https`, no user name or password, at most 2000 characters. Addresses of
    /// loopback, private, link-local, shared and other internal networks are refused unless the
    /// operator allows them (`AIM_WEBHOOK_ALLOW_PRIVATE`); a host name is checked again at every
    /// delivery.
    #[schema(max_length = 2000, pattern = "{not_blank}")]
    url: String,
    /// At least one; each once.
    #[schema(min_items = 1, max_items = 2)]
    events: Vec<WebhookEvent>,
    #[serde(default)]
    #[schema(max_length = 500)]
    description: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct WebhookWithSecret {
    /// Signs every delivery (`AIM-Signature`, see docs/webhooks.md). Shown this once; stored
    /// encrypted, never returned again.
    secret: String,
    #[serde(flatten)]
    webhook: Webhook,
}

#[derive(Debug, Serialize, ToSchema)]
struct WebhookList {
    webhooks: Vec<Webhook>,
}

fn check_url(state: &AppState, errors: &mut FieldErrors, url: &str) {
    if url.chars().count() > 2000 || url.trim().is_empty() {
        errors.check(false, "url", "must be 1-2000 characters");
        return;
    }
    if let Err(e) = aim_webhooks::Destination::parse(url, state.webhooks().config.allow_private) {
        errors.check(false, "url", &e.to_string());
    }
}

fn check_events(errors: &mut FieldErrors, events: &[WebhookEvent]) -> Vec<String> {
    let mut names: Vec<String> = events.iter().map(|e| e.as_str().to_owned()).collect();
    errors.check(!names.is_empty(), "events", "must name at least one event");
    names.sort();
    let count = names.len();
    names.dedup();
    errors.check(names.len() == count, "events", "must name each event once");
    names
}

fn encrypt_new_secret(state: &AppState) -> Result<(String, Vec<u8>), ApiError> {
    let cipher = &state.webhooks().cipher;
    let secret = aim_webhooks::new_secret().map_err(|e| ApiError::Internal(Box::new(e)))?;
    let sealed = cipher
        .encrypt(&secret)
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    Ok((secret, sealed))
}

/// The organization's webhook endpoints, oldest first.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "trust", security(("user_token" = [])), responses(
    (status = 200, body = WebhookList),
))]
async fn list_webhooks(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<WebhookList>, ApiError> {
    principal.user_with(Role::Admin)?;
    let webhooks = aim_store::webhooks::list(state.db()?, principal.organization_id()).await?;
    Ok(Json(WebhookList { webhooks }))
}

/// Registers an endpoint for the given events and returns its signing secret, once.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "trust", request_body = CreateWebhook,
    security(("user_token" = [])), responses(
    (status = 201, body = WebhookWithSecret),
    (status = 422, body = ErrorEnvelope),
))]
async fn create_webhook(
    State(state): State<AppState>,
    principal: Principal,
    meta: ClientMeta,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> Result<(StatusCode, Json<WebhookWithSecret>), ApiError> {
    principal.user_with(Role::Admin)?;
    let mut errors = FieldErrors::default();
    check_url(&state, &mut errors, &body.url);
    let events = check_events(&mut errors, &body.events);
    errors.check(
        body.description.chars().count() <= 500,
        "description",
        "must be at most 500 characters",
    );
    errors.finish()?;
    let (secret, secret_encrypted) = encrypt_new_secret(&state)?;
    let webhook = aim_store::webhooks::create(
        state.db()?,
        principal.organization_id(),
        NewWebhook {
            url: body.url.trim().to_owned(),
            description: body.description,
            events,
            secret_encrypted,
        },
        &principal.actor(&meta),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookWithSecret { secret, webhook }),
    ))
}

/// One endpoint.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "trust", params(("id" = Uuid, Path)),
    security(("user_token" = [])), responses(
    (status = 200, body = Webhook),
))]
async fn get_webhook(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Webhook>, ApiError> {
    principal.user_with(Role::Admin)?;
    aim_store::webhooks::get(state.db()?, principal.organization_id(), id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateWebhook {
    #[schema(max_length = 2000, pattern = "{not_blank}")]
    url: Option<String>,
    #[schema(min_items = 1, max_items = 2)]
    events: Option<Vec<WebhookEvent>>,
    #[schema(max_length = 500)]
    description: Option<String>,
    /// `true` re-enables an endpoint the service disabled after repeated failures (its
    /// waiting deliveries are then sent); `false` disables it (deliveries wait).
    enabled: Option<bool>,
}

/// Changes an endpoint; fields left out stay as they are.
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "trust", params(("id" = Uuid, Path)),
    request_body = UpdateWebhook, security(("user_token" = [])), responses(
    (status = 200, body = Webhook),
    (status = 422, body = ErrorEnvelope),
))]
async fn update_webhook(
    State(state): State<AppState>,
    principal: Principal,
    meta: ClientMeta,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<UpdateWebhook>,
) -> Result<Json<Webhook>, ApiError> {
    principal.user_with(Role::Admin)?;
    let mut errors = FieldErrors::default();
    if let Some(url) = &body.url {
        check_url(&state, &mut errors, url);
    }
    let events = body
        .events
        .as_deref()
        .map(|events| check_events(&mut errors, events));
    if let Some(description) = &body.description {
        errors.check(
            description.chars().count() <= 500,
            "description",
            "must be at most 500 characters",
        );
    }
    errors.finish()?;
    aim_store::webhooks::update(
        state.db()?,
        principal.organization_id(),
        id,
        WebhookPatch {
            url: body.url.map(|u| u.trim().to_owned()),
            description: body.description,
            events,
            enabled: body.enabled,
        },
        &principal.actor(&meta),
    )
    .await?
    .map(Json)
    .ok_or(ApiError::NotFound)
}

/// Deletes an endpoint and its deliveries, sent or not.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "trust", params(("id" = Uuid, Path)),
    security(("user_token" = [])), responses(
    (status = 204, description = "deleted"),
))]
async fn delete_webhook(
    State(state): State<AppState>,
    principal: Principal,
    meta: ClientMeta,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    principal.user_with(Role::Admin)?;
    if aim_store::webhooks::delete(
        state.db()?,
        principal.organization_id(),
        id,
        &principal.actor(&meta),
    )
    .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RotateSecret {
    /// How long the old secret keeps signing beside the new one (a second `v1=` in
    /// `AIM-Signature`), 0–168 hours; 24 by default.
    #[schema(minimum = 0, maximum = 168)]
    overlap_hours: Option<i64>,
}

/// Replaces the endpoint's secret and returns the new one, once. The old one keeps signing
/// deliveries beside it for the overlap, so the receiver can switch without losing any.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/rotate-secret", tag = "trust", params(("id" = Uuid, Path)),
    request_body = RotateSecret, security(("user_token" = [])), responses(
    (status = 200, body = WebhookWithSecret),
    (status = 422, body = ErrorEnvelope),
))]
async fn rotate_secret(
    State(state): State<AppState>,
    principal: Principal,
    meta: ClientMeta,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<RotateSecret>,
) -> Result<Json<WebhookWithSecret>, ApiError> {
    principal.user_with(Role::Admin)?;
    let hours = body.overlap_hours.unwrap_or(24);
    let mut errors = FieldErrors::default();
    errors.check(
        (0..=168).contains(&hours),
        "overlap_hours",
        "must be between 0 and 168",
    );
    errors.finish()?;
    let (secret, sealed) = encrypt_new_secret(&state)?;
    let webhook = aim_store::webhooks::rotate(
        state.db()?,
        principal.organization_id(),
        id,
        &sealed,
        Utc::now() + Duration::hours(hours),
        &principal.actor(&meta),
    )
    .await?
    .ok_or(ApiError::NotFound)?;
    Ok(Json(WebhookWithSecret { secret, webhook }))
}

/// Queues a `webhook.ping` delivery to this endpoint alone, whatever its events; watch it in
/// the deliveries.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/ping", tag = "trust", params(("id" = Uuid, Path)),
    security(("user_token" = [])), responses(
    (status = 202, body = Delivery),
))]
async fn ping(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<(StatusCode, Json<Delivery>), ApiError> {
    principal.user_with(Role::Admin)?;
    let delivery =
        aim_store::webhooks::ping(state.db()?, principal.organization_id(), id, Utc::now())
            .await?
            .ok_or(ApiError::NotFound)?;
    Ok((StatusCode::ACCEPTED, Json(delivery)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DeliveryQuery {
    status: Option<DeliveryStatus>,
    /// 1–100; 50 by default.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// 0 by default.
    #[param(minimum = 0)]
    offset: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
struct DeliveryList {
    deliveries: Vec<Delivery>,
    #[serde(flatten)]
    paging: Paging,
}

/// The endpoint's deliveries, newest first: pending (with the next attempt's time), delivered,
/// or failed (attempts spent), with the last answer or error.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "trust",
    params(("id" = Uuid, Path), DeliveryQuery), security(("user_token" = [])), responses(
    (status = 200, body = DeliveryList),
))]
async fn list_deliveries(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<DeliveryQuery>,
) -> Result<Json<DeliveryList>, ApiError> {
    principal.user_with(Role::Admin)?;
    let page = Pagination {
        limit: query.limit,
        offset: query.offset,
    }
    .page()?;
    let db = state.db()?;
    aim_store::webhooks::get(db, principal.organization_id(), id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let (deliveries, total) =
        aim_store::webhooks::deliveries(db, principal.organization_id(), id, query.status, page)
            .await?;
    Ok(Json(DeliveryList {
        deliveries,
        paging: Paging::new(total, page),
    }))
}

/// Sends one delivery again (delivered or failed): pending now, attempts from zero, the same
/// delivery id, so a receiver that saw it already can tell.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", tag = "trust",
    params(("id" = Uuid, Path), ("delivery_id" = Uuid, Path)), security(("user_token" = [])), responses(
    (status = 202, body = Delivery),
))]
async fn redeliver(
    State(state): State<AppState>,
    principal: Principal,
    meta: ClientMeta,
    ApiPath((id, delivery_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<(StatusCode, Json<Delivery>), ApiError> {
    principal.user_with(Role::Admin)?;
    let delivery = aim_store::webhooks::redeliver(
        state.db()?,
        principal.organization_id(),
        id,
        delivery_id,
        &principal.actor(&meta),
    )
    .await?
    .ok_or(ApiError::NotFound)?;
    Ok((StatusCode::ACCEPTED, Json(delivery)))
}
