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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bytes::BytesMut;
    use proptest::prelude::*;
    use tokio_util::codec::{Decoder, Encoder};

    use super::*;
    use crate::protocol::FrameCodec;

    fn text() -> impl Strategy<Value = String> {
        // Short enough for any message to fit one frame.
        "\\PC{0,40}"
    }

    fn message() -> impl Strategy<Value = Message> {
        prop_oneof![
            Just(Message::Identify),
            (text(), any::<u64>(), any::<u16>()).prop_map(|(key, from_seq, max)| {
                Message::ReadEvents(ReadEvents { key, from_seq, max })
            }),
            (text(), text(), text()).prop_map(|(programming_key, job_id, cylinder)| {
                Message::LoadJob(LoadJob {
                    programming_key,
                    job_id,
                    cylinder,
                })
            }),
            (text(), text(), any::<u64>(), any::<u16>()).prop_map(
                |(programming_key, job_id, from_seq, max)| {
                    Message::CollectResults(CollectResults {
                        programming_key,
                        job_id,
                        from_seq,
                        max,
                    })
                }
            ),
        ]
    }

    fn notice() -> impl Strategy<Value = Notice> {
        prop_oneof![
            text().prop_map(Notice::KeyInserted),
            text().prop_map(Notice::KeyRemoved),
            text().prop_map(Notice::ProgrammingKeyConnected),
            text().prop_map(Notice::ProgrammingKeyDisconnected),
        ]
    }

    /// Through the codec and back, in pieces of `chunk` bytes.
    fn over_the_line(frames: &[Frame], chunk: usize) -> Vec<Frame> {
        let mut codec = FrameCodec::default();
        let mut line = BytesMut::new();
        for frame in frames {
            codec.encode(frame.clone(), &mut line).unwrap();
        }
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in line.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(frame) = codec.decode(&mut buf).unwrap() {
                out.push(frame);
            }
        }
        out
    }

    proptest! {
        /// Requests and notices arrive as they were sent, whatever their content.
        #[test]
        fn messages_and_notices_survive_the_line(
            messages in proptest::collection::vec((any::<u16>(), message()), 0..5),
            notices in proptest::collection::vec((any::<u16>(), notice()), 0..5),
            chunk in 1usize..48,
        ) {
            let frames: Vec<Frame> = messages
                .iter()
                .map(|(seq, m)| m.to_frame(*seq))
                .chain(notices.iter().map(|(seq, n)| n.to_frame(*seq)))
                .collect();
            let received = over_the_line(&frames, chunk);
            prop_assert_eq!(&received, &frames);
            let (requests, unsolicited) = received.split_at(messages.len());
            for ((seq, sent), frame) in messages.iter().zip(requests) {
                prop_assert_eq!(frame.seq, *seq);
                prop_assert_eq!(&Message::from_frame(frame).unwrap(), sent);
                prop_assert_eq!(Notice::from_frame(frame), None);
            }
            for ((seq, sent), frame) in notices.iter().zip(unsolicited) {
                prop_assert_eq!(frame.seq, *seq);
                prop_assert_eq!(Notice::from_frame(frame), Some(sent.clone()));
                prop_assert!(Message::from_frame(frame).is_err());
            }
        }
    }
}
