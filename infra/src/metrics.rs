//! The figures behind `/metrics`: aggregate counts from the database (for
//! the worker that computes them at an interval), and at scrape time the
//! pool's usage, whether Redis answers, and the outbox worker's failures.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use countersign_domain::Result;
use countersign_domain::ports::{Operations, PoolUsage, ProcessCounts, TableCounts};
use sea_orm::{
    ColumnTrait, DatabaseBackend, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QuerySelect,
};

use crate::db::DbResult;
use crate::entities::{event_log_requests, mail_outbox, readout_jobs};

/// How long a scrape waits for Redis before counting it as down.
const REDIS_PATIENCE: Duration = Duration::from_secs(1);
/// How long the counts may take before the database counts as down.
const DATABASE_PATIENCE: Duration = Duration::from_secs(5);

pub struct OperationsProbe {
    /// The API's pool, whose usage is reported.
    db: DatabaseConnection,
    /// Sees every tenant's rows, for the counts.
    all_tenants: DatabaseConnection,
    redis: Option<redis::aio::ConnectionManager>,
    mail_send_failures: Arc<AtomicU64>,
}

impl OperationsProbe {
    pub fn new(
        db: DatabaseConnection,
        all_tenants: DatabaseConnection,
        redis: Option<redis::aio::ConnectionManager>,
        mail_send_failures: Arc<AtomicU64>,
    ) -> Self {
        Self {
            db,
            all_tenants,
            redis,
            mail_send_failures,
        }
    }

    fn pool(&self) -> PoolUsage {
        fn usage(size: u32, idle: usize, max: u32) -> PoolUsage {
            PoolUsage {
                size: size.into(),
                idle: u64::try_from(idle).unwrap_or(u64::MAX),
                max: max.into(),
            }
        }
        match self.db.get_database_backend() {
            DatabaseBackend::Postgres => {
                let pool = self.db.get_postgres_connection_pool();
                usage(
                    pool.size(),
                    pool.num_idle(),
                    pool.options().get_max_connections(),
                )
            }
            DatabaseBackend::Sqlite => {
                let pool = self.db.get_sqlite_connection_pool();
                usage(
                    pool.size(),
                    pool.num_idle(),
                    pool.options().get_max_connections(),
                )
            }
            _ => PoolUsage::default(),
        }
    }

    async fn redis_up(&self) -> Option<bool> {
        let mut conn = self.redis.clone()?;
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(&mut conn);
        Some(matches!(
            tokio::time::timeout(REDIS_PATIENCE, ping).await,
            Ok(Ok(_))
        ))
    }
}

/// Rows of `E` per value of its `status` column.
async fn count_by_status<E, C>(
    db: &DatabaseConnection,
    status: C,
    only: Option<&[&str]>,
) -> Result<Vec<(String, u64)>>
where
    E: EntityTrait<Column = C>,
    C: ColumnTrait,
{
    let mut query = E::find()
        .select_only()
        .column(status)
        .column_as(status.count(), "n")
        .group_by(status);
    if let Some(only) = only {
        query = query.filter(status.is_in(only.iter().copied()));
    }
    let rows: Vec<(String, i64)> = query.into_tuple().all(db).await.db()?;
    Ok(rows
        .into_iter()
        .map(|(status, n)| (status, u64::try_from(n).unwrap_or(0)))
        .collect())
}

impl OperationsProbe {
    async fn tables(&self) -> Result<TableCounts> {
        let requests = count_by_status::<event_log_requests::Entity, _>(
            &self.all_tenants,
            event_log_requests::Column::Status,
            None,
        )
        .await?;
        let jobs = count_by_status::<readout_jobs::Entity, _>(
            &self.all_tenants,
            readout_jobs::Column::Status,
            None,
        )
        .await?;
        // Sent mails only grow; what is not sent is what needs attention.
        let mail = count_by_status::<mail_outbox::Entity, _>(
            &self.all_tenants,
            mail_outbox::Column::Status,
            Some(&["pending", "failed"]),
        )
        .await?;
        let retrying = mail_outbox::Entity::find()
            .filter(mail_outbox::Column::Status.eq("pending"))
            .filter(mail_outbox::Column::Attempts.gt(0))
            .count(&self.all_tenants)
            .await
            .db()?;
        Ok(TableCounts {
            requests_by_status: requests,
            jobs_by_status: jobs,
            mail_by_status: mail,
            mail_retrying: retrying,
        })
    }
}

#[async_trait::async_trait]
impl Operations for OperationsProbe {
    async fn table_counts(&self) -> Option<TableCounts> {
        match tokio::time::timeout(DATABASE_PATIENCE, self.tables()).await {
            Ok(Ok(tables)) => Some(tables),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "metrics: the database counts failed");
                None
            }
            Err(_) => {
                tracing::warn!("metrics: the database counts took too long");
                None
            }
        }
    }

    async fn process_counts(&self) -> ProcessCounts {
        ProcessCounts {
            mail_send_failures: self.mail_send_failures.load(Ordering::Relaxed),
            pool: self.pool(),
            redis_up: self.redis_up().await,
        }
    }
}
