//! Key groups, cylinders and remote devices.

use chrono::{DateTime, Utc};
use countersign_domain::Result;
use countersign_domain::directory::{Cylinder, KeyGroup, RemoteDevice, check_marking};
use countersign_domain::history::{Action, NewEntry, names};
use countersign_domain::page::{Page, PageRequest};
use countersign_domain::permission::Principal;
use countersign_domain::ports::{CylinderChange, Inventory, NewCylinder, NewRemoteDevice};
use countersign_domain::tenant::{TenantId, check_name};
use sea_orm::{ActiveModelTrait, Set};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::db::DbResult;
use crate::entities::{cylinders, key_groups, remote_devices};
use crate::history::changes;
use crate::store::{Store, page_of, scoped};

/// Converts a page of rows, failing on the first row that does not convert.
pub(crate) fn convert_page<M, T>(page: Page<M>, f: impl Fn(M) -> Result<T>) -> Result<Page<T>> {
    let items = page.items.into_iter().map(f).collect::<Result<_>>()?;
    Ok(Page {
        items,
        next_cursor: page.next_cursor,
    })
}

fn key_group_to_domain(m: key_groups::Model) -> KeyGroup {
    KeyGroup {
        id: m.id,
        marking: m.marking,
        name: m.name,
        created_at: m.created_at,
    }
}

fn cylinder_to_domain(m: cylinders::Model) -> Cylinder {
    Cylinder {
        id: m.id,
        marking: m.marking,
        name: m.name,
        location: m.location,
        created_at: m.created_at,
    }
}

pub(crate) fn device_to_domain(m: remote_devices::Model) -> Result<RemoteDevice> {
    Ok(RemoteDevice {
        id: m.id,
        name: m.name,
        kind: m.kind,
        serial: m.serial,
        agent_id: m.agent_id,
        created_at: m.created_at,
    })
}

pub(crate) fn check_new_key_group(marking: &str, name: &str) -> Result<()> {
    check_marking(marking)?;
    check_name("name", name)
}

fn check_location(location: Option<&str>) -> Result<()> {
    location.map_or(Ok(()), |l| check_name("location", l))
}

pub(crate) fn check_cylinder(new: &NewCylinder) -> Result<()> {
    check_marking(&new.marking)?;
    check_name("name", &new.name)?;
    check_location(new.location.as_deref())
}

pub(crate) fn check_device(new: &NewRemoteDevice) -> Result<()> {
    check_marking(&new.serial)?;
    check_name("name", &new.name)
}

pub(crate) fn key_group_row(
    t: TenantId,
    marking: String,
    name: String,
    now: DateTime<Utc>,
) -> key_groups::ActiveModel {
    key_groups::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(t.0),
        marking: Set(marking),
        name: Set(name),
        created_at: Set(now),
    }
}

pub(crate) fn cylinder_row(
    t: TenantId,
    new: NewCylinder,
    now: DateTime<Utc>,
) -> cylinders::ActiveModel {
    cylinders::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(t.0),
        marking: Set(new.marking),
        name: Set(new.name),
        location: Set(new.location),
        created_at: Set(now),
    }
}

pub(crate) fn device_row(
    t: TenantId,
    new: NewRemoteDevice,
    now: DateTime<Utc>,
) -> remote_devices::ActiveModel {
    remote_devices::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(t.0),
        name: Set(new.name),
        kind: Set(new.kind),
        serial: Set(new.serial),
        agent_id: Set(None),
        created_at: Set(now),
    }
}

/// The history entry of a created or changed inventory item.
pub(crate) fn entry(action: Action, subject: &'static str, id: Uuid, details: Value) -> NewEntry {
    NewEntry::new(action, subject, id, details)
}

pub(crate) fn key_group_created(g: &KeyGroup) -> NewEntry {
    let details = json!({"marking": g.marking, "name": g.name});
    entry(Action::KeyGroupCreated, names::KEY_GROUP, g.id, details)
}

pub(crate) fn cylinder_created(c: &Cylinder) -> NewEntry {
    let details = json!({"marking": c.marking, "name": c.name, "location": c.location});
    entry(Action::CylinderCreated, names::CYLINDER, c.id, details)
}

pub(crate) fn device_created(d: &RemoteDevice) -> NewEntry {
    let details = json!({"name": d.name, "kind": d.kind.as_str(), "serial": d.serial});
    entry(
        Action::RemoteDeviceCreated,
        names::REMOTE_DEVICE,
        d.id,
        details,
    )
}

/// `{"changes": …}` between the name (and location) before and after.
fn renamed(before: Value, after: Value) -> Value {
    json!({"changes": changes(&before, &after)})
}

#[async_trait::async_trait]
impl Inventory for Store {
    async fn create_key_group(
        &self,
        t: TenantId,
        by: &Principal,
        marking: String,
        name: String,
    ) -> Result<KeyGroup> {
        check_new_key_group(&marking, &name)?;
        let mut change = self.change(t, by).await?;
        let row = key_group_row(t, marking, name, change.now)
            .insert(&*change)
            .await
            .db()?;
        let group = key_group_to_domain(row);
        change.record(key_group_created(&group));
        self.commit(change).await?;
        Ok(group)
    }

    async fn list_key_groups(&self, t: TenantId, page: PageRequest) -> Result<Page<KeyGroup>> {
        let txn = self.begin_in(t).await?;
        let rows = page_of::<key_groups::Entity>(&txn, t, page, |m| m.id).await?;
        txn.commit().await.db()?;
        Ok(rows.map(key_group_to_domain))
    }

