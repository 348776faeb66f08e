//! Row-level security on PostgreSQL, the defence behind the application's own
//! tenant filters: the API's database role, in a transaction of one tenant,
//! sees and changes only that tenant's rows even with a query that forgot its
//! filter; with no tenant it sees nothing; it cannot write a row of another
//! tenant. Two tenants with a full inventory each (keys, requests, jobs,
//! events, history, mails, agents, credentials) make the check concrete.

use std::collections::BTreeMap;

use countersign_domain::tenant::TenantId;
use countersign_infra::db::tenant_tables;
use countersign_infra::store::tenant_transaction;
use countersign_tests::{Backend, TestApp, unique_slug};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use uuid::Uuid;

use crate::isolation::inventory;

async fn counts_by_tenant(conn: &impl ConnectionTrait, sql: &str) -> BTreeMap<Uuid, i64> {
    conn.query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
        .into_iter()
        .map(|row| {
            (
                row.try_get::<Uuid>("", "tenant_id").unwrap(),
                row.try_get::<i64>("", "rows").unwrap(),
            )
        })
        .collect()
}

async fn count(conn: &impl ConnectionTrait, sql: &str) -> i64 {
    conn.query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
        .unwrap()
        .try_get::<i64>("", "rows")
        .unwrap()
}

#[tokio::test]
async fn a_query_that_forgot_its_tenant_filter_sees_only_its_tenant() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let first = inventory(&app, &unique_slug("rls-first")).await.tenant.id;
    let second = inventory(&app, &unique_slug("rls-second")).await.tenant.id;
    let api: DatabaseConnection = countersign_infra::db::connect(&app.config.database_url, 1)
        .await
        .unwrap();

    let mut tables_with_both = 0;
    for table in tenant_tables() {
        // The owner (not bound, as superuser) sees what is there.
        let present = counts_by_tenant(
            &app.db,
            &format!(
                "SELECT tenant_id, count(*) AS rows FROM {table}
                 WHERE tenant_id IN ('{first}', '{second}') GROUP BY tenant_id"
            ),
        )
        .await;
        if present.len() == 2 {
            tables_with_both += 1;
        }
        // The API's role, in a transaction of the first tenant, asks for every
        // row of the table without any filter.
        let txn = tenant_transaction(&api, TenantId(first)).await.unwrap();
        let seen = counts_by_tenant(
            &txn,
            &format!("SELECT tenant_id, count(*) AS rows FROM {table} GROUP BY tenant_id"),
        )
        .await;
        txn.commit().await.unwrap();
        let expected: BTreeMap<Uuid, i64> = present
            .get(&first)
            .map(|rows| (first, *rows))
            .into_iter()
            .collect();
        assert_eq!(seen, expected, "{table}: rows seen in the first tenant");
        // Outside any tenant, nothing at all.
        let unscoped = count(&api, &format!("SELECT count(*) AS rows FROM {table}")).await;
        assert_eq!(unscoped, 0, "{table}: rows seen without a tenant");
    }
    assert!(
        tables_with_both >= 12,
        "the inventories fill most tables of both tenants, only {tables_with_both} were"
    );

    // An UPDATE without a filter changes only the first tenant's rows.
    let keys_of = |t: Uuid| format!("SELECT count(*) AS rows FROM keys WHERE tenant_id = '{t}'");
    let first_keys = count(&app.db, &keys_of(first)).await;
    let txn = tenant_transaction(&api, TenantId(first)).await.unwrap();
    let renamed = txn
        .execute_unprepared("UPDATE keys SET name = 'renamed by a forgetful query'")
        .await
        .unwrap();
    txn.commit().await.unwrap();
    assert_eq!(renamed.rows_affected(), u64::try_from(first_keys).unwrap());
    let untouched = count(
        &app.db,
        &format!(
            "SELECT count(*) AS rows FROM keys WHERE tenant_id = '{second}'
             AND name = 'renamed by a forgetful query'"
        ),
    )
    .await;
    assert_eq!(untouched, 0, "the second tenant's keys were renamed");

    // Writing a row that names the other tenant is refused, and so is
    // moving a row into it.
    let txn = tenant_transaction(&api, TenantId(first)).await.unwrap();
    let inserted = txn
        .execute_unprepared(&format!(
            "INSERT INTO key_groups (id, tenant_id, marking, name, created_at)
             VALUES ('{}', '{second}', 'planted', 'planted', now())",
            Uuid::now_v7()
        ))
        .await;
    let err = inserted
        .expect_err("a row of another tenant was written")
        .to_string();
    assert!(err.contains("row-level security"), "{err}");
    txn.rollback().await.unwrap();
    let txn = tenant_transaction(&api, TenantId(first)).await.unwrap();
    let moved = txn
        .execute_unprepared(&format!("UPDATE keys SET tenant_id = '{second}'"))
        .await;
    assert!(moved.is_err(), "a row was moved into another tenant");
    eprintln!(
        "row-level security: {} tables ({tables_with_both} holding rows of both tenants), \
         rows of the other tenant seen 0, rows seen without a tenant 0, \
         unfiltered update reached {renamed} of {first_keys} own keys and 0 of the other's, \
         writes into the other tenant refused 2 of 2",
        tenant_tables().len(),
        renamed = renamed.rows_affected(),
    );
}

/// Every table that holds a tenant's rows is bound, the owner included, so a
/// table added later without a policy fails here.
#[tokio::test]
async fn every_table_with_a_tenant_column_is_bound() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let rows = app
        .db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT c.relname::text AS name, c.relrowsecurity AS bound, c.relforcerowsecurity AS forced
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind = 'r'
               AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                           AND a.attname = 'tenant_id' AND NOT a.attisdropped)
             ORDER BY 1",
        ))
        .await
        .unwrap();
    let mut tables = Vec::new();
    for row in rows {
        let name: String = row.try_get("", "name").unwrap();
        assert!(
            row.try_get::<bool>("", "bound").unwrap(),
            "{name} has no row-level security"
        );
        assert!(
            row.try_get::<bool>("", "forced").unwrap(),
            "{name} does not bind its owner"
        );
        tables.push(name);
    }
    let mut listed: Vec<String> = tenant_tables().iter().map(|t| (*t).to_owned()).collect();
    listed.sort();
    assert_eq!(tables, listed);
}
