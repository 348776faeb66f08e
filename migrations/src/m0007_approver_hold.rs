//! Approver credentials change hands only in the open (SPEC §2):
//! - `tenants.approver_hold_hours`, part of the fixed initial configuration,
//!   guarded by the same triggers as the approval flag;
//! - `programming_keys.hold_until`, the end of an approver key's hold;
//! - who created a webservice credential (`api_keys.created_by_…`), and the
//!   programming key behind each request (`requested_by_programming_key_id`:
//!   the requester's own, or the one that created the requester's credential),
//!   so that four eyes reach through an integration;
//! - `mail_outbox.secret`: a mail carrying a one-time PIN, whose body is wiped
//!   once it is sent or given up.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    ApproverHoldHours,
}

#[derive(DeriveIden)]
enum ProgrammingKeys {
    Table,
    HoldUntil,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    CreatedByProgrammingKeyId,
    CreatedByEmployeeId,
}

#[derive(DeriveIden)]
enum MailOutbox {
    Table,
    Secret,
}

#[derive(DeriveIden)]
enum EventLogRequests {
    Table,
    RequestedByProgrammingKeyId,
}

/// The tenant trigger of m0001, now also guarding the hold.
const POSTGRES_TENANTS_FIXED: &str = r#"CREATE OR REPLACE FUNCTION countersign_tenants_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'tenants are never deleted' USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  IF NEW.approval_required IS DISTINCT FROM OLD.approval_required
     OR NEW.approvals_required IS DISTINCT FROM OLD.approvals_required
     OR NEW.approver_hold_hours IS DISTINCT FROM OLD.approver_hold_hours THEN
    RAISE EXCEPTION 'approval_setting_immutable' USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  IF NEW.base_timezone IS DISTINCT FROM OLD.base_timezone OR NEW.slug IS DISTINCT FROM OLD.slug THEN
    RAISE EXCEPTION 'tenant_setting_immutable' USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  RETURN NEW;
END $$"#;

const SQLITE_TENANTS_FIXED_HOLD: &str = r#"CREATE TRIGGER tenants_fixed_hold BEFORE UPDATE OF approver_hold_hours ON tenants
FOR EACH ROW WHEN NEW.approver_hold_hours IS NOT OLD.approver_hold_hours
BEGIN SELECT RAISE(ABORT, 'approval_setting_immutable'); END"#;

fn nullable_uuid(column: impl IntoIden) -> ColumnDef {
    ColumnDef::new(column).uuid().null().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Tenants::Table)
                    .add_column(
                        ColumnDef::new(Tenants::ApproverHoldHours)
                            .small_integer()
                            .not_null()
                            .default(24),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ProgrammingKeys::Table)
                    .add_column(
                        ColumnDef::new(ProgrammingKeys::HoldUntil)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        // SQLite adds one column per statement.
        for column in [
            ApiKeys::CreatedByProgrammingKeyId,
            ApiKeys::CreatedByEmployeeId,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(ApiKeys::Table)
                        .add_column(nullable_uuid(column))
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(EventLogRequests::Table)
                    .add_column(nullable_uuid(EventLogRequests::RequestedByProgrammingKeyId))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(MailOutbox::Table)
                    .add_column(
                        ColumnDef::new(MailOutbox::Secret)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared(
            "UPDATE event_log_requests SET requested_by_programming_key_id = requested_by_id \
             WHERE requested_by_kind = 'user'",
        )
        .await?;
        let trigger = match manager.get_database_backend() {
            DbBackend::Postgres => POSTGRES_TENANTS_FIXED,
            _ => SQLITE_TENANTS_FIXED_HOLD,
        };
        db.execute_unprepared(trigger).await?;
        Ok(())
    }

    async fn down(&self, _: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration(
            "the approver hold is part of the fixed configuration and is not reverted".into(),
        ))
    }
}
