//! `/v1/agents`: on-premise device agents and their credentials (super administrators only).

use actix_web::{HttpResponse, get, post, put, web};
use chrono::{DateTime, Utc};
use countersign_domain::directory::Agent;
use countersign_domain::permission::Action;
use countersign_domain::ports::WithSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use validator::Validate;

use crate::extract::{Caller, Valid};
use crate::pagination::{Page, PageQuery};
use crate::problem::{ApiError, ListProblems, Problem, ResourceProblems};
use crate::state::AppState;

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentIn {
    #[validate(length(min = 1, max = 200))]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u001f\u007f-\u009f \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
}

/// The complete set of remote devices the agent serves; devices it served before
/// and are not listed are released.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentDevicesIn {
    #[validate(length(max = 1000))]
    #[schema(max_items = 1000)]
    pub device_ids: Vec<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentOut {
    pub id: Uuid,
    pub name: String,
    pub device_ids: Vec<Uuid>,
    pub last_seen_at: Option<DateTime<Utc>>,
    /// The version the agent reported at its last poll.
    pub version: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<Agent> for AgentOut {
    fn from(a: Agent) -> Self {
        AgentOut {
            id: a.id,
            name: a.name,
            device_ids: a.device_ids,
            last_seen_at: a.last_seen_at,
            version: a.version,
            created_at: a.created_at,
        }
    }
}

/// The agent with its secret, shown only in this answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentSecretOut {
    pub agent: AgentOut,
    /// Log in with `{grant_type: "agent", agent_id, secret}`; store it, it is not shown again.
    pub secret: String,
}

impl From<WithSecret<Agent>> for AgentSecretOut {
    fn from(w: WithSecret<Agent>) -> Self {
        AgentSecretOut {
            agent: w.item.into(),
            secret: w.secret,
        }
    }
}

#[utoipa::path(
    tag = "agents",
    request_body = AgentIn,
    responses(
        (status = 201, description = "The secret is shown only here", body = AgentSecretOut),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        ListProblems,
    ),
    security(("bearer" = []))
)]
#[post("/agents")]
pub async fn create_agent(
    state: web::Data<AppState>,
    caller: Caller,
    body: Valid<AgentIn>,
) -> Result<HttpResponse, ApiError> {
    let t = caller.principal.tenant_for(Action::ManageAgents)?;
    let created = state
        .store
        .create_agent(t, &caller.principal, body.into_inner().name)
        .await?;
    Ok(HttpResponse::Created().json(AgentSecretOut::from(created)))
}

#[utoipa::path(
    tag = "agents",
    params(PageQuery),
    responses(
        (status = 200, body = Page<AgentOut>),
        ListProblems,
    ),
    security(("bearer" = []))
)]
#[get("/agents")]
pub async fn list_agents(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<AgentOut>>, ApiError> {
    let t = caller.principal.tenant_for(Action::ManageAgents)?;
    let page = state.store.list_agents(t, query.request()?).await?;
    Ok(web::Json(Page::from(page, AgentOut::from)))
}

#[utoipa::path(
    tag = "agents",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = AgentOut),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[get("/agents/{id}")]
pub async fn get_agent(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<web::Json<AgentOut>, ApiError> {
    let t = caller.principal.tenant_for(Action::ManageAgents)?;
    Ok(web::Json(state.store.get_agent(t, *id).await?.into()))
}

#[utoipa::path(
    tag = "agents",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "A new secret, shown only here; the old one and every token of the agent end", body = AgentSecretOut),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[post("/agents/{id}/rotate-secret")]
pub async fn rotate_agent_secret(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<web::Json<AgentSecretOut>, ApiError> {
    let t = caller.principal.tenant_for(Action::ManageAgents)?;
    Ok(web::Json(
        state
            .store
            .rotate_agent_secret(t, &caller.principal, *id)
            .await?
            .into(),
    ))
}

#[utoipa::path(
    tag = "agents",
    params(("id" = Uuid, Path)),
    request_body = AgentDevicesIn,
    responses(
        (status = 200, body = AgentOut),
        (status = 422, description = "Unknown remote device", body = Problem, content_type = "application/problem+json"),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[put("/agents/{id}/devices")]
pub async fn set_agent_devices(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: Valid<AgentDevicesIn>,
) -> Result<web::Json<AgentOut>, ApiError> {
    let t = caller.principal.tenant_for(Action::ManageAgents)?;
    let devices = body.into_inner().device_ids;
    Ok(web::Json(
        state
            .store
            .set_agent_devices(t, &caller.principal, *id, devices)
            .await?
            .into(),
    ))
}
