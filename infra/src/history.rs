//! The tenant's history chain: appends inside the caller's transaction,
//! serialised per tenant by locking the chain head.

use chrono::{DateTime, SubsecRound, Utc};
use countersign_domain::history::{
    Actor, HistoryEntry, HistoryFilter, NewEntry, Verification, names,
};
use countersign_domain::permission::{Principal, PrincipalKind};
use countersign_domain::ports::History;
use countersign_domain::tenant::TenantId;
use countersign_domain::{Error, Result};
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::db::{DbResult, db_err, is_row_exists};
use crate::entities::{
    agents, api_keys, employees, history_entries, history_heads, history_signatures,
    programming_keys,
};
use crate::signing::HistorySigner;
use crate::store::Store;

/// The `prev_hash` of a tenant's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of an entry: SHA-256 over the RFC 8785 canonical JSON of the entry
/// and the previous entry's hash.
#[allow(clippy::too_many_arguments)] // one argument per hashed field
pub fn entry_hash(
    tenant: Uuid,
    seq: i64,
    at: DateTime<Utc>,
    actor: &Actor,
    action: &str,
    subject_type: &str,
    subject_id: Option<Uuid>,
    details: &serde_json::Value,
    prev_hash: &str,
) -> Result<String> {
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
    entry_hash(
        m.tenant_id,
        m.seq,
        m.at,
        &actor,
        &m.action,
        &m.subject_type,
        m.subject_id,
        &m.details,
        &m.prev_hash,
    )
}

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
        let action = entry.action.as_str();
        let hash = entry_hash(
            t.0,
            seq,
            at,
            &actor,
            action,
            entry.subject_type,
            entry.subject_id,
            &entry.details,
            &prev,
        )?;
        history_entries::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(t.0),
            seq: Set(seq),
            at: Set(at),
            actor_kind: Set(actor.kind),
            actor_id: Set(actor.id),
            actor_name: Set(actor.name),
            actor_programming_key_id: Set(actor.programming_key_id),
            action: Set(action.to_owned()),
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

fn to_entry(m: history_entries::Model) -> HistoryEntry {
    HistoryEntry {
        seq: m.seq,
        at: m.at,
        actor: Actor {
            kind: m.actor_kind,
            id: m.actor_id,
            name: m.actor_name,
            programming_key_id: m.actor_programming_key_id,
        },
        action: m.action,
        subject_type: m.subject_type,
        subject_id: m.subject_id,
        details: m.details,
        hash: m.hash,
        prev_hash: m.prev_hash,
    }
}

/// Entries read at once while verifying.
const VERIFY_BATCH: u64 = 1000;

/// Where a chain stops holding: the sequence number and why.
struct Break {
    seq: i64,
    reason: String,
}

/// The running state of a verification.
struct Walk<'a> {
    tenant: Uuid,
    signer: &'a HistorySigner,
    prev_seq: i64,
    prev_hash: String,
    entries_checked: u64,
    signatures_checked: u64,
    last_signed_seq: Option<i64>,
}

