//! Socket.IO: the Engine.IO and Socket.IO packets wschat reads and writes, over the WebSocket
//! transport only.
//!
//! Pure functions and one small state machine ([`Session`]): no socket, thread or clock. A
//! reader uses them to check the handshake's query, to understand each text frame a
//! socket.io client sends, and to build the frames it hands to the broadcaster. Chat events
//! in Socket.IO's form are the wire's (`wire::event`): this codec only reads packets and
//! answers them.
//!
//! One WebSocket is one Engine.IO session. Each text frame is one Engine.IO packet: a type digit
//! and its data. An Engine.IO message (`4`) carries one Socket.IO packet: a type digit, an
//! optional namespace (`/admin,`), an optional acknowledgement id, and JSON. So a socket.io
//! client's `emit('message', 'hi')` arrives as the frame `42["message","hi"]`.
//!
//! | query | clients | heartbeat | joining the default namespace `/` |
//! |---|---|---|---|
//! | `EIO=4` | socket.io-client v3 and v4 (Socket.IO protocol 5) | the server sends `2`, the client answers `3` | the client sends `40`, the server answers `40{"sid":…}` |
//! | `EIO=3` | socket.io-client v2 (Socket.IO protocol 4) | the client sends `2`, the server answers `3` | the server sends `40` unasked, after the open packet |
//!
//! Events other than `message` (`emit('typing', true)`) become [`Step::Relay`], for the
//! others in the sender's room, unless their name is the chat's or socket.io's own.
//!
//! HTTP long-polling, and its upgrade, carry the same packets: `engineio` frames them,
//! `reader::polling` serves them. Not supported: binary attachments, namespaces
//! other than `/` (a CONNECT to one gets a CONNECT_ERROR).

use serde::Serialize;
use serde_json::{Map, Value};

use crate::http;
use crate::wire::close_code;

/// Where socket.io clients connect (`path` option of `io()`, this by default).
pub(crate) const PATH: &str = "/socket.io/";

/// What to tell a socket.io client that asks for a transport wrongly.
const TRANSPORTS: &str = "socket.io clients use transport=polling (plain GETs and POSTs) \
     or transport=websocket (a WebSocket upgrade)";

/// The Engine.IO protocol version a client speaks (the `EIO` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Eio {
    /// `EIO=3`: socket.io-client v2. The client pings.
    V3,
    /// `EIO=4`: socket.io-client v3 and v4. The server pings.
    V4,
}

/// True for paths under `/socket.io/` (and `/socket.io` itself, for clients created with
/// `addTrailingSlash: false`).
pub(crate) fn is_socketio_path(path: &str) -> bool {
    path == "/socket.io" || path.starts_with(PATH)
}

/// Checks the query of a WebSocket handshake on [`PATH`] (a `sid`, for an upgrade, is the
/// reader's to check); the error is the reason for an HTTP 400.
pub(crate) fn check_query(query: &str) -> Result<Eio, String> {
    let eio = match http::query_param(query, "EIO").as_deref() {
        Some("4") => Eio::V4,
        Some("3") => Eio::V3,
        None => {
            return Err(
                "missing EIO: socket.io clients send EIO=4 (socket.io-client v3 and v4) \
                        or EIO=3 (v2)"
                    .into(),
            )
        }
        Some(other) => {
            return Err(format!(
                "unsupported EIO={other}: wschat speaks EIO=4 (socket.io-client v3 and v4) \
                 and EIO=3 (socket.io-client v2)"
            ))
        }
    };
    match http::query_param(query, "transport").as_deref() {
        Some("websocket") => {}
        Some("polling") => {
            return Err(format!(
                "transport=polling is not a WebSocket: {TRANSPORTS}"
            ))
        }
        None => return Err(format!("missing transport=websocket: {TRANSPORTS}")),
        Some(other) => return Err(format!("unknown transport={other}: {TRANSPORTS}")),
    }
    Ok(eio)
}

