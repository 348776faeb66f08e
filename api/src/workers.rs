//! Background work that runs in every replica at once, safely: the sweeper
//! (expiry, retention), the e-mail outbox and the signing of history chain heads.

use std::sync::Arc;
use std::time::Duration;

use countersign_domain::ports::Sweeper;
use countersign_infra::Store;
use countersign_infra::mail::Mailer;

/// How often the sweeper runs.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// How often the e-mail outbox is looked at.
pub const DELIVER_MAIL_EVERY: Duration = Duration::from_secs(2);
/// How often history chain heads are signed.
const SIGN_HEADS_EVERY: Duration = Duration::from_secs(60);

/// Starts every background loop on the current runtime.
pub fn spawn(store: Arc<Store>, mailer: Arc<Mailer>) {
    tokio::spawn(deliver_mail(mailer, DELIVER_MAIL_EVERY));
    tokio::spawn(sweep(store.clone()));
    tokio::spawn(sign_heads(store));
}

/// Signs every tenant's history head that is newer than its last signature.
async fn sign_heads(store: Arc<Store>) {
    let mut tick = tokio::time::interval(SIGN_HEADS_EVERY);
    loop {
        tick.tick().await;
        match store.sign_heads(chrono::Utc::now()).await {
            Ok(0) => {}
            Ok(signed) => tracing::debug!(signed, "history heads signed"),
            Err(err) => tracing::warn!(error = %err, "signing history heads failed; retrying"),
        }
    }
}

async fn sweep(store: Arc<Store>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tick.tick().await;
        match store.sweep(chrono::Utc::now()).await {
            Ok(report) if report.requests_expired + report.events_deleted > 0 => {
                tracing::info!(
                    expired = report.requests_expired,
                    deleted = report.events_deleted,
                    "sweep"
                );
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "sweep failed; retrying"),
        }
    }
}

/// Sends due mails from the outbox every `every`; each replica may run it.
pub async fn deliver_mail(mailer: Arc<Mailer>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match mailer.deliver_due(chrono::Utc::now()).await {
            Ok(report) if report.sent + report.failed + report.retried > 0 => {
                tracing::info!(
                    sent = report.sent,
                    failed = report.failed,
                    retried = report.retried,
                    "mail outbox"
                );
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "mail outbox failed; retrying"),
        }
    }
}
