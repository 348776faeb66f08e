//! The approval workflow of SPEC §4 end to end.

use countersign_domain::ports::Sweeper;
use countersign_domain::ports::{EventData, EventRecord};
use countersign_domain::tenant::TenantId;
use countersign_domain::workflow::TargetType;
use countersign_tests::{
    Backend, SmtpSink, Tenant, TestApp, on_both_databases, on_both_databases_with_smtp,
};
use serde_json::{Value, json};

/// A tenant with the approver function and `approvals` approvers required.
async fn tenant_requiring(app: &TestApp, approvals: u8) -> Tenant {
    app.tenant_with("req", json!({"approvals_required": approvals}))
        .await
}

async fn issued_key(app: &TestApp, tenant: &Tenant, marking: &str, model: &str) -> String {
    app.issued_key(tenant, marking, model).await
}

async fn request(app: &TestApp, token: &str, target: &str, id: &str) -> countersign_tests::Reply {
    app.post(
        "/v1/event-log-requests",
        token,
        json!({"target": {"type": target, "id": id}, "comment": "theft at gate 3"}),
    )
    .await
}

fn path(request: &Value, action: &str) -> String {
    format!(
        "/v1/event-log-requests/{}/{action}",
        request["id"].as_str().unwrap()
    )
}

async fn a_key_request_needs_a_second_person(app: TestApp) {
    let tenant = tenant_requiring(&app, 1).await;
    let key = issued_key(&app, &tenant, "K-1", "e3").await;
    let (_, requester) = app
        .person(
            &tenant,
            "REQ-1",
            &["system_administrator", "approver"],
            Some("req@example.org"),
        )
        .await;
    let (approver_id, approver) = app
        .person(&tenant, "APP-1", &["approver"], Some("app@example.org"))
        .await;

    let created = request(&app, &requester, "key", &key).await.assert(201);
    assert_eq!(created["status"], "pending_approval");
    assert_eq!(created["target"]["marking"], "K-1");
    assert_eq!(created["comment"], "theft at gate 3");
    assert!(created["job"].is_null());
    assert_eq!(
        request(&app, &tenant.admin, "key", &key).await.code(),
        "request_already_open"
    );

    let own = app
        .post(&path(&created, "approve"), &requester, json!({}))
        .await;
    assert_eq!((own.status.as_u16(), own.code()), (403, "self_approval"));
    let admin_decides = app
        .post(&path(&created, "approve"), &tenant.admin, json!({}))
        .await;
    assert_eq!(
        admin_decides.status, 403,
        "a super administrator never decides"
    );

    let inbox = app
        .get("/v1/event-log-requests?status=pending_approval", &approver)
        .await
        .assert(200);
    assert_eq!(inbox["items"].as_array().map(Vec::len), Some(1));
    let approved = app
        .post(
            &path(&created, "approve"),
            &approver,
            json!({"comment": "ok, council informed"}),
        )
        .await
        .assert(200);
    assert_eq!(approved["status"], "approved");
    let decision = &approved["decisions"][0];
    assert_eq!(
        (decision["decision"].as_str(), decision["comment"].as_str()),
        (Some("approve"), Some("ok, council informed"))
    );
    assert_eq!(
        decision["approver"]["programming_key_id"],
        approver_id.to_string()
    );
    assert_eq!(decision["approver"]["name"], "Holder of APP-1");
    assert_eq!(
        (
            approved["job"]["status"].as_str(),
            approved["job"]["kind"].as_str()
        ),
        (Some("queued"), Some("request_readout"))
    );

    let late = app
        .post(&path(&created, "reject"), &approver, json!({}))
        .await;
    assert_eq!(
        (late.status.as_u16(), late.code()),
        (409, "request_not_pending")
    );
    let jobs = app
        .get("/v1/readout-jobs?status=queued", &tenant.admin)
        .await
        .assert(200);
    assert_eq!(jobs["items"][0]["target"]["marking"], "K-1");
    assert_eq!(
        app.get("/v1/readout-jobs", &approver).await.status,
        403,
        "approvers see no jobs"
    );
}

