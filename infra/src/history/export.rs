//! Exports of the chain with its checkpoints, read in batches so that no
//! export holds the whole chain in memory.

use countersign_domain::Result;
use countersign_domain::history::{Action, Checkpoint, GENESIS, HistoryEntry, NewEntry, names};
use countersign_domain::permission::Principal;
use countersign_domain::tenant::TenantId;
use sea_orm::EntityTrait;
use serde_json::json;

use super::chain::to_entry;
use super::verify::{checkpoints_between, entries_after};
use crate::db::DbResult;
use crate::entities::history_heads;
use crate::store::Store;

impl Store {
    /// Records the export in the history and answers the sequence number it
    /// runs through: the head with the export's own entry.
    pub(crate) async fn record_history_export(
        &self,
        t: TenantId,
        by: &Principal,
        format: &str,
    ) -> Result<(i64, String)> {
        let mut change = self.change(t, by).await?;
        change.record(NewEntry {
            action: Action::HistoryExported,
            subject_type: names::HISTORY,
            subject_id: Some(t.0),
            details: json!({"format": format}),
        });
        self.commit(change).await?;
        let txn = self.begin_in(t).await?;
        let head = history_heads::Entity::find_by_id(t.0)
            .one(&txn)
            .await
            .db()?;
        txn.commit().await.db()?;
        Ok(head.map_or_else(|| (0, GENESIS.to_owned()), |h| (h.seq, h.hash)))
    }

    /// Up to a batch of entries after `after` through `through`, with the
    /// checkpoints of those entries.
    pub(crate) async fn history_batch(
        &self,
        t: TenantId,
        after: i64,
        through: i64,
    ) -> Result<(Vec<HistoryEntry>, Vec<Checkpoint>)> {
        let txn = self.begin_in(t).await?;
        let rows = entries_after(&txn, t, after, Some(through)).await?;
        let last = rows.last().map_or(after, |m| m.seq);
        let checkpoints = if rows.is_empty() {
            Vec::new()
        } else {
            checkpoints_between(&txn, t, after, Some(last)).await?
        };
        txn.commit().await.db()?;
        Ok((rows.into_iter().map(to_entry).collect(), checkpoints))
    }
}
