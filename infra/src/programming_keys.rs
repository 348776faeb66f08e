//! Programming keys: the administrators' credentials, their roles, PINs and status.

use countersign_domain::directory::{KeyStatus, ProgrammingKey, check_marking, check_pin};
use countersign_domain::page::{Page, PageRequest};
use countersign_domain::ports::{
    NewProgrammingKey, ProgrammingKeyChange, ProgrammingKeyCommand, ProgrammingKeys,
};
use countersign_domain::role::RoleSet;
use countersign_domain::tenant::{TenantId, check_name};
use countersign_domain::{Error, ErrorCode, Result};
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set, TransactionTrait};
use uuid::Uuid;

use crate::db::DbResult;
use crate::employees;
use crate::entities::{employees as employee_rows, programming_keys};
use crate::revocation::Revocation;
use crate::secrets;
use crate::store::{Store, page_of, scoped};

pub(crate) fn to_domain(m: &programming_keys::Model) -> Result<ProgrammingKey> {
    Ok(ProgrammingKey {
        id: m.id,
        marking: m.marking.clone(),
        name: m.name.clone(),
        status: KeyStatus::parse(&m.status).ok_or_else(|| {
            Error::Internal(anyhow::anyhow!(
                "programming key {} has status {}",
                m.id,
                m.status
            ))
        })?,
        blocked: m.blocked,
        valid_from: m.valid_from,
        valid_until: m.valid_until,
        roles: roles_of(&m.roles)?,
        employee_id: m.employee_id,
        created_at: m.created_at,
    })
}

pub(crate) fn roles_of(value: &serde_json::Value) -> Result<RoleSet> {
    serde_json::from_value(value.clone())
        .map_err(|e| Error::Internal(anyhow::anyhow!("stored roles unreadable: {e}")))
}

fn roles_value(roles: &RoleSet) -> Result<serde_json::Value> {
    serde_json::to_value(roles).map_err(|e| Error::Internal(e.into()))
}

async fn holder(
    conn: &impl ConnectionTrait,
    t: TenantId,
    employee: Option<Uuid>,
) -> Result<Option<countersign_domain::directory::Employee>> {
    match employee {
        Some(id) => Ok(Some(employees::to_domain(
            scoped::<employee_rows::Entity>(conn, t, id, false, "employee").await?,
        ))),
        None => Ok(None),
    }
}

/// Writes the key's new state; `revoke` ends every token issued to it so far.
fn apply(
    row: programming_keys::Model,
    key: &ProgrammingKey,
    now: chrono::DateTime<chrono::Utc>,
    revoke: bool,
) -> Result<(programming_keys::ActiveModel, Vec<Revocation>)> {
    let generation = row.token_generation + i64::from(revoke);
    let mut active: programming_keys::ActiveModel = row.into();
    active.name = Set(key.name.clone());
    active.status = Set(key.status.as_str().to_owned());
    active.blocked = Set(key.blocked);
    active.valid_from = Set(key.valid_from);
    active.valid_until = Set(key.valid_until);
    active.roles = Set(roles_value(&key.roles)?);
    active.employee_id = Set(key.employee_id);
    active.updated_at = Set(now);
    let mut revocations = Vec::new();
    if revoke {
        active.token_generation = Set(generation);
        revocations.push(Revocation::credential(key.id, generation, now));
    }
    Ok((active, revocations))
}

