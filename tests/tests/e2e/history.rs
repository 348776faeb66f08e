//! The history: what the foundation records, who may read it, and that
//! tampering behind the application's back is detected.

use std::sync::Arc;

use chrono::Utc;
use countersign_infra::Store;
use countersign_infra::clock::SystemClock;
use countersign_infra::revocation::RevocationList;
use countersign_infra::signing::HistorySigner;
use countersign_tests::{Backend, Tenant, TestApp, on_both_databases};

use crate::tamper::{as_database_owner, entry_rows, rewrite_from, update_entry};
use reqwest::Method;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use uuid::Uuid;

/// Every page of `GET /v1/history{query}`, followed through the cursor.
async fn all_history(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let sep = if query.is_empty() { "?" } else { "&" };
        let path = match &cursor {
            Some(c) => format!("/v1/history{query}{sep}limit=3&cursor={c}"),
            None => format!("/v1/history{query}{sep}limit=3"),
        };
        let page = app.get(&path, token).await.assert(200);
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
}

fn actions(items: &[Value]) -> Vec<&str> {
    items
        .iter()
        .map(|i| i["action"].as_str().unwrap())
        .collect()
}

async fn outbox_recipients(app: &TestApp) -> Vec<String> {
    let rows = app
        .db
        .query_all_raw(Statement::from_string(
            app.db.get_database_backend(),
            "SELECT recipient FROM mail_outbox ORDER BY created_at, recipient",
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|r| r.try_get::<String>("", "recipient").unwrap())
        .collect()
}

async fn me(app: &TestApp, token: &str) -> Uuid {
    app.get("/v1/me", token).await.assert(200)["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn actions_appear_in_order_with_their_actor(app: TestApp) {
    let tenant = app.tenant("hist", true).await;
    let admin_key = me(&app, &tenant.admin).await;
    let (auditor_key, auditor) = app
        .person(&tenant, "AUD-1", &["auditor"], Some("aud@hist.example"))
        .await;
    // Granting the approver role to an issued key is an approver change:
    // every approver and auditor and the holder are told.
    let (_, approver) = app
        .person(&tenant, "APP-1", &["approver"], Some("app@hist.example"))
        .await;
    let mut mails: Vec<String> = outbox_recipients(&app)
        .await
        .into_iter()
        .filter(|r| r.ends_with("@hist.example"))
        .collect();
    mails.sort();
    assert_eq!(
        mails,
        ["app@hist.example", "aud@hist.example"],
        "approver role granted → approvers, auditors and the holder"
    );

    let holder = app
        .post(
            "/v1/employees",
            &tenant.admin,
            json!({"name": "Kim Keyholder"}),
        )
        .await
        .assert(201);
    let key = app
        .post(
            "/v1/keys",
            &tenant.admin,
            json!({"marking": "K-1", "name": "Key 1", "model": "e3"}),
        )
        .await
        .assert(201);
    let key_id = key["id"].as_str().unwrap();
    app.post(
        &format!("/v1/keys/{key_id}/issue"),
        &tenant.admin,
        json!({"employee_id": holder["id"]}),
    )
    .await
    .assert(200);
    app.post(
        &format!("/v1/keys/{key_id}/return"),
        &tenant.admin,
        json!({}),
    )
    .await
    .assert(200);
    let pk = app
        .post(
            "/v1/programming-keys",
            &tenant.admin,
            json!({"marking": "SYS-1", "name": "Sys", "roles": ["system_administrator"]}),
        )
        .await
        .assert(201);
    let pk_path = format!("/v1/programming-keys/{}", pk["id"].as_str().unwrap());
    app.patch(
        &pk_path,
        &tenant.admin,
        json!({"roles": ["system_administrator", "receptionist"], "name": "Sys 2"}),
    )
    .await
    .assert(200);
    app.post(&format!("{pk_path}/block"), &tenant.admin, json!({}))
        .await
        .assert(200);
    app.post(&format!("{pk_path}/unblock"), &tenant.admin, json!({}))
        .await
        .assert(200);
    let api_key = app
        .post(
            "/v1/api-keys",
            &tenant.admin,
            json!({"name": "ERP", "roles": ["system_administrator"]}),
        )
        .await
        .assert(201);
    let api_key_id = api_key["api_key"]["id"].as_str().unwrap();
    app.token(json!({"grant_type": "api_key", "tenant": tenant.slug, "api_key": api_key["key"]}))
        .await
        .assert(200);
    app.call(
        Method::DELETE,
        &format!("/v1/api-keys/{api_key_id}"),
        Some(&tenant.admin),
        None,
    )
    .await
    .assert_status(204);
    let agent = app
        .post("/v1/agents", &tenant.admin, json!({"name": "Site A"}))
        .await
        .assert(201);
    let agent_id = agent["agent"]["id"].as_str().unwrap();
    let rotated = app
        .post(
            &format!("/v1/agents/{agent_id}/rotate-secret"),
            &tenant.admin,
            json!({}),
        )
        .await
        .assert(200);

    let all = all_history(&app, &auditor, "").await;
    for (i, entry) in all.iter().enumerate() {
        assert_eq!(entry["seq"], json!(i + 1), "consecutive sequence numbers");
        let prev = if i == 0 {
            countersign_infra::history::GENESIS
        } else {
            all[i - 1]["hash"].as_str().unwrap()
        };
        assert_eq!(entry["prev_hash"], prev, "each entry links to the previous");
    }
    let everything = actions(&all);
    assert_eq!(
        &everything[..6],
        [
            "tenant.provisioned",
            "employee.created",
            "programming_key.created",
            "auth.login",
            "programming_key.pin_set",
            "auth.login"
        ]
    );
    assert_eq!(all[0]["actor"]["kind"], "operator");
    assert_eq!(
        all[0]["subject"],
        json!({"type": "tenant", "id": tenant.id})
    );
    // The first login used the one-time PIN; the holder then set their own.
    assert_eq!(all[3]["details"]["pin_change_required"], true);
    assert_eq!(all[4]["details"]["by_holder"], true);
    let tail: Vec<&str> = everything
        .iter()
        .copied()
        .skip_while(|a| *a != "key.created")
        .collect();
    assert_eq!(
        tail,
        [
            "key.created",
            "key.issued",
            "key.returned",
            "programming_key.created",
            "programming_key.updated",
            "programming_key.roles_changed",
            "programming_key.blocked",
            "programming_key.unblocked",
            "api_key.created",
            "auth.login",
            "api_key.deleted",
            "agent.created",
            "agent.secret_rotated",
        ]
    );

    let issued = all_history(
        &app,
        &tenant.admin,
        &format!("?subject_type=key&subject_id={key_id}&action=key.issued"),
    )
    .await;
    assert_eq!(issued.len(), 1);
    let issued = &issued[0];
    assert_eq!(
        issued["actor"],
        json!({"kind": "user", "id": admin_key, "name": "Ada Admin", "programming_key_id": admin_key})
    );
    assert_eq!(issued["details"]["employee_id"], holder["id"]);
    assert_eq!(issued["details"]["employee_name"], "Kim Keyholder");

    let webservice = all
        .iter()
        .find(|e| e["details"]["grant_type"] == "api_key")
        .unwrap();
    assert_eq!(
        (
            &webservice["actor"]["kind"],
            &webservice["actor"]["name"],
            &webservice["subject"]
        ),
        (
            &json!("webservice"),
            &json!("ERP"),
            &json!({"type": "api_key", "id": api_key_id})
        )
    );

    let roles = all
        .iter()
        .find(|e| e["action"] == "programming_key.roles_changed" && e["subject"]["id"] == pk["id"])
        .unwrap();
    assert_eq!(
        roles["details"]["old_roles"],
        json!(["system_administrator"])
    );
    assert_eq!(
        roles["details"]["new_roles"],
        json!(["system_administrator", "receptionist"])
    );
    let updated = all
        .iter()
        .find(|e| e["action"] == "programming_key.updated")
        .unwrap();
    assert_eq!(
        updated["details"]["changes"],
        json!({"name": {"old": "Sys", "new": "Sys 2"}})
    );
    for entry in &all {
        let details = entry["details"].to_string();
        for secret in [
            "246810",
            "97531",
            "1357",
            api_key["key"].as_str().unwrap(),
            agent["secret"].as_str().unwrap(),
            rotated["secret"].as_str().unwrap(),
        ] {
            assert!(!details.contains(secret), "no PIN or secret in {details}");
        }
    }

    // Filters: the actor, the action, the time range.
    let by_auditor = all_history(&app, &tenant.admin, &format!("?actor_id={auditor_key}")).await;
    assert!(!by_auditor.is_empty());
    assert!(
        by_auditor
            .iter()
            .all(|e| e["actor"]["id"] == json!(auditor_key))
    );
    let logins = all_history(&app, &tenant.admin, "?action=auth.login").await;
    assert!(logins.iter().all(|e| e["action"] == "auth.login"));
    assert!(logins.len() >= 6);
    let last = all.last().unwrap();
    let from = encode(last["at"].as_str().unwrap());
    let later = all_history(&app, &tenant.admin, &format!("?from={from}")).await;
    assert!(later.iter().any(|e| e["seq"] == last["seq"]));
    assert!(later.iter().all(|e| e["seq"].as_i64() >= Some(3)));
    let earlier = all_history(&app, &tenant.admin, "?to=2000-01-01T00:00:00%2B01:00").await;
    assert!(earlier.is_empty());
    let bad = app
        .get("/v1/history?from=2024-01-01T00:00:00", &tenant.admin)
        .await;
    assert_eq!((bad.status.as_u16(), bad.code()), (400, "invalid_query"));
    let bad = app.get("/v1/history?limit=501", &tenant.admin).await;
    assert_eq!((bad.status.as_u16(), bad.code()), (400, "invalid_query"));

    // The approver sees the history of requests only, and cannot verify.
    let seen = all_history(&app, &approver, "").await;
    assert!(
        seen.iter().all(|e| ["event_log_request", "readout_job"]
            .contains(&e["subject"]["type"].as_str().unwrap())),
        "approver sees only request history: {seen:?}"
    );
    let hidden = all_history(&app, &approver, "?subject_type=tenant").await;
    assert!(hidden.is_empty());
    let reply = app.get("/v1/history/verify", &approver).await;
    assert_eq!((reply.status.as_u16(), reply.code()), (403, "forbidden"));

    // The auditor sees everything and verifies what the worker signed.
    app.store.sign_heads(Utc::now()).await.unwrap();
    let verified = app.get("/v1/history/verify", &auditor).await.assert(200);
    assert_eq!(verified["valid"], true, "{verified}");
    assert_eq!(verified["entries_checked"], json!(all.len()));
    assert_eq!(verified["last_signed_seq"], json!(all.len()));
    assert_eq!(verified["signatures_checked"], 1);
    assert_eq!(verified["status"], "valid");
    assert_eq!(verified["first_broken_seq"], Value::Null);

    // Another tenant's history is its own.
    let other = app.tenant("hist-other", false).await;
    let theirs = all_history(&app, &other.admin, "").await;
    assert!(
        theirs
            .iter()
            .all(|e| e["subject"]["id"] != json!(tenant.id))
    );
    assert_eq!(theirs[0]["seq"], 1);
}

fn encode(time: &str) -> String {
    time.replace('+', "%2B")
}

async fn verify(app: &TestApp, tenant: &Tenant) -> Value {
    app.get("/v1/history/verify", &tenant.admin)
        .await
        .assert(200)
}

async fn tampering_is_detected(app: TestApp) {
    let tenant = app.tenant("tamper", false).await;
    for marking in ["K-1", "K-2", "K-3"] {
        app.post(
            "/v1/keys",
            &tenant.admin,
            json!({"marking": marking, "name": marking, "model": "basic"}),
        )
        .await
        .assert(201);
    }
    app.store.sign_heads(Utc::now()).await.unwrap();
    let intact = verify(&app, &tenant).await;
    assert_eq!(intact["valid"], true, "{intact}");
    let signed = intact["last_signed_seq"].as_i64().unwrap();
    let rows = entry_rows(&app, tenant.id).await;
    assert_eq!(rows.len() as i64, signed);

    // One entry's details, changed with the trigger off: its hash no longer holds.
    let target = 6_i64;
    let row = &rows[(target - 1) as usize];
    let mut details: Value = row.try_get("", "details").unwrap();
    details["name"] = json!("Forged");
    let prev: String = row.try_get("", "prev_hash").unwrap();
    let hash: String = row.try_get("", "hash").unwrap();
    as_database_owner(
        &app,
        vec![update_entry(
            &app,
            tenant.id,
            target,
            details.clone(),
            &prev,
            &hash,
        )],
    )
    .await;
    let broken = verify(&app, &tenant).await;
    assert_eq!(
        (broken["valid"].clone(), broken["status"].clone()),
        (json!(false), json!("broken_chain"))
    );
    assert_eq!(broken["first_broken_seq"], target, "{broken}");
    assert!(
        broken["reason"].as_str().unwrap().contains("hash"),
        "{broken}"
    );

    // The whole chain rewritten consistently from there on: every hash and
    // link holds again, but the stored checkpoint gives it away.
    as_database_owner(&app, rewrite_from(&app, tenant.id, target, details).await).await;
    let rewritten = verify(&app, &tenant).await;
    assert_eq!(rewritten["valid"], false, "{rewritten}");
    assert_eq!(rewritten["status"], "rewritten", "{rewritten}");
    assert_eq!(rewritten["first_broken_seq"], 1, "{rewritten}");
    assert_eq!(
        rewritten["problems"][0]["checkpoint_seq"], signed,
        "{rewritten}"
    );
    assert!(
        rewritten["reason"].as_str().unwrap().contains("rewritten"),
        "{rewritten}"
    );
    assert_eq!(rewritten["entries_checked"], signed);
}

async fn the_database_refuses_changes_to_history(app: TestApp) {
    let tenant = app.tenant("append", false).await;
    app.store.sign_heads(Utc::now()).await.unwrap();
    let backend = app.db.get_database_backend();
    for sql in [
        "UPDATE history_entries SET action = 'forged'",
        "UPDATE history_entries SET details = '{}'",
        "DELETE FROM history_entries",
        "UPDATE history_signatures SET hash = 'forged'",
        "DELETE FROM history_signatures",
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
    assert_eq!(verify(&app, &tenant).await["valid"], true);
}

/// A decision, once cast, stays as it was: the database refuses to change or
/// remove it, also to its owner, also through an upsert or SQLite's replace.
async fn the_database_refuses_changes_to_decisions(app: TestApp) {
    let tenant = app.tenant("decided", true).await;
    let (_, approver) = app
        .person(&tenant, "APP-1", &["approver"], Some("app@decided.example"))
        .await;
    let key = app.issued_key(&tenant, "K-1", "e3").await;
    let request = app.request_key_readout(&tenant.admin, &key).await;
    let decided = app.approve(&request, &approver).await;
    assert_eq!(decided["decisions"].as_array().map(Vec::len), Some(1));
    let columns = "id, tenant_id, request_id, decision, comment, programming_key_id, employee_id, approver_name, decided_at";
    let forged = columns.replace(" decision,", " 'rejected',");
    let mut attempts = vec![
        "UPDATE request_decisions SET decision = 'rejected'".to_owned(),
        "UPDATE request_decisions SET comment = 'forged', approver_name = 'Someone else'"
            .to_owned(),
        "DELETE FROM request_decisions".to_owned(),
        format!(
            "INSERT INTO request_decisions ({columns}) SELECT {forged} FROM request_decisions WHERE true \
             ON CONFLICT (id) DO UPDATE SET decision = EXCLUDED.decision"
        ),
    ];
    if app.backend == Backend::Sqlite {
        attempts.extend([
            format!("INSERT OR REPLACE INTO request_decisions ({columns}) SELECT {forged} FROM request_decisions"),
            format!("REPLACE INTO request_decisions ({columns}) SELECT {forged} FROM request_decisions"),
            "UPDATE OR REPLACE request_decisions SET decision = 'rejected'".to_owned(),
        ]);
    }
    for sql in &attempts {
        let result = app.db.execute_unprepared(sql).await;
        let error = result.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            ["append-only", "row_exists"]
                .iter()
                .any(|why| error.contains(why)),
            "{sql} must be refused on {:?}: {error}",
            app.backend
        );
    }
    let id = request["id"].as_str().unwrap();
    let still = app
        .get(&format!("/v1/event-log-requests/{id}"), &tenant.admin)
        .await
        .assert(200);
    assert_eq!(still["decisions"], decided["decisions"]);
    assert_eq!(still["status"], "approved");
}

async fn heads_are_signed_once_and_only_the_configured_key_counts(app: TestApp) {
    let first = app.tenant("sign-a", false).await;
    app.tenant("sign-b", false).await;
    // Two replicas with one key (not the application's) sign at the same time.
    let signer = Arc::new(HistorySigner::generate());
    let revocations = Arc::new(RevocationList::local(app.db.clone()).await.unwrap());
    let replica = || {
        Store::new(
            app.db.clone(),
            Arc::new(SystemClock),
            revocations.clone(),
            app.base.clone(),
        )
        .with_history_signer(signer.clone())
    };
    let (a, b) = (replica(), replica());
    let now = Utc::now();
    let (x, y) = tokio::join!(a.sign_heads(now), b.sign_heads(now));
    assert_eq!(x.unwrap() + y.unwrap(), 2, "one signature per tenant");
    assert_eq!(a.sign_heads(now).await.unwrap(), 0, "nothing new to sign");

    let verified = verify(&app, &first).await;
    assert_eq!(verified["valid"], false, "{verified}");
    assert_eq!(verified["status"], "unknown_key", "{verified}");
    assert_eq!(
        verified["first_broken_seq"],
        Value::Null,
        "no entry is in doubt"
    );
    assert_eq!(verified["problems"][0]["checkpoint_seq"], 6, "{verified}");
    assert_eq!(verified["last_signed_seq"], Value::Null, "{verified}");
}

/// The entries of `action` whose subject is `id`, each with its actor's id.
fn entries_of<'a>(items: &'a [Value], action: &str, id: &str) -> Vec<&'a Value> {
    items
        .iter()
        .filter(|i| i["action"] == action && i["subject"]["id"] == id)
        .collect()
}

