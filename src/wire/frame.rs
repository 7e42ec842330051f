//! Frames: the bytes of one server-to-client WebSocket frame.
//!
//! Server frames are never masked (RFC 6455 section 5.1), so one encoded frame is the same for
//! every recipient: the outbox encodes a broadcast once and appends the same bytes to each
//! client. Pure functions; no socket.

use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

/// WebSocket close codes wschat sends (RFC 6455 section 7.4.1).
pub mod close_code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The server is going away (shutdown) or the client went silent.
    pub const GOING_AWAY: u16 = 1001;
    /// The client broke the WebSocket protocol.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// The client sent a kind of data this endpoint does not take (binary to the chat).
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// A text message was not valid UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// The client broke a policy (kept flooding past the rate limit).
    pub const POLICY_VIOLATION: u16 = 1008;
    /// The message was larger than the limit.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The server hit an unexpected condition.
    pub const INTERNAL_ERROR: u16 = 1011;
}

/// Appends one unmasked, final frame (header and payload) to `out`.
///
/// Server frames are never masked, so the bytes are the same for every recipient: a broadcast
/// is encoded once and the same bytes are written to each socket.
pub fn encode_frame(out: &mut Vec<u8>, opcode: Opcode, payload: &[u8]) {
    let header = FrameHeader {
        opcode: match opcode {
            Opcode::Text => OpCode::Data(Data::Text),
            Opcode::Binary => OpCode::Data(Data::Binary),
            Opcode::Close => OpCode::Control(Control::Close),
            Opcode::Ping => OpCode::Control(Control::Ping),
        },
        ..FrameHeader::default()
    };
    out.reserve(payload.len() + 10);
    header
        .format(payload.len() as u64, out)
        .expect("writing to a Vec cannot fail");
    out.extend_from_slice(payload);
}

/// Appends a Close frame with `code` and a reason (cut to fit the 125-byte control frame limit
/// on a character boundary).
pub fn encode_close(out: &mut Vec<u8>, code: u16, reason: &str) {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    encode_frame(out, Opcode::Close, &payload);
}

/// The frame kinds the server writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// A UTF-8 text message.
    Text,
    /// A binary message.
    Binary,
    /// Close: the last frame of a connection.
    Close,
    /// Ping: the peer must answer with a Pong (the readers' Pongs come from tungstenite).
    Ping,
}

/// Splits the server's own frames (unmasked, final) into their opcode and payload; a frame
/// cut short at the end comes out with what is there.
pub(crate) fn split_frames(mut bytes: &[u8]) -> Vec<(u8, &[u8])> {
    let mut frames = Vec::new();
    while bytes.len() >= 2 {
        let (len, header): (usize, usize) = match bytes[1] & 0x7f {
            126 if bytes.len() >= 4 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
            127 if bytes.len() >= 10 => {
                let len = u64::from_be_bytes(bytes[2..10].try_into().expect("8 bytes"));
                (usize::try_from(len).unwrap_or(usize::MAX), 10)
            }
            126 | 127 => break,
            n => (usize::from(n), 2),
        };
        let end = header.saturating_add(len).min(bytes.len());
        frames.push((bytes[0] & 0x0f, &bytes[header..end]));
        bytes = &bytes[end..];
    }
    frames
}

/// What the server frames in `bytes` are, for the debug log: what a browser's DevTools shows
/// under Network → WS → Messages.
pub(crate) fn describe_frames(bytes: &[u8]) -> String {
    let mut out = Vec::new();
    for (opcode, payload) in split_frames(bytes) {
        let len = payload.len();
        out.push(match opcode {
            0x1 => format!("text {}", String::from_utf8_lossy(payload)),
            0x2 => format!("binary ({len} bytes)"),
            0x8 if payload.len() >= 2 => format!(
                "close {} {}",
                u16::from_be_bytes([payload[0], payload[1]]),
                String::from_utf8_lossy(&payload[2..])
            ),
            0x8 => "close".into(),
            0x9 => format!("ping ({len} bytes)"),
            0xA => format!("pong ({len} bytes)"),
            op => format!("opcode {op} ({len} bytes)"),
        });
    }
    out.join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_decode_with_tungstenite() {
        let mut out = Vec::new();
        encode_frame(&mut out, Opcode::Text, b"hello");
        encode_frame(&mut out, Opcode::Binary, &[7u8; 300]);
        encode_close(&mut out, close_code::GOING_AWAY, "bye");
        let mut cur = std::io::Cursor::new(&out);
        let (h, len) = FrameHeader::parse(&mut cur).unwrap().unwrap();
        assert_eq!(
            (h.opcode, len, h.is_final, h.mask),
            (OpCode::Data(Data::Text), 5, true, None)
        );
        cur.set_position(cur.position() + len);
        let (h, len) = FrameHeader::parse(&mut cur).unwrap().unwrap();
        assert_eq!((h.opcode, len), (OpCode::Data(Data::Binary), 300));
        cur.set_position(cur.position() + len);
        let (h, len) = FrameHeader::parse(&mut cur).unwrap().unwrap();
        assert_eq!((h.opcode, len), (OpCode::Control(Control::Close), 5));
        let at = cur.position() as usize;
        assert_eq!(&out[at..at + 2], &1001u16.to_be_bytes());
        assert_eq!(&out[at + 2..], b"bye");
    }

    #[test]
    fn close_reason_is_cut_on_a_char_boundary() {
        let mut out = Vec::new();
        encode_close(&mut out, 1000, &"é".repeat(100));
        // 2-byte header, 2-byte code, reason at most 123 bytes and still UTF-8.
        let reason = &out[4..];
        assert!(reason.len() <= 123);
        assert!(std::str::from_utf8(reason).is_ok());
        assert_eq!(out[1] as usize, out.len() - 2);
    }

    #[test]
    fn frames_are_described_for_the_debug_log() {
        let mut out = Vec::new();
        encode_frame(&mut out, Opcode::Text, b"hi");
        encode_frame(&mut out, Opcode::Ping, b"");
        encode_close(&mut out, close_code::GOING_AWAY, "bye");
        assert_eq!(
            describe_frames(&out),
            "text hi | ping (0 bytes) | close 1001 bye"
        );
    }

    #[test]
    fn a_text_frame_and_a_close_frame_byte_for_byte() {
        let mut out = Vec::new();
        encode_frame(&mut out, Opcode::Text, b"hi");
        // FIN + text opcode, unmasked length 2, then the payload.
        assert_eq!(out, [0x81, 0x02, b'h', b'i']);
        let mut out = Vec::new();
        encode_close(&mut out, close_code::GOING_AWAY, "bye");
        assert_eq!(out, [0x88, 5, 0x03, 0xE9, b'b', b'y', b'e']); // 0x03E9 = 1001
    }
}
