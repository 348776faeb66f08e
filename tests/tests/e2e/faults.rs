//! Fault injection: the backing services fail under load, clients misbehave,
//! and the API answers honestly, loses nothing and writes nothing halfway.
//!
//! Each test runs on PostgreSQL, Redis and SMTP servers of its own
//! ([`countersign_tests::servers`], [`SmtpSink`]), so stopping them disturbs no
//! other test, and prints its figures (`-- --nocapture` shows them;
//! `docs/reliability.md` collects them).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use countersign_infra::mail::{Mailer, MailerSettings};
use countersign_tests::servers::{Postgres, Redis};
use countersign_tests::{SmtpSink, Tenant, TestApp};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use uuid::Uuid;

/// One answer as a load client saw it.
#[derive(Debug, Clone)]
struct Outcome {
    /// `None`: no HTTP answer at all (connection refused or reset, timeout).
    status: Option<u16>,
    problem_json: bool,
    code: String,
    took: Duration,
}

impl Outcome {
    fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// The one acceptable failure while a backing service is down.
    fn unavailable(&self) -> bool {
        self.status == Some(503) && self.problem_json && self.code == "service_unavailable"
    }
}

async fn send(request: reqwest::RequestBuilder) -> Outcome {
    let started = Instant::now();
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let problem_json = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/problem+json"));
            let body: Value = response.json().await.unwrap_or(Value::Null);
            Outcome {
                status: Some(status),
                problem_json,
                code: body["code"].as_str().unwrap_or_default().to_owned(),
                took: started.elapsed(),
            }
        }
        Err(_) => Outcome {
            status: None,
            problem_json: false,
            code: String::new(),
            took: started.elapsed(),
        },
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn scalar(app: &TestApp, sql: String) -> i64 {
    let row = app
        .db
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

/// Issues `count` keys `{prefix}-{i}` and returns their ids.
async fn keys(app: &TestApp, tenant: &Tenant, prefix: &str, count: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        ids.push(app.issued_key(tenant, &format!("{prefix}-{i}"), "e3").await);
    }
    ids
}

fn percentile(mut took: Vec<Duration>, p: f64) -> Duration {
    if took.is_empty() {
        return Duration::ZERO;
    }
    took.sort_unstable();
    let at = ((took.len() - 1) as f64 * p).round() as usize;
    took[at]
}

// ---------------------------------------------------------------------------
// PostgreSQL stopped under a mixed load
// ---------------------------------------------------------------------------

/// How long PostgreSQL stays down: longer than the pool's acquire timeout, so
/// that requests waiting for a connection are answered 503 meanwhile.
const PG_DOWN: Duration = Duration::from_secs(12);
/// How soon after the database the API must be ready again.
const READY_WITHIN: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Op {
    CreateKey,
    CreateRequest,
    ListEmployees,
    ListRequests,
}

