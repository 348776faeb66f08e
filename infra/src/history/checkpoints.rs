//! Checkpoints: the background worker signs every tenant's chain head that no
//! checkpoint covers yet, at [`SIGNING_INTERVAL`]
//! (countersign_domain::history::checkpoint::SIGNING_INTERVAL).

use chrono::{DateTime, SubsecRound, Utc};
use countersign_domain::Result;
use countersign_domain::history::Checkpoint;
use countersign_domain::tenant::TenantId;
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, Set};
use uuid::Uuid;

use crate::db::{DbResult, db_err, is_row_exists};
use crate::entities::{history_entries, history_heads, history_signatures};
use crate::store::Store;

pub(crate) fn to_checkpoint(m: history_signatures::Model) -> Checkpoint {
    Checkpoint {
        tenant_id: m.tenant_id,
        seq: m.seq,
        hash: m.hash,
        signed_at: m.signed_at,
        key_id: m.key_id,
        signature: m.signature,
    }
}

impl Store {
    /// Signs every tenant's chain head that is newer than its last checkpoint;
    /// returns how many were signed. Safe to run in several replicas at once:
    /// the checkpoints' unique index on `(tenant_id, seq)` keeps one per head.
    pub async fn sign_heads(&self, now: DateTime<Utc>) -> Result<u64> {
        use history_heads::Column as H;
        use history_signatures::Column as S;
        use sea_orm::sea_query::ExprTrait;
        // The heads no checkpoint reaches yet, found by the checkpoints' unique
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
        // The database keeps microseconds; the signature covers what it keeps.
        let signed_at = now.trunc_subsecs(6);
        let inserted = history_signatures::Entity::insert(history_signatures::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(t.0),
            seq: Set(entry.seq),
            hash: Set(entry.hash.clone()),
            signature: Set(self.signer.sign(t.0, entry.seq, &entry.hash, signed_at)),
            key_id: Set(self.signer.key_id().to_owned()),
            signed_at: Set(signed_at),
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
}
