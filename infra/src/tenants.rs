//! Tenants: provisioning with the first super administrator, listing, changes.

use countersign_domain::directory::KeyStatus;
use countersign_domain::history::{Action, NewEntry, names};
use countersign_domain::page::{Page, PageRequest};
use countersign_domain::ports::{NewTenant, ProvisionedTenant, Tenants};
use countersign_domain::role::{Role, RoleSet};
use countersign_domain::tenant::{FixedSettings, MutableSettings, Tenant, TenantChange, TenantId};
use countersign_domain::{Error, Result};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::json;
use uuid::Uuid;

use crate::db::DbResult;
use crate::entities::{employees, programming_keys, tenants};
use crate::history::{changes, operator_actor};
use crate::revocation::Revocation;
use crate::secrets;
use crate::store::Store;

pub(crate) fn to_domain(m: tenants::Model) -> Result<Tenant> {
    let corrupt =
        |what: &str| Error::Internal(anyhow::anyhow!("tenant {} has an invalid {what}", m.id));
    let fixed = FixedSettings::new(
        m.approval_required,
        m.approvals_required as u8,
        u16::try_from(m.approver_hold_hours).map_err(|_| corrupt("approver hold"))?,
        &m.base_timezone,
    )
    .map_err(|_| corrupt("fixed setting"))?;
    let settings = MutableSettings {
        name: m.name.clone(),
        locale: m.locale,
        event_retention_days: m.event_retention_days as u32,
        request_ttl_hours: m.request_ttl_hours as u32,
        execution_ttl_hours: m.execution_ttl_hours as u32,
        status: m.status,
    };
    Tenant::new(
        TenantId(m.id),
        m.slug.clone(),
        fixed,
        settings,
        m.created_at,
    )
    .map_err(|_| corrupt("setting"))
}

/// A tenant's settings as the history records them.
fn settings_of(tenant: &Tenant) -> serde_json::Value {
    let s = &tenant.settings;
    json!({
        "name": s.name,
        "base_timezone": tenant.fixed().base_timezone().name(),
        "approval_required": tenant.fixed().approval_required(),
        "approvals_required": tenant.fixed().approvals_required(),
        "approver_hold_hours": tenant.fixed().approver_hold_hours(),
        "locale": s.locale,
        "event_retention_days": s.event_retention_days,
        "request_ttl_hours": s.request_ttl_hours,
        "execution_ttl_hours": s.execution_ttl_hours,
        "status": s.status,
    })
}

#[async_trait::async_trait]
impl Tenants for Store {
    async fn provision(&self, new: NewTenant) -> Result<ProvisionedTenant> {
        let now = self.clock.now();
        let id = TenantId(Uuid::now_v7());
        let tenant = Tenant::new(id, new.slug, new.fixed, new.settings, now)?;
        let initial_pin = secrets::new_pin();
        let pin_hash = secrets::hash_pin(&initial_pin).await?;
        let s = &tenant.settings;
        let mut change = self.change_as(id, operator_actor()).await?;
        let now = change.now;
        tenants::ActiveModel {
            id: Set(id.0),
            slug: Set(tenant.slug.clone()),
            name: Set(s.name.clone()),
            base_timezone: Set(tenant.fixed().base_timezone().name().to_owned()),
            locale: Set(s.locale),
            approval_required: Set(tenant.fixed().approval_required()),
            approvals_required: Set(i16::from(tenant.fixed().approvals_required())),
            approver_hold_hours: Set(tenant.fixed().approver_hold_hours() as i16),
            event_retention_days: Set(s.event_retention_days as i32),
            request_ttl_hours: Set(s.request_ttl_hours as i32),
            execution_ttl_hours: Set(s.execution_ttl_hours as i32),
            status: Set(s.status),
            token_generation: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&*change)
        .await
        .db()?;
        let employee_id = Uuid::now_v7();
        let employee_details = json!({"name": new.admin_name, "email": new.admin_email});
        employees::ActiveModel {
            id: Set(employee_id),
            tenant_id: Set(id.0),
            name: Set(new.admin_name),
            email: Set(Some(new.admin_email)),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&*change)
        .await
        .db()?;
        let roles = RoleSet::from_iter([Role::SuperAdministrator]);
        let key_id = Uuid::now_v7();
        let marking = new.admin_marking.clone();
        programming_keys::ActiveModel {
            id: Set(key_id),
            tenant_id: Set(id.0),
            marking: Set(new.admin_marking),
            name: Set("Initial super administrator".to_owned()),
            status: Set(KeyStatus::Issued),
            blocked: Set(false),
            valid_from: Set(None),
            valid_until: Set(None),
            roles: Set(serde_json::to_value(&roles).map_err(anyhow::Error::from)?),
            employee_id: Set(Some(employee_id)),
            pin_hash: Set(Some(pin_hash)),
            pin_one_time: Set(true),
            token_generation: Set(0),
            hold_until: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&*change)
        .await
        .db()?;
        change.record(NewEntry::new(
            Action::TenantProvisioned,
            names::TENANT,
            id.0,
            json!({"slug": tenant.slug, "settings": settings_of(&tenant)}),
        ));
        change.record(NewEntry::new(
            Action::EmployeeCreated,
            names::EMPLOYEE,
            employee_id,
            employee_details,
        ));
        change.record(NewEntry::new(
            Action::ProgrammingKeyCreated,
            names::PROGRAMMING_KEY,
            key_id,
            json!({
                "marking": marking,
                "roles": roles,
                "status": "issued",
                "employee_id": employee_id,
                "one_time_pin": true,
            }),
        ));
        self.commit(change).await?;
        Ok(ProvisionedTenant {
            tenant,
            initial_pin,
        })
    }

