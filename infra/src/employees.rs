//! Employees, and the rule that an approver's holder keeps an e-mail address.

use countersign_domain::Result;
use countersign_domain::approver_changes::ApproverChange;
use countersign_domain::directory::Employee;
use countersign_domain::directory::{KeyStatus, ProgrammingKey};
use countersign_domain::history::{Action, NewEntry, names};
use countersign_domain::page::{Page, PageRequest};
use countersign_domain::permission::Principal;
use countersign_domain::ports::{EmployeeChange, Employees};
use countersign_domain::role::Role;
use countersign_domain::tenant::TenantId;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde_json::json;
use uuid::Uuid;

use crate::approver_changes::{Announcement, announce};
use crate::db::DbResult;
use crate::entities::{employees, programming_keys};
use crate::history::changes;
use crate::store::{Store, page_of, scoped};

pub(crate) fn to_domain(m: employees::Model) -> Employee {
    Employee {
        id: m.id,
        name: m.name,
        email: m.email,
        created_at: m.created_at,
    }
}

/// The issued programming keys with the approver role that the employee holds.
async fn approver_keys_of(
    conn: &impl ConnectionTrait,
    t: TenantId,
    employee: Uuid,
) -> Result<Vec<ProgrammingKey>> {
    let keys = programming_keys::Entity::find()
        .filter(programming_keys::Column::TenantId.eq(t.0))
        .filter(programming_keys::Column::EmployeeId.eq(employee))
        .filter(programming_keys::Column::Status.eq(KeyStatus::Issued))
        .all(conn)
        .await
        .db()?;
    let mut approver_keys = Vec::new();
    for row in &keys {
        let key = crate::programming_keys::to_domain(row)?;
        if key.is_approver() {
            approver_keys.push(key);
        }
    }
    Ok(approver_keys)
}

/// The addresses of the employees whose issued key holds one of `roles`, and
/// of the employees in `also` (a key's holder told of their own change).
pub(crate) async fn holders_of(
    conn: &impl ConnectionTrait,
    t: TenantId,
    roles: &[Role],
    also: &[Uuid],
) -> Result<Vec<String>> {
    let issued = programming_keys::Entity::find()
        .filter(programming_keys::Column::TenantId.eq(t.0))
        .filter(programming_keys::Column::Status.eq(KeyStatus::Issued))
        .all(conn)
        .await
        .db()?;
    let mut holders = also.to_vec();
    for row in &issued {
        let held = crate::programming_keys::roles_of(&row.roles)?;
        if roles.iter().any(|r| held.contains(*r)) {
            holders.extend(row.employee_id);
        }
    }
    let mut addresses: Vec<String> = employees::Entity::find()
        .filter(employees::Column::TenantId.eq(t.0))
        .filter(employees::Column::Id.is_in(holders))
        .all(conn)
        .await
        .db()?
        .into_iter()
        .filter_map(|e| e.email)
        .collect();
    addresses.sort();
    addresses.dedup();
    Ok(addresses)
}

fn entry(action: Action, employee: &Employee, details: serde_json::Value) -> NewEntry {
    NewEntry::new(action, names::EMPLOYEE, employee.id, details)
}

#[async_trait::async_trait]
impl Employees for Store {
    async fn create_employee(
        &self,
        t: TenantId,
        by: &Principal,
        name: String,
        email: Option<String>,
    ) -> Result<Employee> {
        Employee::validate(&name, email.as_deref())?;
        let mut change = self.change(t, by).await?;
        let now = change.now;
        let row = employees::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(t.0),
            name: Set(name),
            email: Set(email),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&*change)
        .await
        .db()?;
        let employee = to_domain(row);
        change.record(entry(
            Action::EmployeeCreated,
            &employee,
            json!({"name": employee.name, "email": employee.email}),
        ));
        self.commit(change).await?;
        Ok(employee)
    }

    async fn list_employees(&self, t: TenantId, page: PageRequest) -> Result<Page<Employee>> {
        let txn = self.begin_in(t).await?;
        let rows = page_of::<employees::Entity>(&txn, t, page, |m| m.id).await?;
        txn.commit().await.db()?;
        Ok(rows.map(to_domain))
    }

    async fn get_employee(&self, t: TenantId, id: Uuid) -> Result<Employee> {
        let txn = self.begin_in(t).await?;
        let row = scoped::<employees::Entity>(&txn, t, id, false, "employee").await?;
        txn.commit().await.db()?;
        Ok(to_domain(row))
    }

    async fn update_employee(
        &self,
        t: TenantId,
        by: &Principal,
        id: Uuid,
        update: EmployeeChange,
    ) -> Result<Employee> {
        let mut change = self.change(t, by).await?;
        let row = scoped::<employees::Entity>(&*change, t, id, true, "employee").await?;
        let mut employee = to_domain(row.clone());
        let before = json!({"name": employee.name, "email": employee.email});
        let previous_email = employee.email.clone();
        let approver_keys = approver_keys_of(&*change, t, id).await?;
        employee.change(update.name, update.email, !approver_keys.is_empty())?;
        let mut active: employees::ActiveModel = row.into();
        active.name = Set(employee.name.clone());
        active.email = Set(employee.email.clone());
        active.updated_at = Set(change.now);
        active.update(&*change).await.db()?;
        let after = json!({"name": employee.name, "email": employee.email});
        change.record(entry(
            Action::EmployeeUpdated,
            &employee,
            json!({"changes": changes(&before, &after)}),
        ));
        if employee.email != previous_email {
            for mut key in approver_keys {
                let announcement = Announcement {
                    change: ApproverChange::EmailChanged,
                    previous_address: previous_email.clone(),
                    details: json!({"old_email": previous_email, "new_email": employee.email}),
                };
                announce(&mut change, &mut key, announcement).await?;
            }
        }
        self.commit(change).await?;
        Ok(employee)
    }
}
