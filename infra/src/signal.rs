//! Wake-ups for long-polling agents. A change of a tenant's work notifies the
//! waiters in this process and, through Redis pub/sub, in every other replica.
//! Waiting costs no database connection. While the subscription to Redis is
//! live, every change is heard and waiters look at the database only when
//! woken; when it is down (or without Redis), they re-check the database at a
//! bounded interval, and when it comes back every waiter looks once, so
//! nothing is missed.
//!
//! The same count of a tenant's changes keeps the first pages of its request
//! lists (the approvers' inboxes, read far more often than they change): a
//! page is reused while the tenant's requests and jobs are unchanged, the
//! subscription is live, and it is younger than [`RECHECK`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use countersign_domain::page::Page;
use countersign_domain::ports::{RequestView, WorkList};
use futures::StreamExt;
use tokio::sync::Notify;
use uuid::Uuid;

const CHANNEL: &str = "countersign:work";

/// How often a waiter looks at the database even without a wake-up, while
/// wake-ups from other replicas may be lost; also the longest a first page of
/// requests is reused.
pub const RECHECK: Duration = Duration::from_secs(5);

/// The longest an agent's computed work list is reused while the subscription
/// is live and no wake-up came. Every change wakes, so the list is current all
/// along; the bound only limits how long a change that failed to say so could
/// stay unseen, and it outlasts a long poll, so that an agent's poll that ends
/// without a change and the next one it sends cost no database work.
pub const LIST_KEPT: Duration = Duration::from_secs(120);

/// How long a long poll that hears of no change is held: its `wait`, less a
/// random part of up to a fifth of it. Agents that started together (after a
/// restart of the site or of the API) come back at different moments, and
/// their polls do not all end, and return, at once.
pub fn held_for(wait: Duration) -> Duration {
    wait.mul_f64(1.0 - rand::random::<f64>() / 5.0)
}

/// How often an agent's `last_seen_at` is written at most, unless its version changes.
pub const SEEN_EVERY: chrono::Duration = chrono::Duration::seconds(30);

/// Where the work of a tenant stood: the subscription's epoch and the
/// tenant's count of changes. A work list computed at a stamp is current as
/// long as the stamp stays the same.
pub type Stamp = (u64, u64);

/// A work list and the stamp read before it was computed.
pub struct Cached {
    pub stamp: Stamp,
    pub at: Instant,
    pub list: Arc<WorkList>,
}

/// When an agent's `last_seen_at` was last written, and with which version.
type Seen = (DateTime<Utc>, Option<String>);

/// Which first page of a tenant's requests: status, target type, limit.
pub type RequestsKey = (Option<&'static str>, Option<&'static str>, u32);

/// A first page of requests and the stamp read before it was computed.
struct CachedPage {
    stamp: Stamp,
    at: Instant,
    page: Arc<Page<RequestView>>,
}

/// Request pages kept per tenant at most; a tenant's inboxes use a handful.
const PAGES_PER_TENANT: usize = 16;

/// The waiters of one tenant and its agents' latest work lists.
#[derive(Default)]
pub struct TenantWork {
    notify: Notify,
    generation: AtomicU64,
    lists: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<Option<Cached>>>>>,
    pages: Mutex<HashMap<RequestsKey, CachedPage>>,
    /// Whether the tenant has the approver function, which never changes.
    pub approval_required: std::sync::OnceLock<bool>,
}

