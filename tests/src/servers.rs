//! PostgreSQL and Redis servers of a test's own, on free ports, that the test
//! may stop and start again without disturbing any other test: a PostgreSQL
//! cluster made by `initdb` in a temporary directory, and a `redis-server`
//! without persistence.
//!
//! Needs the PostgreSQL server binaries (`initdb`, `postgres`; found under
//! `/usr/lib/postgresql/*/bin` or on `PATH`) and `redis-server` on `PATH`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use countersign_api::config::Config;
use countersign_infra::mail::Mailer;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::{Backend, JWT_SECRET, OPERATOR_KEY, TestApp, migrated_database_on};

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The uid and gid to run PostgreSQL as: ours, or `postgres`'s when we are root
/// (initdb refuses to run as root).
async fn postgres_user() -> Option<(u32, u32)> {
    let id = |args: &'static [&'static str]| async move {
        let out = Command::new("id").args(args).output().await.unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u32>()
            .unwrap()
    };
    if id(&["-u"]).await != 0 {
        return None;
    }
    Some((id(&["-u", "postgres"]).await, id(&["-g", "postgres"]).await))
}

fn postgres_bin(name: &str) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| {
            dirs.filter_map(Result::ok)
                .map(|d| d.path().join("bin").join(name))
                .filter(|p| p.exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().unwrap_or_else(|| PathBuf::from(name))
}

fn as_user(command: &mut Command, user: Option<(u32, u32)>) {
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid);
    }
}

/// A PostgreSQL cluster of the test's own, in a temporary directory. It can be
/// stopped (a fast shutdown, as `pg_ctl stop -m fast`) and started again on
/// the same data directory and port.
pub struct Postgres {
    port: u16,
    user: Option<(u32, u32)>,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Postgres {
    pub async fn start() -> Postgres {
        let dir = tempfile::tempdir().unwrap();
        let user = postgres_user().await;
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let mut initdb = Command::new(postgres_bin("initdb"));
        initdb
            .arg("-D")
            .arg(Self::data(dir.path()))
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "-N"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        as_user(&mut initdb, user);
        let out = initdb.output().await.expect("initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut server = Postgres {
            port: free_port(),
            user,
            child: None,
            dir,
        };
        server.resume().await;
        server
    }

    fn data(dir: &Path) -> PathBuf {
        dir.join("data")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `postgres` database as the superuser, for [`TestApp::spawn_on_servers`].
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Whether the server runs (between [`Postgres::stop`] and [`Postgres::resume`] it does not).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// A fast shutdown: open transactions are rolled back, sessions ended, and
    /// connections refused until [`Postgres::resume`]. Returns once the server
    /// has exited.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id() {
            let _ = Command::new("kill")
                .args(["-INT", &pid.to_string()])
                .status()
                .await;
        }
        if tokio::time::timeout(Duration::from_secs(20), child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }

    /// Starts the server (again) on the same data directory and port, and
    /// waits until it accepts connections.
    pub async fn resume(&mut self) {
        assert!(self.child.is_none(), "PostgreSQL is running");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut postgres = Command::new(postgres_bin("postgres"));
            postgres
                .arg("-D")
                .arg(Self::data(self.dir.path()))
                .args(["-p", &self.port.to_string(), "-h", "127.0.0.1", "-k"])
                .arg(self.dir.path())
                .args(["-c", "fsync=off", "-c", "max_connections=100"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true);
            as_user(&mut postgres, self.user);
            let mut child = postgres.spawn().expect("postgres");
            loop {
                if countersign_infra::db::connect(&self.admin_url(), 1)
                    .await
                    .is_ok()
                {
                    self.child = Some(child);
                    return;
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break; // e.g. the port is not free yet; try again
                }
                assert!(Instant::now() < deadline, "PostgreSQL did not start");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(Instant::now() < deadline, "PostgreSQL did not start");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // A fast shutdown, so that no backend outlives the temporary directory;
        // kill_on_drop is the fallback.
        if let Some(child) = &mut self.child
            && let Some(pid) = child.id()
        {
            let _ = std::process::Command::new("kill")
                .args(["-INT", &pid.to_string()])
                .status();
            for _ in 0..50 {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// A Redis server of the test's own that can be stopped and started again on
/// the same port; it keeps nothing across a restart.
pub struct Redis {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    pub async fn start() -> Redis {
        let mut redis = Redis {
            port: free_port(),
            child: None,
        };
        redis.resume().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server: connections are refused until [`Redis::resume`].
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }

    /// Starts the server (again) on the same port.
    pub async fn resume(&mut self) {
        assert!(self.child.is_none(), "Redis is running");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut child = Command::new("redis-server")
                .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("redis-server");
            for _ in 0..20 {
                if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                    .await
                    .is_ok()
                {
                    self.child = Some(child);
                    return;
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break; // the port is not free yet
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = child.kill().await;
            assert!(Instant::now() < deadline, "Redis did not start again");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl TestApp {
    /// [`TestApp::spawn_on_servers`] with the configuration adjusted before the
    /// server is wired; also hands out the app's outbox worker, which nothing
    /// runs yet.
    pub async fn spawn_on_servers_with(
        admin_url: &str,
        redis_url: &str,
        adjust: impl FnOnce(&mut Config),
    ) -> (TestApp, Arc<Mailer>) {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("history-signing-key.pem");
        let pem = countersign_infra::signing::HistorySigner::generate()
            .to_pem()
            .unwrap();
        std::fs::write(&key, pem).unwrap();
        let urls = migrated_database_on(admin_url).await;
        let mut config = Config {
            listen: "127.0.0.1:0".into(),
            metrics_listen: "127.0.0.1:0".into(),
            database_url: urls.api,
            worker_database_url: Some(urls.worker),
            redis_url: Some(redis_url.to_owned()),
            operator_key: Some(OPERATOR_KEY.into()),
            jwt_secret: Some(JWT_SECRET.into()),
            history_signing_key_file: Some(key),
            demo: false,
            ..Config::default()
        };
        adjust(&mut config);
        let db = countersign_infra::db::connect(&urls.owner, 2)
            .await
            .unwrap();
        Self::serve(config, Backend::Postgres, db, Some(dir)).await
    }
}
