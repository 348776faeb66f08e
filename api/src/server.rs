//! Wiring: configuration → adapters → HTTP server. The only module that knows `infra`.

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actix_web::middleware::{Condition, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use countersign_infra::auth::AuthService;
use countersign_infra::clock::SystemClock;
use countersign_infra::mail::{Mailer, MailerSettings};
use countersign_infra::metrics::OperationsProbe;
use countersign_infra::revocation::RevocationList;
use countersign_infra::signal::WorkSignal;
use countersign_infra::signing::{HistoryPublicKey, HistorySigner};
use countersign_infra::throttle::LoginThrottle;
use countersign_infra::tokens::TokenKeys;
use countersign_infra::{Store, db, demo, secrets};

use crate::config::Config;
use crate::hardening::HttpSettings;
use crate::metrics::Metrics;
use crate::state::AppState;

/// Everything a running API needs, plus what to tell the person who started it.
pub struct Wiring {
    pub state: Served,
    pub store: Arc<Store>,
    /// The e-mail outbox worker.
    pub mailer: Arc<Mailer>,
    pub announcements: Vec<String>,
}

/// What the HTTP server serves with: the handlers' state, the metrics and
/// the HTTP settings.
#[derive(Clone)]
pub struct Served {
    pub app: web::Data<AppState>,
    pub metrics: web::Data<Metrics>,
    pub http: web::Data<HttpSettings>,
}

pub async fn wire(config: &Config) -> anyhow::Result<Wiring> {
    let mut announcements = Vec::new();
    let embedded = config.is_embedded();
    let conn = db::connect(&config.database_url, config.db_max_connections).await?;
    if embedded {
        db::migrate(&conn).await?;
    }
    let all_tenants =
        db::all_tenants_connection(&conn, config.worker_database_url.as_deref()).await?;
    let clock = Arc::new(SystemClock);
    let redis = match &config.redis_url {
        Some(url) => {
            let client = redis::Client::open(url.as_str()).context("REDIS_URL")?;
            let manager_config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(std::time::Duration::from_secs(2)))
                .set_response_timeout(Some(std::time::Duration::from_secs(2)))
                .set_number_of_retries(1);
            let manager = redis::aio::ConnectionManager::new_lazy_with_config(
                client.clone(),
                manager_config,
            )?;
            Some((client, manager))
        }
        None => None,
    };
    let work_signal = match &redis {
        Some((client, manager)) => WorkSignal::redis(client.clone(), manager.clone()),
        None => WorkSignal::local(),
    };
    let redis = redis.map(|(_, manager)| manager);
    let revocations = Arc::new(match &redis {
        Some(conn_manager) => RevocationList::redis(conn.clone(), conn_manager.clone()),
        None => RevocationList::local(conn.clone()).await?,
    });
    let keys = token_keys(config)?;
    let operator_digest = match &config.operator_key {
        Some(key) => secrets::digest(key),
        None if embedded => {
            let (digest, new_key) = embedded_operator_key(&config.data_dir())?;
            if let Some(key) = new_key {
                announcements.push(format!("Operator key (shown once, keep it): {key}"));
            }
            digest
        }
        None => anyhow::bail!("COUNTERSIGN_OPERATOR_KEY must be set outside embedded mode"),
    };
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen));
    let signer = Arc::new(history_signer(config)?);
    let store = Arc::new(
        Store::new(conn.clone(), clock.clone(), revocations.clone(), public_url)
            .with_all_tenants_connection(all_tenants.clone())
            .with_history_signer(signer)
            .with_retired_history_keys(retired_keys(config)?)
            .with_work_signal(work_signal)
            .with_job_max_attempts(config.job_max_attempts),
    );
    let mailer = Arc::new(Mailer::new(
        all_tenants.clone(),
        &MailerSettings {
            smtp_url: config.smtp_url.clone(),
            mail_dir: config.mail_dir.clone(),
            from: config.mail_from.clone(),
            max_attempts: config.mail_max_attempts,
        },
    )?);
    let operations = OperationsProbe::new(
        conn.clone(),
        all_tenants,
        redis.clone(),
        mailer.send_failures(),
    );
    let metrics = Metrics::new(Arc::new(operations), redis.is_some())?;
    let auth = AuthService::new(
        conn,
        clock,
        keys,
        revocations,
        LoginThrottle::new(redis),
        operator_digest,
    );
    if embedded
        && config.demo
        && let Some(seeded) = demo::seed(&store).await?
    {
        announcements.push(seeded.instructions(&config.listen));
        announcements.push(write_demo_agent(config, &seeded)?);
    }
    let state = Served {
        app: web::Data::new(AppState {
            store: store.clone(),
            auth: Arc::new(auth),
        }),
        metrics: web::Data::new(metrics),
        http: web::Data::new(HttpSettings::from_config(config)),
    };
    Ok(Wiring {
        state,
        store,
        mailer,
        announcements,
    })
}

fn token_keys(config: &Config) -> anyhow::Result<TokenKeys> {
    if let Some(file) = &config.jwt_private_key_file {
        return TokenKeys::from_private_key_file(file);
    }
    if let Some(secret) = &config.jwt_secret {
        return TokenKeys::hs256(secret.as_bytes());
    }
    anyhow::ensure!(
        config.is_embedded(),
        "set COUNTERSIGN_JWT_SECRET or COUNTERSIGN_JWT_PRIVATE_KEY_FILE outside embedded mode"
    );
    let secret = read_or_create(&config.data_dir().join("countersign.jwt-secret"), || {
        secrets::new_secret("jwt")
    })?;
    TokenKeys::hs256(secret.as_bytes())
}

