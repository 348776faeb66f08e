//! The database schema, for PostgreSQL and SQLite. Migrations run as the owner
//! of the schema (`countersign migrate`, or a chart hook).

use sea_orm_migration::prelude::*;

mod m0001_foundation;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m0001_foundation::Migration)]
    }
}

pub use sea_orm_migration::MigratorTrait;
