//! The whole agent: simulator on a pty, API as wiremock. A key inserted at a
#![allow(clippy::unwrap_used)]
//! remote unit is read (through a corrupt frame) into the spool, uploaded and completed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use countersign_agent::agent;
use countersign_agent::client::{ApiClient, RetryPolicy};
use countersign_agent::config::Config;
use countersign_agent::protocol::DeviceEvent;
use countersign_agent::simulator::{self, Control, SimConfig};
use countersign_agent::spool::{JobRecord, Source, Spool};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const JOB: &str = "0196a1c2-0000-7000-8000-0000000000f1";
const LEASE: &str = "0196a1c2-0000-7000-8000-0000000000e1";
const DEVICE: &str = "0196a1c2-0000-7000-8000-0000000000a1";

fn job_body() -> serde_json::Value {
    json!({"id": JOB, "kind": "request_readout", "target": {"type": "key", "id": JOB, "marking": "K-5"},
           "status": "running", "attempts": 1})
}

async fn api() -> MockServer {
    let server = MockServer::start().await;
    let ok = |body: serde_json::Value| ResponseTemplate::new(200).set_body_json(body);
    Mock::given(method("POST"))
        .and(path("/v1/auth/token"))
        .respond_with(ok(json!({"access_token": "t"})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/agent/work"))
        .respond_with(
            ok(
                json!({"version": "v1", "devices": [], "programming_keys": [], "desk_readouts": [],
            "keys": [{"key_marking": "K-5", "reason": "request_readout"}]}),
            )
            .set_delay(Duration::from_millis(200)),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/agent/key-insertions"))
        .respond_with(ok(json!({"action": "read_event_log", "job": job_body(),
            "lease": {"token": LEASE, "expires_at": "2030-01-01T00:00:00Z"}})))
        .mount(&server)
        .await;
    // The first upload fails for good: its events must stay spooled and go up later.
    Mock::given(method("POST"))
        .and(path(format!("/v1/agent/jobs/{JOB}/events")))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(3)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v1/agent/jobs/{JOB}/events")))
        .respond_with(ok(json!({"received": 8, "stored": 8})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v1/agent/jobs/{JOB}/complete")))
        .respond_with(ok(json!({"job": job_body()})))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn reads_uploads_and_completes_a_key_job() {
    init_logs();
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug,hyper=info,wiremock=info")
            .with_test_writer()
            .try_init();
    }
    tokio::time::timeout(Duration::from_secs(30), async {
        let server = api().await;
        let dir = tempfile::tempdir().unwrap();
        let tty = dir.path().join("tty");
        let sim = simulator::spawn(SimConfig {
            kind: "remote_unit".into(),
            serial: "RU-1".into(),
            link: Some(tty.clone()),
        })
        .unwrap();
        sim.send(Control::AddKey {
            marking: "K-5".into(),
            events: 20,
        })
        .await;

        let (running, cancel) = start_agent(&server, dir.path(), &tty);
        tokio::time::sleep(Duration::from_millis(500)).await;
        sim.send(Control::Corrupt(1)).await;
        sim.send(Control::Insert("K-5".into())).await;

        let completed = wait_for_complete(&server).await;
        cancel.cancel();
        running.await.unwrap().unwrap();
        assert_eq!(uploaded_seqs(&completed), (1..=20).collect());
        let spool = Spool::open(dir.path().join("spool")).unwrap();
        assert!(
            spool.jobs().unwrap().is_empty(),
            "a completed job leaves nothing in the spool"
        );
        assert!(
            completed
                .iter()
                .all(|r| r.headers.contains_key("x-agent-version"))
        );
    })
    .await
    .expect("bounded in time");
}

fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug,hyper=info,wiremock=info")
            .with_test_writer()
            .try_init();
    }
}

type Running = tokio::task::JoinHandle<anyhow::Result<()>>;

fn start_agent(
    server: &MockServer,
    dir: &std::path::Path,
    tty: &std::path::Path,
) -> (Running, CancellationToken) {
    std::fs::write(dir.join("secret"), "s3cret\n").unwrap();
    let config = Config::parse(&format!(
        r#"api_url = "{uri}"
agent_id = "{agent}"
secret_file = "{secret}"
spool_dir = "{spool}"
poll_wait_secs = 1
[serial]
timeout_ms = 300
retries = 3
reconnect_ms = 100
[[devices]]
id = "{DEVICE}"
port = "{tty}"
kind = "remote_unit"
"#,
        uri = server.uri(),
        agent = Uuid::now_v7(),
        secret = dir.join("secret").display(),
        spool = dir.join("spool").display(),
        tty = tty.display(),
    ))
    .unwrap();
    let retry = RetryPolicy {
        attempts: 2,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(20),
        timeout: Duration::from_secs(2),
    };
    let client = Arc::new(
        ApiClient::new(
            &config.api_url,
            config.agent_id,
            config.read_secret().unwrap(),
            retry,
        )
        .unwrap(),
    );
    let spool = Spool::open(&config.spool_dir).unwrap();
    let cancel = CancellationToken::new();
    let running = tokio::spawn({
        let cancel = cancel.clone();
        async move { agent::run_with(client, spool, &config, agent::serial_connector, cancel).await }
    });
    (running, cancel)
}

async fn wait_for_complete(server: &MockServer) -> Vec<wiremock::Request> {
    loop {
        let requests = server.received_requests().await.unwrap();
        if requests.iter().any(|r| r.url.path().ends_with("/complete")) {
            return requests;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn uploaded_seqs(requests: &[wiremock::Request]) -> BTreeSet<u64> {
    requests
        .iter()
        .filter(|r| r.url.path().ends_with("/events"))
        .flat_map(|r| {
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(body["lease_token"], LEASE);
            body["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["seq"].as_u64().unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A previous run read everything into the spool and crashed before uploading:
/// the next start uploads it under the still valid lease and completes the job.
#[tokio::test]
async fn a_restart_uploads_what_the_spool_holds() {
    init_logs();
    tokio::time::timeout(Duration::from_secs(30), async {
        let server = api().await;
        let dir = tempfile::tempdir().unwrap();
        let tty = dir.path().join("tty");
        let _sim = simulator::spawn(SimConfig {
            kind: "remote_unit".into(),
            serial: "RU-1".into(),
            link: Some(tty.clone()),
        })
        .unwrap();
        {
            let spool = Spool::open(dir.path().join("spool")).unwrap();
            let job_id: Uuid = JOB.parse().unwrap();
            spool
                .begin(JobRecord {
                    job_id,
                    device_id: DEVICE.parse().unwrap(),
                    source: Source::Key {
                        marking: "K-5".into(),
                    },
                    next_seq: 1,
                    read_done: false,
                    lease_token: Some(LEASE.parse().unwrap()),
                })
                .unwrap();
            let events: Vec<DeviceEvent> = (1..=12)
                .map(|seq| DeviceEvent {
                    seq,
                    at: "2026-01-05T07:00:00Z".into(),
                    kind: "access_granted".into(),
                    key: Some("K-5".into()),
                    cyl: None,
                })
                .collect();
            spool.append(job_id, &events[..8], false).unwrap();
            spool.append(job_id, &events[8..], true).unwrap();
        }
        let (running, cancel) = start_agent(&server, dir.path(), &tty);
        let requests = wait_for_complete(&server).await;
        cancel.cancel();
        running.await.unwrap().unwrap();
        assert_eq!(uploaded_seqs(&requests), (1..=12).collect());
        assert!(
            Spool::open(dir.path().join("spool"))
                .unwrap()
                .jobs()
                .unwrap()
                .is_empty()
        );
    })
    .await
    .expect("bounded in time");
}
