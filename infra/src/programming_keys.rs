//! Programming keys: the administrators' credentials, their roles, PINs and status.

use countersign_domain::approver_changes::ApproverChange;
use countersign_domain::directory::{
    ApproverRoleChange, Employee, KeyStatus, ProgrammingKey, check_marking, check_pin,
};
use countersign_domain::history::{Action, NewEntry, names};
use countersign_domain::notification::Notice;
use countersign_domain::page::{Page, PageRequest};
use countersign_domain::permission::Principal;
use countersign_domain::ports::{
    NewProgrammingKey, PinDelivery, ProgrammingKeyChange, ProgrammingKeyCommand, ProgrammingKeys,
};
use countersign_domain::role::{Role, RoleSet};
use countersign_domain::tenant::{TenantId, check_name};
use countersign_domain::{Error, ErrorCode, Result};
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use serde_json::json;
use uuid::Uuid;

use crate::approver_changes::{Announcement, announce, announce_if_changed};
use crate::change::Change;
use crate::db::DbResult;
use crate::employees::{self, holders_of};
use crate::entities::{employees as employee_rows, programming_keys};
use crate::history::changes;
use crate::revocation::Revocation;
use crate::secrets;
use crate::store::{Store, page_of, scoped};

pub(crate) fn to_domain(m: &programming_keys::Model) -> Result<ProgrammingKey> {
    Ok(ProgrammingKey {
        id: m.id,
        marking: m.marking.clone(),
        name: m.name.clone(),
        status: m.status,
        blocked: m.blocked,
        valid_from: m.valid_from,
        valid_until: m.valid_until,
        roles: roles_of(&m.roles)?,
        employee_id: m.employee_id,
        hold_until: m.hold_until,
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
    active.status = Set(key.status);
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

/// The fields of a key that `programming_key.updated` reports.
fn settings_of(key: &ProgrammingKey) -> serde_json::Value {
    json!({"name": key.name, "valid_from": key.valid_from, "valid_until": key.valid_until})
}

fn entry(action: Action, key: &ProgrammingKey, details: serde_json::Value) -> NewEntry {
    NewEntry::new(action, names::PROGRAMMING_KEY, key.id, details)
}

/// Granting or removing the approver role e-mails every approver and auditor.
async fn tell_approver_role_changed(
    change: &mut Change,
    key: &ProgrammingKey,
    granted: bool,
) -> Result<()> {
    let t = change.tenant;
    let holders: Vec<Uuid> = key.employee_id.into_iter().collect();
    let recipients = holders_of(&**change, t, &[Role::Approver, Role::Auditor], &holders).await?;
    let holder = holder(&**change, t, key.employee_id).await?.map(|e| e.name);
    let notice = Notice::ApproverRoleChanged {
        programming_key_marking: key.marking.clone(),
        holder,
        granted,
    };
    change.mail(recipients, notice);
    Ok(())
}

#[async_trait::async_trait]
impl ProgrammingKeys for Store {
    async fn create_programming_key(
        &self,
        t: TenantId,
        by: &Principal,
        new: NewProgrammingKey,
    ) -> Result<ProgrammingKey> {
        check_marking(&new.marking)?;
        check_name("name", &new.name)?;
        ProgrammingKey::check_validity_window(new.valid_from, new.valid_until)?;
        let mut change = self.change(t, by).await?;
        let now = change.now;
        let row = programming_keys::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(t.0),
            marking: Set(new.marking),
            name: Set(new.name),
            status: Set(KeyStatus::InStock),
            blocked: Set(false),
            valid_from: Set(new.valid_from),
            valid_until: Set(new.valid_until),
            roles: Set(roles_value(&new.roles)?),
            employee_id: Set(None),
            pin_hash: Set(None),
            pin_one_time: Set(true),
            token_generation: Set(0),
            hold_until: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&*change)
        .await
        .db()?;
        let key = to_domain(&row)?;
        let details = json!({
            "marking": key.marking,
            "name": key.name,
            "roles": key.roles,
            "valid_from": key.valid_from,
            "valid_until": key.valid_until,
        });
        change.record(entry(Action::ProgrammingKeyCreated, &key, details));
        if key.roles.contains(Role::Approver) {
            tell_approver_role_changed(&mut change, &key, true).await?;
        }
        self.commit(change).await?;
        Ok(key)
    }

    async fn list_programming_keys(
        &self,
        t: TenantId,
        page: PageRequest,
    ) -> Result<Page<ProgrammingKey>> {
        let txn = self.begin_in(t).await?;
        let page = page_of::<programming_keys::Entity>(&txn, t, page, |m| m.id).await?;
        txn.commit().await.db()?;
        let items = page.items.iter().map(to_domain).collect::<Result<_>>()?;
        Ok(Page {
            items,
            next_cursor: page.next_cursor,
        })
    }

    async fn get_programming_key(&self, t: TenantId, id: Uuid) -> Result<ProgrammingKey> {
        let txn = self.begin_in(t).await?;
        let row = scoped::<programming_keys::Entity>(&txn, t, id, false, "programming key").await?;
        txn.commit().await.db()?;
        to_domain(&row)
    }

    async fn update_programming_key(
        &self,
        t: TenantId,
        by: &Principal,
        id: Uuid,
        update: ProgrammingKeyChange,
    ) -> Result<ProgrammingKey> {
        let mut change = self.change(t, by).await?;
        let now = change.now;
        let row =
            scoped::<programming_keys::Entity>(&*change, t, id, true, "programming key").await?;
        let mut key = to_domain(&row)?;
        let before = key.clone();
        if let Some(name) = update.name {
            check_name("name", &name)?;
            key.name = name;
        }
        let valid_from = update.valid_from.unwrap_or(key.valid_from);
        let valid_until = update.valid_until.unwrap_or(key.valid_until);
        ProgrammingKey::check_validity_window(valid_from, valid_until)?;
        let window_changed = (valid_from, valid_until) != (key.valid_from, key.valid_until);
        key.valid_from = valid_from;
        key.valid_until = valid_until;
        let mut approver = ApproverRoleChange::None;
        if let Some(roles) = update.roles {
            let holder = holder(&*change, t, key.employee_id).await?;
            approver = key.set_roles(roles, holder.as_ref())?;
        }
        let roles_changed = key.roles != before.roles;
        let (active, revocations) = apply(row, &key, now, roles_changed || window_changed)?;
        active.update(&*change).await.db()?;
        change.revoke(revocations);
        let changed = changes(&settings_of(&before), &settings_of(&key));
        if !roles_changed || changed.as_object().is_some_and(|c| !c.is_empty()) {
            let details = json!({"changes": changed});
            change.record(entry(Action::ProgrammingKeyUpdated, &key, details));
        }
        if roles_changed {
            change.record(entry(
                Action::ProgrammingKeyRolesChanged,
                &key,
                json!({"old_roles": before.roles, "new_roles": key.roles}),
            ));
        }
        let approver_change = key.approver_change_from(&before).is_some();
        announce_if_changed(&mut change, &before, &mut key).await?;
        match approver {
            // Granted to an issued key: announced as an approver change.
            ApproverRoleChange::Granted if !approver_change => {
                tell_approver_role_changed(&mut change, &key, true).await?;
            }
            ApproverRoleChange::Removed => {
                tell_approver_role_changed(&mut change, &key, false).await?;
            }
            _ => {}
        }
        self.commit(change).await?;
        Ok(key)
    }

    async fn command_programming_key(
        &self,
        t: TenantId,
        by: &Principal,
        id: Uuid,
        command: ProgrammingKeyCommand,
    ) -> Result<ProgrammingKey> {
        let mut change = self.change(t, by).await?;
        let row =
            scoped::<programming_keys::Entity>(&*change, t, id, true, "programming key").await?;
        let mut key = to_domain(&row)?;
        let before = key.clone();
        let (revoke, action, details) = match command {
            ProgrammingKeyCommand::Issue { employee_id } => {
                let employee = holder(&*change, t, Some(employee_id))
                    .await
                    .map_err(|_| Error::rule(ErrorCode::UnknownReference, "no such employee"))?
                    .ok_or_else(|| Error::rule(ErrorCode::UnknownReference, "no such employee"))?;
                key.issue(&employee)?;
                let details = json!({"employee_id": employee.id, "employee_name": employee.name});
                (true, Action::ProgrammingKeyIssued, details)
            }
            ProgrammingKeyCommand::Return => {
                let details = json!({"employee_id": key.employee_id});
                key.give_back()?;
                (true, Action::ProgrammingKeyReturned, details)
            }
            ProgrammingKeyCommand::Block => {
                let details = json!({"was_blocked": key.blocked});
                key.blocked = true;
                (true, Action::ProgrammingKeyBlocked, details)
            }
            ProgrammingKeyCommand::Unblock => {
                let details = json!({"was_blocked": key.blocked});
                key.blocked = false;
                (false, Action::ProgrammingKeyUnblocked, details)
            }
        };
        let (active, revocations) = apply(row, &key, change.now, revoke)?;
        active.update(&*change).await.db()?;
        change.revoke(revocations);
        change.record(entry(action, &key, details));
        announce_if_changed(&mut change, &before, &mut key).await?;
        if matches!(
            command,
            ProgrammingKeyCommand::Return | ProgrammingKeyCommand::Block
        ) {
            crate::jobs::on_programming_key_withdrawn(&mut change, key.id).await?;
        }
        change.wake_agents();
        self.commit(change).await?;
        Ok(key)
    }

    async fn set_programming_key_pin(
        &self,
        t: TenantId,
        by: &Principal,
        id: Uuid,
        pin: Option<String>,
    ) -> Result<PinDelivery> {
        let mut change = self.change(t, by).await?;
        let row =
            scoped::<programming_keys::Entity>(&*change, t, id, true, "programming key").await?;
        let mut key = to_domain(&row)?;
        let holder = holder(&*change, t, key.employee_id).await?;
        let (pin, approver_holder) = match one_time_pin_route(&key, holder, pin)? {
            PinRoute::AsGiven(pin) => (pin, None),
            PinRoute::MailTo(address) => (secrets::new_pin(), Some(address)),
        };
        let hash = secrets::hash_pin(&pin).await?;
        let (mut active, revocations) = apply(row, &key, change.now, true)?;
        active.pin_hash = Set(Some(hash));
        active.pin_one_time = Set(true);
        active.update(&*change).await.db()?;
        change.revoke(revocations);
        let by_server = approver_holder.is_some();
        let details = json!({"one_time": true, "by_holder": false, "made_by_server": by_server});
        change.record(entry(Action::ProgrammingKeyPinSet, &key, details));
        let Some(email) = approver_holder else {
            self.commit(change).await?;
            return Ok(PinDelivery::AsGiven);
        };
        let notice = Notice::OneTimePin {
            programming_key_marking: key.marking.clone(),
            pin,
        };
        change.mail(vec![email], notice);
        let announcement = Announcement {
            change: ApproverChange::PinSet,
            previous_address: None,
            details: json!({}),
        };
        let hold_until = announce(&mut change, &mut key, announcement).await?;
        self.commit(change).await?;
        Ok(PinDelivery::MailedToHolder { hold_until })
    }
}

/// Where a PIN set by someone other than the holder comes from.
enum PinRoute {
    /// The caller's, for a key without the approver role.
    AsGiven(String),
    /// Made by the server and mailed to the holder at this address alone.
    MailTo(String),
}

/// An approver key's PIN is made by the server and mailed to its holder
/// alone, so the caller may not choose one; any other key's PIN is the caller's.
fn one_time_pin_route(
    key: &ProgrammingKey,
    holder: Option<Employee>,
    pin: Option<String>,
) -> Result<PinRoute> {
    if !key.is_approver() {
        let pin = pin.ok_or_else(|| Error::invalid("pin: a PIN is required for this key"))?;
        check_pin(&pin)?;
        return Ok(PinRoute::AsGiven(pin));
    }
    if pin.is_some() {
        return Err(Error::invalid(
            "pin: nobody but its holder learns an approver's PIN; send no PIN and the server mails a one-time PIN to the holder",
        ));
    }
    match holder.and_then(|h| h.email) {
        Some(email) if key.status == KeyStatus::Issued => Ok(PinRoute::MailTo(email)),
        _ => Err(Error::rule(
            ErrorCode::ApproverRequiresEmail,
            "an approver key's PIN is mailed to its holder: issue the key to an employee with an e-mail address first",
        )),
    }
}
