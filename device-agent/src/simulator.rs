//! A device that speaks the serial protocol on a pseudo-terminal, for demos and
//! tests. It is driven by [`Control`] commands (one per stdin line in the CLI).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use bytes::BytesMut;
use chrono::{TimeZone, Utc};
use futures::{SinkExt, StreamExt};
use rand::Rng;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::codec::{Encoder, Framed};

use crate::protocol::{
    Ack, CollectResults, DeviceError, DeviceEvent, EventChunk, Frame, FrameCodec, Identity,
    LoadJob, Message, Notice, ReadEvents, command, to_payload,
};
use crate::pty::Pty;

const NOTICE_RESEND: Duration = Duration::from_millis(300);
const NOTICE_ATTEMPTS: u32 = 20;

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub kind: String,
    pub serial: String,
    /// A symlink kept pointing at the current pty, so that a client can reopen
    /// the same path after a `hangup`.
    pub link: Option<PathBuf>,
}

/// What the simulator can be told to do. Text form in [`Control::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    AddKey {
        marking: String,
        events: u64,
    },
    AddCylinder {
        marking: String,
        events: u64,
    },
    Insert(String),
    Remove(String),
    Connect(String),
    Disconnect(String),
    Visit {
        programming_key: String,
        cylinder: String,
    },
    /// Damage the next n frames the device sends (their CRC no longer matches).
    Corrupt(u32),
    /// Ignore the next n requests, as if they were lost on the line.
    Drop(u32),
    /// Send n random bytes.
    Garbage(usize),
    /// Close the pty and open a new one (the port disappears and comes back).
    Hangup,
    Status,
}

impl Control {
    pub fn parse(line: &str) -> Result<Control, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let number = |i: usize, default: u64| -> Result<u64, String> {
            words.get(i).map_or(Ok(default), |w| {
                w.parse().map_err(|_| format!("not a number: {w}"))
            })
        };
        let word = |i: usize| -> Result<String, String> {
            words
                .get(i)
                .map(|w| (*w).to_owned())
                .ok_or_else(|| "missing argument".to_owned())
        };
        match words.as_slice() {
            ["key", ..] => Ok(Control::AddKey {
                marking: word(1)?,
                events: number(2, 20)?,
            }),
            ["cylinder", ..] => Ok(Control::AddCylinder {
                marking: word(1)?,
                events: number(2, 20)?,
            }),
            ["insert", ..] => Ok(Control::Insert(word(1)?)),
            ["remove", ..] => Ok(Control::Remove(word(1)?)),
            ["connect", ..] => Ok(Control::Connect(word(1)?)),
            ["disconnect", ..] => Ok(Control::Disconnect(word(1)?)),
            ["visit", ..] => Ok(Control::Visit {
                programming_key: word(1)?,
                cylinder: word(2)?,
            }),
            ["corrupt", ..] => Ok(Control::Corrupt(number(1, 1)? as u32)),
            ["drop", ..] => Ok(Control::Drop(number(1, 1)? as u32)),
            ["garbage", ..] => Ok(Control::Garbage(number(1, 16)? as usize)),
            ["hangup"] => Ok(Control::Hangup),
            ["status"] => Ok(Control::Status),
            _ => Err(format!("unknown command: {line}")),
        }
    }
}

/// Handle to a running simulator.
pub struct SimHandle {
    control: mpsc::Sender<(Control, oneshot::Sender<String>)>,
    /// The current slave path (changes on `hangup`).
    pub path: watch::Receiver<PathBuf>,
}

impl SimHandle {
    /// Applies a command and returns the simulator's one-line answer.
    pub async fn send(&self, control: Control) -> String {
        let (tx, rx) = oneshot::channel();
        if self.control.send((control, tx)).await.is_err() {
            return "simulator stopped".to_owned();
        }
        rx.await.unwrap_or_else(|_| "simulator stopped".to_owned())
    }

