//! Device agents: their credential and the remote devices they serve.

use std::collections::{BTreeSet, HashMap};

use countersign_domain::directory::Agent;
use countersign_domain::history::{Action, NewEntry, names};
use countersign_domain::page::{Page, PageRequest};
use countersign_domain::permission::Principal;
use countersign_domain::ports::{Agents, WithSecret};
use countersign_domain::tenant::{TenantId, check_name};
use countersign_domain::{Error, ErrorCode, Result};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde_json::json;
use uuid::Uuid;

use crate::db::DbResult;
use crate::entities::{agents, remote_devices};
use crate::revocation::Revocation;
use crate::secrets;
use crate::store::{Store, page_of, scoped};

fn agent_to_domain(m: agents::Model, device_ids: Vec<Uuid>) -> Agent {
    Agent {
        id: m.id,
        name: m.name,
        device_ids,
        last_seen_at: m.last_seen_at,
        version: m.version,
        created_at: m.created_at,
    }
}

/// The ids of the tenant's remote devices served by each of `agents`, in id order.
async fn devices_of(
    conn: &impl ConnectionTrait,
    t: TenantId,
    agents: &[Uuid],
) -> Result<HashMap<Uuid, Vec<Uuid>>> {
    let mut by_agent: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    if agents.is_empty() {
        return Ok(by_agent);
    }
    let rows: Vec<(Uuid, Option<Uuid>)> = remote_devices::Entity::find()
        .select_only()
        .column(remote_devices::Column::Id)
        .column(remote_devices::Column::AgentId)
        .filter(remote_devices::Column::TenantId.eq(t.0))
        .filter(remote_devices::Column::AgentId.is_in(agents.iter().copied()))
        .order_by_asc(remote_devices::Column::Id)
        .into_tuple()
        .all(conn)
        .await
        .db()?;
    for (device, agent) in rows {
        if let Some(agent) = agent {
            by_agent.entry(agent).or_default().push(device);
        }
    }
    Ok(by_agent)
}

/// One agent with its devices.
async fn with_devices(conn: &impl ConnectionTrait, t: TenantId, m: agents::Model) -> Result<Agent> {
    let devices = devices_of(conn, t, &[m.id])
        .await?
        .remove(&m.id)
        .unwrap_or_default();
    Ok(agent_to_domain(m, devices))
}

#[async_trait::async_trait]
impl Agents for Store {
    async fn create_agent(
        &self,
        t: TenantId,
        by: &Principal,
        name: String,
    ) -> Result<WithSecret<Agent>> {
        check_name("name", &name)?;
        let secret = secrets::new_secret("csa");
        let mut change = self.change(t, by).await?;
        let row = agents::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(t.0),
            name: Set(name),
            secret_hash: Set(secrets::digest(&secret)),
            token_generation: Set(0),
            version: Set(None),
            last_seen_at: Set(None),
            created_at: Set(change.now),
        }
        .insert(&*change)
        .await
        .db()?;
        let agent = agent_to_domain(row, Vec::new());
        let details = json!({"name": agent.name});
        change.record(NewEntry::new(
            Action::AgentCreated,
            names::AGENT,
            agent.id,
            details,
        ));
        self.commit(change).await?;
        Ok(WithSecret {
            item: agent,
            secret,
        })
    }

    async fn list_agents(&self, t: TenantId, page: PageRequest) -> Result<Page<Agent>> {
        let txn = self.begin_in(t).await?;
        let page = page_of::<agents::Entity>(&txn, t, page, |m| m.id).await?;
        let ids: Vec<Uuid> = page.items.iter().map(|m| m.id).collect();
        let mut devices = devices_of(&txn, t, &ids).await?;
        txn.commit().await.db()?;
        Ok(page.map(|m| {
            let ids = devices.remove(&m.id).unwrap_or_default();
            agent_to_domain(m, ids)
        }))
    }

    async fn get_agent(&self, t: TenantId, id: Uuid) -> Result<Agent> {
        let txn = self.begin_in(t).await?;
        let agent = with_devices(
            &txn,
            t,
            scoped::<agents::Entity>(&txn, t, id, false, "agent").await?,
        )
        .await?;
        txn.commit().await.db()?;
        Ok(agent)
    }

    async fn rotate_agent_secret(
        &self,
        t: TenantId,
        by: &Principal,
        id: Uuid,
    ) -> Result<WithSecret<Agent>> {
        let mut change = self.change(t, by).await?;
        let row = scoped::<agents::Entity>(&*change, t, id, true, "agent").await?;
        let generation = row.token_generation + 1;
        let secret = secrets::new_secret("csa");
        let mut active: agents::ActiveModel = row.into();
        active.secret_hash = Set(secrets::digest(&secret));
        active.token_generation = Set(generation);
        let row = active.update(&*change).await.db()?;
        let agent = with_devices(&*change, t, row).await?;
        let details = json!({"name": agent.name});
        change.record(NewEntry::new(
            Action::AgentSecretRotated,
            names::AGENT,
            id,
            details,
        ));
        change.revoke([Revocation::credential(id, generation, change.now)]);
        self.commit(change).await?;
        Ok(WithSecret {
            item: agent,
            secret,
        })
    }

    async fn set_agent_devices(
        &self,
        t: TenantId,
        by: &Principal,
        id: Uuid,
        device_ids: Vec<Uuid>,
    ) -> Result<Agent> {
        let wanted: BTreeSet<Uuid> = device_ids.into_iter().collect();
        let mut change = self.change(t, by).await?;
        let row = scoped::<agents::Entity>(&*change, t, id, true, "agent").await?;
        let before = with_devices(&*change, t, row.clone()).await?.device_ids;
        let devices = remote_devices::Column::TenantId.eq(t.0);
        let found = remote_devices::Entity::find()
            .filter(devices.clone())
            .filter(remote_devices::Column::Id.is_in(wanted.iter().copied()))
            .count(&*change)
            .await
            .db()?;
        if found != wanted.len() as u64 {
            return Err(Error::rule(
                ErrorCode::UnknownReference,
                "a listed remote device does not exist",
            ));
        }
        remote_devices::Entity::update_many()
            .col_expr(
                remote_devices::Column::AgentId,
                Expr::value(Option::<Uuid>::None),
            )
            .filter(devices.clone())
            .filter(remote_devices::Column::AgentId.eq(id))
            .filter(remote_devices::Column::Id.is_not_in(wanted.iter().copied()))
            .exec(&*change)
            .await
            .db()?;
        remote_devices::Entity::update_many()
            .col_expr(remote_devices::Column::AgentId, Expr::value(id))
            .filter(devices)
            .filter(remote_devices::Column::Id.is_in(wanted.iter().copied()))
            .exec(&*change)
            .await
            .db()?;
        let after: Vec<Uuid> = wanted.into_iter().collect();
        let details = json!({"old_device_ids": before, "new_device_ids": after});
        change.record(NewEntry::new(
            Action::AgentDevicesAssigned,
            names::AGENT,
            id,
            details,
        ));
        change.wake_agents();
        self.commit(change).await?;
        Ok(agent_to_domain(row, after))
    }
}
