//! The test harness: a real server over HTTP, on a database of its own.
//!
//! Each test gets a fresh SQLite file or a fresh PostgreSQL database named by a
//! UUID (at `TEST_DATABASE_URL`, default the local server), Redis at
//! `TEST_REDIS_URL` for PostgreSQL runs, and a server on a free port.

#![allow(clippy::unwrap_used)]

pub mod process;
pub mod servers;
pub mod smtp;

pub use smtp::{ReceivedMail, SmtpSink};

use std::net::TcpListener;
use std::sync::Arc;

use countersign_api::config::Config;
use countersign_api::metrics::Metrics;
use countersign_api::server::{self, Served};
use countersign_infra::mail::Mailer;
use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::{Value, json};
use uuid::Uuid;

pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";
pub const OPERATOR_KEY: &str = "test-operator-key";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub base: String,
    /// The metrics listener, `http://127.0.0.1:PORT`: only `GET /metrics`.
    pub metrics_base: String,
    pub backend: Backend,
    pub db: DatabaseConnection,
    /// The server's own store, for what the API does not offer (storing events, retention).
    pub store: std::sync::Arc<countersign_infra::Store>,
    /// The server's configuration, for replicas.
    pub config: Config,
    client: reqwest::Client,
    metrics: Arc<Metrics>,
    server: actix_web::dev::ServerHandle,
    metrics_server: actix_web::dev::ServerHandle,
    _dir: Option<tempfile::TempDir>,
}

/// An HTTP answer: status and JSON body (`Value::Null` when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The problem's `code`.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }

    /// Asserts the status only.
    pub fn assert_status(&self, status: u16) {
        self.assert_status_because(status, "unexpected status");
    }

    /// Asserts the status; `why` says what the test expects.
    pub fn assert_status_because(&self, status: u16, why: &str) {
        assert_eq!(self.status.as_u16(), status, "{why}: {:#}", self.body);
    }

    pub fn assert(self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected answer: {:#}",
            self.body
        );
        self.body
    }
}

/// The PostgreSQL server of the tests, as its superuser.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The login roles the API and its background work connect as in tests
/// (`sql/login-roles.sql`).
pub const API_LOGIN: &str = "countersign_test_api";
pub const WORKER_LOGIN: &str = "countersign_test_worker";

/// One database, as each of its roles connects to it.
#[derive(Debug, Clone)]
pub struct DatabaseUrls {
    /// The owner (the server's superuser here): migrations, and tests that
    /// look behind the application's back.
    pub owner: String,
    /// A member of `countersign_api`: row-level security binds it.
    pub api: String,
    /// A member of `countersign_worker`: background work across tenants.
    pub worker: String,
}

/// A fresh, migrated database on the server of `admin`, with the login roles
/// of the API and the workers.
pub async fn migrated_database_on(admin: &str) -> DatabaseUrls {
    let owner = postgres_database_on(admin).await;
    let db = countersign_infra::db::connect(&owner, 1).await.unwrap();
    countersign_infra::db::migrate(&db).await.unwrap();
    db.close().await.unwrap();
    login_roles(admin).await;
    DatabaseUrls {
        api: as_role(&owner, API_LOGIN),
        worker: as_role(&owner, WORKER_LOGIN),
        owner,
    }
}

