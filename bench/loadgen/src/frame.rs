//! WebSocket frames (RFC 6455 section 5.2), only as much as a load generator needs: parse the
//! header of a frame in a byte buffer, and encode one frame (masked from a client, unmasked
//! from a server).
//!
//! Parsing never copies: the caller keeps its bytes in one large read buffer and walks it
//! frame by frame with [`parse`].

/// Frame opcodes.
pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// The `Sec-WebSocket-Key` the generator sends: the RFC 6455 sample (section 1.3), valid,
/// and no randomness is needed on loopback.
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// The `Sec-WebSocket-Accept` that answers [`SAMPLE_KEY`] (RFC 6455 section 1.3).
pub const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// Largest payload accepted: far above any chat message, low enough that a garbled length
/// is reported instead of waited for.
pub const MAX_PAYLOAD_BYTES: u64 = 64 << 20;

/// One frame found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    /// The masking key, when the frame is masked (client to server frames).
    pub mask: Option<[u8; 4]>,
    /// Bytes before the payload (2 to 14).
    pub header_len: usize,
    pub payload_len: usize,
}

impl Frame {
    /// Header and payload.
    pub fn total_len(&self) -> usize {
        self.header_len + self.payload_len
    }
}

/// What [`parse`] found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A whole frame: its payload is `buf[header_len..total_len()]`.
    Frame(Frame),
    /// The buffer holds only the start of a frame; read more.
    Incomplete,
    /// Not a frame this generator can follow (reserved bits, a length over the limit).
    Invalid(&'static str),
}

/// Parses the frame at the start of `buf`.
///
/// ```
/// use wschat_bench::frame::{parse, Parsed, OP_TEXT};
/// let Parsed::Frame(f) = parse(b"\x81\x02hi") else { panic!() };
/// assert_eq!((f.opcode, f.header_len, f.payload_len), (OP_TEXT, 2, 2));
/// assert_eq!(parse(b"\x81\x05hi"), Parsed::Incomplete);
/// ```
pub fn parse(buf: &[u8]) -> Parsed {
    if buf.len() < 2 {
        return Parsed::Incomplete;
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b0 & 0x70 != 0 {
        return Parsed::Invalid("reserved bits set (no extension was negotiated)");
    }
    let masked = b1 & 0x80 != 0;
    let (len, mut header_len) = match b1 & 0x7f {
        126 => {
            if buf.len() < 4 {
                return Parsed::Incomplete;
            }
            (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
        }
        127 => {
            if buf.len() < 10 {
                return Parsed::Incomplete;
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b), 10)
        }
        n => (u64::from(n), 2),
    };
    if len > MAX_PAYLOAD_BYTES {
        return Parsed::Invalid("payload length over the limit");
    }
    let mask = if masked {
        if buf.len() < header_len + 4 {
            return Parsed::Incomplete;
        }
        let key = [
            buf[header_len],
            buf[header_len + 1],
            buf[header_len + 2],
            buf[header_len + 3],
        ];
        header_len += 4;
        Some(key)
    } else {
        None
    };
    let frame = Frame {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0f,
        mask,
        header_len,
        payload_len: len as usize,
    };
    if buf.len() < frame.total_len() {
        Parsed::Incomplete
    } else {
        Parsed::Frame(frame)
    }
}

/// XORs `data` with the masking key (masking and unmasking are the same operation).
pub fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    let word = u32::from_ne_bytes(key);
    let mut chunks = data.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let v = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) ^ word;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i];
    }
}

fn encode_header(out: &mut Vec<u8>, opcode: u8, len: usize, masked: bool) {
    let mask_bit = if masked { 0x80 } else { 0 };
    out.push(0x80 | opcode); // FIN: the generator never fragments
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// Appends a client frame: masked with `key`, as RFC 6455 requires of clients.
pub fn encode_masked(out: &mut Vec<u8>, opcode: u8, payload: &[u8], key: [u8; 4]) {
    encode_header(out, opcode, payload.len(), true);
    out.extend_from_slice(&key);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], key);
}