/// The key that signs history chain heads: from its file, or in embedded mode
/// generated once beside the database.
fn history_signer(config: &Config) -> anyhow::Result<HistorySigner> {
    if let Some(file) = &config.history_signing_key_file {
        return HistorySigner::from_file(file);
    }
    anyhow::ensure!(
        config.is_embedded(),
        "set COUNTERSIGN_HISTORY_SIGNING_KEY_FILE outside embedded mode"
    );
    let path = config
        .data_dir()
        .join("countersign.history-signing-key.pem");
    if path.exists() {
        return HistorySigner::from_file(&path);
    }
    let signer = HistorySigner::generate();
    write_private(&path, &signer.to_pem()?)?;
    Ok(signer)
}

/// The public keys of rotated-out history signing keys.
fn retired_keys(config: &Config) -> anyhow::Result<Vec<HistoryPublicKey>> {
    config
        .history_retired_keys
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|k| {
            HistoryPublicKey::parse(k)
                .with_context(|| format!("COUNTERSIGN_HISTORY_RETIRED_KEYS: `{k}`"))
        })
        .collect()
}

/// The operator key's digest, kept beside the database; the key itself only
/// when it was generated now.
fn embedded_operator_key(dir: &Path) -> anyhow::Result<(String, Option<String>)> {
    let path = dir.join("countersign.operator-key.sha256");
    if let Ok(digest) = std::fs::read_to_string(&path) {
        return Ok((digest.trim().to_owned(), None));
    }
    let key = secrets::new_secret("cso");
    let digest = secrets::digest(&key);
    write_private(&path, &digest)?;
    Ok((digest, Some(key)))
}

fn read_or_create(path: &Path, make: impl FnOnce() -> String) -> anyhow::Result<String> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        return Ok(existing.trim().to_owned());
    }
    let value = make();
    write_private(path, &value)?;
    Ok(value)
}

/// Writes the demo agent's secret and a ready `countersign-agent` configuration
/// beside the database; returns how to run the simulator and the agent.
fn write_demo_agent(config: &Config, demo: &demo::Demo) -> anyhow::Result<String> {
    let dir = std::path::absolute(config.data_dir())?;
    let secret = dir.join("countersign.demo-agent.secret");
    let agent_config = dir.join("countersign-agent.demo.toml");
    // Left over from an earlier demo database: this demo has a new agent.
    for stale in [&secret, &agent_config] {
        match std::fs::remove_file(stale) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {}", stale.display()));
            }
            _ => {}
        }
    }
    write_private(&secret, &demo.agent_secret)?;
    let api_url = format!(
        "http://{}",
        config
            .listen
            .replace("0.0.0.0:", "127.0.0.1:")
            .replace("[::]:", "[::1]:")
    );
    std::fs::write(
        &agent_config,
        demo.agent_config(&api_url, &dir, "countersign.demo-agent.secret"),
    )
    .with_context(|| format!("writing {}", agent_config.display()))?;
    Ok(format!(
        "Demo site agent (devices RU-1 and DU-1), each in a terminal of its own:\n  \
         cargo run -p countersign-agent -- {}\n  \
         cargo run -p countersign-agent -- run --config {}\n\
         then type `RU-1 insert K-100` in the simulator once a readout of K-100 is approved.",
        demo.simulator_command(&dir)
            .trim_start_matches("countersign-agent "),
        agent_config.display()
    ))
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

/// How long a client may take to send a request's head.
const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an idle connection is kept open; longer than the idle timeout of
/// common load balancers (60 s), so that they never reuse a closed connection.
const KEEP_ALIVE: Duration = Duration::from_secs(75);

/// Starts serving on a bound listener; the returned server runs until stopped.
/// On SIGTERM it stops accepting and lets requests in flight finish for up to
/// the shutdown timeout.
pub fn run(state: Served, listener: TcpListener) -> anyhow::Result<actix_web::dev::Server> {
    let shutdown_timeout = state.http.shutdown_timeout.as_secs();
    let server = HttpServer::new(move || {
        let (app, _) = crate::app::build();
        let http = state.http.clone();
        app.app_data(state.app.clone())
            .app_data(state.metrics.clone())
            .app_data(http.clone())
            .wrap(from_fn(crate::hardening::deadline))
            .wrap(Condition::new(http.cors_enabled(), http.cors()))
            .wrap(from_fn(crate::telemetry::observe))
    })
    .client_request_timeout(CLIENT_REQUEST_TIMEOUT)
    .keep_alive(KEEP_ALIVE)
    .listen(listener)?
    .shutdown_timeout(shutdown_timeout)
    .run();
    Ok(server)
}

/// Serves `GET /metrics`, and nothing else, on a listener of its own that the
/// public port's clients do not reach. It ignores signals: the caller stops it
/// once the public server has drained, so that the drain can be watched.
pub fn run_metrics(
    metrics: web::Data<Metrics>,
    listener: TcpListener,
) -> anyhow::Result<actix_web::dev::Server> {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(metrics.clone())
            .configure(crate::app::metrics_routes)
    })
    .workers(1)
    .disable_signals()
    .client_request_timeout(CLIENT_REQUEST_TIMEOUT)
    .listen(listener)?
    .run();
    Ok(server)
}
