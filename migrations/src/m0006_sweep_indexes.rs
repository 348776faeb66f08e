//! The indexes of the sweeper's two looks across tenants: running jobs by the
//! end of their lease, and open requests by their expiry. Without them each
//! round reads every job and every request of every tenant.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum ReadoutJobs {
    Table,
    Status,
    LeaseExpiresAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum EventLogRequests {
    Table,
    Status,
    ExpiresAt,
}

const JOBS_BY_LEASE: &str = "readout_jobs_by_lease";
const REQUESTS_BY_EXPIRY: &str = "event_log_requests_by_expiry";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(JOBS_BY_LEASE)
                    .table(ReadoutJobs::Table)
                    .col(ReadoutJobs::Status)
                    .col(ReadoutJobs::LeaseExpiresAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(REQUESTS_BY_EXPIRY)
                    .table(EventLogRequests::Table)
                    .col(EventLogRequests::Status)
                    .col(EventLogRequests::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(REQUESTS_BY_EXPIRY)
                    .table(EventLogRequests::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name(JOBS_BY_LEASE)
                    .table(ReadoutJobs::Table)
                    .to_owned(),
            )
            .await
    }
}
