//! Approver credentials change hands only in the open (SPEC §2), tried as an
//! adversarial super administrator would: every road to an approver's key is
//! announced to every approver and auditor, names who took it, and holds the
//! key back from deciding until the tenant's `approver_hold_hours` have passed.

use countersign_tests::{
    SmtpSink, Tenant, TestApp, on_both_databases, on_both_databases_with_smtp,
};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use uuid::Uuid;

const HOLD_HOURS: i64 = 24;
const ANNOUNCED: &str = "Freigeber geändert: Programmierschlüssel APPR-B";
const ONE_TIME_PIN: &str = "Einmal-PIN: Programmierschlüssel APPR-B";

/// The cast of the attacks: Ada, the super administrator; Berta and Otto,
/// approvers; Paul, an auditor; all with the holds of their own setup passed.
struct Council {
    tenant: Tenant,
    berta_key: Uuid,
    berta_address: String,
    others: Vec<String>,
}

fn address(tenant: &Tenant, who: &str) -> String {
    format!("{who}@{}.example", tenant.slug)
}

async fn council(app: &TestApp) -> Council {
    let tenant = app
        .tenant_with("hold", json!({"approver_hold_hours": HOLD_HOURS}))
        .await;
    let berta_address = address(&tenant, "berta");
    let (berta_key, _) = app
        .person(&tenant, "APPR-B", &["approver"], Some(&berta_address))
        .await;
    let (otto_key, _) = app
        .person(
            &tenant,
            "APPR-O",
            &["approver"],
            Some(&address(&tenant, "otto")),
        )
        .await;
    app.person(
        &tenant,
        "AUD-P",
        &["auditor"],
        Some(&address(&tenant, "paul")),
    )
    .await;
    for key in [berta_key, otto_key] {
        let_hold_pass(app, key).await;
    }
    let others = vec![address(&tenant, "otto"), address(&tenant, "paul")];
    Council {
        tenant,
        berta_key,
        berta_address,
        others,
    }
}

/// Time passes beyond the hold.
async fn let_hold_pass(app: &TestApp, key: Uuid) {
    app.let_time_pass("programming_keys", "hold_until", key)
        .await;
}

