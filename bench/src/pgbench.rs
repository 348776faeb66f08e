//! The database baselines: `pgbench -n -M prepared -c 16 -j 2 -T 30` with the
//! custom scripts in `bench/pgbench/`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::Settings;

/// The folder of the pgbench scripts.
pub fn scripts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pgbench")
}

pub struct Baseline {
    pub tps: f64,
    pub command: String,
}

/// Runs `script` with `-D` variables; answers its transactions per second.
pub async fn run(
    settings: &Settings,
    script: &str,
    variables: &[(&str, String)],
    duration: Duration,
) -> anyhow::Result<Baseline> {
    let path = scripts().join(script);
    let mut args: Vec<String> = vec![
        "-n".into(),
        "-M".into(),
        "prepared".into(),
        "-c".into(),
        settings.connections.to_string(),
        "-j".into(),
        "2".into(),
        "-T".into(),
        duration.as_secs().max(1).to_string(),
        "-f".into(),
        path.display().to_string(),
    ];
    for (name, value) in variables {
        args.push("-D".into());
        args.push(format!("{name}={value}"));
    }
    // As the API's role: row-level security binds the baseline as it binds us.
    args.push(settings.database_url_as(crate::settings::API_LOGIN)?);
    // Shown relative to the working directory when it lies below it.
    let cwd = std::env::current_dir().unwrap_or_default();
    let shown: Vec<String> = args
        .iter()
        .map(|a| match std::path::Path::new(a).strip_prefix(&cwd) {
            Ok(relative) if a.starts_with('/') => relative.display().to_string(),
            _ => a.clone(),
        })
        .collect();
    let command = format!("pgbench {}", shown.join(" "));
    let output = tokio::process::Command::new("pgbench")
        .args(&args)
        .output()
        .await
        .context("running pgbench (is it installed?)")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tps = stdout
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .with_context(|| {
            format!(
                "pgbench printed no tps ({}):\n{stdout}\n{stderr}",
                output.status
            )
        })?;
    anyhow::ensure!(
        output.status.success() && !stdout.contains("aborted"),
        "pgbench failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    Ok(Baseline { tps, command })
}