/// Appends a server frame (unmasked).
pub fn encode_unmasked(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    encode_header(out, opcode, payload.len(), false);
    out.extend_from_slice(payload);
}

/// A cheap source of masking keys (xorshift32). Masking exists to stop cache poisoning
/// through proxies, which a loopback benchmark does not have; the keys still vary so that a
/// server cannot take a shortcut on a constant key.
#[derive(Debug, Clone)]
pub struct MaskKeys(u32);

impl MaskKeys {
    pub fn new(seed: u32) -> Self {
        MaskKeys(seed | 1)
    }

    pub fn next_key(&mut self) -> [u8; 4] {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x.to_ne_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_of(buf: &[u8]) -> Frame {
        match parse(buf) {
            Parsed::Frame(f) => f,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    #[test]
    fn short_text_frame() {
        let f = frame_of(b"\x81\x05hello and more");
        assert!(f.fin);
        assert_eq!(f.opcode, OP_TEXT);
        assert_eq!(f.mask, None);
        assert_eq!((f.header_len, f.payload_len, f.total_len()), (2, 5, 7));
    }

    #[test]
    fn every_length_form_round_trips() {
        for len in [0usize, 1, 125, 126, 127, 65535, 65536, 200_000] {
            let payload = vec![b'x'; len];
            let mut buf = Vec::new();
            encode_unmasked(&mut buf, OP_BINARY, &payload);
            let f = frame_of(&buf);
            assert_eq!(f.payload_len, len, "length {len}");
            assert_eq!(f.total_len(), buf.len());
            assert_eq!(&buf[f.header_len..], &payload[..]);
        }
    }

    #[test]
    fn incomplete_at_every_cut() {
        let mut buf = Vec::new();
        encode_masked(&mut buf, OP_TEXT, &[b'a'; 300], [1, 2, 3, 4]);
        for cut in 0..buf.len() {
            assert_eq!(parse(&buf[..cut]), Parsed::Incomplete, "cut at {cut}");
        }
        assert!(matches!(parse(&buf), Parsed::Frame(_)));
    }

    #[test]
    fn masked_frame_unmasks_to_the_payload() {
        let mut keys = MaskKeys::new(7);
        for len in [0usize, 1, 3, 4, 5, 64, 130] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let key = keys.next_key();
            let mut buf = Vec::new();
            encode_masked(&mut buf, OP_TEXT, &payload, key);
            let f = frame_of(&buf);
            assert_eq!(f.mask, Some(key));
            let body = &mut buf[f.header_len..f.total_len()];
            apply_mask(body, key);
            assert_eq!(body, &payload[..]);
        }
    }

    #[test]
    fn two_frames_in_one_buffer() {
        let mut buf = Vec::new();
        encode_unmasked(&mut buf, OP_TEXT, b"one");
        encode_unmasked(&mut buf, OP_PING, b"");
        let first = frame_of(&buf);
        let second = frame_of(&buf[first.total_len()..]);
        assert_eq!(second.opcode, OP_PING);
        assert_eq!(first.total_len() + second.total_len(), buf.len());
    }

    #[test]
    fn rejects_reserved_bits_and_huge_lengths() {
        assert!(matches!(parse(b"\xC1\x00"), Parsed::Invalid(_)));
        let mut huge = vec![0x82, 127];
        huge.extend_from_slice(&(MAX_PAYLOAD_BYTES + 1).to_be_bytes());
        assert!(matches!(parse(&huge), Parsed::Invalid(_)));
    }

    #[test]
    fn mask_keys_vary() {
        let mut keys = MaskKeys::new(0);
        let a = keys.next_key();
        let b = keys.next_key();
        assert_ne!(a, b);
        assert_ne!(a, [0; 4]);
    }
}
