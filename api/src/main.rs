//! `countersign`: the API server, its migrations and its OpenAPI document.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use countersign_api::config::Config;
use countersign_api::{app, server, telemetry, workers};

#[derive(Parser)]
#[command(
    version,
    about = "Countersign: the approver function for electronic master-key systems"
)]
struct Cli {
    /// Optional TOML file with settings; environment variables override it.
    #[arg(long, global = true, env = "COUNTERSIGN_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default). Without configuration: embedded mode on SQLite with a demo tenant.
    Serve,
    /// Apply database migrations, then exit.
    Migrate,
    /// Print the OpenAPI document.
    Openapi,
    /// Work with exported histories, offline.
    History {
        #[command(subcommand)]
        command: HistoryCommand,
    },
}

#[derive(Subcommand)]
enum HistoryCommand {
    /// Check an export of `GET /v1/history/export?format=jsonl` with no server
    /// and no database: every hash and link, and every checkpoint in the file
    /// and given. Exits 0 when the chain holds, 1 when it does not, 2 when the
    /// input cannot be read.
    Verify {
        /// The exported JSON Lines file.
        file: PathBuf,
        /// A public key of the checkpoints (32 bytes in base64 or a PEM
        /// public key, or a file holding one), as `GET /v1/history/signing-keys`
        /// lists them; repeat it for retired keys.
        #[arg(long = "public-key", required = true)]
        public_keys: Vec<String>,
        /// A checkpoint kept elsewhere (JSON, or a file holding it): one
        /// checkpoint, a list, or the line of the auditors' mail; repeatable.
        #[arg(long = "checkpoint")]
        checkpoints: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Openapi) => {
            println!("{}", app::openapi_json());
            return Ok(());
        }
        Some(Command::History {
            command:
                HistoryCommand::Verify {
                    file,
                    public_keys,
                    checkpoints,
                },
        }) => verify_offline(file, public_keys, checkpoints),
        _ => {}
    }
    let config = Config::load(cli.config.as_deref())?;
    telemetry::init_logging(config.log_format);
    actix_web::rt::System::new().block_on(async move {
        match cli.command {
            Some(Command::Migrate) => {
                let url = config
                    .migration_database_url
                    .as_deref()
                    .unwrap_or(&config.database_url);
                let conn = countersign_infra::db::connect(url, 1).await?;
                countersign_infra::db::migrate(&conn).await?;
                println!("migrations applied");
                Ok(())
            }
            _ => serve(config).await,
        }
    })
}

fn verify_offline(file: &std::path::Path, keys: &[String], checkpoints: &[String]) -> ! {
    match countersign_api::offline::verify_export(file, keys, checkpoints) {
        Ok(verification) => {
            print!("{}", countersign_api::offline::describe(&verification));
            std::process::exit(if verification.valid { 0 } else { 1 })
        }
        Err(err) => {
            eprintln!("cannot verify {}: {err:#}", file.display());
            std::process::exit(2)
        }
    }
}

/// How long background work may take to finish its round at shutdown.
const WORKERS_PATIENCE: Duration = Duration::from_secs(20);

async fn serve(config: Config) -> anyhow::Result<()> {
    let wiring = server::wire(&config).await?;
    // Bound first, so that its line precedes the public one.
    let metrics_server = match config.metrics_address() {
        Some(address) => {
            let listener = std::net::TcpListener::bind(address)
                .with_context(|| format!("COUNTERSIGN_METRICS_LISTEN: binding {address}"))?;
            let metrics_address = listener.local_addr()?;
            tracing::info!(%metrics_address, "metrics on http://{metrics_address}/metrics");
            let running = server::run_metrics(wiring.state.metrics.clone(), listener)?;
            let handle = running.handle();
            actix_web::rt::spawn(running);
            Some(handle)
        }
        None => {
            tracing::info!("no metrics listener (COUNTERSIGN_METRICS_LISTEN is empty)");
            None
        }
    };
    let listener = std::net::TcpListener::bind(&config.listen)
        .with_context(|| format!("COUNTERSIGN_LISTEN: binding {}", config.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, "Countersign listening on http://{address}");
    for note in &wiring.announcements {
        println!("{note}");
    }
    let workers = workers::spawn(
        wiring.store.clone(),
        wiring.mailer.clone(),
        wiring.state.metrics.clone().into_inner(),
        Duration::from_secs(config.metrics_interval_secs),
    );
    // Runs until SIGTERM (or SIGINT) and the drain of requests in flight.
    let served = server::run(wiring.state, listener)?.await;
    tracing::info!("stopped serving; stopping background work");
    workers.stop(WORKERS_PATIENCE).await;
    if let Some(metrics_server) = metrics_server {
        metrics_server.stop(true).await;
    }
    tracing::info!("stopped");
    served?;
    Ok(())
}
