//! Readout jobs on the administrators' side: creation, transitions, listing and desk readouts.

use countersign_domain::directory::DeviceKind;
use countersign_domain::history::{Action, NewEntry, names};
use countersign_domain::page::{Page, PageRequest};
use countersign_domain::permission::Principal;
use countersign_domain::ports::{JobFilter, JobView, Jobs};
use countersign_domain::tenant::TenantId;
use countersign_domain::workflow::{JobEvent, JobKind, JobStatus, TargetType};
use countersign_domain::{Error, ErrorCode, Result};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde_json::json;
use uuid::Uuid;

use crate::change::Change;
use crate::db::DbResult;
use crate::entities::{keys, readout_jobs as jobs, remote_devices};
use crate::keys::referenced;
use crate::store::{Store, scoped};

pub(crate) fn job_view(j: &jobs::Model) -> Result<JobView> {
    Ok(JobView {
        id: j.id,
        kind: j.kind,
        request_id: j.request_id,
        target_type: j.target_type,
        target_id: j.target_id,
        target_marking: j.target_marking.clone(),
        status: j.status,
        device_id: j.device_id,
        programming_key_id: j.programming_key_id,
        attempts: j.attempts,
        lease_expires_at: j.lease_expires_at,
        created_at: j.created_at,
        updated_at: j.updated_at,
    })
}

/// The newest job of each request.
pub(crate) async fn latest_jobs(
    conn: &impl ConnectionTrait,
    request_ids: Vec<Uuid>,
) -> Result<Vec<jobs::Model>> {
    newest_per_request(
        jobs::Entity::find().filter(jobs::Column::RequestId.is_in(request_ids)),
        conn,
    )
    .await
}

/// The newest job of each of a tenant's requests.
pub(crate) async fn latest_jobs_of(
    conn: &impl ConnectionTrait,
    t: TenantId,
    request_ids: Vec<Uuid>,
) -> Result<Vec<jobs::Model>> {
    newest_per_request(
        jobs::Entity::find()
            .filter(jobs::Column::TenantId.eq(t.0))
            .filter(jobs::Column::RequestId.is_in(request_ids)),
        conn,
    )
    .await
}

async fn newest_per_request(
    query: sea_orm::Select<jobs::Entity>,
    conn: &impl ConnectionTrait,
) -> Result<Vec<jobs::Model>> {
    let mut rows = query.order_by_desc(jobs::Column::Id).all(conn).await.db()?;
    let mut seen = std::collections::HashSet::new();
    rows.retain(|j| seen.insert(j.request_id));
    Ok(rows)
}

/// A job to create.
pub(crate) struct NewJob<'a> {
    pub(crate) kind: JobKind,
    pub(crate) request_id: Option<Uuid>,
    pub(crate) target_type: TargetType,
    pub(crate) target_id: Uuid,
    pub(crate) target_marking: &'a str,
    pub(crate) status: JobStatus,
    pub(crate) device_id: Option<Uuid>,
}

pub(crate) async fn insert_job(change: &mut Change, new: NewJob<'_>) -> Result<jobs::Model> {
    let now = change.now;
    let row = jobs::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(change.tenant.0),
        kind: Set(new.kind),
        request_id: Set(new.request_id),
        target_type: Set(new.target_type),
        target_id: Set(new.target_id),
        target_marking: Set(new.target_marking.to_owned()),
        status: Set(new.status),
        device_id: Set(new.device_id),
        programming_key_id: Set(None),
        attempts: Set(0),
        lease_token: Set(None),
        lease_expires_at: Set(None),
        resume_status: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&**change)
    .await
    .db()?;
    let details = json!({
        "kind": new.kind.as_str(), "request_id": new.request_id, "status": new.status.as_str(),
        "target": {"type": new.target_type.as_str(), "id": new.target_id, "marking": new.target_marking},
        "device_id": new.device_id,
    });
    change.record(NewEntry::new(
        Action::JobCreated,
        names::JOB,
        row.id,
        details,
    ));
    change.wake_agents();
    Ok(row)
}

