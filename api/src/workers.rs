//! Background work that runs in every replica at once, safely: the sweeper
//! (expiry, retention), the e-mail outbox and the signing of history chain heads.

use std::sync::Arc;
use std::time::Duration;

use countersign_domain::ports::Sweeper;
use countersign_infra::Store;

/// How often the sweeper runs.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Starts every background loop on the current runtime.
pub fn spawn(store: Arc<Store>) {
    tokio::spawn(sweep(store));
}

async fn sweep(store: Arc<Store>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tick.tick().await;
        match store.sweep(chrono::Utc::now()).await {
            Ok(report) if report.requests_expired + report.events_deleted > 0 => {
                tracing::info!(expired = report.requests_expired, deleted = report.events_deleted, "sweep");
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "sweep failed; retrying"),
        }
    }
}
