//! The agent side of readout jobs (SPEC §6, device agent rows): work lists with
//! long polling, reactions to inserted keys and connected programming keys,
//! leases, event uploads and the end of a job.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use countersign_domain::directory::{DeviceKind, KeyStatus};
use countersign_domain::history::{Action, Actor, NewEntry, names};
use countersign_domain::notification::Notice;
use countersign_domain::ports::{
    AgentWork, Claimed, Connected, DeskWork, EventRecord, JobOutcome, JobView, KeyWork, LEASE_SECS,
    Lease, ProgrammingKeyWork, UploadReport, WorkList,
};
use countersign_domain::tenant::TenantId;
use countersign_domain::workflow::{
    ApprovedRequest, ClaimRoute, JobEvent, JobKind, JobStatus, RequestStatus, TargetType,
    check_claim,
};
use countersign_domain::{Error, ErrorCode, Result};
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::change::Change;
use crate::db::DbResult;
use crate::entities::{
    agents, event_log_requests as requests, keys, programming_keys, readout_jobs as jobs,
    remote_devices,
};
use crate::events::insert_events;
use crate::inventory::device_to_domain;
use crate::jobs::{NewJob, insert_job, job_view, set_job_status};
use crate::requests::{notify_requester, set_request_status, summary_of};
use crate::signal::{Cached, TenantWork};
use crate::store::{Store, scoped, tenant_change_transaction};

fn lease_lost() -> Error {
    Error::rule(
        ErrorCode::LeaseLost,
        "the lease is no longer valid; the job may have been given to another attempt",
    )
}

fn unavailable(detail: &str) -> Error {
    Error::rule(ErrorCode::JobUnavailable, detail.to_owned())
}

async fn agent_actor(conn: &impl ConnectionTrait, agent: Uuid) -> Result<Actor> {
    let name = agents::Entity::find_by_id(agent)
        .one(conn)
        .await
        .db()?
        .map(|a| a.name)
        .unwrap_or_default();
    Ok(Actor {
        kind: "agent".into(),
        id: Some(agent),
        name,
        programming_key_id: None,
    })
}

async fn devices_of(
    conn: &impl ConnectionTrait,
    t: TenantId,
    agent: Uuid,
) -> Result<Vec<remote_devices::Model>> {
    remote_devices::Entity::find()
        .filter(remote_devices::Column::TenantId.eq(t.0))
        .filter(remote_devices::Column::AgentId.eq(agent))
        .order_by_asc(remote_devices::Column::Id)
        .all(conn)
        .await
        .db()
}

/// A device of this agent; anything else is as missing as it would be elsewhere.
async fn own_device(
    conn: &impl ConnectionTrait,
    t: TenantId,
    agent: Uuid,
    device_id: Uuid,
) -> Result<remote_devices::Model> {
    let device =
        scoped::<remote_devices::Entity>(conn, t, device_id, false, "remote device").await?;
    if device.agent_id != Some(agent) {
        return Err(Error::not_found("remote device"));
    }
    Ok(device)
}

fn lease_of(job: &jobs::Model) -> Result<Lease> {
    match (job.lease_token, job.lease_expires_at) {
        (Some(token), Some(expires_at)) => Ok(Lease { token, expires_at }),
        _ => Err(Error::Internal(anyhow::anyhow!(
            "job {} is running without a lease",
            job.id
        ))),
    }
}

fn claimed(job: &jobs::Model) -> Result<Claimed> {
    Ok(Claimed {
        job: job_view(job)?,
        lease: lease_of(job)?,
    })
}

/// Takes a lease on a job through `route` at `device`, as the domain allows.
async fn claim_row(
    change: &mut Change,
    job: jobs::Model,
    device: &remote_devices::Model,
    route: ClaimRoute,
) -> Result<jobs::Model> {
    let kind = job.kind;
    let target = job.target_type;
    let device_kind = device.kind;
    check_claim(kind, target, job.device_id, route, device.id, device_kind)?;
    let (now, device_id) = (change.now, device.id);
    let from = job.status;
    from.next(JobEvent::Claim, None)
        .map_err(|_| unavailable("the job is not waiting for an agent"))?;
    let (id, attempts) = (job.id, job.attempts + 1);
    let expires_at = now + chrono::Duration::seconds(LEASE_SECS);
    let mut active: jobs::ActiveModel = job.into();
    active.status = Set(JobStatus::Running);
    active.resume_status = Set(Some(from));
    active.lease_token = Set(Some(Uuid::new_v4()));
    active.lease_expires_at = Set(Some(expires_at));
    active.device_id = Set(Some(device_id));
    active.attempts = Set(attempts);
    active.updated_at = Set(now);
    let row = active.update(&**change).await.db()?;
    let details = json!({"from": from.as_str(), "to": "running", "device_id": device_id, "attempt": attempts});
    change.record(NewEntry::new(Action::JobClaimed, names::JOB, id, details));
    change.wake_agents();
    Ok(row)
}