/// The one-time PIN in a mail.
fn pin_in(body: &str) -> String {
    let at = body
        .find("Einmal-PIN erzeugt: ")
        .expect("a PIN in the mail")
        + 20;
    body[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect()
}

/// Logs in with a mailed one-time PIN, chooses a PIN, logs in again.
async fn take_over(app: &TestApp, tenant: &Tenant, marking: &str, one_time: &str) -> String {
    let first = app.login(&tenant.slug, marking, one_time).await.assert(200);
    assert_eq!(first["pin_change_required"], true);
    let first = first["access_token"].as_str().unwrap();
    app.post(
        "/v1/me/pin",
        first,
        json!({"current_pin": one_time, "new_pin": "666999"}),
    )
    .await
    .assert(204);
    let token = app.login(&tenant.slug, marking, "666999").await.assert(200);
    token["access_token"].as_str().unwrap().to_owned()
}

async fn history_of(app: &TestApp, tenant: &Tenant, action: &str) -> Vec<Value> {
    let page = app
        .get(
            &format!("/v1/history?action={action}&limit=500"),
            &tenant.admin,
        )
        .await
        .assert(200);
    page["items"].as_array().unwrap().clone()
}

/// Approving `request` as `token` answers 403 with `code`.
async fn refused_approval(
    app: &TestApp,
    request: &Value,
    token: &str,
    code: &str,
) -> countersign_tests::Reply {
    let id = request["id"].as_str().unwrap();
    let refused = app
        .post(
            &format!("/v1/event-log-requests/{id}/approve"),
            token,
            json!({}),
        )
        .await;
    refused.assert_status(403);
    assert_eq!(refused.code(), code);
    refused
}

/// The attacker's decision waits for the hold; every approver and auditor
/// was told, and the history names the administrator.
async fn assert_held_and_announced(
    app: &TestApp,
    sink: &SmtpSink,
    council: &Council,
    token: &str,
    request: &Value,
    also_told: &[String],
) {
    let id = request["id"].as_str().unwrap();
    let refused = refused_approval(app, request, token, "approver_on_hold").await;
    let hold_until = refused.body["hold_until"].as_str().unwrap().to_owned();
    let me = app.get("/v1/me", token).await.assert(200);
    assert_eq!(me["hold_until"], hold_until.as_str());
    assert_eq!(me["tenant"]["approver_hold_hours"], HOLD_HOURS);
    let key = app
        .get(
            &format!("/v1/programming-keys/{}", council.berta_key),
            &council.tenant.admin,
        )
        .await
        .assert(200);
    assert_eq!(key["hold_until"], hold_until.as_str());
    let until = chrono::DateTime::parse_from_rfc3339(&hold_until).unwrap();
    let hours = (until.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_minutes();
    assert!(
        (HOLD_HOURS * 60 - 5..=HOLD_HOURS * 60).contains(&hours),
        "{hours} min"
    );

    for recipient in council.others.iter().chain(also_told) {
        let mail = sink.wait_for(recipient, ANNOUNCED).await;
        assert!(
            mail.body.contains("Geändert von: Ada Admin."),
            "{}",
            mail.body
        );
    }
    let announced = history_of(app, &council.tenant, "programming_key.approver_changed").await;
    let of_berta: Vec<&Value> = announced
        .iter()
        .filter(|e| e["subject"]["id"] == council.berta_key.to_string())
        .collect();
    assert!(of_berta.len() >= 2, "{announced:#?}");
    for entry in of_berta {
        assert_eq!(entry["actor"]["name"], "Ada Admin", "{entry}");
    }
    let pending = app
        .get(
            &format!("/v1/event-log-requests/{id}"),
            &council.tenant.admin,
        )
        .await
        .assert(200);
    assert_eq!(pending["status"], "pending_approval");

    // Once the hold has passed, the key decides again: the hold was the barrier.
    let_hold_pass(app, council.berta_key).await;
    let decided = app.approve(request, token).await;
    assert_eq!(decided["status"], "approved");
}

/// The council and a pending request of its administrator's, for a key.
async fn council_with_request(app: &TestApp) -> (Council, Value) {
    let council = council(app).await;
    let key = app.issued_key(&council.tenant, "K-1", "e3").await;
    let request = app.request_key_readout(&council.tenant.admin, &key).await;
    (council, request)
}

/// Attack 1: redirect the approver's e-mail, reset the PIN, approve.
async fn redirecting_an_approvers_email_and_pin_is_held_and_announced(
    app: TestApp,
    sink: SmtpSink,
) {
    let (council, request) = council_with_request(&app).await;
    let tenant = &council.tenant;
    let berta = app
        .get(
            &format!("/v1/programming-keys/{}", council.berta_key),
            &tenant.admin,
        )
        .await
        .assert(200);
    let employee = berta["employee_id"].as_str().unwrap();
    let mallory = address(tenant, "mallory");

    app.patch(
        &format!("/v1/employees/{employee}"),
        &tenant.admin,
        json!({"email": mallory}),
    )
    .await
    .assert(200);
    let pin_path = format!("/v1/programming-keys/{}/pin", council.berta_key);
    let chosen = app
        .post(&pin_path, &tenant.admin, json!({"pin": "1234"}))
        .await;
    chosen.assert_status(422);
    let mailed = app
        .post(&pin_path, &tenant.admin, json!({}))
        .await
        .assert(202);
    assert_eq!(mailed["delivered_to"], "holder");
    assert!(mailed.get("pin").is_none(), "{mailed}");

    let pin_mail = sink.wait_for(&mallory, ONE_TIME_PIN).await;
    let one_time = pin_in(&pin_mail.body);
    assert_eq!(one_time.len(), 8, "{}", pin_mail.body);
    let token = take_over(&app, tenant, "APPR-B", &one_time).await;

    assert_held_and_announced(
        &app,
        &sink,
        &council,
        &token,
        &request,
        &[council.berta_address.clone(), mallory.clone()],
    )
    .await;
    for other in council.others.iter().chain([&council.berta_address]) {
        assert!(sink.received_for(other, ONE_TIME_PIN).is_empty(), "{other}");
    }
    let updated = history_of(&app, tenant, "employee.updated").await;
    let redirect = updated
        .iter()
        .find(|e| e["subject"]["id"] == employee)
        .expect("the e-mail change is in the history");
    assert_eq!(redirect["actor"]["name"], "Ada Admin");
    assert_eq!(
        redirect["details"]["changes"]["email"]["new"],
        mallory.as_str()
    );
    let changes: Vec<Value> = history_of(&app, tenant, "programming_key.approver_changed")
        .await
        .iter()
        .map(|e| e["details"]["change"].clone())
        .collect();
    assert!(
        changes.contains(&json!("email_changed")) && changes.contains(&json!("pin_set")),
        "{changes:?}"
    );
    let everything = app
        .get("/v1/history?limit=500", &tenant.admin)
        .await
        .assert(200);
    assert!(
        !everything.to_string().contains(&one_time),
        "no PIN in the history"
    );
    assert_pin_wiped_from_outbox(&app, &mallory, &one_time).await;
}

/// The outbox keeps no PIN once its mail is sent.
async fn assert_pin_wiped_from_outbox(app: &TestApp, recipient: &str, pin: &str) {
    let backend = app.db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT body, status FROM mail_outbox WHERE recipient = $1 AND secret"
        }
        _ => "SELECT body, status FROM mail_outbox WHERE recipient = ? AND secret",
    };
    let rows = app
        .db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [recipient.into()],
        ))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let body: String = rows[0].try_get("", "body").unwrap();
    let status: String = rows[0].try_get("", "status").unwrap();
    assert_eq!(status, "sent");
    assert!(!body.contains(pin), "{body}");
}

