//! The database adapter behind the domain's ports, and the tenant-scoped finders
//! every repository goes through.

use std::str::FromStr;
use std::sync::Arc;

use countersign_domain::page::{Page, PageRequest};
use countersign_domain::ports::{Clock, Health};
use countersign_domain::tenant::TenantId;
use countersign_domain::{Error, Result};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, SqliteTransactionMode, Statement, TransactionOptions,
    TransactionTrait,
};
use uuid::Uuid;

use crate::db::DbResult;
use crate::revocation::RevocationList;
use crate::signing::{HistoryPublicKey, HistorySigner};

pub struct Store {
    /// Sees one tenant per transaction ([`Store::begin_in`]); on PostgreSQL a
    /// role subject to row-level security.
    pub(crate) db: DatabaseConnection,
    /// Background work that spans tenants (expiry, chain-head signing,
    /// metrics); on PostgreSQL a member of `countersign_worker`.
    pub(crate) all_tenants: DatabaseConnection,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) revocations: Arc<RevocationList>,
    /// Base of links in e-mails.
    pub(crate) public_url: String,
    /// Signs history chain heads; configured outside the database.
    pub(crate) signer: Arc<HistorySigner>,
    /// Public keys that signed checkpoints before the current one.
    pub(crate) retired_keys: Arc<Vec<HistoryPublicKey>>,
    /// Wakes long-polling agents when a tenant's work changes.
    pub(crate) signal: Arc<crate::signal::WorkSignal>,
    /// Attempts before a retryable job failure becomes final.
    pub(crate) job_max_attempts: i32,
}

impl Store {
    pub fn new(
        db: DatabaseConnection,
        clock: Arc<dyn Clock>,
        revocations: Arc<RevocationList>,
        public_url: String,
    ) -> Self {
        Self {
            all_tenants: db.clone(),
            db,
            clock,
            revocations,
            public_url,
            signer: Arc::new(HistorySigner::generate()),
            retired_keys: Arc::default(),
            signal: crate::signal::WorkSignal::local(),
            job_max_attempts: 5,
        }
    }

    /// The configured key that signs history chain heads. Without it, a key of
    /// this process only: chains it signed do not verify after a restart.
    pub fn with_history_signer(mut self, signer: Arc<HistorySigner>) -> Self {
        self.signer = signer;
        self
    }

    /// Public keys that signed checkpoints before a rotation; checkpoints
    /// signed with them still verify, and no new ones are.
    pub fn with_retired_history_keys(mut self, keys: Vec<HistoryPublicKey>) -> Self {
        self.retired_keys = Arc::new(keys);
        self
    }

    /// The connection of background work that spans tenants; without it, the
    /// API's own.
    pub fn with_all_tenants_connection(mut self, db: DatabaseConnection) -> Self {
        self.all_tenants = db;
        self
    }

    pub fn with_work_signal(mut self, signal: Arc<crate::signal::WorkSignal>) -> Self {
        self.signal = signal;
        self
    }

    pub fn with_job_max_attempts(mut self, attempts: u32) -> Self {
        self.job_max_attempts = i32::try_from(attempts).unwrap_or(i32::MAX);
        self
    }

    /// Begins a transaction that sees and writes only tenant `t`'s rows.
    pub async fn begin_in(&self, t: TenantId) -> Result<DatabaseTransaction> {
        tenant_transaction(&self.db, t).await
    }
}

/// The setting row-level security reads on PostgreSQL: the one tenant whose
/// rows a transaction sees and may write.
pub const TENANT_SETTING: &str = "countersign.tenant_id";

/// Begins a transaction on `db` that sees and writes only tenant `t`'s rows.
pub async fn tenant_transaction(
    db: &DatabaseConnection,
    t: TenantId,
) -> Result<DatabaseTransaction> {
    transaction_with(db, TENANT_SETTING, &t.0.to_string()).await
}

/// Begins a transaction on `db` that changes tenant `t`'s rows. SQLite takes
/// its write lock at once: a transaction that first reads and then writes
/// could otherwise not wait for another writer, only fail.
pub(crate) async fn tenant_change_transaction(
    db: &DatabaseConnection,
    t: TenantId,
) -> Result<DatabaseTransaction> {
    if db.get_database_backend() != DbBackend::Sqlite {
        return tenant_transaction(db, t).await;
    }
    let options = TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    };
    db.begin_with_options(options).await.db()
}

/// Begins a transaction on `db` with the setting `name` (a `countersign.*`
/// setting the row-level security policies read) set to `value`.
pub(crate) async fn transaction_with(
    db: &DatabaseConnection,
    name: &str,
    value: &str,
) -> Result<DatabaseTransaction> {
    let txn = db.begin().await.db()?;
    set_local(&txn, name, value).await?;
    Ok(txn)
}

/// Sets a `countersign.*` setting for the rest of the transaction, which
/// row-level security policies read. SQLite has no such policies.
pub(crate) async fn set_local(txn: &DatabaseTransaction, name: &str, value: &str) -> Result<()> {
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT set_config($1, $2, true)",
            [name.into(), value.into()],
        ))
        .await
        .db()?;
    }
    Ok(())
}

fn column<E: EntityTrait>(name: &str) -> Result<E::Column> {
    E::Column::from_str(name).map_err(|_| {
        Error::Internal(anyhow::anyhow!(
            "{} has no column {name}",
            E::default().table_name()
        ))
    })
}

/// The one way to load a tenant-owned row: by tenant and id. Another tenant's
/// row is as missing as a row that does not exist. `lock` takes it FOR UPDATE.
pub(crate) async fn scoped<E: EntityTrait>(
    conn: &impl ConnectionTrait,
    t: TenantId,
    id: Uuid,
    lock: bool,
    what: &str,
) -> Result<E::Model> {
    let mut query = E::find()
        .filter(column::<E>("tenant_id")?.eq(t.0))
        .filter(column::<E>("id")?.eq(id));
    if lock {
        query = query.lock_exclusive();
    }
    query
        .one(conn)
        .await
        .db()?
        .ok_or_else(|| Error::not_found(what))
}

/// One page of a tenant's rows of a table, in id (creation) order.
pub(crate) async fn page_of<E: EntityTrait>(
    conn: &impl ConnectionTrait,
    t: TenantId,
    page: PageRequest,
    id: impl Fn(&E::Model) -> Uuid,
) -> Result<Page<E::Model>> {
    let id_column = column::<E>("id")?;
    let mut query = E::find().filter(column::<E>("tenant_id")?.eq(t.0));
    if let Some(after) = page.after {
        query = query.filter(id_column.gt(after));
    }
    let rows = query
        .order_by_asc(id_column)
        .limit(page.fetch())
        .all(conn)
        .await
        .db()?;
    Ok(Page::from_rows(rows, &page, id))
}

#[async_trait::async_trait]
impl Health for Store {
    /// Bounded well below a probe's timeout: with the database gone, waiting
    /// for the pool's acquire timeout would only make the probe itself fail.
    async fn ready(&self) -> bool {
        const PING: std::time::Duration = std::time::Duration::from_secs(2);
        matches!(tokio::time::timeout(PING, self.db.ping()).await, Ok(Ok(())))
    }
}