/// The key is reported inserted again at the device already reading it (the
/// agent restarted, or the key was put back): the reading goes on under a new
/// lease, and the old token is refused from now on.
async fn take_over(change: &mut Change, job: jobs::Model) -> Result<jobs::Model> {
    let (id, now) = (job.id, change.now);
    let mut active: jobs::ActiveModel = job.into();
    active.lease_token = Set(Some(Uuid::new_v4()));
    active.lease_expires_at = Set(Some(now + chrono::Duration::seconds(LEASE_SECS)));
    active.updated_at = Set(now);
    let row = active.update(&**change).await.db()?;
    let details =
        json!({"reason": "key inserted again at the same device", "device_id": row.device_id});
    change.record(NewEntry::new(
        Action::JobLeaseTakenOver,
        names::JOB,
        id,
        details,
    ));
    Ok(row)
}

/// Jobs of the tenant matching `filter`, locked; taken ones are skipped on PostgreSQL.
async fn lock_jobs(
    conn: &impl ConnectionTrait,
    t: TenantId,
    filter: sea_orm::Condition,
) -> Result<Vec<jobs::Model>> {
    jobs::Entity::find()
        .filter(jobs::Column::TenantId.eq(t.0))
        .filter(filter)
        .order_by_asc(jobs::Column::Id)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .all(conn)
        .await
        .db()
}

/// The running job behind a lease token, locked; a stale token is `lease_lost`.
async fn leased(
    conn: &impl ConnectionTrait,
    t: TenantId,
    agent: Uuid,
    job_id: Uuid,
    token: Uuid,
    now: DateTime<Utc>,
) -> Result<jobs::Model> {
    let job = scoped::<jobs::Entity>(conn, t, job_id, true, "readout job").await?;
    let devices = devices_of(conn, t, agent).await?;
    if !job
        .device_id
        .is_some_and(|d| devices.iter().any(|own| own.id == d))
    {
        return Err(Error::not_found("readout job"));
    }
    let valid = job.status == JobStatus::Running
        && job.lease_token == Some(token)
        && job.lease_expires_at.is_some_and(|until| until > now);
    if valid { Ok(job) } else { Err(lease_lost()) }
}

/// Puts the change's tenant's running jobs whose lease ran out back where
/// they were, in Countersign's name whoever's call noticed it.
pub(crate) async fn release_expired_leases(change: &mut Change) -> Result<usize> {
    let expired = jobs::Entity::find()
        .filter(jobs::Column::TenantId.eq(change.tenant.0))
        .filter(jobs::Column::Status.eq(JobStatus::Running))
        .filter(jobs::Column::LeaseExpiresAt.lte(change.now))
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .all(&**change)
        .await
        .db()?;
    let count = expired.len();
    let caller = std::mem::replace(&mut change.actor, Actor::system());
    let mut released = Ok(());
    for job in expired {
        let details = json!({"reason": "lease expired"});
        released = set_job_status(change, job, JobEvent::Release, None, details)
            .await
            .map(|_| ());
        if released.is_err() {
            break;
        }
    }
    change.actor = caller;
    released.map(|()| count)
}