/// Approvers' inboxes are kept between reads while the tenant's requests do
/// not change; a change made through another replica shows in this one's
/// next read (woken through Redis well before a kept page would expire).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbox_follows_changes_made_through_another_replica() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let other = app.replica().await;
    let tenant = tenant_requiring(&app, 1).await;
    let (_, requester) = app
        .person(&tenant, "REQ-1", &["system_administrator"], None)
        .await;
    let (_, approver) = app
        .person(&tenant, "APP-1", &["approver"], Some("app@example.org"))
        .await;
    let inbox = || async {
        let page = app
            .get(
                "/v1/event-log-requests?status=pending_approval&limit=50",
                &approver,
            )
            .await
            .assert(200);
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    // Well below the five seconds a kept page may live without a wake-up.
    let within_a_second = |expected: bool, id: String| {
        let inbox = &inbox;
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
            loop {
                if inbox().await.contains(&id) == expected {
                    return;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the inbox did not follow the other replica (request {id} listed: {})",
                    !expected
                );
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    };
    assert!(inbox().await.is_empty());
    for round in 0..5 {
        let key = issued_key(&app, &tenant, &format!("K-{round}"), "e3").await;
        assert!(inbox().await.is_empty(), "kept and read again");
        let created = request(&other, &requester, "key", &key).await.assert(201);
        let id = created["id"].as_str().unwrap().to_owned();
        within_a_second(true, id.clone()).await;
        other
            .post(&path(&created, "approve"), &approver, json!({}))
            .await
            .assert(200);
        within_a_second(false, id).await;
    }
}

async fn one_rejection_ends_it_and_cancellation_is_final(app: TestApp) {
    let tenant = tenant_requiring(&app, 2).await;
    let key = issued_key(&app, &tenant, "K-2", "e2").await;
    let (_, a) = app
        .person(&tenant, "APP-A", &["approver"], Some("a@example.org"))
        .await;
    let (_, b) = app
        .person(&tenant, "APP-B", &["approver"], Some("b@example.org"))
        .await;

    let first = request(&app, &tenant.admin, "key", &key).await.assert(201);
    assert_eq!(first["approvals_required"], 2);
    let once = app
        .post(&path(&first, "approve"), &a, json!({}))
        .await
        .assert(200);
    assert_eq!(once["status"], "pending_approval", "one approval of two");
    let twice = app.post(&path(&first, "approve"), &a, json!({})).await;
    assert_eq!(
        (twice.status.as_u16(), twice.code()),
        (409, "already_decided")
    );
    let rejected = app
        .post(
            &path(&first, "reject"),
            &b,
            json!({"comment": "no reason given"}),
        )
        .await
        .assert(200);
    assert_eq!(rejected["status"], "rejected");
    assert!(rejected["job"].is_null());

    let second = request(&app, &tenant.admin, "key", &key).await.assert(201);
    app.post(&path(&second, "approve"), &a, json!({}))
        .await
        .assert(200);
    let done = app
        .post(&path(&second, "approve"), &b, json!({}))
        .await
        .assert(200);
    assert_eq!(
        (
            done["status"].as_str(),
            done["decisions"].as_array().map(Vec::len)
        ),
        (Some("approved"), Some(2))
    );
    let cancelled = app
        .post(
            &path(&second, "cancel"),
            &tenant.admin,
            json!({"reason": "wrong key"}),
        )
        .await
        .assert(200);
    assert_eq!(
        (
            cancelled["status"].as_str(),
            cancelled["job"]["status"].as_str()
        ),
        (Some("cancelled"), Some("cancelled"))
    );
    assert_eq!(
        app.post(&path(&second, "cancel"), &tenant.admin, json!({}))
            .await
            .status,
        409
    );
    assert_eq!(
        app.post(&path(&second, "approve"), &a, json!({}))
            .await
            .code(),
        "request_not_pending"
    );
}

async fn requests_are_refused_when_they_cannot_be_served(app: TestApp) {
    let tenant = tenant_requiring(&app, 1).await;
    let logging = issued_key(&app, &tenant, "K-3", "e3").await;
    let none = request(&app, &tenant.admin, "key", &logging).await;
    assert_eq!(
        (none.status.as_u16(), none.code()),
        (409, "no_approver_available")
    );

    let (_, approver) = app
        .person(
            &tenant,
            "SELF-1",
            &["system_administrator", "approver"],
            Some("self@example.org"),
        )
        .await;
    let alone = request(&app, &approver, "key", &logging).await;
    assert_eq!(
        alone.code(),
        "no_approver_available",
        "the requester cannot approve their own request"
    );

    let (blocked_id, _) = app
        .person(&tenant, "APP-X", &["approver"], Some("x@example.org"))
        .await;
    app.post(
        &format!("/v1/programming-keys/{blocked_id}/block"),
        &tenant.admin,
        json!({}),
    )
    .await
    .assert(200);
    assert_eq!(
        request(&app, &approver, "key", &logging).await.code(),
        "no_approver_available",
        "a blocked approver cannot act"
    );

    app.person(&tenant, "APP-Y", &["approver"], Some("y@example.org"))
        .await;
    let basic = issued_key(&app, &tenant, "K-4", "basic").await;
    let reply = request(&app, &tenant.admin, "key", &basic).await;
    assert_eq!((reply.status.as_u16(), reply.code()), (422, "no_event_log"));
    let stock = app
        .post(
            "/v1/keys",
            &tenant.admin,
            json!({"marking": "K-5", "name": "K", "model": "e2"}),
        )
        .await
        .assert(201);
    let reply = request(&app, &tenant.admin, "key", stock["id"].as_str().unwrap()).await;
    assert_eq!(
        (reply.status.as_u16(), reply.code()),
        (422, "key_not_issued")
    );
    let missing = request(
        &app,
        &tenant.admin,
        "key",
        &uuid::Uuid::new_v4().to_string(),
    )
    .await;
    assert_eq!(missing.status, 404);
    let (_, auditor) = app
        .person(&tenant, "AUD-1", &["auditor"], Some("aud@example.org"))
        .await;
    assert_eq!(request(&app, &auditor, "key", &logging).await.status, 403);
    app.get("/v1/event-log-requests", &auditor)
        .await
        .assert(200);
    let (_, receptionist) = app.person(&tenant, "REC-1", &["receptionist"], None).await;
    assert_eq!(
        app.get("/v1/event-log-requests", &receptionist)
            .await
            .status,
        403
    );
    assert_eq!(
        app.get("/v1/event-log-requests", &tenant.admin)
            .await
            .assert(200)["items"]
            .as_array()
            .map(Vec::len),
        Some(0),
        "refused requests leave nothing behind"
    );
}

async fn a_cylinder_request_is_transferred_to_a_cylinder_programmer(app: TestApp) {
    let tenant = tenant_requiring(&app, 1).await;
    let (_, approver) = app
        .person(&tenant, "APP-1", &["approver"], Some("app@example.org"))
        .await;
    let (programmer_id, programmer) = app
        .person(
            &tenant,
            "CYL-1",
            &["cylinder_programmer"],
            Some("cyl@example.org"),
        )
        .await;
    let (auditor_id, _) = app.person(&tenant, "AUD-1", &["auditor"], None).await;
    let cylinder = app
        .post(
            "/v1/cylinders",
            &tenant.admin,
            json!({"marking": "C-1", "name": "Gate"}),
        )
        .await
        .assert(201);
    let created = request(
        &app,
        &tenant.admin,
        "cylinder",
        cylinder["id"].as_str().unwrap(),
    )
    .await
    .assert(201);
    let early = app
        .post(
            &path(&created, "transfer"),
            &tenant.admin,
            json!({"programming_key_id": programmer_id}),
        )
        .await;
    assert_eq!(early.status, 409, "not approved yet");
    let approved = app
        .post(&path(&created, "approve"), &approver, json!({}))
        .await
        .assert(200);
    assert_eq!(approved["job"]["status"], "awaiting_transfer");
    let wrong_role = app
        .post(
            &path(&created, "transfer"),
            &tenant.admin,
            json!({"programming_key_id": auditor_id}),
        )
        .await;
    assert_eq!(
        (wrong_role.status.as_u16(), wrong_role.code()),
        (422, "invalid_role")
    );
    let transferred = app
        .post(
            &path(&created, "transfer"),
            &tenant.admin,
            json!({"programming_key_id": programmer_id}),
        )
        .await
        .assert(200);
    assert_eq!(transferred["job"]["status"], "transferred");
    assert_eq!(
        transferred["job"]["programming_key_id"],
        programmer_id.to_string()
    );
    let own = app.get("/v1/readout-jobs", &programmer).await.assert(200);
    assert_eq!(
        own["items"].as_array().map(Vec::len),
        Some(1),
        "a cylinder programmer sees the jobs on its key"
    );
    let job_id = own["items"][0]["id"].as_str().unwrap();
    app.get(&format!("/v1/readout-jobs/{job_id}"), &programmer)
        .await
        .assert(200);
}

async fn without_the_approver_function_requests_are_approved_at_once(app: TestApp) {
    let tenant = app.tenant("free", false).await;
    let key = issued_key(&app, &tenant, "K-7", "e2").await;
    let created = request(&app, &tenant.admin, "key", &key).await.assert(201);
    assert_eq!(
        (
            created["status"].as_str(),
            created["job"]["status"].as_str()
        ),
        (Some("approved"), Some("queued"))
    );
    assert!(created["decisions"].as_array().unwrap().is_empty());
    let shown = app
        .get(&format!("/v1/keys/{key}"), &tenant.admin)
        .await
        .assert(200);
    assert_eq!(
        shown["auto_collection"], true,
        "issuing a logging key starts automatic collection"
    );
    let stopped = app
        .post(
            &format!("/v1/keys/{key}/auto-collection/stop"),
            &tenant.admin,
            json!({}),
        )
        .await
        .assert(200);
    assert_eq!(stopped["auto_collection"], false);

    let strict = tenant_requiring(&app, 1).await;
    let strict_key = issued_key(&app, &strict, "K-8", "e3").await;
    let shown = app
        .get(&format!("/v1/keys/{strict_key}"), &strict.admin)
        .await
        .assert(200);
    assert_eq!(
        shown["auto_collection"], false,
        "no automatism with the approver function"
    );
    let refused = app
        .post(
            &format!("/v1/keys/{strict_key}/auto-collection/stop"),
            &strict.admin,
            json!({}),
        )
        .await;
    assert_eq!(refused.status, 409);
}

async fn desk_readouts_need_no_approval(app: TestApp) {
    let tenant = tenant_requiring(&app, 1).await;
    let key = issued_key(&app, &tenant, "K-9", "e3").await;
    let desk = app
        .post(
            "/v1/remote-devices",
            &tenant.admin,
            json!({"name": "Desk", "kind": "desk_unit", "serial": "DU-1"}),
        )
        .await
        .assert(201);
    let wall = app
        .post(
            "/v1/remote-devices",
            &tenant.admin,
            json!({"name": "Wall", "kind": "remote_unit", "serial": "RU-1"}),
        )
        .await
        .assert(201);
    let job = app
        .post(
            &format!("/v1/keys/{key}/desk-readout"),
            &tenant.admin,
            json!({"device_id": desk["id"]}),
        )
        .await
        .assert(201);
    assert_eq!(
        (job["kind"].as_str(), job["status"].as_str()),
        (Some("desk_readout"), Some("queued"))
    );
    assert_eq!(job["device_id"], desk["id"]);
    let wrong = app
        .post(
            &format!("/v1/keys/{key}/desk-readout"),
            &tenant.admin,
            json!({"device_id": wall["id"]}),
        )
        .await;
    assert_eq!(wrong.status, 422);
}

async fn pending_and_approved_requests_expire(app: TestApp) {
    let tenant = tenant_requiring(&app, 1).await;
    let (_, approver) = app
        .person(&tenant, "APP-1", &["approver"], Some("app@example.org"))
        .await;
    let pending_key = issued_key(&app, &tenant, "K-10", "e3").await;
    let approved_key = issued_key(&app, &tenant, "K-11", "e3").await;
    let pending = request(&app, &tenant.admin, "key", &pending_key)
        .await
        .assert(201);
    let approved = request(&app, &tenant.admin, "key", &approved_key)
        .await
        .assert(201);
    app.post(&path(&approved, "approve"), &approver, json!({}))
        .await
        .assert(200);

    let store = &app.store;
    let now = chrono::Utc::now();
    assert_eq!(
        store.sweep(now).await.unwrap().requests_expired,
        0,
        "nothing is due yet"
    );
    let report = store
        .sweep(now + chrono::Duration::hours(25))
        .await
        .unwrap();
    assert_eq!(
        report.requests_expired, 1,
        "the approved one after execution_ttl_hours (24)"
    );
    let report = store
        .sweep(now + chrono::Duration::hours(49))
        .await
        .unwrap();
    assert_eq!(
        report.requests_expired, 1,
        "the pending one after request_ttl_hours (48)"
    );
    for (request, job) in [(&pending, None), (&approved, Some("expired"))] {
        let shown = app
            .get(
                &format!("/v1/event-log-requests/{}", request["id"].as_str().unwrap()),
                &tenant.admin,
            )
            .await
            .assert(200);
        assert_eq!(
            (shown["status"].as_str(), shown["job"]["status"].as_str()),
            (Some("expired"), job)
        );
    }
    assert_eq!(
        store
            .sweep(now + chrono::Duration::hours(100))
            .await
            .unwrap()
            .requests_expired,
        0
    );
}

/// Expiry holds at the moment of a call: a decision after it, before any
/// sweeper came by, answers `request_expired` and expires the request then.
async fn a_decision_after_the_expiry_is_refused_and_expires_the_request(app: TestApp) {
    let tenant = tenant_requiring(&app, 1).await;
    let (_, approver) = app
        .person(&tenant, "APP-1", &["approver"], Some("app@example.org"))
        .await;
    let key = issued_key(&app, &tenant, "K-1", "e3").await;
    let pending = request(&app, &tenant.admin, "key", &key).await.assert(201);
    let id = pending["id"].as_str().unwrap();
    // Time passes beyond request_ttl_hours; no sweeper runs.
    let id_value = uuid::Uuid::parse_str(id).unwrap();
    app.let_time_pass("event_log_requests", "expires_at", id_value)
        .await;

    let refused = app
        .post(&path(&pending, "approve"), &approver, json!({}))
        .await;
    refused.assert_status(409);
    assert_eq!(refused.code(), "request_expired");
    let shown = app
        .get(&format!("/v1/event-log-requests/{id}"), &tenant.admin)
        .await
        .assert(200);
    assert_eq!(shown["status"], "expired");
    assert_eq!(shown["job"], Value::Null, "no job was created");
    assert!(shown["decisions"].as_array().unwrap().is_empty());
    let again = app
        .post(&path(&pending, "reject"), &approver, json!({}))
        .await;
    again.assert_status(409);
    assert_eq!(again.code(), "request_not_pending");
    let history = app
        .get(
            &format!("/v1/history?subject_type=event_log_request&subject_id={id}"),
            &tenant.admin,
        )
        .await
        .assert(200);
    let expired = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "request.status_changed" && e["details"]["to"] == "expired")
        .expect("the expiry is recorded");
    assert_eq!(expired["actor"]["kind"], "system");
}

