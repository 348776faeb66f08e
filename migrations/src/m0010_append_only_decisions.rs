//! Approvers' decisions are append-only, like the history (m0002): nothing
//! the application does updates or deletes a decision, and the database
//! refuses it on every supported backend. On SQLite an insert colliding
//! with an existing decision is refused too (m0008): `INSERT OR REPLACE`
//! would otherwise delete the decision without firing its delete trigger.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

use crate::m0008_replace_guards::no_replace;

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES: [&str; 2] = [
    r#"CREATE FUNCTION countersign_decisions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'request decisions are append-only' USING ERRCODE = 'integrity_constraint_violation';
END $$"#,
    "CREATE TRIGGER request_decisions_append_only BEFORE UPDATE OR DELETE ON request_decisions \
     FOR EACH ROW EXECUTE FUNCTION countersign_decisions_append_only()",
];

const SQLITE: [&str; 2] = [
    "CREATE TRIGGER request_decisions_no_update BEFORE UPDATE ON request_decisions \
     BEGIN SELECT RAISE(ABORT, 'request decisions are append-only'); END",
    "CREATE TRIGGER request_decisions_no_delete BEFORE DELETE ON request_decisions \
     BEGIN SELECT RAISE(ABORT, 'request decisions are append-only'); END",
];

/// Every unique key of `request_decisions`: its id, and one decision per
/// request and programming key, and per request and person.
const DECISION_KEYS: [&str; 3] = [
    "id",
    "request_id, programming_key_id",
    "request_id, employee_id",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                for statement in POSTGRES {
                    db.execute_unprepared(statement).await?;
                }
            }
            _ => {
                for statement in SQLITE {
                    db.execute_unprepared(statement).await?;
                }
                let guard = no_replace(
                    "request_decisions_no_replace",
                    "request_decisions",
                    &DECISION_KEYS,
                );
                db.execute_unprepared(&guard).await?;
            }
        }
        Ok(())
    }

    async fn down(&self, _: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration(
            "decisions stay append-only: this migration is not reverted".into(),
        ))
    }
}