/// The tenants that have running jobs whose lease ran out.
pub(crate) async fn tenants_with_expired_leases(
    conn: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>> {
    jobs::Entity::find()
        .select_only()
        .column(jobs::Column::TenantId)
        .distinct()
        .filter(jobs::Column::Status.eq(JobStatus::Running))
        .filter(jobs::Column::LeaseExpiresAt.lte(now))
        .into_tuple()
        .all(conn)
        .await
        .db()
}

fn version_of(list: &WorkList) -> String {
    let fingerprint = format!(
        "{:?}|{:?}|{:?}|{:?}",
        list.devices, list.keys, list.programming_keys, list.desk_readouts
    );
    hex::encode(&Sha256::digest(fingerprint.as_bytes())[..12])
}

/// Whether the tenant has the approver function: fixed at provisioning, so
/// read once per process.
async fn approval_required(
    conn: &impl ConnectionTrait,
    t: TenantId,
    work: &TenantWork,
) -> Result<bool> {
    if let Some(known) = work.approval_required.get() {
        return Ok(*known);
    }
    let required = crate::tenants::row(conn, t).await?.approval_required;
    let _ = work.approval_required.set(required);
    Ok(required)
}

impl Store {
    async fn work_list(&self, t: TenantId, agent: Uuid, work: &TenantWork) -> Result<WorkList> {
        let txn = self.begin_in(t).await?;
        let db = &txn;
        let devices = devices_of(db, t, agent).await?;
        let has_remote_unit = devices.iter().any(|d| d.kind == DeviceKind::RemoteUnit);
        let device_ids: Vec<Uuid> = devices.iter().map(|d| d.id).collect();
        let open = jobs::Entity::find()
            .filter(jobs::Column::TenantId.eq(t.0))
            .filter(jobs::Column::Status.is_in([
                JobStatus::Queued,
                JobStatus::Transferred,
                JobStatus::Loaded,
            ]))
            .order_by_asc(jobs::Column::Id)
            .all(db)
            .await
            .db()?;
        let mut keys_to_read: Vec<KeyWork> = Vec::new();
        let mut desk_readouts = Vec::new();
        let mut per_key: std::collections::BTreeMap<Uuid, (Vec<Uuid>, Vec<Uuid>)> =
            Default::default();
        for job in &open {
            match (job.kind, job.status) {
                (JobKind::DeskReadout, _) => {
                    if let Some(device) = job.device_id.filter(|d| device_ids.contains(d)) {
                        desk_readouts.push(DeskWork {
                            job_id: job.id,
                            device_id: device,
                            key_marking: job.target_marking.clone(),
                        });
                    }
                }
                (reason, JobStatus::Queued) if has_remote_unit => {
                    keys_to_read.push(KeyWork {
                        key_marking: job.target_marking.clone(),
                        reason,
                    });
                }
                (_, status @ (JobStatus::Transferred | JobStatus::Loaded))
                    if !devices.is_empty() =>
                {
                    if let Some(key) = job.programming_key_id {
                        let entry = per_key.entry(key).or_default();
                        if status == JobStatus::Transferred {
                            entry.0.push(job.id)
                        } else {
                            entry.1.push(job.id)
                        }
                    }
                }
                _ => {}
            }
        }
        if has_remote_unit && !approval_required(db, t, work).await? {
            let collecting = keys::Entity::find()
                .filter(keys::Column::TenantId.eq(t.0))
                .filter(keys::Column::AutoCollection.eq(true))
                .filter(keys::Column::Status.eq(KeyStatus::Issued))
                .order_by_asc(keys::Column::Marking)
                .all(db)
                .await
                .db()?;
            keys_to_read.extend(collecting.into_iter().map(|k| KeyWork {
                key_marking: k.marking,
                reason: JobKind::AutoCollection,
            }));
        }
        keys_to_read.sort_by(|a, b| a.key_marking.cmp(&b.key_marking));
        keys_to_read.dedup_by(|a, b| a.key_marking == b.key_marking);
        let markings = if per_key.is_empty() {
            Vec::new()
        } else {
            programming_keys::Entity::find()
                .filter(programming_keys::Column::TenantId.eq(t.0))
                .filter(
                    programming_keys::Column::Id.is_in(per_key.keys().copied().collect::<Vec<_>>()),
                )
                .all(db)
                .await
                .db()?
        };
        txn.commit().await.db()?;
        let mut programming_keys: Vec<ProgrammingKeyWork> = per_key
            .into_iter()
            .filter_map(|(id, (load, collect))| {
                let marking = markings.iter().find(|k| k.id == id)?.marking.clone();
                Some(ProgrammingKeyWork {
                    programming_key_marking: marking,
                    load,
                    collect,
                })
            })
            .collect();
        programming_keys.sort_by(|a, b| a.programming_key_marking.cmp(&b.programming_key_marking));
        let mut list = WorkList {
            version: String::new(),
            devices: devices
                .into_iter()
                .map(device_to_domain)
                .collect::<Result<_>>()?,
            keys: keys_to_read,
            programming_keys,
            desk_readouts,
        };
        list.version = version_of(&list);
        Ok(list)
    }

    /// The agent's work list, shared by its waiters: computed once per change
    /// of the tenant's work while wake-ups are reliable (or when the kept list
    /// is older than `LIST_KEPT`), and on every look otherwise.
    async fn current_work_list(
        &self,
        t: TenantId,
        agent: Uuid,
        work: &TenantWork,
        reliable: bool,
    ) -> Result<Arc<WorkList>> {
        let stamp = self.signal.stamp(work);
        let slot = work.list_of(agent);
        let mut cached = slot.lock().await;
        if let Some(c) = cached.as_ref()
            && reliable
            && c.stamp >= stamp
            && c.at.elapsed() < crate::signal::LIST_KEPT
        {
            return Ok(c.list.clone());
        }
        let at = Instant::now();
        let list = Arc::new(self.work_list(t, agent, work).await?);
        *cached = Some(Cached {
            stamp,
            at,
            list: list.clone(),
        });
        Ok(list)
    }

    /// Opens a change of tenant `t` in agent `agent`'s name.
    async fn agent_change(&self, t: TenantId, agent: Uuid) -> Result<Change> {
        let txn = tenant_change_transaction(&self.db, t).await?;
        let actor = agent_actor(&txn, agent).await?;
        Ok(Change::over(txn, t, actor, self.clock.now()))
    }

    /// Opens an agent's change holding the running job behind the lease
    /// token, locked; a stale token is `lease_lost`.
    async fn leased_change(
        &self,
        t: TenantId,
        agent: Uuid,
        job_id: Uuid,
        token: Uuid,
    ) -> Result<(Change, jobs::Model)> {
        let change = self.agent_change(t, agent).await?;
        let job = leased(&*change, t, agent, job_id, token, change.now).await?;
        Ok((change, job))
    }
}

/// Ends the request behind a job that completed or failed for good; its
/// requester is told of a failure.
async fn end_request(
    change: &mut Change,
    job: &jobs::Model,
    succeeded: bool,
    reason: Option<String>,
) -> Result<()> {
    let Some(request_id) = job.request_id else {
        return Ok(());
    };
    let t = change.tenant;
    let row =
        scoped::<requests::Entity>(&**change, t, request_id, true, "event-log request").await?;
    if row.status != RequestStatus::Approved {
        return Ok(());
    }
    let status = ApprovedRequest.finish(succeeded);
    let request = summary_of(&row)?;
    let row = set_request_status(change, row, status, reason.clone()).await?;
    if !succeeded {
        let notice = Notice::RequestEnded {
            request,
            status,
            reason,
        };
        notify_requester(change, &row, notice).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl AgentWork for Store {
    async fn agent_seen(&self, t: TenantId, agent: Uuid, version: Option<String>) -> Result<()> {
        let now = self.clock.now();
        let version = version.filter(|v| !v.is_empty() && v.len() <= 64);
        if !self.signal.seen_due(agent, now, version.as_deref()) {
            return Ok(());
        }
        let mut update = agents::Entity::update_many()
            .col_expr(agents::Column::LastSeenAt, Expr::value(now))
            .filter(agents::Column::TenantId.eq(t.0))
            .filter(agents::Column::Id.eq(agent));
        if let Some(version) = version.clone() {
            update = update.col_expr(agents::Column::Version, Expr::value(version));
        }
        let txn = self.begin_in(t).await?;
        update.exec(&txn).await.db()?;
        txn.commit().await.db()?;
        self.signal.seen_written(agent, now, version);
        Ok(())
    }

    async fn poll_work(
        &self,
        t: TenantId,
        agent: Uuid,
        since: Option<String>,
        wait: Duration,
    ) -> Result<WorkList> {
        let deadline = tokio::time::Instant::now() + crate::signal::held_for(wait);
        let work = self.signal.tenant(t.0);
        loop {
            let woken = work.changed();
            tokio::pin!(woken);
            woken.as_mut().enable();
            // Read after the wake-up is armed: a change from now on wakes this waiter.
            let reliable = self.signal.reliable();
            let list = Box::pin(self.current_work_list(t, agent, &work, reliable)).await?;
            let now = tokio::time::Instant::now();
            if since.as_deref() != Some(list.version.as_str()) || now >= deadline {
                return Ok(Arc::unwrap_or_clone(list));
            }
            drop(list);
            let pause = if reliable {
                deadline - now
            } else {
                (deadline - now).min(crate::signal::RECHECK)
            };
            let _ = tokio::time::timeout(pause, woken).await;
        }
    }

    async fn key_inserted(
        &self,
        t: TenantId,
        agent: Uuid,
        device_id: Uuid,
        key_marking: &str,
    ) -> Result<Option<Claimed>> {
        let mut change = self.agent_change(t, agent).await?;
        let device = own_device(&*change, t, agent, device_id).await?;
        if device.kind != DeviceKind::RemoteUnit {
            return Ok(None);
        }
        release_expired_leases(&mut change).await?;
        let Some(key) = keys::Entity::find()
            .filter(keys::Column::TenantId.eq(t.0))
            .filter(keys::Column::Marking.eq(key_marking))
            .one(&*change)
            .await
            .db()?
        else {
            self.commit_if_recorded(change).await?;
            return Ok(None);
        };
        let reading_here = lock_jobs(
            &*change,
            t,
            sea_orm::Condition::all()
                .add(jobs::Column::TargetType.eq(TargetType::Key))
                .add(jobs::Column::TargetId.eq(key.id))
                .add(jobs::Column::DeviceId.eq(device_id))
                .add(jobs::Column::Status.eq(JobStatus::Running)),
        )
        .await?;
        if let Some(job) = reading_here.into_iter().next() {
            let job = take_over(&mut change, job).await?;
            self.commit(change).await?;
            return Ok(Some(claimed(&job)?));
        }
        let queued = lock_jobs(
            &*change,
            t,
            sea_orm::Condition::all()
                .add(jobs::Column::TargetType.eq(TargetType::Key))
                .add(jobs::Column::TargetId.eq(key.id))
                .add(jobs::Column::Kind.is_in([JobKind::RequestReadout, JobKind::AutoCollection]))
                .add(jobs::Column::Status.eq(JobStatus::Queued)),
        )
        .await?;
        let job = match queued.into_iter().next() {
            Some(job) => job,
            None => {
                let tenant = crate::tenants::row(&*change, t).await?;
                let collecting = !tenant.approval_required
                    && key.auto_collection
                    && key.status == KeyStatus::Issued;
                if !collecting {
                    self.commit_if_recorded(change).await?;
                    return Ok(None);
                }
                let new = NewJob {
                    kind: JobKind::AutoCollection,
                    request_id: None,
                    target_type: TargetType::Key,
                    target_id: key.id,
                    target_marking: &key.marking,
                    status: JobStatus::Queued,
                    device_id: Some(device_id),
                };
                insert_job(&mut change, new).await?
            }
        };
        let job = claim_row(&mut change, job, &device, ClaimRoute::KeyInsertion).await?;
        self.commit(change).await?;
        Ok(Some(claimed(&job)?))
    }

    async fn programming_key_connected(
        &self,
        t: TenantId,
        agent: Uuid,
        device_id: Uuid,
        marking: &str,
    ) -> Result<Connected> {
        let mut change = self.agent_change(t, agent).await?;
        let device = own_device(&*change, t, agent, device_id).await?;
        release_expired_leases(&mut change).await?;
        let Some(key) = programming_keys::Entity::find()
            .filter(programming_keys::Column::TenantId.eq(t.0))
            .filter(programming_keys::Column::Marking.eq(marking))
            .one(&*change)
            .await
            .db()?
        else {
            self.commit_if_recorded(change).await?;
            return Ok(Connected {
                load: vec![],
                collect: vec![],
            });
        };
        let jobs = lock_jobs(
            &*change,
            t,
            sea_orm::Condition::all()
                .add(jobs::Column::ProgrammingKeyId.eq(key.id))
                .add(jobs::Column::Status.is_in([JobStatus::Transferred, JobStatus::Loaded])),
        )
        .await?;
        let mut connected = Connected {
            load: vec![],
            collect: vec![],
        };
        for job in jobs {
            let loading = job.status == JobStatus::Transferred;
            let route = ClaimRoute::ProgrammingKeyConnection;
            let job = claimed(&claim_row(&mut change, job, &device, route).await?)?;
            if loading {
                connected.load.push(job)
            } else {
                connected.collect.push(job)
            }
        }
        self.commit_if_recorded(change).await?;
        Ok(connected)
    }

    async fn claim_job(
        &self,
        t: TenantId,
        agent: Uuid,
        job_id: Uuid,
        device_id: Uuid,
    ) -> Result<Claimed> {
        let mut change = self.agent_change(t, agent).await?;
        let device = own_device(&*change, t, agent, device_id).await?;
        release_expired_leases(&mut change).await?;
        let Some(job) = lock_jobs(
            &*change,
            t,
            sea_orm::Condition::all().add(jobs::Column::Id.eq(job_id)),
        )
        .await?
        .into_iter()
        .next() else {
            // Skipped while another claim holds it; a job not of this tenant is missing.
            scoped::<jobs::Entity>(&*change, t, job_id, false, "readout job").await?;
            return Err(unavailable("the job is taken"));
        };
        if job.device_id.is_some_and(|d| d != device_id) {
            return Err(unavailable("the job belongs to another device"));
        }
        let job = claim_row(&mut change, job, &device, ClaimRoute::ById).await?;
        self.commit(change).await?;
        claimed(&job)
    }

    async fn heartbeat(
        &self,
        t: TenantId,
        agent: Uuid,
        job_id: Uuid,
        token: Uuid,
    ) -> Result<Claimed> {
        // Renewing a lease is bookkeeping, not a change of the job's state.
        let now = self.clock.now();
        let txn = self.begin_in(t).await?;
        let job = leased(&txn, t, agent, job_id, token, now).await?;
        let mut active: jobs::ActiveModel = job.into();
        active.lease_expires_at = Set(Some(now + chrono::Duration::seconds(LEASE_SECS)));
        active.updated_at = Set(now);
        let job = active.update(&txn).await.db()?;
        txn.commit().await.db()?;
        claimed(&job)
    }

    async fn job_loaded(
        &self,
        t: TenantId,
        agent: Uuid,
        job_id: Uuid,
        token: Uuid,
    ) -> Result<JobView> {
        let (mut change, job) = self.leased_change(t, agent, job_id, token).await?;
        let job = set_job_status(&mut change, job, JobEvent::Load, None, json!({})).await?;
        self.commit(change).await?;
        job_view(&job)
    }

    async fn release_job(
        &self,
        t: TenantId,
        agent: Uuid,
        job_id: Uuid,
        token: Uuid,
    ) -> Result<JobView> {
        let (mut change, job) = self.leased_change(t, agent, job_id, token).await?;
        let attempts = (job.attempts - 1).max(0);
        let details = json!({"reason": "handed back unused"});
        let job = set_job_status(&mut change, job, JobEvent::Release, None, details).await?;
        let mut active: jobs::ActiveModel = job.into();
        active.attempts = Set(attempts);
        let job = active.update(&*change).await.db()?;
        self.commit(change).await?;
        job_view(&job)
    }

    async fn upload_events(
        &self,
        t: TenantId,
        agent: Uuid,
        job_id: Uuid,
        token: Uuid,
        events: Vec<EventRecord>,
    ) -> Result<UploadReport> {
        let (mut change, job) = self.leased_change(t, agent, job_id, token).await?;
        let source = job.target_type;
        let received = events.len() as u64;
        let stored =
            insert_events(&mut change, source, job.target_id, Some(job.id), events).await?;
        self.commit(change).await?;
        Ok(UploadReport { received, stored })
    }

    async fn finish_job(
        &self,
        t: TenantId,
        agent: Uuid,
        job_id: Uuid,
        token: Uuid,
        outcome: JobOutcome,
    ) -> Result<JobView> {
        let (mut change, job) = self.leased_change(t, agent, job_id, token).await?;
        let job = match outcome {
            JobOutcome::Complete => {
                let job =
                    set_job_status(&mut change, job, JobEvent::Complete, None, json!({})).await?;
                end_request(&mut change, &job, true, None).await?;
                job
            }
            JobOutcome::Fail { reason, retryable } => {
                let retry = retryable && job.attempts < self.job_max_attempts;
                let mut active: jobs::ActiveModel = job.clone().into();
                active.last_error = Set(Some(reason.clone()));
                let job = active.update(&*change).await.db()?;
                let details =
                    json!({"reason": reason, "retryable": retryable, "attempts": job.attempts});
                if retry {
                    set_job_status(&mut change, job, JobEvent::Release, None, details).await?
                } else {
                    let event = JobEvent::FailForGood;
                    let job = set_job_status(&mut change, job, event, None, details).await?;
                    end_request(&mut change, &job, false, Some(reason)).await?;
                    job
                }
            }
        };
        self.commit(change).await?;
        job_view(&job)
    }
}
