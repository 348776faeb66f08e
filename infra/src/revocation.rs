//! Token revocation: durable rows in the database, cached in Redis (or in
//! process in embedded mode), so that checking a token costs one cache round
//! trip and no query. When the cache fails, the database answers instead, and
//! the cache is rebuilt before it is trusted again: a revoked token never passes.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Duration, Utc};
use countersign_domain::auth::{ACCESS_TOKEN_TTL_SECS, Session};
use countersign_domain::{Error, Result};
use redis::aio::ConnectionManager;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use crate::db::DbResult;
use crate::entities::revocations;

/// One revocation. A token is refused when its id is listed, its family is
/// listed, or its credential's or tenant's generation is below the listed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub key: String,
    pub generation: i64,
    pub expires_at: DateTime<Utc>,
}

impl Revocation {
    /// Entries only need to outlive the access tokens they refuse.
    fn until(now: DateTime<Utc>) -> DateTime<Utc> {
        now + Duration::seconds(ACCESS_TOKEN_TTL_SECS + 60)
    }

    pub fn token(jti: Uuid, expires_at: DateTime<Utc>) -> Self {
        Self {
            key: format!("jti:{jti}"),
            generation: 1,
            expires_at,
        }
    }

    pub fn family(family: Uuid, now: DateTime<Utc>) -> Self {
        Self {
            key: format!("fam:{family}"),
            generation: 1,
            expires_at: Self::until(now),
        }
    }

    /// Every token of the credential issued before `generation`.
    pub fn credential(id: Uuid, generation: i64, now: DateTime<Utc>) -> Self {
        Self {
            key: format!("cred:{id}"),
            generation,
            expires_at: Self::until(now),
        }
    }

    pub fn tenant(id: Uuid, generation: i64, now: DateTime<Utc>) -> Self {
        Self {
            key: format!("tenant:{id}"),
            generation,
            expires_at: Self::until(now),
        }
    }
}

fn keys_of(session: &Session) -> [String; 4] {
    let tenant = session.principal.tenant_id.map(|t| t.0).unwrap_or_default();
    [
        format!("jti:{}", session.token_id),
        format!("cred:{}", session.principal.id),
        format!("fam:{}", session.family.unwrap_or_default()),
        format!("tenant:{tenant}"),
    ]
}

fn revoked(session: &Session, values: [Option<i64>; 4]) -> bool {
    let [jti, cred, fam, tenant] = values;
    jti.is_some()
        || cred.is_some_and(|g| session.generation < g)
        || (session.family.is_some() && fam.is_some())
        || tenant.is_some_and(|g| session.tenant_generation < g)
}

enum Cache {
    Local(RwLock<HashMap<String, (i64, DateTime<Utc>)>>),
    Redis {
        conn: ConnectionManager,
        stale: AtomicBool,
    },
}

const REDIS_PREFIX: &str = "countersign:rv:";
const LOADED_MARKER: &str = "countersign:rv:loaded";

pub struct RevocationList {
    db: DatabaseConnection,
    cache: Cache,
}

impl RevocationList {
    /// In-process cache, filled from the database: for a single process.
    pub async fn local(db: DatabaseConnection) -> anyhow::Result<Self> {
        let rows = active_rows(&db, Utc::now()).await?;
        let map = rows
            .into_iter()
            .map(|r| (r.key, (r.generation, r.expires_at)))
            .collect();
        Ok(Self {
            db,
            cache: Cache::Local(RwLock::new(map)),
        })
    }

    /// Redis cache shared by all replicas.
    pub fn redis(db: DatabaseConnection, conn: ConnectionManager) -> Self {
        Self {
            db,
            cache: Cache::Redis {
                conn,
                stale: AtomicBool::new(true),
            },
        }
    }

