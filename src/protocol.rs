//! Protocol: the bytes wschat puts on the wire, as pure functions.
//!
//! Owns the chat's JSON events (the classic `{"type","info"}` lines plus richer fields), the
//! nickname rules, and the encoding of server frames, in each client's wire format (the
//! Socket.IO form of an event is built by `socketio.rs`). Touches no socket, thread or clock:
//! callers pass the time in, and get bytes back. The broadcaster and the client readers use it.

use serde::Serialize;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

use crate::socketio;

/// Longest nickname, in characters (Unicode scalar values).
pub const MAX_NAME_CHARS: usize = 32;

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
///
/// ```
/// use wschat::protocol::{encode_frame, Opcode};
/// let mut out = Vec::new();
/// encode_frame(&mut out, Opcode::Text, b"hi");
/// // FIN + text opcode, unmasked length 2, then the payload.
/// assert_eq!(out, [0x81, 0x02, b'h', b'i']);
/// ```
pub fn encode_frame(out: &mut Vec<u8>, opcode: Opcode, payload: &[u8]) {
    let header = FrameHeader {
        opcode: match opcode {
            Opcode::Text => OpCode::Data(Data::Text),
            Opcode::Binary => OpCode::Data(Data::Binary),
            Opcode::Close => OpCode::Control(Control::Close),
            Opcode::Ping => OpCode::Control(Control::Ping),
            Opcode::Pong => OpCode::Control(Control::Pong),
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
///
/// ```
/// use wschat::protocol::{close_code, encode_close};
/// let mut out = Vec::new();
/// encode_close(&mut out, close_code::GOING_AWAY, "bye");
/// assert_eq!(out, [0x88, 5, 0x03, 0xE9, b'b', b'y', b'e']); // 0x03E9 = 1001
/// ```
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
    /// Ping: the peer must answer with a Pong.
    Ping,
    /// Pong: the answer to a Ping.
    Pong,
}

/// Checks a requested nickname: surrounding whitespace is trimmed, and what is left must be
/// 1 to [`MAX_NAME_CHARS`] characters with no control characters. Returns the name to use, or
/// `None` when the server must pick one.
///
/// ```
/// use wschat::protocol::clean_name;
/// assert_eq!(clean_name("  ada lovelace "), Some("ada lovelace"));
/// assert_eq!(clean_name("bell\u{7}"), None); // a control character
/// assert_eq!(clean_name(&"x".repeat(33)), None); // too long
/// ```
pub fn clean_name(raw: &str) -> Option<&str> {
    let name = raw.trim();
    let chars = name.chars().count();
    let ok = (1..=MAX_NAME_CHARS).contains(&chars) && !name.chars().any(char::is_control);
    ok.then_some(name)
}

/// Returns `base`, or `base` with the smallest numeric suffix (2, 3, …) that `taken` does not
/// reject, keeping the result within [`MAX_NAME_CHARS`].
///
/// ```
/// use wschat::protocol::unique_name;
/// let taken = ["ada", "ada2"];
/// assert_eq!(unique_name("ada", |n| taken.contains(&n)), "ada3");
/// assert_eq!(unique_name("bob", |n| taken.contains(&n)), "bob");
/// ```
pub fn unique_name(base: &str, taken: impl Fn(&str) -> bool) -> String {
    if !taken(base) {
        return base.to_string();
    }
    for n in 2u64.. {
        let suffix = n.to_string();
        let keep = MAX_NAME_CHARS - suffix.len();
        let stem: String = base.chars().take(keep).collect();
        let candidate = format!("{stem}{suffix}");
        if !taken(&candidate) {
            return candidate;
        }
    }
    unreachable!("some suffix is free")
}

/// Replaces `&`, `<`, `>`, `"` and `'` with HTML entities, appending to `out`.
///
/// The classic chat page inserts `info` with `innerHTML`; escaped, the text shows as typed and
/// runs nothing.
///
/// ```
/// let mut info = String::from("eve: ");
/// wschat::protocol::html_escape_into(&mut info, "<img src=x onerror=alert(1)>");
/// assert_eq!(info, "eve: &lt;img src=x onerror=alert(1)&gt;");
/// ```
pub fn html_escape_into(out: &mut String, text: &str) {
    let mut last = 0;
    for (i, b) in text.bytes().enumerate() {
        let entity = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#39;",
            _ => continue,
        };
        out.push_str(&text[last..i]);
        out.push_str(entity);
        last = i + 1;
    }
    out.push_str(&text[last..]);
}

/// What happened, as the chat tells it. Each value becomes one JSON object in one text frame;
/// see docs/PROTOCOL.md for every event with an example.
#[derive(Debug, Clone, Copy)]
pub enum ChatEvent<'a> {
    /// To a newcomer alone, as its own join line: its final name, its room, who is there.
    Welcome {
        /// The newcomer's final name (after checks and de-duplication).
        name: &'a str,
        /// The room it joined.
        room: &'a str,
        /// Everyone in the room, the newcomer included.
        users: &'a [&'a str],
    },
    /// Someone entered the room (to everyone else in it).
    Enter {
        /// The newcomer's final name.
        name: &'a str,
        /// The room.
        room: &'a str,
    },
    /// Someone said something (to everyone in the room, the sender included).
    Message {
        /// The sender.
        name: &'a str,
        /// The text exactly as sent.
        text: &'a str,
        /// The room.
        room: &'a str,
        /// True when replayed from history to a newcomer.
        history: bool,
    },
    /// `/me waves`: an action line.
    Action {
        /// Who acts.
        name: &'a str,
        /// The action, as typed after `/me `.
        text: &'a str,
        /// The room.
        room: &'a str,
        /// True when replayed from history to a newcomer.
        history: bool,
    },
    /// Someone left, for any reason (to everyone still in the room).
    Leave {
        /// The name of the one who left.
        name: &'a str,
        /// The room.
        room: &'a str,
    },
    /// A notice to one client: its assigned name, a refused message, a limit, `/who`.
    Notice {
        /// A stable, machine-readable code, e.g. `"name-taken"`, `"rate-limited"`.
        code: &'a str,
        /// The notice for a person to read.
        text: &'a str,
        /// Names, for `/who`.
        users: Option<&'a [&'a str]>,
    },
    /// `/nick`: someone changed name (to everyone in the room).
    Rename {
        /// The old name.
        old: &'a str,
        /// The new name.
        name: &'a str,
        /// The room.
        room: &'a str,
    },
    /// `/msg`: a private message (to its sender and its recipient only).
    Private {
        /// The sender.
        from: &'a str,
        /// The recipient.
        to: &'a str,
        /// The text.
        text: &'a str,
    },
}

