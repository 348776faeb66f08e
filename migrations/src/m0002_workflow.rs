//! The approval workflow: event-log requests, decisions, readout jobs, event
//! data, the hash-chained history and the e-mail outbox.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

use crate::m0001_foundation::{by_tenant, tenant_table};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum EventLogRequests {
    Table,
    Id,
    TenantId,
    TargetType,
    TargetId,
    TargetMarking,
    TargetName,
    Status,
    Comment,
    RequestedByKind,
    RequestedById,
    RequestedByEmployeeId,
    RequestedByName,
    ApprovalsRequired,
    RequestedAt,
    ApprovedAt,
    ExpiresAt,
    ClosedAt,
    Reason,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum RequestDecisions {
    Table,
    Id,
    TenantId,
    RequestId,
    Decision,
    Comment,
    ProgrammingKeyId,
    EmployeeId,
    ApproverName,
    DecidedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum ReadoutJobs {
    Table,
    Id,
    TenantId,
    Kind,
    RequestId,
    TargetType,
    TargetId,
    TargetMarking,
    Status,
    DeviceId,
    ProgrammingKeyId,
    Attempts,
    LeaseToken,
    LeaseExpiresAt,
    ResumeStatus,
    LastError,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Events {
    Table,
    Id,
    TenantId,
    SourceType,
    SourceId,
    DeviceSeq,
    OccurredAt,
    Kind,
    KeyMarking,
    CylinderMarking,
    JobId,
    ReceivedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum HistoryEntries {
    Table,
    Id,
    TenantId,
    Seq,
    At,
    ActorKind,
    ActorId,
    ActorName,
    ActorProgrammingKeyId,
    Action,
    SubjectType,
    SubjectId,
    Details,
    PrevHash,
    Hash,
}

#[derive(DeriveIden, Clone, Copy)]
enum HistoryHeads {
    Table,
    TenantId,
    Seq,
    Hash,
}

#[derive(DeriveIden, Clone, Copy)]
enum HistorySignatures {
    Table,
    Id,
    TenantId,
    Seq,
    Hash,
    Signature,
    KeyId,
    SignedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum MailOutbox {
    Table,
    Id,
    TenantId,
    Recipient,
    Subject,
    Body,
    Status,
    Attempts,
    NextAttemptAt,
    LastError,
    CreatedAt,
    SentAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use EventLogRequests as R;
        manager
            .create_table(
                tenant_table(R::Table, R::Id, R::TenantId)
                    .col(string(R::TargetType))
                    .col(uuid(R::TargetId))
                    .col(string(R::TargetMarking))
                    .col(string(R::TargetName))
                    .col(string(R::Status))
                    .col(text_null(R::Comment))
                    .col(string(R::RequestedByKind))
                    .col(uuid(R::RequestedById))
                    .col(uuid_null(R::RequestedByEmployeeId))
                    .col(string(R::RequestedByName))
                    .col(small_integer(R::ApprovalsRequired))
                    .col(timestamp_with_time_zone(R::RequestedAt))
                    .col(timestamp_with_time_zone_null(R::ApprovedAt))
                    .col(timestamp_with_time_zone_null(R::ExpiresAt))
                    .col(timestamp_with_time_zone_null(R::ClosedAt))
                    .col(string_null(R::Reason))
                    .col(timestamp_with_time_zone(R::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(by_tenant("requests_tenant", R::Table, R::TenantId, R::Id))
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("requests_status")
                    .table(R::Table)
                    .col(R::TenantId)
                    .col(R::Status)
                    .col(R::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("requests_expiry")
                    .table(R::Table)
                    .col(R::Status)
                    .col(R::ExpiresAt)
                    .to_owned(),
            )
            .await?;

        use RequestDecisions as D;
        manager
            .create_table(
                tenant_table(D::Table, D::Id, D::TenantId)
                    .col(uuid(D::RequestId))
                    .col(string(D::Decision))
                    .col(text_null(D::Comment))
                    .col(uuid(D::ProgrammingKeyId))
                    .col(uuid(D::EmployeeId))
                    .col(string(D::ApproverName))
                    .col(timestamp_with_time_zone(D::DecidedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(D::Table, D::RequestId)
                            .to(R::Table, R::Id),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("decisions_per_key", D::ProgrammingKeyId),
            ("decisions_per_person", D::EmployeeId),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(D::Table)
                        .col(D::RequestId)
                        .col(column)
                        .unique()
                        .to_owned(),
                )
                .await?;
        }

        use ReadoutJobs as J;
        manager
            .create_table(
                tenant_table(J::Table, J::Id, J::TenantId)
                    .col(string(J::Kind))
                    .col(uuid_null(J::RequestId))
                    .col(string(J::TargetType))
                    .col(uuid(J::TargetId))
                    .col(string(J::TargetMarking))
                    .col(string(J::Status))
                    .col(uuid_null(J::DeviceId))
                    .col(uuid_null(J::ProgrammingKeyId))
                    .col(integer(J::Attempts).default(0))
                    .col(uuid_null(J::LeaseToken))
                    .col(timestamp_with_time_zone_null(J::LeaseExpiresAt))
                    .col(string_null(J::ResumeStatus))
                    .col(text_null(J::LastError))
                    .col(timestamp_with_time_zone(J::CreatedAt))
                    .col(timestamp_with_time_zone(J::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(J::Table, J::RequestId)
                            .to(R::Table, R::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(by_tenant("jobs_tenant", J::Table, J::TenantId, J::Id))
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("jobs_status")
                    .table(J::Table)
                    .col(J::TenantId)
                    .col(J::Status)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(by_tenant(
                "jobs_request",
                J::Table,
                J::TenantId,
                J::RequestId,
            ))
            .await?;

        use Events as E;
        manager
            .create_table(
                tenant_table(E::Table, E::Id, E::TenantId)
                    .col(string(E::SourceType))
                    .col(uuid(E::SourceId))
                    .col(big_integer(E::DeviceSeq))
                    .col(timestamp_with_time_zone(E::OccurredAt))
                    .col(string(E::Kind))
                    .col(string_null(E::KeyMarking))
                    .col(string_null(E::CylinderMarking))
                    .col(uuid_null(E::JobId))
                    .col(timestamp_with_time_zone(E::ReceivedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("events_device_seq")
                    .table(E::Table)
                    .col(E::TenantId)
                    .col(E::SourceType)
                    .col(E::SourceId)
                    .col(E::DeviceSeq)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("events_time")
                    .table(E::Table)
                    .col(E::TenantId)
                    .col(E::SourceType)
                    .col(E::SourceId)
                    .col(E::OccurredAt)
                    .to_owned(),
            )
            .await?;

        use HistoryEntries as H;
        manager
            .create_table(
                Table::create()
                    .table(H::Table)
                    .col(pk_uuid(H::Id))
                    .col(uuid(H::TenantId))
                    .col(big_integer(H::Seq))
                    .col(timestamp_with_time_zone(H::At))
                    .col(string(H::ActorKind))
                    .col(uuid_null(H::ActorId))
                    .col(string(H::ActorName))
                    .col(uuid_null(H::ActorProgrammingKeyId))
                    .col(string(H::Action))
                    .col(string(H::SubjectType))
                    .col(uuid_null(H::SubjectId))
                    .col(json(H::Details))
                    .col(string(H::PrevHash))
                    .col(string(H::Hash))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("history_seq")
                    .table(H::Table)
                    .col(H::TenantId)
                    .col(H::Seq)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("history_subject")
                    .table(H::Table)
                    .col(H::TenantId)
                    .col(H::SubjectType)
                    .col(H::SubjectId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(HistoryHeads::Table)
                    .col(pk_uuid(HistoryHeads::TenantId))
                    .col(big_integer(HistoryHeads::Seq))
                    .col(string(HistoryHeads::Hash))
                    .to_owned(),
            )
            .await?;
        use HistorySignatures as S;
        manager
            .create_table(
                Table::create()
                    .table(S::Table)
                    .col(pk_uuid(S::Id))
                    .col(uuid(S::TenantId))
                    .col(big_integer(S::Seq))
                    .col(string(S::Hash))
                    .col(string(S::Signature))
                    .col(string(S::KeyId))
                    .col(timestamp_with_time_zone(S::SignedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("history_signatures_seq")
                    .table(S::Table)
                    .col(S::TenantId)
                    .col(S::Seq)
                    .unique()
                    .to_owned(),
            )
            .await?;

        use MailOutbox as M;
        manager
            .create_table(
                Table::create()
                    .table(M::Table)
                    .col(pk_uuid(M::Id))
                    .col(uuid_null(M::TenantId))
                    .col(string(M::Recipient))
                    .col(string(M::Subject))
                    .col(text(M::Body))
                    .col(string(M::Status))
                    .col(integer(M::Attempts).default(0))
                    .col(timestamp_with_time_zone(M::NextAttemptAt))
                    .col(text_null(M::LastError))
                    .col(timestamp_with_time_zone(M::CreatedAt))
                    .col(timestamp_with_time_zone_null(M::SentAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("outbox_due")
                    .table(M::Table)
                    .col(M::Status)
                    .col(M::NextAttemptAt)
                    .to_owned(),
            )
            .await?;

        let db = manager.get_connection();
        for statement in raw_statements(manager.get_database_backend()) {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration(
            "the workflow schema is not reverted".into(),
        ))
    }
}

/// One open request per target, enforced by the database; history rows that
/// nobody can change or delete.
fn raw_statements(backend: DbBackend) -> Vec<&'static str> {
    let mut statements = vec![
        "CREATE UNIQUE INDEX requests_open_target ON event_log_requests (tenant_id, target_type, target_id) \
         WHERE status IN ('pending_approval', 'approved')",
    ];
    match backend {
        DbBackend::Postgres => statements.extend([
            r#"CREATE FUNCTION countersign_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'history entries are append-only' USING ERRCODE = 'integrity_constraint_violation';
END $$"#,
            "CREATE TRIGGER history_append_only BEFORE UPDATE OR DELETE ON history_entries \
             FOR EACH ROW EXECUTE FUNCTION countersign_history_append_only()",
            "CREATE TRIGGER history_signatures_append_only BEFORE UPDATE OR DELETE ON history_signatures \
             FOR EACH ROW EXECUTE FUNCTION countersign_history_append_only()",
        ]),
        _ => statements.extend([
            "CREATE TRIGGER history_no_update BEFORE UPDATE ON history_entries \
             BEGIN SELECT RAISE(ABORT, 'history entries are append-only'); END",
            "CREATE TRIGGER history_no_delete BEFORE DELETE ON history_entries \
             BEGIN SELECT RAISE(ABORT, 'history entries are append-only'); END",
            "CREATE TRIGGER history_signatures_no_update BEFORE UPDATE ON history_signatures \
             BEGIN SELECT RAISE(ABORT, 'history entries are append-only'); END",
            "CREATE TRIGGER history_signatures_no_delete BEFORE DELETE ON history_signatures \
             BEGIN SELECT RAISE(ABORT, 'history entries are append-only'); END",
        ]),
    }
    statements
}
