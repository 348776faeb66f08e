//! `/v1/programming-keys`: administrators' credentials (super administrators only).

use actix_web::{HttpResponse, get, patch, post, web};
use chrono::{DateTime, Utc};
use countersign_domain::directory::{KeyStatus, ProgrammingKey};
use countersign_domain::permission::Action;
use countersign_domain::ports::{
    NewProgrammingKey, PinDelivery, ProgrammingKeyChange, ProgrammingKeyCommand,
};
use countersign_domain::role::{Role, RoleSet};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use validator::Validate;

use crate::extract::{Caller, Valid, nullable};
use crate::pagination::{Page, PageQuery};
use crate::problem::{ApiError, ListProblems, Problem, ResourceProblems};
use crate::schema::ProgrammingKeyRole;
use crate::state::AppState;

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgrammingKeyIn {
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
    #[serde(default)]
    #[schema(value_type = Vec<ProgrammingKeyRole>)]
    pub roles: Vec<Role>,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
}

/// Changing roles or the validity window ends every token of the key.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgrammingKeyPatch {
    #[validate(length(min = 1, max = 200))]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u001f\u007f-\u009f \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: Option<String>,
    #[schema(value_type = Option<Vec<ProgrammingKeyRole>>)]
    pub roles: Option<Vec<Role>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub valid_from: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub valid_until: Option<Option<DateTime<Utc>>>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueIn {
    pub employee_id: Uuid,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PinIn {
    /// 4 to 12 digits; a one-time PIN the holder must replace at first login.
    /// Leave it out for a key with the approver role: nobody but its holder
    /// learns an approver's PIN, so the server makes one and mails it to them.
    #[validate(length(max = 64))]
    #[schema(pattern = r"^[0-9]{4,12}$")]
    pub pin: Option<String>,
}

/// An approver key's one-time PIN went to its holder by e-mail.
#[derive(Debug, Serialize, ToSchema)]
pub struct PinMailedOut {
    /// Always `holder`: the PIN is in no answer, log or history entry.
    pub delivered_to: &'static str,
    /// The key is on hold until then (an approver change, SPEC §2).
    pub hold_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProgrammingKeyOut {
    pub id: Uuid,
    pub marking: String,
    pub name: String,
    pub status: KeyStatus,
    pub blocked: bool,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
    pub roles: Vec<Role>,
    pub employee_id: Option<Uuid>,
    /// While set and in the future, an approver change keeps this key from
    /// deciding (403 `approver_on_hold`).
    pub hold_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<ProgrammingKey> for ProgrammingKeyOut {
    fn from(k: ProgrammingKey) -> Self {
        ProgrammingKeyOut {
            id: k.id,
            marking: k.marking,
            name: k.name,
            status: k.status,
            blocked: k.blocked,
            valid_from: k.valid_from,
            valid_until: k.valid_until,
            roles: k.roles.iter().collect(),
            employee_id: k.employee_id,
            hold_until: k.hold_until,
            created_at: k.created_at,
        }
    }
}

#[utoipa::path(
    tag = "programming-keys",
    request_body = ProgrammingKeyIn,
    responses(
        (status = 201, body = ProgrammingKeyOut),
        (status = 409, description = "Marking taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        ListProblems,
    ),
    security(("bearer" = []))
)]
#[post("/programming-keys")]
pub async fn create_programming_key(
    state: web::Data<AppState>,
    caller: Caller,
    body: Valid<ProgrammingKeyIn>,
) -> Result<HttpResponse, ApiError> {
    let t = caller.principal.tenant_for(Action::ManageProgrammingKeys)?;
    let b = body.into_inner();
    let new = NewProgrammingKey {
        marking: b.marking,
        name: b.name,
        roles: RoleSet::for_programming_key(b.roles)?,
        valid_from: b.valid_from,
        valid_until: b.valid_until,
    };
    let key = state
        .store
        .create_programming_key(t, &caller.principal, new)
        .await?;
    Ok(HttpResponse::Created().json(ProgrammingKeyOut::from(key)))
}

#[utoipa::path(
    tag = "programming-keys",
    params(PageQuery),
    responses(
        (status = 200, body = Page<ProgrammingKeyOut>),
        ListProblems,
    ),
    security(("bearer" = []))
)]
#[get("/programming-keys")]
pub async fn list_programming_keys(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<ProgrammingKeyOut>>, ApiError> {
    let t = caller.principal.tenant_for(Action::ManageProgrammingKeys)?;
    let page = state
        .store
        .list_programming_keys(t, query.request()?)
        .await?;
    Ok(web::Json(Page::from(page, ProgrammingKeyOut::from)))
}

#[utoipa::path(
    tag = "programming-keys",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = ProgrammingKeyOut),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[get("/programming-keys/{id}")]
