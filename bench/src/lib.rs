//! The benchmark suite: a data set generated with set-based SQL, release
//! servers driven closed-loop, pgbench baselines, and a Markdown report.

pub mod benches;
pub mod load;
pub mod pgbench;
pub mod report;
pub mod seed;
pub mod server;
pub mod settings;

use anyhow::Context;

pub use settings::Settings;

/// Seeds the data set, runs every benchmark and writes the report.
pub async fn all(settings: &Settings) -> anyhow::Result<report::Report> {
    settings.raise_open_file_limit();
    let started = std::time::Instant::now();
    let data = seed::seed(settings).await.context("seeding the data set")?;
    let seed_secs = started.elapsed().as_secs_f64();
    let results = benches::run(settings, &data).await?;
    let report = report::Report::new(settings, seed_secs, results);
    report.write(&settings.report)?;
    Ok(report)
}

/// Runs every benchmark on a database seeded before, and writes the report.
pub async fn run(settings: &Settings) -> anyhow::Result<report::Report> {
    settings.raise_open_file_limit();
    let data = seed::DataSet::load(settings).await?;
    let results = benches::run(settings, &data).await?;
    let report = report::Report::new(settings, 0.0, results);
    report.write(&settings.report)?;
    Ok(report)
}
