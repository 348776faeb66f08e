//! The fixed settings of a run and the size of its data set.

use std::path::PathBuf;
use std::time::Duration;

/// The login roles of a local server with trust authentication, as
/// `tests/sql/login-roles.sql` creates them.
pub const API_LOGIN: &str = "countersign_test_api";
pub const WORKER_LOGIN: &str = "countersign_test_worker";

#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// A PostgreSQL URL whose database is used to create the benchmark database.
    #[arg(
        long,
        env = "BENCH_ADMIN_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub admin_url: String,
    /// The benchmark database; dropped and created again by `seed`.
    #[arg(long, default_value = "countersign_bench")]
    pub database: String,
    #[arg(
        long,
        env = "BENCH_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis_url: String,
    /// Tenants with the approver function.
    #[arg(long, default_value_t = 1000)]
    pub tenants: u32,
    /// Stored events per tenant.
    #[arg(long, default_value_t = 5000)]
    pub events_per_tenant: u32,
    /// The large data set: 50,000 events per tenant.
    #[arg(long)]
    pub full: bool,
    /// Seconds each side of a benchmark is driven.
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    /// Runs of each side; the report takes the medians.
    #[arg(long, default_value_t = 2)]
    pub repetitions: u32,
    /// Concurrent connections of the closed-loop drivers and of pgbench.
    #[arg(long, default_value_t = 16)]
    pub connections: u32,
    /// Long polls held open on one API process (B3).
    #[arg(long, default_value_t = 10_000)]
    pub idle_polls: u32,
    /// Approvals whose wake-ups are timed (B3).
    #[arg(long, default_value_t = 100)]
    pub wakeups: u32,
    /// The `countersign` server binary.
    #[arg(long, default_value = "target/release/countersign")]
    pub server: PathBuf,
    /// The servers' log filter (`RUST_LOG`); their logs go to standard output.
    #[arg(long, default_value = "error")]
    pub server_log: String,
    /// Where the report is written.
    #[arg(long, default_value = "docs/benchmarks.md")]
    pub report: PathBuf,
    /// Run only these benchmarks, e.g. `--only B1,B3`; all of them when empty.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Tiny data and short phases: checks that the whole pipeline works.
    #[arg(long)]
    pub smoke: bool,
    /// The command line, as the report shows it.
    #[arg(skip)]
    pub command_line: String,
}

impl Settings {
    /// Applies `--full` and `--smoke` over the explicit sizes.
    pub fn resolved(mut self) -> Self {
        if let Ok(server) = std::fs::canonicalize(&self.server) {
            self.server = server;
        }
        if self.full {
            self.events_per_tenant = 50_000;
        }
        if self.smoke {
            self.tenants = self.tenants.min(3);
            self.events_per_tenant = self.events_per_tenant.min(100);
            self.duration = self.duration.min(1.0);
            self.repetitions = 1;
            self.idle_polls = self.idle_polls.min(30);
            self.wakeups = self.wakeups.min(3);
        }
        self
    }

    /// Whether benchmark `name` (`B1` … `B6`) is to run.
    pub fn runs(&self, name: &str) -> bool {
        self.only.is_empty()
            || self
                .only
                .iter()
                .any(|b| b.trim().eq_ignore_ascii_case(name))
    }

    pub fn phase(&self) -> Duration {
        Duration::from_secs_f64(self.duration)
    }

    /// The URL of the benchmark database.
    pub fn database_url(&self) -> String {
        let base = self
            .admin_url
            .rsplit_once('/')
            .map_or(self.admin_url.as_str(), |(base, _)| base);
        format!("{base}/{}", self.database)
    }

    /// The benchmark database as `role` connects to it: the owner seeds it,
    /// the API and the database baselines run as [`API_LOGIN`] (bound by
    /// row-level security), background work as [`WORKER_LOGIN`].
    pub fn database_url_as(&self, role: &str) -> anyhow::Result<String> {
        let mut url = reqwest::Url::parse(&self.database_url())?;
        url.set_username(role)
            .map_err(|()| anyhow::anyhow!("{url} takes no user name"))?;
        url.set_password(None)
            .map_err(|()| anyhow::anyhow!("{url} takes no password"))?;
        Ok(url.to_string())
    }

    /// Tenants without the approver function, one per connection (B5's agents).
    pub fn auto_tenants(&self) -> u32 {
        self.connections
    }

    /// Raises this process's open-file limit to its hard limit; the servers
    /// it starts inherit it (B3 holds thousands of connections).
    pub fn raise_open_file_limit(&self) {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}