/// Creates the tests' login roles (`sql/login-roles.sql`) unless they exist;
/// their group roles come with the first migration on the server. Roles belong to the whole
/// server, so tests creating them at once may collide: then it tries again.
pub async fn login_roles(admin: &str) {
    let sql = include_str!("../sql/login-roles.sql");
    let db = countersign_infra::db::connect(admin, 1).await.unwrap();
    let mut attempts = 0;
    while let Err(err) = db.execute_unprepared(sql).await {
        attempts += 1;
        assert!(attempts < 20, "cannot create the test roles: {err}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    db.close().await.unwrap();
}

/// `url` with `role` as its user.
pub fn as_role(url: &str, role: &str) -> String {
    let mut url = reqwest::Url::parse(url).unwrap();
    url.set_username(role).unwrap();
    url.set_password(None).unwrap();
    url.to_string()
}

/// Creates a fresh database on the server of `admin` (a URL ending in a database
/// name) and returns its URL.
pub async fn postgres_database_on(admin: &str) -> String {
    let name = format!("cs_test_{}", Uuid::new_v4().simple());
    let conn = countersign_infra::db::connect(admin, 1)
        .await
        .expect("PostgreSQL for tests (TEST_DATABASE_URL)");
    conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    conn.close().await.unwrap();
    let (base, _) = admin.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, |_| {}).await.0
    }

    /// [`TestApp::spawn`] with the configuration adjusted before the server is
    /// wired; also hands out the app's outbox worker, which nothing runs yet.
    pub async fn spawn_with(
        backend: Backend,
        adjust: impl FnOnce(&mut Config),
    ) -> (TestApp, Arc<Mailer>) {
        if backend == Backend::Postgres {
            let redis =
                std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
            return Self::spawn_on_servers_with(&admin_url(), &redis, adjust).await;
        }
        // Embedded mode generates the history signing key beside the database.
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            listen: "127.0.0.1:0".into(),
            metrics_listen: "127.0.0.1:0".into(),
            database_url: format!("sqlite://{}", dir.path().join("test.db").display()),
            operator_key: Some(OPERATOR_KEY.into()),
            jwt_secret: Some(JWT_SECRET.into()),
            demo: false,
            ..Config::default()
        };
        adjust(&mut config);
        let db = countersign_infra::db::connect(&config.database_url, 2)
            .await
            .unwrap();
        countersign_infra::db::migrate(&db).await.unwrap();
        Self::serve(config, backend, db, Some(dir)).await
    }

    /// [`TestApp::spawn`] on PostgreSQL and Redis servers of the caller's own
    /// (e.g. ones it stops and starts): a fresh database on the server of
    /// `admin_url`, and `redis_url`.
    pub async fn spawn_on_servers(admin_url: &str, redis_url: &str) -> TestApp {
        Self::spawn_on_servers_with(admin_url, redis_url, |_| {})
            .await
            .0
    }

    /// Stops the server at once, as if its process died: open connections are
    /// dropped and the ports are refused until [`TestApp::restart`].
    pub async fn stop(&self) {
        self.server.stop(false).await;
        self.metrics_server.stop(false).await;
    }

    /// Stops the server and starts a new one on the same ports, database, Redis
    /// and keys, as a restarted API process would be.
    pub async fn restart(&mut self) {
        self.stop().await;
        let listener = bind_again(&self.base).await;
        let metrics_listener = bind_again(&self.metrics_base).await;
        let wiring = server::wire(&self.config).await.unwrap();
        self.store = wiring.store.clone();
        self.metrics = wiring.state.metrics.clone().into_inner();
        (self.server, self.metrics_server) = run(wiring.state, listener, metrics_listener);
    }

    /// A second API process on the same database, Redis and keys, as another
    /// replica behind a load balancer would be.
    pub async fn replica(&self) -> TestApp {
        Self::serve(self.config.clone(), self.backend, self.db.clone(), None)
            .await
            .0
    }

    async fn serve(
        config: Config,
        backend: Backend,
        db: DatabaseConnection,
        dir: Option<tempfile::TempDir>,
    ) -> (TestApp, Arc<Mailer>) {
        let wiring = server::wire(&config).await.unwrap();
        let store = wiring.store.clone();
        let metrics = wiring.state.metrics.clone().into_inner();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let metrics_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let metrics_base = format!("http://{}", metrics_listener.local_addr().unwrap());
        let (server, metrics_server) = run(wiring.state, listener, metrics_listener);
        let app = TestApp {
            base,
            metrics_base,
            backend,
            db,
            store,
            config,
            client: client_at(random_loopback()),
            metrics,
            server,
            metrics_server,
            _dir: dir,
        };
        (app, wiring.mailer)
    }

    /// The server's metrics, e.g. for running their worker with
    /// `countersign_api::workers::compute_metrics`.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// One round of the metrics worker: the counts over every tenant are
    /// computed now (no worker runs in tests unless a test starts one);
    /// `false` when the database did not answer.
    pub async fn compute_metrics(&self) -> bool {
        self.metrics.compute_table_counts().await
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        self.call_via(&self.client, method, path, token, body, &[])
            .await
    }

    /// [`TestApp::call`] through `client` (e.g. one of [`client_at`]), with
    /// extra request headers.
    pub async fn call_via(
        &self,
        client: &reqwest::Client,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// `POST /v1/auth/token` through `client`, with extra request headers.
    pub async fn token_via(
        &self,
        client: &reqwest::Client,
        grant: Value,
        headers: &[(&str, &str)],
    ) -> Reply {
        let path = "/v1/auth/token";
        self.call_via(client, Method::POST, path, None, Some(grant), headers)
            .await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn token(&self, grant: Value) -> Reply {
        self.call(Method::POST, "/v1/auth/token", None, Some(grant))
            .await
    }

    pub async fn login(&self, tenant: &str, marking: &str, pin: &str) -> Reply {
        self.token(json!({"grant_type": "programming_key", "tenant": tenant, "programming_key": marking, "pin": pin})).await
    }

    /// Requests the event log of key `key` as `token`; answers the request.
    pub async fn request_key_readout(&self, token: &str, key: &str) -> Value {
        self.post(
            "/v1/event-log-requests",
            token,
            json!({"target": {"type": "key", "id": key}}),
        )
        .await
        .assert(201)
    }

    /// Approves `request` (a request as the API answers it) as `approver`;
    /// answers the request after the decision.
    pub async fn approve(&self, request: &Value, approver: &str) -> Value {
        let id = request["id"].as_str().unwrap();
        self.post(
            &format!("/v1/event-log-requests/{id}/approve"),
            approver,
            json!({}),
        )
        .await
        .assert(200)
    }

    /// Time passes for one row, as its owner would see it: sets `column` of
    /// the row `id` of `table` to a minute ago, straight in the database
    /// (an expiry, a hold), so that a test need not wait for it.
    pub async fn let_time_pass(&self, table: &str, column: &str, id: Uuid) {
        let backend = self.db.get_database_backend();
        let sql = match backend {
            sea_orm::DbBackend::Postgres => {
                format!("UPDATE {table} SET {column} = $1 WHERE id = $2")
            }
            _ => format!("UPDATE {table} SET {column} = ? WHERE id = ?"),
        };
        let past = chrono::Utc::now() - chrono::Duration::minutes(1);
        let changed = self
            .db
            .execute_raw(sea_orm::Statement::from_sql_and_values(
                backend,
                sql,
                [past.into(), id.into()],
            ))
            .await
            .unwrap();
        assert_eq!(changed.rows_affected(), 1, "{table} {id}");
    }

    pub async fn operator(&self) -> String {
        let body = self
            .token(json!({"grant_type": "operator", "operator_key": OPERATOR_KEY}))
            .await
            .assert(200);
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// Provisions a tenant and returns it with a ready super administrator.
    /// The slug gets a random suffix: Redis (login throttling) is shared by all tests.
    pub async fn tenant(&self, slug: &str, approval_required: bool) -> Tenant {
        self.tenant_with(slug, json!({"approval_required": approval_required}))
            .await
    }

    /// Provisions a tenant with `settings` merged over the defaults (approver
    /// function on, Europe/Berlin, German, TTLs 48 h and 24 h, no approver
    /// hold, so that the approvers a test makes can decide at once) and
    /// returns it with a ready super administrator. The slug gets a random suffix.
    pub async fn tenant_with(&self, slug: &str, settings: Value) -> Tenant {
        let slug = &unique_slug(slug);
        let operator = self.operator().await;
        let mut body = json!({
            "slug": slug, "name": format!("Tenant {slug}"), "base_timezone": "Europe/Berlin", "locale": "de",
            "approval_required": true, "request_ttl_hours": 48, "execution_ttl_hours": 24, "approver_hold_hours": 0,
            "initial_admin": {"employee_name": "Ada Admin", "email": format!("ada@{slug}.example"), "programming_key_marking": "ADMIN-1"}
        });
        if let (Some(body), Some(settings)) = (body.as_object_mut(), settings.as_object()) {
            body.extend(settings.clone());
        }
        let created = self.post("/v1/tenants", &operator, body).await.assert(201);
        Tenant {
            id: created["tenant"]["id"].as_str().unwrap().parse().unwrap(),
            slug: slug.to_owned(),
            admin: self.first_admin(&created).await,
        }
    }

    /// The initial super administrator `ADMIN-1` of a tenant just provisioned
    /// (`created` is the answer of `POST /v1/tenants`) logs in with the
    /// one-time PIN, sets their own and logs in again; returns that token.
    pub async fn first_admin(&self, created: &Value) -> String {
        let slug = created["tenant"]["slug"].as_str().unwrap();
        let one_time = created["initial_pin"].as_str().unwrap();
        let first = self.login(slug, "ADMIN-1", one_time).await.assert(200);
        assert_eq!(first["pin_change_required"], true);
        let first = first["access_token"].as_str().unwrap();
        self.post(
            "/v1/me/pin",
            first,
            json!({"current_pin": one_time, "new_pin": "246810"}),
        )
        .await
        .assert(204);
        let admin = self.login(slug, "ADMIN-1", "246810").await.assert(200);
        admin["access_token"].as_str().unwrap().to_owned()
    }

    /// A user key of `model` issued to a new employee; returns its id.
    pub async fn issued_key(&self, tenant: &Tenant, marking: &str, model: &str) -> String {
        let holder = self
            .post(
                "/v1/employees",
                &tenant.admin,
                json!({"name": format!("Holder {marking}")}),
            )
            .await
            .assert(201);
        let key = self
            .post(
                "/v1/keys",
                &tenant.admin,
                json!({"marking": marking, "name": marking, "model": model}),
            )
            .await
            .assert(201);
        let id = key["id"].as_str().unwrap().to_owned();
        self.post(
            &format!("/v1/keys/{id}/issue"),
            &tenant.admin,
            json!({"employee_id": holder["id"]}),
        )
        .await
        .assert(200);
        id
    }

    /// Creates an employee and a programming key with `roles` issued to them,
    /// with a PIN set by the holder; returns the key's id and a token. An
    /// approver key gets its PIN before its role (nobody but its holder learns
    /// an approver's PIN): the role is granted last, an approver change.
    pub async fn person(
        &self,
        tenant: &Tenant,
        marking: &str,
        roles: &[&str],
        email: Option<&str>,
    ) -> (Uuid, String) {
        let employee = self
            .post(
                "/v1/employees",
                &tenant.admin,
                json!({"name": format!("Holder of {marking}"), "email": email}),
            )
            .await
            .assert(201);
        let approver = roles.contains(&"approver");
        let first_roles: Vec<&str> = roles.iter().copied().filter(|r| *r != "approver").collect();
        let key = self
            .post(
                "/v1/programming-keys",
                &tenant.admin,
                json!({"marking": marking, "name": marking, "roles": first_roles}),
            )
            .await
            .assert(201);
        let id = key["id"].as_str().unwrap();
        self.post(
            &format!("/v1/programming-keys/{id}/issue"),
            &tenant.admin,
            json!({"employee_id": employee["id"]}),
        )
        .await
        .assert(200);
        self.post(
            &format!("/v1/programming-keys/{id}/pin"),
            &tenant.admin,
            json!({"pin": "1357"}),
        )
        .await
        .assert(204);
        let first = self.login(&tenant.slug, marking, "1357").await.assert(200);
        let first = first["access_token"].as_str().unwrap();
        self.post(
            "/v1/me/pin",
            first,
            json!({"current_pin": "1357", "new_pin": "97531"}),
        )
        .await
        .assert(204);
        if approver {
            self.patch(
                &format!("/v1/programming-keys/{id}"),
                &tenant.admin,
                json!({"roles": roles}),
            )
            .await
            .assert(200);
        }
        let token = self.login(&tenant.slug, marking, "97531").await.assert(200);
        (
            id.parse().unwrap(),
            token["access_token"].as_str().unwrap().to_owned(),
        )
    }
}

/// A site with an agent: a remote unit `RU-1` and a desk unit `DU-1`, both
/// assigned to the agent `Site PC`, and the agent's access token.
pub struct Site {
    pub token: String,
    pub agent_id: String,
    pub wall: String,
    pub desk: String,
}

impl TestApp {
    /// The site's agent reports key `marking` inserted at its wall unit.
    pub async fn key_inserted(&self, site: &Site, marking: &str) -> Reply {
        self.post(
            "/v1/agent/key-insertions",
            &site.token,
            json!({"device_id": site.wall, "key_marking": marking}),
        )
        .await
    }

    pub async fn site(&self, tenant: &Tenant) -> Site {
        let device = |name: &str, kind: &str, serial: &str| {
            self.post(
                "/v1/remote-devices",
                &tenant.admin,
                json!({"name": name, "kind": kind, "serial": serial}),
            )
        };
        let wall = device("Wall", "remote_unit", "RU-1").await.assert(201);
        let desk = device("Desk", "desk_unit", "DU-1").await.assert(201);
        let agent = self
            .post("/v1/agents", &tenant.admin, json!({"name": "Site PC"}))
            .await
            .assert(201);
        let agent_id = agent["agent"]["id"].as_str().unwrap().to_owned();
        self.call(
            reqwest::Method::PUT,
            &format!("/v1/agents/{agent_id}/devices"),
            Some(&tenant.admin),
            Some(json!({"device_ids": [wall["id"], desk["id"]]})),
        )
        .await
        .assert(200);
        let login = self
            .token(json!({"grant_type": "agent", "agent_id": agent_id, "secret": agent["secret"]}))
            .await
            .assert(200);
        Site {
            token: login["access_token"].as_str().unwrap().to_owned(),
            agent_id,
            wall: wall["id"].as_str().unwrap().to_owned(),
            desk: desk["id"].as_str().unwrap().to_owned(),
        }
    }
}

/// Starts the API and its metrics listener on bound listeners.
fn run(
    state: Served,
    listener: TcpListener,
    metrics_listener: TcpListener,
) -> (actix_web::dev::ServerHandle, actix_web::dev::ServerHandle) {
    let metrics = server::run_metrics(state.metrics.clone(), metrics_listener).unwrap();
    let metrics_handle = metrics.handle();
    tokio::spawn(metrics);
    let running = server::run(state, listener).unwrap();
    let handle = running.handle();
    tokio::spawn(running);
    (handle, metrics_handle)
}

/// Binds the address of `base` (`http://HOST:PORT`) again once a stopped
/// server has let it go.
async fn bind_again(base: &str) -> TcpListener {
    let addr = base.trim_start_matches("http://");
    for _ in 0..100 {
        match TcpListener::bind(addr) {
            Ok(bound) => return bound,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
    panic!("cannot bind {addr} again")
}

/// A loopback address no other test is likely to use: login throttling
/// counts per client address, in a Redis that all tests share.
pub fn random_loopback() -> std::net::IpAddr {
    let [a, b, c, ..] = *Uuid::new_v4().as_bytes();
    std::net::Ipv4Addr::new(127, a, b, c.clamp(2, 254)).into()
}

/// An HTTP client whose connections come from `address` (any 127.x.y.z
/// reaches the server on 127.0.0.1).
pub fn client_at(address: std::net::IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(address)
        .build()
        .unwrap()
}

/// A slug no other test uses.
pub fn unique_slug(prefix: &str) -> String {
    format!("{prefix}-{}", &Uuid::new_v4().simple().to_string()[..8])
}

pub struct Tenant {
    pub id: Uuid,
    pub slug: String,
    /// A super administrator's access token.
    pub admin: String,
}

/// Runs an `async fn(TestApp)` scenario once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_databases {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$scenario($crate::TestApp::spawn($crate::Backend::Sqlite).await).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$scenario($crate::TestApp::spawn($crate::Backend::Postgres).await).await;
                }
            }
        )*
    };
}

