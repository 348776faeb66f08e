//! `/v1/agent/…`: what device agents call (docs/agent-api.md). An agent sees
//! only its tenant and the work of the devices assigned to it.

use std::time::Duration;

use actix_web::{HttpRequest, get, post, web};
use chrono::{DateTime, Utc};
use countersign_domain::ErrorCode;
use countersign_domain::permission::Action;
use countersign_domain::ports::{Claimed, EventRecord, JobOutcome, MAX_POLL_SECS, WorkList};
use countersign_domain::tenant::TenantId;
use countersign_domain::workflow::JobKind;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use crate::extract::{Caller, Valid};
use crate::problem::{ApiError, ListProblems, Problem, ResourceProblems};
use crate::routes::inventory::RemoteDeviceOut;
use crate::routes::jobs::JobOut;
use crate::state::AppState;

/// The largest event batch in one upload.
pub const MAX_EVENTS: usize = 50_000;
/// The agent routes' body limit: room for a large event batch.
pub const AGENT_JSON_LIMIT: usize = 16 * 1024 * 1024;

/// Authorizes an agent and records that it was seen, with its version.
async fn agent(
    state: &AppState,
    caller: &Caller,
    request: &HttpRequest,
) -> Result<(TenantId, Uuid), ApiError> {
    let t = caller
        .principal
        .authorize(Action::AgentWork)?
        .ok_or_else(|| ApiError::new(ErrorCode::Forbidden, "an agent token is tenant-scoped"))?;
    let version = request
        .headers()
        .get("x-agent-version")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    state
        .store
        .agent_seen(t, caller.principal.id, version)
        .await?;
    Ok((t, caller.principal.id))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WorkQuery {
    /// The `version` of the list the agent has.
    pub since: Option<String>,
    /// Seconds to wait for a change, at most 50. Without a change the list
    /// comes back after at least four fifths of it, at a random moment, so
    /// that agents which started together spread out.
    #[param(maximum = 50)]
    pub wait: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyWorkOut {
    pub key_marking: String,
    pub reason: JobKind,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProgrammingKeyWorkOut {
    pub programming_key_marking: String,
    /// Transferred jobs to load onto the key.
    pub load: Vec<Uuid>,
    /// Loaded jobs whose cylinder events the key may carry back.
    pub collect: Vec<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeskWorkOut {
    pub job_id: Uuid,
    pub device_id: Uuid,
    pub key_marking: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkListOut {
    pub version: String,
    pub devices: Vec<RemoteDeviceOut>,
    pub keys: Vec<KeyWorkOut>,
    pub programming_keys: Vec<ProgrammingKeyWorkOut>,
    pub desk_readouts: Vec<DeskWorkOut>,
}

impl From<WorkList> for WorkListOut {
    fn from(w: WorkList) -> Self {
        WorkListOut {
            version: w.version,
            devices: w.devices.into_iter().map(RemoteDeviceOut::from).collect(),
            keys: w
                .keys
                .into_iter()
                .map(|k| KeyWorkOut {
                    key_marking: k.key_marking,
                    reason: k.reason,
                })
                .collect(),
            programming_keys: w
                .programming_keys
                .into_iter()
                .map(|p| ProgrammingKeyWorkOut {
                    programming_key_marking: p.programming_key_marking,
                    load: p.load,
                    collect: p.collect,
                })
                .collect(),
            desk_readouts: w
                .desk_readouts
                .into_iter()
                .map(|d| DeskWorkOut {
                    job_id: d.job_id,
                    device_id: d.device_id,
                    key_marking: d.key_marking,
                })
                .collect(),
        }
    }
}

/// A job after a lease call that ends or hands back the lease.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobOnlyOut {
    pub job: JobOut,
}

impl From<countersign_domain::ports::JobView> for JobOnlyOut {
    fn from(job: countersign_domain::ports::JobView) -> Self {
        JobOnlyOut { job: job.into() }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LeaseOut {
    pub token: Uuid,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClaimedOut {
    pub job: JobOut,
    pub lease: LeaseOut,
}

impl From<Claimed> for ClaimedOut {
    fn from(c: Claimed) -> Self {
        ClaimedOut {
            job: c.job.into(),
            lease: LeaseOut {
                token: c.lease.token,
                expires_at: c.lease.expires_at,
            },
        }
    }
}

#[utoipa::path(
    tag = "agent",
    params(WorkQuery),
    responses(
        (status = 200, description = "The work list; at once when it differs from `since`", body = WorkListOut),
        ListProblems,
    ),
    security(("bearer" = []))
)]
#[get("/work")]
pub async fn work(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    query: web::Query<WorkQuery>,
) -> Result<web::Json<WorkListOut>, ApiError> {
    let (t, agent_id) = agent(&state, &caller, &request).await?;
    let wait = query.wait.unwrap_or(0);
    if wait > MAX_POLL_SECS {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("wait is at most {MAX_POLL_SECS} seconds"),
        ));
    }
    let list = state
        .store
        .poll_work(t, agent_id, query.since.clone(), Duration::from_secs(wait))
        .await?;
    Ok(web::Json(list.into()))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyInsertionIn {
    pub device_id: Uuid,
    #[validate(length(min = 1, max = 64))]
    #[schema(min_length = 1, max_length = 64)]
    pub key_marking: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyInsertionOut {
    /// `read_event_log` or `none`.
    pub action: String,
    pub job: Option<JobOut>,
    pub lease: Option<LeaseOut>,
}

#[utoipa::path(
    tag = "agent",
    request_body = KeyInsertionIn,
    responses(
        (status = 200, description = "What the remote unit does with the key; a job to read comes claimed", body = KeyInsertionOut),
        (status = 404, description = "Not a device of this agent", body = Problem, content_type = "application/problem+json"),
        ListProblems,
    ),
    security(("bearer" = []))
)]
#[post("/key-insertions")]
pub async fn key_insertion(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    body: Valid<KeyInsertionIn>,
) -> Result<web::Json<KeyInsertionOut>, ApiError> {
    let (t, agent_id) = agent(&state, &caller, &request).await?;
    let b = body.into_inner();
    let answer = match state
        .store
        .key_inserted(t, agent_id, b.device_id, &b.key_marking)
        .await?
    {
        Some(claimed) => {
            let claimed = ClaimedOut::from(claimed);
            KeyInsertionOut {
                action: "read_event_log".into(),
                job: Some(claimed.job),
                lease: Some(claimed.lease),
            }
        }
        None => KeyInsertionOut {
            action: "none".into(),
            job: None,
            lease: None,
        },
    };
    Ok(web::Json(answer))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgrammingKeyConnectionIn {
    pub device_id: Uuid,
    #[validate(length(min = 1, max = 64))]
    #[schema(min_length = 1, max_length = 64)]
    pub programming_key_marking: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProgrammingKeyConnectionOut {
    /// Transferred jobs to load onto the key, claimed.
    pub load: Vec<ClaimedOut>,
    /// Loaded jobs whose cylinder events to collect, claimed.
    pub collect: Vec<ClaimedOut>,
}

#[utoipa::path(
    tag = "agent",
    request_body = ProgrammingKeyConnectionIn,
    responses(
        (status = 200, body = ProgrammingKeyConnectionOut),
        (status = 404, description = "Not a device of this agent", body = Problem, content_type = "application/problem+json"),
        ListProblems,
    ),
    security(("bearer" = []))
)]
#[post("/programming-key-connections")]
pub async fn programming_key_connection(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    body: Valid<ProgrammingKeyConnectionIn>,
) -> Result<web::Json<ProgrammingKeyConnectionOut>, ApiError> {
    let (t, agent_id) = agent(&state, &caller, &request).await?;
    let b = body.into_inner();
    let connected = state
        .store
        .programming_key_connected(t, agent_id, b.device_id, &b.programming_key_marking)
        .await?;
    Ok(web::Json(ProgrammingKeyConnectionOut {
        load: connected.load.into_iter().map(ClaimedOut::from).collect(),
        collect: connected
            .collect
            .into_iter()
            .map(ClaimedOut::from)
            .collect(),
    }))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimIn {
    pub device_id: Uuid,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaseIn {
    pub lease_token: Uuid,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventIn {
    /// The device's sequence number; an event is stored once per number.
    #[serde(deserialize_with = "super::integer::exact")]
    pub seq: i64,
    pub occurred_at: DateTime<Utc>,
    pub kind: String,
    pub key_marking: Option<String>,
    pub cylinder_marking: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsIn {
    pub lease_token: Uuid,
    pub events: Vec<EventIn>,
}

impl Validate for EventsIn {
    fn validate(&self) -> Result<(), validator::ValidationErrors> {
        let mut errors = validator::ValidationErrors::new();
        if self.events.len() > MAX_EVENTS {
            errors.add(
                "events",
                validator::ValidationError::new("too_many")
                    .with_message(format!("at most {MAX_EVENTS} events per batch").into()),
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UploadOut {
    pub received: u64,
    /// How many were new; the rest were stored before.
    pub stored: u64,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailIn {
    pub lease_token: Uuid,
    #[validate(length(min = 1, max = 2000))]
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: String,
    /// Retry up to the attempt limit; otherwise the job and its request fail.
    pub retryable: bool,
}

#[utoipa::path(
    tag = "agent",
    params(("id" = Uuid, Path)),
    request_body = ClaimIn,
    responses(
        (status = 200, body = ClaimedOut),
        (status = 409, description = "job_unavailable (taken, ended or not this agent's), job_not_claimable (not claimed by id: a key's readout is claimed by its insertion, a cylinder job through its programming key)", body = Problem, content_type = "application/problem+json"),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[post("/jobs/{id}/claim")]
pub async fn claim(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    id: web::Path<Uuid>,
    body: Valid<ClaimIn>,
) -> Result<web::Json<ClaimedOut>, ApiError> {
    let (t, agent_id) = agent(&state, &caller, &request).await?;
    Ok(web::Json(
        state
            .store
            .claim_job(t, agent_id, *id, body.0.device_id)
            .await?
            .into(),
    ))
}

#[utoipa::path(
    tag = "agent",
    params(("id" = Uuid, Path)),
    request_body = LeaseIn,
    responses(
        (status = 200, description = "The lease, extended", body = ClaimedOut),
        (status = 409, description = "lease_lost", body = Problem, content_type = "application/problem+json"),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[post("/jobs/{id}/heartbeat")]
pub async fn heartbeat(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    id: web::Path<Uuid>,
    body: Valid<LeaseIn>,
) -> Result<web::Json<ClaimedOut>, ApiError> {
    let (t, agent_id) = agent(&state, &caller, &request).await?;
    Ok(web::Json(
        state
            .store
            .heartbeat(t, agent_id, *id, body.0.lease_token)
            .await?
            .into(),
    ))
}

#[utoipa::path(
    tag = "agent",
    params(("id" = Uuid, Path)),
    request_body = LeaseIn,
    responses(
        (status = 200, description = "The cylinder job is on its programming key", body = JobOnlyOut),
        (status = 409, description = "lease_lost, or not a job being loaded", body = Problem, content_type = "application/problem+json"),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[post("/jobs/{id}/loaded")]
pub async fn loaded(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    id: web::Path<Uuid>,
    body: Valid<LeaseIn>,
) -> Result<web::Json<JobOnlyOut>, ApiError> {
    let (t, agent_id) = agent(&state, &caller, &request).await?;
    Ok(web::Json(
        state
            .store
            .job_loaded(t, agent_id, *id, body.0.lease_token)
            .await?
            .into(),
    ))
}

#[utoipa::path(
    tag = "agent",
    params(("id" = Uuid, Path)),
    request_body = LeaseIn,
    responses(
        (status = 200, description = "Back where it was; the claim does not count as an attempt", body = JobOnlyOut),
        (status = 409, description = "lease_lost", body = Problem, content_type = "application/problem+json"),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[post("/jobs/{id}/release")]
pub async fn release(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    id: web::Path<Uuid>,
    body: Valid<LeaseIn>,
) -> Result<web::Json<JobOnlyOut>, ApiError> {
    let (t, agent_id) = agent(&state, &caller, &request).await?;
    Ok(web::Json(
        state
            .store
            .release_job(t, agent_id, *id, body.0.lease_token)
            .await?
            .into(),
    ))
}

#[utoipa::path(
    tag = "agent",
    params(("id" = Uuid, Path)),
    request_body = EventsIn,
    responses(
        (status = 200, body = UploadOut),
        (status = 409, description = "lease_lost", body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[post("/jobs/{id}/events")]
pub async fn events(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    id: web::Path<Uuid>,
    body: Valid<EventsIn>,
) -> Result<web::Json<UploadOut>, ApiError> {
    let (t, agent_id) = agent(&state, &caller, &request).await?;
    let b = body.into_inner();
    let events = b
        .events
        .into_iter()
        .map(|e| EventRecord {
            seq: e.seq,
            occurred_at: e.occurred_at,
            kind: e.kind,
            key_marking: e.key_marking,
            cylinder_marking: e.cylinder_marking,
            job_id: Some(*id),
        })
        .collect();
    let report = state
        .store
        .upload_events(t, agent_id, *id, b.lease_token, events)
        .await?;
    Ok(web::Json(UploadOut {
        received: report.received,
        stored: report.stored,
    }))
}

#[utoipa::path(
    tag = "agent",
    params(("id" = Uuid, Path)),
    request_body = LeaseIn,
    responses(
        (status = 200, body = JobOnlyOut),
        (status = 409, description = "lease_lost", body = Problem, content_type = "application/problem+json"),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[post("/jobs/{id}/complete")]
pub async fn complete(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    id: web::Path<Uuid>,
    body: Valid<LeaseIn>,
) -> Result<web::Json<JobOnlyOut>, ApiError> {
    let (t, agent_id) = agent(&state, &caller, &request).await?;
    Ok(web::Json(
        state
            .store
            .finish_job(t, agent_id, *id, body.0.lease_token, JobOutcome::Complete)
            .await?
            .into(),
    ))
}

#[utoipa::path(
    tag = "agent",
    params(("id" = Uuid, Path)),
    request_body = FailIn,
    responses(
        (status = 200, description = "Re-queued when retryable and attempts remain; otherwise failed", body = JobOnlyOut),
        (status = 409, description = "lease_lost", body = Problem, content_type = "application/problem+json"),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[post("/jobs/{id}/fail")]
pub async fn fail(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    id: web::Path<Uuid>,
    body: Valid<FailIn>,
) -> Result<web::Json<JobOnlyOut>, ApiError> {
    let (t, agent_id) = agent(&state, &caller, &request).await?;
    let b = body.into_inner();
    let outcome = JobOutcome::Fail {
        reason: b.reason,
        retryable: b.retryable,
    };
    Ok(web::Json(
        state
            .store
            .finish_job(t, agent_id, *id, b.lease_token, outcome)
            .await?
            .into(),
    ))
}
