//! Indexes for the lookups of request views: the jobs of given requests (also
//! without the tenant, as the expiry sweep looks them up) and the decisions of
//! a tenant's requests.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum ReadoutJobs {
    Table,
    Id,
    RequestId,
}

#[derive(DeriveIden, Clone, Copy)]
enum RequestDecisions {
    Table,
    TenantId,
    RequestId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("jobs_by_request")
                    .table(ReadoutJobs::Table)
                    .col(ReadoutJobs::RequestId)
                    .col(ReadoutJobs::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("decisions_by_request")
                    .table(RequestDecisions::Table)
                    .col(RequestDecisions::TenantId)
                    .col(RequestDecisions::RequestId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("decisions_by_request")
                    .table(RequestDecisions::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("jobs_by_request")
                    .table(ReadoutJobs::Table)
                    .to_owned(),
            )
            .await
    }
}
