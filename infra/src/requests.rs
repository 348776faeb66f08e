//! Event-log requests, decisions and their readout jobs.

use countersign_domain::page::{Page, PageRequest};
use countersign_domain::permission::Principal;
use countersign_domain::ports::{JobFilter, JobView, Jobs, RequestFilter, RequestView, Requests};
use countersign_domain::tenant::TenantId;
use countersign_domain::workflow::{TargetType, Verdict};
use countersign_domain::{Error, Result};
use uuid::Uuid;

use crate::store::Store;

fn unbuilt() -> Error {
    Error::Internal(anyhow::anyhow!("not built yet"))
}

#[async_trait::async_trait]
impl Requests for Store {
    async fn create_request(&self, _t: TenantId, _by: &Principal, _target_type: TargetType, _target_id: Uuid, _comment: Option<String>) -> Result<RequestView> {
        Err(unbuilt())
    }
    async fn list_requests(&self, _t: TenantId, _filter: RequestFilter, _page: PageRequest) -> Result<Page<RequestView>> {
        Err(unbuilt())
    }
    async fn get_request(&self, _t: TenantId, _id: Uuid) -> Result<RequestView> {
        Err(unbuilt())
    }
    async fn decide(&self, _t: TenantId, _by: &Principal, _id: Uuid, _verdict: Verdict, _comment: Option<String>) -> Result<RequestView> {
        Err(unbuilt())
    }
    async fn cancel_request(&self, _t: TenantId, _by: &Principal, _id: Uuid, _reason: Option<String>) -> Result<RequestView> {
        Err(unbuilt())
    }
    async fn transfer_request(&self, _t: TenantId, _by: &Principal, _id: Uuid, _programming_key_id: Uuid) -> Result<RequestView> {
        Err(unbuilt())
    }
}

#[async_trait::async_trait]
impl Jobs for Store {
    async fn list_jobs(&self, _t: TenantId, _filter: JobFilter, _page: PageRequest) -> Result<Page<JobView>> {
        Err(unbuilt())
    }
    async fn get_job(&self, _t: TenantId, _id: Uuid, _programming_key_id: Option<Uuid>) -> Result<JobView> {
        Err(unbuilt())
    }
    async fn desk_readout(&self, _t: TenantId, _by: &Principal, _key_id: Uuid, _device_id: Uuid) -> Result<JobView> {
        Err(unbuilt())
    }
}