/// Moves a job through the domain's transition function and records it.
/// `programming_key`: `Some(value)` replaces the job's programming key.
pub(crate) async fn set_job_status(
    change: &mut Change,
    job: jobs::Model,
    event: JobEvent,
    programming_key: Option<Option<Uuid>>,
    mut details: serde_json::Value,
) -> Result<jobs::Model> {
    let from = job.status;
    let resume = job.resume_status;
    let to = from.next(event, resume)?;
    let id = job.id;
    let mut active: jobs::ActiveModel = job.into();
    active.status = Set(to);
    active.updated_at = Set(change.now);
    if let Some(key) = programming_key {
        active.programming_key_id = Set(key);
    }
    if to != JobStatus::Running {
        active.lease_token = Set(None);
        active.lease_expires_at = Set(None);
        active.resume_status = Set(None);
    }
    let row = active.update(&**change).await.db()?;
    if let Some(map) = details.as_object_mut() {
        map.insert("from".into(), json!(from.as_str()));
        map.insert("to".into(), json!(to.as_str()));
    }
    change.record(NewEntry::new(
        Action::JobStatusChanged,
        names::JOB,
        id,
        details,
    ));
    change.wake_agents();
    Ok(row)
}

#[async_trait::async_trait]
impl Jobs for Store {
    async fn list_jobs(
        &self,
        t: TenantId,
        filter: JobFilter,
        page: PageRequest,
    ) -> Result<Page<JobView>> {
        let mut query = jobs::Entity::find().filter(jobs::Column::TenantId.eq(t.0));
        if let Some(status) = filter.status {
            query = query.filter(jobs::Column::Status.eq(status.as_str()));
        }
        if let Some(kind) = filter.kind {
            query = query.filter(jobs::Column::Kind.eq(kind.as_str()));
        }
        if let Some(key) = filter.programming_key_id {
            query = query.filter(jobs::Column::ProgrammingKeyId.eq(key));
        }
        if let Some(after) = page.after {
            query = query.filter(jobs::Column::Id.gt(after));
        }
        let txn = self.begin_in(t).await?;
        let rows = query
            .order_by_asc(jobs::Column::Id)
            .limit(page.fetch())
            .all(&txn)
            .await
            .db()?;
        txn.commit().await.db()?;
        let rows = Page::from_rows(rows, &page, |j| j.id);
        Ok(Page {
            items: rows.items.iter().map(job_view).collect::<Result<_>>()?,
            next_cursor: rows.next_cursor,
        })
    }

    async fn get_job(
        &self,
        t: TenantId,
        id: Uuid,
        programming_key_id: Option<Uuid>,
    ) -> Result<JobView> {
        let txn = self.begin_in(t).await?;
        let job = scoped::<jobs::Entity>(&txn, t, id, false, "readout job").await?;
        txn.commit().await.db()?;
        if programming_key_id.is_some_and(|key| job.programming_key_id != Some(key)) {
            return Err(Error::not_found("readout job"));
        }
        job_view(&job)
    }

    async fn desk_readout(
        &self,
        t: TenantId,
        by: &Principal,
        key_id: Uuid,
        device_id: Uuid,
    ) -> Result<JobView> {
        let mut change = self.change(t, by).await?;
        let key = crate::keys::key_to_domain(
            scoped::<keys::Entity>(&*change, t, key_id, false, "key").await?,
        )?;
        if !key.model.keeps_event_log() {
            return Err(Error::rule(
                ErrorCode::NoEventLog,
                "a basic key keeps no event log",
            ));
        }
        let device =
            referenced::<remote_devices::Entity>(&*change, t, device_id, "remote device").await?;
        if device.kind != DeviceKind::DeskUnit {
            return Err(Error::rule(
                ErrorCode::ValidationFailed,
                "a desk readout needs a desk_unit",
            ));
        }
        let new = NewJob {
            kind: JobKind::DeskReadout,
            request_id: None,
            target_type: TargetType::Key,
            target_id: key.id,
            target_marking: &key.marking,
            status: JobStatus::Queued,
            device_id: Some(device.id),
        };
        let job = insert_job(&mut change, new).await?;
        self.commit(change).await?;
        job_view(&job)
    }
}

/// A programming key was returned or blocked: cylinder jobs transferred to it
/// but not yet loaded go back to `awaiting_transfer`.
pub(crate) async fn on_programming_key_withdrawn(change: &mut Change, key_id: Uuid) -> Result<()> {
    let held = jobs::Entity::find()
        .filter(jobs::Column::TenantId.eq(change.tenant.0))
        .filter(jobs::Column::ProgrammingKeyId.eq(key_id))
        .filter(jobs::Column::Status.eq(JobStatus::Transferred))
        .lock_exclusive()
        .all(&**change)
        .await
        .db()?;
    for job in held {
        let details = json!({"reason": "programming key withdrawn"});
        set_job_status(change, job, JobEvent::Untransfer, Some(None), details).await?;
    }
    Ok(())
}
