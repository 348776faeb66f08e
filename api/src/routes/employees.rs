//! `/v1/employees`: the tenant's people.

use actix_web::{HttpResponse, get, patch, post, web};
use chrono::{DateTime, Utc};
use countersign_domain::directory::Employee;
use countersign_domain::permission::Action;
use countersign_domain::ports::EmployeeChange;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use validator::Validate;

use crate::extract::{Caller, Valid, nullable};
use crate::pagination::{Page, PageQuery};
use crate::problem::{ApiError, ListProblems, Problem, ResourceProblems};
use crate::state::AppState;

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmployeeIn {
    #[validate(length(min = 1, max = 200))]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u001f\u007f-\u009f \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    #[validate(email)]
    #[schema(format = Email)]
    pub email: Option<String>,
}

/// `email: null` removes the address (refused while the employee holds an approver key).
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmployeePatch {
    #[validate(length(min = 1, max = 200))]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u001f\u007f-\u009f \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, format = Email)]
    pub email: Option<Option<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmployeeOut {
    pub id: Uuid,
    pub name: String,
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<Employee> for EmployeeOut {
    fn from(e: Employee) -> Self {
        EmployeeOut {
            id: e.id,
            name: e.name,
            email: e.email,
            created_at: e.created_at,
        }
    }
}

#[utoipa::path(
    tag = "employees",
    request_body = EmployeeIn,
    responses(
        (status = 201, body = EmployeeOut),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        ListProblems,
    ),
    security(("bearer" = []))
)]
#[post("/employees")]
pub async fn create_employee(
    state: web::Data<AppState>,
    caller: Caller,
    body: Valid<EmployeeIn>,
) -> Result<HttpResponse, ApiError> {
    let t = caller.principal.tenant_for(Action::ManageEmployees)?;
    let body = body.into_inner();
    let employee = state
        .store
        .create_employee(t, &caller.principal, body.name, body.email)
        .await?;
    Ok(HttpResponse::Created().json(EmployeeOut::from(employee)))
}

#[utoipa::path(
    tag = "employees",
    params(PageQuery),
    responses(
        (status = 200, body = Page<EmployeeOut>),
        ListProblems,
    ),
    security(("bearer" = []))
)]
#[get("/employees")]
pub async fn list_employees(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<EmployeeOut>>, ApiError> {
    let t = caller.principal.tenant_for(Action::ReadEmployees)?;
    let page = state.store.list_employees(t, query.request()?).await?;
    Ok(web::Json(Page::from(page, EmployeeOut::from)))
}

#[utoipa::path(
    tag = "employees",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = EmployeeOut),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[get("/employees/{id}")]
pub async fn get_employee(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<web::Json<EmployeeOut>, ApiError> {
    let t = caller.principal.tenant_for(Action::ReadEmployees)?;
    Ok(web::Json(state.store.get_employee(t, *id).await?.into()))
}

#[utoipa::path(
    tag = "employees",
    params(("id" = Uuid, Path)),
    request_body = EmployeePatch,
    responses(
        (status = 200, body = EmployeeOut),
        (status = 422, description = "e.g. approver_requires_email", body = Problem, content_type = "application/problem+json"),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[patch("/employees/{id}")]
pub async fn update_employee(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: Valid<EmployeePatch>,
) -> Result<web::Json<EmployeeOut>, ApiError> {
    let t = caller.principal.tenant_for(Action::ManageEmployees)?;
    let body = body.into_inner();
    let change = EmployeeChange {
        name: body.name,
        email: body.email,
    };
    Ok(web::Json(
        state
            .store
            .update_employee(t, &caller.principal, *id, change)
            .await?
            .into(),
    ))
}
