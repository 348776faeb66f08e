//! One device's serial line: request/response with timeouts and retries,
//! acknowledged notices, and reconnection when the port goes away.

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use crate::protocol::{
    CollectResults, DeviceError, EventChunk, Frame, FrameCodec, Identity, LoadJob, Message, Notice,
    ReadEvents, command,
};

#[derive(Debug, Clone, Copy)]
pub struct LinkConfig {
    /// How long to wait for the answer to one transmission.
    pub timeout: Duration,
    /// Retransmissions after the first attempt before the line is declared lost.
    pub retries: u32,
    /// Pause between attempts to reopen a lost port.
    pub reconnect_delay: Duration,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(500),
            retries: 3,
            reconnect_delay: Duration::from_millis(500),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("the device did not answer")]
    Timeout,
    #[error("the serial line was lost")]
    Disconnected,
    #[error("the link is shut down")]
    Closed,
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("malformed answer from the device: {0}")]
    Malformed(String),
}

struct Pending {
    message: Message,
    reply: oneshot::Sender<Result<Frame, LinkError>>,
}

/// A cheap handle to a device's line; requests are sent one at a time.
#[derive(Clone)]
pub struct DeviceLink {
    requests: mpsc::Sender<Pending>,
    give_up_after: Duration,
}

impl DeviceLink {
    /// Starts the line's task. `connect` opens the port; it is called again
    /// whenever the line is lost. Notices arrive on `notices`, de-duplicated.
    pub fn spawn<C, Fut, T>(
        connect: C,
        config: LinkConfig,
        notices: mpsc::Sender<Notice>,
        cancel: CancellationToken,
    ) -> DeviceLink
    where
        C: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = std::io::Result<T>> + Send + 'static,
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(run(connect, config, rx, notices, cancel));
        DeviceLink {
            requests: tx,
            give_up_after: config.timeout * (config.retries + 1) + config.reconnect_delay * 4,
        }
    }

    pub async fn request(&self, message: Message) -> Result<Frame, LinkError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Pending { message, reply })
            .await
            .map_err(|_| LinkError::Closed)?;
        match tokio::time::timeout(self.give_up_after, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(LinkError::Closed),
            Err(_) => Err(LinkError::Disconnected),
        }
    }

    async fn call<T: DeserializeOwned>(&self, message: Message) -> Result<T, LinkError> {
        let frame = self.request(message).await?;
        if frame.command == command::ERROR {
            let error: DeviceError = serde_json::from_slice(&frame.payload)
                .map_err(|e| LinkError::Malformed(e.to_string()))?;
            return Err(error.into());
        }
        serde_json::from_slice(&frame.payload).map_err(|e| LinkError::Malformed(e.to_string()))
    }

    pub async fn identify(&self) -> Result<Identity, LinkError> {
        self.call(Message::Identify).await
    }

    pub async fn read_events(&self, request: ReadEvents) -> Result<EventChunk, LinkError> {
        self.call(Message::ReadEvents(request)).await
    }

    pub async fn load_job(&self, request: LoadJob) -> Result<(), LinkError> {
        self.call::<crate::protocol::Ack>(Message::LoadJob(request))
            .await
            .map(drop)
    }

    pub async fn collect_results(&self, request: CollectResults) -> Result<EventChunk, LinkError> {
        self.call(Message::CollectResults(request)).await
    }
}

async fn run<C, Fut, T>(
    mut connect: C,
    config: LinkConfig,
    mut requests: mpsc::Receiver<Pending>,
    notices: mpsc::Sender<Notice>,
    cancel: CancellationToken,
) where
    C: FnMut() -> Fut,
    Fut: Future<Output = std::io::Result<T>>,
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut seen = VecDeque::with_capacity(32);
    let mut next_seq: u16 = 1;
    while !cancel.is_cancelled() {
        let io = tokio::select! {
            () = cancel.cancelled() => return,
            io = connect() => io,
        };
        match io {
            Ok(io) => {
                tracing::info!("serial line open");
                let framed = Framed::new(io, FrameCodec::default());
                let session = Session {
                    framed,
                    config,
                    seen: &mut seen,
                    next_seq: &mut next_seq,
                    notices: &notices,
                };
                if session.serve(&mut requests, &cancel).await.is_break() {
                    return;
                }
                tracing::warn!("serial line lost; reconnecting");
            }
            Err(error) => tracing::warn!(%error, "cannot open the serial port"),
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(config.reconnect_delay) => {}
        }
    }
}

