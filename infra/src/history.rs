//! The tenant's history chain: appends inside the caller's transaction,
//! serialised per tenant by locking the chain head.

use chrono::{DateTime, SubsecRound, Utc};
use countersign_domain::history::{
    Actor, Checkpoint, HistoryEntry, HistoryFilter, NewEntry, SigningKeyInfo, Verification, names,
};
use countersign_domain::page::{Page, PageRequest};
use countersign_domain::permission::{Principal, PrincipalKind};
use countersign_domain::ports::History;
use countersign_domain::tenant::TenantId;
use countersign_domain::{Error, Result};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde_json::json;
use uuid::Uuid;

use crate::db::DbResult;
use crate::entities::{
    agents, api_keys, employees, history_entries, history_heads, history_signatures,
    programming_keys,
};
use crate::store::{Store, page_of};

mod chain;
mod checkpoints;
mod export;
mod mails;
#[cfg(test)]
mod vector;
mod verify;

pub use chain::{ChainKeys, canonical_entry, entry_hash};
pub use countersign_domain::history::GENESIS;

/// Appends entries to the tenant's chain, in the caller's transaction. Only
/// a [`Change`](crate::change::Change) calls it, at commit.
pub(crate) async fn append(
    conn: &impl ConnectionTrait,
    t: TenantId,
    at: DateTime<Utc>,
    entries: Vec<(Actor, NewEntry)>,
) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let at = at.trunc_subsecs(6);
    let head = locked_head(conn, t).await?;
    let (mut seq, mut prev) = (head.seq, head.hash.clone());
    for (actor, entry) in entries {
        seq += 1;
        let mut e = HistoryEntry {
            seq,
            at,
            actor,
            action: entry.action.as_str().to_owned(),
            subject_type: entry.subject_type.to_owned(),
            subject_id: entry.subject_id,
            details: entry.details,
            hash: String::new(),
            prev_hash: prev,
        };
        e.hash = entry_hash(t.0, &e)?;
        prev = e.hash.clone();
        history_entries::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(t.0),
            seq: Set(e.seq),
            at: Set(e.at),
            actor_kind: Set(e.actor.kind),
            actor_id: Set(e.actor.id),
            actor_name: Set(e.actor.name),
            actor_programming_key_id: Set(e.actor.programming_key_id),
            action: Set(e.action),
            subject_type: Set(e.subject_type),
            subject_id: Set(e.subject_id),
            details: Set(e.details),
            prev_hash: Set(e.prev_hash),
            hash: Set(e.hash),
        }
        .insert(conn)
        .await
        .db()?;
    }
    let mut head: history_heads::ActiveModel = head.into();
    head.seq = Set(seq);
    head.hash = Set(prev);
    head.update(conn).await.db()?;
    Ok(())
}

/// The tenant's chain head, created at genesis and locked: appends to one
/// chain are serialised.
async fn locked_head(conn: &impl ConnectionTrait, t: TenantId) -> Result<history_heads::Model> {
    history_heads::Entity::insert(history_heads::ActiveModel {
        tenant_id: Set(t.0),
        seq: Set(0),
        hash: Set(GENESIS.to_owned()),
    })
    .on_conflict(
        OnConflict::column(history_heads::Column::TenantId)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await
    .db()?;
    history_heads::Entity::find_by_id(t.0)
        .lock_exclusive()
        .one(conn)
        .await
        .db()?
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("history head of {t} vanished")))
}

/// The history's view of a caller: kind, id, display name and programming key.
pub(crate) async fn actor_of(conn: &impl ConnectionTrait, p: &Principal) -> Result<Actor> {
    let (name, programming_key_id) = match p.kind {
        PrincipalKind::User => {
            let key = programming_keys::Entity::find_by_id(p.id)
                .one(conn)
                .await
                .db()?;
            let employee = match key.as_ref().and_then(|k| k.employee_id) {
                Some(id) => employees::Entity::find_by_id(id).one(conn).await.db()?,
                None => None,
            };
            let name = employee
                .map(|e| e.name)
                .or_else(|| key.map(|k| k.name))
                .unwrap_or_default();
            (name, Some(p.id))
        }
        PrincipalKind::Webservice => (
            api_keys::Entity::find_by_id(p.id)
                .one(conn)
                .await
                .db()?
                .map(|k| k.name)
                .unwrap_or_default(),
            None,
        ),
        PrincipalKind::Agent => (
            agents::Entity::find_by_id(p.id)
                .one(conn)
                .await
                .db()?
                .map(|a| a.name)
                .unwrap_or_default(),
            None,
        ),
        PrincipalKind::Operator => ("Operator".to_owned(), None),
    };
    Ok(Actor {
        kind: p.kind.as_str().to_owned(),
        id: Some(p.id),
        name,
        programming_key_id,
    })
}

