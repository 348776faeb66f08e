//! The background sweeper: expiry of requests and retention of event data.
//! Safe in every replica at once: each request is taken with `SKIP LOCKED`
//! and checked again under its lock.

use chrono::{DateTime, Utc};
use countersign_domain::Result;
use countersign_domain::history::Actor;
use countersign_domain::notification::Notice;
use countersign_domain::ports::{SweepReport, Sweeper};
use countersign_domain::tenant::TenantId;
use countersign_domain::workflow::{
    JobEvent, JobStatus, PendingRequest, Person, Request, RequestStatus,
};
use sea_orm::sea_query::{LockBehavior, LockType};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait};
use serde_json::json;
use uuid::Uuid;

use crate::db::DbResult;
use crate::entities::event_log_requests as requests;
use crate::jobs::{latest_jobs, set_job_status};
use crate::requests::{notify_requester, set_request_status, summary_of, tenant_row};
use crate::store::Store;

const BATCH: u64 = 200;

impl Store {
    /// Expires one request if it is still due; `false` when another replica has it
    /// or its readout is under way.
    async fn expire_request(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool> {
        let txn = self.all_tenants.begin().await.db()?;
        let Some(row) = requests::Entity::find_by_id(id)
            .filter(requests::Column::Status.is_in([
                RequestStatus::PendingApproval.as_str(),
                RequestStatus::Approved.as_str(),
            ]))
            .filter(requests::Column::ExpiresAt.lte(now))
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .one(&txn)
            .await
            .db()?
        else {
            return Ok(false);
        };
        let status = RequestStatus::parse(&row.status).unwrap_or(RequestStatus::Expired);
        let job = latest_jobs(&txn, vec![row.id]).await?.pop();
        let job_status = job.as_ref().and_then(|j| JobStatus::parse(&j.status));
        let pending = || PendingRequest {
            requester: Person {
                credential_id: row.requested_by_id,
                employee_id: None,
            },
            approvals_required: 1,
            decisions: vec![],
        };
        let Some(expired) =
            Request::restore(status, pending).expire(job_status.is_some_and(JobStatus::is_busy))
        else {
            return Ok(false);
        };
        let actor = Actor::system();
        if let Some(job) = job.filter(|_| job_status.is_some_and(|s| !s.is_terminal())) {
            set_job_status(
                &txn,
                &actor,
                job,
                JobEvent::Expire,
                None,
                json!({"reason": "request expired"}),
                now,
            )
            .await?;
        }
        let request = summary_of(&row)?;
        let tenant = tenant_row(&txn, TenantId(row.tenant_id)).await?;
        let row =
            set_request_status(&txn, &actor, row, expired, Some("expired".into()), now).await?;
        let notice = Notice::RequestEnded {
            request,
            status: expired,
            reason: Some("expired".into()),
        };
        notify_requester(&txn, self, &tenant, &row, notice, now).await?;
        txn.commit().await.db()?;
        self.signal.notify(row.tenant_id).await;
        Ok(true)
    }
}

#[async_trait::async_trait]
impl Sweeper for Store {
    async fn sweep(&self, now: DateTime<Utc>) -> Result<SweepReport> {
        let due: Vec<Uuid> = requests::Entity::find()
            .select_only()
            .column(requests::Column::Id)
            .filter(requests::Column::Status.is_in([
                RequestStatus::PendingApproval.as_str(),
                RequestStatus::Approved.as_str(),
            ]))
            .filter(requests::Column::ExpiresAt.lte(now))
            .order_by_asc(requests::Column::ExpiresAt)
            .limit(BATCH)
            .into_tuple()
            .all(&self.all_tenants)
            .await
            .db()?;
        let mut report = SweepReport::default();
        let txn = self.all_tenants.begin().await.db()?;
        let released = crate::agent_work::release_expired_leases(&txn, None, now).await?;
        txn.commit().await.db()?;
        for tenant in released {
            self.signal.notify(tenant).await;
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
