//! Row-level security on PostgreSQL: every tenant-owned table shows a
//! transaction only the rows of the tenant it names in the setting
//! `countersign.tenant_id`, even to a query that forgot its tenant filter, and
//! refuses to write rows of another tenant. The table owner is bound too
//! (`FORCE`); superusers and roles with `BYPASSRLS` are not, so the API must
//! not connect as one.
//!
//! Two group roles are created when missing (the owner then needs
//! `CREATEROLE`; otherwise a DBA creates them first), and the login roles are
//! made their members:
//! - `countersign_api`: the API; reads and writes one tenant per transaction.
//! - `countersign_worker`: background work that spans tenants (outbox, expiry,
//!   chain-head signing, metrics); sees every tenant's rows.
//!
//! Two narrow lookups come before the tenant is known: an agent logging in by
//! its id, and a refresh token presented by its hash. Each sees only the one
//! row it names. SQLite has no row-level security; nothing changes there.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The tables whose rows belong to one tenant (`tenant_id`). `tenants` is the
/// operator's directory of tenants and `revocations` names tokens, not
/// tenants; neither holds a tenant's data.
pub const TENANT_TABLES: &[&str] = &[
    "employees",
    "programming_keys",
    "key_groups",
    "keys",
    "cylinders",
    "agents",
    "remote_devices",
    "api_keys",
    "refresh_tokens",
    "event_log_requests",
    "request_decisions",
    "readout_jobs",
    "events",
    "history_entries",
    "history_heads",
    "history_signatures",
    "mail_outbox",
];

const ROLES: &str = r#"
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'countersign_api') THEN
        CREATE ROLE countersign_api NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'countersign_worker') THEN
        CREATE ROLE countersign_worker NOLOGIN;
    END IF;
EXCEPTION
    -- Another database of the same server created them at the same moment.
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;
GRANT USAGE ON SCHEMA public TO countersign_api, countersign_worker;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public
    TO countersign_api, countersign_worker;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO countersign_api, countersign_worker;
REVOKE ALL ON seaql_migrations FROM countersign_api, countersign_worker;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO countersign_api, countersign_worker;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO countersign_api, countersign_worker;
"#;

const TENANT: &str = "NULLIF(current_setting('countersign.tenant_id', true), '')::uuid";

pub(crate) fn policies(table: &str) -> String {
    format!(
        "ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
         ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
         CREATE POLICY one_tenant ON {table}
             USING (tenant_id = {TENANT}) WITH CHECK (tenant_id = {TENANT});
         CREATE POLICY all_tenants ON {table} TO countersign_worker
             USING (true) WITH CHECK (true);"
    )
}

const LOGIN_LOOKUPS: &str = r#"
CREATE POLICY agent_login ON agents FOR SELECT
    USING (id = NULLIF(current_setting('countersign.agent_id', true), '')::uuid);
CREATE POLICY refresh_login ON refresh_tokens FOR SELECT
    USING (token_hash = NULLIF(current_setting('countersign.refresh_token_hash', true), ''));
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared(ROLES).await?;
        for table in TENANT_TABLES {
            db.execute_unprepared(&policies(table)).await?;
        }
        db.execute_unprepared(LOGIN_LOOKUPS).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared(
            "DROP POLICY agent_login ON agents; DROP POLICY refresh_login ON refresh_tokens;",
        )
        .await?;
        for table in TENANT_TABLES {
            db.execute_unprepared(&format!(
                "DROP POLICY one_tenant ON {table}; DROP POLICY all_tenants ON {table};
                 ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY;
                 ALTER TABLE {table} DISABLE ROW LEVEL SECURITY;"
            ))
            .await?;
        }
        Ok(())
    }
}
