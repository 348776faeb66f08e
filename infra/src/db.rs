//! Connecting to PostgreSQL or SQLite, migrating, and mapping database errors.

use std::time::Duration;

use countersign_domain::{Error, ErrorCode};
use countersign_migrations::Migrator;
use countersign_migrations::MigratorTrait;
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr, SqlErr};

/// Opens a pool. A `sqlite://` file is created when missing; SQLite gets a single
/// connection, since it has one writer anyway.
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
    let db = Database::connect(options).await?;
    Ok(db)
}

pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    Migrator::up(db, None).await?;
    Ok(())
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
        _ => {}
    }
    match &err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => Error::Unavailable(err.to_string()),
        DbErr::Exec(e) | DbErr::Query(e) if is_connection_error(&e.to_string()) => {
            Error::Unavailable(err.to_string())
        }
        _ => Error::Internal(anyhow::Error::new(err)),
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
