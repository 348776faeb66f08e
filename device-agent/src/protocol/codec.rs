use bytes::{Buf, BufMut, Bytes, BytesMut};
use crc::{CRC_16_IBM_3740, Crc};
use tokio_util::codec::{Decoder, Encoder};

use super::Frame;

pub const SOF: u8 = 0x7E;
/// Largest payload a frame may carry; anything longer is refused on encode and
/// treated as line noise on decode.
pub const MAX_PAYLOAD: usize = 1024;
const HEADER: usize = 1 + 2; // SOF, length
const BODY_MIN: usize = 2 + 1; // sequence number, command
const CRC_LEN: usize = 2;
const CRC16: Crc<u16> = Crc::<u16>::new(&CRC_16_IBM_3740);

/// `SOF | length (u16 BE) | seq (u16 BE) | command | payload | CRC-16/IBM-3740 (u16 BE)`.
///
/// `length` counts seq, command and payload. The CRC covers length through payload.
/// Decoding never fails: bytes that do not form a valid frame are skipped one at
/// a time until the next `SOF` that starts one, so a corrupt frame is dropped and
/// the stream resynchronises by itself.
#[derive(Debug, Default)]
pub struct FrameCodec {
    discarded: u64,
}

impl FrameCodec {
    /// Bytes skipped as noise or corrupt frames since the codec was made.
    pub fn discarded(&self) -> u64 {
        self.discarded
    }

