//! Connecting to PostgreSQL or SQLite, migrating, and mapping database errors.

use std::time::Duration;

use countersign_domain::{Error, ErrorCode};
use countersign_migrations::Migrator;
use countersign_migrations::MigratorTrait;
/// The tables whose rows row-level security binds to one tenant.
pub use countersign_migrations::tenant_tables;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, RuntimeErr,
    SqlErr, Statement, sqlx,
};

/// Opens a pool. A `sqlite://` file is created when missing; SQLite gets a single
/// connection, since it has one writer anyway, and keeps it.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<DatabaseConnection> {
    let sqlite = url.starts_with("sqlite:");
    let url = if sqlite && !url.contains('?') && !url.contains(":memory:") {
        format!("{url}?mode=rwc")
    } else {
        url.to_owned()
    };
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(if sqlite { 1 } else { max_connections })
        .min_connections(if sqlite { 1 } else { 0 })
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    if sqlite {
        // The single SQLite connection is kept for the life of the process:
        // without idle timeout and lifetime, sqlx runs no reaper task, whose
        // idle count can wrap around and spin a core at shutdown
        // (launchbadge/sqlx#3645).
        options
            .idle_timeout(None::<Duration>)
            .max_lifetime(None::<Duration>);
    }
    let db = Database::connect(options).await?;
    Ok(db)
}

pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    Migrator::up(db, None).await?;
    Ok(())
}

/// How far a connection's role reaches past row-level security on PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleReach {
    /// Superuser or `BYPASSRLS`: no policy applies at all.
    pub bypasses: bool,
    /// A member of `countersign_worker`: sees every tenant's rows.
    pub all_tenants: bool,
}

impl RoleReach {
    pub fn spans_tenants(self) -> bool {
        self.bypasses || self.all_tenants
    }
}

/// The reach of the role `db` connects as; `None` on SQLite, which has no
/// row-level security.
pub async fn role_reach(db: &DatabaseConnection) -> anyhow::Result<Option<RoleReach>> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(None);
    }
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT r.rolsuper OR r.rolbypassrls AS bypasses,
                    EXISTS (SELECT 1 FROM pg_roles w
                            WHERE w.rolname = 'countersign_worker'
                              AND pg_has_role(current_user, w.oid, 'USAGE')) AS all_tenants
             FROM pg_roles r WHERE r.rolname = current_user",
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("the connection's role is not in pg_roles"))?;
    Ok(Some(RoleReach {
        bypasses: row.try_get("", "bypasses")?,
        all_tenants: row.try_get("", "all_tenants")?,
    }))
}

/// Connections of background work that spans tenants (outbox, expiry,
/// chain-head signing, metrics).
const WORKER_CONNECTIONS: u32 = 4;

/// The connection for work that spans tenants, after checking on PostgreSQL
/// that each role reaches as far as its work needs: the API's role should be
/// bound by row-level security, the workers' role must see every tenant.
pub async fn all_tenants_connection(
    api: &DatabaseConnection,
    worker_url: Option<&str>,
) -> anyhow::Result<DatabaseConnection> {
    let api_reach = role_reach(api).await?;
    if api_reach.is_some_and(RoleReach::spans_tenants) {
        tracing::warn!(
            "DATABASE_URL connects as a role that sees every tenant (superuser, BYPASSRLS or \
             countersign_worker): row-level security does not guard the API; connect it as a \
             member of countersign_api"
        );
    }
    let Some(url) = worker_url else {
        anyhow::ensure!(
            api_reach.is_none_or(RoleReach::spans_tenants),
            "DATABASE_URL's role sees one tenant per transaction; background work needs \
             COUNTERSIGN_WORKER_DATABASE_URL with a member of countersign_worker"
        );
        return Ok(api.clone());
    };
    let worker = connect(url, WORKER_CONNECTIONS).await?;
    anyhow::ensure!(
        role_reach(&worker)
            .await?
            .is_none_or(RoleReach::spans_tenants),
        "COUNTERSIGN_WORKER_DATABASE_URL must connect as a member of countersign_worker"
    );
    Ok(worker)
}

