//! Throttling of failed logins per credential: counters in Redis, shared by
//! all replicas, or in process. When Redis fails, the process counts alone, so
//! an outage allows at most [`LOGIN_FAILURES_ALLOWED`] failures per credential
//! and window in each replica; what it counted then still throttles after
//! Redis is back.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use countersign_domain::auth::{LOGIN_FAILURES_ALLOWED, LOGIN_THROTTLE_WINDOW_SECS};
use redis::aio::ConnectionManager;

const PREFIX: &str = "countersign:throttle:";

pub struct LoginThrottle {
    local: Mutex<HashMap<String, (u32, Instant)>>,
    redis: Option<ConnectionManager>,
    window: Duration,
}

impl LoginThrottle {
    pub fn new(redis: Option<ConnectionManager>) -> Self {
        Self {
            local: Mutex::default(),
            redis,
            window: Duration::from_secs(LOGIN_THROTTLE_WINDOW_SECS),
        }
    }

    /// `Some(seconds)` to wait when the credential is throttled.
    pub async fn retry_after(&self, key: &str) -> Option<u64> {
        if let Some(conn) = &self.redis {
            let mut conn = conn.clone();
            let query: redis::RedisResult<(Option<u32>, i64)> = redis::pipe()
                .get(format!("{PREFIX}{key}"))
                .ttl(format!("{PREFIX}{key}"))
                .query_async(&mut conn)
                .await;
            match query {
                Ok((count, ttl)) if count.unwrap_or(0) >= LOGIN_FAILURES_ALLOWED => {
                    return Some(ttl.max(1) as u64);
                }
                // Failures counted here while Redis was unreachable are not in Redis.
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "throttle counters unreachable; counting in this process")
                }
            }
        }
        self.local_retry_after(key)
    }

    pub async fn failed(&self, key: &str) {
        if let Some(conn) = &self.redis {
            let mut conn = conn.clone();
            let name = format!("{PREFIX}{key}");
            let query: redis::RedisResult<(u32, i64)> = redis::pipe()
                .atomic()
                .incr(&name, 1)
                .cmd("EXPIRE")
                .arg(&name)
                .arg(self.window.as_secs())
                .arg("NX")
                .query_async(&mut conn)
                .await;
            // A credential this process counted during an outage goes on being
            // counted here until its window ends.
            if query.is_ok() && !self.counted_locally(key) {
                return;
            }
        }
        let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let entry = local
            .entry(key.to_owned())
            .or_insert((0, now + self.window));
        if entry.1 <= now {
            *entry = (0, now + self.window);
        }
        entry.0 += 1;
    }

    pub async fn succeeded(&self, key: &str) {
        if let Some(conn) = &self.redis {
            let mut conn = conn.clone();
            let _: redis::RedisResult<i64> = redis::cmd("DEL")
                .arg(format!("{PREFIX}{key}"))
                .query_async(&mut conn)
                .await;
        }
        self.local
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    fn counted_locally(&self, key: &str) -> bool {
        let local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        local
            .get(key)
            .is_some_and(|(_, until)| *until > Instant::now())
    }

    fn local_retry_after(&self, key: &str) -> Option<u64> {
        let local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        let (count, until) = local.get(key)?;
        let left = until.saturating_duration_since(Instant::now());
        (*count >= LOGIN_FAILURES_ALLOWED && !left.is_zero()).then(|| left.as_secs().max(1))
    }
}