/// Blocking or returning an approver is never refused and leaves pending
/// requests to the others; a failed job fails its request and tells the requester.
async fn blocked_approvers_leave_requests_to_the_others(app: TestApp) {
    let tenant = tenant_requiring(&app, 1).await;
    let (blocked_id, blocked) = app
        .person(&tenant, "APP-A", &["approver"], Some("a@example.org"))
        .await;
    let (returned_id, _) = app
        .person(&tenant, "APP-B", &["approver"], Some("b@example.org"))
        .await;
    let (_, remaining) = app
        .person(&tenant, "APP-C", &["approver"], Some("c@example.org"))
        .await;
    let key = issued_key(&app, &tenant, "K-20", "e3").await;
    let created = request(&app, &tenant.admin, "key", &key).await.assert(201);
    app.post(
        &format!("/v1/programming-keys/{blocked_id}/block"),
        &tenant.admin,
        json!({}),
    )
    .await
    .assert(200);
    app.post(
        &format!("/v1/programming-keys/{returned_id}/return"),
        &tenant.admin,
        json!({}),
    )
    .await
    .assert(200);
    let shown = app
        .get(
            &format!("/v1/event-log-requests/{}", created["id"].as_str().unwrap()),
            &tenant.admin,
        )
        .await
        .assert(200);
    assert_eq!(shown["status"], "pending_approval");
    app.post(&path(&created, "approve"), &blocked, json!({}))
        .await
        .assert_status_because(401, "a blocked key's token is ended");
    app.post(&path(&created, "approve"), &remaining, json!({}))
        .await
        .assert(200);
}