impl Walk<'_> {
    fn entry(&mut self, m: &history_entries::Model) -> Result<Option<Break>> {
        let expected = self.prev_seq + 1;
        if m.seq != expected {
            return Ok(Some(Break {
                seq: expected,
                reason: format!("entry {expected} is missing"),
            }));
        }
        self.entries_checked += 1;
        if m.prev_hash != self.prev_hash {
            return Ok(Some(Break {
                seq: m.seq,
                reason: format!(
                    "entry {} does not link to the hash of entry {}",
                    m.seq, self.prev_seq
                ),
            }));
        }
        if hash_of(m)? != m.hash {
            return Ok(Some(Break {
                seq: m.seq,
                reason: format!("entry {} does not match its hash", m.seq),
            }));
        }
        self.prev_seq = m.seq;
        self.prev_hash = m.hash.clone();
        Ok(None)
    }

    /// A signature of the head at `s.seq`, whose entry is the last one checked.
    fn signature(&mut self, s: &history_signatures::Model) -> Option<Break> {
        self.signatures_checked += 1;
        let broken = |reason: String| Some(Break { seq: s.seq, reason });
        if s.key_id != self.signer.key_id() {
            return broken(format!(
                "the head at entry {} is signed with key {}, not with the configured key {}",
                s.seq,
                s.key_id,
                self.signer.key_id()
            ));
        }
        if !self
            .signer
            .verify(self.tenant, s.seq, &s.hash, &s.signature)
        {
            return broken(format!(
                "the signature of the head at entry {} is not valid",
                s.seq
            ));
        }
        if s.hash != self.prev_hash {
            let since = self.last_signed_seq.map_or(1, |seq| seq + 1);
            return broken(format!(
                "entry {} differs from its signed head: the chain between entries {since} and {} was rewritten",
                s.seq, s.seq
            ));
        }
        self.last_signed_seq = Some(s.seq);
        None
    }
}

impl Store {
    /// Signs every tenant's chain head that is newer than its last signature;
    /// returns how many were signed. Safe to run in several replicas at once.
    pub async fn sign_heads(&self, now: DateTime<Utc>) -> Result<u64> {
        use history_heads::Column as H;
        use history_signatures::Column as S;
        use sea_orm::sea_query::ExprTrait;
        // The heads no signature reaches yet, found by the signatures' unique
        // index in one statement, whatever the number of tenants.
        let signed = Query::select()
            .expr(Expr::val(1))
            .from(history_signatures::Entity)
            .and_where(
                Expr::col((history_signatures::Entity, S::TenantId))
                    .equals((history_heads::Entity, H::TenantId)),
            )
            .and_where(
                Expr::col((history_signatures::Entity, S::Seq))
                    .gte(Expr::col((history_heads::Entity, H::Seq))),
            )
            .to_owned();
        let due: Vec<Uuid> = history_heads::Entity::find()
            .select_only()
            .column(H::TenantId)
            .filter(H::Seq.gt(0))
            .filter(Expr::exists(signed).not())
            .into_tuple()
            .all(&self.all_tenants)
            .await
            .db()?;
        let mut count = 0;
        for tenant in due {
            if self
                .sign_head(&self.all_tenants, TenantId(tenant), now)
                .await?
            {
                count += 1;
            }
        }
        Ok(count)
    }