impl TestApp {
    /// Like [`TestApp::spawn`], but mails go over SMTP to the returned sink,
    /// and the outbox worker runs every [`TestApp::MAIL_EVERY`].
    pub async fn spawn_with_smtp(backend: Backend) -> (TestApp, SmtpSink) {
        let sink = SmtpSink::start().await;
        let smtp_url = sink.url();
        let (app, mailer) =
            Self::spawn_with(backend, |config| config.smtp_url = Some(smtp_url)).await;
        tokio::spawn(countersign_api::workers::deliver_mail(
            mailer,
            Self::MAIL_EVERY,
        ));
        (app, sink)
    }

    /// How often the outbox worker of [`TestApp::spawn_with_smtp`] runs.
    pub const MAIL_EVERY: std::time::Duration = std::time::Duration::from_millis(100);
}

/// Runs an `async fn(TestApp, SmtpSink)` scenario once on SQLite and once on
/// PostgreSQL, with mail over SMTP.
#[macro_export]
macro_rules! on_both_databases_with_smtp {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let (app, sink) = $crate::TestApp::spawn_with_smtp($crate::Backend::Sqlite).await;
                    super::$scenario(app, sink).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let (app, sink) = $crate::TestApp::spawn_with_smtp($crate::Backend::Postgres).await;
                    super::$scenario(app, sink).await;
                }
            }
        )*
    };
}