/// Attack 2: return the approver key and issue it to a look-alike employee.
async fn reissuing_an_approver_key_to_a_look_alike_is_held_and_announced(
    app: TestApp,
    sink: SmtpSink,
) {
    let (council, request) = council_with_request(&app).await;
    let tenant = &council.tenant;
    let mallory = address(tenant, "mallory");
    let base = format!("/v1/programming-keys/{}", council.berta_key);
    app.post(&format!("{base}/return"), &tenant.admin, json!({}))
        .await
        .assert(200);
    let look_alike = app
        .post(
            "/v1/employees",
            &tenant.admin,
            json!({"name": "Holder of APPR-B", "email": mallory}),
        )
        .await
        .assert(201);
    app.post(
        &format!("{base}/issue"),
        &tenant.admin,
        json!({"employee_id": look_alike["id"]}),
    )
    .await
    .assert(200);
    app.post(&format!("{base}/pin"), &tenant.admin, json!({}))
        .await
        .assert(202);
    let one_time = pin_in(&sink.wait_for(&mallory, ONE_TIME_PIN).await.body);
    let token = take_over(&app, tenant, "APPR-B", &one_time).await;

    assert_held_and_announced(&app, &sink, &council, &token, &request, &[mallory]).await;
    let issued = history_of(&app, tenant, "programming_key.approver_changed").await;
    assert!(
        issued.iter().any(|e| e["details"]["change"] == "issued"),
        "{issued:#?}"
    );
}

on_both_databases_with_smtp!(
    redirecting_an_approvers_email_and_pin_is_held_and_announced,
    reissuing_an_approver_key_to_a_look_alike_is_held_and_announced,
);

/// Attack 3: an approver who is also super administrator makes a request
/// through an API key of their own making, then approves it.
async fn a_request_through_ones_own_api_key_is_ones_own(app: TestApp) {
    let tenant = app.tenant("own-key", true).await;
    let key = app.issued_key(&tenant, "K-1", "e3").await;
    let me = app.get("/v1/me", &tenant.admin).await.assert(200);
    let admin_key = me["id"].as_str().unwrap();
    app.patch(
        &format!("/v1/programming-keys/{admin_key}"),
        &tenant.admin,
        json!({"roles": ["super_administrator", "approver"]}),
    )
    .await
    .assert(200);
    let admin = app
        .login(&tenant.slug, "ADMIN-1", "246810")
        .await
        .assert(200);
    let tenant = Tenant {
        admin: admin["access_token"].as_str().unwrap().to_owned(),
        ..tenant
    };
    let admin = tenant.admin.as_str();
    let created = app
        .post(
            "/v1/api-keys",
            admin,
            json!({"name": "My integration", "roles": ["system_administrator"]}),
        )
        .await
        .assert(201);
    assert_eq!(
        created["api_key"]["created_by_programming_key_id"],
        admin_key
    );
    assert_eq!(
        created["api_key"]["created_by_employee_id"],
        me["employee_id"]
    );
    let integration = app
        .token(json!({"grant_type": "api_key", "tenant": tenant.slug, "api_key": created["key"]}))
        .await
        .assert(200);
    let integration = integration["access_token"].as_str().unwrap();

    // Its creator is the only approver: nobody else is able to act.
    let alone = app
        .post(
            "/v1/event-log-requests",
            integration,
            json!({"target": {"type": "key", "id": key}}),
        )
        .await;
    alone.assert_status(409);
    assert_eq!(alone.code(), "no_approver_available");

    let (_, otto) = app
        .person(
            &tenant,
            "APPR-O",
            &["approver"],
            Some("otto@own-key.example"),
        )
        .await;
    let request = app.request_key_readout(integration, &key).await;
    refused_approval(&app, &request, admin, "self_approval").await;
    assert_eq!(app.approve(&request, &otto).await["status"], "approved");
}