/// The classic `type` numbers: the classic page picks a line's colour from them.
pub mod event_type {
    /// Someone entered (`enter`, and the newcomer's own `welcome`).
    pub const ENTER: u8 = 0;
    /// A chat line (`message`, `action`).
    pub const MESSAGE: u8 = 1;
    /// Someone left.
    pub const LEAVE: u8 = 2;
    /// A notice to one client.
    pub const NOTICE: u8 = 3;
    /// Someone changed name.
    pub const RENAME: u8 = 4;
    /// A private message.
    pub const PRIVATE: u8 = 5;
}

/// The JSON object of one event. Field order puts the classic `type` and `info` first.
#[derive(Serialize, Default)]
struct Json<'a> {
    #[serde(rename = "type")]
    kind: u8,
    info: &'a str,
    event: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    old: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    room: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    users: Option<&'a [&'a str]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    history: bool,
    /// Unix time in milliseconds.
    time: u64,
}

/// How a client reads the chat's events: the format the broadcaster encodes them in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// Raw WebSocket clients: one JSON object per text frame,
    /// `{"type":1,"info":"alice: hi",…}`.
    Classic,
    /// socket.io clients: one Socket.IO event per text frame,
    /// `42["message","alice: hi",{"type":1,…}]` (see docs/PROTOCOL.md).
    SocketIo,
}