    async fn get_key_group(&self, t: TenantId, id: Uuid) -> Result<KeyGroup> {
        let txn = self.begin_in(t).await?;
        let row = scoped::<key_groups::Entity>(&txn, t, id, false, "key group").await?;
        txn.commit().await.db()?;
        Ok(key_group_to_domain(row))
    }

    async fn rename_key_group(
        &self,
        t: TenantId,
        by: &Principal,
        id: Uuid,
        name: String,
    ) -> Result<KeyGroup> {
        check_name("name", &name)?;
        let mut change = self.change(t, by).await?;
        let before = scoped::<key_groups::Entity>(&*change, t, id, true, "key group").await?;
        let old = json!({"name": before.name});
        let mut row: key_groups::ActiveModel = before.into();
        row.name = Set(name);
        let group = key_group_to_domain(row.update(&*change).await.db()?);
        let details = renamed(old, json!({"name": group.name}));
        change.record(entry(
            Action::KeyGroupRenamed,
            names::KEY_GROUP,
            id,
            details,
        ));
        self.commit(change).await?;
        Ok(group)
    }

    async fn create_cylinder(
        &self,
        t: TenantId,
        by: &Principal,
        new: NewCylinder,
    ) -> Result<Cylinder> {
        check_cylinder(&new)?;
        let mut change = self.change(t, by).await?;
        let row = cylinder_row(t, new, change.now)
            .insert(&*change)
            .await
            .db()?;
        let cylinder = cylinder_to_domain(row);
        change.record(cylinder_created(&cylinder));
        self.commit(change).await?;
        Ok(cylinder)
    }

    async fn list_cylinders(&self, t: TenantId, page: PageRequest) -> Result<Page<Cylinder>> {
        let txn = self.begin_in(t).await?;
        let rows = page_of::<cylinders::Entity>(&txn, t, page, |m| m.id).await?;
        txn.commit().await.db()?;
        Ok(rows.map(cylinder_to_domain))
    }

    async fn get_cylinder(&self, t: TenantId, id: Uuid) -> Result<Cylinder> {
        let txn = self.begin_in(t).await?;
        let row = scoped::<cylinders::Entity>(&txn, t, id, false, "cylinder").await?;
        txn.commit().await.db()?;
        Ok(cylinder_to_domain(row))
    }

    async fn update_cylinder(
        &self,
        t: TenantId,
        by: &Principal,
        id: Uuid,
        update: CylinderChange,
    ) -> Result<Cylinder> {
        if let Some(name) = &update.name {
            check_name("name", name)?;
        }
        if let Some(location) = &update.location {
            check_location(location.as_deref())?;
        }
        let mut change = self.change(t, by).await?;
        let before = scoped::<cylinders::Entity>(&*change, t, id, true, "cylinder").await?;
        let old = json!({"name": before.name, "location": before.location});
        let mut row: cylinders::ActiveModel = before.into();
        if let Some(name) = update.name {
            row.name = Set(name);
        }
        if let Some(location) = update.location {
            row.location = Set(location);
        }
        let cylinder = cylinder_to_domain(row.update(&*change).await.db()?);
        let details = renamed(
            old,
            json!({"name": cylinder.name, "location": cylinder.location}),
        );
        change.record(entry(Action::CylinderUpdated, names::CYLINDER, id, details));
        self.commit(change).await?;
        Ok(cylinder)
    }

    async fn create_remote_device(
        &self,
        t: TenantId,
        by: &Principal,
        new: NewRemoteDevice,
    ) -> Result<RemoteDevice> {
        check_device(&new)?;
        let mut change = self.change(t, by).await?;
        let row = device_row(t, new, change.now).insert(&*change).await.db()?;
        let device = device_to_domain(row)?;
        change.record(device_created(&device));
        self.commit(change).await?;
        Ok(device)
    }

    async fn list_remote_devices(
        &self,
        t: TenantId,
        page: PageRequest,
    ) -> Result<Page<RemoteDevice>> {
        let txn = self.begin_in(t).await?;
        let rows = page_of::<remote_devices::Entity>(&txn, t, page, |m| m.id).await?;
        txn.commit().await.db()?;
        convert_page(rows, device_to_domain)
    }

    async fn get_remote_device(&self, t: TenantId, id: Uuid) -> Result<RemoteDevice> {
        let txn = self.begin_in(t).await?;
        let row = scoped::<remote_devices::Entity>(&txn, t, id, false, "remote device").await?;
        txn.commit().await.db()?;
        device_to_domain(row)
    }

    async fn rename_remote_device(
        &self,
        t: TenantId,
        by: &Principal,
        id: Uuid,
        name: String,
    ) -> Result<RemoteDevice> {
        check_name("name", &name)?;
        let mut change = self.change(t, by).await?;
        let before =
            scoped::<remote_devices::Entity>(&*change, t, id, true, "remote device").await?;
        let old = json!({"name": before.name});
        let mut row: remote_devices::ActiveModel = before.into();
        row.name = Set(name);
        let device = device_to_domain(row.update(&*change).await.db()?)?;
        let details = renamed(old, json!({"name": device.name}));
        change.record(entry(
            Action::RemoteDeviceRenamed,
            names::REMOTE_DEVICE,
            id,
            details,
        ));
        // Its agent's work list names it.
        change.wake_agents();
        self.commit(change).await?;
        Ok(device)
    }
}
