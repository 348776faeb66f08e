//! B1–B6: our side and its baseline, one after the other, each
//! `repetitions` times.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use countersign_domain::permission::PrincipalKind;
use countersign_domain::role::Role;
use countersign_infra::tokens::{AUDIENCE, Claims, ISSUER, TokenKeys};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, TransactionTrait};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::Settings;
use crate::load::{self, Outcome, Worker};
use crate::pgbench;
use crate::seed::{self, DataSet, Tenant};
use crate::server::{self, Server};

/// What a figure is held against.
#[derive(Debug, Clone, Copy)]
pub enum Goal {
    /// Ours divided by the baseline at least this.
    RatioAtLeast(f64),
    /// Ours at most this (in the figure's unit).
    AtMost(f64),
}

#[derive(Debug, Clone)]
pub struct Figure {
    pub bench: &'static str,
    pub what: String,
    pub unit: &'static str,
    pub ours: Vec<f64>,
    pub baseline: Vec<f64>,
    pub baseline_what: String,
    pub goal: Goal,
}

impl Figure {
    fn new(bench: &'static str, what: &str, unit: &'static str, goal: Goal) -> Self {
        Figure {
            bench,
            what: what.to_owned(),
            unit,
            ours: vec![],
            baseline: vec![],
            baseline_what: String::new(),
            goal,
        }
    }

    pub fn ours_median(&self) -> f64 {
        median(&self.ours)
    }

    pub fn baseline_median(&self) -> Option<f64> {
        (!self.baseline.is_empty()).then(|| median(&self.baseline))
    }

    pub fn ratio(&self) -> Option<f64> {
        self.baseline_median().map(|b| self.ours_median() / b)
    }

    pub fn met(&self) -> bool {
        match self.goal {
            Goal::RatioAtLeast(goal) => self.ratio().is_some_and(|r| r >= goal),
            Goal::AtMost(limit) => self.ours_median() <= limit,
        }
    }
}

pub fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

#[derive(Debug, Clone, Default)]
pub struct Results {
    pub figures: Vec<Figure>,
    pub commands: Vec<String>,
    pub notes: Vec<String>,
    pub tenants: usize,
    pub events: u64,
}

impl Results {
    fn command(&mut self, command: String) {
        if !self.commands.contains(&command) {
            self.commands.push(command);
        }
    }
}

/// A tiny deterministic generator, so workers need no shared RNG.
struct Pick(u64);

