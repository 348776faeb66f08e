//! Webservice credentials: created with their secret shown once, deleted to end them.

use countersign_domain::directory::ApiKey;
use countersign_domain::history::{Action, NewEntry, names};
use countersign_domain::page::{Page, PageRequest};
use countersign_domain::permission::Principal;
use countersign_domain::ports::{ApiKeys, WithSecret};
use countersign_domain::role::RoleSet;
use countersign_domain::tenant::{TenantId, check_name};
use countersign_domain::{Error, Result};
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use serde_json::json;
use uuid::Uuid;

use crate::db::DbResult;
use crate::entities::api_keys;
use crate::inventory::convert_page;
use crate::revocation::Revocation;
use crate::secrets;
use crate::store::{Store, page_of, scoped};

/// How many leading characters of the secret are kept to recognise it.
const PREFIX_LEN: usize = 12;

fn api_key_to_domain(m: api_keys::Model) -> Result<ApiKey> {
    let roles: RoleSet = serde_json::from_value(m.roles)
        .map_err(|e| Error::Internal(anyhow::anyhow!("api key {} has invalid roles: {e}", m.id)))?;
    Ok(ApiKey {
        id: m.id,
        name: m.name,
        roles,
        prefix: m.prefix,
        created_by_programming_key_id: m.created_by_programming_key_id,
        created_by_employee_id: m.created_by_employee_id,
        created_at: m.created_at,
    })
}

#[async_trait::async_trait]
impl ApiKeys for Store {
    async fn create_api_key(
        &self,
        t: TenantId,
        by: &Principal,
        name: String,
        roles: RoleSet,
    ) -> Result<WithSecret<ApiKey>> {
        check_name("name", &name)?;
        let roles = RoleSet::for_webservice(roles.iter())?;
        let secret = secrets::new_secret("csk");
        let mut change = self.change(t, by).await?;
        let now = change.now;
        let creator = crate::requests::person_of(&*change, by).await?;
        let row = api_keys::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(t.0),
            name: Set(name),
            prefix: Set(secret.chars().take(PREFIX_LEN).collect()),
            key_hash: Set(secrets::digest(&secret)),
            roles: Set(serde_json::to_value(&roles).map_err(anyhow::Error::from)?),
            token_generation: Set(0),
            created_by_programming_key_id: Set(creator.programming_key_id),
            created_by_employee_id: Set(creator.employee_id),
            created_at: Set(now),
        }
        .insert(&*change)
        .await
        .db()?;
        let item = api_key_to_domain(row)?;
        let details = json!({
            "name": item.name,
            "roles": item.roles,
            "prefix": item.prefix,
            "created_by_programming_key_id": item.created_by_programming_key_id,
            "created_by_employee_id": item.created_by_employee_id,
        });
        change.record(NewEntry::new(
            Action::ApiKeyCreated,
            names::API_KEY,
            item.id,
            details,
        ));
        self.commit(change).await?;
        Ok(WithSecret { item, secret })
    }

    async fn list_api_keys(&self, t: TenantId, page: PageRequest) -> Result<Page<ApiKey>> {
        let txn = self.begin_in(t).await?;
        let rows = page_of::<api_keys::Entity>(&txn, t, page, |m| m.id).await?;
        txn.commit().await.db()?;
        convert_page(rows, api_key_to_domain)
    }

    async fn get_api_key(&self, t: TenantId, id: Uuid) -> Result<ApiKey> {
        let txn = self.begin_in(t).await?;
        let row = scoped::<api_keys::Entity>(&txn, t, id, false, "api key").await?;
        txn.commit().await.db()?;
        api_key_to_domain(row)
    }

    async fn delete_api_key(&self, t: TenantId, by: &Principal, id: Uuid) -> Result<()> {
        let mut change = self.change(t, by).await?;
        let row = scoped::<api_keys::Entity>(&*change, t, id, true, "api key").await?;
        api_keys::Entity::delete_by_id(row.id)
            .exec(&*change)
            .await
            .db()?;
        let details = json!({"name": row.name, "roles": row.roles, "prefix": row.prefix});
        change.record(NewEntry::new(
            Action::ApiKeyDeleted,
            names::API_KEY,
            id,
            details,
        ));
        let generation = row.token_generation + 1;
        change.revoke([Revocation::credential(id, generation, change.now)]);
        self.commit(change).await
    }
}
