//! The agent API: work lists with long polling, key insertions, leases,
//! idempotent uploads and the end of jobs.

use std::time::{Duration, Instant};

use countersign_domain::ports::Sweeper;
use countersign_tests::{Site, Tenant, TestApp, on_both_databases};
use serde_json::{Value, json};

/// An agent serving a remote unit and a desk unit: its token and device ids.
async fn site(app: &TestApp, tenant: &Tenant) -> Site {
    app.site(tenant).await
}

fn events(from: i64, to: i64) -> Vec<Value> {
    let start = chrono::Utc::now() - chrono::Duration::days(2);
    (from..=to)
        .map(|seq| json!({"seq": seq, "occurred_at": start + chrono::Duration::seconds(seq), "kind": "access_granted", "key_marking": "K-1", "cylinder_marking": "C-3"}))
        .collect()
}

/// Naming `job` to claim it is refused at each of the site's devices.
async fn refused_by_id_at_every_device(app: &TestApp, site: &Site, job: &Value) {
    for device in [&site.wall, &site.desk] {
        let by_id = app
            .post(
                &job_path(job, "claim"),
                &site.token,
                json!({"device_id": device}),
            )
            .await;
        by_id.assert_status(409);
        assert_eq!(by_id.code(), "job_not_claimable", "at {device}");
    }
}

fn job_path(job: &Value, action: &str) -> String {
    format!("/v1/agent/jobs/{}/{action}", job["id"].as_str().unwrap())
}

async fn approved_key_request(app: &TestApp, tenant: &Tenant, approver: &str, key: &str) -> Value {
    let created = app.request_key_readout(&tenant.admin, key).await;
    app.approve(&created, approver).await
}