struct InFlight {
    frame: Frame,
    attempts: u32,
    deadline: Instant,
    reply: oneshot::Sender<Result<Frame, LinkError>>,
}

struct Session<'a, T> {
    framed: Framed<T, FrameCodec>,
    config: LinkConfig,
    seen: &'a mut VecDeque<u16>,
    next_seq: &'a mut u16,
    notices: &'a mpsc::Sender<Notice>,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Session<'_, T> {
    /// Serves the line until it fails (`Continue`: reconnect) or the agent stops (`Break`).
    async fn serve(
        mut self,
        requests: &mut mpsc::Receiver<Pending>,
        cancel: &CancellationToken,
    ) -> std::ops::ControlFlow<()> {
        use std::ops::ControlFlow::{Break, Continue};
        let mut in_flight: Option<InFlight> = None;
        loop {
            let deadline = in_flight.as_ref().map(|f| f.deadline);
            tokio::select! {
                () = cancel.cancelled() => return Break(()),
                incoming = self.framed.next() => match incoming {
                    Some(Ok(frame)) => {
                        if self.on_frame(frame, &mut in_flight).await.is_err() {
                            fail(&mut in_flight, LinkError::Disconnected);
                            return Continue(());
                        }
                    }
                    Some(Err(error)) => {
                        tracing::warn!(%error, "serial read failed");
                        fail(&mut in_flight, LinkError::Disconnected);
                        return Continue(());
                    }
                    None => {
                        fail(&mut in_flight, LinkError::Disconnected);
                        return Continue(());
                    }
                },
                pending = requests.recv(), if in_flight.is_none() => {
                    let Some(pending) = pending else { return Break(()) };
                    let seq = *self.next_seq;
                    *self.next_seq = self.next_seq.wrapping_add(1).max(1);
                    let frame = pending.message.to_frame(seq);
                    if self.framed.send(frame.clone()).await.is_err() {
                        let _ = pending.reply.send(Err(LinkError::Disconnected));
                        return Continue(());
                    }
                    in_flight = Some(InFlight {
                        frame,
                        attempts: 1,
                        deadline: Instant::now() + self.config.timeout,
                        reply: pending.reply,
                    });
                }
                () = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    let Some(mut flight) = in_flight.take() else { continue };
                    if flight.attempts > self.config.retries {
                        tracing::warn!(attempts = flight.attempts, "device does not answer");
                        let _ = flight.reply.send(Err(LinkError::Timeout));
                        return Continue(());
                    }
                    tracing::debug!(seq = flight.frame.seq, attempt = flight.attempts + 1, "retransmitting");
                    // Whatever half frame sits in the buffer belongs to the lost answer.
                    self.framed.read_buffer_mut().clear();
                    if self.framed.send(flight.frame.clone()).await.is_err() {
                        let _ = flight.reply.send(Err(LinkError::Disconnected));
                        return Continue(());
                    }
                    flight.attempts += 1;
                    flight.deadline = Instant::now() + self.config.timeout;
                    in_flight = Some(flight);
                }
            }
        }
    }

    async fn on_frame(
        &mut self,
        frame: Frame,
        in_flight: &mut Option<InFlight>,
    ) -> Result<(), crate::protocol::CodecError> {
        if command::is_notice(frame.command) {
            self.framed
                .send(Frame {
                    seq: frame.seq,
                    command: command::NOTICE_ACK,
                    payload: bytes::Bytes::new(),
                })
                .await?;
            if self.seen.contains(&frame.seq) {
                return Ok(());
            }
            if self.seen.len() == self.seen.capacity() {
                self.seen.pop_front();
            }
            self.seen.push_back(frame.seq);
            match Notice::from_frame(&frame) {
                Some(notice) => {
                    tracing::info!(?notice, "device notice");
                    let _ = self.notices.send(notice).await;
                }
                None => tracing::warn!(command = frame.command, "malformed notice"),
            }
            return Ok(());
        }
        let matches = in_flight.as_ref().is_some_and(|f| {
            f.frame.seq == frame.seq
                && (frame.command == command::response_to(f.frame.command)
                    || frame.command == command::ERROR)
        });
        if matches && let Some(flight) = in_flight.take() {
            let _ = flight.reply.send(Ok(frame));
        } else {
            tracing::debug!(
                seq = frame.seq,
                command = frame.command,
                "stray frame ignored"
            );
        }
        Ok(())
    }
}

fn fail(in_flight: &mut Option<InFlight>, error: LinkError) {
    if let Some(flight) = in_flight.take() {
        let _ = flight.reply.send(Err(error));
    }
}
