//! The extension import: inventory in bulk, in one transaction, idempotent by marking.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use countersign_domain::directory::KeyStatus;
use countersign_domain::ports::{ImportBatch, ImportOutcome, ImportReport, Imports};
use countersign_domain::tenant::TenantId;
use countersign_domain::{Error, Result};
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use crate::db::DbResult;
use crate::entities::{cylinders, key_groups, keys, programming_keys, remote_devices};
use crate::inventory::{
    check_cylinder, check_device, check_new_key_group, cylinder_row, device_row, key_group_row,
};
use crate::keys::{check_new_key, key_group_exists, new_key_row};
use crate::store::Store;

/// Checks every item of one kind, naming the first that fails.
fn check_each<T>(kind: &str, items: &[T], check: impl Fn(&T) -> Result<()>) -> Result<()> {
    for (i, item) in items.iter().enumerate() {
        check(item).map_err(|e| match e {
            Error::Rule { code, detail } => Error::rule(code, format!("{kind}[{i}]: {detail}")),
            other => other,
        })?;
    }
    Ok(())
}

fn check_batch(batch: &ImportBatch) -> Result<()> {
    check_each("key_groups", &batch.key_groups, |(marking, name)| {
        check_new_key_group(marking, name)
    })?;
    check_each("keys", &batch.keys, check_new_key)?;
    check_each("cylinders", &batch.cylinders, check_cylinder)?;
    check_each("remote_devices", &batch.remote_devices, check_device)?;
    // A programming key is checked like a key group: a marking and a name.
    check_each(
        "programming_keys",
        &batch.programming_keys,
        |(marking, name)| check_new_key_group(marking, name),
    )
}

/// An imported programming key: in stock, without roles or PIN.
fn programming_key_row(
    t: TenantId,
    marking: String,
    name: String,
    now: DateTime<Utc>,
) -> programming_keys::ActiveModel {
    programming_keys::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(t.0),
        marking: Set(marking),
        name: Set(name),
        status: Set(KeyStatus::InStock.as_str().to_owned()),
        blocked: Set(false),
        valid_from: Set(None),
        valid_until: Set(None),
        roles: Set(serde_json::json!([])),
        employee_id: Set(None),
        pin_hash: Set(None),
        pin_one_time: Set(true),
        token_generation: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

/// Inserts each row whose marking (`marking` column) the tenant does not have
/// yet; a marking already there, or seen earlier in the batch, counts as existing.
async fn import_rows<A>(
    txn: &DatabaseTransaction,
    t: TenantId,
    tenant_id: <A::Entity as EntityTrait>::Column,
    marking: <A::Entity as EntityTrait>::Column,
    rows: Vec<(String, A)>,
) -> Result<ImportOutcome>
where
    A: ActiveModelTrait + Send,
{
    let mut outcome = ImportOutcome::default();
    let mut seen = HashSet::new();
    for (value, row) in rows {
        let present = !seen.insert(value.clone())
            || A::Entity::find()
                .filter(tenant_id.eq(t.0))
                .filter(marking.eq(value.as_str()))
                .one(txn)
                .await
                .db()?
                .is_some();
        if present {
            outcome.existing.push(value);
        } else {
            A::Entity::insert(row)
                .exec_without_returning(txn)
                .await
                .db()?;
            outcome.created.push(value);
        }
    }
    Ok(outcome)
}

#[async_trait::async_trait]
impl Imports for Store {
    async fn import(&self, t: TenantId, batch: ImportBatch) -> Result<ImportReport> {
        check_batch(&batch)?;
        let now = self.clock.now();
        let txn = self.begin_in(t).await?;
        for key in &batch.keys {
            key_group_exists(&txn, t, key.key_group_id).await?;
        }
        let report = ImportReport {
            key_groups: import_rows(
                &txn,
                t,
                key_groups::Column::TenantId,
                key_groups::Column::Marking,
                batch
                    .key_groups
                    .into_iter()
                    .map(|(m, n)| (m.clone(), key_group_row(t, m, n, now)))
                    .collect(),
            )
            .await?,
            keys: import_rows(
                &txn,
                t,
                keys::Column::TenantId,
                keys::Column::Marking,
                batch
                    .keys
                    .into_iter()
                    .map(|k| (k.marking.clone(), new_key_row(t, k, now)))
                    .collect(),
            )
            .await?,
            cylinders: import_rows(
                &txn,
                t,
                cylinders::Column::TenantId,
                cylinders::Column::Marking,
                batch
                    .cylinders
                    .into_iter()
                    .map(|c| (c.marking.clone(), cylinder_row(t, c, now)))
                    .collect(),
            )
            .await?,
            remote_devices: import_rows(
                &txn,
                t,
                remote_devices::Column::TenantId,
                remote_devices::Column::Serial,
                batch
                    .remote_devices
                    .into_iter()
                    .map(|d| (d.serial.clone(), device_row(t, d, now)))
                    .collect(),
            )
            .await?,
            programming_keys: import_rows(
                &txn,
                t,
                programming_keys::Column::TenantId,
                programming_keys::Column::Marking,
                batch
                    .programming_keys
                    .into_iter()
                    .map(|(m, n)| (m.clone(), programming_key_row(t, m, n, now)))
                    .collect(),
            )
            .await?,
        };
        txn.commit().await.db()?;
        Ok(report)
    }
}