async fn a_key_is_read_once_approved_and_its_events_stored_once(app: TestApp) {
    let tenant = app.tenant("agentkey", true).await;
    let (_, approver) = app
        .person(&tenant, "APP-1", &["approver"], Some("app@example.org"))
        .await;
    let key = app.issued_key(&tenant, "K-1", "e3").await;
    let site = site(&app, &tenant).await;

    let created = app.request_key_readout(&tenant.admin, &key).await;
    let early = app
        .post(
            "/v1/agent/key-insertions",
            &site.token,
            json!({"device_id": site.wall, "key_marking": "K-1"}),
        )
        .await
        .assert(200);
    assert_eq!(
        early["action"], "none",
        "nothing is read while the request is pending"
    );
    let idle = app.get("/v1/agent/work", &site.token).await.assert(200);
    assert!(idle["keys"].as_array().unwrap().is_empty());

    let approved = app.approve(&created, &approver).await;
    // A key's readout is claimed only by that key's insertion at a remote
    // unit, never by naming the job, at a desk unit least of all.
    refused_by_id_at_every_device(&app, &site, &approved["job"]).await;
    let work = app
        .get(
            &format!(
                "/v1/agent/work?since={}&wait=5",
                idle["version"].as_str().unwrap()
            ),
            &site.token,
        )
        .await
        .assert(200);
    assert_ne!(work["version"], idle["version"]);
    assert_eq!(
        work["keys"],
        json!([{"key_marking": "K-1", "reason": "request_readout"}])
    );

    let at_desk = app
        .post(
            "/v1/agent/key-insertions",
            &site.token,
            json!({"device_id": site.desk, "key_marking": "K-1"}),
        )
        .await
        .assert(200);
    assert_eq!(
        at_desk["action"], "none",
        "request readouts happen at remote units"
    );
    let read = app
        .post(
            "/v1/agent/key-insertions",
            &site.token,
            json!({"device_id": site.wall, "key_marking": "K-1"}),
        )
        .await
        .assert(200);
    assert_eq!(
        (read["action"].as_str(), read["job"]["status"].as_str()),
        (Some("read_event_log"), Some("running"))
    );
    let lease = json!(read["lease"]["token"]);
    let again = app
        .post(
            "/v1/agent/key-insertions",
            &site.token,
            json!({"device_id": site.wall, "key_marking": "K-1"}),
        )
        .await
        .assert(200);
    assert_eq!(
        (again["action"].as_str(), again["job"]["id"].as_str()),
        (Some("read_event_log"), read["job"]["id"].as_str()),
        "inserted again at the same unit: the same job goes on, none is created"
    );
    let old = app
        .post(
            &job_path(&read["job"], "heartbeat"),
            &site.token,
            json!({"lease_token": lease}),
        )
        .await;
    assert_eq!(
        (old.status.as_u16(), old.code()),
        (409, "lease_lost"),
        "the earlier lease is over"
    );
    let lease = json!(again["lease"]["token"]);
    let cancel = app
        .post(
            &format!(
                "/v1/event-log-requests/{}/cancel",
                created["id"].as_str().unwrap()
            ),
            &tenant.admin,
            json!({}),
        )
        .await;
    assert_eq!(cancel.status, 409, "a running readout cannot be cancelled");

    app.post(
        &job_path(&read["job"], "heartbeat"),
        &site.token,
        json!({"lease_token": lease}),
    )
    .await
    .assert(200);
    let first = app
        .post(
            &job_path(&read["job"], "events"),
            &site.token,
            json!({"lease_token": lease, "events": events(1, 60)}),
        )
        .await
        .assert(200);
    assert_eq!(
        (first["received"].as_u64(), first["stored"].as_u64()),
        (Some(60), Some(60))
    );
    let resent = app
        .post(
            &job_path(&read["job"], "events"),
            &site.token,
            json!({"lease_token": lease, "events": events(1, 60)}),
        )
        .await
        .assert(200);
    assert_eq!(resent["stored"], 0, "a resent batch stores nothing");
    let overlap = app
        .post(
            &job_path(&read["job"], "events"),
            &site.token,
            json!({"lease_token": lease, "events": events(41, 100)}),
        )
        .await
        .assert(200);
    assert_eq!(overlap["stored"], 40);
    let done = app
        .post(
            &job_path(&read["job"], "complete"),
            &site.token,
            json!({"lease_token": lease}),
        )
        .await
        .assert(200);
    assert_eq!(done["job"]["status"], "completed");
    let late = app
        .post(
            &job_path(&read["job"], "complete"),
            &site.token,
            json!({"lease_token": lease}),
        )
        .await;
    assert_eq!(
        (late.status.as_u16(), late.code()),
        (409, "lease_lost"),
        "a job completes once"
    );

    let request = app
        .get(
            &format!("/v1/event-log-requests/{}", created["id"].as_str().unwrap()),
            &tenant.admin,
        )
        .await
        .assert(200);
    assert_eq!(
        request["status"], "completed",
        "the request follows its job"
    );
    let log = app
        .get(
            &format!("/v1/keys/{key}/event-log?limit=500"),
            &tenant.admin,
        )
        .await
        .assert(200);
    let seqs: Vec<i64> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (1..=100).collect::<Vec<_>>(),
        "every event exactly once"
    );
    let agents = app.get("/v1/agents", &tenant.admin).await.assert(200);
    assert!(agents["items"][0]["last_seen_at"].is_string(), "{agents:#}");
}

