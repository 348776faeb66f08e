//! Operations: `/metrics` on its own listener, structured logs with request
//! ids, CORS, security headers, the request timeout and a graceful stop on
//! SIGTERM.

use std::collections::BTreeMap;
use std::time::Duration;

use countersign_tests::process::{ServerProcess, server_command};
use countersign_tests::{Backend, JWT_SECRET, OPERATOR_KEY, TestApp, on_both_databases};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use uuid::Uuid;

/// The samples of a Prometheus text exposition: name and labels → value.
struct Scrape(Vec<(String, BTreeMap<String, String>, f64)>);

impl Scrape {
    /// A scrape of the app's metrics listener.
    async fn of(app: &TestApp) -> Scrape {
        Self::at(&app.metrics_base).await
    }

    /// One round of the metrics worker, then a scrape.
    async fn computed(app: &TestApp) -> Scrape {
        assert!(app.compute_metrics().await, "the database answers");
        Self::of(app).await
    }

    /// Scrapes `base` every 50 ms until `wanted` holds, for up to 5 s; the
    /// first scrape that satisfies it.
    async fn until(base: &str, wanted: impl Fn(&Scrape) -> bool) -> Option<Scrape> {
        for _ in 0..100 {
            let scrape = Self::at(base).await;
            if wanted(&scrape) {
                return Some(scrape);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    async fn at(base: &str) -> Scrape {
        let response = reqwest::get(format!("{base}/metrics")).await.unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        Scrape::parse(&response.text().await.unwrap())
    }

    fn parse(text: &str) -> Scrape {
        let mut samples = Vec::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').unwrap();
                    (key.to_owned(), value.trim_matches('"').to_owned())
                })
                .collect();
            samples.push((name.to_owned(), labels, value.parse().unwrap()));
        }
        Scrape(samples)
    }

    /// The sample of `name` whose labels are exactly `labels`, if any.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.0
            .iter()
            .find(|(n, l, _)| n == name && *l == wanted)
            .map(|(_, _, v)| *v)
    }

    /// Like [`Scrape::get`], zero when absent.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    fn requests(&self, method: &str, route: &str, status: &str) -> f64 {
        self.value(
            "countersign_http_requests_total",
            &[("method", method), ("route", route), ("status", status)],
        )
    }

    fn any_label_contains(&self, needle: &str) -> bool {
        self.0
            .iter()
            .any(|(_, labels, _)| labels.values().any(|v| v.contains(needle)))
    }
}

