//! On SQLite, `INSERT OR REPLACE` (and `REPLACE INTO`, or a table's `ON
//! CONFLICT REPLACE`) deletes a colliding row without firing its delete
//! trigger and inserts the new one without firing an update trigger, so it
//! could flip a tenant's fixed settings or rewrite history past the triggers
//! of m0001 and m0002. An upsert (`ON CONFLICT DO UPDATE`) fires the update
//! triggers, but is refused here as well, before it gets there. These
//! triggers refuse any insert that collides with an existing row of a fixed
//! or append-only table, whatever conflict clause it carries; the error says
//! [`ROW_EXISTS`], which the application answers like a unique violation.
//!
//! PostgreSQL has no REPLACE, and its `ON CONFLICT DO UPDATE` fires the
//! `BEFORE UPDATE` triggers that already refuse such changes; it needs nothing.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

/// The message of a refused colliding insert.
pub const ROW_EXISTS: &str = "row_exists";

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `(trigger, table, what identifies a row)`: every unique key of the table.
const GUARDED: [(&str, &str, &[&str]); 3] = [
    ("tenants_no_replace", "tenants", &["id", "slug"]),
    (
        "history_entries_no_replace",
        "history_entries",
        &["id", "tenant_id, seq"],
    ),
    (
        "history_signatures_no_replace",
        "history_signatures",
        &["id", "tenant_id, seq"],
    ),
];

/// A tenant's id is its identity: moving a row onto another id (with `UPDATE
/// OR REPLACE`, over an existing tenant) would hand that tenant this one's
/// settings.
const TENANT_ID_FIXED: &str = "CREATE TRIGGER tenants_fixed_id BEFORE UPDATE OF id ON tenants \
     FOR EACH ROW WHEN NEW.id IS NOT OLD.id \
     BEGIN SELECT RAISE(ABORT, 'tenant_setting_immutable'); END";

/// The trigger that refuses an insert into `table` colliding on any of `keys`.
pub(crate) fn no_replace(trigger: &str, table: &str, keys: &[&str]) -> String {
    let collides: Vec<String> = keys
        .iter()
        .map(|key| {
            let matches: Vec<String> = key
                .split(", ")
                .map(|column| format!("{column} = NEW.{column}"))
                .collect();
            format!(
                "EXISTS (SELECT 1 FROM {table} WHERE {})",
                matches.join(" AND ")
            )
        })
        .collect();
    format!(
        "CREATE TRIGGER {trigger} BEFORE INSERT ON {table} FOR EACH ROW WHEN {} \
         BEGIN SELECT RAISE(ABORT, '{ROW_EXISTS}: {table}'); END",
        collides.join(" OR ")
    )
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Sqlite {
            return Ok(());
        }
        let db = manager.get_connection();
        for (trigger, table, keys) in GUARDED {
            db.execute_unprepared(&no_replace(trigger, table, keys))
                .await?;
        }
        db.execute_unprepared(TENANT_ID_FIXED).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Sqlite {
            return Ok(());
        }
        let db = manager.get_connection();
        for (trigger, ..) in GUARDED {
            db.execute_unprepared(&format!("DROP TRIGGER IF EXISTS {trigger}"))
                .await?;
        }
        db.execute_unprepared("DROP TRIGGER IF EXISTS tenants_fixed_id")
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_collision_on_any_unique_key_is_refused() {
        assert_eq!(
            no_replace("t", "history_entries", &["id", "tenant_id, seq"]),
            "CREATE TRIGGER t BEFORE INSERT ON history_entries FOR EACH ROW WHEN \
             EXISTS (SELECT 1 FROM history_entries WHERE id = NEW.id) OR \
             EXISTS (SELECT 1 FROM history_entries WHERE tenant_id = NEW.tenant_id AND seq = NEW.seq) \
             BEGIN SELECT RAISE(ABORT, 'row_exists: history_entries'); END"
        );
    }
}
