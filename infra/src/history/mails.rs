//! The daily checkpoint mail (SPEC §5): every auditor receives the tenant's
//! latest checkpoint once a day when there were new entries, a witness that
//! lives outside the database.
//!
//! The mail is *not* a [`Change`](crate::change::Change) and records no
//! history entry. It changes nothing of the tenant, and an entry would itself
//! be a new entry: every day would then have something new to mail, and the
//! mailed checkpoint would never cover the chain's last entry. What was
//! mailed is kept in `checkpoint_mails` instead, whose unique index on
//! `(tenant_id, day)` also keeps replicas from mailing a tenant twice a day.

use chrono::{DateTime, Utc};
use countersign_domain::Result;
use countersign_domain::notification::Notice;
use countersign_domain::role::Role;
use countersign_domain::tenant::TenantId;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait,
};
use uuid::Uuid;

use super::checkpoints::to_checkpoint;
use crate::db::DbResult;
use crate::employees::holders_of;
use crate::entities::{checkpoint_mails, history_signatures};
use crate::store::Store;

impl Store {
    /// Mails each tenant's latest checkpoint to its auditors unless it was
    /// mailed already, or the tenant was mailed today (in its time zone);
    /// answers how many tenants were mailed. Safe in several replicas at once.
    pub async fn mail_checkpoints(&self, now: DateTime<Utc>) -> Result<u64> {
        let latest: Vec<(Uuid, i64)> = history_signatures::Entity::find()
            .select_only()
            .column(history_signatures::Column::TenantId)
            .column_as(history_signatures::Column::Seq.max(), "seq")
            .group_by(history_signatures::Column::TenantId)
            .into_tuple()
            .all(&self.all_tenants)
            .await
            .db()?;
        let mut mailed = 0;
        for (tenant, seq) in latest {
            let t = TenantId(tenant);
            if last_mailed(&self.all_tenants, t).await? < seq
                && self.mail_checkpoint(t, seq, now).await?
            {
                mailed += 1;
            }
        }
        Ok(mailed)
    }

    /// Mails the checkpoint at `seq` to tenant `t`'s auditors, in the
    /// transaction that records it for today.
    async fn mail_checkpoint(&self, t: TenantId, seq: i64, now: DateTime<Utc>) -> Result<bool> {
        let txn = self.all_tenants.begin().await.db()?;
        let Some(row) = history_signatures::Entity::find()
            .filter(history_signatures::Column::TenantId.eq(t.0))
            .filter(history_signatures::Column::Seq.eq(seq))
            .one(&txn)
            .await
            .db()?
        else {
            return Ok(false);
        };
        let auditors = holders_of(&txn, t, &[Role::Auditor], &[]).await?;
        if auditors.is_empty() {
            return Ok(false);
        }
        let tenant = crate::tenants::row(&txn, t).await?;
        let zone = crate::tenants::to_domain(tenant.clone())?
            .fixed()
            .base_timezone();
        let day = now.with_timezone(&zone).date_naive().to_string();
        let inserted = checkpoint_mails::Entity::insert(checkpoint_mails::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(t.0),
            day: Set(day),
            seq: Set(row.seq),
            hash: Set(row.hash.clone()),
            recipients: Set(i32::try_from(auditors.len()).unwrap_or(i32::MAX)),
            mailed_at: Set(now),
        })
        .on_conflict(
            OnConflict::columns([
                checkpoint_mails::Column::TenantId,
                checkpoint_mails::Column::Day,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(&txn)
        .await
        .db()?;
        if inserted == 0 {
            return Ok(false);
        }
        let notice = Notice::CheckpointWitness {
            tenant_name: tenant.name.clone(),
            checkpoint: to_checkpoint(row),
        };
        crate::mail::enqueue(&txn, &tenant, &auditors, &notice, &self.public_url, now).await?;
        txn.commit().await.db()?;
        Ok(true)
    }
}

/// The sequence number of the newest checkpoint mailed to tenant `t` (0: none).
async fn last_mailed(conn: &impl ConnectionTrait, t: TenantId) -> Result<i64> {
    let newest = checkpoint_mails::Entity::find()
        .filter(checkpoint_mails::Column::TenantId.eq(t.0))
        .order_by_desc(checkpoint_mails::Column::Seq)
        .one(conn)
        .await
        .db()?;
    Ok(newest.map_or(0, |m| m.seq))
}