/// Maps a database error to the domain's error: unique violations are 409,
/// a lost connection is 503, anything else a logged 500.
pub(crate) fn db_err(err: DbErr) -> Error {
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => {
            return Error::rule(
                ErrorCode::AlreadyExists,
                "a resource with this marking, serial or slug already exists",
            );
        }
        Some(SqlErr::ForeignKeyConstraintViolation(_)) => {
            return Error::rule(
                ErrorCode::UnknownReference,
                "the body refers to a resource that does not exist",
            );
        }
        // SQLite's refusal of an insert over an existing row of a fixed or
        // append-only table (migration m0008) is a unique violation too.
        _ if is_row_exists(&err) => {
            return Error::rule(
                ErrorCode::AlreadyExists,
                "a resource with this marking, serial or slug already exists",
            );
        }
        _ => {}
    }
    match &err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => Error::Unavailable(err.to_string()),
        DbErr::Exec(e) | DbErr::Query(e) if is_connection_lost(e) => {
            Error::Unavailable(err.to_string())
        }
        _ => Error::Internal(anyhow::Error::new(err)),
    }
}

/// Whether SQLite refused an insert that collides with an existing row of a
/// fixed or append-only table (migration m0008).
pub(crate) fn is_row_exists(err: &DbErr) -> bool {
    err.to_string()
        .contains(&format!("{}: ", countersign_migrations::ROW_EXISTS))
}

/// Whether a statement failed because the database went away under it: the
/// connection broke, or the server ended the session (shutdown, failover,
/// `pg_terminate_backend`) or refuses sessions for now. Retrying later helps.
fn is_connection_lost(err: &RuntimeErr) -> bool {
    match err {
        RuntimeErr::SqlxError(e) => match e.as_ref() {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::BeginFailed => true,
            // SQLSTATE class 08 (connection exception), 57P01–57P05 (the
            // server ended the session), 53300 (too many connections).
            sqlx::Error::Database(db) => {
                db.code().is_some_and(|code| {
                    code.starts_with("08") || code.starts_with("57P") || code == "53300"
                }) || is_connection_error(&e.to_string())
            }
            other => is_connection_error(&other.to_string()),
        },
        other => is_connection_error(&other.to_string()),
    }
}

fn is_connection_error(message: &str) -> bool {
    [
        "connection refused",
        "error communicating with database",
        "pool timed out",
        "broken pipe",
        "connection reset",
    ]
    .iter()
    .any(|needle| message.to_ascii_lowercase().contains(needle))
}

/// `?` for sea-orm results inside the adapters.
pub(crate) trait DbResult<T> {
    fn db(self) -> Result<T, Error>;
}

impl<T> DbResult<T> for Result<T, DbErr> {
    fn db(self) -> Result<T, Error> {
        self.map_err(db_err)
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::sync::Arc;

    use sea_orm::sqlx::error::{DatabaseError, ErrorKind};

    use super::*;

    /// A PostgreSQL error as the server reports it: a message and a SQLSTATE.
    #[derive(Debug)]
    struct Reported(&'static str, &'static str);

    impl std::fmt::Display for Reported {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Reported {}

    impl DatabaseError for Reported {
        fn message(&self) -> &str {
            self.0
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.1))
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> ErrorKind {
            ErrorKind::Other
        }
    }

    fn query(err: sqlx::Error) -> Error {
        db_err(DbErr::Query(RuntimeErr::SqlxError(Arc::new(err))))
    }

    #[test]
    fn a_lost_connection_is_unavailable() {
        let lost = [
            sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into()),
            sqlx::Error::Io(std::io::ErrorKind::UnexpectedEof.into()),
            sqlx::Error::Protocol("unexpected end of stream".into()),
            sqlx::Error::PoolTimedOut,
            sqlx::Error::Database(Box::new(Reported(
                "terminating connection due to administrator command",
                "57P01",
            ))),
            sqlx::Error::Database(Box::new(Reported(
                "the database system is shutting down",
                "57P03",
            ))),
            sqlx::Error::Database(Box::new(Reported("connection failure", "08006"))),
            sqlx::Error::Database(Box::new(Reported(
                "sorry, too many clients already",
                "53300",
            ))),
        ];
        for err in lost {
            let shown = err.to_string();
            assert!(matches!(query(err), Error::Unavailable(_)), "{shown}");
        }
    }

    #[test]
    fn other_database_errors_are_internal() {
        let err = sqlx::Error::Database(Box::new(Reported(
            "canceling statement due to statement timeout",
            "57014",
        )));
        assert!(matches!(query(err), Error::Internal(_)));
        let err = sqlx::Error::Database(Box::new(Reported("division by zero", "22012")));
        assert!(matches!(query(err), Error::Internal(_)));
    }
}
