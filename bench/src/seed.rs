//! The data set, generated with set-based SQL (`generate_series`) straight
//! into a freshly migrated database: nothing goes through the API.
//!
//! Ids are `md5(kind:numbers)` UUIDs (`bench_id`), so the pgbench scripts can
//! name any row without looking it up.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::Context;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use uuid::Uuid;

use crate::Settings;

/// The PIN of every seeded programming key (they share one argon2 hash).
pub const PIN: &str = "97531";
/// The secret of every seeded agent.
pub const AGENT_SECRET: &str = "bench-agent-secret";
/// Approvers per tenant.
pub const APPROVERS: u32 = 5;
pub const KEYS: u32 = 200;
/// Keys 1..=150 keep an event log; requests 1..=150 target them.
pub const LOGGING_KEYS: u32 = 150;
pub const CYLINDERS: u32 = 50;
pub const REQUESTS: u32 = 200;
/// Holders of user keys; employees 0 (administrator) and 1..=5 (approvers) come first.
const EMPLOYEES: u32 = 1 + APPROVERS + KEYS;

/// What the drivers need to know about the seeded tenants.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub number: u32,
    pub id: Uuid,
    pub agent_id: Uuid,
    pub remote_unit_id: Uuid,
    /// Programming keys with the approver role.
    pub approvers: Vec<Uuid>,
}

#[derive(Debug, Clone)]
pub struct DataSet {
    pub database_url: String,
    /// Tenants with the approver function.
    pub tenants: Vec<Tenant>,
    /// Tenants without it, whose keys are collected automatically (B5).
    pub auto_tenants: Vec<Tenant>,
    pub events: u64,
}

pub async fn connect(url: &str, pool: u32) -> anyhow::Result<DatabaseConnection> {
    let mut options = sea_orm::ConnectOptions::new(url.to_owned());
    options.max_connections(pool).sqlx_logging(false);
    Ok(sea_orm::Database::connect(options).await?)
}

/// Drops and creates the database, migrates it with the server binary, and fills it.
pub async fn seed(settings: &Settings) -> anyhow::Result<DataSet> {
    let admin = connect(&settings.admin_url, 1).await?;
    let name = &settings.database;
    anyhow::ensure!(
        name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "the database name may hold letters, digits and _ only"
    );
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await?;
    admin.close().await?;
    let url = settings.database_url();
    let status = tokio::process::Command::new(&settings.server)
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .with_context(|| format!("running {} migrate", settings.server.display()))?;
    anyhow::ensure!(status.success(), "migrations failed: {status}");

    let db = connect(&url, 2).await?;
    db.execute_unprepared(include_str!("../../tests/sql/login-roles.sql"))
        .await
        .context("creating the login roles")?;
    let pin_hash = countersign_infra::secrets::hash_pin(PIN).await?;
    let agent_secret = countersign_infra::secrets::digest(AGENT_SECRET);
    let all = settings.tenants + settings.auto_tenants();
    for (what, sql) in directory(settings.tenants, all, &pin_hash, &agent_secret) {
        timed(&db, what, &sql).await?;
    }
    for (what, sql) in workflow(settings.tenants) {
        timed(&db, what, &sql).await?;
    }
    let per_chunk = (2_000_000 / settings.events_per_tenant.max(1)).clamp(1, 1000);
    let mut first = 1;
    while first <= settings.tenants {
        let last = (first + per_chunk - 1).min(settings.tenants);
        let sql = events(first, last, settings.events_per_tenant);
        timed(&db, "events", &sql).await?;
        first = last + 1;
    }
    timed(&db, "analyze", "VACUUM ANALYZE").await?;
    db.close().await?;
    DataSet::load(settings).await
}

