//! The agent loop: follows the work list, reacts to device notices, runs jobs
//! with a heartbeated lease, spools what it reads and uploads it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::client::{
    ApiClient, ClientError, KeyInsertion, LeasedJob, RetryPolicy, UploadEvent, WorkList,
};
use crate::config::{Config, DeviceConfig, DeviceKind};
use crate::link::{DeviceLink, LinkConfig, LinkError};
use crate::protocol::{CollectResults, EventChunk, LoadJob, Notice, ReadEvents};
use crate::spool::{JobRecord, Source, Spool};

/// Events asked for per chunk; a chunk must fit one frame.
const CHUNK: u16 = 8;
/// How long shutdown may spend uploading and releasing a running job.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Api(#[from] ClientError),
    #[error(transparent)]
    Device(#[from] LinkError),
    #[error("spool: {0}")]
    Spool(#[from] std::io::Error),
    #[error("stopped")]
    Stopped,
}

/// What one device task needs.
struct Context {
    client: Arc<ApiClient>,
    spool: Spool,
    cancel: CancellationToken,
    /// Jobs a device worker is running now; the spool drainer leaves them alone.
    running: std::sync::Mutex<HashSet<Uuid>>,
}

impl Context {
    fn set_running(&self, job_id: Uuid, running: bool) {
        if let Ok(mut set) = self.running.lock() {
            if running {
                set.insert(job_id);
            } else {
                set.remove(&job_id);
            }
        }
    }

    fn is_running(&self, job_id: Uuid) -> bool {
        self.running
            .lock()
            .map(|set| set.contains(&job_id))
            .unwrap_or(false)
    }
}

/// Runs the agent until `cancel` fires.
pub async fn run(config: Config, cancel: CancellationToken) -> anyhow::Result<()> {
    let secret = config.read_secret()?;
    let client = Arc::new(ApiClient::new(
        &config.api_url,
        config.agent_id,
        secret,
        RetryPolicy::default(),
    )?);
    let spool = Spool::open(&config.spool_dir)?;
    run_with(client, spool, &config, serial_connector, cancel).await
}

/// Opens a serial port with tokio-serial.
pub fn serial_connector(
    device: &DeviceConfig,
) -> impl FnMut() -> futures::future::BoxFuture<'static, std::io::Result<tokio_serial::SerialStream>>
+ Send
+ 'static
+ use<> {
    let port = device.port.to_string_lossy().into_owned();
    let baud = device.baud_rate;
    move || {
        let port = port.clone();
        Box::pin(async move {
            use tokio_serial::SerialPortBuilderExt;
            tokio_serial::new(port, baud)
                .open_native_async()
                .map_err(std::io::Error::other)
        })
    }
}

/// The loop with its parts handed in, so tests can swap the transport.
pub async fn run_with<F, C, Fut, T>(
    client: Arc<ApiClient>,
    spool: Spool,
    config: &Config,
    mut connector: F,
    cancel: CancellationToken,
) -> anyhow::Result<()>
where
    F: FnMut(&DeviceConfig) -> C,
    C: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = std::io::Result<T>> + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    client.login().await?;
    tracing::info!(agent_id = %config.agent_id, "logged in");
    let ctx = Arc::new(Context {
        client: client.clone(),
        spool,
        cancel: cancel.clone(),
        running: std::sync::Mutex::new(HashSet::new()),
    });

    let (work_tx, work_rx) = watch::channel(None);
    let mut tasks = JoinSet::new();
    tasks.spawn(drain_spool(ctx.clone()));
    tasks.spawn(poll_work(
        client,
        config.poll_wait_secs,
        work_tx,
        cancel.clone(),
    ));
    let link_config: LinkConfig = config.serial.link_config();
    for device in &config.devices {
        let (notice_tx, notice_rx) = mpsc::channel(64);
        let link = DeviceLink::spawn(connector(device), link_config, notice_tx, cancel.clone());
        let worker = DeviceWorker {
            ctx: ctx.clone(),
            id: device.id,
            kind: device.kind.clone(),
            link,
            inserted: HashMap::new(),
            connected: HashSet::new(),
            done_jobs: HashSet::new(),
        };
        let span = tracing::info_span!("device", device_id = %device.id);
        tasks.spawn(worker.run(notice_rx, work_rx.clone()).instrument(span));
    }
    while tasks.join_next().await.is_some() {}
    tracing::info!("agent stopped");
    Ok(())
}

