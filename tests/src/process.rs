//! The workspace's binaries as real processes: built on demand, started with
//! an environment of the test's choosing, their output kept for assertions.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long a started server may take to listen, and a stopped one to exit.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// `target/debug/BIN` beside the directory of the running test executable,
/// brought up to date with `cargo build -p PACKAGE --bin BIN` (a no-op when it
/// is fresh). Falls back to an existing binary when cargo cannot build.
pub async fn cargo_binary(package: &str, bin: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let binary = dir.join(bin);
    let mut build = Command::new(option_env!("CARGO").unwrap_or("cargo"));
    build
        .args(["build", "-p", package, "--bin", bin])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    // What cargo set for this test process would make build scripts that
    // watch it (ring watches CARGO_MANIFEST_DIR) rebuild for nothing.
    for (name, _) in std::env::vars() {
        if name.starts_with("CARGO_PKG_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
            ]
            .contains(&name.as_str())
        {
            build.env_remove(name);
        }
    }
    match build.output().await {
        Ok(output) if output.status.success() => {}
        Ok(output) => assert!(
            binary.exists(),
            "cannot build {bin} and {} is missing:\n{}",
            binary.display(),
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(error) => assert!(
            binary.exists(),
            "cannot run cargo ({error}) and {} is missing",
            binary.display()
        ),
    }
    binary
}

/// The `countersign` server binary, built once per test process.
pub async fn server_binary() -> PathBuf {
    static BUILT: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();
    BUILT
        .get_or_init(|| cargo_binary("countersign-api", "countersign"))
        .await
        .clone()
}

/// A `countersign` command with a clean environment for the server: no
/// `COUNTERSIGN_*` variable or `RUST_LOG` of the caller's, `RUST_LOG=info`,
/// then `env`; run in `dir`.
pub async fn server_command(dir: &Path, env: &[(&str, String)]) -> Command {
    let mut command = Command::new(server_binary().await);
    for (name, _) in std::env::vars() {
        if name.starts_with("COUNTERSIGN_")
            || ["RUST_LOG", "DATABASE_URL", "REDIS_URL", "SMTP_URL"].contains(&name.as_str())
        {
            command.env_remove(name);
        }
    }
    command.env("RUST_LOG", "info").current_dir(dir);
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// A running `countersign serve`, its stdout and stderr collected line by line.
pub struct ServerProcess {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The metrics listener, `http://127.0.0.1:PORT`, unless the environment
    /// turned it off.
    pub metrics_base: Option<String>,
    child: Child,
    output: Arc<Mutex<Vec<String>>>,
}

impl ServerProcess {
    /// Starts the server on a free port of 127.0.0.1, and its metrics on
    /// another unless `env` says otherwise, and waits until it listens (it
    /// says so in a log line with its `address`, after the one with its
    /// `metrics_address`).
    pub async fn start(dir: &Path, env: &[(&str, String)]) -> ServerProcess {
        let mut env = env.to_vec();
        env.insert(0, ("COUNTERSIGN_METRICS_LISTEN", "127.0.0.1:0".to_owned()));
        env.push(("COUNTERSIGN_LISTEN", "127.0.0.1:0".to_owned()));
        let mut child = server_command(dir, &env)
            .await
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let output = Arc::new(Mutex::new(Vec::new()));
        let (listening, mut address) = tokio::sync::mpsc::unbounded_channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        tokio::spawn(collect(stdout, output.clone(), Some(listening)));
        tokio::spawn(collect(stderr, output.clone(), None));
        let address = tokio::time::timeout(PATIENCE, address.recv())
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| {
                panic!(
                    "the server did not start listening; it said:\n{}",
                    output.lock().unwrap().join("\n")
                )
            });
        let metrics_base = output.lock().unwrap().iter().find_map(|line| {
            let event = serde_json::from_str::<serde_json::Value>(line).ok()?;
            Some(format!("http://{}", event["metrics_address"].as_str()?))
        });
        ServerProcess {
            base: format!("http://{address}"),
            metrics_base,
            child,
            output,
        }
    }

    /// Every line written so far to stdout and stderr.
    pub fn output(&self) -> Vec<String> {
        self.output.lock().unwrap().clone()
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub async fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().expect("the server is running");
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("the server exits after SIGTERM")
            .unwrap();
        // The collectors may still hold the last lines.
        tokio::time::sleep(Duration::from_millis(200)).await;
        status
    }
}

/// Keeps every line of `stream`; reports the address of the "listening" line.
async fn collect(
    stream: impl tokio::io::AsyncRead + Unpin,
    output: Arc<Mutex<Vec<String>>>,
    listening: Option<tokio::sync::mpsc::UnboundedSender<String>>,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(listening) = &listening
            && let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
            && let Some(address) = event["address"].as_str()
        {
            let _ = listening.send(address.to_owned());
        }
        output.lock().unwrap().push(line);
    }
}
