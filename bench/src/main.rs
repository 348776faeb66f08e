//! `countersign-bench`: seeds the data set, runs B1–B6 and writes docs/benchmarks.md.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use countersign_bench::Settings;

#[derive(Parser)]
#[command(about = "Countersign's benchmark suite")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the release server, seed the data set, run every benchmark, write the report.
    All {
        /// Use `--server` as it is instead of building the release server first.
        #[arg(long)]
        no_build: bool,
        #[command(flatten)]
        settings: Settings,
    },
    /// Create the benchmark database afresh and generate the data set.
    Seed(Settings),
    /// Run every benchmark on a seeded database and write the report.
    Run(Settings),
}

fn build_server() -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "countersign-api",
            "--bin",
            "countersign",
        ])
        .status()?;
    anyhow::ensure!(status.success(), "building the release server failed");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let line = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let done = async {
        match cli.command {
            Command::All { no_build, settings } => {
                if !no_build {
                    build_server()?;
                }
                let settings = Settings {
                    command_line: format!("cargo run --release -p countersign-bench -- {line}"),
                    ..settings.resolved()
                };
                let report = countersign_bench::all(&settings).await?;
                print!("{}", report.text);
            }
            Command::Seed(settings) => {
                let data = countersign_bench::seed::seed(&settings.resolved()).await?;
                println!(
                    "seeded {} tenants, {} events",
                    data.tenants.len(),
                    data.events
                );
            }
            Command::Run(settings) => {
                let settings = Settings {
                    command_line: format!("cargo run --release -p countersign-bench -- {line}"),
                    ..settings.resolved()
                };
                let report = countersign_bench::run(&settings).await?;
                print!("{}", report.text);
            }
        }
        anyhow::Ok(())
    };
    match done.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("countersign-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}
