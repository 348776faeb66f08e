//! Throttling of login attempts: counters in Redis, shared by all replicas, or
//! in process. An attempt is counted *before* its credential is checked and
//! taken back when it succeeds, so concurrent guesses cannot overtake the
//! count. When Redis fails, the process counts alone, so an outage allows at
//! most a limit's attempts per counter and window in each replica; what it
//! counted then still throttles after Redis is back.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use countersign_domain::auth::AttemptLimit;
use redis::aio::ConnectionManager;

const PREFIX: &str = "countersign:throttle:";

/// Counts an attempt against every counter, all or none: `KEYS` are the
/// counters, `ARGV` their allowance and window, in pairs. Answers 0, or the
/// seconds until the first spent counter frees up (nothing is counted then).
static RESERVE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local wait = 0
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if redis.call('TTL', key) < 0 then
    redis.call('EXPIRE', key, ARGV[2 * i])
  end
  if count > tonumber(ARGV[2 * i - 1]) then
    wait = math.max(wait, redis.call('TTL', key), 1)
  end
end
if wait > 0 then
  for _, key in ipairs(KEYS) do redis.call('DECR', key) end
end
return wait
",
    )
});

/// Takes back an attempt that succeeded, on counters whose window still runs.
static RELEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
for _, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') > 0 then redis.call('DECR', key) end
end
return 0
",
    )
});

/// Where an attempt was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Redis,
    Local,
}

/// An attempt counted against its limits while its credential is checked.
/// Dropped, it stays counted (a failure); [`LoginThrottle::release`] takes
/// it back (a success).
#[must_use]
#[derive(Debug)]
pub struct Attempt {
    counted: Vec<(String, Place)>,
}

pub struct LoginThrottle {
    local: Mutex<HashMap<String, (u32, Instant)>>,
    redis: Option<ConnectionManager>,
}

impl LoginThrottle {
    pub fn new(redis: Option<ConnectionManager>) -> Self {
        Self {
            local: Mutex::default(),
            redis,
        }
    }

    /// Counts an attempt against every limit; `Err(seconds)` to wait when one
    /// is spent, and then nothing is counted.
    pub async fn reserve(&self, limits: &[AttemptLimit]) -> Result<Attempt, u64> {
        // A counter this process counted during an outage goes on being
        // counted here until its window ends.
        let (local, shared): (Vec<&AttemptLimit>, Vec<&AttemptLimit>) = limits
            .iter()
            .partition(|l| self.redis.is_none() || self.counted_locally(&l.key));
        self.reserve_locally(&local)?;
        let mut attempt = Attempt {
            counted: local
                .iter()
                .map(|l| (l.key.clone(), Place::Local))
                .collect(),
        };
        if shared.is_empty() {
            return Ok(attempt);
        }
        let place = match self.reserve_in_redis(&shared).await {
            Ok(0) => Place::Redis,
            Ok(wait) => {
                self.release(attempt).await;
                return Err(wait);
            }
            Err(err) => {
                tracing::warn!(error = %err, "throttle counters unreachable; counting in this process");
                if let Err(wait) = self.reserve_locally(&shared) {
                    self.release(attempt).await;
                    return Err(wait);
                }
                Place::Local
            }
        };
        attempt
            .counted
            .extend(shared.iter().map(|l| (l.key.clone(), place)));
        Ok(attempt)
    }

    /// The attempt succeeded: it no longer counts.
    pub async fn release(&self, attempt: Attempt) {
        let mut in_redis = RELEASE.prepare_invoke();
        let mut any_in_redis = false;
        {
            let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
            for (key, place) in &attempt.counted {
                match place {
                    Place::Local => {
                        if let Some((count, _)) = local.get_mut(key) {
                            *count = count.saturating_sub(1);
                        }
                    }
                    Place::Redis => {
                        in_redis.key(format!("{PREFIX}{key}"));
                        any_in_redis = true;
                    }
                }
            }
        }
        if let (true, Some(conn)) = (any_in_redis, &self.redis) {
            let mut conn = conn.clone();
            let released: redis::RedisResult<i64> = in_redis.invoke_async(&mut conn).await;
            if let Err(err) = released {
                tracing::warn!(error = %err, "a successful attempt stays counted: Redis unreachable");
            }
        }
    }

    async fn reserve_in_redis(&self, limits: &[&AttemptLimit]) -> redis::RedisResult<u64> {
        let Some(conn) = &self.redis else {
            return Ok(0);
        };
        let mut invocation = RESERVE.prepare_invoke();
        for limit in limits {
            invocation
                .key(format!("{PREFIX}{}", limit.key))
                .arg(limit.allowed)
                .arg(limit.window_secs);
        }
        let mut conn = conn.clone();
        invocation.invoke_async(&mut conn).await
    }

    fn reserve_locally(&self, limits: &[&AttemptLimit]) -> Result<(), u64> {
        let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let mut wait = 0;
        for limit in limits {
            let window = Duration::from_secs(limit.window_secs);
            let entry = local.entry(limit.key.clone()).or_insert((0, now + window));
            if entry.1 <= now {
                *entry = (0, now + window);
            }
            if entry.0 >= limit.allowed {
                wait = wait.max(entry.1.saturating_duration_since(now).as_secs().max(1));
            }
        }
        if wait > 0 {
            return Err(wait);
        }
        for limit in limits {
            if let Some((count, _)) = local.get_mut(&limit.key) {
                *count += 1;
            }
        }
        Ok(())
    }

    fn counted_locally(&self, key: &str) -> bool {
        let local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        local
            .get(key)
            .is_some_and(|(count, until)| *count > 0 && *until > Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(key: &str, allowed: u32) -> AttemptLimit {
        AttemptLimit {
            key: key.to_owned(),
            allowed,
            window_secs: 60,
        }
    }

    #[tokio::test]
    async fn attempts_count_before_the_check_and_successes_are_taken_back() {
        let throttle = LoginThrottle::new(None);
        let limits = [limit("a@x", 2), limit("a", 3)];
        let first = throttle.reserve(&limits).await;
        let second = throttle.reserve(&limits).await;
        assert!(first.is_ok() && second.is_ok());
        assert!(throttle.reserve(&limits).await.is_err(), "two in flight");
        if let Ok(first) = first {
            throttle.release(first).await;
        }
        let third = throttle.reserve(&limits).await;
        assert!(third.is_ok(), "a success no longer counts");
        // `a@x` is spent; a refused attempt counted nowhere, so `a` has room
        // for one more from another address.
        let elsewhere = [limit("a@y", 2), limit("a", 3)];
        assert!(throttle.reserve(&elsewhere).await.is_ok());
        assert!(throttle.reserve(&elsewhere).await.is_err(), "daily ceiling");
        drop((second, third));
    }
}