pub async fn get_programming_key(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<web::Json<ProgrammingKeyOut>, ApiError> {
    let t = caller.principal.tenant_for(Action::ManageProgrammingKeys)?;
    Ok(web::Json(
        state.store.get_programming_key(t, *id).await?.into(),
    ))
}

#[utoipa::path(
    tag = "programming-keys",
    params(("id" = Uuid, Path)),
    request_body = ProgrammingKeyPatch,
    responses(
        (status = 200, body = ProgrammingKeyOut),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[patch("/programming-keys/{id}")]
pub async fn update_programming_key(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: Valid<ProgrammingKeyPatch>,
) -> Result<web::Json<ProgrammingKeyOut>, ApiError> {
    let t = caller.principal.tenant_for(Action::ManageProgrammingKeys)?;
    let b = body.into_inner();
    let change = ProgrammingKeyChange {
        name: b.name,
        roles: b.roles.map(RoleSet::for_programming_key).transpose()?,
        valid_from: b.valid_from,
        valid_until: b.valid_until,
    };
    Ok(web::Json(
        state
            .store
            .update_programming_key(t, &caller.principal, *id, change)
            .await?
            .into(),
    ))
}

async fn command(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    command: ProgrammingKeyCommand,
) -> Result<web::Json<ProgrammingKeyOut>, ApiError> {
    let t = caller.principal.tenant_for(Action::ManageProgrammingKeys)?;
    Ok(web::Json(
        state
            .store
            .command_programming_key(t, &caller.principal, id, command)
            .await?
            .into(),
    ))
}

#[utoipa::path(
    tag = "programming-keys",
    params(("id" = Uuid, Path)),
    request_body = IssueIn,
    responses(
        (status = 200, body = ProgrammingKeyOut),
        (status = 409, description = "Already issued", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "approver_requires_email, unknown employee", body = Problem, content_type = "application/problem+json"),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[post("/programming-keys/{id}/issue")]
pub async fn issue_programming_key(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: Valid<IssueIn>,
) -> Result<web::Json<ProgrammingKeyOut>, ApiError> {
    command(
        &state,
        &caller,
        *id,
        ProgrammingKeyCommand::Issue {
            employee_id: body.0.employee_id,
        },
    )
    .await
}

#[utoipa::path(
    tag = "programming-keys",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "Returned; its tokens are ended", body = ProgrammingKeyOut),
        (status = 409, description = "Not issued", body = Problem, content_type = "application/problem+json"),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[post("/programming-keys/{id}/return")]
pub async fn return_programming_key(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<web::Json<ProgrammingKeyOut>, ApiError> {
    command(&state, &caller, *id, ProgrammingKeyCommand::Return).await
}

#[utoipa::path(
    tag = "programming-keys",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "Blocked; its tokens are ended", body = ProgrammingKeyOut),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[post("/programming-keys/{id}/block")]
pub async fn block_programming_key(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<web::Json<ProgrammingKeyOut>, ApiError> {
    command(&state, &caller, *id, ProgrammingKeyCommand::Block).await
}

#[utoipa::path(
    tag = "programming-keys",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = ProgrammingKeyOut),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[post("/programming-keys/{id}/unblock")]
pub async fn unblock_programming_key(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<web::Json<ProgrammingKeyOut>, ApiError> {
    command(&state, &caller, *id, ProgrammingKeyCommand::Unblock).await
}

#[utoipa::path(
    tag = "programming-keys",
    params(("id" = Uuid, Path)),
    request_body = PinIn,
    responses(
        (status = 204, description = "The given one-time PIN is set; the key's tokens are ended"),
        (status = 202, description = "An approver key: the server made a one-time PIN and mailed it to the holder alone; the key's tokens are ended and it is on hold", body = PinMailedOut),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[post("/programming-keys/{id}/pin")]
pub async fn set_programming_key_pin(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: Valid<PinIn>,
) -> Result<HttpResponse, ApiError> {
    let t = caller.principal.tenant_for(Action::ManageProgrammingKeys)?;
    let delivery = state
        .store
        .set_programming_key_pin(t, &caller.principal, *id, body.into_inner().pin)
        .await?;
    Ok(match delivery {
        PinDelivery::AsGiven => HttpResponse::NoContent().finish(),
        PinDelivery::MailedToHolder { hold_until } => HttpResponse::Accepted().json(PinMailedOut {
            delivered_to: "holder",
            hold_until,
        }),
    })
}