async fn lost_leases_and_failures_put_jobs_back(app: TestApp) {
    let tenant = app.tenant("agentlease", true).await;
    let (_, approver) = app
        .person(&tenant, "APP-1", &["approver"], Some("app@example.org"))
        .await;
    let key = app.issued_key(&tenant, "K-1", "e2").await;
    let site = site(&app, &tenant).await;
    let request = approved_key_request(&app, &tenant, &approver, &key).await;
    let insert = json!({"device_id": site.wall, "key_marking": "K-1"});

    let first = app
        .post("/v1/agent/key-insertions", &site.token, insert.clone())
        .await
        .assert(200);
    let stale = json!(first["lease"]["token"]);
    app.store
        .sweep(chrono::Utc::now() + chrono::Duration::minutes(5))
        .await
        .unwrap();
    let job = app
        .get(
            &format!("/v1/readout-jobs/{}", first["job"]["id"].as_str().unwrap()),
            &tenant.admin,
        )
        .await
        .assert(200);
    assert_eq!(
        job["status"], "queued",
        "an expired lease puts the job back"
    );
    for action in ["heartbeat", "complete"] {
        let reply = app
            .post(
                &job_path(&first["job"], action),
                &site.token,
                json!({"lease_token": stale}),
            )
            .await;
        assert_eq!(
            (reply.status.as_u16(), reply.code()),
            (409, "lease_lost"),
            "{action}"
        );
    }
    let upload = app
        .post(
            &job_path(&first["job"], "events"),
            &site.token,
            json!({"lease_token": stale, "events": events(1, 3)}),
        )
        .await;
    assert_eq!(upload.code(), "lease_lost");

    let second = app
        .post("/v1/agent/key-insertions", &site.token, insert.clone())
        .await
        .assert(200);
    assert_eq!(second["job"]["attempts"], 2);
    let lease = json!(second["lease"]["token"]);
    let retried = app
        .post(
            &job_path(&second["job"], "fail"),
            &site.token,
            json!({"lease_token": lease, "reason": "serial timeout", "retryable": true}),
        )
        .await
        .assert(200);
    assert_eq!(retried["job"]["status"], "queued");
    let third = app
        .post("/v1/agent/key-insertions", &site.token, insert)
        .await
        .assert(200);
    let lease = json!(third["lease"]["token"]);
    let failed = app
        .post(
            &job_path(&third["job"], "fail"),
            &site.token,
            json!({"lease_token": lease, "reason": "key damaged", "retryable": false}),
        )
        .await
        .assert(200);
    assert_eq!(failed["job"]["status"], "failed");
    let shown = app
        .get(
            &format!("/v1/event-log-requests/{}", request["id"].as_str().unwrap()),
            &tenant.admin,
        )
        .await
        .assert(200);
    assert_eq!(
        (shown["status"].as_str(), shown["reason"].as_str()),
        (Some("failed"), Some("key damaged"))
    );
}

async fn cylinder_jobs_travel_on_a_programming_key(app: TestApp) {
    let tenant = app.tenant("agentcyl", true).await;
    let (_, approver) = app
        .person(&tenant, "APP-1", &["approver"], Some("app@example.org"))
        .await;
    let (programmer_id, _) = app
        .person(
            &tenant,
            "CYL-1",
            &["cylinder_programmer"],
            Some("cyl@example.org"),
        )
        .await;
    let site = site(&app, &tenant).await;
    let cylinder = app
        .post(
            "/v1/cylinders",
            &tenant.admin,
            json!({"marking": "C-3", "name": "Gate"}),
        )
        .await
        .assert(201);
    let created = app
        .post(
            "/v1/event-log-requests",
            &tenant.admin,
            json!({"target": {"type": "cylinder", "id": cylinder["id"]}}),
        )
        .await
        .assert(201);
    let request_path = format!("/v1/event-log-requests/{}", created["id"].as_str().unwrap());
    app.post(&format!("{request_path}/approve"), &approver, json!({}))
        .await
        .assert(200);
    app.post(
        &format!("{request_path}/transfer"),
        &tenant.admin,
        json!({"programming_key_id": programmer_id}),
    )
    .await
    .assert(200);
    let work = app.get("/v1/agent/work", &site.token).await.assert(200);
    assert_eq!(
        work["programming_keys"][0]["programming_key_marking"],
        "CYL-1"
    );
    // A transferred cylinder job is loaded only where its programming key is
    // connected: naming it from any device of the tenant claims nothing.
    let transferred = app.get(&request_path, &tenant.admin).await.assert(200);
    refused_by_id_at_every_device(&app, &site, &transferred["job"]).await;

    let connect = json!({"device_id": site.desk, "programming_key_marking": "CYL-1"});
    let first = app
        .post(
            "/v1/agent/programming-key-connections",
            &site.token,
            connect.clone(),
        )
        .await
        .assert(200);
    assert_eq!(
        (
            first["load"].as_array().map(Vec::len),
            first["collect"].as_array().map(Vec::len)
        ),
        (Some(1), Some(0))
    );
    let job = &first["load"][0]["job"];
    let loaded = app
        .post(
            &job_path(job, "loaded"),
            &site.token,
            json!({"lease_token": first["load"][0]["lease"]["token"]}),
        )
        .await
        .assert(200);
    assert_eq!(loaded["job"]["status"], "loaded");
    assert_eq!(
        app.post(&format!("{request_path}/cancel"), &tenant.admin, json!({}))
            .await
            .status,
        409,
        "a loaded job cannot be called off"
    );

    let early = app
        .post(
            "/v1/agent/programming-key-connections",
            &site.token,
            connect.clone(),
        )
        .await
        .assert(200);
    let unvisited = &early["collect"][0];
    let handed_back = app
        .post(
            &job_path(&unvisited["job"], "release"),
            &site.token,
            json!({"lease_token": unvisited["lease"]["token"]}),
        )
        .await
        .assert(200);
    assert_eq!(
        (
            handed_back["job"]["status"].as_str(),
            handed_back["job"]["attempts"].as_i64()
        ),
        (Some("loaded"), Some(1)),
        "not visited yet: back on the key, no attempt spent"
    );
    let back = app
        .post(
            "/v1/agent/programming-key-connections",
            &site.token,
            json!({"device_id": site.wall, "programming_key_marking": "CYL-1"}),
        )
        .await
        .assert(200);
    assert_eq!(
        back["collect"].as_array().map(Vec::len),
        Some(1),
        "collected at any unit"
    );
    let lease = json!(back["collect"][0]["lease"]["token"]);
    let job = &back["collect"][0]["job"];
    app.post(
        &job_path(job, "events"),
        &site.token,
        json!({"lease_token": lease, "events": events(1, 25)}),
    )
    .await
    .assert(200);
    app.post(
        &job_path(job, "complete"),
        &site.token,
        json!({"lease_token": lease}),
    )
    .await
    .assert(200);
    let log = app
        .get(
            &format!(
                "/v1/cylinders/{}/event-log",
                cylinder["id"].as_str().unwrap()
            ),
            &tenant.admin,
        )
        .await
        .assert(200);
    assert_eq!(log["items"].as_array().map(Vec::len), Some(25));
    assert_eq!(
        app.get(&request_path, &tenant.admin).await.assert(200)["status"],
        "completed"
    );
}

