//! One change to a tenant (SPEC §9): a transaction that knows the tenant, the
//! actor and the time, and carries the change's effects — history entries,
//! outbox mails, webhook events, agent wake-ups and token revocations — which
//! it applies when it commits. Every use case that changes a tenant opens one
//! with [`Store::change`]; a change that records no history entry does not
//! commit.

use std::ops::Deref;

use chrono::{DateTime, SubsecRound, Utc};
use countersign_domain::history::{Actor, NewEntry, names};
use countersign_domain::integrations::{WebhookEvent, webhook_event_of};
use countersign_domain::notification::Notice;
use countersign_domain::permission::Principal;
use countersign_domain::tenant::TenantId;
use countersign_domain::{Error, Result};
use sea_orm::DatabaseTransaction;

use crate::db::DbResult;
use crate::history::{actor_of, append};
use crate::revocation::{Revocation, RevocationList};
use crate::signal::WorkSignal;
use crate::store::{Store, tenant_change_transaction};

/// A mail to queue: its recipients and what it tells them.
struct Mail {
    to: Vec<String>,
    notice: Notice,
}

/// What a change does besides its own rows, applied at commit.
#[derive(Default)]
struct Effects {
    history: Vec<(Actor, NewEntry)>,
    mails: Vec<Mail>,
    wake_agents: bool,
    revocations: Vec<Revocation>,
}

/// A tenant transaction with its effects. It reads and writes like the
/// transaction it wraps (`&*change` is a connection).
pub(crate) struct Change {
    txn: DatabaseTransaction,
    pub(crate) tenant: TenantId,
    pub(crate) actor: Actor,
    pub(crate) now: DateTime<Utc>,
    effects: Effects,
}

impl Deref for Change {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

impl Change {
    /// Wraps a transaction already open in tenant `tenant` (the sweeper's, on
    /// the connection that spans tenants).
    pub(crate) fn over(
        txn: DatabaseTransaction,
        tenant: TenantId,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            txn,
            tenant,
            actor,
            // The chain keeps microseconds; so does every row of the change.
            now: now.trunc_subsecs(6),
            effects: Effects::default(),
        }
    }

    /// Appends an entry in the change's actor's name.
    pub(crate) fn record(&mut self, entry: NewEntry) {
        let actor = self.actor.clone();
        self.record_as(actor, entry);
    }

    /// Appends an entry in another actor's name (Countersign itself taking
    /// over an expired lease inside an agent's call, for example). A change
    /// to a request or a job wakes agents and ends kept request lists.
    pub(crate) fn record_as(&mut self, actor: Actor, entry: NewEntry) {
        if matches!(entry.subject_type, names::REQUEST | names::JOB) {
            self.effects.wake_agents = true;
        }
        self.effects.history.push((actor, entry));
    }

    /// Queues a mail to `to`, rendered in the tenant's language at commit.
    pub(crate) fn mail(&mut self, to: Vec<String>, notice: Notice) {
        if !to.is_empty() {
            self.effects.mails.push(Mail { to, notice });
        }
    }

    /// Wakes the tenant's long-polling agents once the change is visible.
    pub(crate) fn wake_agents(&mut self) {
        self.effects.wake_agents = true;
    }

    /// Ends tokens at commit.
    pub(crate) fn revoke(&mut self, revocations: impl IntoIterator<Item = Revocation>) {
        self.effects.revocations.extend(revocations);
    }

    /// The webhook events the recorded entries stand for.
    fn webhook_events(&self) -> Vec<WebhookEvent> {
        self.effects
            .history
            .iter()
            .filter_map(|(_, entry)| webhook_event_of(entry))
            .collect()
    }
}

impl Store {
    /// Opens a change to tenant `t` made by `by`, at the clock's now.
    pub(crate) async fn change(&self, t: TenantId, by: &Principal) -> Result<Change> {
        let txn = tenant_change_transaction(&self.db, t).await?;
        let actor = actor_of(&txn, by).await?;
        Ok(Change::over(txn, t, actor, self.clock.now()))
    }

    /// Opens a change to tenant `t` made by `actor` (the operator, Countersign).
    pub(crate) async fn change_as(&self, t: TenantId, actor: Actor) -> Result<Change> {
        let txn = tenant_change_transaction(&self.db, t).await?;
        Ok(Change::over(txn, t, actor, self.clock.now()))
    }

    /// Commits a change that may have found nothing to do; without a history
    /// entry nothing changed, and it is rolled back.
    pub(crate) async fn commit_if_recorded(&self, change: Change) -> Result<()> {
        if change.effects.history.is_empty() {
            return Ok(());
        }
        self.commit(change).await
    }

    /// Applies the change's effects and commits it.
    pub(crate) async fn commit(&self, change: Change) -> Result<()> {
        change
            .commit(Outlets {
                revocations: &self.revocations,
                signal: Some(&self.signal),
                public_url: &self.public_url,
            })
            .await
    }
}

/// Where a change's effects go besides its own transaction.
pub(crate) struct Outlets<'a> {
    pub(crate) revocations: &'a RevocationList,
    /// Wakes agents; `None` where no change can concern them (logins).
    pub(crate) signal: Option<&'a WorkSignal>,
    /// Base of links in mails.
    pub(crate) public_url: &'a str,
}

impl Change {
    /// Applies the change's effects in its transaction, commits, and then
    /// tells what lives outside the database (revocation cache, agents).
    pub(crate) async fn commit(self, outlets: Outlets<'_>) -> Result<()> {
        if self.effects.history.is_empty() {
            return Err(Error::Internal(anyhow::anyhow!(
                "a change to tenant {} recorded no history entry",
                self.tenant
            )));
        }
        let webhooks = self.webhook_events();
        let Change {
            txn,
            tenant,
            now,
            effects,
            ..
        } = self;
        append(&txn, tenant, now, effects.history).await?;
        crate::webhooks::enqueue(&txn, tenant, &webhooks, now).await?;
        if !effects.mails.is_empty() {
            let row = crate::tenants::row(&txn, tenant).await?;
            for mail in &effects.mails {
                crate::mail::enqueue(&txn, &row, &mail.to, &mail.notice, outlets.public_url, now)
                    .await?;
            }
        }
        outlets
            .revocations
            .record(&txn, &effects.revocations)
            .await?;
        txn.commit().await.db()?;
        if !effects.revocations.is_empty() {
            outlets.revocations.publish(&effects.revocations).await;
        }
        if let Some(signal) = outlets.signal.filter(|_| effects.wake_agents) {
            signal.notify(tenant.0).await;
        }
        Ok(())
    }
}