async fn metrics_follow_a_workflow(app: TestApp) {
    let tenant = app.tenant("obs", true).await;
    let key = app.issued_key(&tenant, "K-OBS", "e3").await;
    let (_, approver) = app
        .person(
            &tenant,
            "APP-OBS",
            &["approver"],
            Some("approver@example.org"),
        )
        .await;

    let before = Scrape::computed(&app).await;
    assert_eq!(before.get("countersign_database_up", &[]), Some(1.0));
    assert!(
        before.value("countersign_table_counts_age_seconds", &[]) < 5.0,
        "just computed"
    );
    assert_eq!(
        before.get(
            "countersign_event_log_requests",
            &[("status", "pending_approval")]
        ),
        Some(0.0),
        "every status is reported, zero included"
    );
    assert!(
        before
            .get("countersign_db_pool_max_connections", &[])
            .unwrap()
            >= 1.0
    );
    assert!(
        before
            .get("countersign_db_pool_connections", &[("state", "idle")])
            .is_some()
    );
    match app.backend {
        Backend::Postgres => assert_eq!(before.get("countersign_redis_up", &[]), Some(1.0)),
        Backend::Sqlite => assert_eq!(before.get("countersign_redis_up", &[]), None),
    }

    let created = app.request_key_readout(&tenant.admin, &key).await;
    let request_id = created["id"].as_str().unwrap();
    let status =
        |s: &Scrape, status: &str| s.value("countersign_event_log_requests", &[("status", status)]);
    let scraped = Scrape::of(&app).await;
    assert_eq!(
        status(&scraped, "pending_approval"),
        0.0,
        "a scrape reads no database: the count is the worker's last"
    );
    assert_eq!(
        scraped.requests("POST", "/v1/event-log-requests", "201")
            - before.requests("POST", "/v1/event-log-requests", "201"),
        1.0,
        "while the traffic counters are live"
    );
    let pending = Scrape::computed(&app).await;
    assert_eq!(
        status(&pending, "pending_approval"),
        1.0,
        "the worker's next round counts the request"
    );
    assert!(
        pending.value("countersign_mail_outbox", &[("status", "pending")]) >= 1.0,
        "the approver's notice waits in the outbox (no worker runs here)"
    );

    app.post(
        &format!("/v1/event-log-requests/{request_id}/approve"),
        &approver,
        json!({}),
    )
    .await
    .assert(200);
    app.get(
        &format!("/v1/event-log-requests/{request_id}"),
        &tenant.admin,
    )
    .await
    .assert(200);
    app.get("/v1/no-such-thing", &tenant.admin)
        .await
        .assert(404);
    let after = Scrape::computed(&app).await;

    assert_eq!(status(&after, "pending_approval"), 0.0);
    assert_eq!(status(&after, "approved"), 1.0);
    assert_eq!(
        after.value("countersign_readout_jobs", &[("status", "queued")])
            - before.value("countersign_readout_jobs", &[("status", "queued")]),
        1.0,
        "the approval queued a readout job"
    );
    for (method, route, code) in [
        ("POST", "/v1/event-log-requests", "201"),
        ("POST", "/v1/event-log-requests/{id}/approve", "200"),
        ("GET", "/v1/event-log-requests/{id}", "200"),
        ("GET", "unmatched", "404"),
    ] {
        assert_eq!(
            after.requests(method, route, code) - before.requests(method, route, code),
            1.0,
            "{method} {route} {code}"
        );
    }
    assert!(
        after.value(
            "countersign_http_request_duration_seconds_count",
            &[
                ("method", "POST"),
                ("route", "/v1/event-log-requests/{id}/approve")
            ]
        ) >= 1.0
    );
    assert!(
        !after.any_label_contains(request_id) && !after.any_label_contains("no-such-thing"),
        "routes are labelled by template, never by raw path"
    );
}

async fn long_polls_are_counted_and_outlive_the_request_timeout(app: TestApp) {
    assert_eq!(app.config.request_timeout_secs, 1);
    let tenant = app.tenant("poll", true).await;
    let agent = app
        .post("/v1/agents", &tenant.admin, json!({"name": "Site PC"}))
        .await
        .assert(201);
    let login = app
        .token(json!({"grant_type": "agent", "agent_id": agent["agent"]["id"], "secret": agent["secret"]}))
        .await
        .assert(200);
    let token = login["access_token"].as_str().unwrap().to_owned();
    let idle = app.get("/v1/agent/work", &token).await.assert(200);
    let path = format!(
        "/v1/agent/work?since={}&wait=3",
        idle["version"].as_str().unwrap()
    );
    let base = app.base.clone();
    let poll = tokio::spawn(async move {
        reqwest::Client::new()
            .get(format!("{base}{path}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
    });
    let open = |s: &Scrape| s.value("countersign_agent_long_polls_open", &[]);
    let seen = Scrape::until(&app.metrics_base, |s| open(s) == 1.0).await;
    assert!(seen.is_some(), "the open long poll shows in /metrics");
    assert_eq!(
        poll.await.unwrap(),
        200,
        "a long poll of 3 s is not cut by the request timeout of 1 s"
    );
    assert_eq!(open(&Scrape::of(&app).await), 0.0);
}

mod long_polls_are_counted_and_outlive_the_request_timeout {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let (app, _) =
            countersign_tests::TestApp::spawn_with(countersign_tests::Backend::Sqlite, |config| {
                config.request_timeout_secs = 1
            })
            .await;
        super::long_polls_are_counted_and_outlive_the_request_timeout(app).await;
    }
}

on_both_databases!(metrics_follow_a_workflow);

/// The public port has no `/metrics` (the Ingress routes every path there);
/// the metrics listener serves it and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_on_their_own_listener_only() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let client = reqwest::Client::new();
    for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
        let public = client
            .request(method.clone(), format!("{}/metrics", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(public.status(), 404, "{method} /metrics on the public port");
        let body = public.text().await.unwrap();
        assert!(!body.contains("countersign_"), "{body}");
    }
    let scrape = Scrape::of(&app).await;
    assert!(
        scrape
            .get(
                "countersign_http_requests_total",
                &[("method", "GET"), ("route", "unmatched"), ("status", "404")]
            )
            .is_some(),
        "the public port counted its 404"
    );
    for path in [
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/v1/me",
        "/docs/",
        "/metrics/x",
    ] {
        let private = client
            .get(format!("{}{path}", app.metrics_base))
            .send()
            .await
            .unwrap();
        assert_eq!(private.status(), 404, "{path} on the metrics listener");
    }
    let posted = client
        .post(format!("{}/metrics", app.metrics_base))
        .send()
        .await
        .unwrap();
    assert!(posted.status().is_client_error(), "{}", posted.status());
}

/// The counts age until the worker computes them, and the worker's loop
/// brings in what changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_worker_computes_the_counts_and_their_age_shows() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let tenant = app.tenant("age", true).await;
    app.person(
        &tenant,
        "APP-AGE",
        &["approver"],
        Some("approver@age.example"),
    )
    .await;
    let key = app.issued_key(&tenant, "K-AGE", "e3").await;
    app.request_key_readout(&tenant.admin, &key).await;
    let pending = |s: &Scrape| {
        s.value(
            "countersign_event_log_requests",
            &[("status", "pending_approval")],
        )
    };
    let age = |s: &Scrape| s.value("countersign_table_counts_age_seconds", &[]);
    let never = Scrape::of(&app).await;
    assert_eq!(never.get("countersign_database_up", &[]), Some(0.0));
    assert_eq!(pending(&never), 0.0, "not computed yet");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(
        age(&Scrape::of(&app).await) >= 1.0,
        "the age grows from the start"
    );

    tokio::spawn(countersign_api::workers::compute_metrics(
        app.metrics(),
        Duration::from_millis(100),
    ));
    let computed = Scrape::until(&app.metrics_base, |s| pending(s) == 1.0)
        .await
        .expect("the worker counts the request");
    assert_eq!(computed.get("countersign_database_up", &[]), Some(1.0));
    assert!(age(&computed) < 1.0, "fresh: {}", age(&computed));

    app.request_key_readout(
        &tenant.admin,
        &app.issued_key(&tenant, "K-AGE-2", "e3").await,
    )
    .await;
    let counted = Scrape::until(&app.metrics_base, |s| pending(s) == 2.0).await;
    assert!(counted.is_some(), "a later round counts the second request");
}

