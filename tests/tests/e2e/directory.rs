//! Master data and inventory: the approver e-mail rule, tenant isolation, the import.

use countersign_tests::{TestApp, on_both_databases};
use serde_json::{Value, json};

async fn approver_keys_need_a_holder_with_email(app: TestApp) {
    let tenant = app.tenant("mail", true).await;
    let without = app
        .post("/v1/employees", &tenant.admin, json!({"name": "No Mail"}))
        .await
        .assert(201);
    let with = app
        .post(
            "/v1/employees",
            &tenant.admin,
            json!({"name": "Has Mail", "email": "has@mail.example"}),
        )
        .await
        .assert(201);
    let key = app
        .post(
            "/v1/programming-keys",
            &tenant.admin,
            json!({"marking": "APP-1", "name": "Approver", "roles": ["approver"]}),
        )
        .await
        .assert(201);
    let key_path = format!("/v1/programming-keys/{}", key["id"].as_str().unwrap());

    let refused = app
        .post(
            &format!("{key_path}/issue"),
            &tenant.admin,
            json!({"employee_id": without["id"]}),
        )
        .await;
    assert_eq!(
        (refused.status.as_u16(), refused.code()),
        (422, "approver_requires_email")
    );
    assert_eq!(
        app.get(&key_path, &tenant.admin).await.assert(200)["status"],
        "in_stock"
    );

    app.post(
        &format!("{key_path}/issue"),
        &tenant.admin,
        json!({"employee_id": with["id"]}),
    )
    .await
    .assert(200);
    let removal = app
        .patch(
            &format!("/v1/employees/{}", with["id"].as_str().unwrap()),
            &tenant.admin,
            json!({"email": null}),
        )
        .await;
    assert_eq!(
        (removal.status.as_u16(), removal.code()),
        (422, "approver_requires_email")
    );
    let employee = app
        .get(
            &format!("/v1/employees/{}", with["id"].as_str().unwrap()),
            &tenant.admin,
        )
        .await
        .assert(200);
    assert_eq!(employee["email"], "has@mail.example");

    // Granting the role to a key already issued to someone without e-mail is refused as well.
    let other = app
        .post(
            "/v1/programming-keys",
            &tenant.admin,
            json!({"marking": "AUD-1", "name": "Auditor", "roles": ["auditor"]}),
        )
        .await
        .assert(201);
    let other_path = format!("/v1/programming-keys/{}", other["id"].as_str().unwrap());
    app.post(
        &format!("{other_path}/issue"),
        &tenant.admin,
        json!({"employee_id": without["id"]}),
    )
    .await
    .assert(200);
    let grant = app
        .patch(
            &other_path,
            &tenant.admin,
            json!({"roles": ["auditor", "approver"]}),
        )
        .await;
    assert_eq!(
        (grant.status.as_u16(), grant.code()),
        (422, "approver_requires_email")
    );

    // After returning the key, the e-mail may go.
    app.post(&format!("{key_path}/return"), &tenant.admin, json!({}))
        .await
        .assert(200);
    app.patch(
        &format!("/v1/employees/{}", with["id"].as_str().unwrap()),
        &tenant.admin,
        json!({"email": null}),
    )
    .await
    .assert(200);
}

