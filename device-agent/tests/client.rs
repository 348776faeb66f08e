//! The API client against wiremock: retries, re-login, Retry-After, lost leases, bad answers.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use countersign_agent::client::{ApiClient, ClientError, RetryPolicy, Secret};
use serde_json::json;
use uuid::Uuid;
use wiremock::matchers::{body_partial_json, header, header_exists, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const JOB: &str = "0196a1c2-0000-7000-8000-0000000000f1";
const LEASE: &str = "0196a1c2-0000-7000-8000-0000000000e1";

fn policy() -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        timeout: Duration::from_millis(300),
    }
}

async fn server() -> (MockServer, ApiClient) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/token"))
        .and(body_partial_json(
            json!({"grant_type": "agent", "secret": "s3cret"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "token-1", "token_type": "Bearer", "expires_in": 900
        })))
        .mount(&server)
        .await;
    let client = ApiClient::new(
        &server.uri(),
        Uuid::now_v7(),
        Secret::new("s3cret"),
        policy(),
    )
    .unwrap();
    (server, client)
}

fn job_body() -> serde_json::Value {
    json!({
        "job": {"id": JOB, "kind": "request_readout", "target": {"type": "key", "id": JOB, "marking": "K-1"},
                "status": "running", "attempts": 1, "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"},
        "lease": {"token": LEASE, "expires_at": "2030-01-01T00:00:00Z"}
    })
}

fn lease() -> Uuid {
    LEASE.parse().unwrap()
}

fn job() -> Uuid {
    JOB.parse().unwrap()
}

#[tokio::test]
async fn retries_5xx_then_succeeds_with_version_and_token() {
    let (server, client) = server().await;
    Mock::given(method("POST"))
        .and(path(format!("/v1/agent/jobs/{JOB}/heartbeat")))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v1/agent/jobs/{JOB}/heartbeat")))
        .and(header("authorization", "Bearer token-1"))
        .and(header_exists("x-agent-version"))
        .respond_with(ResponseTemplate::new(200).set_body_json(job_body()))
        .mount(&server)
        .await;
    let leased = client.heartbeat(job(), lease()).await.unwrap();
    assert_eq!(leased.lease.token, lease());
}

#[tokio::test]
async fn gives_up_after_persistent_5xx() {
    let (server, client) = server().await;
    Mock::given(method("POST"))
        .and(path(format!("/v1/agent/jobs/{JOB}/complete")))
        .respond_with(ResponseTemplate::new(502))
        .expect(4)
        .mount(&server)
        .await;
    assert!(matches!(
        client.complete(job(), lease()).await,
        Err(ClientError::Unavailable(_))
    ));
}

#[tokio::test]
async fn retries_a_timeout() {
    let (server, client) = server().await;
    Mock::given(method("POST"))
        .and(path(format!("/v1/agent/jobs/{JOB}/complete")))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v1/agent/jobs/{JOB}/complete")))
        .respond_with(ResponseTemplate::new(200).set_body_json(job_body()))
        .mount(&server)
        .await;
    let job = client.complete(job(), lease()).await.unwrap();
    assert_eq!(job.target.marking, "K-1");
}

#[tokio::test]
async fn logs_in_again_on_401() {
    let (server, client) = server().await;
    Mock::given(method("POST"))
        .and(path("/v1/agent/key-insertions"))
        .respond_with(ResponseTemplate::new(401))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/agent/key-insertions"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"action": "none", "job": null, "lease": null})),
        )
        .mount(&server)
        .await;
    client.key_insertion(Uuid::now_v7(), "K-1").await.unwrap();
    let logins = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r: &&Request| r.url.path() == "/v1/auth/token")
        .count();
    assert_eq!(logins, 2);
}

#[tokio::test]
async fn a_refused_login_is_an_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/token"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"code": "invalid_credentials", "detail": "no"})),
        )
        .mount(&server)
        .await;
    let client = ApiClient::new(&server.uri(), Uuid::now_v7(), Secret::new("x"), policy()).unwrap();
    assert!(matches!(
        client.login().await,
        Err(ClientError::LoginRefused(_))
    ));
}

#[tokio::test]
async fn honours_retry_after_on_429() {
    let (server, client) = server().await;
    Mock::given(method("GET"))
        .and(path("/v1/agent/work"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/agent/work"))
        .and(query_param("since", "v 1"))
        .and(query_param("wait", "0"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "version": "v2", "devices": [], "keys": [{"key_marking": "K-1", "reason": "request_readout"}],
            "programming_keys": [], "desk_readouts": []
        })))
        .mount(&server)
        .await;
    let started = Instant::now();
    let work = client.work(Some("v 1"), Duration::ZERO).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited as told"
    );
    assert_eq!(work.version, "v2");
    assert_eq!(work.keys[0].key_marking, "K-1");
}

#[tokio::test]
async fn malformed_answers_are_errors() {
    let (server, client) = server().await;
    Mock::given(method("POST"))
        .and(path(format!("/v1/agent/jobs/{JOB}/claim")))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>proxy</html>"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/agent/key-insertions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"action": "dance"})))
        .mount(&server)
        .await;
    assert!(matches!(
        client.claim(job(), Uuid::now_v7()).await,
        Err(ClientError::Malformed(_))
    ));
    assert!(matches!(
        client.key_insertion(Uuid::now_v7(), "K").await,
        Err(ClientError::Malformed(_))
    ));
}

#[tokio::test]
async fn a_lost_lease_is_its_own_error_and_other_409s_are_not() {
    let (server, client) = server().await;
    Mock::given(method("POST"))
        .and(path(format!("/v1/agent/jobs/{JOB}/events")))
        .and(body_partial_json(json!({"lease_token": LEASE})))
        .respond_with(
            ResponseTemplate::new(409)
                .insert_header("content-type", "application/problem+json")
                .set_body_json(json!({"type": "about:blank", "status": 409, "code": "lease_lost", "detail": "expired"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v1/agent/jobs/{JOB}/claim")))
        .respond_with(
            ResponseTemplate::new(409)
                .set_body_json(json!({"code": "job_not_claimable", "detail": "taken"})),
        )
        .mount(&server)
        .await;
    assert!(matches!(
        client.upload_events(job(), lease(), &[]).await,
        Err(ClientError::LeaseLost)
    ));
    match client.claim(job(), Uuid::now_v7()).await {
        Err(ClientError::Api {
            status: 409, code, ..
        }) => assert_eq!(code, "job_not_claimable"),
        other => panic!("unexpected {other:?}"),
    }
}
