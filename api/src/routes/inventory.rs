//! `/v1/key-groups`, `/v1/cylinders`, `/v1/remote-devices`: the rest of the inventory.

use actix_web::{HttpResponse, get, patch, post, web};
use chrono::{DateTime, Utc};
use countersign_domain::directory::{Cylinder, DeviceKind, KeyGroup, RemoteDevice};
use countersign_domain::permission::Action;
use countersign_domain::ports::{CylinderChange, NewCylinder, NewRemoteDevice};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use validator::Validate;

use crate::extract::{Caller, Valid, nullable};
use crate::pagination::{Page, PageQuery};
use crate::problem::{ApiError, ListProblems, Problem, ResourceProblems};
use crate::state::AppState;

/// A new key group. Also one item of an extension import.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyGroupIn {
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
}

/// Only the name of a key group or remote device changes.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameIn {
    #[validate(length(min = 1, max = 200))]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u001f\u007f-\u009f \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyGroupOut {
    pub id: Uuid,
    pub marking: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl From<KeyGroup> for KeyGroupOut {
    fn from(g: KeyGroup) -> Self {
        KeyGroupOut {
            id: g.id,
            marking: g.marking,
            name: g.name,
            created_at: g.created_at,
        }
    }
}

/// A new cylinder. Also one item of an extension import.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CylinderIn {
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
    #[validate(length(min = 1, max = 200))]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u001f\u007f-\u009f \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub location: Option<String>,
}

impl From<CylinderIn> for NewCylinder {
    fn from(c: CylinderIn) -> Self {
        NewCylinder {
            marking: c.marking,
            name: c.name,
            location: c.location,
        }
    }
}

