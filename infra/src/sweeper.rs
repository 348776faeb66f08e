//! The background sweeper: expiry of requests and retention of event data.
//! Safe in every replica at once: each request is taken with `SKIP LOCKED`
//! and checked again under its lock.

use chrono::{DateTime, Utc};
use countersign_domain::Result;
use countersign_domain::history::Actor;
use countersign_domain::notification::Notice;
use countersign_domain::ports::{SweepReport, Sweeper};
use countersign_domain::tenant::TenantId;
use countersign_domain::workflow::{JobEvent, JobStatus, PendingRequest, Request, RequestStatus};
use sea_orm::sea_query::{LockBehavior, LockType};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait};
use serde_json::json;
use uuid::Uuid;

use crate::agent_work::{release_expired_leases, tenants_with_expired_leases};
use crate::change::Change;
use crate::db::DbResult;
use crate::entities::event_log_requests as requests;
use crate::jobs::{latest_jobs, set_job_status};
use crate::requests::{notify_requester, set_request_status, summary_of};
use crate::store::Store;

const BATCH: u64 = 200;

impl Store {
    /// Expires one request if it is still due; `false` when another replica has it
    /// or its readout is under way.
    async fn expire_request(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool> {
        let txn = self.all_tenants.begin().await.db()?;
        let Some(row) = requests::Entity::find_by_id(id)
            .filter(
                requests::Column::Status
                    .is_in([RequestStatus::PendingApproval, RequestStatus::Approved]),
            )
            .filter(requests::Column::ExpiresAt.lte(now))
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .one(&txn)
            .await
            .db()?
        else {
            return Ok(false);
        };
        let mut change = Change::over(txn, TenantId(row.tenant_id), Actor::system(), now);
        if !expire_locked(&mut change, row).await? {
            return Ok(false);
        }
        self.commit(change).await?;
        Ok(true)
    }
}

/// Expires a locked request that is due, and its job, and tells the
/// requester; `false` while its readout is under way.
pub(crate) async fn expire_locked(change: &mut Change, row: requests::Model) -> Result<bool> {
    let status = row.status;
    let job = latest_jobs(&**change, vec![row.id]).await?.pop();
    let job_status = job.as_ref().map(|j| j.status);
    let pending = || PendingRequest {
        requester: crate::requests::requester_of(&row),
        approvals_required: row.approvals_required as u8,
        decisions: vec![],
    };
    let Some(expired) =
        Request::restore(status, pending).expire(job_status.is_some_and(JobStatus::is_busy))
    else {
        return Ok(false);
    };
    if let Some(job) = job.filter(|_| job_status.is_some_and(|s| !s.is_terminal())) {
        let details = json!({"reason": "request expired"});
        set_job_status(change, job, JobEvent::Expire, None, details).await?;
    }
    let request = summary_of(&row)?;
    let reason = Some("expired".to_owned());
    let row = set_request_status(change, row, expired, reason.clone()).await?;
    let notice = Notice::RequestEnded {
        request,
        status: expired,
        reason,
    };
    notify_requester(change, &row, notice).await?;
    Ok(true)
}

#[async_trait::async_trait]
impl Sweeper for Store {
    async fn sweep(&self, now: DateTime<Utc>) -> Result<SweepReport> {
        let due: Vec<Uuid> = requests::Entity::find()
            .select_only()
            .column(requests::Column::Id)
            .filter(
                requests::Column::Status
                    .is_in([RequestStatus::PendingApproval, RequestStatus::Approved]),
            )
            .filter(requests::Column::ExpiresAt.lte(now))
            .order_by_asc(requests::Column::ExpiresAt)
            .limit(BATCH)
            .into_tuple()
            .all(&self.all_tenants)
            .await
            .db()?;
        let mut report = SweepReport::default();
        for tenant in tenants_with_expired_leases(&self.all_tenants, now).await? {
            let txn = self.all_tenants.begin().await.db()?;
            let mut change = Change::over(txn, TenantId(tenant), Actor::system(), now);
            release_expired_leases(&mut change).await?;
            self.commit_if_recorded(change).await?;
        }
        for id in due {
            if self.expire_request(id, now).await? {
                report.requests_expired += 1;
            }
        }
        report.events_deleted = self.delete_expired(now).await?;
        Ok(report)
    }
}