/// Turns chat events into frames, reusing its buffers so the hot path does not allocate.
///
/// ```
/// use wschat::protocol::{ChatEvent, Encoder};
/// let mut encoder = Encoder::new();
/// let event = ChatEvent::Message { name: "ada", text: "hi <3", room: "lobby", history: false };
/// let json = std::str::from_utf8(encoder.json(&event, 1_700_000_000_000)).unwrap();
/// assert_eq!(
///     json,
///     r#"{"type":1,"info":"ada: hi &lt;3","event":"message","name":"ada","text":"hi <3","room":"lobby","time":1700000000000}"#
/// );
/// ```
#[derive(Default)]
pub struct Encoder {
    info: String,
    json: Vec<u8>,
    /// A Socket.IO packet, before it is framed.
    packet: Vec<u8>,
}

impl Encoder {
    /// Creates an encoder with empty scratch buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// The JSON text of `event` at `time_ms` (Unix milliseconds). The slice is valid until
    /// the next call.
    pub fn json(&mut self, event: &ChatEvent<'_>, time_ms: u64) -> &[u8] {
        self.encode(event, time_ms);
        &self.json
    }

    /// Fills `info` (the classic line) and `json` (the object); returns the event's classic
    /// type and its name.
    fn encode(&mut self, event: &ChatEvent<'_>, time_ms: u64) -> (u8, &'static str) {
        self.info.clear();
        let info = &mut self.info;
        let mut obj = Json {
            time: time_ms,
            ..Json::default()
        };
        match *event {
            ChatEvent::Welcome { name, room, users } => {
                html_escape_into(info, name);
                info.push_str(" comes in !!!");
                obj.kind = event_type::ENTER;
                obj.event = "welcome";
                (obj.name, obj.room, obj.users) = (Some(name), Some(room), Some(users));
            }
            ChatEvent::Enter { name, room } => {
                html_escape_into(info, name);
                info.push_str(" comes in !!!");
                obj.kind = event_type::ENTER;
                obj.event = "enter";
                (obj.name, obj.room) = (Some(name), Some(room));
            }
            ChatEvent::Message {
                name,
                text,
                room,
                history,
            } => {
                html_escape_into(info, name);
                info.push_str(": ");
                html_escape_into(info, text);
                obj.kind = event_type::MESSAGE;
                obj.event = "message";
                (obj.name, obj.text, obj.room) = (Some(name), Some(text), Some(room));
                obj.history = history;
            }
            ChatEvent::Action {
                name,
                text,
                room,
                history,
            } => {
                info.push_str("* ");
                html_escape_into(info, name);
                info.push(' ');
                html_escape_into(info, text);
                obj.kind = event_type::MESSAGE;
                obj.event = "action";
                (obj.name, obj.text, obj.room) = (Some(name), Some(text), Some(room));
                obj.history = history;
            }
            ChatEvent::Leave { name, room } => {
                html_escape_into(info, name);
                info.push_str(" leaves.");
                obj.kind = event_type::LEAVE;
                obj.event = "leave";
                (obj.name, obj.room) = (Some(name), Some(room));
            }
            ChatEvent::Notice { code, text, users } => {
                html_escape_into(info, text);
                obj.kind = event_type::NOTICE;
                obj.event = "notice";
                (obj.code, obj.text, obj.users) = (Some(code), Some(text), users);
            }
            ChatEvent::Rename { old, name, room } => {
                html_escape_into(info, old);
                info.push_str(" is now known as ");
                html_escape_into(info, name);
                obj.kind = event_type::RENAME;
                obj.event = "rename";
                (obj.old, obj.name, obj.room) = (Some(old), Some(name), Some(room));
            }
            ChatEvent::Private { from, to, text } => {
                html_escape_into(info, from);
                info.push_str(" → ");
                html_escape_into(info, to);
                info.push_str(" (private): ");
                html_escape_into(info, text);
                obj.kind = event_type::PRIVATE;
                obj.event = "private";
                (obj.from, obj.to, obj.text) = (Some(from), Some(to), Some(text));
            }
        }
        obj.info = &self.info;
        self.json.clear();
        serde_json::to_writer(&mut self.json, &obj).expect("serializing to a Vec cannot fail");
        (obj.kind, obj.event)
    }

