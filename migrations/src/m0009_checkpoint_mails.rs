//! The daily checkpoint mails (SPEC §5): one row per tenant and day on which
//! the tenant's latest checkpoint was mailed to its auditors. The unique index
//! on `(tenant_id, day)` lets only one replica mail a tenant on a day; the
//! newest row's `seq` tells whether there is anything new to mail.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::m0001_foundation::tenant_table;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum CheckpointMails {
    Table,
    Id,
    TenantId,
    /// The tenant's local date, `YYYY-MM-DD`.
    Day,
    Seq,
    Hash,
    Recipients,
    MailedAt,
}

/// The tenant-owned tables this migration adds, bound like those of m0004.
pub const TENANT_TABLES: &[&str] = &["checkpoint_mails"];

const ONE_PER_DAY: &str = "checkpoint_mails_per_day";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use CheckpointMails as M;
        manager
            .create_table(
                tenant_table(M::Table, M::Id, M::TenantId)
                    .col(string(M::Day))
                    .col(big_integer(M::Seq))
                    .col(string(M::Hash))
                    .col(integer(M::Recipients))
                    .col(timestamp_with_time_zone(M::MailedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(ONE_PER_DAY)
                    .table(M::Table)
                    .col(M::TenantId)
                    .col(M::Day)
                    .unique()
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(&crate::m0004_row_level_security::policies(
                    "checkpoint_mails",
                ))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CheckpointMails::Table).to_owned())
            .await
    }
}