async fn timed(db: &DatabaseConnection, what: &str, sql: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    db.execute_unprepared(sql)
        .await
        .with_context(|| format!("seeding {what}"))?;
    eprintln!("seed: {what} in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Tenants, people, programming keys, inventory, agents and devices.
fn directory(
    tenants: u32,
    all: u32,
    pin_hash: &str,
    agent_secret: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("helpers", "CREATE FUNCTION bench_id(kind text, VARIADIC parts int[]) RETURNS uuid \
          LANGUAGE sql IMMUTABLE AS $$ SELECT md5(kind || ':' || array_to_string(parts, ':'))::uuid $$".to_owned()),
        ("tenants", format!(
            "INSERT INTO tenants (id, slug, name, base_timezone, locale, approval_required, approvals_required, \
               event_retention_days, request_ttl_hours, execution_ttl_hours, status, token_generation, created_at, updated_at) \
             SELECT bench_id('tenant', i), 'bench-' || i, 'Bench tenant ' || i, 'Europe/Berlin', 'en', i <= {tenants}, 1, \
               36500, 8760, 8760, 'active', 0, now(), now() \
             FROM generate_series(1, {all}) i")),
        ("employees", format!(
            "INSERT INTO employees (id, tenant_id, name, email, created_at, updated_at) \
             SELECT bench_id('employee', i, e), bench_id('tenant', i), \
               CASE WHEN e = 0 THEN 'Admin ' WHEN e <= {APPROVERS} THEN 'Approver ' ELSE 'Holder ' END || e, \
               CASE WHEN e <= {APPROVERS} THEN 'person' || e || '@bench-' || i || '.example' END, now(), now() \
             FROM generate_series(1, {all}) i, generate_series(0, {last}) e", last = EMPLOYEES - 1)),
        ("programming keys", format!(
            "INSERT INTO programming_keys (id, tenant_id, marking, name, status, blocked, roles, employee_id, \
               pin_hash, pin_one_time, token_generation, created_at, updated_at) \
             SELECT bench_id('programming_key', i, p), bench_id('tenant', i), \
               CASE WHEN p = 0 THEN 'ADMIN-1' ELSE 'APPROVER-' || p END, \
               CASE WHEN p = 0 THEN 'Administrator' ELSE 'Approver ' || p END, 'issued', false, \
               (CASE WHEN p = 0 THEN '[\"super_administrator\",\"system_administrator\"]' ELSE '[\"approver\"]' END)::json, \
               bench_id('employee', i, p), '{pin_hash}', false, 0, now(), now() \
             FROM generate_series(1, {all}) i, generate_series(0, {APPROVERS}) p")),
        ("keys", format!(
            "INSERT INTO keys (id, tenant_id, marking, name, model, status, employee_id, auto_collection, created_at, updated_at) \
             SELECT bench_id('key', i, k), bench_id('tenant', i), 'K-' || k, 'Key ' || k, \
               CASE WHEN k > {LOGGING_KEYS} THEN 'basic' WHEN k % 2 = 0 THEN 'e3' ELSE 'e2' END, 'issued', \
               bench_id('employee', i, {APPROVERS} + k), i > {tenants} AND k <= {LOGGING_KEYS}, now(), now() \
             FROM generate_series(1, {all}) i, generate_series(1, {KEYS}) k")),
        ("cylinders", format!(
            "INSERT INTO cylinders (id, tenant_id, marking, name, location, created_at) \
             SELECT bench_id('cylinder', i, c), bench_id('tenant', i), 'C-' || c, 'Door ' || c, 'Floor ' || (c % 5), now() \
             FROM generate_series(1, {all}) i, generate_series(1, {CYLINDERS}) c")),
        ("agents", format!(
            "INSERT INTO agents (id, tenant_id, name, secret_hash, token_generation, created_at) \
             SELECT bench_id('agent', i), bench_id('tenant', i), 'Site agent', '{agent_secret}', 0, now() \
             FROM generate_series(1, {all}) i")),
        ("remote devices", format!(
            "INSERT INTO remote_devices (id, tenant_id, name, kind, serial, agent_id, created_at) \
             SELECT bench_id('device', i, d), bench_id('tenant', i), \
               CASE WHEN d = 1 THEN 'Wall unit' ELSE 'Desk unit' END, \
               CASE WHEN d = 1 THEN 'remote_unit' ELSE 'desk_unit' END, \
               CASE WHEN d = 1 THEN 'RU-1' ELSE 'DU-1' END, bench_id('agent', i), now() \
             FROM generate_series(1, {all}) i, generate_series(1, 2) d")),
    ]
}

/// Requests in mixed states, with their decisions and jobs. Of every ten:
/// three pending, two approved, three completed, one rejected, one cancelled.
fn workflow(tenants: u32) -> Vec<(&'static str, String)> {
    let requests = format!(
        "SELECT i, r, \
           CASE r % 10 WHEN 0 THEN 'pending_approval' WHEN 1 THEN 'pending_approval' WHEN 2 THEN 'pending_approval' \
             WHEN 3 THEN 'approved' WHEN 4 THEN 'approved' WHEN 8 THEN 'rejected' WHEN 9 THEN 'cancelled' \
             ELSE 'completed' END AS s, \
           CASE WHEN r <= {LOGGING_KEYS} THEN 'key' ELSE 'cylinder' END AS tt, \
           CASE WHEN r <= {LOGGING_KEYS} THEN bench_id('key', i, r) ELSE bench_id('cylinder', i, r - {LOGGING_KEYS}) END AS target, \
           CASE WHEN r <= {LOGGING_KEYS} THEN 'K-' || r ELSE 'C-' || (r - {LOGGING_KEYS}) END AS marking, \
           now() - ({REQUESTS} - r) * interval '10 minutes' AS at \
         FROM generate_series(1, {tenants}) i, generate_series(1, {REQUESTS}) r"
    );
    vec![
        (
            "requests",
            format!(
                "INSERT INTO event_log_requests (id, tenant_id, target_type, target_id, target_marking, target_name, status, \
               comment, requested_by_kind, requested_by_id, requested_by_employee_id, requested_by_name, approvals_required, \
               requested_at, approved_at, expires_at, closed_at, reason, updated_at) \
             SELECT bench_id('request', i, r), bench_id('tenant', i), tt, target, marking, marking, s, \
               'Please read the log', 'user', bench_id('programming_key', i, 0), bench_id('employee', i, 0), 'Admin 0', 1, \
               at, CASE WHEN s IN ('approved', 'completed') THEN at + interval '5 minutes' END, \
               CASE WHEN s IN ('pending_approval', 'approved') THEN now() + interval '300 days' END, \
               CASE WHEN s IN ('completed', 'rejected', 'cancelled') THEN at + interval '1 hour' END, \
               CASE WHEN s = 'cancelled' THEN 'withdrawn' END, at \
             FROM ({requests}) q"
            ),
        ),
        (
            "decisions",
            format!(
                "INSERT INTO request_decisions (id, tenant_id, request_id, decision, comment, programming_key_id, employee_id, \
               approver_name, decided_at) \
             SELECT bench_id('decision', i, r), bench_id('tenant', i), bench_id('request', i, r), \
               CASE WHEN s = 'rejected' THEN 'reject' ELSE 'approve' END, NULL, \
               bench_id('programming_key', i, r % {APPROVERS} + 1), bench_id('employee', i, r % {APPROVERS} + 1), \
               'Approver ' || (r % {APPROVERS} + 1), at + interval '5 minutes' \
             FROM ({requests}) q WHERE s IN ('approved', 'completed', 'rejected')"
            ),
        ),
        (
            "jobs",
            format!(
                "INSERT INTO readout_jobs (id, tenant_id, kind, request_id, target_type, target_id, target_marking, status, \
               device_id, attempts, created_at, updated_at) \
             SELECT bench_id('job', i, r), bench_id('tenant', i), 'request_readout', bench_id('request', i, r), tt, target, \
               marking, CASE WHEN s = 'completed' THEN 'completed' WHEN tt = 'key' THEN 'queued' ELSE 'awaiting_transfer' END, \
               CASE WHEN s = 'completed' THEN bench_id('device', i, 1) END, CASE WHEN s = 'completed' THEN 1 ELSE 0 END, \
               at + interval '5 minutes', at + interval '5 minutes' \
             FROM ({requests}) q WHERE s IN ('approved', 'completed')"
            ),
        ),
    ]
}

/// `events` stored events per tenant of `first..=last`, a quarter of them cylinders'.
fn events(first: u32, last: u32, events: u32) -> String {
    format!(
        "INSERT INTO events (id, tenant_id, source_type, source_id, device_seq, occurred_at, kind, key_marking, \
           cylinder_marking, job_id, received_at) \
         SELECT gen_random_uuid(), bench_id('tenant', i), CASE WHEN e % 4 = 0 THEN 'cylinder' ELSE 'key' END, \
           CASE WHEN e % 4 = 0 THEN bench_id('cylinder', i, e % {CYLINDERS} + 1) ELSE bench_id('key', i, e % {LOGGING_KEYS} + 1) END, \
           e, now() - ({events} - e) * interval '5 minutes', \
           CASE WHEN e % 7 = 0 THEN 'access_denied' ELSE 'access_granted' END, \
           'K-' || (e % {LOGGING_KEYS} + 1), 'C-' || (e % {CYLINDERS} + 1), NULL, now() \
         FROM generate_series({first}, {last}) i, generate_series(1, {events}) e"
    )
}

impl DataSet {
    /// Reads what the drivers need from a seeded database.
    pub async fn load(settings: &Settings) -> anyhow::Result<DataSet> {
        let url = settings.database_url();
        let db = connect(&url, 1).await?;
        let rows = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT t.id, t.slug, t.approval_required, a.id AS agent_id, d.id AS device_id \
                 FROM tenants t JOIN agents a ON a.tenant_id = t.id \
                 JOIN remote_devices d ON d.tenant_id = t.id AND d.kind = 'remote_unit' \
                 WHERE t.slug LIKE 'bench-%' ORDER BY t.slug",
            ))
            .await?;
        let approvers = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT tenant_id, id FROM programming_keys WHERE marking LIKE 'APPROVER-%' ORDER BY marking",
            ))
            .await?;
        let mut by_tenant: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for row in approvers {
            by_tenant
                .entry(row.try_get("", "tenant_id")?)
                .or_default()
                .push(row.try_get("", "id")?);
        }
        let (mut tenants, mut auto_tenants) = (Vec::new(), Vec::new());
        for row in rows {
            let slug: String = row.try_get("", "slug")?;
            let id: Uuid = row.try_get("", "id")?;
            let tenant = Tenant {
                number: slug.trim_start_matches("bench-").parse()?,
                id,
                agent_id: row.try_get("", "agent_id")?,
                remote_unit_id: row.try_get("", "device_id")?,
                approvers: by_tenant.remove(&id).unwrap_or_default(),
            };
            if row.try_get::<bool>("", "approval_required")? {
                tenants.push(tenant);
            } else {
                auto_tenants.push(tenant);
            }
        }
        tenants.sort_by_key(|t| t.number);
        auto_tenants.sort_by_key(|t| t.number);
        let events = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT count(*) AS n FROM events",
            ))
            .await?
            .map(|row| row.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or_default();
        db.close().await?;
        anyhow::ensure!(
            !tenants.is_empty(),
            "the database holds no seeded tenants; run `seed` first"
        );
        Ok(DataSet {
            database_url: url,
            tenants,
            auto_tenants,
            events: u64::try_from(events).unwrap_or_default(),
        })
    }
}
