//! Provisioning and the fixed initial configuration.

use countersign_tests::{Backend, TestApp, on_both_databases};
use sea_orm::{ConnectionTrait, Statement, TransactionTrait};
use serde_json::json;

async fn provisioning_fixes_the_approval_setting_at_every_layer(app: TestApp) {
    let operator = app.operator().await;
    let missing_choice = app
        .post(
            "/v1/tenants",
            &operator,
            json!({"slug": "nochoice", "name": "No choice", "base_timezone": "UTC", "locale": "en",
                   "initial_admin": {"employee_name": "A", "email": "a@x.example", "programming_key_marking": "A-1"}}),
        )
        .await;
    assert_eq!(
        missing_choice.status, 400,
        "approval_required has no default: {:#}",
        missing_choice.body
    );

    let too_many = app
        .post(
            "/v1/tenants",
            &operator,
            json!({"slug": "toomany", "name": "x", "base_timezone": "UTC", "locale": "en", "approval_required": false, "approvals_required": 2,
                   "initial_admin": {"employee_name": "A", "email": "a@x.example", "programming_key_marking": "A-1"}}),
        )
        .await;
    assert_eq!(
        (too_many.status.as_u16(), too_many.code()),
        (422, "validation_failed")
    );

    let tenant = app.tenant("acme", true).await;
    let path = format!("/v1/tenants/{}", tenant.id);
    for (change, code) in [
        (
            json!({"approval_required": false}),
            "approval_setting_immutable",
        ),
        (
            json!({"approvals_required": 2}),
            "approval_setting_immutable",
        ),
        (json!({"base_timezone": "UTC"}), "tenant_setting_immutable"),
        (
            json!({"name": "Renamed", "approval_required": false}),
            "approval_setting_immutable",
        ),
    ] {
        let reply = app.patch(&path, &operator, change).await;
        assert_eq!((reply.status.as_u16(), reply.code()), (409, code));
    }
    let unknown = app.patch(&path, &operator, json!({"owner": "me"})).await;
    unknown.assert_status(400);
    let current = app.get(&path, &operator).await.assert(200);
    assert_eq!(
        current["name"],
        format!("Tenant {}", tenant.slug),
        "a refused PATCH changes nothing"
    );
    assert_eq!(current["approval_required"], true);

    let renamed = app
        .patch(
            &path,
            &operator,
            json!({"name": "Acme AG", "request_ttl_hours": 24, "approval_required": true}),
        )
        .await
        .assert(200);
    assert_eq!(
        (
            renamed["name"].as_str(),
            renamed["request_ttl_hours"].as_u64()
        ),
        (Some("Acme AG"), Some(24))
    );

    // The database refuses it too, whoever asks.
    let backend = app.db.get_database_backend();
    for sql in [
        "UPDATE tenants SET approval_required = false",
        "UPDATE tenants SET approvals_required = 3",
        "UPDATE tenants SET base_timezone = 'UTC'",
        "DELETE FROM tenants",
    ] {
        let result = app
            .db
            .execute_raw(Statement::from_string(backend, sql))
            .await;
        assert!(
            result.is_err(),
            "{sql} must be refused on {:?}",
            app.backend
        );
    }
    let still = app.get(&path, &operator).await.assert(200);
    assert_eq!(
        (
            still["approval_required"].as_bool(),
            still["base_timezone"].as_str()
        ),
        (Some(true), Some("Europe/Berlin"))
    );
    let allowed = app
        .db
        .execute_raw(Statement::from_string(
            backend,
            "UPDATE tenants SET name = 'Direct'",
        ))
        .await;
    assert!(allowed.is_ok(), "other columns stay writable");
    let _ = Backend::Sqlite;
}

async fn only_the_operator_manages_tenants_and_suspension_ends_tokens(app: TestApp) {
    let tenant = app.tenant("beta", false).await;
    let reply = app.get("/v1/tenants", &tenant.admin).await;
    assert_eq!((reply.status.as_u16(), reply.code()), (403, "forbidden"));
    let operator = app.operator().await;
    let listed = app.get("/v1/tenants?limit=1", &operator).await.assert(200);
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));

    app.get("/v1/employees", &tenant.admin).await.assert(200);
    app.patch(
        &format!("/v1/tenants/{}", tenant.id),
        &operator,
        json!({"status": "suspended"}),
    )
    .await
    .assert(200);
    app.get("/v1/employees", &tenant.admin)
        .await
        .assert_status_because(401, "a suspended tenant's tokens stop working");
    app.login(&tenant.slug, "ADMIN-1", "246810")
        .await
        .assert_status(401);
    app.patch(
        &format!("/v1/tenants/{}", tenant.id),
        &operator,
        json!({"status": "active"}),
    )
    .await
    .assert(200);
    app.login(&tenant.slug, "ADMIN-1", "246810")
        .await
        .assert(200);
}