async fn automatic_collection_and_desk_readouts_need_no_request(app: TestApp) {
    let tenant = app.tenant("agentauto", false).await;
    let key = app.issued_key(&tenant, "K-1", "e3").await;
    let site = site(&app, &tenant).await;
    let work = app.get("/v1/agent/work", &site.token).await.assert(200);
    assert_eq!(
        work["keys"],
        json!([{"key_marking": "K-1", "reason": "auto_collection"}])
    );
    let read = app
        .post(
            "/v1/agent/key-insertions",
            &site.token,
            json!({"device_id": site.wall, "key_marking": "K-1"}),
        )
        .await
        .assert(200);
    assert_eq!(
        (read["action"].as_str(), read["job"]["kind"].as_str()),
        (Some("read_event_log"), Some("auto_collection"))
    );
    app.post(
        &job_path(&read["job"], "complete"),
        &site.token,
        json!({"lease_token": read["lease"]["token"]}),
    )
    .await
    .assert(200);
    app.post(
        &format!("/v1/keys/{key}/auto-collection/stop"),
        &tenant.admin,
        json!({}),
    )
    .await
    .assert(200);
    let stopped = app
        .post(
            "/v1/agent/key-insertions",
            &site.token,
            json!({"device_id": site.wall, "key_marking": "K-1"}),
        )
        .await
        .assert(200);
    assert_eq!(stopped["action"], "none");

    let desk = app
        .post(
            &format!("/v1/keys/{key}/desk-readout"),
            &tenant.admin,
            json!({"device_id": site.desk}),
        )
        .await
        .assert(201);
    let work = app.get("/v1/agent/work", &site.token).await.assert(200);
    assert_eq!(work["desk_readouts"][0]["job_id"], desk["id"]);
    let claimed = app
        .post(
            &job_path(&desk, "claim"),
            &site.token,
            json!({"device_id": site.desk}),
        )
        .await
        .assert(200);
    let twice = app
        .post(
            &job_path(&desk, "claim"),
            &site.token,
            json!({"device_id": site.desk}),
        )
        .await;
    assert_eq!(
        (twice.status.as_u16(), twice.code()),
        (409, "job_unavailable")
    );
    app.post(
        &job_path(&desk, "complete"),
        &site.token,
        json!({"lease_token": claimed["lease"]["token"]}),
    )
    .await
    .assert(200);
}

