//! Verification reads the chain, its checkpoints and its head in batches and
//! lets the domain's [`ChainWalk`] judge them. It writes nothing: a
//! verification that signed what it found would vouch for a chain cut short.

use countersign_domain::Result;
use countersign_domain::history::checkpoint::{SIGNING_INTERVAL, UNSIGNED_GRACE};
use countersign_domain::history::{ChainWalk, Checkpoint, Verification};
use countersign_domain::tenant::TenantId;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::chain::{ChainKeys, to_entry};
use super::checkpoints::to_checkpoint;
use crate::db::DbResult;
use crate::entities::{history_entries, history_heads, history_signatures};
use crate::store::Store;

/// Entries read at once while verifying or exporting.
pub(crate) const BATCH: u64 = 1000;

/// The tenant's entries after `after`, at most [`BATCH`] and none after `through`.
pub(crate) async fn entries_after(
    conn: &impl ConnectionTrait,
    t: TenantId,
    after: i64,
    through: Option<i64>,
) -> Result<Vec<history_entries::Model>> {
    use history_entries::Column as C;
    let mut query = history_entries::Entity::find()
        .filter(C::TenantId.eq(t.0))
        .filter(C::Seq.gt(after));
    if let Some(through) = through {
        query = query.filter(C::Seq.lte(through));
    }
    query.order_by_asc(C::Seq).limit(BATCH).all(conn).await.db()
}

/// The tenant's checkpoints of entries after `after` up to `through`, by seq.
pub(crate) async fn checkpoints_between(
    conn: &impl ConnectionTrait,
    t: TenantId,
    after: i64,
    through: Option<i64>,
) -> Result<Vec<Checkpoint>> {
    use history_signatures::Column as S;
    let mut query = history_signatures::Entity::find()
        .filter(S::TenantId.eq(t.0))
        .filter(S::Seq.gt(after));
    if let Some(through) = through {
        query = query.filter(S::Seq.lte(through));
    }
    let rows = query.order_by_asc(S::Seq).all(conn).await.db()?;
    Ok(rows.into_iter().map(to_checkpoint).collect())
}

impl Store {
    /// Recomputes tenant `t`'s chain and checks its stored checkpoints and
    /// `kept` ones. Entries older than the signing interval and its grace
    /// must be covered by a checkpoint.
    pub(crate) async fn verify_chain(
        &self,
        t: TenantId,
        kept: Vec<Checkpoint>,
    ) -> Result<Verification> {
        let keys = ChainKeys::new(
            std::iter::once(self.signer.public_key()).chain(self.retired_keys.iter()),
        );
        let mut walk = ChainWalk::new(t.0, &keys);
        walk.checkpoints(kept);
        let txn = self.begin_in(t).await?;
        loop {
            let batch = entries_after(&txn, t, walk.position(), None).await?;
            let Some(last) = batch.last().map(|m| m.seq) else {
                break;
            };
            walk.checkpoints(checkpoints_between(&txn, t, walk.position(), Some(last)).await?);
            for m in batch {
                walk.entry(&to_entry(m))?;
            }
        }
        // Checkpoints beyond the last entry: entries were removed from the end.
        walk.checkpoints(checkpoints_between(&txn, t, walk.position(), None).await?);
        let head = history_heads::Entity::find_by_id(t.0)
            .one(&txn)
            .await
            .db()?;
        txn.commit().await.db()?;
        let signed_by = self.clock.now()
            - chrono::Duration::from_std(SIGNING_INTERVAL + UNSIGNED_GRACE)
                .unwrap_or(chrono::Duration::MAX);
        let head = head.as_ref().map(|h| (h.seq, h.hash.as_str()));
        Ok(walk.finish(head, Some(signed_by)))
    }
}
