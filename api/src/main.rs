//! `countersign`: the API server, its migrations and its OpenAPI document.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use countersign_api::config::Config;
use countersign_api::{app, server};

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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Openapi) = cli.command {
        println!("{}", app::openapi_json());
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();
    let config = Config::load(cli.config.as_deref())?;
    actix_web::rt::System::new().block_on(async move {
        match cli.command {
            Some(Command::Migrate) => {
                let conn = countersign_infra::db::connect(&config.database_url, 1).await?;
                countersign_infra::db::migrate(&conn).await?;
                println!("migrations applied");
                Ok(())
            }
            _ => serve(config).await,
        }
    })
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let wiring = server::wire(&config).await?;
    let listener = std::net::TcpListener::bind(&config.listen)?;
    println!("Countersign listening on http://{}", listener.local_addr()?);
    for note in &wiring.announcements {
        println!("{note}");
    }
    countersign_api::workers::spawn(wiring.store.clone(), wiring.mailer.clone());
    server::run(wiring.state, listener)?.await?;
    Ok(())
}