/// Rewriting a row of `table` (those matching `filter`) by inserting a
/// changed copy of it: `insert` names the copy `copy`. Answers the error.
async fn rewrite(app: &TestApp, table: &str, filter: &str, change: &str, insert: &str) -> String {
    let txn = app.db.begin().await.unwrap();
    for sql in [
        format!("CREATE TEMP TABLE copy AS SELECT * FROM {table} WHERE {filter}"),
        format!("UPDATE copy SET {change}"),
    ] {
        txn.execute_unprepared(&sql).await.unwrap();
    }
    let refused = txn.execute_unprepared(insert).await;
    txn.rollback().await.unwrap();
    match refused {
        Ok(done) => panic!("{insert} ({change}) must be refused; {done:?}"),
        Err(err) => err.to_string(),
    }
}

/// What the database's owner might send to rewrite a fixed setting or history
/// in place, past the update and delete triggers: SQLite's REPLACE (which
/// deletes the old row without its delete trigger) and upserts on both
/// databases. Each is refused and nothing changes.
async fn replacing_rows_cannot_rewrite_fixed_settings_or_history(app: TestApp) {
    let tenant = app.tenant("replace", true).await;
    let other = app.tenant("other", false).await;
    app.store.sign_heads(chrono::Utc::now()).await.unwrap();
    let sqlite = app.backend == Backend::Sqlite;
    let (slug, other_slug) = (&tenant.slug, &other.slug);
    let this = format!("slug = '{slug}'");
    let of_tenant = format!("tenant_id = (SELECT id FROM tenants WHERE {this})");
    let first_entry = format!("{of_tenant} AND seq = 1");
    let flip = "approval_required = NOT approval_required";
    let upsert = |table: &str, key: &str, set: &str| {
        format!(
            "INSERT INTO {table} SELECT * FROM copy WHERE true ON CONFLICT ({key}) DO UPDATE SET {set} = EXCLUDED.{set}"
        )
    };
    let mut attempts = vec![
        (
            "tenants",
            this.clone(),
            flip.to_owned(),
            upsert("tenants", "id", "approval_required"),
        ),
        (
            "tenants",
            this.clone(),
            flip.to_owned(),
            upsert("tenants", "slug", "approval_required"),
        ),
        (
            "history_entries",
            first_entry.clone(),
            "details = '{}'".to_owned(),
            upsert("history_entries", "id", "details"),
        ),
        (
            "history_signatures",
            of_tenant.clone(),
            "signature = 'forged'".to_owned(),
            upsert("history_signatures", "tenant_id, seq", "signature"),
        ),
    ];
    if sqlite {
        let replace = |table: &str| format!("INSERT OR REPLACE INTO {table} SELECT * FROM copy");
        attempts.extend([
            ("tenants", this.clone(), flip.to_owned(), replace("tenants")),
            (
                "tenants",
                this.clone(),
                format!("id = randomblob(16), {flip}"),
                replace("tenants"),
            ),
            (
                "tenants",
                this.clone(),
                flip.to_owned(),
                "REPLACE INTO tenants SELECT * FROM copy".to_owned(),
            ),
            (
                "history_entries",
                first_entry.clone(),
                "details = '{}'".to_owned(),
                replace("history_entries"),
            ),
            (
                "history_signatures",
                of_tenant.clone(),
                "signature = 'forged'".to_owned(),
                replace("history_signatures"),
            ),
        ]);
    }
    for (table, filter, change, insert) in &attempts {
        let error = rewrite(&app, table, filter, change, insert).await;
        // SQLite refuses the colliding insert; PostgreSQL's upsert runs into
        // the update triggers.
        assert!(
            ["row_exists", "approval_setting_immutable", "append-only"]
                .iter()
                .any(|why| error.contains(why)),
            "{insert}: {error}"
        );
    }
    if sqlite {
        // Moving another tenant's row onto this one's id replaces this one.
        let moved = app
            .db
            .execute_unprepared(&format!("UPDATE OR REPLACE tenants SET id = (SELECT id FROM tenants WHERE {this}) WHERE slug = '{other_slug}'"))
            .await;
        assert!(moved.is_err(), "a tenant's id is fixed");
    }

    let operator = app.operator().await;
    let still = app
        .get(&format!("/v1/tenants/{}", tenant.id), &operator)
        .await
        .assert(200);
    assert_eq!(
        (still["slug"].as_str(), still["approval_required"].as_bool()),
        (Some(slug.as_str()), Some(true))
    );
    let again = app
        .post(
            "/v1/tenants",
            &operator,
            json!({"slug": slug, "name": "Again", "base_timezone": "UTC", "locale": "en", "approval_required": false,
                   "initial_admin": {"employee_name": "A", "email": "a@again.example", "programming_key_marking": "A-1"}}),
        )
        .await;
    assert_eq!(
        (again.status.as_u16(), again.code()),
        (409, "already_exists"),
        "a taken slug is still a conflict, not a refused trigger"
    );
    app.get(&format!("/v1/tenants/{}", other.id), &operator)
        .await
        .assert(200);
    let verified = app
        .get("/v1/history/verify", &tenant.admin)
        .await
        .assert(200);
    assert_eq!(verified["valid"], true, "{verified}");
}

on_both_databases!(
    provisioning_fixes_the_approval_setting_at_every_layer,
    only_the_operator_manages_tenants_and_suspension_ends_tokens,
    replacing_rows_cannot_rewrite_fixed_settings_or_history,
);
