//! Tenants, credentials, master data and inventory.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Tenants {
    Table,
    Id,
    Slug,
    Name,
    BaseTimezone,
    Locale,
    ApprovalRequired,
    ApprovalsRequired,
    EventRetentionDays,
    RequestTtlHours,
    ExecutionTtlHours,
    Status,
    TokenGeneration,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Employees {
    Table,
    Id,
    TenantId,
    Name,
    Email,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum ProgrammingKeys {
    Table,
    Id,
    TenantId,
    Marking,
    Name,
    Status,
    Blocked,
    ValidFrom,
    ValidUntil,
    Roles,
    EmployeeId,
    PinHash,
    PinOneTime,
    TokenGeneration,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum KeyGroups {
    Table,
    Id,
    TenantId,
    Marking,
    Name,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Keys {
    Table,
    Id,
    TenantId,
    Marking,
    Name,
    Model,
    Status,
    EmployeeId,
    KeyGroupId,
    AutoCollection,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Cylinders {
    Table,
    Id,
    TenantId,
    Marking,
    Name,
    Location,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Agents {
    Table,
    Id,
    TenantId,
    Name,
    SecretHash,
    TokenGeneration,
    Version,
    LastSeenAt,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum RemoteDevices {
    Table,
    Id,
    TenantId,
    Name,
    Kind,
    Serial,
    AgentId,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum ApiKeys {
    Table,
    Id,
    TenantId,
    Name,
    Prefix,
    KeyHash,
    Roles,
    TokenGeneration,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum RefreshTokens {
    Table,
    Id,
    FamilyId,
    TenantId,
    ProgrammingKeyId,
    TokenHash,
    Generation,
    ExpiresAt,
    UsedAt,
    Revoked,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Revocations {
    Table,
    Key,
    Generation,
    ExpiresAt,
}

fn tenant_fk<T: IntoIden + Copy + 'static>(table: T, column: T) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(table, column)
        .to(Tenants::Table, Tenants::Id)
        .to_owned()
}

/// A tenant-owned table: `id`, `tenant_id` and the index that leads with the tenant.
pub(crate) fn tenant_table<T: IntoIden + Copy + 'static>(
    table: T,
    id: T,
    tenant_id: T,
) -> TableCreateStatement {
    Table::create()
        .table(table)
        .col(pk_uuid(id))
        .col(uuid(tenant_id))
        .foreign_key(&mut tenant_fk(table, tenant_id))
        .to_owned()
}

fn unique_per_tenant<T: IntoIden + Copy + 'static>(
    name: &str,
    table: T,
    tenant_id: T,
    column: T,
) -> IndexCreateStatement {
    Index::create()
        .name(name)
        .table(table)
        .col(tenant_id)
        .col(column)
        .unique()
        .to_owned()
}

pub(crate) fn by_tenant<T: IntoIden + Copy + 'static>(
    name: &str,
    table: T,
    tenant_id: T,
    id: T,
) -> IndexCreateStatement {
    Index::create()
        .name(name)
        .table(table)
        .col(tenant_id)
        .col(id)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Tenants::Table)
                    .col(pk_uuid(Tenants::Id))
                    .col(string_uniq(Tenants::Slug))
                    .col(string(Tenants::Name))
                    .col(string(Tenants::BaseTimezone))
                    .col(string(Tenants::Locale))
                    .col(boolean(Tenants::ApprovalRequired))
                    .col(small_integer(Tenants::ApprovalsRequired))
                    .col(integer(Tenants::EventRetentionDays))
                    .col(integer(Tenants::RequestTtlHours))
                    .col(integer(Tenants::ExecutionTtlHours))
                    .col(string(Tenants::Status))
                    .col(big_integer(Tenants::TokenGeneration).default(0))
                    .col(timestamp_with_time_zone(Tenants::CreatedAt))
                    .col(timestamp_with_time_zone(Tenants::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                tenant_table(Employees::Table, Employees::Id, Employees::TenantId)
                    .col(string(Employees::Name))
                    .col(string_null(Employees::Email))
                    .col(timestamp_with_time_zone(Employees::CreatedAt))
                    .col(timestamp_with_time_zone(Employees::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(by_tenant(
                "employees_tenant",
                Employees::Table,
                Employees::TenantId,
                Employees::Id,
            ))
            .await?;

        manager
            .create_table(
                tenant_table(
                    ProgrammingKeys::Table,
                    ProgrammingKeys::Id,
                    ProgrammingKeys::TenantId,
                )
                .col(string(ProgrammingKeys::Marking))
                .col(string(ProgrammingKeys::Name))
                .col(string(ProgrammingKeys::Status))
                .col(boolean(ProgrammingKeys::Blocked).default(false))
                .col(timestamp_with_time_zone_null(ProgrammingKeys::ValidFrom))
                .col(timestamp_with_time_zone_null(ProgrammingKeys::ValidUntil))
                .col(json(ProgrammingKeys::Roles))
                .col(uuid_null(ProgrammingKeys::EmployeeId))
                .col(string_null(ProgrammingKeys::PinHash))
                .col(boolean(ProgrammingKeys::PinOneTime).default(true))
                .col(big_integer(ProgrammingKeys::TokenGeneration).default(0))
                .col(timestamp_with_time_zone(ProgrammingKeys::CreatedAt))
                .col(timestamp_with_time_zone(ProgrammingKeys::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(ProgrammingKeys::Table, ProgrammingKeys::EmployeeId)
                        .to(Employees::Table, Employees::Id),
                )
                .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_per_tenant(
                "programming_keys_marking",
                ProgrammingKeys::Table,
                ProgrammingKeys::TenantId,
                ProgrammingKeys::Marking,
            ))
            .await?;
        manager
            .create_index(by_tenant(
                "programming_keys_employee",
                ProgrammingKeys::Table,
                ProgrammingKeys::TenantId,
                ProgrammingKeys::EmployeeId,
            ))
            .await?;

        manager
            .create_table(
                tenant_table(KeyGroups::Table, KeyGroups::Id, KeyGroups::TenantId)
                    .col(string(KeyGroups::Marking))
                    .col(string(KeyGroups::Name))
                    .col(timestamp_with_time_zone(KeyGroups::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_per_tenant(
                "key_groups_marking",
                KeyGroups::Table,
                KeyGroups::TenantId,
                KeyGroups::Marking,
            ))
            .await?;

        manager
            .create_table(
                tenant_table(Keys::Table, Keys::Id, Keys::TenantId)
                    .col(string(Keys::Marking))
                    .col(string(Keys::Name))
                    .col(string(Keys::Model))
                    .col(string(Keys::Status))
                    .col(uuid_null(Keys::EmployeeId))
                    .col(uuid_null(Keys::KeyGroupId))
                    .col(boolean(Keys::AutoCollection).default(false))
                    .col(timestamp_with_time_zone(Keys::CreatedAt))
                    .col(timestamp_with_time_zone(Keys::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Keys::Table, Keys::EmployeeId)
                            .to(Employees::Table, Employees::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Keys::Table, Keys::KeyGroupId)
                            .to(KeyGroups::Table, KeyGroups::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_per_tenant(
                "keys_marking",
                Keys::Table,
                Keys::TenantId,
                Keys::Marking,
            ))
            .await?;

        manager
            .create_table(
                tenant_table(Cylinders::Table, Cylinders::Id, Cylinders::TenantId)
                    .col(string(Cylinders::Marking))
                    .col(string(Cylinders::Name))
                    .col(string_null(Cylinders::Location))
                    .col(timestamp_with_time_zone(Cylinders::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_per_tenant(
                "cylinders_marking",
                Cylinders::Table,
                Cylinders::TenantId,
                Cylinders::Marking,
            ))
            .await?;

        manager
            .create_table(
                tenant_table(Agents::Table, Agents::Id, Agents::TenantId)
                    .col(string(Agents::Name))
                    .col(string(Agents::SecretHash))
                    .col(big_integer(Agents::TokenGeneration).default(0))
                    .col(string_null(Agents::Version))
                    .col(timestamp_with_time_zone_null(Agents::LastSeenAt))
                    .col(timestamp_with_time_zone(Agents::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(by_tenant(
                "agents_tenant",
                Agents::Table,
                Agents::TenantId,
                Agents::Id,
            ))
            .await?;

        manager
            .create_table(
                tenant_table(
                    RemoteDevices::Table,
                    RemoteDevices::Id,
                    RemoteDevices::TenantId,
                )
                .col(string(RemoteDevices::Name))
                .col(string(RemoteDevices::Kind))
                .col(string(RemoteDevices::Serial))
                .col(uuid_null(RemoteDevices::AgentId))
                .col(timestamp_with_time_zone(RemoteDevices::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(RemoteDevices::Table, RemoteDevices::AgentId)
                        .to(Agents::Table, Agents::Id),
                )
                .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_per_tenant(
                "remote_devices_serial",
                RemoteDevices::Table,
                RemoteDevices::TenantId,
                RemoteDevices::Serial,
            ))
            .await?;

        manager
            .create_table(
                tenant_table(ApiKeys::Table, ApiKeys::Id, ApiKeys::TenantId)
                    .col(string(ApiKeys::Name))
                    .col(string(ApiKeys::Prefix))
                    .col(string_uniq(ApiKeys::KeyHash))
                    .col(json(ApiKeys::Roles))
                    .col(big_integer(ApiKeys::TokenGeneration).default(0))
                    .col(timestamp_with_time_zone(ApiKeys::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(by_tenant(
                "api_keys_tenant",
                ApiKeys::Table,
                ApiKeys::TenantId,
                ApiKeys::Id,
            ))
            .await?;

        manager
            .create_table(
                tenant_table(
                    RefreshTokens::Table,
                    RefreshTokens::Id,
                    RefreshTokens::TenantId,
                )
                .col(uuid(RefreshTokens::FamilyId))
                .col(uuid(RefreshTokens::ProgrammingKeyId))
                .col(string_uniq(RefreshTokens::TokenHash))
                .col(big_integer(RefreshTokens::Generation))
                .col(timestamp_with_time_zone(RefreshTokens::ExpiresAt))
                .col(timestamp_with_time_zone_null(RefreshTokens::UsedAt))
                .col(boolean(RefreshTokens::Revoked).default(false))
                .col(timestamp_with_time_zone(RefreshTokens::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(RefreshTokens::Table, RefreshTokens::ProgrammingKeyId)
                        .to(ProgrammingKeys::Table, ProgrammingKeys::Id),
                )
                .to_owned(),
            )
            .await?;
        manager
            .create_index(by_tenant(
                "refresh_tokens_family",
                RefreshTokens::Table,
                RefreshTokens::TenantId,
                RefreshTokens::FamilyId,
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Revocations::Table)
                    .col(string(Revocations::Key).primary_key())
                    .col(big_integer(Revocations::Generation))
                    .col(timestamp_with_time_zone(Revocations::ExpiresAt))
                    .to_owned(),
            )
            .await?;

        let db = manager.get_connection();
        for statement in fixed_settings_triggers(manager.get_database_backend()) {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration(
            "the foundation schema is not reverted".into(),
        ))
    }
}

/// The database itself refuses to change a tenant's initial configuration or
/// to delete a tenant, whatever client asks.
fn fixed_settings_triggers(backend: DbBackend) -> Vec<&'static str> {
    match backend {
        DbBackend::Postgres => vec![
            r#"CREATE FUNCTION countersign_tenants_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'tenants are never deleted' USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  IF NEW.approval_required IS DISTINCT FROM OLD.approval_required
     OR NEW.approvals_required IS DISTINCT FROM OLD.approvals_required THEN
    RAISE EXCEPTION 'approval_setting_immutable' USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  IF NEW.base_timezone IS DISTINCT FROM OLD.base_timezone OR NEW.slug IS DISTINCT FROM OLD.slug THEN
    RAISE EXCEPTION 'tenant_setting_immutable' USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  RETURN NEW;
END $$"#,
            "CREATE TRIGGER tenants_fixed BEFORE UPDATE OR DELETE ON tenants FOR EACH ROW EXECUTE FUNCTION countersign_tenants_fixed()",
        ],
        _ => vec![
            r#"CREATE TRIGGER tenants_fixed_approval BEFORE UPDATE OF approval_required, approvals_required ON tenants
FOR EACH ROW WHEN NEW.approval_required IS NOT OLD.approval_required OR NEW.approvals_required IS NOT OLD.approvals_required
BEGIN SELECT RAISE(ABORT, 'approval_setting_immutable'); END"#,
            r#"CREATE TRIGGER tenants_fixed_settings BEFORE UPDATE OF base_timezone, slug ON tenants
FOR EACH ROW WHEN NEW.base_timezone IS NOT OLD.base_timezone OR NEW.slug IS NOT OLD.slug
BEGIN SELECT RAISE(ABORT, 'tenant_setting_immutable'); END"#,
            "CREATE TRIGGER tenants_never_deleted BEFORE DELETE ON tenants BEGIN SELECT RAISE(ABORT, 'tenants are never deleted'); END",
        ],
    }
}