async fn poll_work(
    client: Arc<ApiClient>,
    wait_secs: u64,
    work: watch::Sender<Option<WorkList>>,
    cancel: CancellationToken,
) {
    let mut since: Option<String> = None;
    let mut failures = 0u32;
    loop {
        let asked = tokio::time::Instant::now();
        let answer = tokio::select! {
            () = cancel.cancelled() => return,
            answer = client.work(since.as_deref(), Duration::from_secs(wait_secs)) => answer,
        };
        match answer {
            Ok(list) => {
                failures = 0;
                if since.as_deref() != Some(list.version.as_str()) {
                    tracing::info!(version = %list.version, keys = list.keys.len(),
                        programming_keys = list.programming_keys.len(),
                        desk_readouts = list.desk_readouts.len(), "work list");
                    since = Some(list.version.clone());
                    work.send_replace(Some(list));
                } else if asked.elapsed() < Duration::from_secs(1) {
                    // An unchanged list answered at once: the server is not holding
                    // long polls; do not hammer it.
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
            Err(error) => {
                failures += 1;
                tracing::warn!(%error, "work list unavailable");
                let delay = Duration::from_secs(u64::from(failures.min(6)) * 5);
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// Uploads what the spool holds under leases that may still be valid (left by
/// a previous run, or by a job whose upload failed), at start and then with backoff.
async fn drain_spool(ctx: Arc<Context>) {
    let mut delay = Duration::from_secs(1);
    loop {
        let settled = resume_spooled(&ctx).await;
        delay = if settled {
            Duration::from_secs(30)
        } else {
            (delay * 2).min(Duration::from_secs(60))
        };
        tokio::select! {
            () = ctx.cancel.cancelled() => return,
            () = tokio::time::sleep(if settled { delay } else { delay / 2 }) => {}
        }
    }
}

/// One pass over the spool; false when something is left to retry.
async fn resume_spooled(ctx: &Context) -> bool {
    let jobs = match ctx.spool.jobs() {
        Ok(jobs) => jobs,
        Err(error) => {
            tracing::error!(%error, "cannot read the spool");
            return false;
        }
    };
    let mut settled = true;
    for record in jobs {
        let Some(lease) = record.lease_token else {
            continue;
        };
        if ctx.is_running(record.job_id) {
            continue;
        }
        tracing::info!(job_id = %record.job_id, "uploading a spooled job");
        match upload_pending(ctx, record.job_id, lease).await {
            Ok(()) if record.read_done => match ctx.client.complete(record.job_id, lease).await {
                Ok(_) => {
                    finish(ctx, record.job_id);
                    tracing::info!(job_id = %record.job_id, "spooled job completed");
                }
                Err(ClientError::LeaseLost) => forget_lease(ctx, &record),
                Err(error) => {
                    settled = false;
                    tracing::warn!(job_id = %record.job_id, %error, "cannot complete");
                }
            },
            // Read only in part: the rest needs the key again, under a new lease.
            Ok(()) => forget_lease(ctx, &record),
            Err(JobError::Api(ClientError::LeaseLost)) => {
                forget_lease(ctx, &record);
                tracing::info!(job_id = %record.job_id, "lease lost; events stay spooled until the job is claimed again");
            }
            Err(error) => {
                settled = false;
                tracing::warn!(job_id = %record.job_id, %error, "spooled upload failed");
            }
        }
    }
    settled
}

/// Drops the record's lease unless a device worker has meanwhile taken the job
/// over under a new one; keeps the read position as it is on disk now.
fn forget_lease(ctx: &Context, record: &JobRecord) {
    if let Ok(Some(current)) = ctx.spool.record(record.job_id)
        && current.lease_token == record.lease_token
    {
        let _ = ctx.spool.begin(JobRecord {
            lease_token: None,
            ..current
        });
    }
}

fn finish(ctx: &Context, job_id: Uuid) {
    if let Err(error) = ctx.spool.finish(job_id) {
        tracing::error!(%job_id, %error, "cannot clear the spool");
    }
}

async fn upload_pending(ctx: &Context, job_id: Uuid, lease: Uuid) -> Result<(), JobError> {
    for batch in ctx.spool.pending(job_id)? {
        let events: Vec<UploadEvent> = batch.events.iter().map(UploadEvent::from).collect();
        let receipt = ctx.client.upload_events(job_id, lease, &events).await?;
        tracing::debug!(%job_id, received = receipt.received, stored = receipt.stored, "uploaded");
        ctx.spool.acknowledge(&batch)?;
    }
    Ok(())
}

struct DeviceWorker {
    ctx: Arc<Context>,
    id: Uuid,
    kind: DeviceKind,
    link: DeviceLink,
    /// Inserted keys, and whether the API was already asked about this insertion.
    inserted: HashMap<String, bool>,
    connected: HashSet<String>,
    /// Jobs finished (or given up) during the current connection of a key.
    done_jobs: HashSet<Uuid>,
}

impl DeviceWorker {
    async fn run(
        mut self,
        mut notices: mpsc::Receiver<Notice>,
        mut work: watch::Receiver<Option<WorkList>>,
    ) {
        loop {
            tokio::select! {
                () = self.ctx.cancel.cancelled() => return,
                notice = notices.recv() => {
                    let Some(notice) = notice else { return };
                    let current = work.borrow().clone();
                    self.on_notice(notice, &current).await;
                }
                changed = work.changed() => {
                    if changed.is_err() { return }
                    let list = work.borrow_and_update().clone();
                    self.on_work(list.as_ref()).await;
                }
            }
        }
    }

    async fn on_notice(&mut self, notice: Notice, work: &Option<WorkList>) {
        match notice {
            Notice::KeyInserted(marking) => {
                self.inserted.insert(marking.clone(), false);
                self.try_key(&marking, work.as_ref()).await;
            }
            Notice::KeyRemoved(marking) => {
                self.inserted.remove(&marking);
            }
            Notice::ProgrammingKeyConnected(marking) => {
                self.connected.insert(marking.clone());
                self.done_jobs.clear();
                self.programming_key(&marking).await;
            }
            Notice::ProgrammingKeyDisconnected(marking) => {
                self.connected.remove(&marking);
            }
        }
    }

    async fn on_work(&mut self, work: Option<&WorkList>) {
        let Some(list) = work else { return };
        let waiting: Vec<String> = self
            .inserted
            .iter()
            .filter(|(m, asked)| {
                !**asked
                    && (list.keys.iter().any(|k| &k.key_marking == *m)
                        || list
                            .desk_readouts
                            .iter()
                            .any(|d| d.device_id == self.id && &d.key_marking == *m))
            })
            .map(|(m, _)| m.clone())
            .collect();
        for marking in waiting {
            self.try_key(&marking, work).await;
        }
        let programming_keys: Vec<String> = list
            .programming_keys
            .iter()
            .filter(|p| self.connected.contains(&p.programming_key_marking))
            .filter(|p| {
                p.load
                    .iter()
                    .chain(&p.collect)
                    .any(|j| !self.done_jobs.contains(j))
            })
            .map(|p| p.programming_key_marking.clone())
            .collect();
        for marking in programming_keys {
            self.programming_key(&marking).await;
        }
    }

    async fn try_key(&mut self, marking: &str, work: Option<&WorkList>) {
        let desk = work.and_then(|w| {
            w.desk_readouts
                .iter()
                .find(|d| d.device_id == self.id && d.key_marking == marking)
                .cloned()
        });
        let leased = match (&self.kind, desk) {
            (DeviceKind::DeskUnit, Some(desk)) => self.ctx.client.claim(desk.job_id, self.id).await,
            (DeviceKind::DeskUnit, None) => return,
            (DeviceKind::RemoteUnit, _) if let Some(leased) = self.resumable(marking).await => {
                Ok(leased)
            }
            (DeviceKind::RemoteUnit, _) => {
                match self.ctx.client.key_insertion(self.id, marking).await {
                    Ok(KeyInsertion::ReadEventLog { job, lease }) => Ok(LeasedJob { job, lease }),
                    Ok(KeyInsertion::None) => {
                        self.inserted.insert(marking.to_owned(), true);
                        return;
                    }
                    Err(e) => Err(e),
                }
            }
        };
        self.inserted.insert(marking.to_owned(), true);
        match leased {
            Ok(leased) => {
                let source = Source::Key {
                    marking: marking.to_owned(),
                };
                self.run_job(leased, source).await;
            }
            Err(error) => tracing::warn!(key = marking, %error, "cannot take the key's job"),
        }
    }

    /// A read of this key at this device that a previous run of the agent left
    /// in the spool under a lease that is still valid (e.g. it was killed): the
    /// job is resumed under that lease, since the API does not hand a running
    /// job out again.
    async fn resumable(&self, marking: &str) -> Option<LeasedJob> {
        let records = self.ctx.spool.jobs().ok()?;
        for record in records {
            let same_key = matches!(&record.source, Source::Key { marking: m } if m == marking);
            let Some(lease) = record.lease_token else {
                continue;
            };
            if record.device_id != self.id || !same_key || self.ctx.is_running(record.job_id) {
                continue;
            }
            match self.ctx.client.heartbeat(record.job_id, lease).await {
                Ok(leased) => {
                    tracing::info!(job_id = %record.job_id, "resuming a spooled job under its lease");
                    return Some(leased);
                }
                Err(error) => {
                    tracing::info!(job_id = %record.job_id, %error, "spooled lease not usable");
                }
            }
        }
        None
    }

    async fn programming_key(&mut self, marking: &str) {
        let connection = match self
            .ctx
            .client
            .programming_key_connection(self.id, marking)
            .await
        {
            Ok(connection) => connection,
            Err(error) => {
                tracing::warn!(programming_key = marking, %error, "programming key connection refused");
                return;
            }
        };
        for leased in connection.load {
            let job_id = leased.job.id;
            self.done_jobs.insert(job_id);
            let lease = leased.lease.token;
            let request = LoadJob {
                programming_key: marking.to_owned(),
                job_id: job_id.to_string(),
                cylinder: leased.job.target.marking.clone(),
            };
            match self.link.load_job(request).await {
                Ok(()) => match self.ctx.client.loaded(job_id, lease).await {
                    Ok(_) => tracing::info!(%job_id, programming_key = marking, "job loaded"),
                    Err(error) => tracing::warn!(%job_id, %error, "cannot report the load"),
                },
                Err(error) => self.give_up(job_id, lease, &error.to_string()).await,
            }
        }
        for leased in connection.collect {
            self.done_jobs.insert(leased.job.id);
            let source = Source::Cylinder {
                programming_key: marking.to_owned(),
            };
            self.run_job(leased, source).await;
        }
    }

    /// Returns a job unused, without spending an attempt.
    async fn hand_back(&self, job_id: Uuid, lease: Uuid, why: &str) {
        tracing::info!(%job_id, why, "handing the job back");
        if let Err(error) = self.ctx.client.release(job_id, lease).await {
            tracing::warn!(%job_id, %error, "cannot hand the job back; its lease will expire");
        }
    }

    async fn give_up(&self, job_id: Uuid, lease: Uuid, reason: &str) {
        tracing::warn!(%job_id, reason, "job failed; handing it back");
        if let Err(error) = self.ctx.client.fail(job_id, lease, reason, true).await {
            tracing::warn!(%job_id, %error, "cannot report the failure");
        }
    }

    /// Reads a job's events into the spool and uploads them, under a heartbeated lease.
    async fn run_job(&mut self, leased: LeasedJob, source: Source) {
        let job_id = leased.job.id;
        let lease = leased.lease.token;
        tracing::info!(%job_id, kind = %leased.job.kind, "job started");
        self.ctx.set_running(job_id, true);
        let job_cancel = self.ctx.cancel.child_token();
        let heartbeat = tokio::spawn(heartbeat(
            self.ctx.clone(),
            job_id,
            lease,
            lease_interval(&leased.lease.expires_at),
            job_cancel.clone(),
        ));
        let result = self
            .read_and_upload(job_id, lease, source, &job_cancel)
            .await;
        job_cancel.cancel();
        let lease_lost = heartbeat.await.unwrap_or(false);
        self.run_outcome(job_id, lease, result, lease_lost).await;
        self.ctx.set_running(job_id, false);
    }

    async fn run_outcome(
        &self,
        job_id: Uuid,
        lease: Uuid,
        result: Result<(), JobError>,
        lease_lost: bool,
    ) {
        match result {
            Ok(()) => match self.ctx.client.complete(job_id, lease).await {
                Ok(_) => {
                    finish(&self.ctx, job_id);
                    tracing::info!(%job_id, "job completed");
                }
                Err(error) => {
                    tracing::warn!(%job_id, %error, "cannot complete; events stay spooled")
                }
            },
            Err(JobError::Api(ClientError::LeaseLost)) => {
                tracing::warn!(%job_id, "lease lost; stopping");
            }
            Err(JobError::Stopped) if lease_lost => {
                tracing::warn!(%job_id, "lease lost; stopping");
            }
            Err(JobError::Stopped) => {
                let release = async {
                    let _ = upload_pending(&self.ctx, job_id, lease).await;
                    self.hand_back(job_id, lease, "agent shutting down").await;
                };
                let _ = tokio::time::timeout(SHUTDOWN_GRACE, release).await;
            }
            Err(JobError::Device(LinkError::Device(error))) if error.code == "not_visited" => {
                self.hand_back(
                    job_id,
                    lease,
                    "the programming key has not visited the cylinder yet",
                )
                .await;
            }
            Err(JobError::Device(error)) => {
                let _ = upload_pending(&self.ctx, job_id, lease).await;
                self.give_up(job_id, lease, &error.to_string()).await;
            }
            Err(error) => {
                tracing::warn!(%job_id, %error, "job interrupted; events stay spooled");
            }
        }
    }

    async fn read_and_upload(
        &self,
        job_id: Uuid,
        lease: Uuid,
        source: Source,
        cancel: &CancellationToken,
    ) -> Result<(), JobError> {
        let mut record = self.ctx.spool.begin(JobRecord {
            job_id,
            device_id: self.id,
            source: source.clone(),
            next_seq: 1,
            read_done: false,
            lease_token: Some(lease),
        })?;
        upload_pending(&self.ctx, job_id, lease).await?;
        while !record.read_done {
            if cancel.is_cancelled() {
                return Err(JobError::Stopped);
            }
            let chunk = tokio::select! {
                () = cancel.cancelled() => return Err(JobError::Stopped),
                chunk = self.read_chunk(job_id, &source, record.next_seq) => chunk?,
            };
            record = self.ctx.spool.append(job_id, &chunk.events, chunk.done)?;
            // The device is here now and the API may come back later: keep reading.
            match upload_pending(&self.ctx, job_id, lease).await {
                Err(JobError::Api(ClientError::Unavailable(why))) => {
                    tracing::warn!(%job_id, %why, "upload postponed; events are spooled");
                }
                other => other?,
            }
        }
        let mut delay = Duration::from_secs(1);
        loop {
            match upload_pending(&self.ctx, job_id, lease).await {
                Err(JobError::Api(ClientError::Unavailable(why))) => {
                    tracing::warn!(%job_id, %why, "upload failed; retrying");
                }
                other => return other,
            }
            tokio::select! {
                () = cancel.cancelled() => return Err(JobError::Stopped),
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(30));
        }
    }

    /// One chunk, retried across a reconnection of the line.
    async fn read_chunk(
        &self,
        job_id: Uuid,
        source: &Source,
        from_seq: u64,
    ) -> Result<EventChunk, LinkError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let answer = match source {
                Source::Key { marking } => {
                    self.link
                        .read_events(ReadEvents {
                            key: marking.clone(),
                            from_seq,
                            max: CHUNK,
                        })
                        .await
                }
                Source::Cylinder { programming_key } => {
                    self.link
                        .collect_results(CollectResults {
                            programming_key: programming_key.clone(),
                            job_id: job_id.to_string(),
                            from_seq,
                            max: CHUNK,
                        })
                        .await
                }
            };
            match answer {
                Err(LinkError::Timeout | LinkError::Disconnected) if attempts < 3 => {
                    tracing::info!(%job_id, from_seq, "line lost; resuming the read");
                }
                other => return other,
            }
        }
    }
}

/// Heartbeats until cancelled; returns true when the lease was lost.
async fn heartbeat(
    ctx: Arc<Context>,
    job_id: Uuid,
    mut lease: Uuid,
    interval: Duration,
    cancel: CancellationToken,
) -> bool {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return false,
            () = tokio::time::sleep(interval) => {}
        }
        match ctx.client.heartbeat(job_id, lease).await {
            Ok(leased) => lease = leased.lease.token,
            Err(ClientError::LeaseLost) => {
                cancel.cancel();
                return true;
            }
            Err(error) => tracing::warn!(%job_id, %error, "heartbeat failed"),
        }
    }
}

/// A third of the lease's remaining time, between 1 s and 60 s.
fn lease_interval(expires_at: &str) -> Duration {
    let remaining = chrono::DateTime::parse_from_rfc3339(expires_at)
        .ok()
        .map(|at| at.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .and_then(|d| d.to_std().ok())
        .unwrap_or(Duration::from_secs(30));
    (remaining / 3).clamp(Duration::from_secs(1), Duration::from_secs(60))
}
