//! Provisioning and the fixed initial configuration.

use countersign_tests::{Backend, TestApp, on_both_databases};
use sea_orm::{ConnectionTrait, Statement};
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

on_both_databases!(
    provisioning_fixes_the_approval_setting_at_every_layer,
    only_the_operator_manages_tenants_and_suspension_ends_tokens,
);
