//! Chat events as the wire carries them: the classic JSON line and its Socket.IO form.
//!
//! A [`ChatEvent`] is what happened; the [`Encoder`] turns it into one text frame in a client's
//! [`Wire`] format: `{"type":1,"info":"alice: hi",…}` for raw WebSocket clients, and
//! `42["message","alice: hi",{…}]` for socket.io clients. Pure: callers pass the time in.

use serde::Serialize;

use super::frame::{encode_frame, Opcode};

/// Replaces `&`, `<`, `>`, `"` and `'` with HTML entities, appending to `out`.
///
/// The classic chat page inserts `info` with `innerHTML`; escaped, the text shows as typed and
/// runs nothing.
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

/// What happened, as the chat tells it. Each value becomes one text frame: a JSON object (a
/// custom event: its Socket.IO arguments); see docs/PROTOCOL.md for every event with an
/// example.
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
    /// A socket.io client's own event, `emit('typing', true)` (to everyone else in the room).
    /// Socket.IO only: raw clients have no events to receive it by (see [`ChatEvent::reaches`]).
    Custom {
        /// The event's name, as emitted.
        event: &'a str,
        /// Its arguments as JSON, without the array's brackets (`true,{"x":1}`; empty for none).
        args: &'a str,
        /// The sender's name.
        from: &'a str,
        /// The room.
        room: &'a str,
    },
}

impl ChatEvent<'_> {
    /// Whether clients reading `wire` get this event: all do, but custom events are for
    /// socket.io clients alone.
    pub fn reaches(&self, wire: Wire) -> bool {
        !matches!((self, wire), (ChatEvent::Custom { .. }, Wire::Classic))
    }
}

/// Who sent a relayed custom event: its last argument.
#[derive(Serialize)]
struct Sender<'a> {
    from: &'a str,
    room: &'a str,
    /// Unix time in milliseconds.
    time: u64,
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

    /// The JSON text of `event` at `time_ms` (Unix milliseconds): its object; for a custom
    /// event, its Socket.IO arguments. The slice is valid until the next call.
    pub fn json(&mut self, event: &ChatEvent<'_>, time_ms: u64) -> &[u8] {
        if let ChatEvent::Custom {
            event,
            args,
            from,
            room,
        } = *event
        {
            self.json.clear();
            custom_event_args(
                &mut self.json,
                event,
                args,
                &Sender {
                    from,
                    room,
                    time: time_ms,
                },
            );
            return &self.json;
        }
        self.encode(event, time_ms);
        &self.json
    }

    /// Fills `info` (the classic line) and `json` (the object); returns the event's classic
    /// type and its name.
    fn encode(&mut self, event: &ChatEvent<'_>, time_ms: u64) -> (u8, &'static str) {
        self.info.clear();
        let mut obj = Json {
            time: time_ms,
            ..Json::default()
        };
        fill(event, &mut self.info, &mut obj);
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
            Wire::SocketIo if matches!(event, ChatEvent::Custom { .. }) => {
                self.json(event, time_ms);
                self.packet.clear();
                self.packet.extend_from_slice(b"42");
                self.packet.extend_from_slice(&self.json);
                encode_frame(out, Opcode::Text, &self.packet);
            }
            Wire::SocketIo => {
                let (kind, name) = self.encode(event, time_ms);
                self.packet.clear();
                socketio_event_packet(&mut self.packet, kind, name, &self.info, &self.json);
                encode_frame(out, Opcode::Text, &self.packet);
            }
        }
    }
}

/// Writes `event`'s classic line into `info` and its fields into `obj`.
fn fill<'a>(event: &ChatEvent<'a>, info: &mut String, obj: &mut Json<'a>) {
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
        ChatEvent::Custom { .. } => unreachable!("custom events have no object: see json()"),
    }
}

/// Appends a relayed custom event's Socket.IO arguments to `out`: its name, the sender's
/// arguments as they came, and who sent it, `["typing",true,{"from":"alice",…}]`. The
/// sender's object goes last so that the arguments keep their places for a handler.
fn custom_event_args(out: &mut Vec<u8>, event: &str, args: &str, sender: &Sender<'_>) {
    out.push(b'[');
    serde_json::to_writer(&mut *out, event).expect("writing to a Vec cannot fail");
    out.push(b',');
    if !args.is_empty() {
        out.extend_from_slice(args.as_bytes());
        out.push(b',');
    }
    serde_json::to_writer(&mut *out, sender).expect("writing to a Vec cannot fail");
    out.push(b']');
}

