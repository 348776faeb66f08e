//! The serial protocol between the agent and a device (see `docs/serial-protocol.md`).

mod codec;
mod message;

pub use codec::{CodecError, FrameCodec, MAX_PAYLOAD, SOF};
pub use message::{
    Ack, CollectResults, DeviceError, DeviceEvent, EventChunk, Identity, LoadJob, Marking, Message,
    Notice, ReadEvents, to_payload,
};

/// One frame on the line. Responses echo the sequence number of their request;
/// notices carry the device's own sequence number, which the agent acknowledges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub seq: u16,
    pub command: u8,
    pub payload: bytes::Bytes,
}

/// Command codes. A response is its request's code with the high bit set.
pub mod command {
    pub const IDENTIFY: u8 = 0x01;
    pub const READ_EVENTS: u8 = 0x10;
    pub const LOAD_JOB: u8 = 0x11;
    pub const COLLECT_RESULTS: u8 = 0x12;
    pub const KEY_INSERTED: u8 = 0x40;
    pub const KEY_REMOVED: u8 = 0x41;
    pub const PROGRAMMING_KEY_CONNECTED: u8 = 0x42;
    pub const PROGRAMMING_KEY_DISCONNECTED: u8 = 0x43;
    pub const NOTICE_ACK: u8 = 0x7F;
    pub const RESPONSE_BIT: u8 = 0x80;
    pub const ERROR: u8 = 0xFF;

    pub fn is_notice(code: u8) -> bool {
        (KEY_INSERTED..=PROGRAMMING_KEY_DISCONNECTED).contains(&code)
    }

    pub fn response_to(request: u8) -> u8 {
        request | RESPONSE_BIT
    }
}
