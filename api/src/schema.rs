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

#[derive(ToSchema)]
#[schema(as = TargetType)]
pub enum TargetTypeName {
    #[schema(rename = "key")]
    Key,
    #[schema(rename = "cylinder")]
    Cylinder,
}

#[derive(ToSchema)]
#[schema(as = RequestStatus)]
pub enum RequestStatusName {
    #[schema(rename = "pending_approval")]
    PendingApproval,
    #[schema(rename = "approved")]
    Approved,
    #[schema(rename = "rejected")]
    Rejected,
    #[schema(rename = "cancelled")]
    Cancelled,
    #[schema(rename = "expired")]
    Expired,
    #[schema(rename = "completed")]
    Completed,
    #[schema(rename = "failed")]
    Failed,
}

#[derive(ToSchema)]
#[schema(as = JobStatus)]
pub enum JobStatusName {
    #[schema(rename = "queued")]
    Queued,
    #[schema(rename = "awaiting_transfer")]
    AwaitingTransfer,
    #[schema(rename = "transferred")]
    Transferred,
    #[schema(rename = "loaded")]
    Loaded,
    #[schema(rename = "running")]
    Running,
    #[schema(rename = "completed")]
    Completed,
    #[schema(rename = "failed")]
    Failed,
    #[schema(rename = "cancelled")]
    Cancelled,
    #[schema(rename = "expired")]
    Expired,
}

#[derive(ToSchema)]
#[schema(as = JobKind)]
pub enum JobKindName {
    #[schema(rename = "request_readout")]
    RequestReadout,
    #[schema(rename = "auto_collection")]
    AutoCollection,
    #[schema(rename = "desk_readout")]
    DeskReadout,
}

#[derive(ToSchema)]
#[schema(as = Verdict)]
pub enum VerdictName {
    #[schema(rename = "approve")]
    Approve,
    #[schema(rename = "reject")]
    Reject,
}
