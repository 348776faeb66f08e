//! `/v1/tenants`: provisioning and administration of tenants (operator only).

use actix_web::{HttpResponse, get, patch, post, web};
use chrono::{DateTime, Utc};
use countersign_domain::permission::Action;
use countersign_domain::ports::NewTenant;
use countersign_domain::tenant::{
    FixedSettings, Locale, MutableSettings, Tenant, TenantChange, TenantId, TenantStatus,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use validator::Validate;

use crate::extract::{Caller, Valid};
use crate::pagination::{Page, PageQuery};
use crate::problem::{ApiError, ListProblems, Problem, ResourceProblems};
use crate::state::AppState;

fn default_retention() -> u32 {
    365
}
fn default_request_ttl() -> u32 {
    72
}
fn default_execution_ttl() -> u32 {
    168
}
fn one() -> u8 {
    1
}
fn default_hold_hours() -> u16 {
    countersign_domain::tenant::DEFAULT_APPROVER_HOLD_HOURS
}

/// A new tenant. `approval_required` has no default: the operator must choose.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantIn {
    #[validate(length(min = 2, max = 63))]
    #[schema(
        min_length = 2,
        max_length = 63,
        pattern = r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$"
    )]
    pub slug: String,
    #[validate(length(min = 1, max = 200))]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u001f\u007f-\u009f \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    /// IANA time zone, e.g. `Europe/Berlin`. Never changes.
    pub base_timezone: String,
    pub locale: Locale,
    /// Whether event logs need an approver's consent. Never changes.
    pub approval_required: bool,
    /// Distinct approvers needed (1–3; 1 without the approver function). Never changes.
    #[serde(default = "one", deserialize_with = "super::integer::exact")]
    #[schema(minimum = 1, maximum = 3)]
    pub approvals_required: u8,
    /// Hours an approver change keeps that key from deciding (0–168, SPEC §2). Never changes.
    #[serde(
        default = "default_hold_hours",
        deserialize_with = "super::integer::exact"
    )]
    #[schema(minimum = 0, maximum = 168)]
    pub approver_hold_hours: u16,
    #[serde(
        default = "default_retention",
        deserialize_with = "super::integer::exact"
    )]
    #[schema(minimum = 1, maximum = 36500)]
    pub event_retention_days: u32,
    #[serde(
        default = "default_request_ttl",
        deserialize_with = "super::integer::exact"
    )]
    #[schema(minimum = 1, maximum = 8760)]
    pub request_ttl_hours: u32,
    #[serde(
        default = "default_execution_ttl",
        deserialize_with = "super::integer::exact"
    )]
    #[schema(minimum = 1, maximum = 8760)]
    pub execution_ttl_hours: u32,
    #[validate(nested)]
    pub initial_admin: InitialAdminIn,
}