/// The hold is part of the fixed configuration: chosen once, shown to
/// everyone, and refused by the API and by the database alike.
async fn the_hold_is_fixed_at_provisioning(app: TestApp) {
    let operator = app.operator().await;
    let tenant = app
        .tenant_with("fixed-hold", json!({"approver_hold_hours": 48}))
        .await;
    let path = format!("/v1/tenants/{}", tenant.id);
    let shown = app.get(&path, &operator).await.assert(200);
    assert_eq!(shown["approver_hold_hours"], 48);
    let refused = app
        .patch(&path, &operator, json!({"approver_hold_hours": 0}))
        .await;
    refused.assert_status(409);
    assert_eq!(refused.code(), "approval_setting_immutable");
    app.patch(&path, &operator, json!({"approver_hold_hours": 48}))
        .await
        .assert(200);
    let me = app.get("/v1/me", &tenant.admin).await.assert(200);
    assert_eq!(me["tenant"]["approver_hold_hours"], 48);
    assert_eq!(me["tenant"]["approval_required"], true);

    let backend = app.db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => "UPDATE tenants SET approver_hold_hours = 0 WHERE id = $1",
        _ => "UPDATE tenants SET approver_hold_hours = 0 WHERE id = ?",
    };
    let direct = app
        .db
        .execute_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [tenant.id.into()],
        ))
        .await;
    assert!(
        direct
            .unwrap_err()
            .to_string()
            .contains("approval_setting_immutable"),
        "the database refuses it"
    );
    assert_eq!(
        app.get(&path, &operator).await.assert(200)["approver_hold_hours"],
        48
    );

    let mut too_long = json!({
        "slug": countersign_tests::unique_slug("too-long"), "name": "Too long", "base_timezone": "UTC",
        "locale": "en", "approval_required": true, "approver_hold_hours": 169,
        "initial_admin": {"employee_name": "A", "email": "a@b.example", "programming_key_marking": "A-1"}
    });
    app.post("/v1/tenants", &operator, too_long.clone())
        .await
        .assert_status(422);
    too_long["approver_hold_hours"] = json!(-1);
    app.post("/v1/tenants", &operator, too_long)
        .await
        .assert_status(400);
}

/// Blocking is never held back, and a holder's own PIN change is no approver
/// change; a PIN for an approver key not issued to anyone has nowhere to go.
async fn only_changes_of_hands_are_held(app: TestApp) {
    let tenant = app
        .tenant_with("own-pin", json!({"approver_hold_hours": HOLD_HOURS}))
        .await;
    let (key, token) = app
        .person(
            &tenant,
            "APPR-B",
            &["approver"],
            Some("berta@own-pin.example"),
        )
        .await;
    let_hold_pass(&app, key).await;
    app.post(
        "/v1/me/pin",
        &token,
        json!({"current_pin": "97531", "new_pin": "24680"}),
    )
    .await
    .assert(204);
    let token = app.login(&tenant.slug, "APPR-B", "24680").await.assert(200);
    let me = app
        .get("/v1/me", token["access_token"].as_str().unwrap())
        .await
        .assert(200);
    assert_eq!(
        me["hold_until"],
        Value::Null,
        "the holder's own PIN: no hold"
    );

    let base = format!("/v1/programming-keys/{key}");
    app.post(&format!("{base}/block"), &tenant.admin, json!({}))
        .await
        .assert(200);
    let shown = app.get(&base, &tenant.admin).await.assert(200);
    assert!(shown["hold_until"].as_str().unwrap() < chrono::Utc::now().to_rfc3339().as_str());
    app.post(&format!("{base}/unblock"), &tenant.admin, json!({}))
        .await
        .assert(200);
    let shown = app.get(&base, &tenant.admin).await.assert(200);
    assert!(shown["hold_until"].as_str().unwrap() > chrono::Utc::now().to_rfc3339().as_str());

    app.post(&format!("{base}/return"), &tenant.admin, json!({}))
        .await
        .assert(200);
    let nowhere = app
        .post(&format!("{base}/pin"), &tenant.admin, json!({}))
        .await;
    nowhere.assert_status(422);
    assert_eq!(nowhere.code(), "approver_requires_email");
}

on_both_databases!(
    a_request_through_ones_own_api_key_is_ones_own,
    the_hold_is_fixed_at_provisioning,
    only_changes_of_hands_are_held,
);