on_both_databases!(
    blocked_approvers_leave_requests_to_the_others,
    a_key_request_needs_a_second_person,
    one_rejection_ends_it_and_cancellation_is_final,
    requests_are_refused_when_they_cannot_be_served,
    a_cylinder_request_is_transferred_to_a_cylinder_programmer,
    without_the_approver_function_requests_are_approved_at_once,
    desk_readouts_need_no_approval,
    pending_and_approved_requests_expire,
    a_decision_after_the_expiry_is_refused_and_expires_the_request,
);

/// Fires 50 decisions at once: 10 approvers, 5 calls each.
async fn race(
    app: &TestApp,
    tenant: &Tenant,
    approvers: &[String],
    request: &Value,
    verdict_of: impl Fn(usize) -> &'static str,
) -> Vec<u16> {
    let mut calls = Vec::new();
    for n in 0..50 {
        let token = approvers[n % approvers.len()].clone();
        let url = path(request, verdict_of(n));
        calls.push(async move { app.post(&url, &token, json!({})).await.status.as_u16() });
    }
    let _ = tenant;
    futures::future::join_all(calls).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_decisions_are_serialised_on_postgres() {
    let app = TestApp::spawn(countersign_tests::Backend::Postgres).await;
    for approvals in [1u8, 2] {
        let tenant = tenant_requiring(&app, approvals).await;
        let mut approvers = Vec::new();
        for n in 0..10 {
            let (_, token) = app
                .person(
                    &tenant,
                    &format!("APP-{n}"),
                    &["approver"],
                    Some(&format!("a{n}@example.org")),
                )
                .await;
            approvers.push(token);
        }
        let key = issued_key(&app, &tenant, "K-RACE", "e3").await;
        let created = request(&app, &tenant.admin, "key", &key).await.assert(201);
        let statuses = race(&app, &tenant, &approvers, &created, |n| {
            if n % 7 == 3 { "reject" } else { "approve" }
        })
        .await;
        let shown = app
            .get(
                &format!("/v1/event-log-requests/{}", created["id"].as_str().unwrap()),
                &tenant.admin,
            )
            .await
            .assert(200);
        let decisions = shown["decisions"].as_array().unwrap();
        let ok = statuses.iter().filter(|s| **s == 200).count();
        assert!(
            statuses.iter().all(|s| *s == 200 || *s == 409),
            "{statuses:?}"
        );
        assert_eq!(
            ok,
            decisions.len(),
            "every stored decision was answered 200, every other call 409"
        );
        let approvals_stored = decisions
            .iter()
            .filter(|d| d["decision"] == "approve")
            .count();
        let rejections = decisions
            .iter()
            .filter(|d| d["decision"] == "reject")
            .count();
        match shown["status"].as_str() {
            Some("approved") => {
                assert_eq!((approvals_stored, rejections), (usize::from(approvals), 0))
            }
            Some("rejected") => assert_eq!(rejections, 1),
            other => panic!("unexpected status {other:?}"),
        }
        if approvals == 1 {
            assert_eq!(
                decisions.len(),
                1,
                "exactly one decision with approvals_required = 1"
            );
        } else {
            assert!(
                decisions.len() <= 2 && (approvals_stored == 2 || rejections == 1),
                "{decisions:?}"
            );
        }
    }
}

/// SPEC §4 in one walk: request, e-mail to the approvers, four eyes, approval,
/// outcome to the requester, queued job, event data read and exported, history.
async fn the_whole_approval_walk(app: TestApp, sink: SmtpSink) {
    let tenant = tenant_requiring(&app, 1).await;
    let key = issued_key(&app, &tenant, "K-100", "e3").await;
    let (requester_id, requester) = app
        .person(
            &tenant,
            "REQ-1",
            &["system_administrator", "approver"],
            Some("req@example.org"),
        )
        .await;
    let (approver_id, approver) = app
        .person(&tenant, "APP-1", &["approver"], Some("app@example.org"))
        .await;
    app.person(&tenant, "APP-2", &["approver"], Some("app2@example.org"))
        .await;

    let created = request(&app, &requester, "key", &key).await.assert(201);
    for to in ["app@example.org", "app2@example.org"] {
        let mail = sink.wait_for(to, "Freigabe erbeten").await;
        assert!(
            mail.body.contains("K-100") && mail.body.contains("theft at gate 3"),
            "{}",
            mail.body
        );
    }
    assert!(
        sink.received_for("req@example.org", "Freigabe erbeten")
            .is_empty(),
        "the requester is not asked"
    );

    let own = app
        .post(&path(&created, "approve"), &requester, json!({}))
        .await;
    assert_eq!((own.status.as_u16(), own.code()), (403, "self_approval"));
    let approved = app
        .post(
            &path(&created, "approve"),
            &approver,
            json!({"comment": "Betriebsrat einverstanden"}),
        )
        .await
        .assert(200);
    assert_eq!(
        (
            approved["status"].as_str(),
            approved["job"]["status"].as_str()
        ),
        (Some("approved"), Some("queued"))
    );
    let outcome = sink.wait_for("req@example.org", "Antrag genehmigt").await;
    assert!(outcome.body.contains("Holder of APP-1"), "{}", outcome.body);

    let t = TenantId(tenant.id);
    let start = chrono::Utc::now() - chrono::Duration::days(1);
    let events: Vec<EventRecord> = (1..=30)
        .map(|seq| EventRecord {
            seq,
            occurred_at: start + chrono::Duration::minutes(seq),
            kind: "access_granted".into(),
            key_marking: Some("K-100".into()),
            cylinder_marking: Some("C-1".into()),
            job_id: None,
        })
        .collect();
    let key_id = key.parse().unwrap();
    assert_eq!(
        app.store
            .store_events(t, TargetType::Key, key_id, None, events)
            .await
            .unwrap(),
        30
    );
    let log = app
        .get(&format!("/v1/keys/{key}/event-log?limit=10"), &tenant.admin)
        .await
        .assert(200);
    assert_eq!(log["items"].as_array().map(Vec::len), Some(10));
    assert_eq!(
        app.get(&format!("/v1/keys/{key}/event-log"), &approver)
            .await
            .status,
        403,
        "approvers never see event data"
    );
    for format in ["csv", "pdf"] {
        let export = app
            .call(
                reqwest::Method::GET,
                &format!("/v1/keys/{key}/event-log/export?format={format}"),
                Some(&tenant.admin),
                None,
            )
            .await;
        assert_eq!(export.status, 200, "{format}");
    }

    let history = app
        .get(
            &format!("/v1/history?subject_id={}", created["id"].as_str().unwrap()),
            &tenant.admin,
        )
        .await
        .assert(200);
    let actions: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "request.created",
            "request.decided",
            "request.status_changed"
        ],
        "{history:#}"
    );
    let decided = &history["items"][1];
    assert_eq!(
        decided["actor"]["programming_key_id"],
        approver_id.to_string()
    );
    assert_eq!(decided["details"]["approver"]["name"], "Holder of APP-1");
    assert_eq!(decided["details"]["comment"], "Betriebsrat einverstanden");
    assert_eq!(
        history["items"][0]["actor"]["programming_key_id"],
        requester_id.to_string()
    );
    let job_history = app
        .get(
            &format!(
                "/v1/history?subject_id={}",
                approved["job"]["id"].as_str().unwrap()
            ),
            &tenant.admin,
        )
        .await
        .assert(200);
    assert_eq!(job_history["items"][0]["action"], "job.created");
    let reads = app
        .get("/v1/history?action=event_data.exported", &tenant.admin)
        .await
        .assert(200);
    assert_eq!(
        reads["items"].as_array().map(Vec::len),
        Some(2),
        "both exports are recorded"
    );
    let verified = app
        .get("/v1/history/verify", &tenant.admin)
        .await
        .assert(200);
    assert_eq!(verified["valid"], true, "{verified:#}");
}

