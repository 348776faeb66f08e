//! The e-mail outbox: mails queued in a change's transaction reach a real SMTP
//! server exactly once, in the tenant's language, and survive an outage.

use std::collections::HashSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use countersign_domain::notification::{Notice, RequestSummary};
use countersign_domain::workflow::TargetType;
use countersign_infra::mail::{DeliveryReport, Mailer, MailerSettings, enqueue_for_tenant};
use countersign_tests::{
    SmtpSink, Tenant, TestApp, on_both_databases, on_both_databases_with_smtp,
};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::json;
use uuid::Uuid;

on_both_databases_with_smtp!(
    mails_reach_the_smtp_server_once_in_the_tenants_language,
    mails_wait_out_an_smtp_outage,
    two_workers_never_send_a_mail_twice,
);
on_both_databases!(
    without_smtp_mails_are_written_to_the_mail_folder,
    unsendable_mails_are_given_up,
);

fn request(id: Uuid) -> RequestSummary {
    RequestSummary {
        id,
        target_type: TargetType::Key,
        target_marking: "K-17".into(),
        target_name: "Schlüssel Müller".into(),
        requested_by: "Ada Admin".into(),
        // 13:30 in Berlin (CET).
        requested_at: Utc.with_ymd_and_hms(2025, 1, 15, 12, 30, 0).unwrap(),
        comment: Some("Türöffnungen prüfen".into()),
    }
}

fn approval_requested(id: Uuid) -> Notice {
    Notice::ApprovalRequested {
        request: request(id),
    }
}

async fn queue(
    app: &TestApp,
    tenant: &Tenant,
    recipients: &[String],
    notice: &Notice,
    now: DateTime<Utc>,
) {
    enqueue_for_tenant(&app.db, tenant.id, recipients, notice, &app.base, now)
        .await
        .unwrap();
}

fn addresses(prefix: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| format!("{prefix}-{i}@mail.example"))
        .collect()
}

/// An outbox row as the tests see it.
#[derive(Debug)]
struct Row {
    recipient: String,
    status: String,
    attempts: i32,
    last_error: Option<String>,
    sent: bool,
}

async fn outbox(db: &DatabaseConnection, recipients: &[String]) -> Vec<Row> {
    let sql = "SELECT recipient, status, attempts, last_error, sent_at IS NOT NULL AS sent FROM mail_outbox";
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap();
    rows.into_iter()
        .map(|r| Row {
            recipient: r.try_get("", "recipient").unwrap(),
            status: r.try_get("", "status").unwrap(),
            attempts: r.try_get("", "attempts").unwrap(),
            last_error: r.try_get("", "last_error").unwrap(),
            sent: r.try_get("", "sent").unwrap(),
        })
        .filter(|r| recipients.contains(&r.recipient))
        .collect()
}