/// A request that waits longer than the request timeout is answered 503 with a
/// problem; here a write waits for the SQLite lock another connection holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_timeout_is_answered_503() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let (app, _) = TestApp::spawn_with(Backend::Sqlite, |config| {
        config.request_timeout_secs = 1;
    })
    .await;
    let tenant = app.tenant("slow", true).await;
    let lock = app.db.begin().await.unwrap();
    lock.execute_unprepared("UPDATE tenants SET name = name")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let slow = app
        .post("/v1/employees", &tenant.admin, json!({"name": "Late"}))
        .await;
    let waited = started.elapsed();
    lock.rollback().await.unwrap();
    assert_eq!(slow.status, 503, "{:#}", slow.body);
    assert_eq!(slow.code(), "service_unavailable");
    assert_eq!(
        slow.headers["content-type"], "application/problem+json",
        "a problem"
    );
    assert!(slow.headers.contains_key("x-request-id"));
    assert!(waited < Duration::from_secs(4), "answered after {waited:?}");
    let after = Scrape::of(&app).await;
    assert_eq!(after.requests("POST", "/v1/employees", "503"), 1.0);
    // The server is fine afterwards.
    app.post("/v1/employees", &tenant.admin, json!({"name": "On time"}))
        .await
        .assert(201);
}

const ALLOWED: &str = "https://frontend.example";

async fn preflight(base: &str, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{base}/v1/keys"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap()
}