/// The SaaS operator as an actor (tenant provisioning and changes).
pub(crate) fn operator_actor() -> Actor {
    Actor {
        kind: PrincipalKind::Operator.as_str().to_owned(),
        id: Some(Uuid::nil()),
        name: "Operator".to_owned(),
        programming_key_id: None,
    }
}

/// The fields of two JSON objects that differ, as `{field: {old, new}}`.
pub(crate) fn changes(old: &serde_json::Value, new: &serde_json::Value) -> serde_json::Value {
    let mut changed = serde_json::Map::new();
    if let (Some(old), Some(new)) = (old.as_object(), new.as_object()) {
        for (field, value) in new {
            let before = old.get(field).unwrap_or(&serde_json::Value::Null);
            if before != value {
                changed.insert(field.clone(), json!({"old": before, "new": value}));
            }
        }
    }
    serde_json::Value::Object(changed)
}

#[async_trait::async_trait]
impl History for Store {
    async fn list_history(
        &self,
        t: TenantId,
        filter: HistoryFilter,
    ) -> Result<(Vec<HistoryEntry>, Option<i64>)> {
        use history_entries::Column as C;
        let mut query = history_entries::Entity::find().filter(C::TenantId.eq(t.0));
        if let Some(subject_type) = filter.subject_type {
            query = query.filter(C::SubjectType.eq(subject_type));
        }
        if let Some(subject_id) = filter.subject_id {
            query = query.filter(C::SubjectId.eq(subject_id));
        }
        if let Some(actor_id) = filter.actor_id {
            query = query.filter(C::ActorId.eq(actor_id));
        }
        if let Some(action) = filter.action {
            query = query.filter(C::Action.eq(action));
        }
        if let Some(from) = filter.from {
            query = query.filter(C::At.gte(from));
        }
        if let Some(to) = filter.to {
            query = query.filter(C::At.lt(to));
        }
        if filter.requests_only {
            query = query.filter(C::SubjectType.is_in([names::REQUEST, names::JOB]));
        }
        if let Some(after) = filter.after_seq {
            query = query.filter(C::Seq.gt(after));
        }
        let limit = filter.limit.max(1);
        let txn = self.begin_in(t).await?;
        let mut rows = query
            .order_by_asc(C::Seq)
            .limit(u64::from(limit) + 1)
            .all(&txn)
            .await
            .db()?;
        txn.commit().await.db()?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = if more {
            rows.last().map(|m| m.seq)
        } else {
            None
        };
        Ok((rows.into_iter().map(chain::to_entry).collect(), next))
    }

    async fn verify_history(&self, t: TenantId, kept: Vec<Checkpoint>) -> Result<Verification> {
        self.verify_chain(t, kept).await
    }

    async fn list_checkpoints(&self, t: TenantId, page: PageRequest) -> Result<Page<Checkpoint>> {
        let txn = self.begin_in(t).await?;
        let rows = page_of::<history_signatures::Entity>(&txn, t, page, |m| m.id).await?;
        txn.commit().await.db()?;
        Ok(rows.map(checkpoints::to_checkpoint))
    }

    fn signing_keys(&self) -> Vec<SigningKeyInfo> {
        std::iter::once(self.signer.public_key().info(true))
            .chain(self.retired_keys.iter().map(|k| k.info(false)))
            .collect()
    }

    async fn record_export(
        &self,
        t: TenantId,
        by: &Principal,
        format: &str,
    ) -> Result<(i64, String)> {
        self.record_history_export(t, by, format).await
    }

    async fn export_batch(
        &self,
        t: TenantId,
        after: i64,
        through: i64,
    ) -> Result<(Vec<HistoryEntry>, Vec<Checkpoint>)> {
        self.history_batch(t, after, through).await
    }
}
