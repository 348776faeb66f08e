//! The on-premise device agent.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use countersign_agent::client::{ApiClient, RetryPolicy};
use countersign_agent::config::Config;
use countersign_agent::link::DeviceLink;
use countersign_agent::simulator::{self, Control, SimConfig};
use tokio::io::AsyncBufReadExt;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "countersign-agent",
    version,
    about = "Countersign on-premise device agent"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the agent.
    Run {
        #[arg(long, env = "COUNTERSIGN_AGENT_CONFIG")]
        config: PathBuf,
    },
    /// Validates the configuration, logs in to the API and greets each device.
    Check {
        #[arg(long, env = "COUNTERSIGN_AGENT_CONFIG")]
        config: PathBuf,
    },
    /// Simulates a device on a pseudo-terminal; commands are read from stdin.
    Simulate {
        #[arg(long, default_value = "remote_unit")]
        kind: String,
        #[arg(long, default_value = "SIM-1")]
        serial: String,
        /// Keep a symlink to the current pty here (stable across `hangup`).
        #[arg(long)]
        link: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run { config } => run(config).await,
            Command::Check { config } => check(config).await,
            Command::Simulate { kind, serial, link } => {
                simulate(SimConfig { kind, serial, link }).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "stopped with an error");
            ExitCode::FAILURE
        }
    }
}

async fn run(path: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&path)?;
    let cancel = CancellationToken::new();
    tokio::spawn(stop_on_signal(cancel.clone()));
    countersign_agent::agent::run(config, cancel).await
}

async fn stop_on_signal(cancel: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            cancel.cancel();
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
    cancel.cancel();
}

async fn check(path: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&path)?;
    let secret = config.read_secret()?;
    std::fs::create_dir_all(&config.spool_dir)?;
    let client = Arc::new(ApiClient::new(
        &config.api_url,
        config.agent_id,
        secret,
        RetryPolicy {
            attempts: 2,
            ..RetryPolicy::default()
        },
    )?);
    client.login().await?;
    tracing::info!(api_url = %config.api_url, "configuration valid; logged in");
    let cancel = CancellationToken::new();
    for device in &config.devices {
        let (notices, _ignored) = tokio::sync::mpsc::channel(8);
        let connector = countersign_agent::agent::serial_connector(device);
        let link = DeviceLink::spawn(
            connector,
            config.serial.link_config(),
            notices,
            cancel.clone(),
        );
        match tokio::time::timeout(Duration::from_secs(5), link.identify()).await {
            Ok(Ok(identity)) => tracing::info!(device_id = %device.id, ?identity, "device answers"),
            Ok(Err(error)) => {
                tracing::warn!(device_id = %device.id, %error, "device does not answer")
            }
            Err(_) => tracing::warn!(device_id = %device.id, "device does not answer"),
        }
    }
    cancel.cancel();
    Ok(())
}

async fn simulate(config: SimConfig) -> anyhow::Result<()> {
    let handle = simulator::spawn(config)?;
    println!("pty {}", handle.current_path().display());
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        let line = tokio::select! {
            line = lines.next_line() => line?,
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(line) = line else { return Ok(()) };
        if line.trim().is_empty() {
            continue;
        }
        match Control::parse(&line) {
            Ok(control) => println!("{}", handle.send(control).await),
            Err(error) => println!("error: {error}"),
        }
    }
}
