//! Checkpoints (SPEC §5): whoever can rewrite the database cannot cut the
//! history short or rewrite it unnoticed by a checkpoint kept outside it —
//! the auditors' daily mail, checked by `POST /v1/history/verify` and by
//! `countersign history verify` on an export.

use std::sync::Arc;

use chrono::Utc;
use countersign_infra::Store;
use countersign_infra::clock::SystemClock;
use countersign_infra::revocation::RevocationList;
use countersign_infra::signing::HistorySigner;
use countersign_tests::{
    Backend, SmtpSink, Tenant, TestApp, on_both_databases, on_both_databases_with_smtp,
};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use crate::tamper::{as_database_owner, entry_rows, rewrite_from, set_head, sql};

/// Rows of every table the history and its witnesses live in.
async fn row_counts(app: &TestApp) -> Vec<i64> {
    let mut counts = Vec::new();
    for table in [
        "history_entries",
        "history_heads",
        "history_signatures",
        "checkpoint_mails",
        "mail_outbox",
    ] {
        let row = app
            .db
            .query_one_raw(Statement::from_string(
                app.db.get_database_backend(),
                format!("SELECT count(*) AS n FROM {table}"),
            ))
            .await
            .unwrap()
            .unwrap();
        counts.push(row.try_get::<i64>("", "n").unwrap());
    }
    counts
}

async fn add_keys(app: &TestApp, tenant: &Tenant, prefix: &str, n: usize) {
    for i in 0..n {
        app.post(
            "/v1/keys",
            &tenant.admin,
            json!({"marking": format!("{prefix}-{i}"), "name": "Key", "model": "basic"}),
        )
        .await
        .assert(201);
    }
}