/// Creates one of every resource and returns `(collection path, id)` pairs.
async fn one_of_each(app: &TestApp, token: &str) -> Vec<(String, String)> {
    let employee = app
        .post("/v1/employees", token, json!({"name": "E"}))
        .await
        .assert(201);
    let group = app
        .post(
            "/v1/key-groups",
            token,
            json!({"marking": "G-1", "name": "G"}),
        )
        .await
        .assert(201);
    let key = app
        .post(
            "/v1/keys",
            token,
            json!({"marking": "K-1", "name": "K", "model": "e3"}),
        )
        .await
        .assert(201);
    let cylinder = app
        .post(
            "/v1/cylinders",
            token,
            json!({"marking": "C-1", "name": "C"}),
        )
        .await
        .assert(201);
    let device = app
        .post(
            "/v1/remote-devices",
            token,
            json!({"name": "D", "kind": "remote_unit", "serial": "S-1"}),
        )
        .await
        .assert(201);
    let pk = app
        .post(
            "/v1/programming-keys",
            token,
            json!({"marking": "P-1", "name": "P", "roles": []}),
        )
        .await
        .assert(201);
    let agent = app
        .post("/v1/agents", token, json!({"name": "A"}))
        .await
        .assert(201);
    let api_key = app
        .post(
            "/v1/api-keys",
            token,
            json!({"name": "I", "roles": ["auditor"]}),
        )
        .await
        .assert(201);
    let id = |v: &Value| v["id"].as_str().unwrap().to_owned();
    vec![
        ("/v1/employees".into(), id(&employee)),
        ("/v1/key-groups".into(), id(&group)),
        ("/v1/keys".into(), id(&key)),
        ("/v1/cylinders".into(), id(&cylinder)),
        ("/v1/remote-devices".into(), id(&device)),
        ("/v1/programming-keys".into(), id(&pk)),
        ("/v1/agents".into(), id(&agent["agent"])),
        ("/v1/api-keys".into(), id(&api_key["api_key"])),
    ]
}

