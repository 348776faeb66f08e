//! `/v1/history`: the tenant's append-only, hash-chained record, its
//! checkpoints, its verification and its export.

mod checkpoints;
mod export;
mod verify;

pub use checkpoints::{list_checkpoints, list_signing_keys};
pub use export::{ExportLine, export_history};
pub use verify::{get_verify_history, post_verify_history};

use actix_web::{get, web};
use chrono::{DateTime, Utc};
use countersign_domain::ErrorCode;
use countersign_domain::history::{Actor, HistoryEntry, HistoryFilter};
use countersign_domain::page::{DEFAULT_LIMIT, MAX_LIMIT};
use countersign_domain::permission::Action;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::extract::Caller;
use crate::pagination::Page;
use crate::problem::{ApiError, ListProblems};
use crate::state::AppState;

/// Filters of the history; all of them must hold.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// e.g. `event_log_request`, `readout_job`, `programming_key`, `key`, `tenant`.
    pub subject_type: Option<String>,
    pub subject_id: Option<Uuid>,
    /// The acting programming key, API key or agent.
    pub actor_id: Option<Uuid>,
    /// e.g. `programming_key.issued`, `auth.login`.
    pub action: Option<String>,
    /// Entries at or after this time (RFC 3339 with an explicit offset).
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// Entries before this time (RFC 3339 with an explicit offset).
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ActorOut {
    /// `user`, `webservice`, `agent`, `operator` or `system`.
    pub kind: String,
    pub id: Option<Uuid>,
    pub name: String,
    pub programming_key_id: Option<Uuid>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SubjectOut {
    #[serde(rename = "type")]
    pub type_: String,
    pub id: Option<Uuid>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HistoryEntryOut {
    /// The entry's place in the tenant's chain, from 1.
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: ActorOut,
    pub action: String,
    pub subject: SubjectOut,
    /// Comments, old and new values, reasons; never PINs or secrets.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// SHA-256 over the RFC 8785 canonical JSON of the entry and `prev_hash`.
    pub hash: String,
    pub prev_hash: String,
}

impl From<HistoryEntry> for HistoryEntryOut {
    fn from(e: HistoryEntry) -> Self {
        HistoryEntryOut {
            seq: e.seq,
            at: e.at,
            actor: ActorOut {
                kind: e.actor.kind,
                id: e.actor.id,
                name: e.actor.name,
                programming_key_id: e.actor.programming_key_id,
            },
            action: e.action,
            subject: SubjectOut {
                type_: e.subject_type,
                id: e.subject_id,
            },
            details: e.details,
            hash: e.hash,
            prev_hash: e.prev_hash,
        }
    }
}

impl From<HistoryEntryOut> for HistoryEntry {
    fn from(e: HistoryEntryOut) -> Self {
        HistoryEntry {
            seq: e.seq,
            at: e.at,
            actor: Actor {
                kind: e.actor.kind,
                id: e.actor.id,
                name: e.actor.name,
                programming_key_id: e.actor.programming_key_id,
            },
            action: e.action,
            subject_type: e.subject.type_,
            subject_id: e.subject.id,
            details: e.details,
            hash: e.hash,
            prev_hash: e.prev_hash,
        }
    }
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidQuery, detail)
}

fn time(name: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| invalid(format!("{name} must be an RFC 3339 time with an offset")))
        })
        .transpose()
}

impl HistoryQuery {
    fn filter(self, requests_only: bool) -> Result<HistoryFilter, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(invalid(format!("limit must be between 1 and {MAX_LIMIT}")));
        }
        let after_seq = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(
                c.parse::<i64>()
                    .map_err(|_| invalid("cursor is not one this API returned"))?,
            ),
        };
        let from = time("from", self.from.as_deref())?;
        let to = time("to", self.to.as_deref())?;
        // No text column can hold U+0000; such a filter matches nothing anyway.
        if [&self.subject_type, &self.action]
            .into_iter()
            .flatten()
            .any(|v| v.contains('\0'))
        {
            return Err(invalid("subject_type and action must not contain U+0000"));
        }
        Ok(HistoryFilter {
            subject_type: self.subject_type,
            subject_id: self.subject_id,
            actor_id: self.actor_id,
            action: self.action,
            from,
            to,
            requests_only,
            after_seq,
            limit,
        })
    }
}

/// Approvers see the history of requests and jobs only.
#[utoipa::path(
    tag = "history",
    params(HistoryQuery),
    responses(
        (status = 200, body = Page<HistoryEntryOut>),
        ListProblems,
    ),
    security(("bearer" = []))
)]
#[get("/history")]
pub async fn list_history(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<HistoryQuery>,
) -> Result<web::Json<Page<HistoryEntryOut>>, ApiError> {
    let (t, requests_only) = match caller.principal.tenant_for(Action::ReadHistory) {
        Ok(t) => (t, false),
        Err(_) => (
            caller.principal.tenant_for(Action::ReadRequestHistory)?,
            true,
        ),
    };
    let filter = query.into_inner().filter(requests_only)?;
    let (entries, next) = state.store.list_history(t, filter).await?;
    Ok(web::Json(Page {
        items: entries.into_iter().map(HistoryEntryOut::from).collect(),
        next_cursor: next.map(|seq| seq.to_string()),
    }))
}
