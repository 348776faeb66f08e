//! Background work that runs in every replica at once, safely: the sweeper
//! (expiry, retention), the e-mail outbox, the signing of history checkpoints,
//! the auditors' daily checkpoint mail, and the counts over every tenant that
//! `/metrics` reports (each replica computes its own, the same values).

use std::sync::Arc;
use std::time::Duration;

use countersign_domain::ports::Sweeper;
use countersign_infra::Store;
use countersign_infra::mail::Mailer;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::metrics::Metrics;

/// How often the sweeper runs.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// How often the e-mail outbox is looked at.
pub const DELIVER_MAIL_EVERY: Duration = Duration::from_secs(2);
/// How often history chain heads are signed.
const SIGN_HEADS_EVERY: Duration = countersign_domain::history::checkpoint::SIGNING_INTERVAL;
/// How often tenants are looked at for their daily checkpoint mail; each is
/// mailed at most once a day however often this runs.
const MAIL_CHECKPOINTS_EVERY: Duration = Duration::from_secs(10 * 60);

/// The running background loops.
pub struct Workers {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Lets each loop finish the round it is in, then ends it; gives up
    /// waiting after `patience`.
    pub async fn stop(self, patience: Duration) {
        let _ = self.stop.send(true);
        let all = futures::future::join_all(self.tasks);
        if tokio::time::timeout(patience, all).await.is_err() {
            tracing::warn!("background work did not stop in time; abandoned");
        }
    }
}

/// Starts every background loop on the current runtime; the metrics' counts
/// are computed every `metrics_every`.
pub fn spawn(
    store: Arc<Store>,
    mailer: Arc<Mailer>,
    metrics: Arc<Metrics>,
    metrics_every: Duration,
) -> Workers {
    let (stop, stopped) = watch::channel(false);
    let tasks = vec![
        tokio::spawn(compute_metrics_until(
            metrics,
            metrics_every,
            stopped.clone(),
        )),
        tokio::spawn(deliver_mail_until(
            mailer,
            DELIVER_MAIL_EVERY,
            stopped.clone(),
        )),
        tokio::spawn(sweep(store.clone(), stopped.clone())),
        tokio::spawn(sign_heads(store.clone(), stopped.clone())),
        tokio::spawn(mail_checkpoints(store, stopped)),
    ];
    Workers { stop, tasks }
}

/// Ticks `every`, the first at a random moment of the first interval: replicas
/// started together (a rollout, a scale-up) then do their periodic work at
/// different moments, and no request meets all of it at once.
fn in_own_phase(every: Duration) -> tokio::time::Interval {
    let phase = every.mul_f64(rand::random::<f64>());
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + phase, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

/// Ticks at once, then `every`.
fn at_once_then(every: Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

/// Waits for the next tick; `false` once the workers are to stop.
async fn next_round(tick: &mut tokio::time::Interval, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return false;
    }
    tokio::select! {
        _ = tick.tick() => true,
        _ = stop.changed() => false,
    }
}

/// Signs every tenant's history head that is newer than its last signature.
async fn sign_heads(store: Arc<Store>, mut stop: watch::Receiver<bool>) {
    let mut tick = in_own_phase(SIGN_HEADS_EVERY);
    while next_round(&mut tick, &mut stop).await {
        let started = std::time::Instant::now();
        match store.sign_heads(chrono::Utc::now()).await {
            Ok(signed) => {
                tracing::debug!(signed, took = ?started.elapsed(), "history heads signed")
            }
            Err(err) => tracing::warn!(error = %err, "signing history heads failed; retrying"),
        }
    }
}

/// Mails each tenant's latest checkpoint to its auditors once a day.
async fn mail_checkpoints(store: Arc<Store>, mut stop: watch::Receiver<bool>) {
    let mut tick = in_own_phase(MAIL_CHECKPOINTS_EVERY);
    while next_round(&mut tick, &mut stop).await {
        match store.mail_checkpoints(chrono::Utc::now()).await {
            Ok(0) => {}
            Ok(mailed) => tracing::info!(mailed, "checkpoint mails queued"),
            Err(err) => tracing::warn!(error = %err, "checkpoint mails failed; retrying"),
        }
    }
}

async fn sweep(store: Arc<Store>, mut stop: watch::Receiver<bool>) {
    let mut tick = in_own_phase(SWEEP_EVERY);
    while next_round(&mut tick, &mut stop).await {
        let started = std::time::Instant::now();
        match store.sweep(chrono::Utc::now()).await {
            Ok(report) if report.requests_expired + report.events_deleted > 0 => {
                tracing::info!(
                    expired = report.requests_expired,
                    deleted = report.events_deleted,
                    took = ?started.elapsed(),
                    "sweep"
                );
            }
            Ok(_) => tracing::debug!(took = ?started.elapsed(), "sweep: nothing due"),
            Err(err) => tracing::warn!(error = %err, "sweep failed; retrying"),
        }
    }
}

/// Sends due mails from the outbox every `every`; each replica may run it.
pub async fn deliver_mail(mailer: Arc<Mailer>, every: Duration) {
    let (_never, stop) = watch::channel(false);
    deliver_mail_until(mailer, every, stop).await;
}

async fn deliver_mail_until(mailer: Arc<Mailer>, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = at_once_then(every);
    while next_round(&mut tick, &mut stop).await {
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

/// Computes the counts over every tenant that `/metrics` reports, at once and
/// then every `every`, so that a scrape never queries the database.
pub async fn compute_metrics(metrics: Arc<Metrics>, every: Duration) {
    let (_never, stop) = watch::channel(false);
    compute_metrics_until(metrics, every, stop).await;
}

async fn compute_metrics_until(
    metrics: Arc<Metrics>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = at_once_then(every);
    while next_round(&mut tick, &mut stop).await {
        if !metrics.compute_table_counts().await {
            tracing::debug!("metrics: counts not computed; the last ones stay");
        }
    }
}