    /// Signs the tenant's current head unless it is signed already.
    async fn sign_head(
        &self,
        conn: &impl ConnectionTrait,
        t: TenantId,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let Some(head) = history_heads::Entity::find_by_id(t.0)
            .one(conn)
            .await
            .db()?
        else {
            return Ok(false);
        };
        if head.seq == 0 {
            return Ok(false);
        }
        // The entry is the source of truth; the head only says which one is newest.
        let Some(entry) = history_entries::Entity::find()
            .filter(history_entries::Column::TenantId.eq(t.0))
            .filter(history_entries::Column::Seq.eq(head.seq))
            .one(conn)
            .await
            .db()?
        else {
            tracing::warn!(tenant = %t, seq = head.seq, "history head has no entry; not signed");
            return Ok(false);
        };
        let inserted = history_signatures::Entity::insert(history_signatures::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(t.0),
            seq: Set(entry.seq),
            hash: Set(entry.hash.clone()),
            signature: Set(self.signer.sign(t.0, entry.seq, &entry.hash)),
            key_id: Set(self.signer.key_id().to_owned()),
            signed_at: Set(now),
        })
        .on_conflict(
            OnConflict::columns([
                history_signatures::Column::TenantId,
                history_signatures::Column::Seq,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(conn)
        .await;
        match inserted {
            Ok(inserted) => Ok(inserted > 0),
            // SQLite refuses the colliding insert outright (m0008) where
            // PostgreSQL does nothing: signed before, by another worker.
            Err(err) if is_row_exists(&err) => Ok(false),
            Err(err) => Err(db_err(err)),
        }
    }

    async fn signatures_between(
        &self,
        conn: &impl ConnectionTrait,
        t: TenantId,
        after: i64,
        up_to: Option<i64>,
    ) -> Result<Vec<history_signatures::Model>> {
        let mut query = history_signatures::Entity::find()
            .filter(history_signatures::Column::TenantId.eq(t.0))
            .filter(history_signatures::Column::Seq.gt(after));
        if let Some(up_to) = up_to {
            query = query.filter(history_signatures::Column::Seq.lte(up_to));
        }
        query
            .order_by_asc(history_signatures::Column::Seq)
            .all(conn)
            .await
            .db()
    }

    async fn walk_chain(
        &self,
        conn: &impl ConnectionTrait,
        t: TenantId,
        walk: &mut Walk<'_>,
    ) -> Result<Option<Break>> {
        loop {
            let batch = history_entries::Entity::find()
                .filter(history_entries::Column::TenantId.eq(t.0))
                .filter(history_entries::Column::Seq.gt(walk.prev_seq))
                .order_by_asc(history_entries::Column::Seq)
                .limit(VERIFY_BATCH)
                .all(conn)
                .await
                .db()?;
            let Some(last) = batch.last().map(|m| m.seq) else {
                break;
            };
            let mut signatures = self
                .signatures_between(conn, t, walk.prev_seq, Some(last))
                .await?
                .into_iter()
                .peekable();
            for m in &batch {
                if let Some(broken) = walk.entry(m)? {
                    return Ok(Some(broken));
                }
                while let Some(s) = signatures.next_if(|s| s.seq <= m.seq) {
                    if s.seq < m.seq {
                        return Ok(Some(Break {
                            seq: s.seq,
                            reason: format!("the signed head at entry {} has no entry", s.seq),
                        }));
                    }
                    if let Some(broken) = walk.signature(&s) {
                        return Ok(Some(broken));
                    }
                }
            }
        }
        // Signatures or a head beyond the last entry: entries were removed from the end.
        if let Some(s) = self
            .signatures_between(conn, t, walk.prev_seq, None)
            .await?
            .first()
        {
            return Ok(Some(Break {
                seq: walk.prev_seq + 1,
                reason: format!(
                    "entries {} to {} were signed but are missing",
                    walk.prev_seq + 1,
                    s.seq
                ),
            }));
        }
        let head = history_heads::Entity::find_by_id(t.0)
            .one(conn)
            .await
            .db()?;
        if let Some(head) = head.filter(|h| h.seq != walk.prev_seq || h.hash != walk.prev_hash) {
            return Ok(Some(Break {
                seq: walk.prev_seq.min(head.seq) + 1,
                reason: format!(
                    "the chain head (entry {}) does not match the last entry ({})",
                    head.seq, walk.prev_seq
                ),
            }));
        }
        Ok(None)
    }
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
        Ok((rows.into_iter().map(to_entry).collect(), next))
    }

    async fn verify_history(&self, t: TenantId) -> Result<Verification> {
        let txn = self.begin_in(t).await?;
        // A fresh chain is covered too.
        self.sign_head(&txn, t, self.clock.now()).await?;
        let mut walk = Walk {
            tenant: t.0,
            signer: &self.signer,
            prev_seq: 0,
            prev_hash: GENESIS.to_owned(),
            entries_checked: 0,
            signatures_checked: 0,
            last_signed_seq: None,
        };
        let broken = self.walk_chain(&txn, t, &mut walk).await?;
        txn.commit().await.db()?;
        Ok(Verification {
            valid: broken.is_none(),
            entries_checked: walk.entries_checked,
            signatures_checked: walk.signatures_checked,
            last_signed_seq: walk.last_signed_seq,
            first_broken_seq: broken.as_ref().map(|b| b.seq),
            reason: broken.map(|b| b.reason),
        })
    }
}
