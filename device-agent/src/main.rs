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
        /// Simulate several devices, each `KIND:SERIAL:LINK` (instead of the three
        /// options above); a command line starting with a serial goes to that device.
        #[arg(long = "device", value_name = "KIND:SERIAL:LINK", conflicts_with_all = ["kind", "serial", "link"])]
        devices: Vec<String>,
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
            Command::Simulate {
                kind,
                serial,
                link,
                devices,
            } => {
                let configs = if devices.is_empty() {
                    vec![SimConfig { kind, serial, link }]
                } else {
                    devices
                        .iter()
                        .map(|d| parse_device(d))
                        .collect::<anyhow::Result<_>>()?
                };
                simulate(configs).await
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

fn parse_device(text: &str) -> anyhow::Result<SimConfig> {
    let mut parts = text.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(kind), Some(serial), Some(link))
            if matches!(kind, "remote_unit" | "desk_unit") && !serial.is_empty() =>
        {
            Ok(SimConfig {
                kind: kind.to_owned(),
                serial: serial.to_owned(),
                link: Some(PathBuf::from(link)),
            })
        }
        _ => anyhow::bail!("--device {text}: expected remote_unit|desk_unit:SERIAL:LINK"),
    }
}

async fn simulate(configs: Vec<SimConfig>) -> anyhow::Result<()> {
    let several = configs.len() > 1;
    let mut devices = Vec::new();
    for config in configs {
        let serial = config.serial.clone();
        let handle = simulator::spawn(config)?;
        if several {
            println!("{serial}: pty {}", handle.current_path().display());
        } else {
            println!("pty {}", handle.current_path().display());
        }
        devices.push((serial, handle));
    }
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        let line = tokio::select! {
            line = lines.next_line() => line?,
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(line) = line else { return Ok(()) };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        // `DU-1 insert K-100` goes to DU-1; a line without a serial to the first device.
        let (target, command) = match line.split_once(char::is_whitespace) {
            Some((first, rest)) => match devices.iter().position(|(s, _)| s == first) {
                Some(i) => (i, rest.trim()),
                None => (0, line),
            },
            None => (0, line),
        };
        let Some((serial, handle)) = devices.get(target) else {
            return Ok(());
        };
        let prefix = if several {
            format!("{serial}: ")
        } else {
            String::new()
        };
        match Control::parse(command) {
            Ok(control) => println!("{prefix}{}", handle.send(control).await),
            Err(error) => println!("{prefix}error: {error}"),
        }
    }
}