/// A tenant with an auditor (by mail) and an approver, some entries, and its
/// head signed and mailed; answers the tenant, the auditor's token and the
/// line of the auditor's mail.
async fn witnessed(app: &TestApp, sink: &SmtpSink, slug: &str) -> (Tenant, String, String) {
    let tenant = app.tenant(slug, true).await;
    let auditor_mail = format!("audit@{}.example", tenant.slug);
    let (_, auditor) = app
        .person(&tenant, "AUD-1", &["auditor"], Some(&auditor_mail))
        .await;
    app.person(
        &tenant,
        "APP-1",
        &["approver"],
        Some("approver@witness.example"),
    )
    .await;
    add_keys(app, &tenant, "K", 4).await;
    app.store.sign_heads(Utc::now()).await.unwrap();
    let entries = entry_rows(app, tenant.id).await.len();
    assert!(app.store.mail_checkpoints(Utc::now()).await.unwrap() >= 1);
    assert_eq!(
        entry_rows(app, tenant.id).await.len(),
        entries,
        "the mail records no history entry, so tomorrow has nothing new because of it"
    );
    let mail = sink
        .wait_for(&auditor_mail, "Signierter Stand der Historie")
        .await;
    let line = mail
        .body
        .lines()
        .find(|l| l.starts_with(r#"{"checkpoints""#))
        .unwrap_or_else(|| panic!("no checkpoint line in {}", mail.body))
        .to_owned();
    let mailed: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(mailed["checkpoints"][0]["seq"], json!(entries));
    (tenant, auditor, line)
}

/// Exports the tenant's history into a file of `dir`.
async fn export(app: &TestApp, token: &str, dir: &std::path::Path) -> std::path::PathBuf {
    let response = reqwest::Client::new()
        .get(format!("{}/v1/history/export?format=jsonl", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let path = dir.join("history.jsonl");
    std::fs::write(&path, response.text().await.unwrap()).unwrap();
    path
}

/// Runs `countersign history verify`; answers its exit code and output.
async fn verify_offline(
    file: &std::path::Path,
    key: &str,
    checkpoint: Option<&str>,
) -> (i32, String) {
    let binary = countersign_tests::process::server_binary().await;
    let mut command = tokio::process::Command::new(binary);
    command
        .arg("history")
        .arg("verify")
        .arg(file)
        .arg("--public-key")
        .arg(key);
    if let Some(checkpoint) = checkpoint {
        command.arg("--checkpoint").arg(checkpoint);
    }
    let output = command.output().await.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

/// Exports the history as `token` and checks it offline: valid by itself,
/// reported as `status` against the mailed checkpoint `line`.
async fn offline_verdicts(app: &TestApp, token: &str, line: &str, status: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = export(app, token, dir.path()).await;
    let key = current_key(app, token).await;
    let (code, output) = verify_offline(&file, &key, None).await;
    assert_eq!(code, 0, "{output}");
    assert!(output.starts_with("valid"), "{output}");
    let (code, output) = verify_offline(&file, &key, Some(line)).await;
    assert_eq!(code, 1, "{output}");
    assert!(output.contains(status), "{output}");
}

async fn current_key(app: &TestApp, token: &str) -> String {
    let keys = app.get("/v1/history/signing-keys", token).await.assert(200);
    let current = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["current"] == true)
        .unwrap();
    assert_eq!(current["algorithm"], "Ed25519");
    current["public_key"].as_str().unwrap().to_owned()
}

async fn a_cut_off_tail_is_reported_by_the_mailed_checkpoint(app: TestApp, sink: SmtpSink) {
    let (tenant, auditor, line) = witnessed(&app, &sink, "cut").await;
    let mailed: Value = serde_json::from_str(&line).unwrap();
    let mailed_seq = mailed["checkpoints"][0]["seq"].as_i64().unwrap();
    add_keys(&app, &tenant, "L", 2).await;
    app.store.sign_heads(Utc::now()).await.unwrap();
    // A head no checkpoint covers yet, which a verify that signed would sign.
    add_keys(&app, &tenant, "M", 1).await;

    // Verifying writes nothing, not even a checkpoint.
    let before = row_counts(&app).await;
    let intact = app.get("/v1/history/verify", &auditor).await.assert(200);
    assert_eq!(
        (intact["valid"].clone(), intact["status"].clone()),
        (json!(true), json!("valid")),
        "{intact}"
    );
    let kept = app
        .post("/v1/history/verify", &auditor, mailed.clone())
        .await
        .assert(200);
    assert_eq!(kept["status"], "valid", "{kept}");
    assert_eq!(row_counts(&app).await, before, "verify wrote something");

    // The tail from three entries before the mailed one is deleted with its
    // checkpoints, and the head is set to what is left: consistent.
    let cut = mailed_seq - 3;
    let rows = entry_rows(&app, tenant.id).await;
    let last_hash: String = rows[(cut - 1) as usize].try_get("", "hash").unwrap();
    as_database_owner(
        &app,
        vec![
            sql(
                &app,
                "DELETE FROM history_entries WHERE tenant_id = {1} AND seq > {2}",
                vec![tenant.id.into(), cut.into()],
            ),
            sql(
                &app,
                "DELETE FROM history_signatures WHERE tenant_id = {1} AND seq > {2}",
                vec![tenant.id.into(), cut.into()],
            ),
            set_head(&app, tenant.id, cut, &last_hash),
        ],
    )
    .await;
    let unaware = app.get("/v1/history/verify", &auditor).await.assert(200);
    assert_eq!(
        unaware["valid"], true,
        "without a kept checkpoint the cut is invisible: {unaware}"
    );
    let caught = app
        .post("/v1/history/verify", &auditor, mailed)
        .await
        .assert(200);
    assert_eq!(caught["valid"], false, "{caught}");
    assert_eq!(caught["status"], "truncated", "{caught}");
    assert_eq!(caught["first_broken_seq"], cut + 1, "{caught}");
    assert_eq!(
        caught["problems"][0]["checkpoint_seq"], mailed_seq,
        "{caught}"
    );

    // The export taken now, checked offline: whole by itself, cut short by the mail.
    offline_verdicts(&app, &auditor, &line, "truncated").await;
}

async fn a_rewritten_chain_is_reported_by_the_mailed_checkpoint(app: TestApp, sink: SmtpSink) {
    let (tenant, auditor, line) = witnessed(&app, &sink, "rewrite").await;
    let mailed: Value = serde_json::from_str(&line).unwrap();
    let mailed_seq = mailed["checkpoints"][0]["seq"].as_i64().unwrap();
    // Entry 3 forged, every hash after it recomputed, the checkpoints deleted.
    let mut statements = rewrite_from(&app, tenant.id, 3, json!({"forged": true})).await;
    statements.push(sql(
        &app,
        "DELETE FROM history_signatures WHERE tenant_id = {1}",
        vec![tenant.id.into()],
    ));
    as_database_owner(&app, statements).await;
    let unaware = app.get("/v1/history/verify", &auditor).await.assert(200);
    assert_eq!(unaware["valid"], true, "{unaware}");
    let caught = app
        .post("/v1/history/verify", &auditor, mailed)
        .await
        .assert(200);
    assert_eq!(caught["status"], "rewritten", "{caught}");
    assert_eq!(
        caught["first_broken_seq"], 1,
        "no checkpoint vouches for anything before: {caught}"
    );
    assert_eq!(
        caught["problems"][0]["checkpoint_seq"], mailed_seq,
        "{caught}"
    );

    offline_verdicts(&app, &auditor, &line, "rewritten").await;
}

async fn auditors_are_mailed_once_a_day_and_only_with_news(app: TestApp, sink: SmtpSink) {
    let (tenant, _, _) = witnessed(&app, &sink, "daily").await;
    let witnesses = |sink: &SmtpSink| {
        sink.received()
            .into_iter()
            .filter(|m| m.subject.contains("Signierter Stand"))
            .count()
    };
    let now = Utc::now();
    assert_eq!(
        app.store.mail_checkpoints(now).await.unwrap(),
        0,
        "nothing new"
    );
    add_keys(&app, &tenant, "N", 1).await;
    app.store.sign_heads(now).await.unwrap();
    assert_eq!(
        app.store.mail_checkpoints(now).await.unwrap(),
        0,
        "mailed today already"
    );
    // A day later (the day of the mail moved back, not the clock ahead,
    // which would hold the mail in the outbox until then).
    app.db
        .execute_unprepared("UPDATE checkpoint_mails SET day = '2000-01-01'")
        .await
        .unwrap();
    // Two replicas at once: one mail.
    let (a, b) = tokio::join!(
        app.store.mail_checkpoints(now),
        app.store.mail_checkpoints(now)
    );
    assert_eq!(a.unwrap() + b.unwrap(), 1);
    let deadline = tokio::time::Instant::now() + SmtpSink::PATIENCE;
    while witnesses(&sink) < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(TestApp::MAIL_EVERY).await;
    }
    tokio::time::sleep(TestApp::MAIL_EVERY * 5).await;
    let to_auditor: Vec<_> = sink
        .received()
        .into_iter()
        .filter(|m| m.subject.contains("Signierter Stand"))
        .collect();
    assert_eq!(to_auditor.len(), 2, "{to_auditor:#?}");
    assert!(
        to_auditor
            .iter()
            .all(|m| m.rcpt_tos.len() == 1 && m.rcpt_tos[0].starts_with("audit@"))
    );
}

async fn kept_checkpoints_must_be_well_formed_and_of_the_tenant(app: TestApp) {
    let tenant = app.tenant("kept", false).await;
    let other = app.tenant("kept-other", false).await;
    app.store.sign_heads(Utc::now()).await.unwrap();
    let theirs = app
        .get("/v1/history/checkpoints", &other.admin)
        .await
        .assert(200);
    let theirs = theirs["items"][0].clone();
    assert_eq!(theirs["tenant_id"], json!(other.id));
    let reply = app
        .post(
            "/v1/history/verify",
            &tenant.admin,
            json!({"checkpoints": [theirs]}),
        )
        .await;
    reply.assert_status(422);
    assert_eq!(reply.code(), "validation_failed");
    assert_eq!(
        reply.body["errors"][0]["pointer"], "/checkpoints/0/tenant_id",
        "{}",
        reply.body
    );
    assert_eq!(reply.body["errors"][0]["code"], "other_tenant");

    let ours = app
        .get("/v1/history/checkpoints?limit=1", &tenant.admin)
        .await
        .assert(200);
    let good = ours["items"][0].clone();
    let mut unsigned = good.clone();
    unsigned.as_object_mut().unwrap().remove("signature");
    let mut garbled = good.clone();
    garbled["hash"] = json!("xyz");
    garbled["seq"] = json!(0);
    let reply = app
        .post(
            "/v1/history/verify",
            &tenant.admin,
            json!({"checkpoints": [good, unsigned, 7, garbled]}),
        )
        .await;
    reply.assert_status(422);
    let pointers: Vec<&str> = reply.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(
        pointers,
        [
            "/checkpoints/1/signature",
            "/checkpoints/2",
            "/checkpoints/3/seq",
            "/checkpoints/3/hash"
        ],
        "{}",
        reply.body
    );
}

async fn only_administrators_and_auditors_reach_checkpoints_and_exports(app: TestApp) {
    let tenant = app.tenant("reach", false).await;
    let reply = app
        .get("/v1/history/export?format=csv", &tenant.admin)
        .await;
    assert_eq!(
        (reply.status.as_u16(), reply.code()),
        (422, "validation_failed")
    );
    let (_, approver) = app
        .person(&tenant, "APP-1", &["approver"], Some("a@reach.example"))
        .await;
    for path in [
        "/v1/history/checkpoints",
        "/v1/history/signing-keys",
        "/v1/history/export?format=jsonl",
        "/v1/history/verify",
    ] {
        let reply = app.get(path, &approver).await;
        assert_eq!(
            (reply.status.as_u16(), reply.code()),
            (403, "forbidden"),
            "{path}"
        );
    }
    let exported = app
        .get("/v1/history?action=history.exported", &tenant.admin)
        .await
        .assert(200);
    assert!(
        exported["items"].as_array().unwrap().is_empty(),
        "a refused export is not recorded"
    );
    let (_, auditor) = app
        .person(&tenant, "AUD-1", &["auditor"], Some("b@reach.example"))
        .await;
    for path in [
        "/v1/history/checkpoints",
        "/v1/history/signing-keys",
        "/v1/history/verify",
    ] {
        app.get(path, &auditor).await.assert(200);
    }
    let export = app.get("/v1/history/export?format=jsonl", &auditor).await;
    export.assert_status(200);
    let exported = app
        .get("/v1/history?action=history.exported", &tenant.admin)
        .await
        .assert(200);
    assert_eq!(exported["items"][0]["details"], json!({"format": "jsonl"}));
}

on_both_databases_with_smtp!(
    a_cut_off_tail_is_reported_by_the_mailed_checkpoint,
    a_rewritten_chain_is_reported_by_the_mailed_checkpoint,
    auditors_are_mailed_once_a_day_and_only_with_news,
);

on_both_databases!(
    kept_checkpoints_must_be_well_formed_and_of_the_tenant,
    only_administrators_and_auditors_reach_checkpoints_and_exports,
);

/// Checkpoints of a retired key still verify, and the key is listed.
async fn retired_keys_still_verify(backend: Backend) {
    let retired = Arc::new(HistorySigner::generate());
    let public = retired.public_key().to_base64();
    let (app, _) = TestApp::spawn_with(backend, |c| c.history_retired_keys = public.clone()).await;
    let tenant = app.tenant("retired", false).await;
    let revocations = Arc::new(RevocationList::local(app.db.clone()).await.unwrap());
    let before_rotation = Store::new(
        app.db.clone(),
        Arc::new(SystemClock),
        revocations,
        app.base.clone(),
    )
    .with_history_signer(retired.clone());
    assert_eq!(before_rotation.sign_heads(Utc::now()).await.unwrap(), 1);
    let verified = app
        .get("/v1/history/verify", &tenant.admin)
        .await
        .assert(200);
    assert_eq!(verified["status"], "valid", "{verified}");
    assert_eq!(verified["signatures_checked"], 1);
    let keys = app
        .get("/v1/history/signing-keys", &tenant.admin)
        .await
        .assert(200);
    let listed: Vec<(Value, Value)> = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["key_id"].clone(), k["current"].clone()))
        .collect();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1], (json!(retired.key_id()), json!(false)));
    assert_eq!(listed[0].1, json!(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retired_keys_still_verify_on_sqlite() {
    retired_keys_still_verify(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retired_keys_still_verify_on_postgres() {
    retired_keys_still_verify(Backend::Postgres).await;
}
