//! The serial frame decoder on arbitrary bytes, fed whole and in pieces.
//!
//! Decoding never panics and never fails; it yields the same frames however
//! the bytes are split; every byte is either part of a frame or counted as
//! discarded; and every frame it yields encodes back to bytes that decode to
//! the same frame (and, when it is a request or notice, to the same message).

#![no_main]

use bytes::BytesMut;
use countersign_agent::protocol::{Frame, FrameCodec, MAX_PAYLOAD, Message, Notice};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};

/// Decodes `bytes` delivered in pieces of the given sizes (cycled), then at
/// the end of input; returns the frames and the bytes discarded.
fn decode(bytes: &[u8], pieces: &[usize]) -> (Vec<Frame>, u64) {
    let mut codec = FrameCodec::default();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut rest = bytes;
    let mut sizes = pieces.iter().cycle();
    while !rest.is_empty() {
        let size = sizes
            .next()
            .copied()
            .unwrap_or(rest.len())
            .clamp(1, rest.len());
        let (piece, tail) = rest.split_at(size);
        rest = tail;
        buf.extend_from_slice(piece);
        while let Some(frame) = codec.decode(&mut buf).expect("decoding never fails") {
            frames.push(frame);
        }
    }
    while let Some(frame) = codec.decode_eof(&mut buf).expect("decoding never fails") {
        frames.push(frame);
    }
    assert!(buf.is_empty(), "the end of input consumes everything");
    (frames, codec.discarded())
}

fn encoded_len(frame: &Frame) -> u64 {
    // SOF, length, seq, command, payload, CRC.
    (1 + 2 + 2 + 1 + frame.payload.len() + 2) as u64
}

fuzz_target!(|data: &[u8]| {
    // The first bytes choose how the rest is split into pieces.
    let (split, bytes) = data.split_at(data.len().min(4));
    let pieces: Vec<usize> = split.iter().map(|b| usize::from(*b) + 1).collect();

    let (whole, discarded) = decode(bytes, &[bytes.len().max(1)]);
    let (streamed, streamed_discarded) = decode(bytes, &pieces);
    let (bytewise, _) = decode(bytes, &[1]);
    assert_eq!(
        whole, streamed,
        "the frames do not depend on how bytes arrive"
    );
    assert_eq!(whole, bytewise);
    assert_eq!(discarded, streamed_discarded);
    let framed: u64 = whole.iter().map(encoded_len).sum();
    assert_eq!(
        framed + discarded,
        bytes.len() as u64,
        "every byte accounted for"
    );

    for frame in whole {
        assert!(frame.payload.len() <= MAX_PAYLOAD);
        let mut encoded = BytesMut::new();
        FrameCodec::default()
            .encode(frame.clone(), &mut encoded)
            .expect("a decoded frame encodes");
        let mut codec = FrameCodec::default();
        let again = codec.decode(&mut encoded).expect("decoding never fails");
        assert_eq!(again.as_ref(), Some(&frame), "round trip");
        assert!(encoded.is_empty());

        if let Ok(message) = Message::from_frame(&frame) {
            let back = Message::from_frame(&message.to_frame(frame.seq));
            assert_eq!(back.ok(), Some(message), "message round trip");
        }
        if let Some(notice) = Notice::from_frame(&frame) {
            let back = notice.to_frame(frame.seq);
            assert_eq!(Notice::from_frame(&back), Some(notice), "notice round trip");
        }
    }
});