    pub fn current_path(&self) -> PathBuf {
        self.path.borrow().clone()
    }
}

#[derive(Default)]
struct ProgrammingKey {
    connected: bool,
    /// job id → (cylinder marking, results once it visited the cylinder)
    jobs: HashMap<String, (String, Option<Vec<DeviceEvent>>)>,
}

struct Device {
    config: SimConfig,
    keys: HashMap<String, Vec<DeviceEvent>>,
    cylinders: HashMap<String, Vec<DeviceEvent>>,
    inserted: Vec<String>,
    programming_keys: HashMap<String, ProgrammingKey>,
    corrupt: u32,
    drop: u32,
    notice_seq: u16,
    unacked: VecDeque<(Frame, u32, Instant)>,
}

pub fn spawn(config: SimConfig) -> std::io::Result<SimHandle> {
    let pty = open_pty(&config)?;
    let (path_tx, path_rx) = watch::channel(pty.path().clone());
    let (control_tx, control_rx) = mpsc::channel(16);
    let device = Device {
        config,
        keys: HashMap::new(),
        cylinders: HashMap::new(),
        inserted: Vec::new(),
        programming_keys: HashMap::new(),
        corrupt: 0,
        drop: 0,
        notice_seq: 0,
        unacked: VecDeque::new(),
    };
    tokio::spawn(device.run(pty, control_rx, path_tx));
    Ok(SimHandle {
        control: control_tx,
        path: path_rx,
    })
}

fn open_pty(config: &SimConfig) -> std::io::Result<Pty> {
    let pty = Pty::open()?;
    if let Some(link) = &config.link {
        let tmp = link.with_extension("tmp-link");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(pty.path(), &tmp)?;
        std::fs::rename(&tmp, link)?;
    }
    Ok(pty)
}

fn generate(marking: &str, count: u64, cylinder: bool) -> Vec<DeviceEvent> {
    let start = Utc
        .with_ymd_and_hms(2026, 1, 5, 7, 0, 0)
        .single()
        .unwrap_or_default();
    (1..=count)
        .map(|seq| {
            let at = start + chrono::Duration::minutes(seq as i64 * 17);
            let kind = if seq % 7 == 0 {
                "access_denied"
            } else {
                "access_granted"
            };
            let other = format!("{}-{}", if cylinder { "K" } else { "C" }, 100 + seq % 5);
            let (key, cyl) = if cylinder {
                (Some(other), Some(marking.to_owned()))
            } else {
                (Some(marking.to_owned()), Some(other))
            };
            DeviceEvent {
                seq,
                at: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                kind: kind.to_owned(),
                key,
                cyl,
            }
        })
        .collect()
}

fn chunk(events: &[DeviceEvent], from_seq: u64, max: u16) -> EventChunk {
    let rest: Vec<&DeviceEvent> = events.iter().filter(|e| e.seq >= from_seq).collect();
    let take = usize::from(max.clamp(1, 8));
    EventChunk {
        done: rest.len() <= take,
        events: rest.into_iter().take(take).cloned().collect(),
    }
}

fn error(code: &str, message: impl Into<String>) -> DeviceError {
    DeviceError {
        code: code.to_owned(),
        message: message.into(),
    }
}

type Io = Framed<Pty, FrameCodec>;