impl Pick {
    fn new(seed: u64) -> Self {
        Pick(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

struct Tokens(TokenKeys);

impl Tokens {
    fn new() -> anyhow::Result<Self> {
        Ok(Tokens(TokenKeys::hs256(server::JWT_SECRET.as_bytes())?))
    }

    /// A token as the server would issue it, valid for two hours.
    fn mint(
        &self,
        kind: PrincipalKind,
        sub: Uuid,
        tenant: Uuid,
        roles: Vec<Role>,
    ) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        self.0.issue(&Claims {
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            sub,
            tid: Some(tenant),
            roles,
            kind,
            jti: Uuid::now_v7(),
            iat: now,
            nbf: now,
            exp: now + 7200,
            generation: 0,
            tgen: 0,
            sid: None,
            pin_change: false,
        })
    }

    fn approvers(&self, tenant: &Tenant) -> anyhow::Result<Vec<String>> {
        tenant
            .approvers
            .iter()
            .map(|k| self.mint(PrincipalKind::User, *k, tenant.id, vec![Role::Approver]))
            .collect()
    }

    fn agent(&self, tenant: &Tenant) -> anyhow::Result<String> {
        self.mint(PrincipalKind::Agent, tenant.agent_id, tenant.id, vec![])
    }
}

fn client(connections: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .timeout(Duration::from_secs(120))
        .build()?)
}

async fn expect(reply: reqwest::Response, status: u16) -> anyhow::Result<Vec<u8>> {
    let got = reply.status().as_u16();
    let body = reply.bytes().await?.to_vec();
    anyhow::ensure!(
        got == status,
        "answered {got}: {}",
        String::from_utf8_lossy(&body)
    );
    Ok(body)
}

async fn query(db: &DatabaseConnection, sql: &str) -> anyhow::Result<Vec<sea_orm::QueryResult>> {
    Ok(db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?)
}

pub async fn run(settings: &Settings, data: &DataSet) -> anyhow::Result<Results> {
    let mut results = Results {
        tenants: data.tenants.len(),
        events: data.events,
        ..Results::default()
    };
    let db = seed::connect(&data.database_url, 2).await?;
    let mark: chrono::DateTime<chrono::Utc> = query(&db, "SELECT now() AS now")
        .await?
        .first()
        .context("now()")?
        .try_get("", "now")?;
    let tokens = Tokens::new()?;
    let server = Server::production(&settings.server, settings).await?;
    eprintln!("bench: server ready at {}", server.base);
    let outcome = async {
        if settings.runs("B1") {
            b1(settings, data, &tokens, &server, &mut results)
                .await
                .context("B1")?;
        }
        if settings.runs("B2") {
            b2(settings, data, &db, mark, &tokens, &server, &mut results)
                .await
                .context("B2")?;
        }
        if settings.runs("B4") {
            b4(settings, data, &db, &tokens, &server, &mut results)
                .await
                .context("B4")?;
        }
        if settings.runs("B5") {
            b5(settings, data, &db, &tokens, &server, &mut results)
                .await
                .context("B5")?;
        }
        anyhow::Ok(())
    }
    .await;
    server.stop().await?;
    outcome?;
    if settings.runs("B3") {
        b3(settings, data, &db, mark, &tokens, &mut results)
            .await
            .context("B3")?;
    }
    if settings.runs("B6") {
        b6(settings, &mut results).await.context("B6")?;
    }
    db.close().await?;
    Ok(results)
}

fn report_errors(name: &str, outcome: &Outcome) -> anyhow::Result<()> {
    anyhow::ensure!(
        outcome.steps > 0,
        "{name}: nothing succeeded; first error: {}",
        outcome.first_error.as_deref().unwrap_or("none")
    );
    if let Some(error) = &outcome.first_error {
        eprintln!("{name}: {} errors, first: {error}", outcome.errors);
    }
    Ok(())
}

// ---------------------------------------------------------------- B1

struct Inbox {
    client: reqwest::Client,
    url: String,
    tokens: Arc<Vec<String>>,
    pick: Pick,
}

impl Worker for Inbox {
    async fn step(&mut self) -> anyhow::Result<Option<u64>> {
        let token = &self.tokens[self.pick.below(self.tokens.len())];
        let reply = self.client.get(&self.url).bearer_auth(token).send().await?;
        expect(reply, 200).await?;
        Ok(Some(1))
    }
}

async fn b1(
    settings: &Settings,
    data: &DataSet,
    tokens: &Tokens,
    server: &Server,
    results: &mut Results,
) -> anyhow::Result<()> {
    let all: Vec<String> = data
        .tenants
        .iter()
        .map(|t| tokens.approvers(t))
        .collect::<anyhow::Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect();
    let all = Arc::new(all);
    let client = client(settings.connections as usize)?;
    let workers = |seed: u64| -> Vec<Inbox> {
        (0..settings.connections)
            .map(|i| Inbox {
                client: client.clone(),
                url: format!(
                    "{}/v1/event-log-requests?status=pending_approval&limit=50",
                    server.base
                ),
                tokens: all.clone(),
                pick: Pick::new(seed * 1000 + u64::from(i) + 1),
            })
            .collect()
    };
    let mut rate = Figure::new(
        "B1",
        "approver inbox",
        "requests/s",
        Goal::RatioAtLeast(0.5),
    );
    rate.baseline_what = "the equivalent SELECT (pgbench, transactions/s)".into();
    let mut p99 = Figure::new(
        "B1",
        "p99 latency at half the rate",
        "ms",
        Goal::AtMost(20.0),
    );
    // A fresh server first fills its connection pool and statement caches.
    let warm_up = Duration::from_secs_f64((settings.duration / 10.0).min(3.0));
    load::closed_loop(workers(999), warm_up).await;
    for round in 0..settings.repetitions {
        let outcome = load::closed_loop(workers(u64::from(round)), settings.phase()).await;
        report_errors("B1", &outcome)?;
        eprintln!("B1 ours: {:.0} requests/s", outcome.per_second());
        rate.ours.push(outcome.per_second());
        // Right after our throughput phase, while the server is in use: an
        // idle server's kept inbox pages have aged out (see bench/analysis.md).
        let half = load::fixed_rate(
            workers(u64::from(round) + 100),
            outcome.per_second() / 2.0,
            settings.phase(),
        )
        .await;
        report_errors("B1 at half rate", &half)?;
        eprintln!(
            "B1 p99 at {:.0}/s: {:.1} ms",
            outcome.per_second() / 2.0,
            half.quantile_ms(0.99)
        );
        p99.ours.push(half.quantile_ms(0.99));
        let baseline = pgbench::run(
            settings,
            "b1_inbox.sql",
            &[("tenants", data.tenants.len().to_string())],
            settings.phase(),
        )
        .await?;
        eprintln!("B1 baseline: {:.0} tps", baseline.tps);
        rate.baseline.push(baseline.tps);
        results.command(baseline.command);
    }
    results.figures.push(rate);
    results.figures.push(p99);
    Ok(())
}

// ---------------------------------------------------------------- B2

/// Puts every request decided since `mark` back to pending, so each run
/// decides on the same pool. Decisions are append-only (migration m0010):
/// the benchmark's owner takes them back as a replica session, past the
/// triggers.
async fn reset_decisions(
    db: &DatabaseConnection,
    mark: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    let mark = mark.to_rfc3339();
    let txn = db.begin().await?;
    txn.execute_unprepared("SET LOCAL session_replication_role = replica")
        .await?;
    txn.execute_unprepared(&format!(
        "DELETE FROM request_decisions WHERE decided_at >= '{mark}'"
    ))
    .await?;
    txn.commit().await?;
    for sql in [
        format!(
            "DELETE FROM readout_jobs WHERE kind = 'request_readout' AND created_at >= '{mark}'"
        ),
        format!(
            "UPDATE event_log_requests SET status = 'pending_approval', approved_at = NULL, closed_at = NULL, \
             reason = NULL, expires_at = now() + interval '300 days', updated_at = requested_at \
             WHERE updated_at >= '{mark}'"
        ),
        "VACUUM ANALYZE event_log_requests, request_decisions, readout_jobs".to_owned(),
    ] {
        db.execute_unprepared(&sql).await?;
    }
    Ok(())
}

struct Approve {
    client: reqwest::Client,
    base: String,
    queue: Arc<Mutex<Vec<(Uuid, Uuid)>>>,
    tokens: Arc<HashMap<Uuid, Vec<String>>>,
    pick: Pick,
}

impl Worker for Approve {
    async fn step(&mut self) -> anyhow::Result<Option<u64>> {
        let Some((tenant, request)) = self.queue.lock().await.pop() else {
            return Ok(None);
        };
        let tokens = self.tokens.get(&tenant).context("approvers")?;
        let token = &tokens[self.pick.below(tokens.len())];
        let reply = self
            .client
            .post(format!(
                "{}/v1/event-log-requests/{request}/approve",
                self.base
            ))
            .bearer_auth(token)
            .json(&json!({"comment": "approved by the benchmark"}))
            .send()
            .await?;
        expect(reply, 200).await?;
        Ok(Some(1))
    }
}

async fn pending(
    db: &DatabaseConnection,
    target_type: Option<&str>,
) -> anyhow::Result<Vec<(Uuid, Uuid)>> {
    let filter = target_type.map_or(String::new(), |t| format!(" AND target_type = '{t}'"));
    query(
        db,
        &format!("SELECT tenant_id, id FROM event_log_requests WHERE status = 'pending_approval'{filter} ORDER BY md5(id::text)"),
    )
    .await?
    .into_iter()
    .map(|row| Ok((row.try_get("", "tenant_id")?, row.try_get("", "id")?)))
    .collect()
}

async fn b2(
    settings: &Settings,
    data: &DataSet,
    db: &DatabaseConnection,
    mark: chrono::DateTime<chrono::Utc>,
    tokens: &Tokens,
    server: &Server,
    results: &mut Results,
) -> anyhow::Result<()> {
    let mut by_tenant = HashMap::new();
    for t in &data.tenants {
        by_tenant.insert(t.id, tokens.approvers(t)?);
    }
    let by_tenant = Arc::new(by_tenant);
    let client = client(settings.connections as usize)?;
    let mut figure = Figure::new(
        "B2",
        "approve (the whole decision transaction)",
        "decisions/s",
        Goal::RatioAtLeast(0.5),
    );
    figure.baseline_what = "the same SQL statements in one transaction (pgbench)".into();
    for round in 0..settings.repetitions {
        reset_decisions(db, mark).await?;
        let queue = Arc::new(Mutex::new(pending(db, None).await?));
        let workers: Vec<Approve> = (0..settings.connections)
            .map(|i| Approve {
                client: client.clone(),
                base: server.base.clone(),
                queue: queue.clone(),
                tokens: by_tenant.clone(),
                pick: Pick::new(u64::from(round) * 1000 + u64::from(i) + 7),
            })
            .collect();
        let outcome = load::closed_loop(workers, settings.phase()).await;
        report_errors("B2", &outcome)?;
        eprintln!("B2 ours: {:.0} decisions/s", outcome.per_second());
        figure.ours.push(outcome.per_second());

        reset_decisions(db, mark).await?;
        for sql in [
            "DROP TABLE IF EXISTS bench_pool",
            "CREATE TABLE bench_pool AS SELECT row_number() OVER (ORDER BY md5(r.id::text)) AS n, r.tenant_id, \
               r.id AS request_id, r.requested_by_employee_id AS requester, substr(t.slug, 7)::int AS t \
             FROM event_log_requests r JOIN tenants t ON t.id = r.tenant_id WHERE r.status = 'pending_approval'",
            "CREATE UNIQUE INDEX ON bench_pool (n)",
            "ANALYZE bench_pool",
            "DROP SEQUENCE IF EXISTS bench_pool_seq",
            "CREATE SEQUENCE bench_pool_seq",
        ] {
            db.execute_unprepared(sql).await?;
        }
        let pool = query(db, "SELECT count(*) AS n FROM bench_pool").await?;
        let pool: i64 = pool.first().context("pool")?.try_get("", "n")?;
        let baseline = pgbench::run(
            settings,
            "b2_approve.sql",
            &[("pool", pool.to_string())],
            settings.phase(),
        )
        .await?;
        eprintln!("B2 baseline: {:.0} tps", baseline.tps);
        figure.baseline.push(baseline.tps);
        results.command(baseline.command);
    }
    reset_decisions(db, mark).await?;
    results.figures.push(figure);
    Ok(())
}

// ---------------------------------------------------------------- B4

/// A running job with a lease, made for a benchmark phase.
#[derive(Clone)]
struct Leased {
    tenant: Tenant,
    job: Uuid,
    lease: Uuid,
    key: Uuid,
    marking: String,
}

async fn leased_jobs(
    db: &DatabaseConnection,
    data: &DataSet,
    count: u32,
) -> anyhow::Result<Vec<Leased>> {
    let mut jobs = Vec::new();
    for i in 0..count as usize {
        let tenant = data.tenants[i % data.tenants.len()].clone();
        let number = (i / data.tenants.len()) as u32 % seed::LOGGING_KEYS + 1;
        let (job, lease) = (Uuid::now_v7(), Uuid::new_v4());
        let rows = query(
            db,
            &format!(
                "INSERT INTO readout_jobs (id, tenant_id, kind, request_id, target_type, target_id, target_marking, status, \
                   device_id, attempts, lease_token, lease_expires_at, resume_status, created_at, updated_at) \
                 SELECT '{job}', tenant_id, 'desk_readout', NULL, 'key', id, marking, 'running', '{device}', 1, '{lease}', \
                   now() + interval '2 hours', 'queued', now(), now() \
                 FROM keys WHERE tenant_id = '{tenant}' AND marking = 'K-{number}' RETURNING target_id",
                device = tenant.remote_unit_id,
                tenant = tenant.id
            ),
        )
        .await?;
        let key: Uuid = rows
            .first()
            .context("key of a leased job")?
            .try_get("", "target_id")?;
        jobs.push(Leased {
            tenant,
            job,
            lease,
            key,
            marking: format!("K-{number}"),
        });
    }
    Ok(jobs)
}

/// Sequence numbers no earlier phase used.
fn fresh_seq() -> i64 {
    chrono::Utc::now().timestamp_micros() * 10
}

fn event_batch(lease: Uuid, marking: &str, first_seq: i64, count: usize) -> String {
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut body = format!("{{\"lease_token\":\"{lease}\",\"events\":[");
    for k in 0..count {
        if k > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            "{{\"seq\":{},\"occurred_at\":\"{at}\",\"kind\":\"access_granted\",\"key_marking\":\"{marking}\",\"cylinder_marking\":\"C-{}\"}}",
            first_seq + k as i64,
            k % 50 + 1
        ));
    }
    body.push_str("]}");
    body
}