/// The status and reason for a plain HTTP request (no WebSocket upgrade) to a path under
/// [`PATH`]: a polling request, or a request for the client library, which wschat does not
/// serve.
pub(crate) fn http_refusal(path: &str, query: &str) -> (u16, String) {
    let file = path.rsplit('/').next().unwrap_or("");
    if file.starts_with("socket.io") && (file.ends_with(".js") || file.ends_with(".map")) {
        return (
            404,
            format!(
                "wschat does not serve the socket.io client library ({file}): load it from your \
                 own copy (node_modules/socket.io-client/dist/socket.io.min.js) or a CDN"
            ),
        );
    }
    if !matches!(path, "/socket.io" | PATH) {
        return (
            404,
            format!("no such file: socket.io clients connect to {PATH}"),
        );
    }
    match check_query(query) {
        Err(reason) => (400, reason),
        Ok(_) => (
            400,
            format!("this is the websocket transport: it needs a WebSocket upgrade; {TRANSPORTS}"),
        ),
    }
}

/// The Engine.IO open packet, the first frame of a session.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Open<'a> {
    sid: &'a str,
    /// No upgrades: the session already is a WebSocket.
    upgrades: [&'a str; 0],
    ping_interval: u128,
    ping_timeout: u128,
    /// Only in Engine.IO v4.
    #[serde(skip_serializing_if = "Option::is_none")]
    max_payload: Option<usize>,
}

/// The Engine.IO open packet: `0{"sid":…,"upgrades":[],"pingInterval":…,"pingTimeout":…,
/// "maxPayload":…}` (no `maxPayload` in v3). Times in milliseconds, `max_payload` in bytes.
pub(crate) fn open_packet(
    eio: Eio,
    sid: &str,
    ping_interval_ms: u128,
    ping_timeout_ms: u128,
    max_payload: usize,
) -> String {
    let open = Open {
        sid,
        upgrades: [],
        ping_interval: ping_interval_ms,
        ping_timeout: ping_timeout_ms,
        max_payload: (eio == Eio::V4).then_some(max_payload),
    };
    let json = serde_json::to_string(&open).expect("serializing to a String cannot fail");
    format!("0{json}")
}

/// The answer to a successful CONNECT to `/`: `40{"sid":"…"}` (v5), `40` (EIO=3, sent unasked
/// right after the open packet).
pub(crate) fn connect_packet(eio: Eio, sid: &str) -> String {
    match eio {
        Eio::V4 => format!("40{}", serde_json::json!({ "sid": sid })),
        Eio::V3 => "40".into(),
    }
}

/// The answer to a CONNECT to a namespace other than `/`:
/// `44/admin,{"message":"Invalid namespace"}` (v5), `44/admin,"Invalid namespace"` (EIO=3).
pub(crate) fn connect_error_packet(eio: Eio, nsp: &str) -> String {
    match eio {
        Eio::V4 => format!("44{nsp},{{\"message\":\"Invalid namespace\"}}"),
        Eio::V3 => format!("44{nsp},\"Invalid namespace\""),
    }
}

/// The acknowledgement of an event that asked for one: `43<id>[]`.
pub(crate) fn ack_packet(id: u64) -> String {
    format!("43{id}[]")
}

/// Why a client's packet ends its connection: the WebSocket close code and a reason for the
/// Close frame and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed {
    pub code: u16,
    pub reason: String,
}

fn malformed(reason: impl Into<String>) -> Malformed {
    Malformed {
        code: close_code::PROTOCOL_ERROR,
        reason: reason.into(),
    }
}

fn binary_unsupported() -> Malformed {
    Malformed {
        code: close_code::UNSUPPORTED_DATA,
        reason: "binary attachments are not supported: emit text".into(),
    }
}

