//! `/v1/api-keys`: webservice credentials for integrations (super administrators only).

use actix_web::{HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use countersign_domain::directory::ApiKey;
use countersign_domain::permission::Action;
use countersign_domain::role::{Role, RoleSet};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use validator::Validate;

use crate::extract::{Caller, Valid};
use crate::pagination::{Page, PageQuery};
use crate::problem::{ApiError, ListProblems, Problem, ResourceProblems};
use crate::schema::WebserviceRole;
use crate::state::AppState;

/// A webservice credential acts through the roles it carries; never `approver`
/// or `super_administrator` (422 `invalid_role`). `webservice` is added.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyIn {
    #[validate(length(min = 1, max = 200))]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u001f\u007f-\u009f \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    #[schema(value_type = Vec<WebserviceRole>)]
    pub roles: Vec<Role>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyOut {
    pub id: Uuid,
    pub name: String,
    pub roles: Vec<Role>,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    /// The programming key that created it: a request made with this API
    /// key counts as made by that key's holder too (four eyes).
    pub created_by_programming_key_id: Option<Uuid>,
    pub created_by_employee_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl From<ApiKey> for ApiKeyOut {
    fn from(k: ApiKey) -> Self {
        ApiKeyOut {
            id: k.id,
            name: k.name,
            roles: k.roles.iter().collect(),
            prefix: k.prefix,
            created_by_programming_key_id: k.created_by_programming_key_id,
            created_by_employee_id: k.created_by_employee_id,
            created_at: k.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyCreatedOut {
    pub api_key: ApiKeyOut,
    /// Log in with `{grant_type: "api_key", tenant, api_key}`; store it, it is not shown again.
    pub key: String,
}

#[utoipa::path(
    tag = "api-keys",
    request_body = ApiKeyIn,
    responses(
        (status = 201, description = "The key is shown only here", body = ApiKeyCreatedOut),
        (status = 422, description = "e.g. invalid_role", body = Problem, content_type = "application/problem+json"),
        ListProblems,
    ),
    security(("bearer" = []))
)]
#[post("/api-keys")]
pub async fn create_api_key(
    state: web::Data<AppState>,
    caller: Caller,
    body: Valid<ApiKeyIn>,
) -> Result<HttpResponse, ApiError> {
    let t = caller.principal.tenant_for(Action::ManageApiKeys)?;
    let b = body.into_inner();
    let roles = RoleSet::for_webservice(b.roles)?;
    let created = state
        .store
        .create_api_key(t, &caller.principal, b.name, roles)
        .await?;
    Ok(HttpResponse::Created().json(ApiKeyCreatedOut {
        api_key: created.item.into(),
        key: created.secret,
    }))
}

#[utoipa::path(
    tag = "api-keys",
    params(PageQuery),
    responses(
        (status = 200, body = Page<ApiKeyOut>),
        ListProblems,
    ),
    security(("bearer" = []))
)]
#[get("/api-keys")]
pub async fn list_api_keys(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<ApiKeyOut>>, ApiError> {
    let t = caller.principal.tenant_for(Action::ManageApiKeys)?;
    let page = state.store.list_api_keys(t, query.request()?).await?;
    Ok(web::Json(Page::from(page, ApiKeyOut::from)))
}

#[utoipa::path(
    tag = "api-keys",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = ApiKeyOut),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[get("/api-keys/{id}")]
pub async fn get_api_key(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<web::Json<ApiKeyOut>, ApiError> {
    let t = caller.principal.tenant_for(Action::ManageApiKeys)?;
    Ok(web::Json(state.store.get_api_key(t, *id).await?.into()))
}

#[utoipa::path(
    tag = "api-keys",
    params(("id" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted; every token of the credential ends"),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[delete("/api-keys/{id}")]
pub async fn delete_api_key(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let t = caller.principal.tenant_for(Action::ManageApiKeys)?;
    state
        .store
        .delete_api_key(t, &caller.principal, *id)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