fn assert_security_headers(headers: &HeaderMap, what: &str) {
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(
            headers.get(name).and_then(|v| v.to_str().ok()),
            Some(value),
            "{name} on {what}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_admits_configured_origins_only() {
    let (app, _) = TestApp::spawn_with(Backend::Sqlite, |config| {
        config.cors_origins = format!("{ALLOWED}, https://other.example");
    })
    .await;

    let allowed = preflight(&app.base, ALLOWED).await;
    assert!(allowed.status().is_success(), "{}", allowed.status());
    let headers = allowed.headers();
    assert_eq!(headers["access-control-allow-origin"], ALLOWED);
    let methods = headers["access-control-allow-methods"].to_str().unwrap();
    assert!(methods.contains("POST"), "{methods}");
    let allowed_headers = headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed_headers.contains("authorization") && allowed_headers.contains("content-type"),
        "{allowed_headers}"
    );

    let refused = preflight(&app.base, "https://evil.example").await;
    assert!(
        !refused
            .headers()
            .contains_key("access-control-allow-origin"),
        "a disallowed origin gets no CORS headers"
    );

    let simple = reqwest::Client::new()
        .get(format!("{}/healthz", app.base))
        .header("origin", ALLOWED)
        .send()
        .await
        .unwrap();
    assert_eq!(simple.headers()["access-control-allow-origin"], ALLOWED);
    let exposed = simple.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("x-request-id"), "{exposed}");
    let foreign = reqwest::Client::new()
        .get(format!("{}/healthz", app.base))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 200, "non-browser clients are not blocked");
    assert!(
        !foreign
            .headers()
            .contains_key("access-control-allow-origin")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cors_origins_no_origin_is_admitted() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let response = preflight(&app.base, ALLOWED).await;
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_has_security_headers_and_a_request_id() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let client = reqwest::Client::new();
    for (path, status) in [
        ("/healthz", 200),
        ("/v1/me", 401),
        ("/no/such/route", 404),
        ("/metrics", 404),
    ] {
        let response = client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{path}");
        assert_security_headers(response.headers(), path);
        let id = response.headers()["x-request-id"].to_str().unwrap();
        assert!(id.parse::<Uuid>().is_ok(), "a generated request id: {id}");
    }

    let echoed = client
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", "trace-4711/abc")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-4711/abc");

    let too_long = "x".repeat(300);
    for insane in [too_long.as_str(), "with space", ""] {
        let replaced = client
            .get(format!("{}/healthz", app.base))
            .header("x-request-id", insane)
            .send()
            .await
            .unwrap();
        let id = replaced.headers()["x-request-id"].to_str().unwrap();
        assert!(
            id.parse::<Uuid>().is_ok(),
            "`{insane}` is replaced by a generated id, not {id}"
        );
    }
}

