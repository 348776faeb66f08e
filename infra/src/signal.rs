//! Wake-ups for long-polling agents. A change of a tenant's work notifies the
//! waiters in this process and, through Redis pub/sub, in every other replica.
//! Waiting costs no database connection; when Redis is unreachable, waiters
//! re-check the database at a bounded interval, so nothing is missed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Notify;
use uuid::Uuid;

const CHANNEL: &str = "countersign:work";

/// How often a waiter looks at the database even without a wake-up.
pub const RECHECK: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct WorkSignal {
    waiters: Mutex<HashMap<Uuid, Arc<Notify>>>,
    redis: Option<redis::aio::ConnectionManager>,
}

impl WorkSignal {
    pub fn local() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Shares wake-ups across replicas through Redis; starts the subscriber.
    pub fn redis(client: redis::Client, publisher: redis::aio::ConnectionManager) -> Arc<Self> {
        let signal = Arc::new(Self {
            waiters: Mutex::default(),
            redis: Some(publisher),
        });
        tokio::spawn(subscribe(client, Arc::downgrade(&signal)));
        signal
    }

    /// The notifier of a tenant's waiters.
    pub fn waiter(&self, tenant: Uuid) -> Arc<Notify> {
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        waiters.entry(tenant).or_default().clone()
    }

    fn wake(&self, tenant: Uuid) {
        let waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(notify) = waiters.get(&tenant) {
            notify.notify_waiters();
        }
    }

    /// The tenant's work changed.
    pub async fn notify(&self, tenant: Uuid) {
        self.wake(tenant);
        if let Some(conn) = &self.redis {
            let mut conn = conn.clone();
            let sent: redis::RedisResult<i64> = redis::cmd("PUBLISH")
                .arg(CHANNEL)
                .arg(tenant.to_string())
                .query_async(&mut conn)
                .await;
            if let Err(err) = sent {
                tracing::warn!(error = %err, "work-list wake-up not shared; other replicas re-check within {RECHECK:?}");
            }
        }
    }
}

async fn subscribe(client: redis::Client, signal: std::sync::Weak<WorkSignal>) {
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => {
                if pubsub.subscribe(CHANNEL).await.is_ok() {
                    let mut messages = pubsub.on_message();
                    while let Some(message) = messages.next().await {
                        let Some(signal) = signal.upgrade() else {
                            return;
                        };
                        if let Ok(tenant) =
                            message.get_payload::<String>().map(|p| p.parse::<Uuid>())
                            && let Ok(tenant) = tenant
                        {
                            signal.wake(tenant);
                        }
                    }
                }
                tracing::warn!("work-list subscription lost; reconnecting");
            }
            Err(err) => {
                tracing::warn!(error = %err, "work-list subscription unavailable; retrying")
            }
        }
        if signal.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
