//! The history (SPEC §5): who did what to which subject, append-only and
//! hash-chained per tenant.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub mod checkpoint;
pub mod verify;

pub use checkpoint::Checkpoint;
pub use verify::{ChainCrypto, ChainWalk, GENESIS, Problem, SignatureCheck, Status, Verification};

/// Who acted: a person through a programming key, an integration, an agent,
/// the operator, or Countersign itself (expiry, retention).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub kind: String,
    pub id: Option<Uuid>,
    pub name: String,
    pub programming_key_id: Option<Uuid>,
}

impl Actor {
    pub fn system() -> Self {
        Actor {
            kind: "system".into(),
            id: None,
            name: "Countersign".into(),
            programming_key_id: None,
        }
    }
}

/// Declares the history's actions once: each variant with the name it is
/// stored, hashed and filtered by.
macro_rules! actions {
    ($($variant:ident => $name:literal,)*) => {
        /// What a history entry records.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Action {
            $($variant,)*
        }

        impl Action {
            pub const ALL: &[Action] = &[$(Action::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Action::$variant => $name,)*
                }
            }

            pub fn parse(name: &str) -> Option<Action> {
                match name {
                    $($name => Some(Action::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

actions! {
    Login => "auth.login",
    Logout => "auth.logout",
    TenantProvisioned => "tenant.provisioned",
    TenantUpdated => "tenant.updated",
    EmployeeCreated => "employee.created",
    EmployeeUpdated => "employee.updated",
    KeyGroupCreated => "key_group.created",
    KeyGroupRenamed => "key_group.renamed",
    KeyCreated => "key.created",
    KeyUpdated => "key.updated",
    KeyIssued => "key.issued",
    KeyReturned => "key.returned",
    KeyAutoCollectionStopped => "key.auto_collection_stopped",
    CylinderCreated => "cylinder.created",
    CylinderUpdated => "cylinder.updated",
    RemoteDeviceCreated => "remote_device.created",
    RemoteDeviceRenamed => "remote_device.renamed",
    ProgrammingKeyCreated => "programming_key.created",
    ProgrammingKeyUpdated => "programming_key.updated",
    ProgrammingKeyRolesChanged => "programming_key.roles_changed",
    ProgrammingKeyIssued => "programming_key.issued",
    ProgrammingKeyReturned => "programming_key.returned",
    ProgrammingKeyBlocked => "programming_key.blocked",
    ProgrammingKeyUnblocked => "programming_key.unblocked",
    ProgrammingKeyPinSet => "programming_key.pin_set",
    ProgrammingKeyApproverChanged => "programming_key.approver_changed",
    AgentCreated => "agent.created",
    AgentSecretRotated => "agent.secret_rotated",
    AgentDevicesAssigned => "agent.devices_assigned",
    ApiKeyCreated => "api_key.created",
    ApiKeyDeleted => "api_key.deleted",
    ImportCompleted => "import.completed",
    RequestCreated => "request.created",
    RequestAutoApproved => "request.auto_approved",
    RequestDecided => "request.decided",
    RequestStatusChanged => "request.status_changed",
    JobCreated => "job.created",
    JobClaimed => "job.claimed",
    JobLeaseTakenOver => "job.lease_taken_over",
    JobStatusChanged => "job.status_changed",
    EventDataReceived => "event_data.received",
    EventDataRead => "event_data.read",
    EventDataExported => "event_data.exported",
    EventDataDeleted => "event_data.deleted",
    HistoryExported => "history.exported",
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is appended; sequence, time and hashes are added by the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry {
    pub action: Action,
    pub subject_type: &'static str,
    pub subject_id: Option<Uuid>,
    pub details: serde_json::Value,
}

impl NewEntry {
    pub fn new(
        action: Action,
        subject_type: &'static str,
        subject_id: Uuid,
        details: serde_json::Value,
    ) -> Self {
        NewEntry {
            action,
            subject_type,
            subject_id: Some(subject_id),
            details,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub action: String,
    pub subject_type: String,
    pub subject_id: Option<Uuid>,
    pub details: serde_json::Value,
    pub hash: String,
    pub prev_hash: String,
}

/// Filters of `GET /v1/history`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryFilter {
    pub subject_type: Option<String>,
    pub subject_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
    pub action: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Approvers see only the history of requests.
    pub requests_only: bool,
    /// Entries after this sequence number (pagination).
    pub after_seq: Option<i64>,
    pub limit: u32,
}

/// A public key that signs or signed checkpoints (SPEC §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyInfo {
    /// The first 8 bytes of the SHA-256 of the raw public key, in hex.
    pub key_id: String,
    /// Always `Ed25519`.
    pub algorithm: &'static str,
    /// The 32-byte public key in standard base64.
    pub public_key: String,
    /// Whether new checkpoints are signed with it; retired keys are not.
    pub current: bool,
}

/// The subject types and actions written to the history.
pub mod names {
    pub const REQUEST: &str = "event_log_request";
    pub const JOB: &str = "readout_job";
    pub const KEY: &str = "key";
    pub const CYLINDER: &str = "cylinder";
    pub const PROGRAMMING_KEY: &str = "programming_key";
    pub const TENANT: &str = "tenant";
    pub const EVENT_DATA: &str = "event_data";
    pub const AGENT: &str = "agent";
    pub const API_KEY: &str = "api_key";
    pub const EMPLOYEE: &str = "employee";
    pub const KEY_GROUP: &str = "key_group";
    pub const REMOTE_DEVICE: &str = "remote_device";
    pub const IMPORT: &str = "import";
    pub const HISTORY: &str = "history";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_has_a_name_of_its_own_that_reads_back() {
        let mut seen = std::collections::HashSet::new();
        for action in Action::ALL {
            assert!(seen.insert(action.as_str()), "{action} twice");
            assert_eq!(Action::parse(action.as_str()), Some(*action));
        }
        assert_eq!(Action::parse("request.approved_by_magic"), None);
    }
}