    /// Writes the entries durably, as part of the caller's transaction.
    pub async fn record(&self, txn: &impl ConnectionTrait, entries: &[Revocation]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let models = entries.iter().map(|e| revocations::ActiveModel {
            key: Set(e.key.clone()),
            generation: Set(e.generation),
            expires_at: Set(e.expires_at),
        });
        revocations::Entity::insert_many(models)
            .on_conflict(
                OnConflict::column(revocations::Column::Key)
                    .update_columns([
                        revocations::Column::Generation,
                        revocations::Column::ExpiresAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await
            .db()?;
        Ok(())
    }

    /// Pushes committed entries to the cache. A failure marks the cache stale,
    /// so that it is rebuilt from the database before it is trusted again.
    pub async fn publish(&self, entries: &[Revocation]) {
        match &self.cache {
            Cache::Local(map) => {
                if let Ok(mut map) = map.write() {
                    for e in entries {
                        let slot = map
                            .entry(e.key.clone())
                            .or_insert((e.generation, e.expires_at));
                        *slot = (slot.0.max(e.generation), slot.1.max(e.expires_at));
                    }
                }
            }
            Cache::Redis { conn, stale } => {
                if let Err(err) = redis_publish(conn.clone(), entries).await {
                    tracing::warn!(error = %err, "revocation cache unreachable; the database answers until it is rebuilt");
                    stale.store(true, Ordering::SeqCst);
                }
            }
        }
    }

    pub async fn is_revoked(&self, session: &Session) -> Result<bool> {
        let keys = keys_of(session);
        match &self.cache {
            Cache::Local(map) => {
                let now = Utc::now();
                let map = map
                    .read()
                    .map_err(|_| Error::Internal(anyhow::anyhow!("revocation cache poisoned")))?;
                let values =
                    keys.map(|k| map.get(&k).filter(|(_, exp)| *exp > now).map(|(g, _)| *g));
                Ok(revoked(session, values))
            }
            Cache::Redis { conn, stale } => {
                if !stale.load(Ordering::SeqCst) {
                    match redis_lookup(conn.clone(), &keys).await {
                        Ok(Some(values)) => return Ok(revoked(session, values)),
                        Ok(None) => stale.store(true, Ordering::SeqCst),
                        Err(err) => {
                            tracing::warn!(error = %err, "revocation cache unreachable; asking the database");
                            stale.store(true, Ordering::SeqCst);
                        }
                    }
                }
                let answer = self.ask_database(session, &keys).await?;
                self.rebuild(conn.clone(), stale).await;
                Ok(answer)
            }
        }
    }

    async fn ask_database(&self, session: &Session, keys: &[String; 4]) -> Result<bool> {
        let rows = revocations::Entity::find()
            .filter(revocations::Column::Key.is_in(keys.iter().cloned()))
            .filter(revocations::Column::ExpiresAt.gt(Utc::now()))
            .all(&self.db)
            .await
            .db()?;
        let values = keys
            .clone()
            .map(|k| rows.iter().find(|r| r.key == k).map(|r| r.generation));
        Ok(revoked(session, values))
    }

    async fn rebuild(&self, conn: ConnectionManager, stale: &AtomicBool) {
        let Ok(rows) = active_rows(&self.db, Utc::now()).await else {
            return;
        };
        let entries: Vec<Revocation> = rows
            .into_iter()
            .map(|r| Revocation {
                key: r.key,
                generation: r.generation,
                expires_at: r.expires_at,
            })
            .collect();
        let mut conn2 = conn.clone();
        let result = async {
            redis_publish(conn, &entries).await?;
            let _: () = redis::cmd("SET")
                .arg(LOADED_MARKER)
                .arg(1)
                .query_async(&mut conn2)
                .await?;
            Ok::<_, redis::RedisError>(())
        }
        .await;
        if result.is_ok() {
            stale.store(false, Ordering::SeqCst);
            tracing::info!(
                entries = entries.len(),
                "revocation cache rebuilt from the database"
            );
        }
    }

    /// Drops expired rows; run by the housekeeping worker.
    pub async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64> {
        let result = revocations::Entity::delete_many()
            .filter(revocations::Column::ExpiresAt.lte(now))
            .exec(&self.db)
            .await
            .db()?;
        Ok(result.rows_affected)
    }
}

async fn active_rows(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
) -> Result<Vec<revocations::Model>> {
    revocations::Entity::find()
        .filter(revocations::Column::ExpiresAt.gt(now))
        .all(db)
        .await
        .db()
}

/// Sets each entry unless the cache already holds a higher generation.
async fn redis_publish(
    mut conn: ConnectionManager,
    entries: &[Revocation],
) -> redis::RedisResult<()> {
    let script = redis::Script::new(
        r"local current = tonumber(redis.call('GET', KEYS[1]) or '0')
          if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
          else redis.call('EXPIRE', KEYS[1], ARGV[2], 'GT') end
          return 1",
    );
    let now = Utc::now();
    for e in entries {
        let ttl = (e.expires_at - now).num_seconds().max(1);
        let _: i64 = script
            .key(format!("{REDIS_PREFIX}{}", e.key))
            .arg(e.generation)
            .arg(ttl)
            .invoke_async(&mut conn)
            .await?;
    }
    Ok(())
}

/// `None` when the cache was emptied (a Redis restart) and must be rebuilt.
async fn redis_lookup(
    mut conn: ConnectionManager,
    keys: &[String; 4],
) -> redis::RedisResult<Option<[Option<i64>; 4]>> {
    let mut cmd = redis::cmd("MGET");
    cmd.arg(LOADED_MARKER);
    for k in keys {
        cmd.arg(format!("{REDIS_PREFIX}{k}"));
    }
    let values: Vec<Option<i64>> = cmd.query_async(&mut conn).await?;
    match values.as_slice() {
        [Some(_), a, b, c, d] => Ok(Some([*a, *b, *c, *d])),
        _ => Ok(None),
    }
}
