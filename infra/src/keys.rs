//! User keys: creation, changes and the issue / return / stop-collection commands.

use chrono::{DateTime, Utc};
use countersign_domain::directory::{Employee, Key, KeyStatus, check_marking};
use countersign_domain::history::{Action, NewEntry, names};
use countersign_domain::page::{Page, PageRequest};
use countersign_domain::permission::Principal;
use countersign_domain::ports::{KeyChange, KeyCommand, Keys, NewKey};
use countersign_domain::tenant::{TenantId, check_name};
use countersign_domain::{Error, ErrorCode, Result};
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, Set};
use serde_json::json;
use uuid::Uuid;

use crate::db::DbResult;
use crate::entities::{employees, key_groups, keys};
use crate::history::changes;
use crate::inventory::convert_page;
use crate::store::{Store, page_of, scoped};

pub(crate) fn key_to_domain(m: keys::Model) -> Result<Key> {
    Ok(Key {
        model: m.model,
        status: m.status,
        id: m.id,
        marking: m.marking,
        name: m.name,
        employee_id: m.employee_id,
        key_group_id: m.key_group_id,
        auto_collection: m.auto_collection,
        created_at: m.created_at,
    })
}

pub(crate) fn check_new_key(new: &NewKey) -> Result<()> {
    check_marking(&new.marking)?;
    check_name("name", &new.name)
}

/// A new key in stock, as a row to insert.
pub(crate) fn new_key_row(t: TenantId, new: NewKey, now: DateTime<Utc>) -> keys::ActiveModel {
    keys::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(t.0),
        marking: Set(new.marking),
        name: Set(new.name),
        model: Set(new.model),
        status: Set(KeyStatus::InStock),
        employee_id: Set(None),
        key_group_id: Set(new.key_group_id),
        auto_collection: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

/// A tenant-owned row the body refers to: missing is 422, not 404.
pub(crate) async fn referenced<E: EntityTrait>(
    conn: &impl ConnectionTrait,
    t: TenantId,
    id: Uuid,
    what: &str,
) -> Result<E::Model> {
    scoped::<E>(conn, t, id, false, what)
        .await
        .map_err(|e| match e.code() {
            ErrorCode::NotFound => Error::rule(
                ErrorCode::UnknownReference,
                format!("{what} {id} does not exist"),
            ),
            _ => e,
        })
}

pub(crate) async fn key_group_exists(
    conn: &impl ConnectionTrait,
    t: TenantId,
    id: Option<Uuid>,
) -> Result<()> {
    if let Some(id) = id {
        referenced::<key_groups::Entity>(conn, t, id, "key group").await?;
    }
    Ok(())
}

fn entry(action: Action, key: &Key, details: serde_json::Value) -> NewEntry {
    NewEntry::new(action, names::KEY, key.id, details)
}

#[async_trait::async_trait]
impl Keys for Store {
    async fn create_key(&self, t: TenantId, by: &Principal, new: NewKey) -> Result<Key> {
        check_new_key(&new)?;
        let mut change = self.change(t, by).await?;
        key_group_exists(&*change, t, new.key_group_id).await?;
        let row = new_key_row(t, new, change.now)
            .insert(&*change)
            .await
            .db()?;
        let key = key_to_domain(row)?;
        let details = json!({
            "marking": key.marking,
            "name": key.name,
            "model": key.model.as_str(),
            "key_group_id": key.key_group_id,
        });
        change.record(entry(Action::KeyCreated, &key, details));
        self.commit(change).await?;
        Ok(key)
    }

    async fn list_keys(&self, t: TenantId, page: PageRequest) -> Result<Page<Key>> {
        let txn = self.begin_in(t).await?;
        let rows = page_of::<keys::Entity>(&txn, t, page, |m| m.id).await?;
        txn.commit().await.db()?;
        convert_page(rows, key_to_domain)
    }

    async fn get_key(&self, t: TenantId, id: Uuid) -> Result<Key> {
        let txn = self.begin_in(t).await?;
        let row = scoped::<keys::Entity>(&txn, t, id, false, "key").await?;
        txn.commit().await.db()?;
        key_to_domain(row)
    }

    async fn update_key(
        &self,
        t: TenantId,
        by: &Principal,
        id: Uuid,
        update: KeyChange,
    ) -> Result<Key> {
        if let Some(name) = &update.name {
            check_name("name", name)?;
        }
        let mut change = self.change(t, by).await?;
        let before = scoped::<keys::Entity>(&*change, t, id, true, "key").await?;
        if let Some(group) = update.key_group_id {
            key_group_exists(&*change, t, group).await?;
        }
        let old = json!({"name": before.name, "key_group_id": before.key_group_id});
        let mut row: keys::ActiveModel = before.into();
        if let Some(name) = update.name {
            row.name = Set(name);
        }
        if let Some(group) = update.key_group_id {
            row.key_group_id = Set(group);
        }
        row.updated_at = Set(change.now);
        let key = key_to_domain(row.update(&*change).await.db()?)?;
        let changed = changes(
            &old,
            &json!({"name": key.name, "key_group_id": key.key_group_id}),
        );
        change.record(entry(Action::KeyUpdated, &key, json!({"changes": changed})));
        self.commit(change).await?;
        Ok(key)
    }

    async fn command_key(
        &self,
        t: TenantId,
        by: &Principal,
        id: Uuid,
        command: KeyCommand,
    ) -> Result<Key> {
        let mut change = self.change(t, by).await?;
        let row = scoped::<keys::Entity>(&*change, t, id, true, "key").await?;
        let tenant = crate::tenants::row(&*change, t).await?;
        let mut key = key_to_domain(row.clone())?;
        let (action, mut details) = match command {
            KeyCommand::Issue { employee_id } => {
                let e =
                    referenced::<employees::Entity>(&*change, t, employee_id, "employee").await?;
                let details = json!({"employee_id": e.id, "employee_name": e.name});
                let holder = Employee {
                    id: e.id,
                    name: e.name,
                    email: e.email,
                    created_at: e.created_at,
                };
                key.issue(&holder, tenant.approval_required)?;
                (Action::KeyIssued, details)
            }
            KeyCommand::Return => {
                let details = json!({"employee_id": key.employee_id});
                key.give_back()?;
                (Action::KeyReturned, details)
            }
            KeyCommand::StopAutoCollection => {
                key.stop_auto_collection(tenant.approval_required)?;
                (Action::KeyAutoCollectionStopped, json!({}))
            }
        };
        if key.auto_collection != row.auto_collection {
            details["auto_collection"] =
                json!({"old": row.auto_collection, "new": key.auto_collection});
        }
        let mut active: keys::ActiveModel = row.into();
        active.status = Set(key.status);
        active.employee_id = Set(key.employee_id);
        active.auto_collection = Set(key.auto_collection);
        active.updated_at = Set(change.now);
        active.update(&*change).await.db()?;
        change.record(entry(action, &key, details));
        if command == KeyCommand::Return {
            crate::requests::on_key_returned(&mut change, key.id).await?;
        }
        change.wake_agents();
        self.commit(change).await?;
        Ok(key)
    }
}
