//! The ports the HTTP layer drives and the adapters in `infra` implement.
//! Every tenant-scoped method takes the caller's [`TenantId`] first, so there is
//! no way to reach another tenant's rows.

use std::net::IpAddr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::auth::{Grant, Session, TokenSet};
use crate::directory::{
    Agent, ApiKey, Cylinder, DeviceKind, Employee, Key, KeyGroup, KeyModel, ProgrammingKey,
    RemoteDevice,
};
use crate::error::Result;
use crate::page::{Page, PageRequest};
use crate::permission::PrincipalKind;
use crate::role::RoleSet;
use crate::tenant::{FixedSettings, MutableSettings, Tenant, TenantChange, TenantId};

/// The source of the current time; tests substitute their own.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Debug, Clone)]
pub struct NewTenant {
    pub slug: String,
    pub fixed: FixedSettings,
    pub settings: MutableSettings,
    pub admin_name: String,
    pub admin_email: String,
    pub admin_marking: String,
}

#[derive(Debug, Clone)]
pub struct ProvisionedTenant {
    pub tenant: Tenant,
    pub initial_pin: String,
}

#[async_trait]
pub trait Tenants: Send + Sync {
    async fn provision(&self, new: NewTenant) -> Result<ProvisionedTenant>;
    async fn list_tenants(&self, page: PageRequest) -> Result<Page<Tenant>>;
    async fn get_tenant(&self, id: TenantId) -> Result<Tenant>;
    async fn update_tenant(&self, id: TenantId, change: TenantChange) -> Result<Tenant>;
}

/// Who the caller is, for `GET /v1/me`.
#[derive(Debug, Clone)]
pub struct Me {
    pub kind: PrincipalKind,
    pub id: Uuid,
    pub name: String,
    pub tenant: Option<Tenant>,
    pub roles: RoleSet,
    pub employee_id: Option<Uuid>,
    pub pin_change_required: bool,
    /// A programming key on hold after an approver change: until when.
    pub hold_until: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait Auth: Send + Sync {
    /// `POST /v1/auth/token` from `client`: every failure of the credential
    /// itself is one and the same error; attempts are throttled by
    /// [`Grant::attempt_limits`].
    async fn token(&self, grant: Grant, client: IpAddr) -> Result<TokenSet>;
    /// Verifies a bearer token: signature, claims, revocation, tenant status.
    async fn authenticate(&self, bearer: &str) -> Result<Session>;
    /// Ends the token and, for people, its refresh family.
    async fn revoke(&self, session: &Session) -> Result<()>;
    async fn me(&self, session: &Session) -> Result<Me>;
    /// The holder sets their own PIN (also the way out of a one-time PIN).
    /// Throttled like a PIN login, by [`crate::auth::pin_change_limits`].
    async fn set_own_pin(
        &self,
        session: &Session,
        current_pin: &str,
        new_pin: &str,
        client: IpAddr,
    ) -> Result<()>;
}

#[derive(Debug, Clone)]
pub struct EmployeeChange {
    pub name: Option<String>,
    /// `Some(None)` removes the address.
    pub email: Option<Option<String>>,
}

#[derive(Debug, Clone)]
pub struct NewProgrammingKey {
    pub marking: String,
    pub name: String,
    pub roles: RoleSet,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default)]
pub struct ProgrammingKeyChange {
    pub name: Option<String>,
    pub roles: Option<RoleSet>,
    pub valid_from: Option<Option<DateTime<Utc>>>,
    pub valid_until: Option<Option<DateTime<Utc>>>,
}

/// A one-shot change of a programming key's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgrammingKeyCommand {
    Issue { employee_id: Uuid },
    Return,
    Block,
    Unblock,
}

#[derive(Debug, Clone)]
pub struct NewKey {
    pub marking: String,
    pub name: String,
    pub model: KeyModel,
    pub key_group_id: Option<Uuid>,
}

