//! The extension import: inventory in bulk, in one transaction, idempotent by marking.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use countersign_domain::directory::KeyStatus;
use countersign_domain::history::{Action, NewEntry, names};
use countersign_domain::permission::Principal;
use countersign_domain::ports::{ImportBatch, ImportOutcome, ImportReport, Imports};
use countersign_domain::tenant::TenantId;
use countersign_domain::{Error, Result};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde_json::json;
use uuid::Uuid;

use crate::change::Change;
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
        status: Set(KeyStatus::InStock),
        blocked: Set(false),
        valid_from: Set(None),
        valid_until: Set(None),
        roles: Set(serde_json::json!([])),
        employee_id: Set(None),
        pin_hash: Set(None),
        pin_one_time: Set(true),
        hold_until: Set(None),
        token_generation: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

/// What the history calls one kind of imported item.
struct Kind<A: ActiveModelTrait> {
    subject: &'static str,
    created: Action,
    tenant_id: <A::Entity as EntityTrait>::Column,
    marking: <A::Entity as EntityTrait>::Column,
    id_of: fn(&A) -> Option<Uuid>,
}

/// The [`Kind`] of an entity module's rows: subject, creation action and the
/// column that identifies a row in the import.
macro_rules! kind {
    ($rows:ident, $subject:ident, $created:ident, $marking:ident) => {
        Kind {
            subject: names::$subject,
            created: Action::$created,
            tenant_id: $rows::Column::TenantId,
            marking: $rows::Column::$marking,
            id_of: |r: &$rows::ActiveModel| r.id.try_as_ref().copied(),
        }
    };
}

/// Inserts each row whose marking (`marking` column) the tenant does not have
/// yet, recording each created one; a marking already there, or seen earlier
/// in the batch, counts as existing.
async fn import_rows<A>(
    change: &mut Change,
    kind: Kind<A>,
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
                .filter(kind.tenant_id.eq(change.tenant.0))
                .filter(kind.marking.eq(value.as_str()))
                .one(&**change)
                .await
                .db()?
                .is_some();
        if present {
            outcome.existing.push(value);
            continue;
        }
        let id = (kind.id_of)(&row);
        A::Entity::insert(row)
            .exec_without_returning(&**change)
            .await
            .db()?;
        change.record(NewEntry {
            action: kind.created,
            subject_type: kind.subject,
            subject_id: id,
            details: json!({"marking": value, "import": true}),
        });
        outcome.created.push(value);
    }
    Ok(outcome)
}

/// The counts of an import, as its closing history entry records them.
fn summary(report: &ImportReport) -> serde_json::Value {
    let of = |o: &ImportOutcome| json!({"created": o.created.len(), "existing": o.existing.len()});
    json!({
        "key_groups": of(&report.key_groups),
        "keys": of(&report.keys),
        "cylinders": of(&report.cylinders),
        "remote_devices": of(&report.remote_devices),
        "programming_keys": of(&report.programming_keys),
    })
}

#[async_trait::async_trait]
impl Imports for Store {
    async fn import(
        &self,
        t: TenantId,
        by: &Principal,
        batch: ImportBatch,
    ) -> Result<ImportReport> {
        check_batch(&batch)?;
        let mut change = self.change(t, by).await?;
        let now = change.now;
        for key in &batch.keys {
            key_group_exists(&*change, t, key.key_group_id).await?;
        }
        let rows = batch
            .key_groups
            .into_iter()
            .map(|(m, n)| (m.clone(), key_group_row(t, m, n, now)))
            .collect();
        let key_groups = import_rows(
            &mut change,
            kind!(key_groups, KEY_GROUP, KeyGroupCreated, Marking),
            rows,
        )
        .await?;
        let rows = batch
            .keys
            .into_iter()
            .map(|k| (k.marking.clone(), new_key_row(t, k, now)))
            .collect();
        let keys = import_rows(&mut change, kind!(keys, KEY, KeyCreated, Marking), rows).await?;
        let rows = batch
            .cylinders
            .into_iter()
            .map(|c| (c.marking.clone(), cylinder_row(t, c, now)))
            .collect();
        let cylinders = import_rows(
            &mut change,
            kind!(cylinders, CYLINDER, CylinderCreated, Marking),
            rows,
        )
        .await?;
        let rows = batch
            .remote_devices
            .into_iter()
            .map(|d| (d.serial.clone(), device_row(t, d, now)))
            .collect();
        let remote_devices = import_rows(
            &mut change,
            kind!(remote_devices, REMOTE_DEVICE, RemoteDeviceCreated, Serial),
            rows,
        )
        .await?;
        let rows = batch
            .programming_keys
            .into_iter()
            .map(|(m, n)| (m.clone(), programming_key_row(t, m, n, now)))
            .collect();
        let programming_keys = import_rows(
            &mut change,
            kind!(
                programming_keys,
                PROGRAMMING_KEY,
                ProgrammingKeyCreated,
                Marking
            ),
            rows,
        )
        .await?;
        let report = ImportReport {
            keys,
            key_groups,
            cylinders,
            remote_devices,
            programming_keys,
        };
        change.record(NewEntry {
            action: Action::ImportCompleted,
            subject_type: names::IMPORT,
            subject_id: None,
            details: summary(&report),
        });
        self.commit(change).await?;
        Ok(report)
    }
}
