//! What whoever owns the database can do behind the application's back:
//! bypass the append-only triggers, delete and rewrite history rows.

use countersign_domain::history::{Actor, HistoryEntry};
use countersign_tests::{Backend, TestApp};
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait, Value as DbValue};
use serde_json::Value;
use uuid::Uuid;

/// `$n` on PostgreSQL, `?` on SQLite.
pub fn param(backend: DbBackend, n: usize) -> String {
    match backend {
        DbBackend::Postgres => format!("${n}"),
        _ => "?".to_owned(),
    }
}

/// A statement with `{n}` placeholders written as the backend wants them.
pub fn sql(app: &TestApp, text: &str, values: Vec<DbValue>) -> Statement {
    let backend = app.db.get_database_backend();
    let mut text = text.to_owned();
    for n in 1..=values.len() {
        text = text.replace(&format!("{{{n}}}"), &param(backend, n));
    }
    Statement::from_sql_and_values(backend, text, values)
}

const SQLITE_TRIGGERS: [(&str, &str, &str); 4] = [
    ("history_no_update", "UPDATE", "history_entries"),
    ("history_no_delete", "DELETE", "history_entries"),
    (
        "history_signatures_no_update",
        "UPDATE",
        "history_signatures",
    ),
    (
        "history_signatures_no_delete",
        "DELETE",
        "history_signatures",
    ),
];

/// Runs `statements` as the database's owner with the append-only triggers
/// bypassed: on PostgreSQL as a replica session, on SQLite with the triggers
/// dropped and created again.
pub async fn as_database_owner(app: &TestApp, statements: Vec<Statement>) {
    let backend = app.db.get_database_backend();
    let txn = app.db.begin().await.unwrap();
    match app.backend {
        Backend::Postgres => {
            txn.execute_unprepared("SET LOCAL session_replication_role = replica")
                .await
                .unwrap();
        }
        Backend::Sqlite => {
            for (name, _, _) in SQLITE_TRIGGERS {
                txn.execute_unprepared(&format!("DROP TRIGGER {name}"))
                    .await
                    .unwrap();
            }
        }
    }
    for statement in statements {
        txn.execute_raw(statement).await.unwrap();
    }
    if backend == DbBackend::Sqlite {
        for (name, event, table) in SQLITE_TRIGGERS {
            txn.execute_unprepared(&format!(
                "CREATE TRIGGER {name} BEFORE {event} ON {table} \
                 BEGIN SELECT RAISE(ABORT, 'history entries are append-only'); END"
            ))
            .await
            .unwrap();
        }
    }
    txn.commit().await.unwrap();
}

/// The tenant's entries as the database holds them, by seq.
pub async fn entry_rows(app: &TestApp, tenant: Uuid) -> Vec<sea_orm::QueryResult> {
    app.db
        .query_all_raw(sql(
            app,
            "SELECT * FROM history_entries WHERE tenant_id = {1} ORDER BY seq",
            vec![tenant.into()],
        ))
        .await
        .unwrap()
}

pub fn update_entry(
    app: &TestApp,
    tenant: Uuid,
    seq: i64,
    details: Value,
    prev: &str,
    hash: &str,
) -> Statement {
    sql(
        app,
        "UPDATE history_entries SET details = {1}, prev_hash = {2}, hash = {3} WHERE tenant_id = {4} AND seq = {5}",
        vec![
            DbValue::Json(Some(Box::new(details))),
            prev.into(),
            hash.into(),
            tenant.into(),
            seq.into(),
        ],
    )
}

pub fn set_head(app: &TestApp, tenant: Uuid, seq: i64, hash: &str) -> Statement {
    sql(
        app,
        "UPDATE history_heads SET seq = {1}, hash = {2} WHERE tenant_id = {3}",
        vec![seq.into(), hash.into(), tenant.into()],
    )
}

/// Statements that give entry `from` the details `forged` and recompute every
/// hash and link from there, so that the chain holds again; and the head.
pub async fn rewrite_from(app: &TestApp, tenant: Uuid, from: i64, forged: Value) -> Vec<Statement> {
    let rows = entry_rows(app, tenant).await;
    let mut prev: String = if from == 1 {
        countersign_infra::history::GENESIS.to_owned()
    } else {
        rows[(from - 2) as usize].try_get("", "hash").unwrap()
    };
    let mut statements = Vec::new();
    for row in &rows[(from - 1) as usize..] {
        let seq: i64 = row.try_get("", "seq").unwrap();
        let details: Value = if seq == from {
            forged.clone()
        } else {
            row.try_get("", "details").unwrap()
        };
        let entry = HistoryEntry {
            seq,
            at: row.try_get("", "at").unwrap(),
            actor: Actor {
                kind: row.try_get("", "actor_kind").unwrap(),
                id: row.try_get("", "actor_id").unwrap(),
                name: row.try_get("", "actor_name").unwrap(),
                programming_key_id: row.try_get("", "actor_programming_key_id").unwrap(),
            },
            action: row.try_get("", "action").unwrap(),
            subject_type: row.try_get("", "subject_type").unwrap(),
            subject_id: row.try_get("", "subject_id").unwrap(),
            details: details.clone(),
            hash: String::new(),
            prev_hash: prev.clone(),
        };
        let hash = countersign_infra::history::entry_hash(tenant, &entry).unwrap();
        statements.push(update_entry(app, tenant, seq, details, &prev, &hash));
        prev = hash;
    }
    let last = rows.len() as i64;
    statements.push(set_head(app, tenant, last, &prev));
    statements
}