impl TenantWork {
    /// Resolves at the next change of the tenant's work (or of the subscription).
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }

    /// The agent's latest work list; locked while one is computed, so the
    /// waiters of one agent share a single computation.
    pub fn list_of(&self, agent: Uuid) -> Arc<tokio::sync::Mutex<Option<Cached>>> {
        let mut lists = self.lists.lock().unwrap_or_else(|e| e.into_inner());
        lists.entry(agent).or_default().clone()
    }

    /// The page kept for `key` if it was computed at `stamp` and is still young.
    pub fn requests_page(&self, key: &RequestsKey, stamp: Stamp) -> Option<Arc<Page<RequestView>>> {
        let pages = self.pages.lock().unwrap_or_else(|e| e.into_inner());
        pages
            .get(key)
            .filter(|kept| kept.stamp == stamp && kept.at.elapsed() < RECHECK)
            .map(|kept| kept.page.clone())
    }

    /// Keeps a page computed at `stamp`.
    pub fn keep_requests_page(&self, key: RequestsKey, stamp: Stamp, page: Arc<Page<RequestView>>) {
        let mut pages = self.pages.lock().unwrap_or_else(|e| e.into_inner());
        if pages.len() >= PAGES_PER_TENANT && !pages.contains_key(&key) {
            pages.retain(|_, kept| kept.stamp == stamp && kept.at.elapsed() < RECHECK);
            if pages.len() >= PAGES_PER_TENANT {
                pages.clear();
            }
        }
        pages.insert(
            key,
            CachedPage {
                stamp,
                at: Instant::now(),
                page,
            },
        );
    }

    fn wake(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
}

#[derive(Default)]
pub struct WorkSignal {
    tenants: Mutex<HashMap<Uuid, Arc<TenantWork>>>,
    redis: Option<redis::aio::ConnectionManager>,
    /// Whether the subscription to other replicas' wake-ups is live.
    subscribed: AtomicBool,
    /// Changes whenever the subscription starts or stops.
    epoch: AtomicU64,
    /// When each agent's `last_seen_at` was last written, and with which version.
    seen: Mutex<HashMap<Uuid, Seen>>,
}

impl WorkSignal {
    pub fn local() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Shares wake-ups across replicas through Redis; starts the subscriber.
    pub fn redis(client: redis::Client, publisher: redis::aio::ConnectionManager) -> Arc<Self> {
        let signal = Arc::new(Self {
            redis: Some(publisher),
            ..Self::default()
        });
        tokio::spawn(subscribe(client, Arc::downgrade(&signal)));
        signal
    }

    /// The waiters and work lists of a tenant.
    pub fn tenant(&self, tenant: Uuid) -> Arc<TenantWork> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        tenants.entry(tenant).or_default().clone()
    }

    /// Whether every change, of any replica, wakes the waiters here: only
    /// then may a waiter rely on wake-ups alone.
    pub fn reliable(&self) -> bool {
        self.redis.is_some() && self.subscribed.load(Ordering::SeqCst)
    }

    /// Where the tenant's work stands; read before looking at the database.
    pub fn stamp(&self, tenant: &TenantWork) -> Stamp {
        (
            self.epoch.load(Ordering::SeqCst),
            tenant.generation.load(Ordering::SeqCst),
        )
    }

    fn wake(&self, tenant: Uuid) {
        let tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(work) = tenants.get(&tenant) {
            work.wake();
        }
    }

    /// The subscription started or stopped: every waiter looks again.
    fn set_subscribed(&self, subscribed: bool) {
        self.subscribed.store(subscribed, Ordering::SeqCst);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        let tenants: Vec<Arc<TenantWork>> = self
            .tenants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for work in tenants {
            work.wake();
        }
    }

    /// Whether an agent's `last_seen_at` is due to be written.
    pub fn seen_due(&self, agent: Uuid, now: DateTime<Utc>, version: Option<&str>) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        match seen.get(&agent) {
            Some((at, known)) => {
                now - *at >= SEEN_EVERY
                    || *at > now
                    || version.is_some_and(|v| known.as_deref() != Some(v))
            }
            None => true,
        }
    }

    /// An agent's `last_seen_at` was written.
    pub fn seen_written(&self, agent: Uuid, now: DateTime<Utc>, version: Option<String>) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let entry = seen.entry(agent).or_insert((now, None));
        entry.0 = now;
        if version.is_some() {
            entry.1 = version;
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
                tracing::warn!(error = %err, "work-list wake-up not shared; other replicas see the change at their next look at the database");
            }
        }
    }
}

async fn subscribe(client: redis::Client, signal: std::sync::Weak<WorkSignal>) {
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => {
                if pubsub.subscribe(CHANNEL).await.is_ok() {
                    match signal.upgrade() {
                        Some(signal) => signal.set_subscribed(true),
                        None => return,
                    }
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
                    match signal.upgrade() {
                        Some(signal) => signal.set_subscribed(false),
                        None => return,
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
