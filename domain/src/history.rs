//! The history (SPEC §5): who did what to which subject, append-only and
//! hash-chained per tenant.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

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

/// What is appended; sequence, time and hashes are added by the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry {
    pub action: &'static str,
    pub subject_type: &'static str,
    pub subject_id: Option<Uuid>,
    pub details: serde_json::Value,
}

impl NewEntry {
    pub fn new(
        action: &'static str,
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

/// The result of recomputing a tenant's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub valid: bool,
    pub entries_checked: u64,
    pub signatures_checked: u64,
    /// The newest sequence number covered by a valid signature.
    pub last_signed_seq: Option<i64>,
    /// The first entry whose hash, link or signature does not hold.
    pub first_broken_seq: Option<i64>,
    pub reason: Option<String>,
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
}