/// What a load client did, when, what came back, and what it created.
type Sent = (Op, Instant, Outcome, String);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_outage_under_mixed_load_answers_503_and_leaves_no_partial_write() {
    let started = Instant::now();
    let mut postgres = Postgres::start().await;
    let redis = Redis::start().await;
    let app = Arc::new(TestApp::spawn_on_servers(&postgres.admin_url(), &redis.url()).await);
    let tenant = Arc::new(app.tenant("pg-outage", true).await);
    app.person(&tenant, "APP-1", &["approver"], Some("approver@pg.example"))
        .await;
    let targets = Arc::new(Mutex::new(keys(&app, &tenant, "PGK", 40).await));

    let stop = Arc::new(AtomicBool::new(false));
    let outcomes: Arc<Mutex<Vec<Sent>>> = Arc::default();
    let mut workers = Vec::new();
    for worker in 0..6usize {
        let (app, tenant, targets, stop, outcomes) = (
            app.clone(),
            tenant.clone(),
            targets.clone(),
            stop.clone(),
            outcomes.clone(),
        );
        workers.push(tokio::spawn(async move {
            let http = client();
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let mut op = match (worker + n) % 4 {
                    0 => Op::CreateKey,
                    1 => Op::CreateRequest,
                    2 => Op::ListEmployees,
                    _ => Op::ListRequests,
                };
                let target = if op == Op::CreateRequest {
                    let next = targets.lock().unwrap().pop();
                    if next.is_none() {
                        op = Op::ListRequests;
                    }
                    next
                } else {
                    None
                };
                let url = |path: &str| format!("{}{path}", app.base);
                let (request, subject) = match op {
                    Op::CreateKey => {
                        let marking = format!("LOAD-{worker}-{n}");
                        (
                            http.post(url("/v1/keys"))
                                .json(&json!({"marking": marking, "name": marking, "model": "e3"})),
                            marking,
                        )
                    }
                    Op::CreateRequest => {
                        let key = target.unwrap_or_default();
                        (
                            http.post(url("/v1/event-log-requests"))
                                .json(&json!({"target": {"type": "key", "id": key}})),
                            key,
                        )
                    }
                    Op::ListEmployees => (http.get(url("/v1/employees?limit=20")), String::new()),
                    Op::ListRequests => (
                        http.get(url("/v1/event-log-requests?limit=20")),
                        String::new(),
                    ),
                };
                let at = Instant::now();
                let outcome = send(request.bearer_auth(&tenant.admin)).await;
                outcomes.lock().unwrap().push((op, at, outcome, subject));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    // Readiness probes, each on its own so that a slow one does not delay the next.
    let probes: Arc<Mutex<Vec<(Instant, Outcome)>>> = Arc::default();
    let prober = {
        let (app, stop, probes) = (app.clone(), stop.clone(), probes.clone());
        tokio::spawn(async move {
            let http = client();
            while !stop.load(Ordering::Relaxed) {
                let (http, probes, url) =
                    (http.clone(), probes.clone(), format!("{}/readyz", app.base));
                tokio::spawn(async move {
                    let outcome = send(http.get(url)).await;
                    probes.lock().unwrap().push((Instant::now(), outcome));
                });
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    tokio::time::sleep(Duration::from_millis(1000)).await;
    // First the connections die under the running queries (as in a failover
    // or a proxy restart), then the whole server stops.
    let database = app
        .config
        .database_url
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let admin = countersign_infra::db::connect(&postgres.admin_url(), 1)
        .await
        .unwrap();
    let mut terminated = 0i64;
    let killing_until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < killing_until {
        let row = admin
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                format!(
                    "SELECT COUNT(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
                     WHERE datname = '{database}' AND pid <> pg_backend_pid()"
                ),
            ))
            .await
            .unwrap()
            .unwrap();
        terminated += row.try_get::<i64>("", "n").unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    admin.close().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let down_at = Instant::now();
    postgres.stop().await;
    tokio::time::sleep(PG_DOWN).await;
    let restart_at = Instant::now();
    postgres.resume().await;
    let up_at = Instant::now();
    // Load goes on until the API answered normally for a while.
    tokio::time::sleep(READY_WITHIN + Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    prober.await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let outcomes = outcomes.lock().unwrap().clone();
    let probes = probes.lock().unwrap().clone();
    let ready_after = probes
        .iter()
        .filter(|(answered, o)| *answered >= up_at && o.status == Some(200))
        .map(|(answered, _)| answered.duration_since(up_at))
        .min();
    let first_ok_after = outcomes
        .iter()
        .filter(|(_, at, o, _)| *at >= up_at && o.ok())
        .map(|(_, at, o, _)| (*at + o.took).duration_since(up_at))
        .min();
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for (_, _, o, _) in &outcomes {
        let key = match o.status {
            Some(s) if o.unavailable() => format!("{s} problem+json service_unavailable"),
            Some(s) => format!("{s} {}", o.code),
            None => "no answer".into(),
        };
        *by_status.entry(key).or_default() += 1;
    }
    let unexpected: Vec<_> = outcomes
        .iter()
        .filter(|(_, _, o, _)| !o.ok() && !o.unavailable())
        .collect();
    let unavailable = outcomes
        .iter()
        .filter(|(_, _, o, _)| o.unavailable())
        .count();
    let slowest_503 = outcomes
        .iter()
        .filter(|(_, _, o, _)| o.unavailable())
        .map(|(_, _, o, _)| o.took)
        .max()
        .unwrap_or_default();
    // Probes sent after the stop and answered before the restart began.
    let probes_down = probes
        .iter()
        .filter(|(answered, o)| *answered - o.took > down_at && *answered < restart_at)
        .collect::<Vec<_>>();
    let probe_503 = probes_down
        .iter()
        .filter(|(_, o)| o.status == Some(503))
        .count();

    // No partial writes: whatever exists is whole (history entry, outbox mail),
    // and whatever was answered 201 exists once.
    let (mut partial, mut lost, mut duplicated, mut committed_despite_error) = (0, 0, 0, 0);
    let mut created = 0;
    for (op, _, outcome, subject) in &outcomes {
        let (count, whole) = match op {
            Op::CreateKey => {
                let count = scalar(
                    &app,
                    format!("SELECT COUNT(*) AS n FROM keys WHERE marking = '{subject}'"),
                )
                .await;
                let whole = scalar(
                    &app,
                    format!(
                        "SELECT COUNT(*) AS n FROM keys k WHERE k.marking = '{subject}' AND EXISTS \
                         (SELECT 1 FROM history_entries h WHERE h.subject_id = k.id \
                          AND h.action = 'key.created')"
                    ),
                )
                .await;
                (count, whole)
            }
            Op::CreateRequest => {
                let count = scalar(
                    &app,
                    format!(
                        "SELECT COUNT(*) AS n FROM event_log_requests WHERE target_id = '{subject}'"
                    ),
                )
                .await;
                let whole = scalar(
                    &app,
                    format!(
                        "SELECT COUNT(*) AS n FROM event_log_requests r WHERE r.target_id = '{subject}' \
                         AND EXISTS (SELECT 1 FROM history_entries h WHERE h.subject_id = r.id) \
                         AND EXISTS (SELECT 1 FROM mail_outbox m \
                                     WHERE m.body LIKE '%/requests/' || r.id::text || '%')"
                    ),
                )
                .await;
                (count, whole)
            }
            _ => continue,
        };
        created += count;
        partial += count - whole;
        duplicated += (count - 1).max(0);
        if outcome.ok() && count == 0 {
            lost += 1;
        }
        if !outcome.ok() && count > 0 {
            committed_despite_error += 1;
        }
    }
    let verify = app.get("/v1/history/verify", &tenant.admin).await;

    println!(
        "postgres outage: {} requests ({:?}); {terminated} connections terminated under load, then PostgreSQL down {:?}; 503 problem+json {unavailable} \
         (slowest {slowest_503:?}), unexpected {}; readiness probes while down {} (503: {probe_503}); \
         ready {ready_after:?} after PostgreSQL was back, first normal answer {first_ok_after:?}; \
         rows created {created}, partial {partial}, lost {lost}, duplicated {duplicated}, \
         committed though answered with an error {committed_despite_error}; history verify {}; {:?}",
        outcomes.len(),
        by_status,
        up_at.duration_since(down_at),
        unexpected.len(),
        probes_down.len(),
        verify.status,
        started.elapsed()
    );
    assert!(
        unexpected.is_empty(),
        "every failure must be a 503 problem+json: {unexpected:#?}"
    );
    assert!(unavailable > 0, "the outage was answered 503 meanwhile");
    assert!(
        probe_503 > 0 && probes_down.iter().all(|(_, o)| o.status == Some(503)),
        "readiness while down: {probes_down:?}"
    );
    let ready_after = ready_after.expect("ready again");
    assert!(
        ready_after <= READY_WITHIN,
        "ready {ready_after:?} after the database"
    );
    assert_eq!((partial, lost, duplicated), (0, 0, 0));
    assert_eq!(verify.assert(200)["valid"], true);
}

// ---------------------------------------------------------------------------
// Redis stopped during long polls and logins
// ---------------------------------------------------------------------------

/// An agent with a remote unit; returns its access token.
async fn agent_token(app: &TestApp, tenant: &Tenant) -> String {
    app.site(tenant).await.token
}

/// Keys approved while the agent long-polls the other replica.
const APPROVALS: usize = 12;
/// Redis is stopped after this many approvals and started again after `REDIS_BACK`.
const REDIS_DOWN: usize = 3;
const REDIS_BACK: usize = 9;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_outage_degrades_long_polls_and_throttling_but_loses_nothing() {
    use countersign_domain::auth::LOGIN_FAILURES_ALLOWED;

    let started = Instant::now();
    let postgres = Postgres::start().await;
    let mut redis = Redis::start().await;
    let first = TestApp::spawn_on_servers(&postgres.admin_url(), &redis.url()).await;
    let second = Arc::new(first.replica().await);
    let tenant = first.tenant("redis-outage", true).await;
    let (_, approver) = first
        .person(
            &tenant,
            "APP-1",
            &["approver"],
            Some("approver@redis.example"),
        )
        .await;
    // A credential under attack, and one whose holder logs in normally.
    first
        .person(&tenant, "VICTIM-1", &["cylinder_programmer"], None)
        .await;
    first
        .person(&tenant, "USER-1", &["cylinder_programmer"], None)
        .await;
    let key_ids = keys(&first, &tenant, "RK", APPROVALS).await;
    let token = agent_token(&first, &tenant).await;

    // The agent long-polls the second replica; approvals happen on the first.
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let polls: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let poller = {
        let (second, token, stop, seen, polls) = (
            second.clone(),
            token.clone(),
            stop.clone(),
            seen.clone(),
            polls.clone(),
        );
        tokio::spawn(async move {
            let http = client();
            let mut since = String::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let url = format!("{}/v1/agent/work?since={since}&wait=20", second.base);
                let reply = http.get(url).bearer_auth(&token).send().await;
                let (status, body) = match reply {
                    Ok(r) => (Some(r.status().as_u16()), r.json::<Value>().await.ok()),
                    Err(_) => (None, None),
                };
                let body = body.unwrap_or(Value::Null);
                polls.lock().unwrap().push(Outcome {
                    status,
                    problem_json: false,
                    code: body["code"].as_str().unwrap_or_default().to_owned(),
                    took: started.elapsed(),
                });
                if status == Some(200) {
                    since = body["version"].as_str().unwrap_or_default().to_owned();
                    let now = Instant::now();
                    let mut seen = seen.lock().unwrap();
                    for key in body["keys"].as_array().into_iter().flatten() {
                        if let Some(marking) = key["key_marking"].as_str() {
                            seen.entry(marking.to_owned()).or_insert(now);
                        }
                    }
                } else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut approved_at: HashMap<String, (Instant, bool)> = HashMap::new();
    let mut logins: BTreeMap<&str, Vec<u16>> = BTreeMap::new();
    let mut outage = None;
    let mut login_took = Duration::ZERO;
    for (i, key) in key_ids.iter().enumerate() {
        if i == REDIS_DOWN {
            redis.stop().await;
            outage = Some(Instant::now());
            let login_started = Instant::now();
            // Guessing a PIN while Redis is down, on one replica and on the other.
            for _ in 0..LOGIN_FAILURES_ALLOWED + 3 {
                let status = first.login(&tenant.slug, "VICTIM-1", "000000").await.status;
                logins
                    .entry("wrong PIN, first replica, Redis down")
                    .or_default()
                    .push(status.as_u16());
            }
            for _ in 0..LOGIN_FAILURES_ALLOWED + 3 {
                let status = second
                    .login(&tenant.slug, "VICTIM-1", "000000")
                    .await
                    .status;
                logins
                    .entry("wrong PIN, second replica, Redis down")
                    .or_default()
                    .push(status.as_u16());
            }
            let status = first.login(&tenant.slug, "USER-1", "97531").await.status;
            logins
                .entry("right PIN, Redis down")
                .or_default()
                .push(status.as_u16());
            login_took = login_started.elapsed() / (2 * (LOGIN_FAILURES_ALLOWED + 3) + 1);
        }
        if i == REDIS_BACK {
            redis.resume().await;
            let status = first.login(&tenant.slug, "VICTIM-1", "000000").await.status;
            logins
                .entry("wrong PIN, first replica, Redis back")
                .or_default()
                .push(status.as_u16());
            let status = first.login(&tenant.slug, "USER-1", "97531").await.status;
            logins
                .entry("right PIN, Redis back")
                .or_default()
                .push(status.as_u16());
        }
        let created = first.request_key_readout(&tenant.admin, key).await;
        first.approve(&created, &approver).await;
        let during_outage = (REDIS_DOWN..REDIS_BACK).contains(&i);
        approved_at.insert(format!("RK-{i}"), (Instant::now(), during_outage));
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    let outage = outage.unwrap().elapsed();

    // Everything approved reaches the agent, within the database re-check at worst.
    let deadline = Instant::now() + countersign_infra::signal::RECHECK * 3;
    while seen.lock().unwrap().len() < APPROVALS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let seen = seen.lock().unwrap().clone();
    let (mut normal, mut degraded) = (Duration::ZERO, Duration::ZERO);
    for (marking, (at, during_outage)) in &approved_at {
        if let Some(seen_at) = seen.get(marking) {
            let delay = seen_at.saturating_duration_since(*at);
            let worst = if *during_outage {
                &mut degraded
            } else {
                &mut normal
            };
            *worst = (*worst).max(delay);
        }
    }
    let missed = APPROVALS - seen.len();
    let polls = polls.lock().unwrap().clone();
    let failed_polls = polls.iter().filter(|o| o.status != Some(200)).count();
    // What got past the throttle: wrong PINs answered 401 rather than 429.
    let guesses = |label: &str| logins[label].iter().filter(|s| **s == 401).count();
    let guesses_first = guesses("wrong PIN, first replica, Redis down");
    let guesses_second = guesses("wrong PIN, second replica, Redis down");
    println!(
        "redis outage: Redis down {outage:?}; approvals {APPROVALS}, seen by the long-polling agent {}, \
         missed {missed}; polls {} (not 200: {failed_polls}); slowest wake-up with Redis {normal:?}, \
         during the outage {degraded:?} (re-check every {:?}); logins {logins:?}; \
         wrong PINs let through per replica during the outage: {guesses_first} and {guesses_second} \
         (allowed {LOGIN_FAILURES_ALLOWED}); a login during the outage took {login_took:?}; {:?}",
        seen.len(),
        polls.len(),
        countersign_infra::signal::RECHECK,
        started.elapsed()
    );
    poller.abort();
    assert_eq!(missed, 0, "approvals the agent never saw");
    assert_eq!(failed_polls, 0, "long polls must keep answering: {polls:?}");
    assert!(
        normal < Duration::from_secs(2),
        "wake-ups with Redis: {normal:?}"
    );
    assert!(
        degraded <= countersign_infra::signal::RECHECK + Duration::from_secs(2),
        "wake-ups during the outage: {degraded:?}"
    );
    assert!(guesses_first <= LOGIN_FAILURES_ALLOWED as usize);
    assert!(guesses_second <= LOGIN_FAILURES_ALLOWED as usize);
    assert!(logins["wrong PIN, first replica, Redis down"].ends_with(&[429, 429, 429]));
    assert_eq!(
        logins["wrong PIN, first replica, Redis back"],
        [429],
        "still throttled"
    );
    assert_eq!(logins["right PIN, Redis down"], [200]);
    assert_eq!(logins["right PIN, Redis back"], [200]);
}

// ---------------------------------------------------------------------------
// The SMTP server down during 100 notifications
// ---------------------------------------------------------------------------

const NOTIFICATIONS: usize = 100;
/// Notifications queued before the SMTP server goes down; the rest are queued
/// while it is down.
const BEFORE_SMTP_DOWN: usize = 30;
const SMTP_DOWN_AT_LEAST: Duration = Duration::from_secs(4);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn smtp_outage_during_100_notifications_delivers_each_once() {
    let started = Instant::now();
    let postgres = Postgres::start().await;
    let redis = Redis::start().await;
    let sink = SmtpSink::start().await;
    let smtp_url = sink.url();
    let (app, mailer) =
        TestApp::spawn_on_servers_with(&postgres.admin_url(), &redis.url(), |config| {
            config.smtp_url = Some(smtp_url)
        })
        .await;
    // Two outbox workers on connections of their own, as two replicas run them.
    let other = Arc::new(
        Mailer::new(
            countersign_infra::db::connect(app.config.worker_database_url.as_ref().unwrap(), 2)
                .await
                .unwrap(),
            &MailerSettings {
                smtp_url: Some(sink.url()),
                mail_dir: std::env::temp_dir(),
                from: app.config.mail_from.clone(),
                max_attempts: app.config.mail_max_attempts,
            },
        )
        .unwrap(),
    );
    let workers = [
        tokio::spawn(countersign_api::workers::deliver_mail(
            mailer,
            TestApp::MAIL_EVERY,
        )),
        tokio::spawn(countersign_api::workers::deliver_mail(
            other,
            TestApp::MAIL_EVERY,
        )),
    ];
    let tenant = app.tenant("smtp-outage", true).await;
    let approver = "approver@smtp.example";
    app.person(&tenant, "APP-1", &["approver"], Some(approver))
        .await;
    let key_ids = keys(&app, &tenant, "SK", NOTIFICATIONS).await;

    // Each request notifies the approver once.
    let mut requests = Vec::with_capacity(NOTIFICATIONS);
    let mut down_at = None;
    for (i, key) in key_ids.iter().enumerate() {
        if i == BEFORE_SMTP_DOWN {
            sink.stop().await;
            down_at = Some(Instant::now());
        }
        let created = app.request_key_readout(&tenant.admin, key).await;
        requests.push(created["id"].as_str().unwrap().to_owned());
    }
    let down_at = down_at.unwrap();
    let delivered_before_outage = sink.received().len();
    tokio::time::sleep(SMTP_DOWN_AT_LEAST.saturating_sub(down_at.elapsed())).await;
    let while_down = sink.received().len();
    sink.restart().await;
    let back_at = Instant::now();
    let outage = back_at.duration_since(down_at);

    // Wait until every notification arrived, then a little longer for duplicates.
    let ours = |mails: &[countersign_tests::ReceivedMail]| -> HashMap<String, usize> {
        let mut count = HashMap::new();
        for mail in mails
            .iter()
            .filter(|m| m.rcpt_tos.iter().any(|r| r == approver))
        {
            if let Some(id) = requests.iter().find(|id| mail.body.contains(id.as_str())) {
                *count.entry(id.clone()).or_default() += 1;
            }
        }
        count
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while ours(&sink.received()).len() < NOTIFICATIONS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all_after = back_at.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let received = sink.received();
    let counts = ours(&received);
    let delivered = counts.len();
    let lost = NOTIFICATIONS - delivered;
    let duplicated: usize = counts.values().map(|n| n.saturating_sub(1)).sum();
    let message_ids: HashSet<&str> = received.iter().map(|m| m.message_id.as_str()).collect();
    let pending = scalar(
        &app,
        "SELECT COUNT(*) AS n FROM mail_outbox WHERE status <> 'sent'".to_owned(),
    )
    .await;
    let max_attempts = scalar(
        &app,
        "SELECT COALESCE(MAX(attempts), 0)::bigint AS n FROM mail_outbox".to_owned(),
    )
    .await;
    println!(
        "smtp outage: {NOTIFICATIONS} notifications, {BEFORE_SMTP_DOWN} queued before the SMTP server \
         went down ({delivered_before_outage} delivered by then), {while_down} received while it was \
         down; down {outage:?}; all delivered {all_after:?} after it returned; delivered {delivered}, \
         lost {lost}, duplicated {duplicated}; mails received {} (distinct Message-IDs {}); \
         outbox rows not sent {pending}, most attempts of one mail {max_attempts}; {:?}",
        received.len(),
        message_ids.len(),
        started.elapsed()
    );
    for worker in workers {
        worker.abort();
    }
    assert_eq!((lost, duplicated), (0, 0));
    assert_eq!(message_ids.len(), received.len(), "a Message-ID twice");
    assert_eq!(pending, 0);
}

// ---------------------------------------------------------------------------
// Slow clients and hostile bodies
// ---------------------------------------------------------------------------

/// The resident memory of this process (the server runs in it), in bytes.
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

/// A request sent over a raw connection: `head`, then the pieces of the body
/// with `pause` before each, while the answer is read; stops sending once the
/// server answered. Returns the status (`None`: closed without an answer, or
/// no answer within `patience`) and when it came.
async fn raw(
    addr: &str,
    head: String,
    body: impl Iterator<Item = Vec<u8>> + Send + 'static,
    pause: Duration,
    patience: Duration,
) -> (Option<u16>, Duration) {
    let started = Instant::now();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    let writer = tokio::spawn(async move {
        if wr.write_all(head.as_bytes()).await.is_ok() {
            for piece in body {
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
                if wr.write_all(&piece).await.is_err() {
                    break;
                }
            }
        }
        // The connection stays open (no FIN) until the answer was read.
        let _ = finished.await;
        drop(wr);
    });
    let read = async {
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        let text = String::from_utf8_lossy(&answer);
        text.split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
    };
    let status = tokio::time::timeout(patience, read).await.ok().flatten();
    let took = started.elapsed();
    let _ = done.send(());
    writer.abort();
    (status, took)
}

fn post_head(path: &str, token: &str, length: Option<usize>) -> String {
    let length = match length {
        Some(n) => format!("Content-Length: {n}\r\n"),
        None => "Transfer-Encoding: chunked\r\n".to_owned(),
    };
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\n{length}\r\n"
    )
}

/// A body sent whole, in pieces of 64 KiB.
fn pieces(body: Vec<u8>) -> impl Iterator<Item = Vec<u8>> + Send + 'static {
    body.chunks(64 * 1024)
        .map(<[u8]>::to_vec)
        .collect::<Vec<_>>()
        .into_iter()
}

fn event_json(seq: usize) -> String {
    format!(
        r#"{{"seq":{seq},"occurred_at":"2025-01-15T12:30:00Z","kind":"access_granted","key_marking":"K-1"}}"#
    )
}

/// `total` bytes of an endless event batch, chunked-encoded, made as it is sent.
fn endless_events(total: usize) -> impl Iterator<Item = Vec<u8>> + Send + 'static {
    const PIECE: usize = 64 * 1024;
    let mut item = event_json(1);
    item.push(',');
    let mut data = format!(r#"{{"lease_token":"{}","events":["#, Uuid::new_v4()).into_bytes();
    while data.len() < PIECE {
        data.extend_from_slice(item.as_bytes());
    }
    let frame = |data: &[u8]| {
        let mut chunk = format!("{:x}\r\n", data.len()).into_bytes();
        chunk.extend_from_slice(data);
        chunk.extend_from_slice(b"\r\n");
        chunk
    };
    let first = frame(&data);
    let mut rest = Vec::new();
    while rest.len() < PIECE {
        rest.extend_from_slice(item.as_bytes());
    }
    let rest = frame(&rest);
    std::iter::once(first)
        .chain(std::iter::repeat_n(rest, total / PIECE))
        .chain(std::iter::once(b"0\r\n\r\n".to_vec()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_bodies_and_slow_clients_get_a_4xx_and_disturb_nobody() {
    let started = Instant::now();
    let postgres = Postgres::start().await;
    let redis = Redis::start().await;
    let app = Arc::new(TestApp::spawn_on_servers(&postgres.admin_url(), &redis.url()).await);
    let tenant = Arc::new(app.tenant("hostile", true).await);
    let agent = agent_token(&app, &tenant).await;
    let addr = app.base.trim_start_matches("http://").to_owned();

    // A well-behaved client all along.
    let stop = Arc::new(AtomicBool::new(false));
    let normal: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let bystander = {
        let (app, tenant, stop, normal) =
            (app.clone(), tenant.clone(), stop.clone(), normal.clone());
        tokio::spawn(async move {
            let http = client();
            while !stop.load(Ordering::Relaxed) {
                let url = format!("{}/v1/employees?limit=5", app.base);
                let outcome = send(http.get(url).bearer_auth(&tenant.admin)).await;
                normal.lock().unwrap().push(outcome);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    // The highest resident memory seen.
    let peak = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss() as usize, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let baseline = rss();

    // Slow clients, a byte a second, alongside everything else.
    let slow_head = {
        let addr = addr.clone();
        let head = "GET /v1/employees HTTP/1.1\r\nHost: localhost\r\n\r\n";
        let bytes: Vec<Vec<u8>> = head.bytes().map(|b| vec![b]).collect();
        tokio::spawn(async move {
            raw(
                &addr,
                String::new(),
                bytes.into_iter(),
                Duration::from_secs(1),
                Duration::from_secs(30),
            )
            .await
        })
    };
    let slow_body = {
        let (addr, head) = (
            addr.clone(),
            post_head("/v1/employees", &tenant.admin, Some(200)),
        );
        let bytes: Vec<Vec<u8>> = (0..200).map(|_| vec![b' ']).collect();
        tokio::spawn(async move {
            raw(
                &addr,
                head,
                bytes.into_iter(),
                Duration::from_secs(1),
                Duration::from_secs(45),
            )
            .await
        })
    };

    let device = Uuid::new_v4();
    let job = Uuid::new_v4();
    let events_path = format!("/v1/agent/jobs/{job}/events");
    let mut cases: Vec<(&str, Option<u16>, Duration, u64)> = Vec::new();
    let mut case = async |name: &'static str,
                          head: String,
                          body: Box<dyn Iterator<Item = Vec<u8>> + Send>| {
        let before = rss();
        peak.store(0, Ordering::Relaxed);
        let (status, took) = raw(&addr, head, body, Duration::ZERO, Duration::from_secs(30)).await;
        let grew = (peak.load(Ordering::Relaxed) as u64).saturating_sub(before);
        cases.push((name, status, took, grew));
    };

    let ten_mib = 10 * 1024 * 1024;
    case(
        "10 MiB body (64 KiB route)",
        post_head("/v1/employees", &tenant.admin, Some(ten_mib)),
        Box::new(pieces(vec![b' '; ten_mib])),
    )
    .await;
    case(
        "10 MiB body, chunked (64 KiB route)",
        post_head("/v1/employees", &tenant.admin, None),
        Box::new(endless_events(ten_mib)),
    )
    .await;
    case(
        "200 MiB body, chunked (agent route, 16 MiB limit)",
        post_head(&events_path, &agent, None),
        Box::new(endless_events(200 * 1024 * 1024)),
    )
    .await;
    let deep = 100_000;
    let nested = format!(
        r#"{{"lease_token":"{}","events":{}{}}}"#,
        Uuid::new_v4(),
        "[".repeat(deep),
        "]".repeat(deep)
    );
    case(
        "100,000-deep nesting (agent route)",
        post_head(&events_path, &agent, Some(nested.len())),
        Box::new(pieces(nested.into_bytes())),
    )
    .await;
    let nested = format!(r#"{{"name":{}{}}}"#, "[".repeat(30_000), "]".repeat(30_000));
    case(
        "30,000-deep nesting (64 KiB route)",
        post_head("/v1/employees", &tenant.admin, Some(nested.len())),
        Box::new(pieces(nested.into_bytes())),
    )
    .await;
    let invalid = b"{\"name\":\"Ada \xff\xfe\xc3\x28 Lovelace\"}".to_vec();
    case(
        "invalid UTF-8",
        post_head("/v1/employees", &tenant.admin, Some(invalid.len())),
        Box::new(pieces(invalid)),
    )
    .await;
    let long = format!(
        r#"{{"device_id":"{device}","key_marking":"{}"}}"#,
        "A".repeat(1024 * 1024)
    );
    case(
        "1 MiB string (agent route)",
        post_head("/v1/agent/key-insertions", &agent, Some(long.len())),
        Box::new(pieces(long.into_bytes())),
    )
    .await;
    let long = format!(r#"{{"name":"{}"}}"#, "A".repeat(1024 * 1024));
    case(
        "1 MiB string (64 KiB route)",
        post_head("/v1/employees", &tenant.admin, Some(long.len())),
        Box::new(pieces(long.into_bytes())),
    )
    .await;
    let many = format!(
        r#"{{"lease_token":"{}","events":[{}]}}"#,
        Uuid::new_v4(),
        (1..=100_000).map(event_json).collect::<Vec<_>>().join(",")
    );
    case(
        "100,000 array items (agent route, at most 50,000)",
        post_head(&events_path, &agent, Some(many.len())),
        Box::new(pieces(many.into_bytes())),
    )
    .await;
    let many = format!("[{}1]", "1,".repeat(500_000));
    case(
        "500,000 array items of the wrong type (agent route)",
        post_head("/v1/agent/key-insertions", &agent, Some(many.len())),
        Box::new(pieces(many.into_bytes())),
    )
    .await;

    let slow_head = slow_head.await.unwrap();
    let slow_body = slow_body.await.unwrap();
    stop.store(true, Ordering::Relaxed);
    bystander.await.unwrap();
    sampler.await.unwrap();
    let normal = normal.lock().unwrap().clone();
    let normal_failed = normal.iter().filter(|o| !o.ok()).count();
    let took: Vec<Duration> = normal.iter().map(|o| o.took).collect();
    let (p50, p99, max) = (
        percentile(took.clone(), 0.5),
        percentile(took.clone(), 0.99),
        percentile(took, 1.0),
    );
    println!(
        "hostile bodies ({:?}, resident memory before {} MiB):",
        started.elapsed(),
        baseline >> 20
    );
    for (name, status, took, grew) in &cases {
        println!(
            "  {name}: {status:?} in {took:?}, memory +{} MiB",
            grew >> 20
        );
    }
    println!(
        "  slow headers, a byte a second: {:?} in {:?}",
        slow_head.0, slow_head.1
    );
    println!(
        "  slow body, a byte a second: {:?} in {:?}",
        slow_body.0, slow_body.1
    );
    println!(
        "  a normal client meanwhile: {} requests, failed {normal_failed}, p50 {p50:?}, p99 {p99:?}, max {max:?}",
        normal.len()
    );
    for (name, status, took, _) in &cases {
        assert!(
            status.is_some_and(|s| (400..500).contains(&s)),
            "{name}: {status:?}"
        );
        assert!(*took < Duration::from_secs(10), "{name}: {took:?}");
    }
    // Other tests share this process, so memory is only a figure, except that
    // an endless body must cost no more than the body limit and some slack.
    let (name, _, _, grew) = cases
        .iter()
        .find(|(name, ..)| name.starts_with("200 MiB"))
        .unwrap();
    assert!(*grew < 128 << 20, "{name}: memory +{grew}");
    assert_eq!(slow_head.0, Some(408), "slow headers");
    assert!(
        slow_head.1 < Duration::from_secs(15),
        "slow headers: {:?}",
        slow_head.1
    );
    // A body that trickles in is cut off by the request deadline with a 408.
    let deadline = Duration::from_secs(app.config.request_timeout_secs);
    assert!(
        slow_body.0 == Some(408) && slow_body.1 < deadline + Duration::from_secs(5),
        "slow body: {slow_body:?}"
    );
    assert_eq!(normal_failed, 0);
    assert!(p99 < Duration::from_secs(1), "normal client p99 {p99:?}");
}
