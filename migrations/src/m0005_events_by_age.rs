//! The index of the retention sweep: a tenant's events by their time, so
//! that finding (and deleting) those past the retention period reads only
//! them, not every event of the tenant.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Events {
    Table,
    TenantId,
    OccurredAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("events_by_age")
                    .table(Events::Table)
                    .col(Events::TenantId)
                    .col(Events::OccurredAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("events_by_age")
                    .table(Events::Table)
                    .to_owned(),
            )
            .await
    }
}