/// The first super administrator.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InitialAdminIn {
    #[validate(length(min = 1, max = 200))]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u001f\u007f-\u009f \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub employee_name: String,
    #[validate(email)]
    #[schema(format = Email)]
    pub email: String,
    #[validate(length(min = 1, max = 64))]
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000](?:[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u001f\u007f-\u009f \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    pub programming_key_marking: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantOut {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub base_timezone: String,
    pub locale: Locale,
    pub approval_required: bool,
    pub approvals_required: u8,
    pub approver_hold_hours: u16,
    pub event_retention_days: u32,
    pub request_ttl_hours: u32,
    pub execution_ttl_hours: u32,
    pub status: TenantStatus,
    pub created_at: DateTime<Utc>,
}

impl From<Tenant> for TenantOut {
    fn from(t: Tenant) -> Self {
        let fixed = t.fixed().clone();
        TenantOut {
            id: t.id.0,
            slug: t.slug,
            name: t.settings.name,
            base_timezone: fixed.base_timezone().name().to_owned(),
            locale: t.settings.locale,
            approval_required: fixed.approval_required(),
            approvals_required: fixed.approvals_required(),
            approver_hold_hours: fixed.approver_hold_hours(),
            event_retention_days: t.settings.event_retention_days,
            request_ttl_hours: t.settings.request_ttl_hours,
            execution_ttl_hours: t.settings.execution_ttl_hours,
            status: t.settings.status,
            created_at: t.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProvisionedOut {
    pub tenant: TenantOut,
    /// The initial super administrator's one-time PIN; shown once.
    pub initial_pin: String,
}

/// A change of a tenant. Only `name`, `locale`, `event_retention_days`, the two
/// TTLs and `status` can change; asking for another value of a fixed setting is
/// answered 409.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u001f\u007f-\u009f \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: Option<String>,
    pub locale: Option<Locale>,
    #[serde(default, deserialize_with = "super::integer::optional")]
    #[schema(minimum = 1, maximum = 36500)]
    pub event_retention_days: Option<u32>,
    #[serde(default, deserialize_with = "super::integer::optional")]
    #[schema(minimum = 1, maximum = 8760)]
    pub request_ttl_hours: Option<u32>,
    #[serde(default, deserialize_with = "super::integer::optional")]
    #[schema(minimum = 1, maximum = 8760)]
    pub execution_ttl_hours: Option<u32>,
    pub status: Option<TenantStatus>,
    /// Fixed: 409 `tenant_setting_immutable` unless unchanged.
    pub slug: Option<String>,
    /// Fixed: 409 `approval_setting_immutable` unless unchanged.
    pub approval_required: Option<bool>,
    /// Fixed: 409 `approval_setting_immutable` unless unchanged.
    #[serde(default, deserialize_with = "super::integer::optional")]
    #[schema(maximum = 255)]
    pub approvals_required: Option<u8>,
    /// Fixed: 409 `approval_setting_immutable` unless unchanged.
    #[serde(default, deserialize_with = "super::integer::optional")]
    #[schema(maximum = 65535)]
    pub approver_hold_hours: Option<u16>,
    /// Fixed: 409 `tenant_setting_immutable` unless unchanged.
    pub base_timezone: Option<String>,
}

#[utoipa::path(
    tag = "tenants",
    request_body = TenantIn,
    responses(
        (status = 201, description = "Provisioned", body = ProvisionedOut),
        (status = 409, description = "Slug taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        ListProblems,
    ),
    security(("bearer" = []))
)]
#[post("/tenants")]
pub async fn create_tenant(
    state: web::Data<AppState>,
    caller: Caller,
    body: Valid<TenantIn>,
) -> Result<HttpResponse, ApiError> {
    caller.principal.authorize(Action::ManageTenants)?;
    let body = body.into_inner();
    countersign_domain::tenant::check_slug(&body.slug)?;
    let new = NewTenant {
        slug: body.slug,
        fixed: FixedSettings::new(
            body.approval_required,
            body.approvals_required,
            body.approver_hold_hours,
            &body.base_timezone,
        )?,
        settings: MutableSettings {
            name: body.name,
            locale: body.locale,
            event_retention_days: body.event_retention_days,
            request_ttl_hours: body.request_ttl_hours,
            execution_ttl_hours: body.execution_ttl_hours,
            status: TenantStatus::Active,
        },
        admin_name: body.initial_admin.employee_name,
        admin_email: body.initial_admin.email,
        admin_marking: body.initial_admin.programming_key_marking,
    };
    let provisioned = state.store.provision(new).await?;
    Ok(HttpResponse::Created().json(ProvisionedOut {
        tenant: provisioned.tenant.into(),
        initial_pin: provisioned.initial_pin,
    }))
}

#[utoipa::path(
    tag = "tenants",
    params(PageQuery),
    responses(
        (status = 200, body = Page<TenantOut>),
        ListProblems,
    ),
    security(("bearer" = []))
)]
#[get("/tenants")]
pub async fn list_tenants(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<TenantOut>>, ApiError> {
    caller.principal.authorize(Action::ManageTenants)?;
    let page = state.store.list_tenants(query.request()?).await?;
    Ok(web::Json(Page::from(page, TenantOut::from)))
}

#[utoipa::path(
    tag = "tenants",
    params(("id" = Uuid, Path, description = "Tenant id")),
    responses(
        (status = 200, body = TenantOut),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[get("/tenants/{id}")]
pub async fn get_tenant(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<web::Json<TenantOut>, ApiError> {
    caller.principal.authorize(Action::ManageTenants)?;
    Ok(web::Json(
        state.store.get_tenant(TenantId(*id)).await?.into(),
    ))
}

#[utoipa::path(
    tag = "tenants",
    params(("id" = Uuid, Path, description = "Tenant id")),
    request_body = TenantPatch,
    responses(
        (status = 200, body = TenantOut),
        (status = 409, description = "A fixed setting", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[patch("/tenants/{id}")]
pub async fn update_tenant(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: Valid<TenantPatch>,
) -> Result<web::Json<TenantOut>, ApiError> {
    caller.principal.authorize(Action::ManageTenants)?;
    let b = body.into_inner();
    let change = TenantChange {
        name: b.name,
        locale: b.locale,
        event_retention_days: b.event_retention_days,
        request_ttl_hours: b.request_ttl_hours,
        execution_ttl_hours: b.execution_ttl_hours,
        status: b.status,
        slug: b.slug,
        approval_required: b.approval_required,
        approvals_required: b.approvals_required,
        approver_hold_hours: b.approver_hold_hours,
        base_timezone: b.base_timezone,
    };
    Ok(web::Json(
        state
            .store
            .update_tenant(TenantId(*id), change)
            .await?
            .into(),
    ))
}