const BATCH: usize = 1000;

struct Upload {
    client: reqwest::Client,
    url: String,
    token: String,
    job: Leased,
    seq: i64,
}

impl Worker for Upload {
    async fn step(&mut self) -> anyhow::Result<Option<u64>> {
        let body = event_batch(self.job.lease, &self.job.marking, self.seq, BATCH);
        self.seq += BATCH as i64;
        let reply = self
            .client
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        let body: Value = serde_json::from_slice(&expect(reply, 200).await?)?;
        Ok(Some(body["stored"].as_u64().unwrap_or_default()))
    }
}

struct Copy {
    conn: sea_orm::sqlx::pool::PoolConnection<sea_orm::sqlx::Postgres>,
    job: Leased,
    seq: i64,
}

impl Worker for Copy {
    async fn step(&mut self) -> anyhow::Result<Option<u64>> {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let mut rows = String::with_capacity(BATCH * 200);
        for k in 0..BATCH {
            rows.push_str(&format!(
                "{}\t{}\tkey\t{}\t{}\t{now}\taccess_granted\t{}\tC-{}\t{}\t{now}\n",
                Uuid::now_v7(),
                self.job.tenant.id,
                self.job.key,
                self.seq + k as i64,
                self.job.marking,
                k % 50 + 1,
                self.job.job
            ));
        }
        self.seq += BATCH as i64;
        let mut copy = self
            .conn
            .copy_in_raw(
                "COPY events (id, tenant_id, source_type, source_id, device_seq, occurred_at, kind, key_marking, \
                 cylinder_marking, job_id, received_at) FROM STDIN",
            )
            .await?;
        copy.send(rows.into_bytes()).await?;
        Ok(Some(copy.finish().await?))
    }
}