#[derive(Debug, Clone, Default)]
pub struct KeyChange {
    pub name: Option<String>,
    pub key_group_id: Option<Option<Uuid>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCommand {
    Issue { employee_id: Uuid },
    Return,
    StopAutoCollection,
}

#[derive(Debug, Clone)]
pub struct NewCylinder {
    pub marking: String,
    pub name: String,
    pub location: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct CylinderChange {
    pub name: Option<String>,
    pub location: Option<Option<String>>,
}

#[derive(Debug, Clone)]
pub struct NewRemoteDevice {
    pub name: String,
    pub kind: DeviceKind,
    pub serial: String,
}

/// A credential whose secret is shown once, at creation or rotation.
#[derive(Debug, Clone)]
pub struct WithSecret<T> {
    pub item: T,
    pub secret: String,
}

#[async_trait]
pub trait Employees: Send + Sync {
    async fn create_employee(
        &self,
        t: TenantId,
        by: &Principal,
        name: String,
        email: Option<String>,
    ) -> Result<Employee>;
    async fn list_employees(&self, t: TenantId, page: PageRequest) -> Result<Page<Employee>>;
    async fn get_employee(&self, t: TenantId, id: Uuid) -> Result<Employee>;
    async fn update_employee(
        &self,
        t: TenantId,
        by: &Principal,
        id: Uuid,
        change: EmployeeChange,
    ) -> Result<Employee>;
}

#[async_trait]
pub trait ProgrammingKeys: Send + Sync {
    async fn create_programming_key(
        &self,
        t: TenantId,
        by: &Principal,
        new: NewProgrammingKey,
    ) -> Result<ProgrammingKey>;
    async fn list_programming_keys(
        &self,
        t: TenantId,
        page: PageRequest,
    ) -> Result<Page<ProgrammingKey>>;
    async fn get_programming_key(&self, t: TenantId, id: Uuid) -> Result<ProgrammingKey>;
    async fn update_programming_key(
        &self,
        t: TenantId,
        by: &Principal,
        id: Uuid,
        change: ProgrammingKeyChange,
    ) -> Result<ProgrammingKey>;
    async fn command_programming_key(
        &self,
        t: TenantId,
        by: &Principal,
        id: Uuid,
        command: ProgrammingKeyCommand,
    ) -> Result<ProgrammingKey>;
    /// Sets a one-time PIN and ends the key's tokens. An approver key takes no
    /// PIN from the caller (`pin` must be `None`): the server makes one and
    /// mails it to the holder alone, and the key goes on hold.
    async fn set_programming_key_pin(
        &self,
        t: TenantId,
        by: &Principal,
        id: Uuid,
        pin: Option<String>,
    ) -> Result<PinDelivery>;
}

/// How a PIN set by someone other than the key's holder was delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinDelivery {
    /// The PIN the caller chose was set.
    AsGiven,
    /// The server made a one-time PIN and mailed it to the holder alone; the
    /// key is on hold until `hold_until`.
    MailedToHolder { hold_until: Option<DateTime<Utc>> },
}

#[async_trait]
pub trait Keys: Send + Sync {
    async fn create_key(&self, t: TenantId, by: &Principal, new: NewKey) -> Result<Key>;
    async fn list_keys(&self, t: TenantId, page: PageRequest) -> Result<Page<Key>>;
    async fn get_key(&self, t: TenantId, id: Uuid) -> Result<Key>;
    async fn update_key(
        &self,
        t: TenantId,
        by: &Principal,
        id: Uuid,
        change: KeyChange,
    ) -> Result<Key>;
    async fn command_key(
        &self,
        t: TenantId,
        by: &Principal,
        id: Uuid,
        command: KeyCommand,
    ) -> Result<Key>;
}

/// Key groups, cylinders and remote devices.
#[async_trait]
pub trait Inventory: Send + Sync {
    async fn create_key_group(
        &self,
        t: TenantId,
        by: &Principal,
        marking: String,
        name: String,
    ) -> Result<KeyGroup>;
    async fn list_key_groups(&self, t: TenantId, page: PageRequest) -> Result<Page<KeyGroup>>;
    async fn get_key_group(&self, t: TenantId, id: Uuid) -> Result<KeyGroup>;
    async fn rename_key_group(
        &self,
        t: TenantId,
        by: &Principal,
        id: Uuid,
        name: String,
    ) -> Result<KeyGroup>;

