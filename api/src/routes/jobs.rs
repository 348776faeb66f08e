//! `/v1/readout-jobs` and desk readouts: the executable work behind requests.

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use countersign_domain::permission::{Action, Principal};
use countersign_domain::ports::{JobFilter, JobView};
use countersign_domain::tenant::TenantId;
use countersign_domain::workflow::{JobKind, JobStatus, TargetType};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use crate::extract::{Caller, Valid};
use crate::pagination::{Page, PageQuery};
use crate::problem::{ApiError, ListProblems, Problem, ResourceProblems};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct JobTarget {
    #[serde(rename = "type")]
    pub target_type: TargetType,
    pub id: Uuid,
    pub marking: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobOut {
    pub id: Uuid,
    pub kind: JobKind,
    pub request_id: Option<Uuid>,
    pub target: JobTarget,
    pub status: JobStatus,
    pub device_id: Option<Uuid>,
    pub programming_key_id: Option<Uuid>,
    pub attempts: i32,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<JobView> for JobOut {
    fn from(j: JobView) -> Self {
        JobOut {
            id: j.id,
            kind: j.kind,
            request_id: j.request_id,
            target: JobTarget {
                target_type: j.target_type,
                id: j.target_id,
                marking: j.target_marking,
            },
            status: j.status,
            device_id: j.device_id,
            programming_key_id: j.programming_key_id,
            attempts: j.attempts,
            lease_expires_at: j.lease_expires_at,
            created_at: j.created_at,
            updated_at: j.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    pub status: Option<JobStatus>,
    pub kind: Option<JobKind>,
    pub cursor: Option<String>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// Administrators see every job; a cylinder programmer only those transferred to its key.
fn job_scope(principal: &Principal) -> Result<(TenantId, Option<Uuid>), ApiError> {
    match principal.tenant_for(Action::ReadAllJobs) {
        Ok(t) => Ok((t, None)),
        Err(_) => Ok((
            principal.tenant_for(Action::ReadOwnJobs)?,
            Some(principal.id),
        )),
    }
}

#[utoipa::path(
    tag = "readout-jobs",
    params(JobQuery),
    responses(
        (status = 200, body = Page<JobOut>),
        ListProblems,
    ),
    security(("bearer" = []))
)]
#[get("/readout-jobs")]
pub async fn list_jobs(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<JobQuery>,
) -> Result<web::Json<Page<JobOut>>, ApiError> {
    let (t, own) = job_scope(&caller.principal)?;
    let q = query.into_inner();
    let page = PageQuery {
        cursor: q.cursor,
        limit: q.limit,
    }
    .request()?;
    let filter = JobFilter {
        status: q.status,
        kind: q.kind,
        programming_key_id: own,
    };
    Ok(web::Json(Page::from(
        state.store.list_jobs(t, filter, page).await?,
        JobOut::from,
    )))
}

#[utoipa::path(
    tag = "readout-jobs",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = JobOut),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[get("/readout-jobs/{id}")]
pub async fn get_job(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<web::Json<JobOut>, ApiError> {
    let (t, own) = job_scope(&caller.principal)?;
    Ok(web::Json(state.store.get_job(t, *id, own).await?.into()))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeskReadoutIn {
    /// A `desk_unit` of the tenant.
    pub device_id: Uuid,
}

#[utoipa::path(
    tag = "readout-jobs",
    params(("id" = Uuid, Path, description = "Key id")),
    request_body = DeskReadoutIn,
    responses(
        (status = 201, description = "Queued for the desk unit's agent", body = JobOut),
        (status = 422, description = "no_event_log, not a desk unit", body = Problem, content_type = "application/problem+json"),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[post("/keys/{id}/desk-readout")]
pub async fn desk_readout(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: Valid<DeskReadoutIn>,
) -> Result<HttpResponse, ApiError> {
    let t = caller.principal.tenant_for(Action::DeskReadout)?;
    let job = state
        .store
        .desk_readout(t, &caller.principal, *id, body.0.device_id)
        .await?;
    Ok(HttpResponse::Created().json(JobOut::from(job)))
}