/// A returned user key cancels its waiting request; a returned programming key
/// gives back the cylinder job it had not loaded yet.
async fn returned_keys_release_their_work(app: TestApp, sink: SmtpSink) {
    let tenant = tenant_requiring(&app, 1).await;
    let (_, approver) = app
        .person(&tenant, "APP-1", &["approver"], Some("app@example.org"))
        .await;
    let (_, requester) = app
        .person(
            &tenant,
            "REQ-1",
            &["system_administrator"],
            Some("req@example.org"),
        )
        .await;
    let key = issued_key(&app, &tenant, "K-1", "e3").await;
    let created = request(&app, &requester, "key", &key).await.assert(201);
    app.post(&path(&created, "approve"), &approver, json!({}))
        .await
        .assert(200);
    app.post(&format!("/v1/keys/{key}/return"), &tenant.admin, json!({}))
        .await
        .assert(200);
    let shown = app
        .get(
            &format!("/v1/event-log-requests/{}", created["id"].as_str().unwrap()),
            &tenant.admin,
        )
        .await
        .assert(200);
    assert_eq!(
        (shown["status"].as_str(), shown["reason"].as_str()),
        (Some("cancelled"), Some("target_returned"))
    );
    assert_eq!(shown["job"]["status"], "cancelled");
    sink.wait_for("req@example.org", "").await;

    let (programmer_id, _) = app
        .person(
            &tenant,
            "CYL-1",
            &["cylinder_programmer"],
            Some("cyl@example.org"),
        )
        .await;
    let cylinder = app
        .post(
            "/v1/cylinders",
            &tenant.admin,
            json!({"marking": "C-9", "name": "Gate"}),
        )
        .await
        .assert(201);
    let cyl_request = request(
        &app,
        &requester,
        "cylinder",
        cylinder["id"].as_str().unwrap(),
    )
    .await
    .assert(201);
    app.post(&path(&cyl_request, "approve"), &approver, json!({}))
        .await
        .assert(200);
    app.post(
        &path(&cyl_request, "transfer"),
        &tenant.admin,
        json!({"programming_key_id": programmer_id}),
    )
    .await
    .assert(200);
    sink.wait_for("cyl@example.org", "Zylinderauftrag").await;
    app.post(
        &format!("/v1/programming-keys/{programmer_id}/return"),
        &tenant.admin,
        json!({}),
    )
    .await
    .assert(200);
    let shown = app
        .get(
            &format!(
                "/v1/event-log-requests/{}",
                cyl_request["id"].as_str().unwrap()
            ),
            &tenant.admin,
        )
        .await
        .assert(200);
    assert_eq!(
        (shown["status"].as_str(), shown["job"]["status"].as_str()),
        (Some("approved"), Some("awaiting_transfer"))
    );
    assert!(shown["job"]["programming_key_id"].is_null());
}

on_both_databases_with_smtp!(the_whole_approval_walk, returned_keys_release_their_work);