    async fn create_cylinder(
        &self,
        t: TenantId,
        by: &Principal,
        new: NewCylinder,
    ) -> Result<Cylinder>;
    async fn list_cylinders(&self, t: TenantId, page: PageRequest) -> Result<Page<Cylinder>>;
    async fn get_cylinder(&self, t: TenantId, id: Uuid) -> Result<Cylinder>;
    async fn update_cylinder(
        &self,
        t: TenantId,
        by: &Principal,
        id: Uuid,
        change: CylinderChange,
    ) -> Result<Cylinder>;

    async fn create_remote_device(
        &self,
        t: TenantId,
        by: &Principal,
        new: NewRemoteDevice,
    ) -> Result<RemoteDevice>;
    async fn list_remote_devices(
        &self,
        t: TenantId,
        page: PageRequest,
    ) -> Result<Page<RemoteDevice>>;
    async fn get_remote_device(&self, t: TenantId, id: Uuid) -> Result<RemoteDevice>;
    async fn rename_remote_device(
        &self,
        t: TenantId,
        by: &Principal,
        id: Uuid,
        name: String,
    ) -> Result<RemoteDevice>;
}

#[async_trait]
pub trait Agents: Send + Sync {
    async fn create_agent(
        &self,
        t: TenantId,
        by: &Principal,
        name: String,
    ) -> Result<WithSecret<Agent>>;
    async fn list_agents(&self, t: TenantId, page: PageRequest) -> Result<Page<Agent>>;
    async fn get_agent(&self, t: TenantId, id: Uuid) -> Result<Agent>;
    async fn rotate_agent_secret(
        &self,
        t: TenantId,
        by: &Principal,
        id: Uuid,
    ) -> Result<WithSecret<Agent>>;
    async fn set_agent_devices(
        &self,
        t: TenantId,
        by: &Principal,
        id: Uuid,
        device_ids: Vec<Uuid>,
    ) -> Result<Agent>;
}

#[async_trait]
pub trait ApiKeys: Send + Sync {
    async fn create_api_key(
        &self,
        t: TenantId,
        by: &Principal,
        name: String,
        roles: RoleSet,
    ) -> Result<WithSecret<ApiKey>>;
    async fn list_api_keys(&self, t: TenantId, page: PageRequest) -> Result<Page<ApiKey>>;
    async fn get_api_key(&self, t: TenantId, id: Uuid) -> Result<ApiKey>;
    /// Deletes the credential and ends its tokens.
    async fn delete_api_key(&self, t: TenantId, by: &Principal, id: Uuid) -> Result<()>;
}

/// One item of an extension import.
#[derive(Debug, Clone, Default)]
pub struct ImportBatch {
    pub keys: Vec<NewKey>,
    pub key_groups: Vec<(String, String)>,
    pub cylinders: Vec<NewCylinder>,
    pub remote_devices: Vec<NewRemoteDevice>,
    pub programming_keys: Vec<(String, String)>,
}

/// Per kind: the markings (serials for devices) created and those already there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOutcome {
    pub created: Vec<String>,
    pub existing: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub keys: ImportOutcome,
    pub key_groups: ImportOutcome,
    pub cylinders: ImportOutcome,
    pub remote_devices: ImportOutcome,
    pub programming_keys: ImportOutcome,
}

#[async_trait]
pub trait Imports: Send + Sync {
    /// Adds inventory in one transaction, idempotent by marking.
    async fn import(&self, t: TenantId, by: &Principal, batch: ImportBatch)
    -> Result<ImportReport>;
}

#[async_trait]
pub trait Health: Send + Sync {
    /// Whether the database answers.
    async fn ready(&self) -> bool;
}

