//! Typed payloads. Every payload is compact JSON (an empty payload is `{}`-less:
//! zero bytes for commands without arguments).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{Frame, command};

/// "Who are you?" answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub kind: String,
    pub serial: String,
    pub firmware: String,
}

/// Read the event log of the key inserted at the device, from `from_seq` on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadEvents {
    pub key: String,
    pub from_seq: u64,
    pub max: u16,
}

/// Put a cylinder job onto the connected programming key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadJob {
    pub programming_key: String,
    pub job_id: String,
    pub cylinder: String,
}

/// Read the cylinder events a programming key brought back for a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectResults {
    pub programming_key: String,
    pub job_id: String,
    pub from_seq: u64,
    pub max: u16,
}

/// One event as a device stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceEvent {
    pub seq: u64,
    /// RFC 3339, UTC.
    pub at: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cyl: Option<String>,
}

/// A chunk of events; `done` is true when nothing follows `events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventChunk {
    pub events: Vec<DeviceEvent>,
    pub done: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {}

/// The device refused a request: `no_key`, `unknown_job`, `not_visited`, `bad_request`, …
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("device error {code}: {message}")]
pub struct DeviceError {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marking {
    pub marking: String,
}

/// Unsolicited notices from the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    KeyInserted(String),
    KeyRemoved(String),
    ProgrammingKeyConnected(String),
    ProgrammingKeyDisconnected(String),
}

impl Notice {
    pub fn command(&self) -> u8 {
        match self {
            Notice::KeyInserted(_) => command::KEY_INSERTED,
            Notice::KeyRemoved(_) => command::KEY_REMOVED,
            Notice::ProgrammingKeyConnected(_) => command::PROGRAMMING_KEY_CONNECTED,
            Notice::ProgrammingKeyDisconnected(_) => command::PROGRAMMING_KEY_DISCONNECTED,
        }
    }

    pub fn marking(&self) -> &str {
        match self {
            Notice::KeyInserted(m)
            | Notice::KeyRemoved(m)
            | Notice::ProgrammingKeyConnected(m)
            | Notice::ProgrammingKeyDisconnected(m) => m,
        }
    }

    pub fn to_frame(&self, seq: u16) -> Frame {
        let marking = Marking {
            marking: self.marking().to_owned(),
        };
        Frame {
            seq,
            command: self.command(),
            payload: to_payload(&marking),
        }
    }

    pub fn from_frame(frame: &Frame) -> Option<Notice> {
        let Marking { marking } = serde_json::from_slice(&frame.payload).ok()?;
        Some(match frame.command {
            command::KEY_INSERTED => Notice::KeyInserted(marking),
            command::KEY_REMOVED => Notice::KeyRemoved(marking),
            command::PROGRAMMING_KEY_CONNECTED => Notice::ProgrammingKeyConnected(marking),
            command::PROGRAMMING_KEY_DISCONNECTED => Notice::ProgrammingKeyDisconnected(marking),
            _ => return None,
        })
    }
}

/// Requests the agent sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Identify,
    ReadEvents(ReadEvents),
    LoadJob(LoadJob),
    CollectResults(CollectResults),
}

impl Message {
    pub fn command(&self) -> u8 {
        match self {
            Message::Identify => command::IDENTIFY,
            Message::ReadEvents(_) => command::READ_EVENTS,
            Message::LoadJob(_) => command::LOAD_JOB,
            Message::CollectResults(_) => command::COLLECT_RESULTS,
        }
    }

    pub fn to_frame(&self, seq: u16) -> Frame {
        let payload = match self {
            Message::Identify => Bytes::new(),
            Message::ReadEvents(m) => to_payload(m),
            Message::LoadJob(m) => to_payload(m),
            Message::CollectResults(m) => to_payload(m),
        };
        Frame {
            seq,
            command: self.command(),
            payload,
        }
    }

    pub fn from_frame(frame: &Frame) -> Result<Message, serde_json::Error> {
        Ok(match frame.command {
            command::IDENTIFY => Message::Identify,
            command::READ_EVENTS => Message::ReadEvents(serde_json::from_slice(&frame.payload)?),
            command::LOAD_JOB => Message::LoadJob(serde_json::from_slice(&frame.payload)?),
            command::COLLECT_RESULTS => {
                Message::CollectResults(serde_json::from_slice(&frame.payload)?)
            }
            other => {
                return Err(serde::de::Error::custom(format!(
                    "unknown command {other:#04x}"
                )));
            }
        })
    }
}

pub fn to_payload<T: Serialize>(value: &T) -> Bytes {
    // Serialising these plain structs to a Vec cannot fail.
    serde_json::to_vec(value).unwrap_or_default().into()
}