/// Creates an object at `path`, changes it, and gives its id.
async fn created_then_changed(
    app: &TestApp,
    token: &str,
    path: &str,
    create: Value,
    change: Value,
) -> String {
    let created = app.post(path, token, create).await.assert(201);
    let id = created["id"].as_str().unwrap().to_owned();
    app.patch(&format!("{path}/{id}"), token, change)
        .await
        .assert(200);
    id
}

async fn every_directory_and_inventory_change_names_its_actor(app: TestApp) {
    let tenant = app.tenant("dirhist", true).await;
    let admin = tenant.admin.as_str();
    let admin_key = me(&app, admin).await.to_string();
    let employee_id = created_then_changed(
        &app,
        admin,
        "/v1/employees",
        json!({"name": "Ada", "email": "ada@dirhist.example"}),
        json!({"email": "ada@elsewhere.example"}),
    )
    .await;
    let employee_id = employee_id.as_str();
    let group_id = created_then_changed(
        &app,
        admin,
        "/v1/key-groups",
        json!({"marking": "G-1", "name": "Group"}),
        json!({"name": "Staff"}),
    )
    .await;
    let group_id = group_id.as_str();
    let cylinder_id = created_then_changed(
        &app,
        admin,
        "/v1/cylinders",
        json!({"marking": "C-1", "name": "Door"}),
        json!({"name": "Front door"}),
    )
    .await;
    let cylinder_id = cylinder_id.as_str();
    let device_id = created_then_changed(
        &app,
        admin,
        "/v1/remote-devices",
        json!({"name": "Wall unit", "kind": "remote_unit", "serial": "RU-1"}),
        json!({"name": "Lobby"}),
    )
    .await;
    let device_id = device_id.as_str();
    let agent = app
        .post("/v1/agents", admin, json!({"name": "Site"}))
        .await
        .assert(201);
    let agent_id = agent["agent"]["id"].as_str().unwrap();
    app.call(
        Method::PUT,
        &format!("/v1/agents/{agent_id}/devices"),
        Some(admin),
        Some(json!({"device_ids": [device_id]})),
    )
    .await
    .assert(200);
    let import = app
        .post(
            "/v1/imports",
            admin,
            json!({"cylinders": [{"marking": "C-9", "name": "Imported"}, {"marking": "C-1", "name": "Again"}]}),
        )
        .await
        .assert(200);
    assert_eq!(import["cylinders"]["created"], json!(["C-9"]));

    let items = all_history(&app, admin, "").await;
    let employee_changes = entries_of(&items, "employee.updated", employee_id);
    assert_eq!(
        employee_changes[0]["details"]["changes"]["email"],
        json!({"old": "ada@dirhist.example", "new": "ada@elsewhere.example"}),
        "the history keeps the old and the new address"
    );
    for (action, id) in [
        ("employee.created", employee_id),
        ("employee.updated", employee_id),
        ("key_group.created", group_id),
        ("key_group.renamed", group_id),
        ("cylinder.created", cylinder_id),
        ("cylinder.updated", cylinder_id),
        ("remote_device.created", device_id),
        ("remote_device.renamed", device_id),
        ("agent.created", agent_id),
        ("agent.devices_assigned", agent_id),
    ] {
        let found = entries_of(&items, action, id);
        assert_eq!(found.len(), 1, "{action} of {id} in {:?}", actions(&items));
        assert_eq!(
            found[0]["actor"]["programming_key_id"],
            admin_key.as_str(),
            "{action}"
        );
    }
    let imported: Vec<&Value> = items
        .iter()
        .filter(|i| i["action"] == "cylinder.created" && i["details"]["import"] == true)
        .collect();
    assert_eq!(
        imported.len(),
        1,
        "only the created cylinder is recorded as imported"
    );
    assert_eq!(imported[0]["details"]["marking"], "C-9");
    let summary = items
        .iter()
        .find(|i| i["action"] == "import.completed")
        .expect("the import is recorded");
    assert_eq!(
        summary["details"]["cylinders"],
        json!({"created": 1, "existing": 1})
    );
    let verified = app.get("/v1/history/verify", admin).await.assert(200);
    assert_eq!(verified["valid"], true);
}

on_both_databases!(
    every_directory_and_inventory_change_names_its_actor,
    actions_appear_in_order_with_their_actor,
    tampering_is_detected,
    the_database_refuses_changes_to_history,
    the_database_refuses_changes_to_decisions,
    heads_are_signed_once_and_only_the_configured_key_counts,
);

/// Outside embedded mode, the history signing key must be configured.
#[tokio::test]
async fn the_signing_key_is_required_outside_embedded_mode() {
    let config = countersign_api::config::Config {
        database_url: std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
        redis_url: Some("redis://127.0.0.1:6379".into()),
        operator_key: Some(countersign_tests::OPERATOR_KEY.into()),
        jwt_secret: Some(countersign_tests::JWT_SECRET.into()),
        demo: false,
        ..Default::default()
    };
    let err = countersign_api::server::wire(&config)
        .await
        .err()
        .expect("refused without a signing key");
    assert!(
        err.to_string()
            .contains("COUNTERSIGN_HISTORY_SIGNING_KEY_FILE"),
        "{err}"
    );
}
