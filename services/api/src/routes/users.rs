//! Users of the caller's organization. Only admins list, create, activate and deactivate
//! them; an admin cannot deactivate themself, so an organization never locks itself out.

use aim_store::model::{Role, User};
use aim_store::users::NewUser;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::password::{MAX_PASSWORD_LEN, MIN_PASSWORD_LEN};
use crate::auth::{ClientMeta, Principal};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::routes::paging::{Pagination, Paging};
use crate::routes::validation::{FieldErrors, valid_email};
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user))
}

#[derive(Debug, Serialize, ToSchema)]
struct UserList {
    users: Vec<User>,
    #[serde(flatten)]
    paging: Paging,
}

/// The organization's users, oldest first.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(Pagination),
    security(("user_token" = [])), responses(
    (status = 200, body = UserList),
    (status = 401, body = ErrorEnvelope),
    (status = 403, body = ErrorEnvelope),
))]
async fn list_users(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(pagination): ApiQuery<Pagination>,
) -> Result<Json<UserList>, ApiError> {
    principal.user_with(Role::Admin)?;
    let page = pagination.page()?;
    let (users, total) =
        aim_store::users::list(state.db()?, principal.organization_id(), page).await?;
    Ok(Json(UserList {
        users,
        paging: Paging::new(total, page),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    #[schema(max_length = 320, pattern = "{email}")]
    email: String,
    #[schema(max_length = 200, pattern = "{not_blank}")]
    name: String,
    role: Role,
    /// 12 to 1024 characters.
    #[schema(value_type = String, format = Password, min_length = 12, max_length = 1024)]
    password: SecretString,
}

pub(crate) fn check_password(errors: &mut FieldErrors, password: &SecretString) {
    let len = password.expose_secret().chars().count();
    errors.check(
        (MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&len),
        "password",
        "must be 12 to 1024 characters",
    );
}

/// Creates a user in the caller's organization.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUser,
    security(("user_token" = [])), responses(
    (status = 201, body = User),
    (status = 403, body = ErrorEnvelope),
    (status = 409, body = ErrorEnvelope, description = "email taken"),
    (status = 422, body = ErrorEnvelope),
))]
async fn create_user(
    State(state): State<AppState>,
    principal: Principal,
    meta: ClientMeta,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    principal.user_with(Role::Admin)?;
    let mut errors = FieldErrors::default();
    errors.check(
        valid_email(&body.email),
        "email",
        "must be an email address",
    );
    errors.text(&body.name, "name", 200);
    check_password(&mut errors, &body.password);
    errors.finish()?;
    let hash = state
        .passwords()
        .hash(&body.password)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let user = aim_store::users::create(
        state.db()?,
        principal.organization_id(),
        NewUser {
            email: body.email.trim(),
            name: body.name.trim(),
            role: body.role,
            password_hash: &hash,
        },
        &principal.actor(&meta),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// One user of the caller's organization.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = Uuid, Path)),
    security(("user_token" = [])), responses(
    (status = 200, body = User),
    (status = 403, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope),
))]
async fn get_user(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<User>, ApiError> {
    principal.user_with(Role::Admin)?;
    aim_store::users::get(state.db()?, principal.organization_id(), id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateUser {
    /// `false` deactivates the user (their sessions are revoked); `true` reactivates them.
    is_active: bool,
}

/// Activates or deactivates a user. An admin cannot deactivate themself (422). Deactivating
/// ends every session of the user: tokens from before do not work after a reactivation.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", params(("id" = Uuid, Path)),
    request_body = UpdateUser, security(("user_token" = [])), responses(
    (status = 200, body = User),
    (status = 403, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope),
    (status = 422, body = ErrorEnvelope, description = "an admin deactivating themself"),
))]
async fn update_user(
    State(state): State<AppState>,
    principal: Principal,
    meta: ClientMeta,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<UpdateUser>,
) -> Result<Json<User>, ApiError> {
    let me = principal.user_with(Role::Admin)?;
    if me == id && !body.is_active {
        return Err(ApiError::invalid(
            "is_active",
            "you cannot deactivate yourself",
        ));
    }
    aim_store::users::set_active(
        state.db()?,
        principal.organization_id(),
        id,
        body.is_active,
        &principal.actor(&meta),
    )
    .await?
    .map(Json)
    .ok_or(ApiError::NotFound)
}