/// `location: null` removes the location.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CylinderPatch {
    #[validate(length(min = 1, max = 200))]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u001f\u007f-\u009f \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u001f\u007f-\u009f \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$")]
    pub location: Option<Option<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CylinderOut {
    pub id: Uuid,
    pub marking: String,
    pub name: String,
    pub location: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<Cylinder> for CylinderOut {
    fn from(c: Cylinder) -> Self {
        CylinderOut {
            id: c.id,
            marking: c.marking,
            name: c.name,
            location: c.location,
            created_at: c.created_at,
        }
    }
}

/// A new remote device, not yet served by an agent. Also one item of an extension import.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoteDeviceIn {
    #[validate(length(min = 1, max = 200))]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u001f\u007f-\u009f \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    pub kind: DeviceKind,
    /// The device's serial number, unique in the tenant.
    #[validate(length(min = 1, max = 64))]
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000](?:[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u001f\u007f-\u009f \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    pub serial: String,
}

impl From<RemoteDeviceIn> for NewRemoteDevice {
    fn from(d: RemoteDeviceIn) -> Self {
        NewRemoteDevice {
            name: d.name,
            kind: d.kind,
            serial: d.serial,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RemoteDeviceOut {
    pub id: Uuid,
    pub name: String,
    pub kind: DeviceKind,
    pub serial: String,
    /// The agent serving the device (`PUT /v1/agents/{id}/devices`).
    pub agent_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl From<RemoteDevice> for RemoteDeviceOut {
    fn from(d: RemoteDevice) -> Self {
        RemoteDeviceOut {
            id: d.id,
            name: d.name,
            kind: d.kind,
            serial: d.serial,
            agent_id: d.agent_id,
            created_at: d.created_at,
        }
    }
}

// ---- key groups ----

#[utoipa::path(
    tag = "key-groups",
    request_body = KeyGroupIn,
    responses(
        (status = 201, body = KeyGroupOut),
        (status = 409, description = "Marking taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        ListProblems,
    ),
    security(("bearer" = []))
)]
#[post("/key-groups")]
pub async fn create_key_group(
    state: web::Data<AppState>,
    caller: Caller,
    body: Valid<KeyGroupIn>,
) -> Result<HttpResponse, ApiError> {
    let t = caller.principal.tenant_for(Action::ManageInventory)?;
    let b = body.into_inner();
    let group = state
        .store
        .create_key_group(t, &caller.principal, b.marking, b.name)
        .await?;
    Ok(HttpResponse::Created().json(KeyGroupOut::from(group)))
}

#[utoipa::path(
    tag = "key-groups",
    params(PageQuery),
    responses(
        (status = 200, body = Page<KeyGroupOut>),
        ListProblems,
    ),
    security(("bearer" = []))
)]
#[get("/key-groups")]
pub async fn list_key_groups(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<KeyGroupOut>>, ApiError> {
    let t = caller.principal.tenant_for(Action::ReadInventory)?;
    let page = state.store.list_key_groups(t, query.request()?).await?;
    Ok(web::Json(Page::from(page, KeyGroupOut::from)))
}

#[utoipa::path(
    tag = "key-groups",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = KeyGroupOut),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[get("/key-groups/{id}")]
pub async fn get_key_group(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<web::Json<KeyGroupOut>, ApiError> {
    let t = caller.principal.tenant_for(Action::ReadInventory)?;
    Ok(web::Json(state.store.get_key_group(t, *id).await?.into()))
}

#[utoipa::path(
    tag = "key-groups",
    params(("id" = Uuid, Path)),
    request_body = RenameIn,
    responses(
        (status = 200, body = KeyGroupOut),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[patch("/key-groups/{id}")]
pub async fn update_key_group(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: Valid<RenameIn>,
) -> Result<web::Json<KeyGroupOut>, ApiError> {
    let t = caller.principal.tenant_for(Action::ManageInventory)?;
    let group = match body.into_inner().name {
        Some(name) => {
            state
                .store
                .rename_key_group(t, &caller.principal, *id, name)
                .await?
        }
        None => state.store.get_key_group(t, *id).await?,
    };
    Ok(web::Json(group.into()))
}

// ---- cylinders ----

#[utoipa::path(
    tag = "cylinders",
    request_body = CylinderIn,
    responses(
        (status = 201, body = CylinderOut),
        (status = 409, description = "Marking taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        ListProblems,
    ),
    security(("bearer" = []))
)]
#[post("/cylinders")]
pub async fn create_cylinder(
    state: web::Data<AppState>,
    caller: Caller,
    body: Valid<CylinderIn>,
) -> Result<HttpResponse, ApiError> {
    let t = caller.principal.tenant_for(Action::ManageInventory)?;
    let cylinder = state
        .store
        .create_cylinder(t, &caller.principal, body.into_inner().into())
        .await?;
    Ok(HttpResponse::Created().json(CylinderOut::from(cylinder)))
}

#[utoipa::path(
    tag = "cylinders",
    params(PageQuery),
    responses(
        (status = 200, body = Page<CylinderOut>),
        ListProblems,
    ),
    security(("bearer" = []))
)]
#[get("/cylinders")]
pub async fn list_cylinders(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<CylinderOut>>, ApiError> {
    let t = caller.principal.tenant_for(Action::ReadInventory)?;
    let page = state.store.list_cylinders(t, query.request()?).await?;
    Ok(web::Json(Page::from(page, CylinderOut::from)))
}

#[utoipa::path(
    tag = "cylinders",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = CylinderOut),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[get("/cylinders/{id}")]
pub async fn get_cylinder(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<web::Json<CylinderOut>, ApiError> {
    let t = caller.principal.tenant_for(Action::ReadInventory)?;
    Ok(web::Json(state.store.get_cylinder(t, *id).await?.into()))
}

#[utoipa::path(
    tag = "cylinders",
    params(("id" = Uuid, Path)),
    request_body = CylinderPatch,
    responses(
        (status = 200, body = CylinderOut),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[patch("/cylinders/{id}")]
pub async fn update_cylinder(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: Valid<CylinderPatch>,
) -> Result<web::Json<CylinderOut>, ApiError> {
    let t = caller.principal.tenant_for(Action::ManageInventory)?;
    let b = body.into_inner();
    let change = CylinderChange {
        name: b.name,
        location: b.location,
    };
    Ok(web::Json(
        state
            .store
            .update_cylinder(t, &caller.principal, *id, change)
            .await?
            .into(),
    ))
}

// ---- remote devices ----

#[utoipa::path(
    tag = "remote-devices",
    request_body = RemoteDeviceIn,
    responses(
        (status = 201, body = RemoteDeviceOut),
        (status = 409, description = "Serial taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        ListProblems,
    ),
    security(("bearer" = []))
)]
#[post("/remote-devices")]
pub async fn create_remote_device(
    state: web::Data<AppState>,
    caller: Caller,
    body: Valid<RemoteDeviceIn>,
) -> Result<HttpResponse, ApiError> {
    let t = caller.principal.tenant_for(Action::ManageInventory)?;
    let device = state
        .store
        .create_remote_device(t, &caller.principal, body.into_inner().into())
        .await?;
    Ok(HttpResponse::Created().json(RemoteDeviceOut::from(device)))
}

#[utoipa::path(
    tag = "remote-devices",
    params(PageQuery),
    responses(
        (status = 200, body = Page<RemoteDeviceOut>),
        ListProblems,
    ),
    security(("bearer" = []))
)]
#[get("/remote-devices")]
pub async fn list_remote_devices(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<RemoteDeviceOut>>, ApiError> {
    let t = caller.principal.tenant_for(Action::ReadInventory)?;
    let page = state.store.list_remote_devices(t, query.request()?).await?;
    Ok(web::Json(Page::from(page, RemoteDeviceOut::from)))
}

#[utoipa::path(
    tag = "remote-devices",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = RemoteDeviceOut),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[get("/remote-devices/{id}")]
pub async fn get_remote_device(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<web::Json<RemoteDeviceOut>, ApiError> {
    let t = caller.principal.tenant_for(Action::ReadInventory)?;
    Ok(web::Json(
        state.store.get_remote_device(t, *id).await?.into(),
    ))
}

#[utoipa::path(
    tag = "remote-devices",
    params(("id" = Uuid, Path)),
    request_body = RenameIn,
    responses(
        (status = 200, body = RemoteDeviceOut),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[patch("/remote-devices/{id}")]
pub async fn update_remote_device(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: Valid<RenameIn>,
) -> Result<web::Json<RemoteDeviceOut>, ApiError> {
    let t = caller.principal.tenant_for(Action::ManageInventory)?;
    let device = match body.into_inner().name {
        Some(name) => {
            state
                .store
                .rename_remote_device(t, &caller.principal, *id, name)
                .await?
        }
        None => state.store.get_remote_device(t, *id).await?,
    };
    Ok(web::Json(device.into()))
}
