//! The Countersign agent API (`docs/agent-api.md`), with login, re-login on 401,
//! `Retry-After` on 429 and backoff with jitter on 5xx, timeouts and refused
//! connections.

use std::fmt;
use std::time::Duration;

use rand::Rng;
use reqwest::{Method, StatusCode, header};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use uuid::Uuid;

pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The agent's secret; never printed.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Per-request timeout (long polls add their wait to it).
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 6,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
            timeout: Duration::from_secs(15),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The job's lease expired or was taken over; stop working on it.
    #[error("the lease on this job is lost")]
    LeaseLost,
    #[error("login refused: {0}")]
    LoginRefused(String),
    #[error("{status} {code}: {detail}")]
    Api {
        status: u16,
        code: String,
        detail: String,
    },
    #[error("malformed answer from the API: {0}")]
    Malformed(String),
    #[error("API unreachable after retries: {0}")]
    Unavailable(String),
}

impl ClientError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Api { status: 404, .. })
    }
}

#[derive(Debug, Deserialize, Default)]
struct Problem {
    #[serde(default)]
    code: String,
    #[serde(default)]
    detail: String,
}

// ---- resources -------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WorkList {
    pub version: String,
    #[serde(default)]
    pub devices: Vec<WorkDevice>,
    #[serde(default)]
    pub keys: Vec<WorkKey>,
    #[serde(default)]
    pub programming_keys: Vec<WorkProgrammingKey>,
    #[serde(default)]
    pub desk_readouts: Vec<DeskReadout>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WorkDevice {
    pub id: Uuid,
    #[serde(default)]
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub serial: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WorkKey {
    pub key_marking: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WorkProgrammingKey {
    pub programming_key_marking: String,
    #[serde(default)]
    pub load: Vec<Uuid>,
    #[serde(default)]
    pub collect: Vec<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DeskReadout {
    pub job_id: Uuid,
    pub device_id: Uuid,
    pub key_marking: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Lease {
    pub token: Uuid,
    pub expires_at: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Target {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Uuid,
    pub marking: String,
}

/// The readout-job resource; only what the agent needs is typed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Job {
    pub id: Uuid,
    pub kind: String,
    pub target: Target,
    pub status: String,
    #[serde(default)]
    pub attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LeasedJob {
    pub job: Job,
    pub lease: Lease,
}

/// What to do with an inserted key; a job to read comes claimed.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyInsertion {
    ReadEventLog { job: Job, lease: Lease },
    None,
}

#[derive(Deserialize)]
struct KeyInsertionOut {
    action: String,
    #[serde(default)]
    job: Option<Job>,
    #[serde(default)]
    lease: Option<Lease>,
}

impl TryFrom<KeyInsertionOut> for KeyInsertion {
    type Error = ClientError;

    fn try_from(out: KeyInsertionOut) -> Result<Self, ClientError> {
        match (out.action.as_str(), out.job, out.lease) {
            ("none", _, _) => Ok(KeyInsertion::None),
            ("read_event_log", Some(job), Some(lease)) => {
                Ok(KeyInsertion::ReadEventLog { job, lease })
            }
            (action, _, _) => Err(ClientError::Malformed(format!(
                "key insertion: action {action:?} without a job and lease, or unknown"
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ProgrammingKeyConnection {
    #[serde(default)]
    pub load: Vec<LeasedJob>,
    #[serde(default)]
    pub collect: Vec<LeasedJob>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct JobOnly {
    job: Job,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UploadReceipt {
    pub received: u64,
    pub stored: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UploadEvent {
    pub seq: u64,
    pub occurred_at: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_marking: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cylinder_marking: Option<String>,
}

impl From<&crate::protocol::DeviceEvent> for UploadEvent {
    fn from(e: &crate::protocol::DeviceEvent) -> Self {
        UploadEvent {
            seq: e.seq,
            occurred_at: e.at.clone(),
            kind: e.kind.clone(),
            key_marking: e.key.clone(),
            cylinder_marking: e.cyl.clone(),
        }
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
}

// ---- the client ------------------------------------------------------------

pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    agent_id: Uuid,
    secret: Secret,
    token: Mutex<Option<String>>,
    retry: RetryPolicy,
}

enum Outcome<T> {
    Done(T),
    Retry {
        after: Option<Duration>,
        why: String,
    },
    Relogin,
}

impl ApiClient {
    pub fn new(
        base_url: &str,
        agent_id: Uuid,
        secret: Secret,
        retry: RetryPolicy,
    ) -> Result<ApiClient, ClientError> {
        let mut headers = header::HeaderMap::new();
        headers.insert(
            "X-Agent-Version",
            header::HeaderValue::from_static(AGENT_VERSION),
        );
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("countersign-agent/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(retry.timeout)
            .build()
            .map_err(|e| ClientError::Unavailable(e.to_string()))?;
        Ok(ApiClient {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            agent_id,
            secret,
            token: Mutex::new(None),
            retry,
        })
    }

    /// Logs in (again), replacing the held token.
    pub async fn login(&self) -> Result<(), ClientError> {
        let body = serde_json::json!({
            "grant_type": "agent",
            "agent_id": self.agent_id,
            "secret": self.secret.0,
        });
        let answer: TokenAnswer = self
            .send_with_retries(
                Method::POST,
                "/v1/auth/token",
                &[],
                Some(&body),
                None,
                false,
            )
            .await
            .map_err(|e| match e {
                ClientError::Api { detail, code, .. } => {
                    ClientError::LoginRefused(if detail.is_empty() { code } else { detail })
                }
                other => other,
            })?;
        *self.token.lock().await = Some(answer.access_token);
        Ok(())
    }

    /// `POST /v1/agent/jobs/{job_id}/{step}` with `body`.
    async fn job_step<T: DeserializeOwned>(
        &self,
        job_id: Uuid,
        step: &str,
        body: &serde_json::Value,
    ) -> Result<T, ClientError> {
        let path = format!("/v1/agent/jobs/{job_id}/{step}");
        self.call(Method::POST, &path, Some(body), None).await
    }

    async fn call<T: DeserializeOwned, B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        timeout: Option<Duration>,
    ) -> Result<T, ClientError> {
        self.call_with_query(method, path, &[], body, timeout).await
    }

    async fn call_with_query<T: DeserializeOwned, B: Serialize>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
        timeout: Option<Duration>,
    ) -> Result<T, ClientError> {
        if self.token.lock().await.is_none() {
            self.login().await?;
        }
        self.send_with_retries(method, path, query, body, timeout, true)
            .await
    }

    async fn send_with_retries<T: DeserializeOwned, B: Serialize>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
        timeout: Option<Duration>,
        authenticated: bool,
    ) -> Result<T, ClientError> {
        let mut relogged = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .send_once(method.clone(), path, query, body, timeout, authenticated)
                .await?
            {
                Outcome::Done(value) => return Ok(value),
                Outcome::Relogin if authenticated && !relogged => {
                    relogged = true;
                    tracing::info!("token refused; logging in again");
                    Box::pin(self.login()).await?;
                    attempt -= 1;
                }
                Outcome::Relogin => {
                    return Err(ClientError::LoginRefused("401 after a fresh login".into()));
                }
                Outcome::Retry { after, why } => {
                    if attempt >= self.retry.attempts {
                        return Err(ClientError::Unavailable(why));
                    }
                    let delay = after.unwrap_or_else(|| self.backoff(attempt));
                    tracing::warn!(%why, path, attempt, delay_ms = delay.as_millis() as u64, "retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Exponential backoff with full jitter.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .retry
            .base_delay
            .saturating_mul(1 << attempt.min(16))
            .min(self.retry.max_delay);
        let millis = exp.as_millis().max(1) as u64;
        Duration::from_millis(rand::rng().random_range(millis / 2..=millis))
    }

    async fn send_once<T: DeserializeOwned, B: Serialize>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
        timeout: Option<Duration>,
        authenticated: bool,
    ) -> Result<Outcome<T>, ClientError> {
        let mut request = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .query(query)
            .timeout(timeout.unwrap_or(self.retry.timeout));
        if authenticated && let Some(token) = self.token.lock().await.as_deref() {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) if e.is_timeout() || e.is_connect() || e.is_request() => {
                return Ok(Outcome::Retry {
                    after: None,
                    why: e.to_string(),
                });
            }
            Err(e) => return Err(ClientError::Unavailable(e.to_string())),
        };
        let status = response.status();
        if status.is_success() {
            let bytes = match response.bytes().await {
                Ok(bytes) => bytes,
                Err(e) => {
                    return Ok(Outcome::Retry {
                        after: None,
                        why: e.to_string(),
                    });
                }
            };
            return serde_json::from_slice(&bytes)
                .map(Outcome::Done)
                .map_err(|e| ClientError::Malformed(format!("{path}: {e}")));
        }
        if status == StatusCode::UNAUTHORIZED && authenticated {
            return Ok(Outcome::Relogin);
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            let after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|s| Duration::from_secs(s.min(300)));
            return Ok(Outcome::Retry {
                after: Some(after.unwrap_or(self.retry.base_delay)),
                why: "429 too many requests".into(),
            });
        }
        if status.is_server_error() {
            return Ok(Outcome::Retry {
                after: None,
                why: format!("{status}"),
            });
        }
        let problem: Problem = response
            .bytes()
            .await
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        if status == StatusCode::CONFLICT && problem.code == "lease_lost" {
            return Err(ClientError::LeaseLost);
        }
        Err(ClientError::Api {
            status: status.as_u16(),
            code: problem.code,
            detail: problem.detail,
        })
    }

    // ---- the agent API -----------------------------------------------------

    /// Long-polls the work list; `wait` is capped at 50 s by the API.
    pub async fn work(&self, since: Option<&str>, wait: Duration) -> Result<WorkList, ClientError> {
        let wait = wait.as_secs().min(50);
        let mut query = vec![("wait", wait.to_string())];
        if let Some(since) = since {
            query.push(("since", since.to_owned()));
        }
        let timeout = self.retry.timeout + Duration::from_secs(wait);
        self.call_with_query::<_, ()>(Method::GET, "/v1/agent/work", &query, None, Some(timeout))
            .await
    }

    pub async fn key_insertion(
        &self,
        device_id: Uuid,
        key_marking: &str,
    ) -> Result<KeyInsertion, ClientError> {
        let body = serde_json::json!({"device_id": device_id, "key_marking": key_marking});
        self.call::<KeyInsertionOut, _>(Method::POST, "/v1/agent/key-insertions", Some(&body), None)
            .await?
            .try_into()
    }

    pub async fn programming_key_connection(
        &self,
        device_id: Uuid,
        marking: &str,
    ) -> Result<ProgrammingKeyConnection, ClientError> {
        let body = serde_json::json!({"device_id": device_id, "programming_key_marking": marking});
        self.call(
            Method::POST,
            "/v1/agent/programming-key-connections",
            Some(&body),
            None,
        )
        .await
    }

    pub async fn claim(&self, job_id: Uuid, device_id: Uuid) -> Result<LeasedJob, ClientError> {
        let body = serde_json::json!({"device_id": device_id});
        self.job_step(job_id, "claim", &body).await
    }

    pub async fn heartbeat(&self, job_id: Uuid, lease: Uuid) -> Result<LeasedJob, ClientError> {
        let body = serde_json::json!({"lease_token": lease});
        self.job_step(job_id, "heartbeat", &body).await
    }

    pub async fn loaded(&self, job_id: Uuid, lease: Uuid) -> Result<Job, ClientError> {
        let body = serde_json::json!({"lease_token": lease});
        self.job_step::<JobOnly>(job_id, "loaded", &body)
            .await
            .map(|j| j.job)
    }

    /// Hands a lease back unused; the claim does not count as an attempt.
    pub async fn release(&self, job_id: Uuid, lease: Uuid) -> Result<Job, ClientError> {
        let body = serde_json::json!({"lease_token": lease});
        self.job_step::<JobOnly>(job_id, "release", &body)
            .await
            .map(|j| j.job)
    }

    pub async fn upload_events(
        &self,
        job_id: Uuid,
        lease: Uuid,
        events: &[UploadEvent],
    ) -> Result<UploadReceipt, ClientError> {
        let body = serde_json::json!({"lease_token": lease, "events": events});
        self.job_step(job_id, "events", &body).await
    }

    pub async fn complete(&self, job_id: Uuid, lease: Uuid) -> Result<Job, ClientError> {
        let body = serde_json::json!({"lease_token": lease});
        self.job_step::<JobOnly>(job_id, "complete", &body)
            .await
            .map(|j| j.job)
    }

    pub async fn fail(
        &self,
        job_id: Uuid,
        lease: Uuid,
        reason: &str,
        retryable: bool,
    ) -> Result<Job, ClientError> {
        let body =
            serde_json::json!({"lease_token": lease, "reason": reason, "retryable": retryable});
        self.job_step::<JobOnly>(job_id, "fail", &body)
            .await
            .map(|j| j.job)
    }
}
