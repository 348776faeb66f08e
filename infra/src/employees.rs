//! Employees, and the rule that an approver's holder keeps an e-mail address.

use countersign_domain::Result;
use countersign_domain::directory::Employee;
use countersign_domain::history::{Action, NewEntry, names};
use countersign_domain::page::{Page, PageRequest};
use countersign_domain::permission::Principal;
use countersign_domain::ports::{EmployeeChange, Employees};
use countersign_domain::role::{Role, RoleSet};
use countersign_domain::tenant::TenantId;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde_json::json;
use uuid::Uuid;

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

/// Whether the employee holds an issued programming key with the approver role.
pub(crate) async fn holds_approver_key(
    conn: &impl ConnectionTrait,
    t: TenantId,
    employee: Uuid,
) -> Result<bool> {
    let keys = programming_keys::Entity::find()
        .filter(programming_keys::Column::TenantId.eq(t.0))
        .filter(programming_keys::Column::EmployeeId.eq(employee))
        .filter(programming_keys::Column::Status.eq("issued"))
        .all(conn)
        .await
        .db()?;
    Ok(keys.iter().any(|k| {
        serde_json::from_value::<RoleSet>(k.roles.clone())
            .is_ok_and(|roles| roles.contains(Role::Approver))
    }))
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
        let approver = holds_approver_key(&*change, t, id).await?;
        employee.change(update.name, update.email, approver)?;
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
        self.commit(change).await?;
        Ok(employee)
    }
}