async fn agents_see_only_their_own_devices(app: TestApp) {
    let tenant = app.tenant("agentiso", true).await;
    let ours = site(&app, &tenant).await;
    let other_agent = app
        .post("/v1/agents", &tenant.admin, json!({"name": "Other"}))
        .await
        .assert(201);
    let login = app.token(json!({"grant_type": "agent", "agent_id": other_agent["agent"]["id"], "secret": other_agent["secret"]})).await.assert(200);
    let other = login["access_token"].as_str().unwrap();
    let reply = app
        .post(
            "/v1/agent/key-insertions",
            other,
            json!({"device_id": ours.wall, "key_marking": "K-1"}),
        )
        .await;
    assert_eq!(reply.status, 404, "another agent's device");
    let work = app.get("/v1/agent/work", other).await.assert(200);
    assert!(work["devices"].as_array().unwrap().is_empty());
    assert_eq!(
        app.get("/v1/agent/work", &tenant.admin).await.status,
        403,
        "people are not agents"
    );
    assert_eq!(
        app.get("/v1/agent/work?wait=51", &ours.token).await.status,
        400
    );
    let _ = ours.agent_id;
}

async fn twenty_thousand_events_in_one_upload(app: TestApp) {
    let tenant = app.tenant("agentbulk", false).await;
    let key = app.issued_key(&tenant, "K-1", "e3").await;
    let site = site(&app, &tenant).await;
    let read = app
        .post(
            "/v1/agent/key-insertions",
            &site.token,
            json!({"device_id": site.wall, "key_marking": "K-1"}),
        )
        .await
        .assert(200);
    let batch = json!({"lease_token": read["lease"]["token"], "events": events(1, 20_000)});
    let stored = app
        .post(&job_path(&read["job"], "events"), &site.token, batch)
        .await
        .assert(200);
    assert_eq!(stored["stored"], 20_000);
    let again = app
        .post(
            &job_path(&read["job"], "events"),
            &site.token,
            json!({"lease_token": read["lease"]["token"], "events": events(19_990, 20_010)}),
        )
        .await
        .assert(200);
    assert_eq!(again["stored"], 10);
    let _ = key;
}

on_both_databases!(
    a_key_is_read_once_approved_and_its_events_stored_once,
    lost_leases_and_failures_put_jobs_back,
    cylinder_jobs_travel_on_a_programming_key,
    automatic_collection_and_desk_readouts_need_no_request,
    agents_see_only_their_own_devices,
    twenty_thousand_events_in_one_upload,
);

/// Two API processes on one PostgreSQL and Redis: an approval made on one wakes
/// an agent long-polling on the other, well before its database re-check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wake_up_crosses_replicas() {
    let first = TestApp::spawn(countersign_tests::Backend::Postgres).await;
    let second = first.replica().await;
    let tenant = first.tenant("replicas", true).await;
    let (_, approver) = first
        .person(&tenant, "APP-1", &["approver"], Some("app@example.org"))
        .await;
    let key = first.issued_key(&tenant, "K-1", "e3").await;
    let site = site(&first, &tenant).await;
    let created = first.request_key_readout(&tenant.admin, &key).await;
    let idle = second.get("/v1/agent/work", &site.token).await.assert(200);
    let since = idle["version"].as_str().unwrap().to_owned();
    let poll = {
        let token = site.token.clone();
        let url = format!("/v1/agent/work?since={since}&wait=30");
        async move {
            let reply = second.get(&url, &token).await;
            (Instant::now(), reply)
        }
    };
    let approve = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        first.approve(&created, &approver).await;
        Instant::now()
    };
    let ((answered, reply), approved) = tokio::join!(poll, approve);
    let body = reply.assert(200);
    assert_eq!(body["keys"][0]["key_marking"], "K-1");
    // Without the shared wake-up the poll would only see the change at its
    // next database re-check; how fast the wake-up is, benchmark B3 measures.
    let delay = answered.saturating_duration_since(approved);
    assert!(
        delay < countersign_infra::signal::RECHECK / 2,
        "woken {delay:?} after the approval on the other replica"
    );
}
