//! OpenAPI schemas of the domain's enumerations, which stay free of web crates.
//! Bodies carry the domain types themselves; these only describe them.

#![allow(dead_code)]

use utoipa::ToSchema;

/// A tenant role (SPEC §2).
#[derive(ToSchema)]
#[schema(as = Role)]
#[allow(clippy::enum_variant_names)]
pub enum RoleName {
    #[schema(rename = "super_administrator")]
    SuperAdministrator,
    #[schema(rename = "system_administrator")]
    SystemAdministrator,
    #[schema(rename = "approver")]
    Approver,
    #[schema(rename = "cylinder_programmer")]
    CylinderProgrammer,
    #[schema(rename = "receptionist")]
    Receptionist,
    #[schema(rename = "auditor")]
    Auditor,
    #[schema(rename = "webservice")]
    Webservice,
}

#[derive(ToSchema)]
#[schema(as = Locale)]
pub enum LocaleName {
    #[schema(rename = "de")]
    De,
    #[schema(rename = "en")]
    En,
}

#[derive(ToSchema)]
#[schema(as = TenantStatus)]
pub enum TenantStatusName {
    #[schema(rename = "active")]
    Active,
    #[schema(rename = "suspended")]
    Suspended,
}

#[derive(ToSchema)]
#[schema(as = KeyStatus)]
pub enum KeyStatusName {
    #[schema(rename = "in_stock")]
    InStock,
    #[schema(rename = "issued")]
    Issued,
    #[schema(rename = "returned")]
    Returned,
}

#[derive(ToSchema)]
#[schema(as = KeyModel)]
pub enum KeyModelName {
    #[schema(rename = "e2")]
    E2,
    #[schema(rename = "e3")]
    E3,
    #[schema(rename = "basic")]
    Basic,
}

#[derive(ToSchema)]
#[schema(as = DeviceKind)]
pub enum DeviceKindName {
    #[schema(rename = "remote_unit")]
    RemoteUnit,
    #[schema(rename = "desk_unit")]
    DeskUnit,
}

#[derive(ToSchema)]
#[schema(as = PrincipalKind)]
pub enum PrincipalKindName {
    #[schema(rename = "user")]
    User,
    #[schema(rename = "webservice")]
    Webservice,
    #[schema(rename = "agent")]
    Agent,
    #[schema(rename = "operator")]
    Operator,
}
