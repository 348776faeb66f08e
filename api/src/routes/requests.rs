//! `/v1/event-log-requests`: requests to read an event log, and the approvers' decisions.

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use countersign_domain::permission::Action;
use countersign_domain::ports::{DecisionView, RequestFilter, RequestView};
use countersign_domain::workflow::{RequestStatus, TargetType, Verdict};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use crate::extract::{Caller, Valid};
use crate::pagination::{Page, PageQuery};
use crate::problem::{ApiError, ListProblems, Problem, ResourceProblems};
use crate::routes::jobs::JobOut;
use crate::state::AppState;

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetIn {
    #[serde(rename = "type")]
    pub target_type: TargetType,
    pub id: Uuid,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestIn {
    pub target: TargetIn,
    /// For the approvers: why the log is needed.
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub comment: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TargetOut {
    #[serde(rename = "type")]
    pub target_type: TargetType,
    pub id: Uuid,
    pub marking: String,
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RequestedBy {
    pub employee_id: Option<Uuid>,
    pub programming_key_id: Option<Uuid>,
    pub api_key_id: Option<Uuid>,
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApproverOut {
    pub employee_id: Uuid,
    pub programming_key_id: Uuid,
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionOut {
    pub decision: Verdict,
    pub comment: Option<String>,
    pub approver: ApproverOut,
    pub decided_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RequestOut {
    pub id: Uuid,
    pub target: TargetOut,
    pub status: RequestStatus,
    pub comment: Option<String>,
    pub requested_by: RequestedBy,
    pub requested_at: DateTime<Utc>,
    pub approvals_required: u8,
    pub decisions: Vec<DecisionOut>,
    pub job: Option<JobOut>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Why the request ended, e.g. `target_returned`, `expired`.
    pub reason: Option<String>,
}

impl From<DecisionView> for DecisionOut {
    fn from(d: DecisionView) -> Self {
        DecisionOut {
            decision: d.verdict,
            comment: d.comment,
            approver: ApproverOut {
                employee_id: d.employee_id,
                programming_key_id: d.programming_key_id,
                name: d.name,
            },
            decided_at: d.decided_at,
        }
    }
}

impl From<RequestView> for RequestOut {
    fn from(r: RequestView) -> Self {
        RequestOut {
            id: r.id,
            target: TargetOut {
                target_type: r.target.target_type,
                id: r.target.id,
                marking: r.target.marking,
                name: r.target.name,
            },
            status: r.status,
            comment: r.comment,
            requested_by: RequestedBy {
                employee_id: r.requested_by.employee_id,
                programming_key_id: r.requested_by.programming_key_id,
                api_key_id: r.requested_by.api_key_id,
                name: r.requested_by.name,
            },
            requested_at: r.requested_at,
            approvals_required: r.approvals_required,
            decisions: r.decisions.into_iter().map(DecisionOut::from).collect(),
            job: r.job.map(JobOut::from),
            expires_at: r.expires_at,
            reason: r.reason,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RequestQuery {
    pub status: Option<RequestStatus>,
    pub target_type: Option<TargetType>,
    pub cursor: Option<String>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionIn {
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub comment: Option<String>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelIn {
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferIn {
    /// An issued, unblocked programming key with the cylinder_programmer role.
    pub programming_key_id: Uuid,
}

#[utoipa::path(
    tag = "event-log-requests",
    request_body = RequestIn,
    responses(
        (status = 201, description = "Pending approval, or approved at once without the approver function", body = RequestOut),
        (status = 404, description = "No such key or cylinder", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "request_already_open, no_approver_available", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "no_event_log, key_not_issued", body = Problem, content_type = "application/problem+json"),
        ListProblems,
    ),
    security(("bearer" = []))
)]
#[post("/event-log-requests")]
pub async fn create_request(
    state: web::Data<AppState>,
    caller: Caller,
    body: Valid<RequestIn>,
) -> Result<HttpResponse, ApiError> {
    let t = caller.principal.tenant_for(Action::CreateRequest)?;
    let b = body.into_inner();
    let request = state
        .store
        .create_request(
            t,
            &caller.principal,
            b.target.target_type,
            b.target.id,
            b.comment,
        )
        .await?;
    Ok(HttpResponse::Created().json(RequestOut::from(request)))
}

#[utoipa::path(
    tag = "event-log-requests",
    params(RequestQuery),
    responses(
        (status = 200, body = Page<RequestOut>),
        ListProblems,
    ),
    security(("bearer" = []))
)]
#[get("/event-log-requests")]
pub async fn list_requests(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<RequestQuery>,
) -> Result<web::Json<Page<RequestOut>>, ApiError> {
    let t = caller.principal.tenant_for(Action::ReadRequests)?;
    let q = query.into_inner();
    let page = PageQuery {
        cursor: q.cursor,
        limit: q.limit,
    }
    .request()?;
    let filter = RequestFilter {
        status: q.status,
        target_type: q.target_type,
    };
    Ok(web::Json(Page::from(
        state.store.list_requests(t, filter, page).await?,
        RequestOut::from,
    )))
}

#[utoipa::path(
    tag = "event-log-requests",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = RequestOut),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[get("/event-log-requests/{id}")]
pub async fn get_request(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<web::Json<RequestOut>, ApiError> {
    let t = caller.principal.tenant_for(Action::ReadRequests)?;
    Ok(web::Json(state.store.get_request(t, *id).await?.into()))
}

async fn decide(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    verdict: Verdict,
    body: DecisionIn,
) -> Result<web::Json<RequestOut>, ApiError> {
    let t = caller.principal.tenant_for(Action::DecideRequest)?;
    Ok(web::Json(
        state
            .store
            .decide(t, &caller.principal, id, verdict, body.comment)
            .await?
            .into(),
    ))
}

#[utoipa::path(
    tag = "event-log-requests",
    params(("id" = Uuid, Path)),
    request_body = DecisionIn,
    responses(
        (status = 200, body = RequestOut),
        (status = 403, description = "self_approval, or not an approver able to act", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "request_not_pending, already_decided, request_expired (the request expired before the decision)", body = Problem, content_type = "application/problem+json"),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[post("/event-log-requests/{id}/approve")]
pub async fn approve(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: Valid<DecisionIn>,
) -> Result<web::Json<RequestOut>, ApiError> {
    decide(&state, &caller, *id, Verdict::Approve, body.into_inner()).await
}

#[utoipa::path(
    tag = "event-log-requests",
    params(("id" = Uuid, Path)),
    request_body = DecisionIn,
    responses(
        (status = 200, body = RequestOut),
        (status = 403, description = "self_approval, or not an approver able to act", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "request_not_pending, already_decided, request_expired (the request expired before the decision)", body = Problem, content_type = "application/problem+json"),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[post("/event-log-requests/{id}/reject")]
pub async fn reject(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: Valid<DecisionIn>,
) -> Result<web::Json<RequestOut>, ApiError> {
    decide(&state, &caller, *id, Verdict::Reject, body.into_inner()).await
}

#[utoipa::path(
    tag = "event-log-requests",
    params(("id" = Uuid, Path)),
    request_body = CancelIn,
    responses(
        (status = 200, body = RequestOut),
        (status = 409, description = "Ended, or its job is running or loaded", body = Problem, content_type = "application/problem+json"),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[post("/event-log-requests/{id}/cancel")]
pub async fn cancel(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: Valid<CancelIn>,
) -> Result<web::Json<RequestOut>, ApiError> {
    let t = caller.principal.tenant_for(Action::CancelRequest)?;
    Ok(web::Json(
        state
            .store
            .cancel_request(t, &caller.principal, *id, body.into_inner().reason)
            .await?
            .into(),
    ))
}

#[utoipa::path(
    tag = "event-log-requests",
    params(("id" = Uuid, Path)),
    request_body = TransferIn,
    responses(
        (status = 200, body = RequestOut),
        (status = 409, description = "Not an approved cylinder request awaiting transfer, or request_expired", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown key, lacking role, not issued or blocked", body = Problem, content_type = "application/problem+json"),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[post("/event-log-requests/{id}/transfer")]
pub async fn transfer(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: Valid<TransferIn>,
) -> Result<web::Json<RequestOut>, ApiError> {
    let t = caller.principal.tenant_for(Action::TransferRequest)?;
    Ok(web::Json(
        state
            .store
            .transfer_request(t, &caller.principal, *id, body.0.programming_key_id)
            .await?
            .into(),
    ))
}