    async fn list_tenants(&self, page: PageRequest) -> Result<Page<Tenant>> {
        let mut query = tenants::Entity::find();
        if let Some(after) = page.after {
            query = query.filter(tenants::Column::Id.gt(after));
        }
        let rows = query
            .order_by_asc(tenants::Column::Id)
            .limit(page.fetch())
            .all(&self.db)
            .await
            .db()?;
        let page = Page::from_rows(rows, &page, |m| m.id);
        let items = page
            .items
            .into_iter()
            .map(to_domain)
            .collect::<Result<_>>()?;
        Ok(Page {
            items,
            next_cursor: page.next_cursor,
        })
    }

    async fn get_tenant(&self, id: TenantId) -> Result<Tenant> {
        let row = tenants::Entity::find_by_id(id.0).one(&self.db).await.db()?;
        to_domain(row.ok_or_else(|| Error::not_found("tenant"))?)
    }

    async fn update_tenant(&self, id: TenantId, change: TenantChange) -> Result<Tenant> {
        let mut txn = self.change_as(id, operator_actor()).await?;
        let now = txn.now;
        let row = tenants::Entity::find_by_id(id.0)
            .lock_exclusive()
            .one(&*txn)
            .await
            .db()?
            .ok_or_else(|| Error::not_found("tenant"))?;
        let generation = row.token_generation;
        let mut tenant = to_domain(row.clone())?;
        let before = settings_of(&tenant);
        let was_active = tenant.is_active();
        tenant.apply(change)?;
        let suspended = was_active && !tenant.is_active();
        let s = &tenant.settings;
        let mut active: tenants::ActiveModel = row.into();
        active.name = Set(s.name.clone());
        active.locale = Set(s.locale);
        active.event_retention_days = Set(s.event_retention_days as i32);
        active.request_ttl_hours = Set(s.request_ttl_hours as i32);
        active.execution_ttl_hours = Set(s.execution_ttl_hours as i32);
        active.status = Set(s.status);
        active.updated_at = Set(now);
        if suspended {
            active.token_generation = Set(generation + 1);
            txn.revoke([Revocation::tenant(id.0, generation + 1, now)]);
        }
        active.update(&*txn).await.db()?;
        let changed = changes(&before, &settings_of(&tenant));
        txn.record(NewEntry::new(
            Action::TenantUpdated,
            names::TENANT,
            id.0,
            json!({"changes": changed}),
        ));
        self.commit(txn).await?;
        Ok(tenant)
    }
}

/// The tenant's row.
pub(crate) async fn row(
    conn: &impl sea_orm::ConnectionTrait,
    t: TenantId,
) -> Result<tenants::Model> {
    tenants::Entity::find_by_id(t.0)
        .one(conn)
        .await
        .db()?
        .ok_or_else(|| Error::not_found("tenant"))
}

/// Looks a tenant up by slug, for logins.
pub(crate) async fn by_slug(
    conn: &impl sea_orm::ConnectionTrait,
    slug: &str,
) -> Result<Option<tenants::Model>> {
    tenants::Entity::find()
        .filter(tenants::Column::Slug.eq(slug))
        .one(conn)
        .await
        .db()
}