    /// Appends `event` as one text frame to `out`, in the classic format.
    pub fn frame(&mut self, out: &mut Vec<u8>, event: &ChatEvent<'_>, time_ms: u64) {
        let json = self.json(event, time_ms);
        encode_frame(out, Opcode::Text, json);
    }

    /// Appends `event` as one text frame to `out`, in the format `wire`.
    pub fn frame_as(&mut self, wire: Wire, out: &mut Vec<u8>, event: &ChatEvent<'_>, time_ms: u64) {
        match wire {
            Wire::Classic => self.frame(out, event, time_ms),
            Wire::SocketIo => {
                let (kind, name) = self.encode(event, time_ms);
                self.packet.clear();
                socketio::chat_event_packet(&mut self.packet, kind, name, &self.info, &self.json);
                encode_frame(out, Opcode::Text, &self.packet);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn message<'a>(name: &'a str, text: &'a str, history: bool) -> ChatEvent<'a> {
        ChatEvent::Message {
            name,
            text,
            room: "lobby",
            history,
        }
    }

    fn parse(enc: &mut Encoder, event: ChatEvent<'_>) -> Value {
        serde_json::from_slice(enc.json(&event, 1_700_000_000_123)).unwrap()
    }

    #[test]
    fn classic_lines_are_exact() {
        let mut enc = Encoder::new();
        let v = parse(
            &mut enc,
            ChatEvent::Enter {
                name: "alice",
                room: "lobby",
            },
        );
        assert_eq!(v["type"], 0);
        assert_eq!(v["info"], "alice comes in !!!");
        let users = ["bob", "alice"];
        let welcome = ChatEvent::Welcome {
            name: "alice",
            room: "lobby",
            users: &users,
        };
        let v = parse(&mut enc, welcome);
        assert_eq!(v["type"], 0);
        assert_eq!(v["info"], "alice comes in !!!");
        assert_eq!(v["users"], json!(["bob", "alice"]));
        let v = parse(&mut enc, message("alice", "hi there", false));
        assert_eq!(v["type"], 1);
        assert_eq!(v["info"], "alice: hi there");
        assert!(v.get("history").is_none(), "history only on replays: {v}");
        let v = parse(
            &mut enc,
            ChatEvent::Leave {
                name: "alice",
                room: "lobby",
            },
        );
        assert_eq!(v["type"], 2);
        assert_eq!(v["info"], "alice leaves.");
    }

    #[test]
    fn rich_fields_carry_raw_text_and_time() {
        let mut enc = Encoder::new();
        let v = parse(&mut enc, message("a<b", "x & \"y\"", true));
        assert_eq!(
            v,
            json!({"type":1,"info":"a&lt;b: x &amp; &quot;y&quot;","event":"message",
                   "name":"a<b","text":"x & \"y\"","room":"lobby","history":true,
                   "time":1_700_000_000_123u64})
        );
        let notice = ChatEvent::Notice {
            code: "rate-limited",
            text: "slow <down>",
            users: None,
        };
        let v = parse(&mut enc, notice);
        assert_eq!(v["type"], 3);
        assert_eq!(v["info"], "slow &lt;down&gt;");
        assert_eq!(v["code"], "rate-limited");
    }

    #[test]
    fn command_events_have_their_own_lines() {
        let mut enc = Encoder::new();
        let action = ChatEvent::Action {
            name: "al",
            text: "waves <3",
            room: "r",
            history: false,
        };
        let v = parse(&mut enc, action);
        assert_eq!(
            (v["type"].as_u64(), v["event"].as_str()),
            (Some(1), Some("action"))
        );
        assert_eq!(v["info"], "* al waves &lt;3");
        let v = parse(
            &mut enc,
            ChatEvent::Rename {
                old: "al",
                name: "ally",
                room: "r",
            },
        );
        assert_eq!(
            (v["type"].as_u64(), v["info"].as_str()),
            (Some(4), Some("al is now known as ally"))
        );
        assert_eq!(
            (v["old"].as_str(), v["name"].as_str()),
            (Some("al"), Some("ally"))
        );
        let v = parse(
            &mut enc,
            ChatEvent::Private {
                from: "a",
                to: "b",
                text: "psst",
            },
        );
        assert_eq!(v["type"], 5);
        assert_eq!(v["info"], "a → b (private): psst");
        assert_eq!(
            (v["from"].as_str(), v["to"].as_str()),
            (Some("a"), Some("b"))
        );
        let users = ["a", "b"];
        let who = ChatEvent::Notice {
            code: "who",
            text: "In r: a, b",
            users: Some(&users),
        };
        assert_eq!(parse(&mut enc, who)["users"], json!(["a", "b"]));
    }

    #[test]
    fn socketio_frames_carry_the_line_and_the_object() {
        let mut enc = Encoder::new();
        let payload = |out: &[u8]| {
            assert_eq!(out[0], 0x81, "one final text frame");
            assert_eq!(usize::from(out[1]), out.len() - 2);
            String::from_utf8(out[2..].to_vec()).unwrap()
        };
        let mut out = Vec::new();
        enc.frame_as(Wire::SocketIo, &mut out, &message("a<b", "hi", false), 7);
        let text = payload(&out);
        let args: Value = serde_json::from_str(text.strip_prefix("42").unwrap()).unwrap();
        assert_eq!(
            args,
            json!(["message", "a&lt;b: hi", {"type":1,"info":"a&lt;b: hi","event":"message",
                   "name":"a<b","text":"hi","room":"lobby","time":7}])
        );
        // Types 3 and up go out under their own name, with the object alone.
        let mut out = Vec::new();
        let rename = ChatEvent::Rename {
            old: "a",
            name: "b",
            room: "r",
        };
        enc.frame_as(Wire::SocketIo, &mut out, &rename, 7);
        assert!(payload(&out).starts_with(r#"42["rename",{"type":4,"#));
        // The classic format is what `frame` writes.
        let (mut a, mut b) = (Vec::new(), Vec::new());
        enc.frame_as(Wire::Classic, &mut a, &rename, 7);
        enc.frame(&mut b, &rename, 7);
        assert_eq!(a, b);
    }

    #[test]
    fn type_and_info_come_first() {
        let mut enc = Encoder::new();
        let enter = ChatEvent::Enter {
            name: "z",
            room: "r",
        };
        let text = String::from_utf8(enc.json(&enter, 5).to_vec());
        assert!(text
            .unwrap()
            .starts_with(r#"{"type":0,"info":"z comes in !!!","#));
    }

    #[test]
    fn html_escape_covers_the_five_characters() {
        let mut s = String::new();
        html_escape_into(&mut s, r#"<img src=x onerror='alert(1)'> & "q""#);
        assert_eq!(
            s,
            "&lt;img src=x onerror=&#39;alert(1)&#39;&gt; &amp; &quot;q&quot;"
        );
        let mut s = String::new();
        html_escape_into(&mut s, "plain ünïcode");
        assert_eq!(s, "plain ünïcode");
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(clean_name("alice"), Some("alice"));
        assert_eq!(clean_name("  bob smith "), Some("bob smith"));
        assert_eq!(clean_name(""), None);
        assert_eq!(clean_name("   "), None);
        assert_eq!(clean_name("a\u{7}b"), None);
        assert_eq!(clean_name("tab\tname"), None);
        assert_eq!(clean_name(&"x".repeat(32)).map(str::len), Some(32));
        assert_eq!(clean_name(&"x".repeat(33)), None);
        assert_eq!(
            clean_name(&"é".repeat(32)).map(|n| n.chars().count()),
            Some(32)
        );
    }

    #[test]
    fn duplicate_names_get_the_smallest_free_suffix() {
        let taken = ["alice", "alice2"];
        assert_eq!(unique_name("bob", |n| taken.contains(&n)), "bob");
        assert_eq!(unique_name("alice", |n| taken.contains(&n)), "alice3");
        let long = "y".repeat(32);
        let got = unique_name(&long, |n| n == long);
        assert_eq!(got.chars().count(), 32);
        assert!(got.ends_with('2'));
    }

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
}
