//! The text each generated message carries, and how deliveries are found again inside
//! whatever a server wraps around it.
//!
//! A message's text is `#<sender>:<seq>:<send_us>:` followed by padding up to the message
//! size: sender index, that sender's sequence number (together, the message id) and the send
//! time in microseconds on the generator's clock. Only digits, ASCII letters, `:` and `#` are
//! used, so JSON string escaping and HTML escaping leave the marker intact, and a scan for `#`
//! finds it in a JSON `info`/`text` field or a plain `name: text` line alike.

/// Padding after the marker: letters only, so escaping never changes them.
const PAD: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
/// Digits accepted in the time field: 19 decimal digits always fit a u64, so no overflow
/// check is needed while parsing.
const MAX_DIGITS: usize = 19;
/// Digits accepted in the sender and sequence fields (u32).
const MAX_ID_DIGITS: usize = 10;

/// One message id and its send time, as found in a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub sender: u32,
    pub seq: u32,
    pub send_us: u64,
}

/// Appends the text of one message to `out`: the marker, padded with letters to `size` bytes
/// (the marker alone when it is longer than `size`).
///
/// ```
/// let mut text = Vec::new();
/// wschat_bench::marker::write_text(&mut text, 3, 41, 1_000_123, 32);
/// assert_eq!(&text[..], b"#3:41:1000123:abcdefghijklmnopqr");
/// ```
pub fn write_text(out: &mut Vec<u8>, sender: u32, seq: u32, send_us: u64, size: usize) {
    let start = out.len();
    out.push(b'#');
    push_decimal(out, u64::from(sender));
    out.push(b':');
    push_decimal(out, u64::from(seq));
    out.push(b':');
    push_decimal(out, send_us);
    out.push(b':');
    let mut pad = PAD.iter().cycle();
    while out.len() - start < size {
        out.push(*pad.next().expect("cycle never ends"));
    }
}

fn push_decimal(out: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20]; // u64::MAX has 20 digits
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Reads `<digits>:` (1 to `max_digits` digits) from the start of `buf`: the value and the
/// bytes used.
fn field(buf: &[u8], max_digits: usize) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for (i, &b) in buf.iter().enumerate().take(max_digits + 1) {
        match b {
            b'0'..=b'9' => v = v * 10 + u64::from(b - b'0'),
            b':' if i > 0 => return Some((v, i + 1)),
            _ => return None,
        }
    }
    None
}

/// Parses a marker from `buf`, which starts right after a `#`: the marker and its length.
fn parse_after_hash(buf: &[u8]) -> Option<(Marker, usize)> {
    let (sender, a) = field(buf, MAX_ID_DIGITS)?;
    let (seq, b) = field(&buf[a..], MAX_ID_DIGITS)?;
    let (send_us, c) = field(&buf[a + b..], MAX_DIGITS)?;
    let m = Marker {
        sender: u32::try_from(sender).ok()?,
        seq: u32::try_from(seq).ok()?,
        send_us,
    };
    Some((m, a + b + c))
}

/// Calls `found` for every message marker in `payload`, once per message: a server that puts
/// the text in a frame twice (wschat's `info` and `text`) yields it once, while a server that
/// coalesces several messages into one frame (gorilla's hub) yields each of them.
///
/// ```
/// use wschat_bench::marker::scan;
/// let frame = br##"{"info":"bob: #1:7:99:xy","text":"#1:7:99:xy"}"##;
/// let mut ids = Vec::new();
/// scan(frame, |m| ids.push((m.sender, m.seq)));
/// assert_eq!(ids, [(1, 7)]);
/// ```
pub fn scan(payload: &[u8], mut found: impl FnMut(Marker)) {
    // The last marker found, and its bytes (from the `#`): a repeat is skipped by comparing
    // bytes, without parsing it again.
    let mut last: Option<(Marker, &[u8])> = None;
    for at in memchr::memchr_iter(b'#', payload) {
        let rest = &payload[at..];
        if last.is_some_and(|(_, raw)| rest.starts_with(raw)) {
            continue;
        }
        if let Some((m, len)) = parse_after_hash(&rest[1..]) {
            let same = last.is_some_and(|(l, _)| (l.sender, l.seq) == (m.sender, m.seq));
            if !same {
                found(m);
            }
            last = Some((m, &rest[..len + 1]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn markers(payload: &[u8]) -> Vec<Marker> {
        let mut v = Vec::new();
        scan(payload, |m| v.push(m));
        v
    }

    #[test]
    fn text_is_padded_to_size_with_safe_characters() {
        let mut t = Vec::new();
        write_text(&mut t, 9, 0, 0, 64);
        assert_eq!(t.len(), 64);
        assert!(t
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b':' || *b == b'#'));
        let mut short = Vec::new();
        write_text(&mut short, 123, 456, 789_000, 4);
        assert_eq!(&short[..], b"#123:456:789000:");
    }

    #[test]
    fn round_trip_through_a_json_wrapping() {
        let mut text = Vec::new();
        write_text(
            &mut text,
            4_000_000,
            u32::MAX,
            9_999_999_999_999_999_999,
            80,
        );
        let text = String::from_utf8(text).unwrap();
        let frame = format!(
            r#"{{"type":1,"info":"user1: {text}","event":"message","name":"user1","text":"{text}","time":1}}"#
        );
        let found = markers(frame.as_bytes());
        assert_eq!(
            found,
            [Marker {
                sender: 4_000_000,
                seq: u32::MAX,
                send_us: 9_999_999_999_999_999_999
            }]
        );
    }

    #[test]
    fn coalesced_messages_each_count() {
        let mut frame = Vec::new();
        for seq in 0..3 {
            frame.extend_from_slice(b"user2: ");
            write_text(&mut frame, 2, seq, 1000 + u64::from(seq), 40);
            frame.push(b'\n');
        }
        let seqs: Vec<u32> = markers(&frame).iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [0, 1, 2]);
    }

    #[test]
    fn repeated_markers_in_coalesced_json_each_count_once() {
        let mut frame = Vec::new();
        for seq in 0..3 {
            let mut text = Vec::new();
            write_text(&mut text, 5, seq, 77, 64);
            let text = String::from_utf8(text).unwrap();
            let line = format!(r#"{{"info":"user1: {text}","text":"{text}"}}"#);
            frame.extend_from_slice(line.as_bytes());
            frame.push(b'\n');
        }
        let seqs: Vec<u32> = markers(&frame).iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [0, 1, 2]);
        // A prefix of the last marker's bytes is not the same marker.
        assert_eq!(markers(b"#1:10:5: #1:1:5:").len(), 2);
    }

    #[test]
    fn ignores_hashes_that_are_not_markers() {
        for junk in [
            &b"#"[..],
            b"##",
            b"#1:2:",
            b"#1:2:3",
            b"#:1:2:3:",
            b"#a:1:2:",
            b"#1:2:12345678901234567890:",
            b"#99999999999:1:1:",
        ] {
            assert!(
                markers(junk).is_empty(),
                "{:?}",
                String::from_utf8_lossy(junk)
            );
        }
        assert_eq!(markers(b"x ## #1:2:3: #").len(), 1);
    }
}