#[async_trait::async_trait]
impl ProgrammingKeys for Store {
    async fn create_programming_key(
        &self,
        t: TenantId,
        new: NewProgrammingKey,
    ) -> Result<ProgrammingKey> {
        check_marking(&new.marking)?;
        check_name("name", &new.name)?;
        ProgrammingKey::check_validity_window(new.valid_from, new.valid_until)?;
        let now = self.clock.now();
        let row = programming_keys::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(t.0),
            marking: Set(new.marking),
            name: Set(new.name),
            status: Set(KeyStatus::InStock.as_str().to_owned()),
            blocked: Set(false),
            valid_from: Set(new.valid_from),
            valid_until: Set(new.valid_until),
            roles: Set(roles_value(&new.roles)?),
            employee_id: Set(None),
            pin_hash: Set(None),
            pin_one_time: Set(true),
            token_generation: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&self.db)
        .await
        .db()?;
        to_domain(&row)
    }

    async fn list_programming_keys(
        &self,
        t: TenantId,
        page: PageRequest,
    ) -> Result<Page<ProgrammingKey>> {
        let page = page_of::<programming_keys::Entity>(&self.db, t, page, |m| m.id).await?;
        let items = page.items.iter().map(to_domain).collect::<Result<_>>()?;
        Ok(Page {
            items,
            next_cursor: page.next_cursor,
        })
    }

    async fn get_programming_key(&self, t: TenantId, id: Uuid) -> Result<ProgrammingKey> {
        to_domain(
            &scoped::<programming_keys::Entity>(&self.db, t, id, false, "programming key").await?,
        )
    }

    async fn update_programming_key(
        &self,
        t: TenantId,
        id: Uuid,
        change: ProgrammingKeyChange,
    ) -> Result<ProgrammingKey> {
        let now = self.clock.now();
        let txn = self.db.begin().await.db()?;
        let row = scoped::<programming_keys::Entity>(&txn, t, id, true, "programming key").await?;
        let mut key = to_domain(&row)?;
        if let Some(name) = change.name {
            check_name("name", &name)?;
            key.name = name;
        }
        let valid_from = change.valid_from.unwrap_or(key.valid_from);
        let valid_until = change.valid_until.unwrap_or(key.valid_until);
        ProgrammingKey::check_validity_window(valid_from, valid_until)?;
        let window_changed = (valid_from, valid_until) != (key.valid_from, key.valid_until);
        key.valid_from = valid_from;
        key.valid_until = valid_until;
        let mut roles_changed = false;
        if let Some(roles) = change.roles {
            roles_changed = roles != key.roles;
            let holder = holder(&txn, t, key.employee_id).await?;
            key.set_roles(roles, holder.as_ref())?;
        }
        let (active, revocations) = apply(row, &key, now, roles_changed || window_changed)?;
        active.update(&txn).await.db()?;
        self.commit_revoking(txn, &revocations).await?;
        Ok(key)
    }

    async fn command_programming_key(
        &self,
        t: TenantId,
        id: Uuid,
        command: ProgrammingKeyCommand,
    ) -> Result<ProgrammingKey> {
        let now = self.clock.now();
        let txn = self.db.begin().await.db()?;
        let row = scoped::<programming_keys::Entity>(&txn, t, id, true, "programming key").await?;
        let mut key = to_domain(&row)?;
        let revoke = match command {
            ProgrammingKeyCommand::Issue { employee_id } => {
                let employee = holder(&txn, t, Some(employee_id))
                    .await
                    .map_err(|_| Error::rule(ErrorCode::UnknownReference, "no such employee"))?
                    .ok_or_else(|| Error::rule(ErrorCode::UnknownReference, "no such employee"))?;
                key.issue(&employee)?;
                true
            }
            ProgrammingKeyCommand::Return => {
                key.give_back()?;
                true
            }
            ProgrammingKeyCommand::Block => {
                key.blocked = true;
                true
            }
            ProgrammingKeyCommand::Unblock => {
                key.blocked = false;
                false
            }
        };
        let (active, revocations) = apply(row, &key, now, revoke)?;
        active.update(&txn).await.db()?;
        self.commit_revoking(txn, &revocations).await?;
        Ok(key)
    }

    async fn set_programming_key_pin(&self, t: TenantId, id: Uuid, pin: &str) -> Result<()> {
        check_pin(pin)?;
        let hash = secrets::hash_pin(pin).await?;
        let now = self.clock.now();
        let txn = self.db.begin().await.db()?;
        let row = scoped::<programming_keys::Entity>(&txn, t, id, true, "programming key").await?;
        let key = to_domain(&row)?;
        let (mut active, revocations) = apply(row, &key, now, true)?;
        active.pin_hash = Set(Some(hash));
        active.pin_one_time = Set(true);
        active.update(&txn).await.db()?;
        self.commit_revoking(txn, &revocations).await
    }
}
