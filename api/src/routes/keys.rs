//! `/v1/keys`: user keys carried by employees, with issue / return and automatic collection.

use actix_web::{HttpResponse, get, patch, post, web};
use chrono::{DateTime, Utc};
use countersign_domain::directory::{Key, KeyModel, KeyStatus};
use countersign_domain::permission::Action;
use countersign_domain::ports::{KeyChange, KeyCommand, NewKey};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use validator::Validate;

use crate::extract::{Caller, Valid, nullable};
use crate::pagination::{Page, PageQuery};
use crate::problem::{ApiError, ListProblems, Problem, ResourceProblems};
use crate::routes::programming_keys::IssueIn;
use crate::state::AppState;

/// A new key, in stock. Also one item of an extension import.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyIn {
    #[validate(length(min = 1, max = 64))]
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000](?:[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u001f\u007f-\u009f \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    pub marking: String,
    #[validate(length(min = 1, max = 200))]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u001f\u007f-\u009f \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    pub model: KeyModel,
    pub key_group_id: Option<Uuid>,
}

impl From<KeyIn> for NewKey {
    fn from(k: KeyIn) -> Self {
        NewKey {
            marking: k.marking,
            name: k.name,
            model: k.model,
            key_group_id: k.key_group_id,
        }
    }
}

/// `key_group_id: null` takes the key out of its group.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyPatch {
    #[validate(length(min = 1, max = 200))]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u001f\u007f-\u009f \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Uuid>)]
    pub key_group_id: Option<Option<Uuid>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyOut {
    pub id: Uuid,
    pub marking: String,
    pub name: String,
    pub model: KeyModel,
    pub status: KeyStatus,
    pub employee_id: Option<Uuid>,
    pub key_group_id: Option<Uuid>,
    /// Read automatically whenever inserted at a remote unit (only without the approver function).
    pub auto_collection: bool,
    pub created_at: DateTime<Utc>,
}

impl From<Key> for KeyOut {
    fn from(k: Key) -> Self {
        KeyOut {
            id: k.id,
            marking: k.marking,
            name: k.name,
            model: k.model,
            status: k.status,
            employee_id: k.employee_id,
            key_group_id: k.key_group_id,
            auto_collection: k.auto_collection,
            created_at: k.created_at,
        }
    }
}

#[utoipa::path(
    tag = "keys",
    request_body = KeyIn,
    responses(
        (status = 201, body = KeyOut),
        (status = 409, description = "Marking taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field, unknown key group", body = Problem, content_type = "application/problem+json"),
        ListProblems,
    ),
    security(("bearer" = []))
)]
#[post("/keys")]
pub async fn create_key(
    state: web::Data<AppState>,
    caller: Caller,
    body: Valid<KeyIn>,
) -> Result<HttpResponse, ApiError> {
    let t = caller.principal.tenant_for(Action::ManageInventory)?;
    let key = state
        .store
        .create_key(t, &caller.principal, body.into_inner().into())
        .await?;
    Ok(HttpResponse::Created().json(KeyOut::from(key)))
}

#[utoipa::path(
    tag = "keys",
    params(PageQuery),
    responses(
        (status = 200, body = Page<KeyOut>),
        ListProblems,
    ),
    security(("bearer" = []))
)]
#[get("/keys")]
pub async fn list_keys(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<KeyOut>>, ApiError> {
    let t = caller.principal.tenant_for(Action::ReadInventory)?;
    let page = state.store.list_keys(t, query.request()?).await?;
    Ok(web::Json(Page::from(page, KeyOut::from)))
}

#[utoipa::path(
    tag = "keys",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = KeyOut),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[get("/keys/{id}")]
pub async fn get_key(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<web::Json<KeyOut>, ApiError> {
    let t = caller.principal.tenant_for(Action::ReadInventory)?;
    Ok(web::Json(state.store.get_key(t, *id).await?.into()))
}

#[utoipa::path(
    tag = "keys",
    params(("id" = Uuid, Path)),
    request_body = KeyPatch,
    responses(
        (status = 200, body = KeyOut),
        (status = 422, description = "Invalid field, unknown key group", body = Problem, content_type = "application/problem+json"),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[patch("/keys/{id}")]
pub async fn update_key(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: Valid<KeyPatch>,
) -> Result<web::Json<KeyOut>, ApiError> {
    let t = caller.principal.tenant_for(Action::ManageInventory)?;
    let b = body.into_inner();
    let change = KeyChange {
        name: b.name,
        key_group_id: b.key_group_id,
    };
    Ok(web::Json(
        state
            .store
            .update_key(t, &caller.principal, *id, change)
            .await?
            .into(),
    ))
}

async fn command(
    state: &AppState,
    caller: &Caller,
    action: Action,
    id: Uuid,
    command: KeyCommand,
) -> Result<web::Json<KeyOut>, ApiError> {
    let t = caller.principal.tenant_for(action)?;
    Ok(web::Json(
        state
            .store
            .command_key(t, &caller.principal, id, command)
            .await?
            .into(),
    ))
}

/// Without the approver function, issuing an `e2`/`e3` key switches automatic collection on.
#[utoipa::path(
    tag = "keys",
    params(("id" = Uuid, Path)),
    request_body = IssueIn,
    responses(
        (status = 200, body = KeyOut),
        (status = 409, description = "Already issued", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown employee", body = Problem, content_type = "application/problem+json"),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[post("/keys/{id}/issue")]
pub async fn issue_key(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: Valid<IssueIn>,
) -> Result<web::Json<KeyOut>, ApiError> {
    let issue = KeyCommand::Issue {
        employee_id: body.0.employee_id,
    };
    command(&state, &caller, Action::IssueReturnKeys, *id, issue).await
}

#[utoipa::path(
    tag = "keys",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "Returned; automatic collection ends", body = KeyOut),
        (status = 409, description = "Not issued", body = Problem, content_type = "application/problem+json"),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[post("/keys/{id}/return")]
pub async fn return_key(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<web::Json<KeyOut>, ApiError> {
    command(
        &state,
        &caller,
        Action::IssueReturnKeys,
        *id,
        KeyCommand::Return,
    )
    .await
}

#[utoipa::path(
    tag = "keys",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = KeyOut),
        (status = 409, description = "approval_function_active: the tenant has the approver function", body = Problem, content_type = "application/problem+json"),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[post("/keys/{id}/auto-collection/stop")]
pub async fn stop_auto_collection(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<web::Json<KeyOut>, ApiError> {
    let stop = KeyCommand::StopAutoCollection;
    command(&state, &caller, Action::StopAutoCollection, *id, stop).await
}
