//! The database schema, for PostgreSQL and SQLite. Migrations run as the owner
//! of the schema (`countersign migrate`, or a chart hook).

use sea_orm_migration::prelude::*;

mod m0001_foundation;
mod m0002_workflow;
mod m0003_lookup_indexes;
mod m0004_row_level_security;
mod m0005_events_by_age;
mod m0006_sweep_indexes;
mod m0007_approver_hold;
mod m0008_replace_guards;
mod m0009_checkpoint_mails;
mod m0010_append_only_decisions;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_foundation::Migration),
            Box::new(m0002_workflow::Migration),
            Box::new(m0003_lookup_indexes::Migration),
            Box::new(m0004_row_level_security::Migration),
            Box::new(m0005_events_by_age::Migration),
            Box::new(m0006_sweep_indexes::Migration),
            Box::new(m0007_approver_hold::Migration),
            Box::new(m0008_replace_guards::Migration),
            Box::new(m0009_checkpoint_mails::Migration),
            Box::new(m0010_append_only_decisions::Migration),
        ]
    }
}

pub use m0008_replace_guards::ROW_EXISTS;
/// Every table whose rows belong to one tenant (`tenant_id`), bound by
/// row-level security on PostgreSQL: those of m0004 and those added since.
pub fn tenant_tables() -> Vec<&'static str> {
    [
        m0004_row_level_security::TENANT_TABLES,
        m0009_checkpoint_mails::TENANT_TABLES,
    ]
    .concat()
}
pub use sea_orm_migration::MigratorTrait;
