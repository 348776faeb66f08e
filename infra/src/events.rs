//! Event data of keys and cylinders: storage, reads and exports.

use countersign_domain::permission::Principal;
use countersign_domain::ports::{EventData, EventExport, EventQuery, EventRecord};
use countersign_domain::tenant::{Tenant, TenantId};
use countersign_domain::workflow::TargetType;
use countersign_domain::{Error, Result};
use uuid::Uuid;

use crate::store::Store;

#[async_trait::async_trait]
impl EventData for Store {
    async fn store_events(&self, _t: TenantId, _source: TargetType, _source_id: Uuid, _job_id: Option<Uuid>, _events: Vec<EventRecord>) -> Result<u64> {
        Err(Error::Internal(anyhow::anyhow!("event storage is not built yet")))
    }

    async fn read_events(&self, _t: TenantId, _by: &Principal, _source: TargetType, _source_id: Uuid, _query: EventQuery) -> Result<(Tenant, Vec<EventRecord>, Option<i64>)> {
        Err(Error::Internal(anyhow::anyhow!("event reads are not built yet")))
    }

    async fn export_events(&self, _t: TenantId, _by: &Principal, _source: TargetType, _source_id: Uuid, _query: EventQuery, _format: &str) -> Result<EventExport> {
        Err(Error::Internal(anyhow::anyhow!("event exports are not built yet")))
    }
}
