//! The device agent and its simulator as real processes against a real API:
//! `countersign-agent simulate` on pseudo-terminals, `countersign-agent run`
//! with a TOML configuration, and the test's server on SQLite or PostgreSQL.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use countersign_tests::process::cargo_binary;
use countersign_tests::{Tenant, TestApp, on_both_databases};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::Instant;

/// How long a scenario waits for the agent to reach an expected state.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

/// `target/debug/countersign-agent`, beside the directory of this test executable,
/// brought up to date once per test process (a no-op when it is fresh, as after
/// `cargo test --workspace`, which builds it for the agent's own integration tests).
pub(crate) async fn agent_binary() -> PathBuf {
    static BUILT: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();
    BUILT
        .get_or_init(|| cargo_binary("countersign-agent", "countersign-agent"))
        .await
        .clone()
}

/// A simulated device: `countersign-agent simulate` with its pty behind a symlink.
pub(crate) struct Simulator {
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    link: PathBuf,
    _child: Child,
}

impl Simulator {
    pub(crate) async fn start(dir: &Path, kind: &str, serial: &str) -> Simulator {
        let link = dir.join(format!("sim-{serial}"));
        let mut child = Command::new(agent_binary().await)
            .arg("simulate")
            .args(["--kind", kind, "--serial", serial, "--link"])
            .arg(&link)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(PATIENCE, stdout.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(first.starts_with("pty "), "simulator said {first}");
        Simulator {
            stdin: child.stdin.take().unwrap(),
            stdout,
            link,
            _child: child,
        }
    }

    /// Sends one control command and returns the simulator's one-line answer.
    pub(crate) async fn send(&mut self, command: &str) -> String {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
        let answer = tokio::time::timeout(PATIENCE, self.stdout.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(!answer.starts_with("error"), "{command}: {answer}");
        answer
    }
}

/// The agent process; its JSON log lines are kept for failure messages.
pub(crate) struct AgentProcess {
    log: Arc<Mutex<Vec<String>>>,
    child: Child,
}

impl AgentProcess {
    /// Starts `countersign-agent run --config <config_file>`, keeping its log.
    pub(crate) async fn spawn(config_file: &Path) -> AgentProcess {
        let mut child = Command::new(agent_binary().await)
            .arg("run")
            .arg("--config")
            .arg(config_file)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        AgentProcess { log, child }
    }

    /// Kills the process with SIGKILL and waits for it: no shutdown, no cleanup.
    pub(crate) async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }

    /// Waits until the agent is logged in and both serial lines are open.
    pub(crate) async fn wait_ready(&self) {
        let deadline = Deadline::new();
        while self.logged("serial line open") < 2 || self.logged("logged in") < 1 {
            deadline
                .tick("the agent to open both serial lines", self)
                .await;
        }
    }

    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub(crate) fn logged(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }
}

/// A tenant's site: two registered devices, each with a simulator, and an agent
/// process serving both.
pub(crate) struct Site {
    pub(crate) wall_id: String,
    pub(crate) desk_id: String,
    pub(crate) wall: Simulator,
    pub(crate) desk: Simulator,
    pub(crate) agent: AgentProcess,
    config_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Site {
    pub(crate) async fn start(app: &TestApp, tenant: &Tenant) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let mut ids = Vec::new();
        for (name, kind, serial) in [
            ("Wall", "remote_unit", "RU-1"),
            ("Desk", "desk_unit", "DU-1"),
        ] {
            let device = app
                .post(
                    "/v1/remote-devices",
                    &tenant.admin,
                    json!({"name": name, "kind": kind, "serial": serial}),
                )
                .await
                .assert(201);
            ids.push(device["id"].as_str().unwrap().to_owned());
        }
        let created = app
            .post("/v1/agents", &tenant.admin, json!({"name": "Site PC"}))
            .await
            .assert(201);
        let agent_id = created["agent"]["id"].as_str().unwrap().to_owned();
        app.call(
            reqwest::Method::PUT,
            &format!("/v1/agents/{agent_id}/devices"),
            Some(&tenant.admin),
            Some(json!({"device_ids": ids})),
        )
        .await
        .assert(200);

        let wall = Simulator::start(dir.path(), "remote_unit", "RU-1").await;
        let desk = Simulator::start(dir.path(), "desk_unit", "DU-1").await;
        let secret_file = dir.path().join("secret");
        std::fs::write(&secret_file, created["secret"].as_str().unwrap()).unwrap();
        let config = format!(
            r#"api_url = "{api}"
agent_id = "{agent_id}"
secret_file = "{secret}"
spool_dir = "{spool}"
poll_wait_secs = 10

[serial]
timeout_ms = 300
retries = 3
reconnect_ms = 200

[[devices]]
id = "{wall_id}"
port = "{wall_port}"
kind = "remote_unit"

[[devices]]
id = "{desk_id}"
port = "{desk_port}"
kind = "desk_unit"
"#,
            api = app.base,
            secret = secret_file.display(),
            spool = dir.path().join("spool").display(),
            wall_id = ids[0],
            wall_port = wall.link.display(),
            desk_id = ids[1],
            desk_port = desk.link.display(),
        );
        let config_file = dir.path().join("agent.toml");
        std::fs::write(&config_file, config).unwrap();
        let agent = AgentProcess::spawn(&config_file).await;
        agent.wait_ready().await;
        Site {
            wall_id: ids[0].clone(),
            desk_id: ids[1].clone(),
            wall,
            desk,
            agent,
            config_file,
            _dir: dir,
        }
    }