    fn skip(&mut self, src: &mut BytesMut, n: usize) {
        src.advance(n);
        self.discarded += n as u64;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("payload of {0} bytes exceeds the maximum of {MAX_PAYLOAD}")]
    TooLong(usize),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Encoder<Frame> for FrameCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), Self::Error> {
        if frame.payload.len() > MAX_PAYLOAD {
            return Err(CodecError::TooLong(frame.payload.len()));
        }
        let length = (BODY_MIN + frame.payload.len()) as u16;
        dst.reserve(HEADER + length as usize + CRC_LEN);
        dst.put_u8(SOF);
        let start = dst.len();
        dst.put_u16(length);
        dst.put_u16(frame.seq);
        dst.put_u8(frame.command);
        dst.put_slice(&frame.payload);
        let crc = CRC16.checksum(&dst[start..]);
        dst.put_u16(crc);
        Ok(())
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, Self::Error> {
        loop {
            match src.iter().position(|&b| b == SOF) {
                Some(0) => {}
                Some(n) => self.skip(src, n),
                None => {
                    let n = src.len();
                    self.skip(src, n);
                    return Ok(None);
                }
            }
            if src.len() < HEADER {
                return Ok(None);
            }
            let length = u16::from_be_bytes([src[1], src[2]]) as usize;
            if !(BODY_MIN..=BODY_MIN + MAX_PAYLOAD).contains(&length) {
                self.skip(src, 1);
                continue;
            }
            let total = HEADER + length + CRC_LEN;
            if src.len() < total {
                src.reserve(total - src.len());
                return Ok(None);
            }
            let crc_at = HEADER + length;
            let expected = u16::from_be_bytes([src[crc_at], src[crc_at + 1]]);
            if CRC16.checksum(&src[1..crc_at]) != expected {
                tracing::debug!("discarding a frame with a bad CRC");
                self.skip(src, 1);
                continue;
            }
            let mut frame = src.split_to(total);
            frame.advance(HEADER);
            let seq = frame.get_u16();
            let command = frame.get_u8();
            let payload: Bytes = frame.split_to(length - BODY_MIN).freeze();
            return Ok(Some(Frame {
                seq,
                command,
                payload,
            }));
        }
    }

    /// At the end of input a partial frame can only be a corrupt header that
    /// claimed too much; rescan the bytes behind its `SOF`.
    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, Self::Error> {
        while !src.is_empty() {
            if let Some(frame) = self.decode(src)? {
                return Ok(Some(frame));
            }
            if !src.is_empty() {
                self.skip(src, 1);
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    fn frame_strategy() -> impl Strategy<Value = Frame> {
        (
            any::<u16>(),
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 0..=MAX_PAYLOAD),
        )
            .prop_map(|(seq, command, payload)| Frame {
                seq,
                command,
                payload: payload.into(),
            })
    }

    fn encode(frames: &[Frame]) -> BytesMut {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        for frame in frames {
            codec.encode(frame.clone(), &mut buf).unwrap();
        }
        buf
    }

    fn decode_all(bytes: &[u8], chunk: usize) -> Vec<Frame> {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in bytes.chunks(chunk.max(1)) {
            buf.extend_from_slice(piece);
            while let Some(frame) = codec.decode(&mut buf).unwrap() {
                out.push(frame);
            }
        }
        while let Some(frame) = codec.decode_eof(&mut buf).unwrap() {
            out.push(frame);
        }
        out
    }

    /// The frames and the number of bytes discarded.
    fn decode_counted(bytes: &[u8], chunk: usize) -> (Vec<Frame>, u64) {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in bytes.chunks(chunk.max(1)) {
            buf.extend_from_slice(piece);
            while let Some(frame) = codec.decode(&mut buf).unwrap() {
                out.push(frame);
            }
        }
        while let Some(frame) = codec.decode_eof(&mut buf).unwrap() {
            out.push(frame);
        }
        assert!(buf.is_empty());
        (out, codec.discarded())
    }

    proptest! {
        #[test]
        fn round_trip(frames in proptest::collection::vec(frame_strategy(), 1..6), chunk in 1usize..64) {
            let bytes = encode(&frames);
            prop_assert_eq!(decode_all(&bytes, chunk), frames);
        }

        #[test]
        fn resynchronises_after_garbage(
            garbage in proptest::collection::vec(any::<u8>(), 0..200),
            frames in proptest::collection::vec(frame_strategy(), 1..4),
            chunk in 1usize..64,
        ) {
            let mut bytes = garbage;
            bytes.extend_from_slice(&encode(&frames));
            let decoded = decode_all(&bytes, chunk);
            prop_assert!(decoded.ends_with(&frames), "decoded {:?}", decoded.len());
        }

        /// Arbitrary bytes decode to the same frames however they are split, and
        /// every byte is either part of a frame or counted as discarded.
        #[test]
        fn any_bytes_decode_alike_in_any_pieces(
            segments in proptest::collection::vec(
                prop_oneof![
                    proptest::collection::vec(
                        prop_oneof![3 => any::<u8>(), 1 => Just(SOF), 1 => Just(0u8)],
                        0..40,
                    ),
                    frame_strategy().prop_map(|f| encode(&[f]).to_vec()),
                ],
                0..8,
            ),
            chunk in 1usize..64,
        ) {
            let bytes = segments.concat();
            let whole = decode_counted(&bytes, bytes.len().max(1));
            let pieces = decode_counted(&bytes, chunk);
            prop_assert_eq!(&whole, &pieces);
            let framed: usize = whole.0.iter().map(|f| HEADER + BODY_MIN + f.payload.len() + CRC_LEN).sum();
            prop_assert_eq!(framed as u64 + whole.1, bytes.len() as u64);
        }

        /// A frame damaged behind its length field is never accepted; the next one is.
        #[test]
        fn corrupt_frame_is_discarded(
            first in frame_strategy(),
            second in frame_strategy(),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let mut bytes = encode(std::slice::from_ref(&first)).to_vec();
            let i = HEADER + at.index(bytes.len() - HEADER);
            bytes[i] ^= flip;
            bytes.extend_from_slice(&encode(std::slice::from_ref(&second)));
            prop_assert_eq!(decode_all(&bytes, 7), vec![second]);
        }
    }

    #[test]
    fn corrupt_length_does_not_swallow_the_next_frame() {
        let good = Frame {
            seq: 2,
            command: 0x10,
            payload: Bytes::from_static(b"{}"),
        };
        let mut bytes = encode(&[Frame {
            seq: 1,
            command: 0x01,
            payload: Bytes::new(),
        }])
        .to_vec();
        bytes[1] = 0x03; // claims 0x03xx bytes
        bytes.extend_from_slice(&encode(std::slice::from_ref(&good)));
        assert_eq!(decode_all(&bytes, 5), vec![good]);
    }

    #[test]
    fn refuses_oversized_payloads() {
        let frame = Frame {
            seq: 0,
            command: 0,
            payload: vec![0; MAX_PAYLOAD + 1].into(),
        };
        assert!(
            FrameCodec::default()
                .encode(frame, &mut BytesMut::new())
                .is_err()
        );
    }
}
