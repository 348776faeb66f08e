//! API servers as child processes, and what /proc says about them.

use std::net::TcpListener;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::process::{Child, Command};

use crate::Settings;
use crate::settings::{API_LOGIN, WORKER_LOGIN};

/// The HS256 secret the servers sign tokens with; the drivers mint tokens with it.
pub const JWT_SECRET: &str = "bench-secret-bench-secret-bench-secret-0123";
pub const OPERATOR_KEY: &str = "bench-operator-key";

pub struct Server {
    pub base: String,
    child: Child,
    pub pid: u32,
    _dir: Option<tempfile::TempDir>,
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Server {
    /// `countersign serve` on PostgreSQL and Redis, mails written to a temporary folder.
    pub async fn production(binary: &Path, settings: &Settings) -> anyhow::Result<Server> {
        let dir = tempfile::tempdir()?;
        let key = dir.path().join("history-signing-key.pem");
        std::fs::write(
            &key,
            countersign_infra::signing::HistorySigner::generate().to_pem()?,
        )?;
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .env("DATABASE_URL", settings.database_url_as(API_LOGIN)?)
            .env(
                "COUNTERSIGN_WORKER_DATABASE_URL",
                settings.database_url_as(WORKER_LOGIN)?,
            )
            .env("REDIS_URL", &settings.redis_url)
            .env("COUNTERSIGN_OPERATOR_KEY", OPERATOR_KEY)
            .env("COUNTERSIGN_JWT_SECRET", JWT_SECRET)
            .env("COUNTERSIGN_HISTORY_SIGNING_KEY_FILE", &key);
        let mail = dir.path().join("mail");
        command
            .env("RUST_LOG", &settings.server_log)
            .stdout(Stdio::inherit());
        Self::start(command, &mail, Some(dir)).await
    }

    /// `countersign` with no configuration in `folder`: embedded mode.
    pub async fn embedded(binary: &Path, folder: &Path) -> anyhow::Result<(Server, Duration)> {
        let mut command = Command::new(binary);
        command
            .current_dir(folder)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null());
        for name in ["DATABASE_URL", "REDIS_URL", "SMTP_URL"] {
            command.env_remove(name);
        }
        let started = Instant::now();
        let server = Self::start(command, &folder.join("mail"), None).await?;
        Ok((server, started.elapsed()))
    }

    async fn start(
        mut command: Command,
        mail: &Path,
        dir: Option<tempfile::TempDir>,
    ) -> anyhow::Result<Server> {
        let port = free_port()?;
        let base = format!("http://127.0.0.1:{port}");
        command
            .env("COUNTERSIGN_LISTEN", format!("127.0.0.1:{port}"))
            // Not the default 127.0.0.1:9090: several servers may run at once.
            .env("COUNTERSIGN_METRICS_LISTEN", "127.0.0.1:0")
            .env("COUNTERSIGN_MAIL_DIR", mail)
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let started = Instant::now();
        let child = command.spawn().context("starting the server")?;
        let pid = child.id().context("the server has no pid")?;
        let mut server = Server {
            base,
            child,
            pid,
            _dir: dir,
        };
        let client = reqwest::Client::new();
        loop {
            if let Ok(reply) = client.get(format!("{}/readyz", server.base)).send().await
                && reply.status().is_success()
            {
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                anyhow::bail!("the server exited at start: {status}");
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(60),
                "the server did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }

    /// Resident memory in bytes.
    pub fn rss(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .context("VmRSS")?;
        Ok(kib * 1024)
    }

    /// CPU time used so far (user + system), in clock ticks.
    pub fn cpu_ticks(&self) -> anyhow::Result<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).context("stat")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: u64 = fields.get(11).context("utime")?.parse()?;
        let stime: u64 = fields.get(12).context("stime")?.parse()?;
        Ok(utime + stime)
    }
}

/// Clock ticks per second of /proc/<pid>/stat.
pub fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}