    /// Starts the agent again (after [`AgentProcess::kill`]) with the same
    /// configuration and spool directory, and waits until it is ready.
    pub(crate) async fn restart_agent(&mut self) {
        self.agent = AgentProcess::spawn(&self.config_file).await;
        self.agent.wait_ready().await;
    }
}

/// A deadline for polling; failing shows the agent's log.
pub(crate) struct Deadline(Instant);

impl Deadline {
    pub(crate) fn new() -> Deadline {
        Deadline(Instant::now() + PATIENCE)
    }

    pub(crate) async fn tick(&self, waiting_for: &str, agent: &AgentProcess) {
        assert!(
            Instant::now() < self.0,
            "waited {PATIENCE:?} for {waiting_for}; agent log:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn get(app: &TestApp, tenant: &Tenant, path: &str) -> Value {
    app.get(path, &tenant.admin).await.assert(200)
}

pub(crate) fn seqs(log: &Value) -> Vec<i64> {
    log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect()
}

/// Waits until the request has reached `status`.
async fn request_reaches(
    app: &TestApp,
    tenant: &Tenant,
    site: &Site,
    request_id: &str,
    status: &str,
) -> Value {
    let deadline = Deadline::new();
    loop {
        let request = get(app, tenant, &format!("/v1/event-log-requests/{request_id}")).await;
        if request["status"] == status {
            return request;
        }
        deadline
            .tick(
                &format!("request {request_id} to be {status}: {request:#}"),
                &site.agent,
            )
            .await;
    }
}

/// Waits until the job has reached `status`.
async fn job_reaches(
    app: &TestApp,
    tenant: &Tenant,
    site: &Site,
    job_id: &str,
    status: &str,
) -> Value {
    let deadline = Deadline::new();
    loop {
        let job = get(app, tenant, &format!("/v1/readout-jobs/{job_id}")).await;
        if job["status"] == status {
            return job;
        }
        deadline
            .tick(
                &format!("job {job_id} to be {status}: {job:#}"),
                &site.agent,
            )
            .await;
    }
}

pub(crate) async fn approved_request(
    app: &TestApp,
    tenant: &Tenant,
    approver: &str,
    target: Value,
) -> String {
    let created = app
        .post(
            "/v1/event-log-requests",
            &tenant.admin,
            json!({"target": target}),
        )
        .await
        .assert(201);
    let id = created["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/v1/event-log-requests/{id}/approve"),
        approver,
        json!({}),
    )
    .await
    .assert(200);
    id
}

async fn an_approved_key_is_read_when_inserted_and_stored_once(app: TestApp) {
    let tenant = app.tenant("prockey", true).await;
    let (_, approver) = app
        .person(&tenant, "APP-1", &["approver"], Some("app@example.org"))
        .await;
    let key = app.issued_key(&tenant, "K-1", "e3").await;
    let mut site = Site::start(&app, &tenant).await;
    site.wall.send("key K-1 27").await;

    let request =
        approved_request(&app, &tenant, &approver, json!({"type": "key", "id": key})).await;
    site.wall.send("insert K-1").await;
    let done = request_reaches(&app, &tenant, &site, &request, "completed").await;
    assert_eq!(done["job"]["status"], "completed", "{done:#}");
    assert_eq!(done["job"]["kind"], "request_readout");
    let log = get(
        &app,
        &tenant,
        &format!("/v1/keys/{key}/event-log?limit=500"),
    )
    .await;
    assert_eq!(
        seqs(&log),
        (1..=27).collect::<Vec<_>>(),
        "every event the device holds, exactly once"
    );
    assert_eq!(log["items"][0]["key_marking"], "K-1");

    // Taken out and inserted again: nothing left to read, nothing stored twice.
    site.wall.send("remove K-1").await;
    site.wall.send("insert K-1").await;
    let deadline = Deadline::new();
    while site.agent.logged("KeyInserted") < 2 {
        deadline
            .tick("the second insertion to reach the agent", &site.agent)
            .await;
    }
    let log = get(
        &app,
        &tenant,
        &format!("/v1/keys/{key}/event-log?limit=500"),
    )
    .await;
    assert_eq!(seqs(&log).len(), 27);
    let jobs = get(&app, &tenant, "/v1/readout-jobs").await;
    assert_eq!(jobs["items"].as_array().map(Vec::len), Some(1), "{jobs:#}");
}

async fn a_key_whose_request_is_pending_is_not_read(app: TestApp) {
    let tenant = app.tenant("procpending", true).await;
    let (_, approver) = app
        .person(&tenant, "APP-1", &["approver"], Some("app@example.org"))
        .await;
    let pending_key = app.issued_key(&tenant, "K-1", "e3").await;
    let other_key = app.issued_key(&tenant, "K-2", "e2").await;
    let mut site = Site::start(&app, &tenant).await;
    let pending = app
        .post(
            "/v1/event-log-requests",
            &tenant.admin,
            json!({"target": {"type": "key", "id": pending_key}}),
        )
        .await
        .assert(201);
    let other = approved_request(
        &app,
        &tenant,
        &approver,
        json!({"type": "key", "id": other_key}),
    )
    .await;

    site.wall.send("insert K-1").await;
    // The device's notices are handled in order: once K-2 is read, K-1 was handled.
    site.wall.send("insert K-2").await;
    request_reaches(&app, &tenant, &site, &other, "completed").await;

    let log = get(&app, &tenant, &format!("/v1/keys/{pending_key}/event-log")).await;
    assert_eq!(seqs(&log), Vec::<i64>::new(), "nothing read while pending");
    let shown = get(
        &app,
        &tenant,
        &format!("/v1/event-log-requests/{}", pending["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(shown["status"], "pending_approval");
    assert!(shown["job"].is_null(), "{shown:#}");
    let jobs = get(&app, &tenant, "/v1/readout-jobs").await;
    let targets: Vec<&str> = jobs["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|j| j["target"]["marking"].as_str())
        .collect();
    assert_eq!(targets, ["K-2"], "{jobs:#}");
}

async fn a_cylinder_is_read_by_a_programming_key_that_visits_it(app: TestApp) {
    let tenant = app.tenant("proccyl", true).await;
    let (_, approver) = app
        .person(&tenant, "APP-1", &["approver"], Some("app@example.org"))
        .await;
    let (programmer, _) = app
        .person(
            &tenant,
            "CYL-1",
            &["cylinder_programmer"],
            Some("cyl@example.org"),
        )
        .await;
    let cylinder = app
        .post(
            "/v1/cylinders",
            &tenant.admin,
            json!({"marking": "C-3", "name": "Gate"}),
        )
        .await
        .assert(201);
    let cylinder_id = cylinder["id"].as_str().unwrap();
    let mut site = Site::start(&app, &tenant).await;
    site.desk.send("cylinder C-3 13").await;

    let request = approved_request(
        &app,
        &tenant,
        &approver,
        json!({"type": "cylinder", "id": cylinder_id}),
    )
    .await;
    let transferred = app
        .post(
            &format!("/v1/event-log-requests/{request}/transfer"),
            &tenant.admin,
            json!({"programming_key_id": programmer}),
        )
        .await
        .assert(200);
    let job_id = transferred["job"]["id"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("{transferred:#}"));

    site.desk.send("connect CYL-1").await;
    job_reaches(&app, &tenant, &site, &job_id, "loaded").await;
    site.desk.send("disconnect CYL-1").await;
    let answer = site.desk.send("visit CYL-1 C-3").await;
    assert!(answer.contains("1 job(s)"), "{answer}");
    site.desk.send("connect CYL-1").await;

    let done = request_reaches(&app, &tenant, &site, &request, "completed").await;
    assert_eq!(done["job"]["status"], "completed");
    let log = get(
        &app,
        &tenant,
        &format!("/v1/cylinders/{cylinder_id}/event-log?limit=500"),
    )
    .await;
    assert_eq!(seqs(&log), (1..=13).collect::<Vec<_>>());
    assert_eq!(log["items"][0]["cylinder_marking"], "C-3");
}

async fn keys_are_collected_automatically_without_the_approver_function(app: TestApp) {
    let tenant = app.tenant("procauto", false).await;
    let key = app.issued_key(&tenant, "K-7", "e2").await;
    let mut site = Site::start(&app, &tenant).await;
    site.wall.send("key K-7 9").await;
    site.wall.send("insert K-7").await;

    let deadline = Deadline::new();
    let job = loop {
        let jobs = get(&app, &tenant, "/v1/readout-jobs").await;
        if let Some(job) = jobs["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["status"] == "completed")
        {
            break job.clone();
        }
        deadline
            .tick(&format!("a completed job: {jobs:#}"), &site.agent)
            .await;
    };
    assert_eq!(job["kind"], "auto_collection");
    assert_eq!(job["target"]["marking"], "K-7");
    let log = get(
        &app,
        &tenant,
        &format!("/v1/keys/{key}/event-log?limit=500"),
    )
    .await;
    assert_eq!(seqs(&log), (1..=9).collect::<Vec<_>>());
}

async fn a_desk_readout_reads_the_key_at_its_desk_unit(app: TestApp) {
    let tenant = app.tenant("procdesk", true).await;
    let key = app.issued_key(&tenant, "K-9", "e3").await;
    let mut site = Site::start(&app, &tenant).await;
    site.desk.send("key K-9 11").await;
    let job = app
        .post(
            &format!("/v1/keys/{key}/desk-readout"),
            &tenant.admin,
            json!({"device_id": site.desk_id}),
        )
        .await
        .assert(201);
    let job_id = job["id"].as_str().unwrap();
    // The same key at the wall unit is not read: no request, no automatism.
    site.wall.send("insert K-9").await;
    site.desk.send("insert K-9").await;

    let done = job_reaches(&app, &tenant, &site, job_id, "completed").await;
    assert_eq!(
        (done["kind"].as_str(), done["device_id"].as_str()),
        (Some("desk_readout"), Some(site.desk_id.as_str()))
    );
    let log = get(
        &app,
        &tenant,
        &format!("/v1/keys/{key}/event-log?limit=500"),
    )
    .await;
    assert_eq!(seqs(&log), (1..=11).collect::<Vec<_>>());
    assert_ne!(site.wall_id, site.desk_id);
}

on_both_databases!(
    an_approved_key_is_read_when_inserted_and_stored_once,
    a_key_whose_request_is_pending_is_not_read,
    a_cylinder_is_read_by_a_programming_key_that_visits_it,
    keys_are_collected_automatically_without_the_approver_function,
    a_desk_readout_reads_the_key_at_its_desk_unit,
);