async fn b4(
    settings: &Settings,
    data: &DataSet,
    db: &DatabaseConnection,
    tokens: &Tokens,
    server: &Server,
    results: &mut Results,
) -> anyhow::Result<()> {
    let client = client(settings.connections as usize)?;
    let mut figure = Figure::new(
        "B4",
        "event upload, batches of 1,000",
        "events/s",
        Goal::RatioAtLeast(0.5),
    );
    figure.baseline_what =
        "COPY of the same rows into the same table (16 connections, 1,000 rows each)".into();
    let pool = seed::connect(&data.database_url, settings.connections).await?;
    for _ in 0..settings.repetitions {
        let jobs = leased_jobs(db, data, settings.connections).await?;
        let workers = jobs
            .iter()
            .map(|job| {
                Ok(Upload {
                    client: client.clone(),
                    url: format!("{}/v1/agent/jobs/{}/events", server.base, job.job),
                    token: tokens.agent(&job.tenant)?,
                    job: job.clone(),
                    seq: fresh_seq(),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let outcome = load::closed_loop(workers, settings.phase()).await;
        report_errors("B4", &outcome)?;
        eprintln!("B4 ours: {:.0} events/s", outcome.per_second());
        figure.ours.push(outcome.per_second());

        let mut workers = Vec::new();
        for job in &jobs {
            workers.push(Copy {
                conn: pool.get_postgres_connection_pool().acquire().await?,
                job: job.clone(),
                seq: fresh_seq(),
            });
        }
        let outcome = load::closed_loop(workers, settings.phase()).await;
        report_errors("B4 baseline", &outcome)?;
        eprintln!("B4 baseline: {:.0} events/s", outcome.per_second());
        figure.baseline.push(outcome.per_second());
        db.execute_unprepared("VACUUM ANALYZE events").await?;
    }
    pool.close().await?;
    results.command(format!(
        "COPY events (…) FROM STDIN, {} rows per statement, on {} connections (driven by countersign-bench)",
        BATCH, settings.connections
    ));
    results.figures.push(figure);
    Ok(())
}

// ---------------------------------------------------------------- B5

struct Cycle {
    client: reqwest::Client,
    base: String,
    token: String,
    device: Uuid,
    next_key: u32,
    seq: i64,
}

impl Worker for Cycle {
    async fn step(&mut self) -> anyhow::Result<Option<u64>> {
        self.next_key = self.next_key % seed::LOGGING_KEYS + 1;
        let marking = format!("K-{}", self.next_key);
        let reply = self
            .client
            .post(format!("{}/v1/agent/key-insertions", self.base))
            .bearer_auth(&self.token)
            .json(&json!({"device_id": self.device, "key_marking": marking}))
            .send()
            .await?;
        let claimed: Value = serde_json::from_slice(&expect(reply, 200).await?)?;
        let job = claimed["job"]["id"]
            .as_str()
            .context("no job claimed")?
            .to_owned();
        let lease: Uuid = claimed["lease"]["token"]
            .as_str()
            .context("no lease")?
            .parse()?;
        let body = event_batch(lease, &marking, self.seq, 10);
        self.seq += 10;
        let reply = self
            .client
            .post(format!("{}/v1/agent/jobs/{job}/events", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        expect(reply, 200).await?;
        let reply = self
            .client
            .post(format!("{}/v1/agent/jobs/{job}/complete", self.base))
            .bearer_auth(&self.token)
            .json(&json!({"lease_token": lease}))
            .send()
            .await?;
        expect(reply, 200).await?;
        Ok(Some(1))
    }
}

async fn b5(
    settings: &Settings,
    data: &DataSet,
    db: &DatabaseConnection,
    tokens: &Tokens,
    server: &Server,
    results: &mut Results,
) -> anyhow::Result<()> {
    db.execute_unprepared("CREATE SEQUENCE IF NOT EXISTS bench_cycle_seq")
        .await?;
    let client = client(settings.connections as usize)?;
    let mut figure = Figure::new(
        "B5",
        "job cycle: key insertion → 10 events → complete",
        "jobs/s",
        Goal::RatioAtLeast(0.5),
    );
    figure.baseline_what = "the same statements with SKIP LOCKED (pgbench)".into();
    for _ in 0..settings.repetitions {
        let workers = data
            .auto_tenants
            .iter()
            .take(settings.connections as usize)
            .map(|t| {
                Ok(Cycle {
                    client: client.clone(),
                    base: server.base.clone(),
                    token: tokens.agent(t)?,
                    device: t.remote_unit_id,
                    next_key: 0,
                    seq: fresh_seq(),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let outcome = load::closed_loop(workers, settings.phase()).await;
        report_errors("B5", &outcome)?;
        eprintln!("B5 ours: {:.0} jobs/s", outcome.per_second());
        figure.ours.push(outcome.per_second());
        let first_auto = data.auto_tenants.first().map_or(0, |t| t.number);
        let baseline = pgbench::run(
            settings,
            "b5_job_cycle.sql",
            &[
                ("first_auto", first_auto.to_string()),
                ("seq", fresh_seq().to_string()),
            ],
            settings.phase(),
        )
        .await?;
        eprintln!("B5 baseline: {:.0} tps", baseline.tps);
        figure.baseline.push(baseline.tps);
        results.command(baseline.command);
    }
    results.figures.push(figure);
    Ok(())
}

// ---------------------------------------------------------------- B3

/// When each tenant's last approval was sent, and the wake-ups seen since.
#[derive(Default)]
struct Wakeups {
    armed: HashMap<Uuid, Instant>,
    latencies: Vec<Duration>,
    by_tenant: Vec<(Uuid, Duration)>,
    /// Polls answered without the change more than 100 ms after their
    /// tenant's approval: wake-ups that were missed.
    stale: usize,
}

async fn hold_poll(
    client: reqwest::Client,
    url: String,
    token: String,
    tenant: Uuid,
    mut version: String,
    wakeups: Arc<std::sync::Mutex<Wakeups>>,
    stop: Arc<tokio::sync::Notify>,
) {
    loop {
        let call = client
            .get(format!("{url}?since={version}&wait=50"))
            .bearer_auth(&token)
            .send();
        let answer = tokio::select! {
            answer = call => answer,
            () = stop.notified() => return,
        };
        let Ok(answer) = answer else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(body) = answer.json::<Value>().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let new = body["version"].as_str().unwrap_or_default().to_owned();
        let mut w = wakeups.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sent) = w.armed.get(&tenant).copied() {
            let latency = sent.elapsed();
            if new != version {
                w.latencies.push(latency);
                w.by_tenant.push((tenant, latency));
            } else if latency > Duration::from_millis(100) {
                w.stale += 1;
            }
        }
        drop(w);
        version = new;
    }
}

async fn b3(
    settings: &Settings,
    data: &DataSet,
    db: &DatabaseConnection,
    mark: chrono::DateTime<chrono::Utc>,
    tokens: &Tokens,
    results: &mut Results,
) -> anyhow::Result<()> {
    let mut rss = Figure::new(
        "B3",
        "resident memory with the long polls held",
        "MiB",
        Goal::AtMost(256.0),
    );
    let mut cpu = Figure::new("B3", "CPU while idle", "% of a core", Goal::AtMost(5.0));
    let mut p50 = Figure::new("B3", "wake-up latency p50", "ms", Goal::AtMost(100.0));
    let mut p99 = Figure::new("B3", "wake-up latency p99", "ms", Goal::AtMost(100.0));
    let ticks = server::ticks_per_second();
    for _ in 0..settings.repetitions {
        reset_decisions(db, mark).await?;
        let holder = Server::production(&settings.server, settings).await?;
        let approver = Server::production(&settings.server, settings).await?;
        let poll_client = reqwest::Client::builder()
            .pool_max_idle_per_host(settings.idle_polls as usize)
            .timeout(Duration::from_secs(120))
            .build()?;
        let url = format!("{}/v1/agent/work", holder.base);
        // Each tenant's agent learns its list once; the held polls start from it.
        let mut versions = HashMap::new();
        let per_tenant = (settings.idle_polls as usize).div_ceil(data.tenants.len());
        let polled: Vec<&Tenant> = data
            .tenants
            .iter()
            .take(settings.idle_polls as usize)
            .collect();
        for tenant in &polled {
            let token = tokens.agent(tenant)?;
            let reply = poll_client.get(&url).bearer_auth(&token).send().await?;
            let body: Value = serde_json::from_slice(&expect(reply, 200).await?)?;
            versions.insert(
                tenant.id,
                (
                    token,
                    body["version"].as_str().unwrap_or_default().to_owned(),
                ),
            );
        }
        let wakeups = Arc::new(std::sync::Mutex::new(Wakeups::default()));
        let stop = Arc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::new();
        let mut polls_of = HashMap::new();
        let opened = Instant::now();
        for n in 0..settings.idle_polls as usize {
            let tenant = polled[n % polled.len()];
            *polls_of.entry(tenant.id).or_insert(0usize) += 1;
            let (token, version) = versions.get(&tenant.id).context("version")?.clone();
            tasks.push(tokio::spawn(hold_poll(
                poll_client.clone(),
                url.clone(),
                token,
                tenant.id,
                version,
                wakeups.clone(),
                stop.clone(),
            )));
            if n % 500 == 499 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        // Let the last polls arrive and settle before measuring.
        let settle = Duration::from_secs_f64((settings.duration / 3.0).clamp(1.0, 10.0));
        tokio::time::sleep(settle).await;
        eprintln!(
            "B3: {} polls ({} per tenant) opened in {:.1} s",
            settings.idle_polls,
            per_tenant,
            opened.elapsed().as_secs_f64()
        );
        let before = holder.cpu_ticks()?;
        let idle_started = Instant::now();
        tokio::time::sleep(settings.phase()).await;
        let used = (holder.cpu_ticks()? - before) as f64 / ticks;
        cpu.ours
            .push(100.0 * used / idle_started.elapsed().as_secs_f64());
        rss.ours.push(holder.rss()? as f64 / (1024.0 * 1024.0));

        // Approvals on the other process; the held polls of that tenant answer.
        let targets = pending(db, Some("key")).await?;
        let polled_ids: Vec<Uuid> = polled.iter().map(|t| t.id).collect();
        let mut used_tenants = std::collections::HashSet::new();
        let chosen: Vec<(Uuid, Uuid)> = targets
            .into_iter()
            .filter(|(t, _)| polled_ids.contains(t) && used_tenants.insert(*t))
            .take(settings.wakeups as usize)
            .collect();
        let approve_client = client(4)?;
        let by_tenant: HashMap<Uuid, &Tenant> = data.tenants.iter().map(|t| (t.id, t)).collect();
        let mut approvals = Vec::new();
        eprintln!("B3: approvals start at {}", chrono::Utc::now().to_rfc3339());
        for (tenant, request) in &chosen {
            let token = tokens
                .approvers(by_tenant.get(tenant).context("tenant")?)?
                .remove(0);
            wakeups
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .armed
                .insert(*tenant, Instant::now());
            let reply = approve_client
                .post(format!(
                    "{}/v1/event-log-requests/{request}/approve",
                    approver.base
                ))
                .bearer_auth(&token)
                .json(&json!({}))
                .send()
                .await?;
            expect(reply, 200).await?;
            if let Some(sent) = wakeups
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .armed
                .get(tenant)
            {
                approvals.push(sent.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Every held poll of an approved tenant answers, at the latest after a re-check.
        let expected: usize = chosen
            .iter()
            .map(|(t, _)| polls_of.get(t).copied().unwrap_or_default())
            .sum();
        let patience = Instant::now() + Duration::from_secs(15);
        while Instant::now() < patience
            && wakeups
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .latencies
                .len()
                < expected
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let latencies =
            std::mem::take(&mut wakeups.lock().unwrap_or_else(|e| e.into_inner()).latencies);
        eprintln!("B3: {} of {expected} wake-ups seen", latencies.len());
        // Where the tail comes from: the approvals whose wake-ups were slowest.
        {
            let w = wakeups.lock().unwrap_or_else(|e| e.into_inner());
            let mut slowest: HashMap<usize, Duration> = HashMap::new();
            for (tenant, latency) in &w.by_tenant {
                if let Some(n) = chosen.iter().position(|(t, _)| t == tenant) {
                    let entry = slowest.entry(n).or_default();
                    *entry = (*entry).max(*latency);
                }
            }
            results.notes.push(format!(
                "B3: {} held polls answered without the change more than 100 ms after their tenant's approval.",
                w.stale
            ));
            let mut slowest: Vec<(usize, Duration)> = slowest.into_iter().collect();
            slowest.sort_by_key(|s| std::cmp::Reverse(s.1));
            for (n, latency) in slowest.iter().take(3) {
                eprintln!(
                    "B3: slowest wake-ups after approval #{n} (tenant {}, sent {:.1} s into the approvals): {:.0} ms",
                    chosen[*n].0,
                    *n as f64 * 0.2,
                    latency.as_secs_f64() * 1000.0
                );
            }
        }
        if latencies.len() < expected {
            results.notes.push(format!(
                "B3: {} of {expected} held polls answered within 15 s of the last approval; the latencies are of those.",
                latencies.len()
            ));
        }
        results.notes.push(format!(
            "B3: the approval calls themselves took {:.1} ms (p50) and {:.1} ms (p99); {} approvals, {} wake-ups.",
            load::quantile_ms(&approvals, 0.5),
            load::quantile_ms(&approvals, 0.99),
            approvals.len(),
            latencies.len()
        ));
        p50.ours.push(load::quantile_ms(&latencies, 0.5));
        p99.ours.push(load::quantile_ms(&latencies, 0.99));
        stop.notify_waiters();
        for task in tasks {
            task.abort();
        }
        holder.stop().await?;
        approver.stop().await?;
    }
    reset_decisions(db, mark).await?;
    results.notes.push(format!(
        "B3 holds {} long polls (`GET /v1/agent/work?since=…&wait=50`) of the tenants' agents on one API process; \
         the approvals are made on a second process, and a wake-up counts from sending the approval to the held poll's answer.",
        settings.idle_polls
    ));
    results.figures.extend([rss, cpu, p50, p99]);
    Ok(())
}

// ---------------------------------------------------------------- B6

async fn b6(settings: &Settings, results: &mut Results) -> anyhow::Result<()> {
    let mut fresh = Figure::new(
        "B6",
        "start to /readyz, fresh folder (migrations, demo tenant)",
        "s",
        Goal::AtMost(1.0),
    );
    let mut again = Figure::new(
        "B6",
        "start to /readyz, existing database",
        "s",
        Goal::AtMost(1.0),
    );
    let mut rss = Figure::new("B6", "resident memory, idle", "MiB", Goal::AtMost(40.0));
    for _ in 0..settings.repetitions {
        let dir = tempfile::tempdir()?;
        let (server, took) = Server::embedded(&settings.server, dir.path()).await?;
        fresh.ours.push(took.as_secs_f64());
        server.stop().await?;
        let (server, took) = Server::embedded(&settings.server, dir.path()).await?;
        again.ours.push(took.as_secs_f64());
        tokio::time::sleep(Duration::from_secs_f64(settings.duration.clamp(1.0, 5.0))).await;
        rss.ours.push(server.rss()? as f64 / (1024.0 * 1024.0));
        server.stop().await?;
    }
    results.figures.extend([fresh, again, rss]);
    Ok(())
}