impl Device {
    async fn run(
        mut self,
        pty: Pty,
        mut control: mpsc::Receiver<(Control, oneshot::Sender<String>)>,
        path: watch::Sender<PathBuf>,
    ) {
        let mut io = Framed::new(pty, FrameCodec::default());
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                incoming = io.next() => match incoming {
                    Some(Ok(frame)) => self.on_frame(&mut io, frame).await,
                    Some(Err(error)) => {
                        // EIO while no client holds the port open: wait and read again.
                        tracing::debug!(%error, "pty read");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    None => tokio::time::sleep(Duration::from_millis(50)).await,
                },
                command = control.recv() => {
                    let Some((command, reply)) = command else { return };
                    let answer = if command == Control::Hangup {
                        match open_pty(&self.config) {
                            Ok(pty) => {
                                io = Framed::new(pty, FrameCodec::default());
                                let _ = path.send(io.get_ref().path().clone());
                                format!("pty {}", io.get_ref().path().display())
                            }
                            Err(e) => format!("error: {e}"),
                        }
                    } else {
                        self.apply(&mut io, command).await
                    };
                    let _ = reply.send(answer);
                }
                _ = tick.tick() => self.resend_notices(&mut io).await,
            }
        }
    }

    async fn apply(&mut self, io: &mut Io, command: Control) -> String {
        match command {
            Control::AddKey { marking, events } => {
                self.keys
                    .insert(marking.clone(), generate(&marking, events, false));
                format!("key {marking} with {events} events")
            }
            Control::AddCylinder { marking, events } => {
                self.cylinders
                    .insert(marking.clone(), generate(&marking, events, true));
                format!("cylinder {marking} with {events} events")
            }
            Control::Insert(marking) => {
                if !self.keys.contains_key(&marking) {
                    self.keys
                        .insert(marking.clone(), generate(&marking, 20, false));
                }
                self.inserted.retain(|m| *m != marking);
                self.inserted.push(marking.clone());
                self.notify(io, Notice::KeyInserted(marking.clone())).await;
                format!("inserted {marking}")
            }
            Control::Remove(marking) => {
                self.inserted.retain(|m| *m != marking);
                self.notify(io, Notice::KeyRemoved(marking.clone())).await;
                format!("removed {marking}")
            }
            Control::Connect(marking) => {
                self.programming_keys
                    .entry(marking.clone())
                    .or_default()
                    .connected = true;
                self.notify(io, Notice::ProgrammingKeyConnected(marking.clone()))
                    .await;
                format!("connected {marking}")
            }
            Control::Disconnect(marking) => {
                self.programming_keys
                    .entry(marking.clone())
                    .or_default()
                    .connected = false;
                self.notify(io, Notice::ProgrammingKeyDisconnected(marking.clone()))
                    .await;
                format!("disconnected {marking}")
            }
            Control::Visit {
                programming_key,
                cylinder,
            } => {
                let events = self
                    .cylinders
                    .entry(cylinder.clone())
                    .or_insert_with(|| generate(&cylinder, 20, true))
                    .clone();
                let pk = self
                    .programming_keys
                    .entry(programming_key.clone())
                    .or_default();
                let mut visited = 0;
                for (target, results) in pk.jobs.values_mut() {
                    if *target == cylinder {
                        *results = Some(events.clone());
                        visited += 1;
                    }
                }
                format!("{programming_key} visited {cylinder}: {visited} job(s) collected")
            }
            Control::Corrupt(n) => {
                self.corrupt += n;
                format!("corrupting the next {} frame(s)", self.corrupt)
            }
            Control::Drop(n) => {
                self.drop += n;
                format!("dropping the next {} request(s)", self.drop)
            }
            Control::Garbage(n) => {
                let bytes: Vec<u8> = (0..n).map(|_| rand::rng().random()).collect();
                let _ = io.get_mut().write_all(&bytes).await;
                format!("sent {n} garbage bytes")
            }
            Control::Hangup => "hangup".to_owned(),
            Control::Status => format!(
                "{} {}: inserted {:?}, programming keys {:?}",
                self.config.kind,
                self.config.serial,
                self.inserted,
                self.programming_keys
                    .iter()
                    .map(|(m, pk)| (m.clone(), pk.connected, pk.jobs.len()))
                    .collect::<Vec<_>>()
            ),
        }
    }

    async fn notify(&mut self, io: &mut Io, notice: Notice) {
        self.notice_seq = self.notice_seq.wrapping_add(1);
        let frame = notice.to_frame(self.notice_seq);
        self.send(io, frame.clone()).await;
        self.unacked
            .push_back((frame, 1, Instant::now() + NOTICE_RESEND));
    }

    async fn resend_notices(&mut self, io: &mut Io) {
        let now = Instant::now();
        let due: Vec<Frame> = self
            .unacked
            .iter_mut()
            .filter(|(_, _, at)| *at <= now)
            .map(|(frame, attempts, at)| {
                *attempts += 1;
                *at = now + NOTICE_RESEND;
                frame.clone()
            })
            .collect();
        self.unacked
            .retain(|(_, attempts, _)| *attempts <= NOTICE_ATTEMPTS);
        for frame in due {
            self.send(io, frame).await;
        }
    }

    async fn send(&mut self, io: &mut Io, frame: Frame) {
        if self.corrupt > 0 {
            self.corrupt -= 1;
            let mut bytes = BytesMut::new();
            if FrameCodec::default().encode(frame, &mut bytes).is_ok() {
                let last = bytes.len() - 1;
                bytes[last] ^= 0x5A;
                let _ = io.get_mut().write_all(&bytes).await;
            }
            return;
        }
        if let Err(error) = io.send(frame).await {
            tracing::debug!(%error, "pty write");
        }
    }

    async fn on_frame(&mut self, io: &mut Io, frame: Frame) {
        if frame.command == command::NOTICE_ACK {
            self.unacked.retain(|(f, _, _)| f.seq != frame.seq);
            return;
        }
        if self.drop > 0 {
            self.drop -= 1;
            return;
        }
        let answer = match Message::from_frame(&frame) {
            Ok(message) => self.answer(message),
            Err(e) => Err(error("bad_request", e.to_string())),
        };
        let reply = match answer {
            Ok(payload) => Frame {
                seq: frame.seq,
                command: command::response_to(frame.command),
                payload,
            },
            Err(e) => Frame {
                seq: frame.seq,
                command: command::ERROR,
                payload: to_payload(&e),
            },
        };
        self.send(io, reply).await;
    }

    fn answer(&mut self, message: Message) -> Result<bytes::Bytes, DeviceError> {
        match message {
            Message::Identify => Ok(to_payload(&Identity {
                kind: self.config.kind.clone(),
                serial: self.config.serial.clone(),
                firmware: concat!("sim-", env!("CARGO_PKG_VERSION")).to_owned(),
            })),
            Message::ReadEvents(ReadEvents { key, from_seq, max }) => {
                if !self.inserted.contains(&key) {
                    return Err(error("no_key", format!("{key} is not inserted")));
                }
                let events = self.keys.get(&key).map(Vec::as_slice).unwrap_or_default();
                Ok(to_payload(&chunk(events, from_seq, max)))
            }
            Message::LoadJob(LoadJob {
                programming_key,
                job_id,
                cylinder,
            }) => {
                let pk = self.connected(&programming_key)?;
                pk.jobs.entry(job_id).or_insert((cylinder, None));
                Ok(to_payload(&Ack {}))
            }
            Message::CollectResults(CollectResults {
                programming_key,
                job_id,
                from_seq,
                max,
            }) => {
                let pk = self.connected(&programming_key)?;
                match pk.jobs.get(&job_id) {
                    None => Err(error(
                        "unknown_job",
                        format!("{job_id} is not on {programming_key}"),
                    )),
                    Some((cylinder, None)) => Err(error(
                        "not_visited",
                        format!("{programming_key} has not visited {cylinder}"),
                    )),
                    Some((_, Some(events))) => Ok(to_payload(&chunk(events, from_seq, max))),
                }
            }
        }
    }

    fn connected(&mut self, marking: &str) -> Result<&mut ProgrammingKey, DeviceError> {
        match self.programming_keys.get_mut(marking) {
            Some(pk) if pk.connected => Ok(pk),
            _ => Err(error("no_key", format!("{marking} is not connected"))),
        }
    }
}
