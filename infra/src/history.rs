//! The tenant's history chain: appends inside the caller's transaction,
//! serialised per tenant by locking the chain head.

use chrono::{DateTime, SubsecRound, Utc};
use countersign_domain::history::{Actor, NewEntry};
use countersign_domain::permission::{Principal, PrincipalKind};
use countersign_domain::tenant::TenantId;
use countersign_domain::{Error, Result};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, QuerySelect, Set};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::db::DbResult;
use crate::entities::{agents, api_keys, employees, history_entries, history_heads, programming_keys};

/// The `prev_hash` of a tenant's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of an entry: SHA-256 over the RFC 8785 canonical JSON of the entry
/// and the previous entry's hash.
pub fn entry_hash(tenant: Uuid, seq: i64, at: DateTime<Utc>, actor: &Actor, action: &str, subject_type: &str, subject_id: Option<Uuid>, details: &serde_json::Value, prev_hash: &str) -> Result<String> {
    let document = json!({
        "tenant_id": tenant,
        "seq": seq,
        "at": at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "actor": actor,
        "action": action,
        "subject": {"type": subject_type, "id": subject_id},
        "details": details,
        "prev_hash": prev_hash,
    });
    let canonical = serde_jcs::to_vec(&document).map_err(|e| Error::Internal(e.into()))?;
    Ok(hex::encode(Sha256::digest(canonical)))
}

pub(crate) fn hash_of(m: &history_entries::Model) -> Result<String> {
    let actor = Actor {
        kind: m.actor_kind.clone(),
        id: m.actor_id,
        name: m.actor_name.clone(),
        programming_key_id: m.actor_programming_key_id,
    };
    entry_hash(m.tenant_id, m.seq, m.at, &actor, &m.action, &m.subject_type, m.subject_id, &m.details, &m.prev_hash)
}

/// Appends entries to the tenant's chain, in the caller's transaction.
pub(crate) async fn append(conn: &impl ConnectionTrait, t: TenantId, actor: &Actor, at: DateTime<Utc>, entries: Vec<NewEntry>) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let at = at.trunc_subsecs(6);
    history_heads::Entity::insert(history_heads::ActiveModel {
        tenant_id: Set(t.0),
        seq: Set(0),
        hash: Set(GENESIS.to_owned()),
    })
    .on_conflict(OnConflict::column(history_heads::Column::TenantId).do_nothing().to_owned())
    .exec_without_returning(conn)
    .await
    .db()?;
    let head = history_heads::Entity::find_by_id(t.0)
        .lock_exclusive()
        .one(conn)
        .await
        .db()?
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("history head of {t} vanished")))?;
    let (mut seq, mut prev) = (head.seq, head.hash.clone());
    for entry in entries {
        seq += 1;
        let hash = entry_hash(t.0, seq, at, actor, entry.action, entry.subject_type, entry.subject_id, &entry.details, &prev)?;
        history_entries::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(t.0),
            seq: Set(seq),
            at: Set(at),
            actor_kind: Set(actor.kind.clone()),
            actor_id: Set(actor.id),
            actor_name: Set(actor.name.clone()),
            actor_programming_key_id: Set(actor.programming_key_id),
            action: Set(entry.action.to_owned()),
            subject_type: Set(entry.subject_type.to_owned()),
            subject_id: Set(entry.subject_id),
            details: Set(entry.details),
            prev_hash: Set(prev.clone()),
            hash: Set(hash.clone()),
        }
        .insert(conn)
        .await
        .db()?;
        prev = hash;
    }
    let mut head: history_heads::ActiveModel = head.into();
    head.seq = Set(seq);
    head.hash = Set(prev);
    head.update(conn).await.db()?;
    Ok(())
}

/// The history's view of a caller: kind, id, display name and programming key.
pub(crate) async fn actor_of(conn: &impl ConnectionTrait, p: &Principal) -> Result<Actor> {
    let (name, programming_key_id) = match p.kind {
        PrincipalKind::User => {
            let key = programming_keys::Entity::find_by_id(p.id).one(conn).await.db()?;
            let employee = match key.as_ref().and_then(|k| k.employee_id) {
                Some(id) => employees::Entity::find_by_id(id).one(conn).await.db()?,
                None => None,
            };
            let name = employee.map(|e| e.name).or_else(|| key.map(|k| k.name)).unwrap_or_default();
            (name, Some(p.id))
        }
        PrincipalKind::Webservice => {
            (api_keys::Entity::find_by_id(p.id).one(conn).await.db()?.map(|k| k.name).unwrap_or_default(), None)
        }
        PrincipalKind::Agent => (agents::Entity::find_by_id(p.id).one(conn).await.db()?.map(|a| a.name).unwrap_or_default(), None),
        PrincipalKind::Operator => ("Operator".to_owned(), None),
    };
    Ok(Actor { kind: p.kind.as_str().to_owned(), id: Some(p.id), name, programming_key_id })
}

#[async_trait::async_trait]
impl countersign_domain::ports::History for crate::store::Store {
    async fn list_history(
        &self,
        _t: TenantId,
        _filter: countersign_domain::history::HistoryFilter,
    ) -> Result<(Vec<countersign_domain::history::HistoryEntry>, Option<i64>)> {
        Err(Error::Internal(anyhow::anyhow!("history listing is not built yet")))
    }

    async fn verify_history(&self, _t: TenantId) -> Result<countersign_domain::history::Verification> {
        Err(Error::Internal(anyhow::anyhow!("history verification is not built yet")))
    }
}