/// Appends the Socket.IO EVENT packet of one chat event to `out`. The classic types, 0, 1 and
/// 2, go out as the classic socket.io chat's events, `enter`, `message` and `leave`, with the
/// classic line (`info`, HTML-escaped) and then the event's JSON object:
/// `42["message","alice: hi",{…}]`. A page written for the classic chat reads the line and
/// ignores the object. The other types go out under their `event` name, with the object:
/// `42["notice",{…}]`.
fn socketio_event_packet(out: &mut Vec<u8>, kind: u8, event: &str, info: &str, object: &[u8]) {
    let name = match kind {
        event_type::ENTER => "enter",
        event_type::MESSAGE => "message",
        event_type::LEAVE => "leave",
        _ => event,
    };
    out.extend_from_slice(b"42[");
    serde_json::to_writer(&mut *out, name).expect("writing to a Vec cannot fail");
    out.push(b',');
    if kind <= event_type::LEAVE {
        serde_json::to_writer(&mut *out, info).expect("writing to a Vec cannot fail");
        out.push(b',');
    }
    out.extend_from_slice(object);
    out.push(b']');
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
    fn a_custom_event_keeps_its_name_and_arguments_and_says_who_sent_it() {
        let mut enc = Encoder::new();
        let typing = ChatEvent::Custom {
            event: "typing",
            args: r#"true,{"x":[1,"é"]}"#,
            from: "a\"b",
            room: "lobby",
        };
        let mut out = Vec::new();
        enc.frame_as(Wire::SocketIo, &mut out, &typing, 7);
        assert_eq!(
            std::str::from_utf8(&out[2..]).unwrap(),
            r#"42["typing",true,{"x":[1,"é"]},{"from":"a\"b","room":"lobby","time":7}]"#
        );
        let bare = ChatEvent::Custom {
            event: "ping?",
            args: "",
            from: "z",
            room: "r",
        };
        let v: Value = serde_json::from_slice(enc.json(&bare, 1)).unwrap();
        assert_eq!(v, json!(["ping?", {"from":"z","room":"r","time":1}]));
        assert!(typing.reaches(Wire::SocketIo) && !typing.reaches(Wire::Classic));
        assert!(message("a", "b", false).reaches(Wire::Classic));
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
    fn chat_events_become_socketio_events() {
        let mut out = Vec::new();
        let object = br#"{"type":1,"info":"a: \"hi\" &amp;"}"#;
        socketio_event_packet(&mut out, 1, "action", "a: \"hi\" &amp;", object);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            r#"42["message","a: \"hi\" &amp;",{"type":1,"info":"a: \"hi\" &amp;"}]"#
        );
        let args: Value = serde_json::from_str(&text[2..]).unwrap();
        assert_eq!(args[1], "a: \"hi\" &amp;");
        for (kind, name) in [(0, "enter"), (2, "leave")] {
            let mut out = Vec::new();
            socketio_event_packet(&mut out, kind, "welcome", "x", b"{}");
            assert_eq!(out, format!(r#"42["{name}","x",{{}}]"#).into_bytes());
        }
        for name in ["notice", "rename", "private"] {
            let mut out = Vec::new();
            socketio_event_packet(&mut out, 3, name, "ignored", b"{\"k\":1}");
            assert_eq!(out, format!(r#"42["{name}",{{"k":1}}]"#).into_bytes());
        }
    }

    #[test]
    fn an_image_tag_is_escaped_and_a_message_encodes_exactly() {
        let mut info = String::from("eve: ");
        html_escape_into(&mut info, "<img src=x onerror=alert(1)>");
        assert_eq!(info, "eve: &lt;img src=x onerror=alert(1)&gt;");
        let mut encoder = Encoder::new();
        let event = message("ada", "hi <3", false);
        let json = std::str::from_utf8(encoder.json(&event, 1_700_000_000_000)).unwrap();
        assert_eq!(
            json,
            r#"{"type":1,"info":"ada: hi &lt;3","event":"message","name":"ada","text":"hi <3","room":"lobby","time":1700000000000}"#
        );
    }
}