/// Everything the HTTP layer needs from persistence, as one object.
pub trait Store:
    Tenants
    + Employees
    + ProgrammingKeys
    + Keys
    + Inventory
    + Agents
    + ApiKeys
    + Imports
    + Health
    + History
    + Requests
    + Jobs
    + EventData
    + Sweeper
    + AgentWork
{
}

impl<T> Store for T where
    T: Tenants
        + Employees
        + ProgrammingKeys
        + Keys
        + Inventory
        + Agents
        + ApiKeys
        + Imports
        + Health
        + History
        + Requests
        + Jobs
        + EventData
        + Sweeper
        + AgentWork
{
}

// ---- the approval workflow -------------------------------------------------

use crate::history::{Checkpoint, HistoryEntry, HistoryFilter, SigningKeyInfo, Verification};
use crate::permission::Principal;
use crate::workflow::{JobKind, JobStatus, RequestStatus, TargetType, Verdict};

#[async_trait]
pub trait History: Send + Sync {
    async fn list_history(
        &self,
        t: TenantId,
        filter: HistoryFilter,
    ) -> Result<(Vec<HistoryEntry>, Option<i64>)>;
    /// Recomputes the chain and checks every stored checkpoint and those
    /// the caller kept (of tenant `t`, well-formed). Writes nothing.
    async fn verify_history(&self, t: TenantId, kept: Vec<Checkpoint>) -> Result<Verification>;
    /// The tenant's checkpoints, oldest first.
    async fn list_checkpoints(&self, t: TenantId, page: PageRequest) -> Result<Page<Checkpoint>>;
    /// The public keys that sign checkpoints now and signed them before.
    fn signing_keys(&self) -> Vec<SigningKeyInfo>;
    /// Records that `by` exports the chain in `format`; answers the head the
    /// export runs through (its own entry included): sequence number and hash.
    async fn record_export(
        &self,
        t: TenantId,
        by: &Principal,
        format: &str,
    ) -> Result<(i64, String)>;
    /// The entries after `after` up to `through` (at most a batch of them),
    /// with the checkpoints of those entries.
    async fn export_batch(
        &self,
        t: TenantId,
        after: i64,
        through: i64,
    ) -> Result<(Vec<HistoryEntry>, Vec<Checkpoint>)>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRef {
    pub target_type: TargetType,
    pub id: Uuid,
    pub marking: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequesterView {
    pub kind: PrincipalKind,
    pub employee_id: Option<Uuid>,
    pub programming_key_id: Option<Uuid>,
    pub api_key_id: Option<Uuid>,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionView {
    pub verdict: Verdict,
    pub comment: Option<String>,
    pub employee_id: Uuid,
    pub programming_key_id: Uuid,
    pub name: String,
    pub decided_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobView {
    pub id: Uuid,
    pub kind: JobKind,
    pub request_id: Option<Uuid>,
    pub target_type: TargetType,
    pub target_id: Uuid,
    pub target_marking: String,
    pub status: JobStatus,
    pub device_id: Option<Uuid>,
    pub programming_key_id: Option<Uuid>,
    pub attempts: i32,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestView {
    pub id: Uuid,
    pub target: TargetRef,
    pub status: RequestStatus,
    pub comment: Option<String>,
    pub requested_by: RequesterView,
    pub requested_at: DateTime<Utc>,
    pub approvals_required: u8,
    pub decisions: Vec<DecisionView>,
    pub job: Option<JobView>,
    pub expires_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFilter {
    pub status: Option<RequestStatus>,
    pub target_type: Option<TargetType>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    pub kind: Option<JobKind>,
    /// Only the jobs transferred to this programming key (a cylinder programmer's view).
    pub programming_key_id: Option<Uuid>,
}

#[async_trait]
pub trait Requests: Send + Sync {
    async fn create_request(
        &self,
        t: TenantId,
        by: &Principal,
        target_type: TargetType,
        target_id: Uuid,
        comment: Option<String>,
    ) -> Result<RequestView>;
    async fn list_requests(
        &self,
        t: TenantId,
        filter: RequestFilter,
        page: PageRequest,
    ) -> Result<Page<RequestView>>;
    async fn get_request(&self, t: TenantId, id: Uuid) -> Result<RequestView>;
    async fn decide(
        &self,
        t: TenantId,
        by: &Principal,
        id: Uuid,
        verdict: Verdict,
        comment: Option<String>,
    ) -> Result<RequestView>;
    async fn cancel_request(
        &self,
        t: TenantId,
        by: &Principal,
        id: Uuid,
        reason: Option<String>,
    ) -> Result<RequestView>;
    async fn transfer_request(
        &self,
        t: TenantId,
        by: &Principal,
        id: Uuid,
        programming_key_id: Uuid,
    ) -> Result<RequestView>;
}

#[async_trait]
pub trait Jobs: Send + Sync {
    async fn list_jobs(
        &self,
        t: TenantId,
        filter: JobFilter,
        page: PageRequest,
    ) -> Result<Page<JobView>>;
    async fn get_job(
        &self,
        t: TenantId,
        id: Uuid,
        programming_key_id: Option<Uuid>,
    ) -> Result<JobView>;
    async fn desk_readout(
        &self,
        t: TenantId,
        by: &Principal,
        key_id: Uuid,
        device_id: Uuid,
    ) -> Result<JobView>;
}

/// One event of a key's or a cylinder's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// The device's sequence number: unique per source.
    pub seq: i64,
    pub occurred_at: DateTime<Utc>,
    pub kind: String,
    pub key_marking: Option<String>,
    pub cylinder_marking: Option<String>,
    pub job_id: Option<Uuid>,
}

/// Time filters of an event-log read; bounds are inclusive `from`, exclusive `to`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Events after this sequence number (pagination).
    pub after_seq: Option<i64>,
    pub limit: u32,
}

/// An event log for export: the header of the document and its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventExport {
    pub tenant: Tenant,
    pub target: TargetRef,
    pub query: EventQuery,
    pub events: Vec<EventRecord>,
}

#[async_trait]
pub trait EventData: Send + Sync {
    /// Stores events of a source, idempotent by sequence number; returns how many were new.
    async fn store_events(
        &self,
        t: TenantId,
        source: TargetType,
        source_id: Uuid,
        job_id: Option<Uuid>,
        events: Vec<EventRecord>,
    ) -> Result<u64>;
    /// One page of a source's events; the read is recorded in the history.
    async fn read_events(
        &self,
        t: TenantId,
        by: &Principal,
        source: TargetType,
        source_id: Uuid,
        query: EventQuery,
    ) -> Result<(Tenant, Vec<EventRecord>, Option<i64>)>;
    /// All events of a source in the range, for CSV or PDF; the export is recorded in the history.
    async fn export_events(
        &self,
        t: TenantId,
        by: &Principal,
        source: TargetType,
        source_id: Uuid,
        query: EventQuery,
        format: &str,
    ) -> Result<EventExport>;
}

/// What one pass of the background sweeper did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub requests_expired: u64,
    pub events_deleted: u64,
}

#[async_trait]
pub trait Sweeper: Send + Sync {
    /// Expires requests past their TTL and deletes event data past retention.
    async fn sweep(&self, now: DateTime<Utc>) -> Result<SweepReport>;
}

// ---- device agents ---------------------------------------------------------

/// How long a lease lasts without a heartbeat.
pub const LEASE_SECS: i64 = 60;
/// The longest long poll.
pub const MAX_POLL_SECS: u64 = 50;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyWork {
    pub key_marking: String,
    pub reason: JobKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgrammingKeyWork {
    pub programming_key_marking: String,
    pub load: Vec<Uuid>,
    pub collect: Vec<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeskWork {
    pub job_id: Uuid,
    pub device_id: Uuid,
    pub key_marking: String,
}

/// What an agent has to do; `version` changes whenever the list does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkList {
    pub version: String,
    pub devices: Vec<RemoteDevice>,
    pub keys: Vec<KeyWork>,
    pub programming_keys: Vec<ProgrammingKeyWork>,
    pub desk_readouts: Vec<DeskWork>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub token: Uuid,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub job: JobView,
    pub lease: Lease,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected {
    pub load: Vec<Claimed>,
    pub collect: Vec<Claimed>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    Complete,
    Fail { reason: String, retryable: bool },
}

/// One event as a device reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadReport {
    pub received: u64,
    pub stored: u64,
}

#[async_trait]
pub trait AgentWork: Send + Sync {
    /// Records the agent's last-seen time and version.
    async fn agent_seen(&self, t: TenantId, agent: Uuid, version: Option<String>) -> Result<()>;
    /// The work list, at once when it differs from `since`, otherwise when it
    /// changes or `wait` has passed.
    async fn poll_work(
        &self,
        t: TenantId,
        agent: Uuid,
        since: Option<String>,
        wait: std::time::Duration,
    ) -> Result<WorkList>;
    async fn key_inserted(
        &self,
        t: TenantId,
        agent: Uuid,
        device_id: Uuid,
        key_marking: &str,
    ) -> Result<Option<Claimed>>;
    async fn programming_key_connected(
        &self,
        t: TenantId,
        agent: Uuid,
        device_id: Uuid,
        marking: &str,
    ) -> Result<Connected>;
    async fn claim_job(
        &self,
        t: TenantId,
        agent: Uuid,
        job_id: Uuid,
        device_id: Uuid,
    ) -> Result<Claimed>;
    async fn heartbeat(
        &self,
        t: TenantId,
        agent: Uuid,
        job_id: Uuid,
        token: Uuid,
    ) -> Result<Claimed>;
    async fn job_loaded(
        &self,
        t: TenantId,
        agent: Uuid,
        job_id: Uuid,
        token: Uuid,
    ) -> Result<JobView>;
    /// Hands a lease back unused: the job returns where it was, and the claim
    /// does not count as an attempt.
    async fn release_job(
        &self,
        t: TenantId,
        agent: Uuid,
        job_id: Uuid,
        token: Uuid,
    ) -> Result<JobView>;
    async fn upload_events(
        &self,
        t: TenantId,
        agent: Uuid,
        job_id: Uuid,
        token: Uuid,
        events: Vec<EventRecord>,
    ) -> Result<UploadReport>;
    async fn finish_job(
        &self,
        t: TenantId,
        agent: Uuid,
        job_id: Uuid,
        token: Uuid,
        outcome: JobOutcome,
    ) -> Result<JobView>;
}

// ---- operations ------------------------------------------------------------

/// What `/metrics` reports of this process, read at scrape time without a
/// database query.
#[derive(Debug, Clone, Default)]
pub struct ProcessCounts {
    /// This process's failed mail send attempts since it started.
    pub mail_send_failures: u64,
    /// This process's database pool.
    pub pool: PoolUsage,
    /// Whether Redis answers; `None` without Redis.
    pub redis_up: Option<bool>,
}

/// Aggregate counts over every tenant, from the database: the same in every
/// replica, and computed by a background worker, never at scrape time.
#[derive(Debug, Clone, Default)]
pub struct TableCounts {
    /// Event-log requests per status (`pending_approval`, `approved`, …).
    pub requests_by_status: Vec<(String, u64)>,
    /// Readout jobs per status (`queued`, `running`, `failed`, …).
    pub jobs_by_status: Vec<(String, u64)>,
    /// Outbox mails not sent, per status: `pending` (due or retrying) and `failed` (given up).
    pub mail_by_status: Vec<(String, u64)>,
    /// Pending mails that failed at least once and wait for their next attempt.
    pub mail_retrying: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolUsage {
    /// Open connections, idle or in use.
    pub size: u64,
    pub idle: u64,
    pub max: u64,
}

#[async_trait]
pub trait Operations: Send + Sync {
    /// The counts over every tenant; `None` when the database did not answer
    /// in time.
    async fn table_counts(&self) -> Option<TableCounts>;
    /// This process's figures; cheap enough for every scrape.
    async fn process_counts(&self) -> ProcessCounts;
}