async fn another_tenants_objects_are_missing(app: TestApp) {
    let mine = app.tenant("mine", true).await;
    let theirs = app.tenant("theirs", true).await;
    let objects = one_of_each(&app, &theirs.admin).await;
    for (collection, id) in &objects {
        let path = format!("{collection}/{id}");
        let reply = app.get(&path, &mine.admin).await;
        assert_eq!(
            (reply.status.as_u16(), reply.code()),
            (404, "not_found"),
            "GET {path}"
        );
        let change = app
            .patch(&path, &mine.admin, json!({"name": "hijacked"}))
            .await;
        if change.status != 405 {
            assert_eq!(change.status, 404, "PATCH {path}: {:#}", change.body);
        }
        let listed = app
            .get(&format!("{collection}?limit=500"), &mine.admin)
            .await
            .assert(200);
        assert!(
            listed["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|item| item["id"] != id.as_str()),
            "{collection} lists another tenant's row"
        );
        let still = app.get(&path, &theirs.admin).await.assert(200);
        assert_ne!(still["name"], "hijacked");
    }
    let (_, key) = &objects[2];
    let employee = app
        .post("/v1/employees", &mine.admin, json!({"name": "Mine"}))
        .await
        .assert(201);
    let issue = app
        .post(
            &format!("/v1/keys/{key}/issue"),
            &mine.admin,
            json!({"employee_id": employee["id"]}),
        )
        .await;
    issue.assert_status(404);
    let (_, their_employee) = &objects[0];
    let own_key = app
        .post(
            "/v1/keys",
            &mine.admin,
            json!({"marking": "K-9", "name": "K", "model": "e2"}),
        )
        .await
        .assert(201);
    let cross = app
        .post(
            &format!("/v1/keys/{}/issue", own_key["id"].as_str().unwrap()),
            &mine.admin,
            json!({"employee_id": their_employee}),
        )
        .await;
    assert_eq!(
        (cross.status.as_u16(), cross.code()),
        (422, "unknown_reference")
    );
}

async fn the_extension_import_is_idempotent(app: TestApp) {
    let tenant = app.tenant("imp", false).await;
    let batch = json!({
        "key_groups": [{"marking": "G-1", "name": "Group"}],
        "keys": [{"marking": "K-1", "name": "Key 1", "model": "e2"}, {"marking": "K-2", "name": "Key 2", "model": "basic"}],
        "cylinders": [{"marking": "C-1", "name": "Cyl"}],
        "remote_devices": [{"name": "Unit", "kind": "desk_unit", "serial": "DU-9"}],
        "programming_keys": [{"marking": "P-9", "name": "Spare"}]
    });
    let first = app
        .post("/v1/imports", &tenant.admin, batch.clone())
        .await
        .assert(200);
    assert_eq!(first["keys"]["created"], json!(["K-1", "K-2"]));
    assert_eq!(first["keys"]["existing"], json!([]));
    let second = app
        .post("/v1/imports", &tenant.admin, batch)
        .await
        .assert(200);
    for kind in [
        "key_groups",
        "keys",
        "cylinders",
        "remote_devices",
        "programming_keys",
    ] {
        assert_eq!(second[kind]["created"], json!([]), "{kind}");
        assert_eq!(second[kind]["existing"], first[kind]["created"], "{kind}");
    }
    let keys = app.get("/v1/keys", &tenant.admin).await.assert(200);
    assert_eq!(keys["items"].as_array().map(Vec::len), Some(2));

    let bad = json!({"keys": [{"marking": "K-3", "name": "ok", "model": "e2"}, {"marking": "", "name": "bad", "model": "e2"}]});
    app.post("/v1/imports", &tenant.admin, bad)
        .await
        .assert_status(422);
    let keys = app.get("/v1/keys", &tenant.admin).await.assert(200);
    assert_eq!(
        keys["items"].as_array().map(Vec::len),
        Some(2),
        "a refused import writes nothing"
    );
}

async fn duplicates_and_bad_input_are_4xx(app: TestApp) {
    let tenant = app.tenant("bad", true).await;
    app.post(
        "/v1/cylinders",
        &tenant.admin,
        json!({"marking": "C-1", "name": "C"}),
    )
    .await
    .assert(201);
    let duplicate = app
        .post(
            "/v1/cylinders",
            &tenant.admin,
            json!({"marking": "C-1", "name": "C"}),
        )
        .await;
    assert_eq!(
        (duplicate.status.as_u16(), duplicate.code()),
        (409, "already_exists")
    );
    let unknown_enum = app
        .post(
            "/v1/keys",
            &tenant.admin,
            json!({"marking": "K", "name": "K", "model": "e9"}),
        )
        .await;
    unknown_enum.assert_status(400);
    let bad_id = app.get("/v1/keys/not-a-uuid", &tenant.admin).await;
    assert_eq!(
        (bad_id.status.as_u16(), bad_id.code()),
        (400, "invalid_path")
    );
    let huge = "x".repeat(200_000);
    let too_big = app
        .post("/v1/employees", &tenant.admin, json!({"name": huge}))
        .await;
    assert_eq!(
        (too_big.status.as_u16(), too_big.code()),
        (413, "payload_too_large")
    );
    let bad_limit = app.get("/v1/employees?limit=501", &tenant.admin).await;
    bad_limit.assert_status(400);
    let raw = reqwest::Client::new()
        .post(format!("{}/v1/employees", app.base))
        .bearer_auth(&tenant.admin)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    assert_eq!(raw.headers()["content-type"], "application/problem+json");
}

async fn pages_follow_their_cursor(app: TestApp) {
    let tenant = app.tenant("pages", true).await;
    for i in 0..7 {
        app.post(
            "/v1/employees",
            &tenant.admin,
            json!({"name": format!("Person {i}")}),
        )
        .await
        .assert(201);
    }
    let mut seen = Vec::new();
    let mut path = "/v1/employees?limit=3".to_owned();
    loop {
        let page = app.get(&path, &tenant.admin).await.assert(200);
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["name"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/employees?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(
        seen.len(),
        8,
        "seven people and the initial administrator, each once: {seen:?}"
    );
}

on_both_databases!(
    approver_keys_need_a_holder_with_email,
    another_tenants_objects_are_missing,
    the_extension_import_is_idempotent,
    duplicates_and_bad_input_are_4xx,
    pages_follow_their_cursor,
);