/// One packet from a client, parsed.
#[derive(Debug, PartialEq)]
pub(crate) enum Packet<'a> {
    /// Engine.IO `1`: the client ends the session.
    Close,
    /// Engine.IO `2`, with its data (`probe` or nothing).
    Ping(&'a str),
    /// Engine.IO `3`.
    Pong,
    /// Engine.IO `6`.
    Noop,
    /// Socket.IO CONNECT (`40`), with the v5 auth payload if any.
    Connect {
        nsp: &'a str,
        auth: Option<Map<String, Value>>,
    },
    /// Socket.IO DISCONNECT (`41`).
    Disconnect { nsp: &'a str },
    /// Socket.IO EVENT (`42`): `args[0]` is the event's name.
    Event {
        nsp: &'a str,
        ack: Option<u64>,
        args: Vec<Value>,
    },
    /// Socket.IO ACK (`43`): an answer to an acknowledgement wschat never asks for.
    Ack { nsp: &'a str },
}

/// Parses one text frame from a client: an Engine.IO packet, and the Socket.IO packet inside
/// it for a message.
pub(crate) fn parse(eio: Eio, text: &str) -> Result<Packet<'_>, Malformed> {
    let Some(&kind) = text.as_bytes().first() else {
        return Err(malformed("an empty Engine.IO packet"));
    };
    // Every type is one ASCII digit (or `b`); for anything else the data is never looked at.
    let data = text.get(1..).unwrap_or_default();
    match kind {
        b'0' => Err(malformed("open (0) is the server's packet")),
        b'1' => Ok(Packet::Close),
        b'2' => Ok(Packet::Ping(data)),
        b'3' => Ok(Packet::Pong),
        b'4' => parse_socketio(eio, data),
        b'5' => Err(malformed(
            "upgrade (5) comes only after a probe, on a polling session's new WebSocket",
        )),
        b'6' => Ok(Packet::Noop),
        b'b' => Err(binary_unsupported()), // EIO=3 base64 binary message
        _ => Err(malformed(format!(
            "unknown Engine.IO packet type {:?}",
            first_char(text)
        ))),
    }
}

fn first_char(text: &str) -> char {
    text.chars().next().unwrap_or_default()
}

/// Parses a Socket.IO packet: `<type>[<namespace>,][<ack id>][<JSON>]`.
fn parse_socketio(eio: Eio, packet: &str) -> Result<Packet<'_>, Malformed> {
    let Some(&kind) = packet.as_bytes().first() else {
        return Err(malformed("an empty Socket.IO packet"));
    };
    match kind {
        b'0'..=b'4' => {}
        b'5' | b'6' => return Err(binary_unsupported()),
        _ => {
            return Err(malformed(format!(
                "unknown Socket.IO packet type {:?}",
                first_char(packet)
            )))
        }
    }
    let mut rest = &packet[1..];
    let nsp = if rest.starts_with('/') {
        let (nsp, after) = rest.split_once(',').unwrap_or((rest, ""));
        rest = after;
        match eio {
            // Socket.IO v4 put the CONNECT's query after the namespace: `/admin?token=1`.
            Eio::V3 => nsp.split('?').next().unwrap_or(nsp),
            Eio::V4 => nsp,
        }
    } else {
        "/"
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let ack = if digits > 0 {
        let id = rest[..digits]
            .parse()
            .map_err(|_| malformed("acknowledgement id out of range"))?;
        rest = &rest[digits..];
        Some(id)
    } else {
        None
    };
    let data: Option<Value> = if rest.is_empty() {
        None
    } else {
        Some(serde_json::from_str(rest).map_err(|e| malformed(format!("bad JSON: {e}")))?)
    };
    match (kind, data) {
        (b'0', None) => Ok(Packet::Connect { nsp, auth: None }),
        (b'0', Some(Value::Object(auth))) => Ok(Packet::Connect {
            nsp,
            auth: Some(auth),
        }),
        (b'0', Some(_)) => Err(malformed("the CONNECT payload must be an object")),
        (b'1', None) => Ok(Packet::Disconnect { nsp }),
        (b'1', Some(_)) => Err(malformed("DISCONNECT carries no payload")),
        (b'2', Some(Value::Array(args)))
            if args.first().is_some_and(|a| a.is_string() || a.is_number()) =>
        {
            Ok(Packet::Event { nsp, ack, args })
        }
        (b'2', _) => Err(malformed(
            "an EVENT's payload must be an array starting with the event's name",
        )),
        (b'3', Some(Value::Array(_))) => Ok(Packet::Ack { nsp }),
        (b'3', _) => Err(malformed("an ACK's payload must be an array")),
        _ => Err(malformed("CONNECT_ERROR (44) is the server's packet")),
    }
}

/// What the reader does with one packet.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing (a pong, a noop, an ack, an event wschat has no use for).
    Nothing,
    /// Send this packet back to the client alone.
    Reply(String),
    /// The default namespace is joined: send `reply` (the answer to the CONNECT), then enter
    /// the chat with the name and room asked for: in the CONNECT's auth payload (v5:
    /// `io(url, { auth: { username, room } })`), else in the handshake's query.
    Enter {
        reply: String,
        name: Option<String>,
        room: Option<String>,
    },
    /// The client left the default namespace: leave the chat, keep the connection.
    Part,
    /// `emit('message', text)`: a chat line; `ack` is the packet to send once it is accepted,
    /// when the client asked for an acknowledgement.
    Say { text: String, ack: Option<String> },
    /// `emit('message', …)` with something other than a string.
    NotText,
    /// `emit('typing', true)`: any other event, for the others in the sender's room. `args`
    /// is the arguments' JSON without the array's brackets (empty for none); `ack` as for
    /// `Say`.
    Relay {
        event: String,
        args: String,
        ack: Option<String>,
    },
    /// An event that cannot be relayed (a reserved name): a notice for the sender.
    Refuse { code: &'static str, text: String },
    /// Engine.IO close: end the connection.
    Close,
}

/// A socket.io client's session, as its reader follows it: the protocol version, the name and
/// room its handshake asked for, and whether it is in the default namespace (and so in the
/// chat).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    eio: Eio,
    /// The Socket.IO session id `40{"sid":…}` gives (v5; distinct from the Engine.IO sid).
    sid: String,
    /// From the handshake's query (`username` or `name`, and `room`).
    name: Option<String>,
    room: Option<String>,
    connected: bool,
}