/// The server binary on PostgreSQL and Redis, its logs on a pipe: JSON lines
/// that carry the request id and the tenant, and never a PIN or a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_process_logs_json_lines_without_secrets() {
    let admin = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let redis = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("history-signing-key.pem");
    let pem = countersign_infra::signing::HistorySigner::generate()
        .to_pem()
        .unwrap();
    std::fs::write(&key, pem).unwrap();
    // Migrated as the owner; served as roles that row-level security binds
    // (the API) and that span tenants (its background work).
    let owner = countersign_tests::postgres_database_on(&admin).await;
    let env = [
        ("COUNTERSIGN_MIGRATION_DATABASE_URL", owner.clone()),
        (
            "DATABASE_URL",
            countersign_tests::as_role(&owner, countersign_tests::API_LOGIN),
        ),
        (
            "COUNTERSIGN_WORKER_DATABASE_URL",
            countersign_tests::as_role(&owner, countersign_tests::WORKER_LOGIN),
        ),
        ("REDIS_URL", redis),
        ("COUNTERSIGN_OPERATOR_KEY", OPERATOR_KEY.to_owned()),
        ("COUNTERSIGN_JWT_SECRET", JWT_SECRET.to_owned()),
        (
            "COUNTERSIGN_HISTORY_SIGNING_KEY_FILE",
            key.display().to_string(),
        ),
    ];
    let migrated = server_command(dir.path(), &env)
        .await
        .arg("migrate")
        .output()
        .await
        .unwrap();
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    countersign_tests::login_roles(&admin).await;
    let mut server = ServerProcess::start(dir.path(), &env).await;
    let client = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, token: Option<&str>, body: Option<Value>| {
        let mut request = client.request(method, format!("{}{path}", server.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request
    };
    let json_of = |response: reqwest::Response| async move {
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        (status.as_u16(), body)
    };

    let (_, operator) = json_of(
        call(
            reqwest::Method::POST,
            "/v1/auth/token",
            None,
            Some(json!({"grant_type": "operator", "operator_key": OPERATOR_KEY})),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    let operator = operator["access_token"].as_str().unwrap().to_owned();
    let slug = countersign_tests::unique_slug("logs");
    let (status, created) = json_of(
        call(reqwest::Method::POST, "/v1/tenants", Some(&operator), Some(json!({
            "slug": slug, "name": "Logs", "base_timezone": "Europe/Berlin", "locale": "de",
            "approval_required": true, "request_ttl_hours": 48, "execution_ttl_hours": 24,
            "initial_admin": {"employee_name": "Ada Admin", "email": "ada@logs.example", "programming_key_marking": "ADMIN-1"}
        })))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{created:#}");
    let tenant_id = created["tenant"]["id"].as_str().unwrap().to_owned();
    let one_time = created["initial_pin"].as_str().unwrap().to_owned();
    let login = |pin: String| {
        call(
            reqwest::Method::POST,
            "/v1/auth/token",
            None,
            Some(json!({"grant_type": "programming_key", "tenant": slug, "programming_key": "ADMIN-1", "pin": pin})),
        )
        .send()
    };
    let (status, first) = json_of(login(one_time.clone()).await.unwrap()).await;
    assert_eq!(status, 200, "{first:#}");
    let first_token = first["access_token"].as_str().unwrap().to_owned();
    let pin = "739164";
    let changed = call(
        reqwest::Method::POST,
        "/v1/me/pin",
        Some(&first_token),
        Some(json!({"current_pin": one_time, "new_pin": pin})),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(changed.status(), 204);
    let (status, session) = json_of(login(pin.to_owned()).await.unwrap()).await;
    assert_eq!(status, 200, "{session:#}");
    let token = session["access_token"].as_str().unwrap().to_owned();
    let refresh = session["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (status, _) = json_of(login("000000".to_owned()).await.unwrap()).await;
    assert_eq!(status, 401, "a wrong PIN");

    let request_id = format!("obs-{}", Uuid::new_v4().simple());
    let me = call(reqwest::Method::GET, "/v1/me", Some(&token), None)
        .header("x-request-id", &request_id)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(me.headers()["x-request-id"], request_id.as_str());

    // `/metrics` is on the binary's own metrics listener, and its worker
    // computes the counts at start.
    let public_metrics = call(reqwest::Method::GET, "/metrics", None, None)
        .send()
        .await
        .unwrap();
    assert_eq!(
        public_metrics.status(),
        404,
        "no /metrics on the public port"
    );
    let metrics_base = server
        .metrics_base
        .clone()
        .expect("the metrics listener is logged with its metrics_address");
    let computed = Scrape::until(&metrics_base, |s| {
        s.get("countersign_database_up", &[]) == Some(1.0)
    })
    .await;
    assert!(computed.is_some(), "the metrics worker ran at start");

    // A long poll in flight when SIGTERM arrives is answered, not cut off.
    let (status, agent) = json_of(
        call(
            reqwest::Method::POST,
            "/v1/agents",
            Some(&token),
            Some(json!({"name": "Site PC"})),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{agent:#}");
    let (status, agent_session) = json_of(
        call(
            reqwest::Method::POST,
            "/v1/auth/token",
            None,
            Some(json!({"grant_type": "agent", "agent_id": agent["agent"]["id"], "secret": agent["secret"]})),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{agent_session:#}");
    let agent_token = agent_session["access_token"].as_str().unwrap().to_owned();
    let (status, work) = json_of(
        call(
            reqwest::Method::GET,
            "/v1/agent/work",
            Some(&agent_token),
            None,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{work:#}");
    let held = call(
        reqwest::Method::GET,
        &format!(
            "/v1/agent/work?since={}&wait=3",
            work["version"].as_str().unwrap()
        ),
        Some(&agent_token),
        None,
    )
    .send();
    let held = tokio::spawn(held);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let status = server.terminate().await;
    assert!(status.success(), "a clean exit on SIGTERM: {status}");
    let drained = held.await.unwrap().expect("the held poll is answered");
    assert_eq!(drained.status(), 200, "the held poll drains");
    let output = server.output();
    let all = output.join("\n");

    let lines: Vec<Value> = output
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    assert!(
        lines.len() >= output.len().saturating_sub(1),
        "stdout is a pipe: JSON lines\n{all}"
    );
    let spans_field = |line: &Value, field: &str| -> Option<String> {
        line["spans"]
            .as_array()?
            .iter()
            .find_map(|span| span.get(field).and_then(|v| v.as_str().map(str::to_owned)))
    };
    let of_request: Vec<&Value> = lines
        .iter()
        .filter(|line| spans_field(line, "request_id").as_deref() == Some(request_id.as_str()))
        .collect();
    assert!(
        !of_request.is_empty(),
        "no line carries {request_id}:\n{all}"
    );
    for line in &of_request {
        assert_eq!(
            spans_field(line, "tenant_id").as_deref(),
            Some(tenant_id.as_str()),
            "{line}"
        );
        assert_eq!(spans_field(line, "principal_kind").as_deref(), Some("user"));
    }
    let access = of_request
        .iter()
        .find(|line| line["target"] == "countersign::access")
        .unwrap_or_else(|| panic!("no access line for {request_id}:\n{all}"));
    assert_eq!(access["route"], "/v1/me");
    assert_eq!(access["method"], "GET");
    assert_eq!(access["status"], 200);
    assert!(access["latency_ms"].is_u64());
    assert!(
        lines
            .iter()
            .any(|line| line["target"] == "countersign::access" && line["status"] == 401),
        "the failed login is logged too"
    );

    for (secret, what) in [
        (pin, "the PIN"),
        (one_time.as_str(), "the one-time PIN"),
        (token.as_str(), "the access token"),
        (first_token.as_str(), "the first access token"),
        (operator.as_str(), "the operator's token"),
        (OPERATOR_KEY, "the operator key"),
        (JWT_SECRET, "the signing secret"),
    ] {
        assert!(!all.contains(secret), "{what} is in the output:\n{all}");
    }
    if !refresh.is_empty() {
        assert!(
            !all.contains(&refresh),
            "the refresh token is in the output"
        );
    }
    assert!(!all.to_ascii_lowercase().contains("bearer "), "{all}");
    assert!(all.contains("stopped"), "the stop is logged:\n{all}");
}

/// A port on 127.0.0.1 where nothing listens.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Redis unreachable: the gauge says so, and readiness does not depend on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_shows_in_metrics_but_not_in_readiness() {
    let redis = format!("redis://127.0.0.1:{}", closed_port());
    let (app, _) = TestApp::spawn_with(Backend::Postgres, |config| {
        config.redis_url = Some(redis);
    })
    .await;
    let scrape = Scrape::computed(&app).await;
    assert_eq!(scrape.get("countersign_redis_up", &[]), Some(0.0));
    assert_eq!(scrape.get("countersign_database_up", &[]), Some(1.0));
    let ready = reqwest::get(format!("{}/readyz", app.base)).await.unwrap();
    assert_eq!(
        ready.status(),
        200,
        "readiness depends on the database only"
    );
}

/// Failed sends are counted by the worker and show in the outbox gauges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_mail_sends_are_counted() {
    let smtp = format!("smtp://127.0.0.1:{}", closed_port());
    let (app, mailer) = TestApp::spawn_with(Backend::Sqlite, |config| {
        config.smtp_url = Some(smtp);
    })
    .await;
    let tenant = app.tenant("mailfail", true).await;
    app.person(
        &tenant,
        "APP-MAIL",
        &["approver"],
        Some("approver@example.org"),
    )
    .await;
    let key = app.issued_key(&tenant, "K-MAIL", "e3").await;
    app.post(
        "/v1/event-log-requests",
        &tenant.admin,
        json!({"target": {"type": "key", "id": key}}),
    )
    .await
    .assert(201);
    let before = Scrape::computed(&app).await;
    let pending = before.value("countersign_mail_outbox", &[("status", "pending")]);
    assert!(pending >= 1.0, "a notice waits in the outbox");
    assert_eq!(
        before.get("countersign_mail_send_failures_total", &[]),
        Some(0.0)
    );

    let report = mailer.deliver_due(chrono::Utc::now()).await.unwrap();
    assert!(report.retried >= 1, "{report:?}");
    let after = Scrape::computed(&app).await;
    assert_eq!(
        after.value("countersign_mail_send_failures_total", &[]),
        report.retried as f64 + report.failed as f64
    );
    assert_eq!(
        after.value("countersign_mail_outbox_retrying", &[]),
        report.retried as f64
    );
    assert_eq!(
        after.value("countersign_mail_outbox", &[("status", "pending")]),
        pending,
        "still pending, waiting for the next attempt"
    );
}
