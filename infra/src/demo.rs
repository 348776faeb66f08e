//! The embedded demo: on an empty database, a tenant with the approver function,
//! its people and some inventory, with PINs the README can print.

use countersign_domain::directory::{DeviceKind, KeyModel};
use countersign_domain::history::{Action, Actor, NewEntry, names};
use countersign_domain::permission::{Principal, PrincipalKind};
use countersign_domain::ports::{
    Agents, Employees, Inventory, KeyCommand, Keys, NewCylinder, NewKey, NewProgrammingKey,
    NewRemoteDevice, NewTenant, ProgrammingKeyCommand, ProgrammingKeys, Tenants,
};
use countersign_domain::role::{Role, RoleSet};
use countersign_domain::tenant::{
    DEFAULT_APPROVER_HOLD_HOURS, FixedSettings, Locale, MutableSettings, TenantId, TenantStatus,
};
use countersign_domain::{Error, Result};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;

use crate::db::DbResult;
use crate::entities::{programming_keys, tenants};
use crate::secrets;
use crate::store::Store;

/// The demo's programming keys: marking, holder, e-mail, roles, PIN.
const PEOPLE: &[(&str, &str, &str, &[Role], &str)] = &[
    (
        "ADMIN-1",
        "Alex Admin",
        "alex.admin@demo.example",
        &[Role::SuperAdministrator, Role::SystemAdministrator],
        "111111",
    ),
    (
        "APPROVER-1",
        "Berta Council",
        "berta.council@demo.example",
        &[Role::Approver],
        "222222",
    ),
    (
        "APPROVER-2",
        "Carl Council",
        "carl.council@demo.example",
        &[Role::Approver],
        "333333",
    ),
    (
        "CYLPROG-1",
        "Dana Programmer",
        "dana.programmer@demo.example",
        &[Role::CylinderProgrammer],
        "444444",
    ),
    (
        "AUDITOR-1",
        "Emil Auditor",
        "emil.auditor@demo.example",
        &[Role::Auditor],
        "555555",
    ),
];

pub struct Demo {
    pub tenant: String,
    /// The demo site agent, serving the demo's devices.
    pub agent_id: uuid::Uuid,
    /// Its secret, shown only now: to be written to a private file.
    pub agent_secret: String,
    /// The demo's devices: id, kind, serial.
    pub devices: Vec<(uuid::Uuid, DeviceKind, String)>,
}

/// The simulator's pty symlink for a demo device, e.g. `countersign-sim-ru1`.
pub fn simulator_link(serial: &str) -> String {
    format!("countersign-sim-{}", serial.replace('-', "").to_lowercase())
}

fn kind_name(kind: DeviceKind) -> &'static str {
    match kind {
        DeviceKind::RemoteUnit => "remote_unit",
        DeviceKind::DeskUnit => "desk_unit",
    }
}

impl Demo {
    pub fn instructions(&self, listen: &str) -> String {
        let mut text = format!(
            "Demo tenant `{}` (approver function on). Programming keys and PINs:\n",
            self.tenant
        );
        for (marking, holder, _, roles, pin) in PEOPLE {
            let roles: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            text.push_str(&format!(
                "  {marking:<11} PIN {pin}  {holder} ({})\n",
                roles.join(", ")
            ));
        }
        text.push_str(&format!(
            "Log in:\n  curl -s http://{listen}/v1/auth/token -H 'content-type: application/json' \\\n    -d '{{\"grant_type\":\"programming_key\",\"tenant\":\"{}\",\"programming_key\":\"ADMIN-1\",\"pin\":\"111111\"}}'\nAPI documentation: http://{listen}/docs/",
            self.tenant
        ));
        text
    }

    /// The `countersign-agent` configuration for the demo agent; `dir` is where
    /// its secret file, spool and the simulators' pty links are (beside the database).
    pub fn agent_config(&self, api_url: &str, dir: &std::path::Path, secret_file: &str) -> String {
        let mut text = format!(
            "# The demo site agent (written by the embedded demo). Run the simulated\n\
             # simulated devices first:\n#   {}\n\
             api_url = \"{api_url}\"\nagent_id = \"{}\"\nsecret_file = {:?}\nspool_dir = {:?}\npoll_wait_secs = 50\n",
            self.simulator_command(dir),
            self.agent_id,
            dir.join(secret_file).display().to_string(),
            dir.join("countersign-agent-spool").display().to_string(),
        );
        for (id, kind, serial) in &self.devices {
            text.push_str(&format!(
                "\n# {serial}\n[[devices]]\nid = \"{id}\"\nport = {:?}\nkind = \"{}\"\n",
                dir.join(simulator_link(serial)).display().to_string(),
                kind_name(*kind),
            ));
        }
        text
    }

    /// The simulator command that serves the demo's devices on pty links in `dir`.
    pub fn simulator_command(&self, dir: &std::path::Path) -> String {
        let mut command = "countersign-agent simulate".to_owned();
        for (_, kind, serial) in &self.devices {
            command.push_str(&format!(
                " --device {}:{serial}:{}",
                kind_name(*kind),
                dir.join(simulator_link(serial)).display()
            ));
        }
        command
    }
}