impl Session {
    /// A new session, not yet in the default namespace: a v5 client must send CONNECT first,
    /// and for EIO=3 the reader calls [`Session::connect`] at once.
    pub(crate) fn new(eio: Eio, sid: String, name: Option<String>, room: Option<String>) -> Self {
        Session {
            eio,
            sid,
            name,
            room,
            connected: false,
        }
    }

    /// The Engine.IO version the client speaks.
    pub(crate) fn eio(&self) -> Eio {
        self.eio
    }

    /// Joins the default namespace: the answer to send and the chat to enter. An EIO=3 server
    /// does this unasked, right after the open packet; otherwise the client's CONNECT does.
    pub(crate) fn connect(&mut self, auth: Option<&Map<String, Value>>) -> Step {
        self.connected = true;
        let field = |key: &str| auth?.get(key)?.as_str().map(str::to_string);
        Step::Enter {
            reply: connect_packet(self.eio, &self.sid),
            name: field("username")
                .or_else(|| field("name"))
                .or_else(|| self.name.clone()),
            room: field("room").or_else(|| self.room.clone()),
        }
    }

    /// Understands one text frame from the client.
    pub(crate) fn on_text(&mut self, text: &str) -> Result<Step, Malformed> {
        let packet = parse(self.eio, text)?;
        let nsp = match &packet {
            Packet::Close => return Ok(Step::Close),
            Packet::Noop => return Ok(Step::Nothing),
            Packet::Ping(data) => {
                return match self.eio {
                    Eio::V3 => Ok(Step::Reply(format!("3{data}"))),
                    Eio::V4 => Err(malformed(
                        "invalid heartbeat direction: with EIO=4 the server pings",
                    )),
                }
            }
            Packet::Pong => {
                return match self.eio {
                    Eio::V4 => Ok(Step::Nothing),
                    Eio::V3 => Err(malformed(
                        "invalid heartbeat direction: with EIO=3 the client pings",
                    )),
                }
            }
            Packet::Connect { nsp, .. }
            | Packet::Disconnect { nsp }
            | Packet::Event { nsp, .. }
            | Packet::Ack { nsp } => *nsp,
        };
        if let Packet::Connect { auth, .. } = packet {
            if nsp != "/" {
                return Ok(Step::Reply(connect_error_packet(self.eio, nsp)));
            }
            if self.connected {
                return Err(malformed("CONNECT to / twice"));
            }
            return Ok(self.connect(auth.as_ref()));
        }
        if nsp != "/" {
            return Err(malformed(format!("not connected to namespace {nsp}")));
        }
        if !self.connected {
            return Err(malformed(
                "not connected to namespace /: CONNECT (40) must come first",
            ));
        }
        Ok(match packet {
            Packet::Disconnect { .. } => {
                self.connected = false;
                Step::Part
            }
            Packet::Event { ack, mut args, .. } => {
                if args[0] != "message" {
                    return Ok(custom_event(args, ack));
                }
                match args.get_mut(1).map(Value::take) {
                    Some(Value::String(text)) => Step::Say {
                        text,
                        ack: ack.map(ack_packet),
                    },
                    _ => Step::NotText,
                }
            }
            _ => Step::Nothing,
        })
    }
}