/// Polls the outbox rows of `recipients` until `done` holds for all of them.
async fn wait_until(
    db: &DatabaseConnection,
    recipients: &[String],
    what: &str,
    done: impl Fn(&Row) -> bool,
) -> Vec<Row> {
    let deadline = tokio::time::Instant::now() + SmtpSink::PATIENCE;
    loop {
        let rows = outbox(db, recipients).await;
        if rows.len() == recipients.len() && rows.iter().all(&done) {
            return rows;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "outbox rows not {what}: {rows:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Makes every pending mail due now, as if its backoff had passed.
async fn make_due(db: &DatabaseConnection) {
    let update = Query::update()
        .table(Alias::new("mail_outbox"))
        .value(Alias::new("next_attempt_at"), Utc::now())
        .and_where(Expr::col(Alias::new("status")).eq("pending"))
        .to_owned();
    db.execute(&update).await.unwrap();
}

/// Asserts that each of `recipients` got exactly one mail, and nobody a copy.
fn assert_each_received_once(sink: &SmtpSink, recipients: &[String]) {
    let mails: Vec<_> = sink
        .received()
        .into_iter()
        .filter(|m| m.rcpt_tos.iter().any(|r| recipients.contains(r)))
        .collect();
    assert_eq!(mails.len(), recipients.len(), "{mails:#?}");
    let got: HashSet<_> = mails.iter().flat_map(|m| m.rcpt_tos.clone()).collect();
    assert_eq!(got, recipients.iter().cloned().collect::<HashSet<_>>());
    let ids: HashSet<_> = mails.iter().map(|m| m.message_id.clone()).collect();
    assert_eq!(ids.len(), mails.len(), "a mail was sent twice: {mails:#?}");
}

/// Gives a worker that would send a mail twice the time to do it.
async fn settle() {
    tokio::time::sleep(TestApp::MAIL_EVERY * 5).await;
}

fn mailer(
    db: DatabaseConnection,
    smtp_url: Option<String>,
    mail_dir: &std::path::Path,
    max_attempts: u32,
) -> Mailer {
    let settings = MailerSettings {
        smtp_url,
        mail_dir: mail_dir.to_owned(),
        from: "Countersign Test <outbox@countersign.test>".into(),
        max_attempts,
    };
    Mailer::new(db, &settings).unwrap()
}

/// A pool of its own on the same database, as another replica would have.
async fn another_replica(app: &TestApp) -> DatabaseConnection {
    match app.db.get_database_backend() {
        sea_orm::DbBackend::Postgres => {
            let options = (*app.db.get_postgres_connection_pool().connect_options()).clone();
            let pool = sea_orm::sqlx::postgres::PgPoolOptions::new()
                .max_connections(4)
                .connect_with(options)
                .await
                .unwrap();
            sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(pool)
        }
        // SQLite has one writer: a second worker shares the pool.
        _ => app.db.clone(),
    }
}

async fn mails_reach_the_smtp_server_once_in_the_tenants_language(app: TestApp, sink: SmtpSink) {
    let german = app.tenant("mail-de", true).await;
    let english = app.tenant("mail-en", true).await;
    let operator = app.operator().await;
    app.patch(
        &format!("/v1/tenants/{}", english.id),
        &operator,
        json!({"locale": "en"}),
    )
    .await
    .assert(200);
    let id = Uuid::now_v7();
    let to_german = vec!["anna@de.example".to_owned(), "bernd@de.example".to_owned()];
    let to_english = vec!["carol@en.example".to_owned()];
    queue(
        &app,
        &german,
        &to_german,
        &approval_requested(id),
        Utc::now(),
    )
    .await;
    queue(
        &app,
        &english,
        &to_english,
        &approval_requested(id),
        Utc::now(),
    )
    .await;

    let mail = sink.wait_for("anna@de.example", "Freigabe erbeten").await;
    assert_eq!(
        mail.subject,
        "Freigabe erbeten: Ereignisspeicher von Schlüssel K-17 (Schlüssel Müller)"
    );
    assert!(
        mail.from.contains("noreply@countersign.invalid"),
        "{}",
        mail.from
    );
    for text in [
        "Guten Tag,",
        "Ada Admin bittet darum",
        "Kommentar: Türöffnungen prüfen",
        "Beantragt am: 15.01.2025, 13:30 CET",
    ] {
        assert!(
            mail.body.contains(text),
            "`{text}` missing in {}",
            mail.body
        );
    }
    assert!(
        mail.body.contains(&format!("{}/requests/{id}\n", app.base)),
        "{}",
        mail.body
    );
    sink.wait_for("bernd@de.example", "Freigabe erbeten").await;
    let mail = sink
        .wait_for("carol@en.example", "Approval requested")
        .await;
    assert_eq!(
        mail.subject,
        "Approval requested: event log of key K-17 (Schlüssel Müller)"
    );
    assert!(
        mail.body.contains("Requested at: 2025-01-15 13:30 CET"),
        "{}",
        mail.body
    );
    assert!(!mail.body.contains("Guten Tag"), "{}", mail.body);

    let everyone = [to_german, to_english].concat();
    let rows = wait_until(&app.db, &everyone, "sent", |r| r.status == "sent").await;
    assert!(
        rows.iter()
            .all(|r| r.sent && r.attempts == 1 && r.last_error.is_none()),
        "{rows:#?}"
    );
    settle().await;
    assert_each_received_once(&sink, &everyone);
}

async fn mails_wait_out_an_smtp_outage(app: TestApp, sink: SmtpSink) {
    let tenant = app.tenant("mail-outage", true).await;
    sink.stop().await;
    let recipients = addresses("outage", 3);
    queue(
        &app,
        &tenant,
        &recipients,
        &approval_requested(Uuid::now_v7()),
        Utc::now(),
    )
    .await;

    let rows = wait_until(&app.db, &recipients, "tried once", |r| r.attempts >= 1).await;
    assert!(
        rows.iter()
            .all(|r| r.status == "pending" && !r.sent && r.last_error.is_some()),
        "{rows:#?}"
    );
    make_due(&app.db).await;
    let rows = wait_until(&app.db, &recipients, "tried twice", |r| r.attempts >= 2).await;
    assert!(
        rows.iter().all(|r| r.status == "pending" && !r.sent),
        "{rows:#?}"
    );
    assert!(sink.received().is_empty());

    sink.restart().await;
    make_due(&app.db).await;
    let rows = wait_until(&app.db, &recipients, "sent", |r| r.status == "sent").await;
    assert!(rows.iter().all(|r| r.sent && r.attempts >= 3), "{rows:#?}");
    settle().await;
    assert_each_received_once(&sink, &recipients);
}

async fn two_workers_never_send_a_mail_twice(app: TestApp, sink: SmtpSink) {
    let tenant = app.tenant("mail-race", true).await;
    let recipients = addresses("race", 25);
    // Due only in an hour: the app's own worker leaves them to the two below.
    let later = Utc::now() + Duration::hours(1);
    queue(
        &app,
        &tenant,
        &recipients,
        &approval_requested(Uuid::now_v7()),
        later,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let first = mailer(app.db.clone(), Some(sink.url()), dir.path(), 20);
    let second = mailer(
        another_replica(&app).await,
        Some(sink.url()),
        dir.path(),
        20,
    );

    let at = later + Duration::minutes(1);
    let (a, b) = tokio::join!(first.deliver_due(at), second.deliver_due(at));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.sent + b.sent, recipients.len(), "{a:?} {b:?}");
    assert_eq!(
        (a.failed + b.failed, a.retried + b.retried),
        (0, 0),
        "{a:?} {b:?}"
    );
    let (a, b) = tokio::join!(first.deliver_due(at), second.deliver_due(at));
    assert_eq!(
        (a.unwrap(), b.unwrap()),
        (DeliveryReport::default(), DeliveryReport::default())
    );

    let rows = outbox(&app.db, &recipients).await;
    assert!(
        rows.iter().all(|r| r.status == "sent" && r.attempts == 1),
        "{rows:#?}"
    );
    sink.wait_for_count(recipients.len()).await;
    settle().await;
    assert_each_received_once(&sink, &recipients);
}

async fn without_smtp_mails_are_written_to_the_mail_folder(app: TestApp) {
    let tenant = app.tenant("mail-files", false).await;
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("not/yet/there");
    let files = mailer(app.db.clone(), None, &folder, 20);
    let recipients = addresses("files", 1);
    let later = Utc::now() + Duration::hours(1);
    queue(
        &app,
        &tenant,
        &recipients,
        &Notice::ApproverRoleChanged {
            programming_key_marking: "PK-7".into(),
            holder: None,
            granted: true,
        },
        later,
    )
    .await;

    let report = files.deliver_due(later).await.unwrap();
    assert_eq!(
        report,
        DeliveryReport {
            sent: 1,
            failed: 0,
            retried: 0
        }
    );
    let written: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(written.len(), 1, "{written:?}");
    let text = std::fs::read_to_string(&written[0]).unwrap();
    assert!(text.contains("To: files-0@mail.example"), "{text}");
    assert!(
        text.contains("From: \"Countersign Test\" <outbox@countersign.test>"),
        "{text}"
    );
    let rows = outbox(&app.db, &recipients).await;
    assert!(rows[0].status == "sent" && rows[0].sent, "{rows:#?}");
}

async fn unsendable_mails_are_given_up(app: TestApp) {
    let tenant = app.tenant("mail-refused", false).await;
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let nowhere = mailer(
        app.db.clone(),
        Some(format!("smtp://127.0.0.1:{closed}")),
        dir.path(),
        2,
    );
    let good = addresses("refused", 1);
    let bad = vec!["not an address".to_owned()];
    let later = Utc::now() + Duration::hours(1);
    let notice = approval_requested(Uuid::now_v7());
    queue(
        &app,
        &tenant,
        &[good.clone(), bad.clone()].concat(),
        &notice,
        later,
    )
    .await;

    let report = nowhere.deliver_due(later).await.unwrap();
    assert_eq!(
        report,
        DeliveryReport {
            sent: 0,
            failed: 1,
            retried: 1
        }
    );
    let rows = outbox(&app.db, &bad).await;
    assert!(
        rows[0].status == "failed" && rows[0].attempts == 1 && rows[0].last_error.is_some(),
        "{rows:#?}"
    );
    let rows = outbox(&app.db, &good).await;
    assert!(
        rows[0].status == "pending" && rows[0].attempts == 1 && rows[0].last_error.is_some(),
        "{rows:#?}"
    );

    // Not due again before its backoff (5 s ± 20 %) has passed.
    assert_eq!(
        nowhere
            .deliver_due(later + Duration::seconds(3))
            .await
            .unwrap(),
        DeliveryReport::default()
    );
    let report = nowhere
        .deliver_due(later + Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(
        report,
        DeliveryReport {
            sent: 0,
            failed: 1,
            retried: 0
        }
    );
    let rows = outbox(&app.db, &good).await;
    assert!(
        rows[0].status == "failed" && rows[0].attempts == 2 && !rows[0].sent,
        "{rows:#?}"
    );
}