/// Seeds the demo unless the database already holds a tenant.
pub async fn seed(store: &Store) -> Result<Option<Demo>> {
    if tenants::Entity::find().count(&store.db).await.db()? > 0 {
        return Ok(None);
    }
    let provisioned = store
        .provision(NewTenant {
            slug: "demo".into(),
            fixed: FixedSettings::new(true, 1, DEFAULT_APPROVER_HOLD_HOURS, "Europe/Berlin")?,
            settings: MutableSettings {
                name: "Demo Stadtwerke".into(),
                locale: Locale::En,
                event_retention_days: 365,
                request_ttl_hours: 72,
                execution_ttl_hours: 168,
                status: TenantStatus::Active,
            },
            admin_name: PEOPLE[0].1.into(),
            admin_email: PEOPLE[0].2.into(),
            admin_marking: PEOPLE[0].0.into(),
        })
        .await?;
    let t = provisioned.tenant.id;
    let admin = admin_principal(store, t).await?;
    for (marking, holder, email, roles, pin) in PEOPLE {
        let roles: RoleSet = roles.iter().copied().collect();
        if *marking != PEOPLE[0].0 {
            let employee = store
                .create_employee(t, &admin, (*holder).into(), Some((*email).into()))
                .await?;
            let key = store
                .create_programming_key(
                    t,
                    &admin,
                    NewProgrammingKey {
                        marking: (*marking).into(),
                        name: format!("Programming key of {holder}"),
                        roles: roles.clone(),
                        valid_from: None,
                        valid_until: None,
                    },
                )
                .await?;
            store
                .command_programming_key(
                    t,
                    &admin,
                    key.id,
                    ProgrammingKeyCommand::Issue {
                        employee_id: employee.id,
                    },
                )
                .await?;
        }
        set_known_pin(store, t, marking, &roles, pin).await?;
    }
    let holder = store
        .create_employee(
            t,
            &admin,
            "Frieda Fitter".into(),
            Some("frieda@demo.example".into()),
        )
        .await?;
    let group = store
        .create_key_group(t, &admin, "G-STAFF".into(), "Staff".into())
        .await?;
    for (marking, model) in [
        ("K-100", KeyModel::E3),
        ("K-101", KeyModel::E2),
        ("K-102", KeyModel::Basic),
    ] {
        let key = store
            .create_key(
                t,
                &admin,
                NewKey {
                    marking: marking.into(),
                    name: format!("Key {marking}"),
                    model,
                    key_group_id: Some(group.id),
                },
            )
            .await?;
        if marking == "K-100" {
            store
                .command_key(
                    t,
                    &admin,
                    key.id,
                    KeyCommand::Issue {
                        employee_id: holder.id,
                    },
                )
                .await?;
        }
    }
    for (marking, location) in [("C-1", "Main entrance"), ("C-2", "Server room")] {
        store
            .create_cylinder(
                t,
                &admin,
                NewCylinder {
                    marking: marking.into(),
                    name: format!("Cylinder {marking}"),
                    location: Some(location.into()),
                },
            )
            .await?;
    }
    let mut devices = Vec::new();
    for (serial, name, kind) in [
        ("RU-1", "Wall unit, lobby", DeviceKind::RemoteUnit),
        ("DU-1", "Desk unit, office", DeviceKind::DeskUnit),
    ] {
        let device = store
            .create_remote_device(
                t,
                &admin,
                NewRemoteDevice {
                    name: name.into(),
                    kind,
                    serial: serial.into(),
                },
            )
            .await?;
        devices.push((device.id, kind, device.serial));
    }
    let agent = store
        .create_agent(t, &admin, "Demo site agent".into())
        .await?;
    let device_ids = devices.iter().map(|d| d.0).collect();
    store
        .set_agent_devices(t, &admin, agent.item.id, device_ids)
        .await?;
    Ok(Some(Demo {
        tenant: provisioned.tenant.slug,
        agent_id: agent.item.id,
        agent_secret: agent.secret,
        devices,
    }))
}

/// The demo's first super administrator, who sets the demo up.
async fn admin_principal(store: &Store, t: TenantId) -> Result<Principal> {
    let txn = store.begin_in(t).await?;
    let key = programming_keys::Entity::find()
        .filter(programming_keys::Column::TenantId.eq(t.0))
        .filter(programming_keys::Column::Marking.eq(PEOPLE[0].0))
        .one(&txn)
        .await
        .db()?
        .ok_or_else(|| Error::not_found("programming key"))?;
    txn.commit().await.db()?;
    Ok(Principal {
        kind: PrincipalKind::User,
        id: key.id,
        tenant_id: Some(t),
        roles: PEOPLE[0].3.iter().copied().collect(),
        pin_change_only: false,
    })
}

/// Demo PINs are set as if their holders had chosen them: not one-time. The
/// demo's people were set up before the demo began, so their keys carry no
/// hold from being issued: the walkthrough can approve at once.
async fn set_known_pin(
    store: &Store,
    t: TenantId,
    marking: &str,
    roles: &RoleSet,
    pin: &str,
) -> Result<()> {
    let hash = secrets::hash_pin(pin).await?;
    let mut change = store.change_as(t, Actor::system()).await?;
    let key = programming_keys::Entity::find()
        .filter(programming_keys::Column::TenantId.eq(t.0))
        .filter(programming_keys::Column::Marking.eq(marking))
        .one(&*change)
        .await
        .db()?
        .ok_or_else(|| Error::not_found("programming key"))?;
    programming_keys::Entity::update_many()
        .col_expr(programming_keys::Column::PinHash, Expr::value(hash))
        .col_expr(programming_keys::Column::PinOneTime, Expr::value(false))
        .col_expr(
            programming_keys::Column::HoldUntil,
            Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None),
        )
        .col_expr(
            programming_keys::Column::Roles,
            Expr::value(serde_json::to_value(roles).map_err(anyhow::Error::from)?),
        )
        .filter(programming_keys::Column::Id.eq(key.id))
        .exec(&*change)
        .await
        .db()?;
    let details = json!({"one_time": false, "demo": true, "roles": roles, "hold_until": null});
    change.record(NewEntry::new(
        Action::ProgrammingKeyPinSet,
        names::PROGRAMMING_KEY,
        key.id,
        details,
    ));
    store.commit(change).await
}