/// Event names a client may not relay: the chat's own, which the others would take for the
/// server's, and those socket.io clients keep for themselves (a relayed `disconnect` would
/// fire the others' handlers).
const RESERVED_EVENTS: [&str; 13] = [
    "action",
    "enter",
    "leave",
    "notice",
    "private",
    "rename",
    "welcome",
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// An EVENT other than `message`: relayed unless its name is reserved or not a string.
fn custom_event(mut args: Vec<Value>, ack: Option<u64>) -> Step {
    let event = match args.remove(0) {
        Value::String(name) if !RESERVED_EVENTS.contains(&name.as_str()) => name,
        Value::String(name) => {
            return Step::Refuse {
                code: "event-reserved",
                text: format!(
                    "{name} is the server's or socket.io's own event: pick another name."
                ),
            }
        }
        _ => {
            return Step::Refuse {
                code: "usage",
                text: "An event's name must be a string.".into(),
            }
        }
    };
    let json = serde_json::to_string(&args).expect("serializing to a String cannot fail");
    Step::Relay {
        event,
        args: json[1..json.len() - 1].to_string(),
        ack: ack.map(ack_packet),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutate::Mutator;
    use serde_json::json;

    fn sio(eio: Eio) -> Session {
        Session::new(eio, "S1D".into(), Some("q".into()), None)
    }

    fn code(r: Result<impl std::fmt::Debug, Malformed>) -> u16 {
        r.expect_err("malformed").code
    }

    #[test]
    fn handshake_queries() {
        assert_eq!(check_query("EIO=4&transport=websocket"), Ok(Eio::V4));
        assert_eq!(
            check_query("username=al&EIO=3&transport=websocket&t=NxyZ&b64=1"),
            Ok(Eio::V3)
        );
        let err = |q| check_query(q).unwrap_err();
        assert!(err("transport=websocket").starts_with("missing EIO"));
        assert!(err("EIO=2&transport=websocket").starts_with("unsupported EIO=2"));
        assert!(err("EIO=x&transport=websocket").starts_with("unsupported EIO=x"));
        assert!(err("EIO=4&transport=polling").starts_with("transport=polling is not a WebSocket"));
        assert!(err("EIO=4").starts_with("missing transport"));
        assert!(err("EIO=4&transport=webtransport").starts_with("unknown transport"));
    }

    #[test]
    fn plain_http_under_the_path() {
        let (status, reason) = http_refusal("/socket.io/socket.io.js", "");
        assert_eq!(status, 404);
        assert!(reason.contains("does not serve the socket.io client library"));
        assert_eq!(http_refusal("/socket.io/socket.io.min.js.map", "").0, 404);
        assert_eq!(http_refusal("/socket.io/other", "").0, 404);
        let (status, reason) = http_refusal("/socket.io", "EIO=4&transport=websocket");
        assert_eq!(status, 400);
        assert!(reason.contains("needs a WebSocket upgrade"), "{reason}");
        assert!(is_socketio_path("/socket.io"));
        assert!(is_socketio_path("/socket.io/x"));
        assert!(!is_socketio_path("/socket.iox"));
    }

    #[test]
    fn open_packets_per_version() {
        let v4 = open_packet(Eio::V4, "abc", 25_000, 25_000, 4096);
        assert_eq!(
            v4,
            r#"0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":25000,"maxPayload":4096}"#
        );
        let v3 = open_packet(Eio::V3, "abc", 30_000, 30_000, 4096);
        assert_eq!(
            v3,
            r#"0{"sid":"abc","upgrades":[],"pingInterval":30000,"pingTimeout":30000}"#
        );
    }

    #[test]
    fn server_packets() {
        assert_eq!(connect_packet(Eio::V4, "S1D"), r#"40{"sid":"S1D"}"#);
        assert_eq!(connect_packet(Eio::V3, "S1D"), "40");
        assert_eq!(
            connect_error_packet(Eio::V4, "/admin"),
            r#"44/admin,{"message":"Invalid namespace"}"#
        );
        assert_eq!(
            connect_error_packet(Eio::V3, "/admin"),
            r#"44/admin,"Invalid namespace""#
        );
        assert_eq!(ack_packet(12), "4312[]");
        assert_eq!(crate::wire::ENGINEIO_PING, "2");
    }

    #[test]
    fn parses_engineio_packets() {
        assert_eq!(parse(Eio::V4, "1"), Ok(Packet::Close));
        assert_eq!(parse(Eio::V3, "2"), Ok(Packet::Ping("")));
        assert_eq!(parse(Eio::V3, "2probe"), Ok(Packet::Ping("probe")));
        assert_eq!(parse(Eio::V4, "3"), Ok(Packet::Pong));
        assert_eq!(parse(Eio::V4, "6"), Ok(Packet::Noop));
        assert_eq!(code(parse(Eio::V4, "")), 1002);
        assert_eq!(code(parse(Eio::V4, "0{}")), 1002);
        assert_eq!(code(parse(Eio::V4, "5")), 1002);
        assert_eq!(code(parse(Eio::V4, "7")), 1002);
        assert_eq!(code(parse(Eio::V4, "é")), 1002);
        assert_eq!(code(parse(Eio::V4, "4é")), 1002);
        assert_eq!(code(parse(Eio::V3, "b4AAEC")), 1003);
    }

    #[test]
    fn parses_socketio_packets() {
        assert_eq!(
            parse(Eio::V4, "40"),
            Ok(Packet::Connect {
                nsp: "/",
                auth: None
            })
        );
        let Ok(Packet::Connect { nsp, auth }) = parse(Eio::V4, r#"40{"token":"t"}"#) else {
            panic!("a CONNECT with auth");
        };
        assert_eq!((nsp, auth.unwrap()["token"].as_str()), ("/", Some("t")));
        assert_eq!(
            parse(Eio::V4, "40/admin,"),
            Ok(Packet::Connect {
                nsp: "/admin",
                auth: None
            })
        );
        assert_eq!(
            parse(Eio::V3, "40/admin?token=1,"),
            Ok(Packet::Connect {
                nsp: "/admin",
                auth: None
            })
        );
        assert_eq!(parse(Eio::V4, "41"), Ok(Packet::Disconnect { nsp: "/" }));
        assert_eq!(
            parse(Eio::V4, "41/admin,"),
            Ok(Packet::Disconnect { nsp: "/admin" })
        );
        assert_eq!(
            parse(Eio::V4, r#"42["message","hi"]"#),
            Ok(Packet::Event {
                nsp: "/",
                ack: None,
                args: vec![json!("message"), json!("hi")]
            })
        );
        assert_eq!(
            parse(Eio::V4, r#"42/chat,17["message","hi"]"#),
            Ok(Packet::Event {
                nsp: "/chat",
                ack: Some(17),
                args: vec![json!("message"), json!("hi")]
            })
        );
        assert_eq!(parse(Eio::V4, "435[]"), Ok(Packet::Ack { nsp: "/" }));
    }

    #[test]
    fn malformed_socketio_packets() {
        for bad in [
            "4",                      // no Socket.IO packet
            "49",                     // unknown type
            "42",                     // an event without payload
            "42{}",                   // not an array
            "42[]",                   // no name
            "42[{}]",                 // the name is not a string
            r#"42["message","hi""#,   // bad JSON
            r#"42["message"] extra"#, // trailing bytes
            "40[]",                   // CONNECT payload not an object
            "41{}",                   // DISCONNECT with a payload
            "43{}",                   // ACK payload not an array
            r#"44{"message":"x"}"#,   // CONNECT_ERROR from a client
            "4299999999999999999999[]",
        ] {
            assert_eq!(code(parse(Eio::V4, bad)), 1002, "{bad}");
        }
        assert_eq!(
            code(parse(
                Eio::V4,
                r#"451-["message",{"_placeholder":true,"num":0}]"#
            )),
            1003
        );
        assert_eq!(code(parse(Eio::V4, "461-0[]")), 1003);
    }

    /// Every prefix and many mutations of valid packets, through both versions' sessions in
    /// both states: an answer or a close code, never a panic.
    #[test]
    fn mutated_packets_never_panic() {
        let valid = [
            "40",
            r#"40{"username":"a","room":"r"}"#,
            "40/admin?x=1,",
            "41",
            r#"42["message","hé \"q\""]"#,
            r#"4212["message","x",{"a":[1,2]}]"#,
            r#"42/chat,3["message","x"]"#,
            "431[]",
            r#"451-["message",{"_placeholder":true,"num":0}]"#,
            "2probe",
            "3",
            "6",
            "1",
        ];
        let mut mutator = Mutator::new(0x9E37_79B9_7F4A_7C15, r#"0123456789[]{}",/-?é "#);
        let mut cases = 0;
        for packet in valid {
            let inputs = mutator.inputs(packet, 300);
            for input in &inputs {
                for eio in [Eio::V3, Eio::V4] {
                    let mut fresh = Session::new(eio, "s".into(), None, None);
                    let mut joined = fresh.clone();
                    joined.connect(None);
                    for session in [&mut fresh, &mut joined] {
                        if let Err(m) = session.on_text(input) {
                            assert!([1002, 1003].contains(&m.code), "{input:?}: {m:?}");
                        }
                        cases += 1;
                    }
                }
            }
        }
        assert!(cases > 10_000, "{cases}");
    }

    #[test]
    fn a_v5_session() {
        let mut s = sio(Eio::V4);
        // Heartbeats may come before the CONNECT; anything else may not.
        assert_eq!(s.on_text("3"), Ok(Step::Nothing));
        assert_eq!(s.on_text("6"), Ok(Step::Nothing));
        assert!(s
            .clone()
            .on_text(r#"42["message","x"]"#)
            .unwrap_err()
            .reason
            .contains("CONNECT (40) must come first"));
        assert_eq!(
            s.on_text("40/admin,"),
            Ok(Step::Reply(
                r#"44/admin,{"message":"Invalid namespace"}"#.into()
            ))
        );
        assert_eq!(
            s.on_text(r#"40{"username":"ann","room":"pi"}"#),
            Ok(Step::Enter {
                reply: r#"40{"sid":"S1D"}"#.into(),
                name: Some("ann".into()),
                room: Some("pi".into()),
            })
        );
        assert_eq!(
            s.on_text(r#"42["message","hi"]"#),
            Ok(Step::Say {
                text: "hi".into(),
                ack: None
            })
        );
        assert_eq!(
            s.on_text(r#"427["message","hi",{"x":1}]"#),
            Ok(Step::Say {
                text: "hi".into(),
                ack: Some("437[]".into())
            })
        );
        assert_eq!(s.on_text(r#"42["message",5]"#), Ok(Step::NotText));
        assert_eq!(s.on_text(r#"42["message"]"#), Ok(Step::NotText));
        assert_eq!(s.on_text("431[]"), Ok(Step::Nothing));
        assert_eq!(code(s.clone().on_text("40")), 1002); // twice
        assert_eq!(code(s.clone().on_text("2")), 1002); // wrong direction
        assert_eq!(code(s.clone().on_text(r#"42/admin,["message","x"]"#)), 1002);
        assert_eq!(s.on_text("41"), Ok(Step::Part));
        assert_eq!(code(s.clone().on_text(r#"42["message","x"]"#)), 1002);
        // Connecting again after a DISCONNECT is allowed; without auth, the query's name.
        assert!(matches!(
            s.on_text("40"),
            Ok(Step::Enter { name: Some(n), room: None, .. }) if n == "q"
        ));
        assert_eq!(s.on_text("1"), Ok(Step::Close));
    }

    #[test]
    fn other_events_become_relays_and_reserved_names_are_refused() {
        let mut s = sio(Eio::V4);
        assert!(matches!(s.on_text("40"), Ok(Step::Enter { .. })));
        assert_eq!(
            s.on_text(r#"42["typing",true]"#),
            Ok(Step::Relay {
                event: "typing".into(),
                args: "true".into(),
                ack: None
            })
        );
        assert_eq!(
            s.on_text(r#"423["move",{"x":1},[2]]"#),
            Ok(Step::Relay {
                event: "move".into(),
                args: r#"{"x":1},[2]"#.into(),
                ack: Some("433[]".into())
            })
        );
        assert_eq!(
            s.on_text(r#"42["wave"]"#),
            Ok(Step::Relay {
                event: "wave".into(),
                args: String::new(),
                ack: None
            })
        );
        for name in [r#""enter""#, r#""disconnect""#, r#""notice""#] {
            assert!(matches!(
                s.on_text(&format!("42[{name},1]")),
                Ok(Step::Refuse {
                    code: "event-reserved",
                    ..
                })
            ));
        }
        assert!(matches!(
            s.on_text("42[7,1]"),
            Ok(Step::Refuse { code: "usage", .. })
        ));
    }

    #[test]
    fn an_eio3_session() {
        let mut s = sio(Eio::V3);
        // The server connects the default namespace itself, right after the open packet.
        assert_eq!(
            s.connect(None),
            Step::Enter {
                reply: "40".into(),
                name: Some("q".into()),
                room: None
            }
        );
        assert_eq!(
            s.on_text(r#"42["message","hi"]"#),
            Ok(Step::Say {
                text: "hi".into(),
                ack: None
            })
        );
        assert_eq!(s.on_text("2"), Ok(Step::Reply("3".into())));
        assert_eq!(s.on_text("2probe"), Ok(Step::Reply("3probe".into())));
        assert_eq!(code(s.clone().on_text("3")), 1002); // wrong direction
        assert_eq!(
            s.on_text("40/admin?x=1,"),
            Ok(Step::Reply(r#"44/admin,"Invalid namespace""#.into()))
        );
        assert_eq!(s.on_text("41"), Ok(Step::Part));
        assert_eq!(
            s.on_text("40"),
            Ok(Step::Enter {
                reply: "40".into(),
                name: Some("q".into()),
                room: None
            })
        );
    }
}
